package imagestore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// content returns n deterministic pseudo-random bytes derived from key, so a
// reader can check a value without knowing what the writer did.
func content(key string, n int) []byte {
	seed := sha256.Sum256([]byte(key))
	r := rand.NewChaCha8(seed)
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// sizeOf picks a value size in [lo, hi) from key.
func sizeOf(key string, lo, hi int) int {
	h := sha256.Sum256([]byte("size:" + key))
	return lo + int(binary.LittleEndian.Uint64(h[:8])%uint64(hi-lo))
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// openT opens a store and closes it when the test ends.
func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newDir(t testing.TB) string {
	return filepath.Join(t.TempDir(), "images.lmdb")
}

func commitT(t testing.TB, s *Store, b *Batch) {
	t.Helper()
	if err := s.Commit(b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// checkConsistent verifies that every image has an "ok" ledger entry whose
// sha256 and bytes describe the stored value, and returns the image count.
func checkConsistent(t testing.TB, s *Store) int {
	t.Helper()
	n := 0
	err := s.Keys(func(k string) error {
		img, ok, err := s.Get(k)
		if err != nil || !ok {
			t.Fatalf("Get(%q) = ok %v, err %v during Keys", k, ok, err)
		}
		e, ok, err := s.Ledger(k)
		if err != nil || !ok {
			t.Fatalf("Ledger(%q) = ok %v, err %v: image without ledger entry", k, ok, err)
		}
		if e.Status != StatusOK || e.SHA256 != shaHex(img) || e.Bytes != int64(len(img)) {
			t.Fatalf("key %q: ledger %+v does not describe the stored %d bytes (sha %s)", k, e, len(img), shaHex(img))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	return n
}

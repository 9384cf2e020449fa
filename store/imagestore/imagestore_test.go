package imagestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PowerDNS/lmdb-go/lmdb"
)

func TestMaxKeyLenMatchesLMDB(t *testing.T) {
	if got := (*lmdb.Env)(nil).MaxKeySize(); got != MaxKeyLen {
		t.Fatalf("LMDB max key size %d, MaxKeyLen %d", got, MaxKeyLen)
	}
	s := openT(t, newDir(t), Options{})
	long := strings.Repeat("é", MaxKeyLen/2) + "x" // exactly MaxKeyLen bytes
	var b Batch
	b.PutImage(long, []byte("img"), LedgerEntry{})
	commitT(t, s, &b)
	if ok, err := s.Has(long); err != nil || !ok {
		t.Fatalf("Has(longest key) = %v, %v", ok, err)
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	s := openT(t, newDir(t), Options{})
	keys := []string{"B000123", "ключ/é✓", "with space", "0", strings.Repeat("k", 300)}
	var b Batch
	for _, k := range keys {
		b.PutImage(k, content(k, sizeOf(k, 1, 70000)), LedgerEntry{URL: "http://x/" + k, Width: 3, Height: 4})
	}
	commitT(t, s, &b)
	for _, k := range keys {
		want := content(k, sizeOf(k, 1, 70000))
		img, ok, err := s.Get(k)
		if err != nil || !ok || !slices.Equal(img, want) {
			t.Fatalf("Get(%q) = %d bytes, ok %v, err %v; want %d bytes", k, len(img), ok, err, len(want))
		}
		// The copy is the caller's: changing it changes nothing stored.
		img[0] ^= 0xff
		again, _, _ := s.Get(k)
		if !slices.Equal(again, want) {
			t.Fatalf("Get(%q) returned a slice aliasing the store", k)
		}
		e, ok, err := s.Ledger(k)
		if err != nil || !ok {
			t.Fatalf("Ledger(%q) = %v, %v", k, ok, err)
		}
		if e.URL != "http://x/"+k || e.Width != 3 || e.Height != 4 || e.Status != StatusOK {
			t.Fatalf("Ledger(%q) = %+v", k, e)
		}
	}
	for _, k := range []string{"missing", "B00012", "B0001234"} {
		img, ok, err := s.Get(k)
		if err != nil || ok || img != nil {
			t.Fatalf("Get(%q) of a missing key = %v, %v, %v", k, img, ok, err)
		}
		if has, err := s.Has(k); err != nil || has {
			t.Fatalf("Has(%q) = %v, %v", k, has, err)
		}
		if _, ok, err := s.Ledger(k); err != nil || ok {
			t.Fatalf("Ledger(%q) = %v, %v", k, ok, err)
		}
	}
	if n := checkConsistent(t, s); n != len(keys) {
		t.Fatalf("%d images, want %d", n, len(keys))
	}
}

func TestPutImageCompletesLedgerEntry(t *testing.T) {
	s := openT(t, newDir(t), Options{})
	img := content("a", 5000)
	before := time.Now().UTC()
	var b Batch
	// A wrong sha256 and size from the caller are replaced by the stored bytes'.
	b.PutImage("a", img, LedgerEntry{SHA256: "deadbeef", Bytes: 1, URL: "u"})
	b.PutImage("b", img, LedgerEntry{Status: StatusDuplicate, Time: "2020-01-01T00:00:00Z"})
	commitT(t, s, &b)

	e, _, _ := s.Ledger("a")
	if e.SHA256 != shaHex(img) || e.Bytes != 5000 || e.Status != StatusOK || e.URL != "u" {
		t.Fatalf("ledger a = %+v", e)
	}
	ts, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil || ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) || !strings.HasSuffix(e.Time, "Z") {
		t.Fatalf("default time %q (%v) is not now in UTC", e.Time, err)
	}
	e, _, _ = s.Ledger("b")
	if e.Status != StatusDuplicate || e.Time != "2020-01-01T00:00:00Z" {
		t.Fatalf("caller's status and time were not kept: %+v", e)
	}
}

func TestBatchOrderAndKinds(t *testing.T) {
	tests := []struct {
		name      string
		ops       func(b *Batch)
		wantImage bool
		wantState string // ledger status, "" = no entry
	}{
		{"put then delete", func(b *Batch) { b.PutImage("k", []byte("x"), LedgerEntry{}); b.Delete("k") }, false, ""},
		{"delete then put", func(b *Batch) { b.Delete("k"); b.PutImage("k", []byte("x"), LedgerEntry{}) }, true, StatusOK},
		{"ledger over existing image keeps image", func(b *Batch) { b.PutLedger("old", LedgerEntry{Status: StatusFailed}) }, true, StatusFailed},
		{"delete existing", func(b *Batch) { b.Delete("old") }, false, ""},
		{"delete missing is fine", func(b *Batch) { b.Delete("never") }, false, ""},
		{"ledger only", func(b *Batch) { b.PutLedger("k", LedgerEntry{Status: StatusSkipped}) }, false, StatusSkipped},
		{"last write wins", func(b *Batch) {
			b.PutLedger("k", LedgerEntry{Status: StatusFailed})
			b.PutImage("k", []byte("x"), LedgerEntry{})
			b.PutLedger("k", LedgerEntry{Status: StatusDuplicate})
		}, true, StatusDuplicate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, newDir(t), Options{})
			var b Batch
			b.PutImage("old", []byte("old image"), LedgerEntry{})
			commitT(t, s, &b)
			b.Reset()
			tc.ops(&b)
			commitT(t, s, &b)
			key := "k"
			if strings.Contains(tc.name, "existing") {
				key = "old"
			}
			if strings.Contains(tc.name, "missing") {
				key = "never"
			}
			has, err := s.Has(key)
			if err != nil || has != tc.wantImage {
				t.Fatalf("Has(%q) = %v, %v; want %v", key, has, err, tc.wantImage)
			}
			st, ok, err := s.Status(key)
			if err != nil || ok != (tc.wantState != "") || st != tc.wantState {
				t.Fatalf("Status(%q) = %q, %v, %v; want %q", key, st, ok, err, tc.wantState)
			}
		})
	}
}

func TestInvalidBatchWritesNothing(t *testing.T) {
	tests := []struct {
		name    string
		bad     func(b *Batch)
		wantErr error
		inMsg   string
	}{
		{"empty key image", func(b *Batch) { b.PutImage("", []byte("x"), LedgerEntry{}) }, ErrBadKey, `key ""`},
		{"empty key ledger", func(b *Batch) { b.PutLedger("", LedgerEntry{Status: "ok"}) }, ErrBadKey, `key ""`},
		{"empty key delete", func(b *Batch) { b.Delete("") }, ErrBadKey, `key ""`},
		{"key too long", func(b *Batch) { b.PutImage(strings.Repeat("a", MaxKeyLen+1), []byte("x"), LedgerEntry{}) }, ErrBadKey, "512 bytes"},
		{"key not UTF-8", func(b *Batch) { b.PutImage("a\xffb", []byte("x"), LedgerEntry{}) }, ErrBadKey, "UTF-8"},
		{"empty image", func(b *Batch) { b.PutImage("k", nil, LedgerEntry{}) }, nil, "empty image"},
		{"ledger without status", func(b *Batch) { b.PutLedger("k", LedgerEntry{URL: "u"}) }, nil, "without status"},
		{"bad extra JSON", func(b *Batch) {
			b.PutLedger("k", LedgerEntry{Status: "x", Extra: map[string]json.RawMessage{"a": json.RawMessage("{")}})
		}, nil, "encode ledger entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newDir(t)
			s := openT(t, dir, Options{})
			var b Batch
			b.PutImage("good1", []byte("g"), LedgerEntry{})
			tc.bad(&b)
			b.PutImage("good2", []byte("g"), LedgerEntry{})
			if b.Err() == nil {
				t.Fatal("Err() is nil after an invalid write")
			}
			err := s.Commit(&b)
			if err == nil {
				t.Fatal("Commit succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.inMsg) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %q and the dir", err, tc.inMsg)
			}
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Images != 0 || len(st.Ledger) != 0 {
				t.Fatalf("invalid batch wrote something: %+v", st)
			}
			b.Reset()
			if b.Err() != nil || b.Len() != 0 || b.Bytes() != 0 {
				t.Fatalf("Reset left err %v, len %d, bytes %d", b.Err(), b.Len(), b.Bytes())
			}
		})
	}
}

func TestReadsRejectBadKeysNamingDirAndKey(t *testing.T) {
	dir := newDir(t)
	s := openT(t, dir, Options{})
	checks := map[string]func() error{
		"Get":    func() error { _, _, err := s.Get(""); return err },
		"Has":    func() error { _, err := s.Has(""); return err },
		"Ledger": func() error { _, _, err := s.Ledger(""); return err },
		"Status": func() error { _, _, err := s.Status(""); return err },
		"Statuses": func() error {
			_, err := s.Statuses([]string{"a", ""})
			return err
		},
	}
	for name, f := range checks {
		err := f()
		if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), `key ""`) {
			t.Errorf("%s(\"\") error = %v", name, err)
		}
	}
}

func TestStatsAndStatuses(t *testing.T) {
	s := openT(t, newDir(t), Options{})
	var b Batch
	sizes := map[string]int{"a": 100, "b": 20000, "c": 70000}
	var total int64
	for k, n := range sizes {
		b.PutImage(k, content(k, n), LedgerEntry{})
		total += int64(n)
	}
	b.PutLedger("f1", LedgerEntry{Status: StatusFailed, ErrorClass: "timeout"})
	b.PutLedger("f2", LedgerEntry{Status: StatusFailed})
	b.PutLedger("s1", LedgerEntry{Status: StatusSkipped})
	commitT(t, s, &b)

	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{StatusOK: 3, StatusFailed: 2, StatusSkipped: 1}
	if st.Images != 3 || st.Bytes != total || !reflect.DeepEqual(st.Ledger, want) {
		t.Fatalf("Stats = %+v; want 3 images, %d bytes, ledger %v", st, total, want)
	}
	if st.MapSize != DefaultInitialMapSize || st.FileBytes <= total || st.FileBytes > st.MapSize {
		t.Fatalf("MapSize %d, FileBytes %d (data %d)", st.MapSize, st.FileBytes, total)
	}

	got, err := s.Statuses([]string{"a", "f1", "s1", "nope", "c"})
	if err != nil {
		t.Fatal(err)
	}
	wantSt := map[string]string{"a": "ok", "f1": "failed", "s1": "skipped", "c": "ok"}
	if !reflect.DeepEqual(got, wantSt) {
		t.Fatalf("Statuses = %v, want %v", got, wantSt)
	}
	if st, ok, err := s.Status("f2"); st != StatusFailed || !ok || err != nil {
		t.Fatalf("Status(f2) = %q, %v, %v", st, ok, err)
	}
	if _, ok, err := s.Status("nope"); ok || err != nil {
		t.Fatalf("Status(nope) = %v, %v", ok, err)
	}
}

func TestEmptyStore(t *testing.T) {
	s := openT(t, newDir(t), Options{})
	st, err := s.Stats()
	if err != nil || st.Images != 0 || st.Bytes != 0 || len(st.Ledger) != 0 {
		t.Fatalf("Stats of an empty store = %+v, %v", st, err)
	}
	calls := 0
	if err := s.Keys(func(string) error { calls++; return nil }); err != nil || calls != 0 {
		t.Fatalf("Keys on empty store: %d calls, %v", calls, err)
	}
	if err := s.Commit(&Batch{}); err != nil {
		t.Fatalf("Commit(empty batch) = %v", err)
	}
}

// TestScansCrossChunks checks key order and completeness across several
// read transactions, error propagation, and that the callbacks run outside
// any transaction (a Commit that must grow the map would deadlock otherwise).
func TestScansCrossChunks(t *testing.T) {
	s := openT(t, newDir(t), Options{InitialMapSize: 1 << 20})
	const nImages, nFailed = 2*scanChunk + 500, 300
	perm := rand.New(rand.NewPCG(1, 2)).Perm(nImages)
	var want []string
	var b Batch
	for i, p := range perm {
		k := fmt.Sprintf("img-%d", p) // not zero-padded: byte order differs from numeric order
		want = append(want, k)
		b.PutImage(k, []byte(k), LedgerEntry{})
		if i%700 == 0 {
			commitT(t, s, &b)
			b.Reset()
		}
	}
	for i := range nFailed {
		b.PutLedger(fmt.Sprintf("fail-%04d", i), LedgerEntry{Status: StatusFailed, Error: "e"})
	}
	commitT(t, s, &b)
	slices.Sort(want)

	var got []string
	if err := s.Keys(func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Keys returned %d keys (sorted: %v), want %d in byte order", len(got), slices.IsSorted(got), len(want))
	}

	var led []string
	statuses := map[string]int{}
	err := s.LedgerScan(func(k string, e LedgerEntry) error {
		led = append(led, k)
		statuses[e.Status]++
		if e.Status == StatusOK && e.Bytes != int64(len(k)) {
			return fmt.Errorf("key %s: bytes %d", k, e.Bytes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(led) != nImages+nFailed || !slices.IsSorted(led) || statuses[StatusOK] != nImages || statuses[StatusFailed] != nFailed {
		t.Fatalf("LedgerScan: %d entries, sorted %v, statuses %v", len(led), slices.IsSorted(led), statuses)
	}

	stop := errors.New("stop")
	n := 0
	err = s.Keys(func(string) error {
		n++
		if n == scanChunk+7 {
			return stop
		}
		return nil
	})
	if err != stop || n != scanChunk+7 {
		t.Fatalf("Keys with a failing callback: err %v after %d calls", err, n)
	}
	n = 0
	err = s.LedgerScan(func(string, LedgerEntry) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("LedgerScan with a failing callback: err %v after %d calls", err, n)
	}

	// A commit from inside the callback that has to grow the map.
	done := make(chan error, 1)
	go func() {
		grown := false
		done <- s.Keys(func(k string) error {
			if grown {
				return nil
			}
			grown = true
			var big Batch
			for i := range 8 {
				key := fmt.Sprintf("zz-big-%d", i)
				big.PutImage(key, content(key, 1<<20), LedgerEntry{})
			}
			return s.Commit(&big)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Commit inside Keys deadlocked")
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != nImages+8 || st.MapSize < 8<<20 {
		t.Fatalf("after the inner commit: %+v", st)
	}
}

// TestMapGrowsOnMapFull writes 20 MiB into a store that starts with a 1 MiB
// map, in batches much smaller than the map: each MDB_MAP_FULL doubles it.
func TestMapGrowsOnMapFull(t *testing.T) {
	dir := newDir(t)
	s := openT(t, dir, Options{InitialMapSize: 1 << 20})
	st, _ := s.Stats()
	if st.MapSize != 1<<20 {
		t.Fatalf("initial map size %d", st.MapSize)
	}
	const perBatch, imgSize, batches = 8, 64 << 10, 40 // 40 × 512 KiB = 20 MiB
	sizes := map[int64]bool{}
	for bi := range batches {
		var b Batch
		for i := range perBatch {
			k := fmt.Sprintf("g%03d-%d", bi, i)
			b.PutImage(k, content(k, imgSize), LedgerEntry{})
		}
		commitT(t, s, &b)
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		sizes[st.MapSize] = true
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != perBatch*batches || st.Bytes != perBatch*batches*imgSize {
		t.Fatalf("stats after growth: %+v", st)
	}
	for size := range sizes {
		if size%(1<<20) != 0 || (size>>20)&((size>>20)-1) != 0 {
			t.Errorf("map size %d is not 1 MiB doubled", size)
		}
	}
	if st.MapSize < 20<<20 || len(sizes) < 4 {
		t.Fatalf("map size %d after 20 MiB, sizes seen %v", st.MapSize, sizes)
	}
	for bi := range batches {
		k := fmt.Sprintf("g%03d-%d", bi, bi%perBatch)
		img, ok, err := s.Get(k)
		if err != nil || !ok || !slices.Equal(img, content(k, imgSize)) {
			t.Fatalf("Get(%q) after growth: ok %v, err %v", k, ok, err)
		}
	}
	checkConsistent(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening with a small InitialMapSize keeps the recorded, larger map.
	s2 := openT(t, dir, Options{InitialMapSize: 1 << 20})
	st2, err := s2.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st2.MapSize < st.MapSize || st2.Images != st.Images {
		t.Fatalf("reopened: %+v, before close %+v", st2, st)
	}
}

// TestOneBatchLargerThanMap commits a single 20 MiB batch into a 1 MiB map.
func TestOneBatchLargerThanMap(t *testing.T) {
	s := openT(t, newDir(t), Options{InitialMapSize: 1 << 20})
	var b Batch
	for i := range 20 {
		k := fmt.Sprintf("big%02d", i)
		b.PutImage(k, content(k, 1<<20), LedgerEntry{})
	}
	commitT(t, s, &b)
	if n := checkConsistent(t, s); n != 20 {
		t.Fatalf("%d images, want 20", n)
	}
}

func TestCommitAtomicWhenMapCannotGrow(t *testing.T) {
	s := openT(t, newDir(t), Options{InitialMapSize: 1 << 20, MaxMapSize: 2 << 20})
	var b Batch
	b.PutImage("before", content("before", 1000), LedgerEntry{})
	commitT(t, s, &b)

	b.Reset()
	for i := range 12 { // 3 MiB: the first puts fit, the later ones do not
		k := fmt.Sprintf("x%02d", i)
		b.PutImage(k, content(k, 256<<10), LedgerEntry{})
	}
	err := s.Commit(&b)
	if err == nil || !strings.Contains(err.Error(), "MDB_MAP_FULL") || !errors.Is(err, errMaxMap) {
		t.Fatalf("Commit past MaxMapSize = %v; want MDB_MAP_FULL", err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != 1 || st.Ledger[StatusOK] != 1 || st.MapSize != 2<<20 {
		t.Fatalf("failed batch left %+v; want only the earlier image, map at the cap", st)
	}
	// The store still takes batches that fit.
	b.Reset()
	b.PutImage("after", content("after", 1000), LedgerEntry{})
	commitT(t, s, &b)
	if n := checkConsistent(t, s); n != 2 {
		t.Fatalf("%d images, want 2", n)
	}
}

func TestReadOnly(t *testing.T) {
	dir := newDir(t)
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open read-only of a missing dir = %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-only Open created %s", dir)
	}

	// An LMDB environment without our databases is not an image store.
	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	env, _ := lmdb.NewEnv()
	if err := env.Open(foreign, 0, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.Update(func(txn *lmdb.Txn) error {
		root, err := txn.OpenRoot(0)
		if err != nil {
			return err
		}
		return txn.Put(root, []byte("k"), []byte("v"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	env.Close()
	if _, err := Open(foreign, Options{ReadOnly: true}); !errors.Is(err, ErrNotStore) {
		t.Fatalf("Open read-only of a foreign env = %v", err)
	}

	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.PutImage("k", []byte("v"), LedgerEntry{})
	commitT(t, w, &b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r := openT(t, dir, Options{ReadOnly: true})
	if !r.ReadOnly() {
		t.Fatal("ReadOnly() is false")
	}
	if img, ok, err := r.Get("k"); err != nil || !ok || string(img) != "v" {
		t.Fatalf("read-only Get = %q, %v, %v", img, ok, err)
	}
	if err := r.Commit(&b); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Commit = %v", err)
	}
	if err := r.Sync(); err != nil {
		t.Fatalf("read-only Sync = %v", err)
	}
}

func TestOneOpenPerProcess(t *testing.T) {
	dir := newDir(t)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, link, dir + "/."} {
		for _, ro := range []bool{false, true} {
			if _, err := Open(d, Options{ReadOnly: ro}); err == nil || !strings.Contains(err.Error(), "already open") {
				t.Fatalf("second Open(%s, ro=%v) = %v", d, ro, err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(link, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestClosedStore(t *testing.T) {
	s, err := Open(newDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	var b Batch
	b.PutImage("k", []byte("v"), LedgerEntry{})
	if err := s.Commit(&b); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close = %v", err)
	}
	if _, _, err := s.Get("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if _, err := s.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close = %v", err)
	}
	if err := s.Keys(func(string) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Keys after Close = %v", err)
	}
}

func TestNoSyncFlushesOnClose(t *testing.T) {
	dir := newDir(t)
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := range 100 {
		k := fmt.Sprint(i)
		b.PutImage(k, content(k, 3000), LedgerEntry{})
	}
	commitT(t, s, &b)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openT(t, dir, Options{ReadOnly: true})
	if n := checkConsistent(t, r); n != 100 {
		t.Fatalf("%d images after NoSync close, want 100", n)
	}
}

// TestMainDatabaseHoldsOnlyTheTwoNames checks the layout contract with a raw
// LMDB environment.
func TestMainDatabaseHoldsOnlyTheTwoNames(t *testing.T) {
	dir := newDir(t)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.PutImage("a", []byte("1"), LedgerEntry{})
	b.PutLedger("b", LedgerEntry{Status: StatusFailed})
	commitT(t, s, &b)
	s.Close()

	env, _ := lmdb.NewEnv()
	defer env.Close()
	if err := env.Open(dir, lmdb.Readonly, 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	err = env.View(func(txn *lmdb.Txn) error {
		root, err := txn.OpenRoot(0)
		if err != nil {
			return err
		}
		cur, err := txn.OpenCursor(root)
		if err != nil {
			return err
		}
		defer cur.Close()
		for {
			k, _, err := cur.Get(nil, nil, lmdb.Next)
			if lmdb.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			names = append(names, string(k))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"images", "ledger"}) {
		t.Fatalf("main database keys %q, want [images ledger]", names)
	}
}

// TestConcurrentReadersWhileWriting runs 8 reading goroutines (6 getting
// single keys, 2 scanning) against a writer whose commits keep growing a 1 MiB map (each growth needs every
// read transaction of the process to be finished).
func TestConcurrentReadersWhileWriting(t *testing.T) {
	s := openT(t, newDir(t), Options{InitialMapSize: 1 << 20, MaxReaders: 4})
	const seed, batches, perBatch = 50, 30, 10
	key := func(i int) string { return fmt.Sprintf("c%05d", i) }
	size := func(k string) int { return sizeOf(k, 1000, 120000) }
	var b Batch
	for i := range seed {
		b.PutImage(key(i), content(key(i), size(key(i))), LedgerEntry{})
	}
	commitT(t, s, &b)

	var written atomic.Int64
	written.Store(seed)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 16)
	reads := make([]int64, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := int(written.Load())
				if g%4 == 0 {
					// Scanners: cursors keep page pointers between steps, so
					// they are what a map resize under their feet breaks.
					st, err := s.Stats()
					if err == nil && st.Images < int64(n) {
						err = fmt.Errorf("Stats saw %d images, %d committed", st.Images, n)
					}
					if err == nil {
						seen := 0
						err = s.Keys(func(string) error { seen++; return nil })
						if err == nil && seen < n {
							err = fmt.Errorf("Keys saw %d keys, %d committed", seen, n)
						}
					}
					if err != nil {
						errc <- err
						return
					}
					reads[g]++
					continue
				}
				i := r.IntN(n + perBatch) // sometimes a key not written yet
				k := key(i)
				img, ok, err := s.Get(k)
				if err != nil {
					errc <- err
					return
				}
				if i < n && !ok {
					errc <- fmt.Errorf("committed key %s missing", k)
					return
				}
				if ok && !slices.Equal(img, content(k, size(k))) {
					errc <- fmt.Errorf("key %s: wrong bytes", k)
					return
				}
				if ok {
					st, _, err := s.Status(k)
					if err != nil || st != StatusOK {
						errc <- fmt.Errorf("key %s: status %q, %v", k, st, err)
						return
					}
				}
				if reads[g]%200 == 199 {
					if _, err := s.Stats(); err != nil {
						errc <- err
						return
					}
				}
				reads[g]++
			}
		}()
	}
	for bi := range batches {
		var b Batch
		base := seed + bi*perBatch
		for i := base; i < base+perBatch; i++ {
			b.PutImage(key(i), content(key(i), size(key(i))), LedgerEntry{})
		}
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
		written.Store(int64(base + perBatch))
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for g, n := range reads {
		if n == 0 {
			t.Errorf("reader %d did no reads", g)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != seed+batches*perBatch || st.MapSize <= 1<<20 {
		t.Fatalf("final %+v", st)
	}
	t.Logf("reads per goroutine %v, map grew to %d MiB", reads, st.MapSize>>20)
}

// TestCorruptLedgerValueIsReported puts a non-JSON ledger value (as a foreign
// tool might) and checks every reader reports it with the key.
func TestCorruptLedgerValueIsReported(t *testing.T) {
	dir := newDir(t)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.PutImage("good", []byte("g"), LedgerEntry{})
	commitT(t, s, &b)
	s.Close()

	env, _ := lmdb.NewEnv()
	env.SetMaxDBs(2)
	if err := env.Open(dir, 0, 0o644); err != nil {
		t.Fatal(err)
	}
	err = env.Update(func(txn *lmdb.Txn) error {
		db, err := txn.OpenDBI(LedgerDB, 0)
		if err != nil {
			return err
		}
		return txn.Put(db, []byte("broken"), []byte("not json"), 0)
	})
	env.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{ReadOnly: true})
	checks := map[string]func() error{
		"Ledger":     func() error { _, _, err := s.Ledger("broken"); return err },
		"Status":     func() error { _, _, err := s.Status("broken"); return err },
		"Statuses":   func() error { _, err := s.Statuses([]string{"good", "broken"}); return err },
		"Stats":      func() error { _, err := s.Stats(); return err },
		"LedgerScan": func() error { return s.LedgerScan(func(string, LedgerEntry) error { return nil }) },
	}
	for name, f := range checks {
		if err := f(); err == nil || !strings.Contains(err.Error(), `"broken"`) || !strings.Contains(err.Error(), "decode ledger value") || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s on a corrupt ledger value: %v", name, err)
		}
	}
	if st, ok, err := s.Status("good"); st != StatusOK || !ok || err != nil {
		t.Errorf("Status(good) = %q, %v, %v", st, ok, err)
	}
}

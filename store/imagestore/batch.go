package imagestore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/PowerDNS/lmdb-go/lmdb"
)

type opKind uint8

const (
	opImage opKind = iota
	opLedger
	opDelete
)

type op struct {
	kind   opKind
	key    string
	img    []byte
	ledger []byte // encoded LedgerEntry
}

// Batch collects writes that Store.Commit applies in one write transaction,
// in the order they were added (a later write to a key wins). The zero value
// is an empty batch. A Batch is not safe for concurrent use.
//
// The Put methods validate their input and encode the ledger entry at once
// (in the caller's goroutine, so parallel producers hash and encode in
// parallel); the first invalid write is remembered, returned by Err, and makes
// Commit fail without writing anything.
type Batch struct {
	ops   []op
	bytes int64
	err   error
}

// PutImage stores img under key, with its ledger entry. The batch keeps img
// (no copy) until it is committed: do not modify it before. The entry is
// completed from img: Bytes and SHA256 are always set to img's size and
// sha256 (so the ledger describes the stored bytes), Status defaults to
// StatusOK and Time to now.
func (b *Batch) PutImage(key string, img []byte, e LedgerEntry) {
	if err := ValidKey(key); err != nil {
		b.fail(key, err)
		return
	}
	if len(img) == 0 {
		b.fail(key, errors.New("empty image"))
		return
	}
	sum := sha256.Sum256(img)
	e.SHA256 = hex.EncodeToString(sum[:])
	e.Bytes = int64(len(img))
	if e.Status == "" {
		e.Status = StatusOK
	}
	v, ok := b.encode(key, e)
	if !ok {
		return
	}
	b.ops = append(b.ops, op{kind: opImage, key: key, img: img, ledger: v})
	b.bytes += int64(len(key))*2 + int64(len(img)) + int64(len(v))
}

// PutLedger writes only the ledger entry of key (a failed, skipped or
// duplicate item). An image already stored under key stays; Delete first to
// drop it. Status must be set; Time defaults to now.
func (b *Batch) PutLedger(key string, e LedgerEntry) {
	if err := ValidKey(key); err != nil {
		b.fail(key, err)
		return
	}
	if e.Status == "" {
		b.fail(key, errors.New("ledger entry without status"))
		return
	}
	v, ok := b.encode(key, e)
	if !ok {
		return
	}
	b.ops = append(b.ops, op{kind: opLedger, key: key, ledger: v})
	b.bytes += int64(len(key)) + int64(len(v))
}

// Delete removes key's image and ledger entry (absent ones are fine).
func (b *Batch) Delete(key string) {
	if err := ValidKey(key); err != nil {
		b.fail(key, err)
		return
	}
	b.ops = append(b.ops, op{kind: opDelete, key: key})
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Bytes returns the approximate size the batch adds to the store (keys,
// images and ledger values): flush when it passes your budget.
func (b *Batch) Bytes() int64 { return b.bytes }

// Err returns the first invalid write, or nil.
func (b *Batch) Err() error { return b.err }

// Reset empties the batch for reuse, keeping its capacity.
func (b *Batch) Reset() {
	clear(b.ops) // drop references to the images
	b.ops = b.ops[:0]
	b.bytes = 0
	b.err = nil
}

func (b *Batch) fail(key string, err error) {
	if b.err == nil {
		b.err = fmt.Errorf("key %q: %w", key, err)
	}
}

func (b *Batch) encode(key string, e LedgerEntry) ([]byte, bool) {
	if e.Time == "" {
		e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	}
	v, err := json.Marshal(e)
	if err != nil {
		b.fail(key, fmt.Errorf("encode ledger entry: %w", err))
		return nil, false
	}
	return v, true
}

// Commit applies the batch in one write transaction: after it returns nil all
// of the batch is stored (durably, unless Options.NoSync), after an error none
// of it is. When the map is full, Commit grows it (at least doubling it, and
// enough for the batch, up to Options.MaxMapSize) and runs the transaction
// again. Commit leaves the batch as it is (Reset it to reuse it); commits from
// several goroutines run one after another.
func (s *Store) Commit(b *Batch) error {
	if b.err != nil {
		return fmt.Errorf("imagestore %s: commit: %w", s.dir, b.err)
	}
	if s.ro {
		return fmt.Errorf("imagestore %s: commit: %w", s.dir, ErrReadOnly)
	}
	if len(b.ops) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return fmt.Errorf("imagestore %s: commit: %w", s.dir, ErrClosed)
		}
		var failedKey string
		err := s.env.Update(func(txn *lmdb.Txn) error {
			for i := range b.ops {
				o := &b.ops[i]
				if err := s.apply(txn, o); err != nil {
					failedKey = o.key
					return err
				}
			}
			return nil
		})
		s.mu.RUnlock()
		switch {
		case err == nil:
			return nil
		case isErrno(err, lmdb.MapFull):
			if gerr := s.grow(b.bytes); gerr != nil {
				return fmt.Errorf("imagestore %s: commit %d writes (%d bytes): %w (%w)", s.dir, len(b.ops), b.bytes, err, gerr)
			}
		case isErrno(err, lmdb.MapResized):
			if aerr := s.adoptMapSize(); aerr != nil {
				return fmt.Errorf("imagestore %s: commit: %w", s.dir, aerr)
			}
		case failedKey != "":
			return fmt.Errorf("imagestore %s: commit: key %q: %w", s.dir, failedKey, err)
		default:
			return fmt.Errorf("imagestore %s: commit: %w", s.dir, err)
		}
	}
}

func (s *Store) apply(txn *lmdb.Txn, o *op) error {
	k := []byte(o.key)
	switch o.kind {
	case opImage:
		if err := txn.Put(s.images, k, o.img, 0); err != nil {
			return err
		}
		return txn.Put(s.ledger, k, o.ledger, 0)
	case opLedger:
		return txn.Put(s.ledger, k, o.ledger, 0)
	default:
		if err := txn.Del(s.images, k, nil); err != nil && !lmdb.IsNotFound(err) {
			return err
		}
		if err := txn.Del(s.ledger, k, nil); err != nil && !lmdb.IsNotFound(err) {
			return err
		}
		return nil
	}
}

// errMaxMap reports that the map cannot grow further.
var errMaxMap = errors.New("map size is at Options.MaxMapSize")

// grow enlarges the map: to twice its size, or to the used size plus twice
// the batch when that is more, rounded up to MiB, capped at maxMap. No
// transaction of this process may be active, hence the exclusive lock.
func (s *Store) grow(batchBytes int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	info, err := s.env.Info()
	if err != nil {
		return err
	}
	st, err := s.env.Stat()
	if err != nil {
		return err
	}
	cur := info.MapSize
	if cur >= s.maxMap {
		return fmt.Errorf("%w (%d bytes)", errMaxMap, s.maxMap)
	}
	size := 2 * cur
	if used := (info.LastPNO + 1) * int64(st.PSize); used+2*batchBytes > size {
		size = used + 2*batchBytes
	}
	const mib = 1 << 20
	size = (size + mib - 1) / mib * mib
	size = min(size, s.maxMap)
	return s.env.SetMapSize(size)
}

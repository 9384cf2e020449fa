package imagestore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/PowerDNS/lmdb-go/lmdb"
)

// scanChunk is the number of entries a scan reads per read transaction.
const scanChunk = 1024

// Get returns a copy of the image stored under key; ok is false when there is
// none.
func (s *Store) Get(key string) (img []byte, ok bool, err error) {
	if err := ValidKey(key); err != nil {
		return nil, false, s.keyErr("get", key, err)
	}
	err = s.view(func(txn *lmdb.Txn) error {
		img, ok = nil, false
		v, err := txn.Get(s.images, []byte(key)) // RawRead is off: v is a copy
		if lmdb.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		img, ok = v, true
		return nil
	})
	if err != nil {
		return nil, false, s.keyErr("get", key, err)
	}
	return img, ok, nil
}

// Has reports whether an image is stored under key.
func (s *Store) Has(key string) (bool, error) {
	if err := ValidKey(key); err != nil {
		return false, s.keyErr("has", key, err)
	}
	var ok bool
	err := s.view(func(txn *lmdb.Txn) error {
		txn.RawRead = true
		_, err := txn.Get(s.images, []byte(key))
		ok = err == nil
		if lmdb.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return false, s.keyErr("has", key, err)
	}
	return ok, nil
}

// Ledger returns the ledger entry of key; ok is false when there is none.
func (s *Store) Ledger(key string) (LedgerEntry, bool, error) {
	if err := ValidKey(key); err != nil {
		return LedgerEntry{}, false, s.keyErr("ledger", key, err)
	}
	var (
		e  LedgerEntry
		ok bool
	)
	err := s.view(func(txn *lmdb.Txn) error {
		txn.RawRead = true
		e, ok = LedgerEntry{}, false
		v, err := txn.Get(s.ledger, []byte(key))
		if lmdb.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(v, &e); err != nil { // copies out of the map
			return fmt.Errorf("decode ledger value: %w", err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return LedgerEntry{}, false, s.keyErr("ledger", key, err)
	}
	return e, ok, nil
}

// Status returns the ledger status of key (StatusOK, StatusFailed, ...); ok is
// false when the key has no ledger entry. A resuming stage skips the keys
// whose status it considers done.
func (s *Store) Status(key string) (status string, ok bool, err error) {
	if err := ValidKey(key); err != nil {
		return "", false, s.keyErr("status", key, err)
	}
	err = s.view(func(txn *lmdb.Txn) error {
		txn.RawRead = true
		status, ok = "", false
		v, err := txn.Get(s.ledger, []byte(key))
		if lmdb.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if status, err = decodeStatus(v); err != nil {
			return fmt.Errorf("decode ledger value: %w", err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return "", false, s.keyErr("status", key, err)
	}
	return status, ok, nil
}

// Statuses returns the ledger status of each of keys that has a ledger entry
// (keys without one are absent from the map), reading many keys per read
// transaction: the bulk form of Status for resuming a stage.
func (s *Store) Statuses(keys []string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for start := 0; start < len(keys); start += scanChunk {
		part := keys[start:min(start+scanChunk, len(keys))]
		for _, k := range part {
			if err := ValidKey(k); err != nil {
				return nil, s.keyErr("status", k, err)
			}
		}
		var failed string
		err := s.view(func(txn *lmdb.Txn) error {
			txn.RawRead = true
			for _, k := range part {
				v, err := txn.Get(s.ledger, []byte(k))
				if lmdb.IsNotFound(err) {
					continue
				}
				if err == nil {
					var st string
					if st, err = decodeStatus(v); err == nil {
						out[k] = st
						continue
					}
					err = fmt.Errorf("decode ledger value: %w", err)
				}
				failed = k
				return err
			}
			return nil
		})
		if err != nil {
			return nil, s.keyErr("status", failed, err)
		}
	}
	return out, nil
}

// Keys calls fn with every image key in key (byte) order. An error from fn
// stops the iteration and is returned as it is. fn runs outside any
// transaction, so it may call the store, Commit included.
func (s *Store) Keys(fn func(key string) error) error {
	keys := make([]string, 0, scanChunk)
	return s.scan(ImagesDB, s.images, func(k, _ []byte) error {
		keys = append(keys, string(k))
		return nil
	}, func() error {
		for _, k := range keys {
			if err := fn(k); err != nil {
				return err
			}
		}
		keys = keys[:0]
		return nil
	})
}

// LedgerScan calls fn with every ledger entry in key order. An error from fn
// stops the scan and is returned as it is; fn runs outside any transaction.
func (s *Store) LedgerScan(fn func(key string, e LedgerEntry) error) error {
	type kv struct {
		k string
		e LedgerEntry
	}
	buf := make([]kv, 0, scanChunk)
	return s.scan(LedgerDB, s.ledger, func(k, v []byte) error {
		var e LedgerEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("imagestore %s: ledger scan: key %q: decode ledger value: %w", s.dir, k, err)
		}
		buf = append(buf, kv{string(k), e})
		return nil
	}, func() error {
		for _, x := range buf {
			if err := fn(x.k, x.e); err != nil {
				return err
			}
		}
		buf = buf[:0]
		return nil
	})
}

// Stats summarises a store; the JSON names are those of `inspect --json`.
type Stats struct {
	Images    int64            `json:"images"`     // entries in the images database
	Bytes     int64            `json:"bytes"`      // sum of the image value sizes
	Ledger    map[string]int64 `json:"ledger"`     // ledger status → count
	MapSize   int64            `json:"map_size"`   // current memory map size
	FileBytes int64            `json:"file_bytes"` // size of data.mdb on disk
}

// Stats counts images, their bytes and the ledger statuses. It scans both
// databases (the image values' sizes come from their page headers; the bytes
// are not read).
func (s *Store) Stats() (Stats, error) {
	st := Stats{Ledger: map[string]int64{}}
	wrap := func(err error) (Stats, error) {
		return Stats{}, fmt.Errorf("imagestore %s: stats: %w", s.dir, err)
	}
	err := s.scan(ImagesDB, s.images, func(_, v []byte) error {
		st.Images++
		st.Bytes += int64(len(v))
		return nil
	}, nil)
	if err != nil {
		return wrap(err)
	}
	err = s.scan(LedgerDB, s.ledger, func(k, v []byte) error {
		status, err := decodeStatus(v)
		if err != nil {
			return fmt.Errorf("key %q: decode ledger value: %w", k, err)
		}
		st.Ledger[status]++
		return nil
	}, nil)
	if err != nil {
		return wrap(err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return wrap(ErrClosed)
	}
	info, err := s.env.Info()
	s.mu.RUnlock()
	if err != nil {
		return wrap(err)
	}
	st.MapSize = info.MapSize
	fi, err := os.Stat(filepath.Join(s.dir, "data.mdb"))
	if err != nil {
		return wrap(err)
	}
	st.FileBytes = fi.Size()
	return st, nil
}

// scan visits every entry of db in key order, in read transactions of at
// most scanChunk entries. visit runs inside the transaction with slices into
// the map (valid only during the call); flush, when not nil, runs after each
// transaction. Errors from visit and flush end the scan and are returned
// unwrapped; LMDB errors are wrapped with the database name.
func (s *Store) scan(name string, db lmdb.DBI, visit func(k, v []byte) error, flush func() error) error {
	var last []byte
	started := false
	for {
		more := false
		var visitErr error
		err := s.view(func(txn *lmdb.Txn) error {
			txn.RawRead = true
			cur, err := txn.OpenCursor(db)
			if err != nil {
				return err
			}
			defer cur.Close()
			var k, v []byte
			if !started {
				k, v, err = cur.Get(nil, nil, lmdb.First)
			} else {
				k, v, err = cur.Get(last, nil, lmdb.SetRange)
				if err == nil && bytes.Equal(k, last) {
					k, v, err = cur.Get(nil, nil, lmdb.Next)
				}
			}
			for n := 0; err == nil; k, v, err = cur.Get(nil, nil, lmdb.Next) {
				if n == scanChunk {
					more = true
					return nil
				}
				if visitErr = visit(k, v); visitErr != nil {
					return visitErr
				}
				last = append(last[:0], k...)
				n++
			}
			if lmdb.IsNotFound(err) {
				return nil
			}
			return err
		})
		if visitErr != nil {
			return visitErr
		}
		if err != nil {
			return fmt.Errorf("imagestore %s: scan %s after key %q: %w", s.dir, name, last, err)
		}
		started = true
		if flush != nil {
			if err := flush(); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

func (s *Store) keyErr(op, key string, err error) error {
	return fmt.Errorf("imagestore %s: %s key %q: %w", s.dir, op, key, err)
}

package ingest

import (
	"fmt"
	"hash/maphash"
)

// inlineKey is the longest key stored inside a table slot. Amazon ASINs
// and reviewer ids, MovieLens and Netflix ids all fit; longer keys go to an
// ordinary map.
const inlineKey = 23

// slot is one entry of idTable: the key bytes inline, so a lookup touches
// one cache line.
type slot struct {
	key  [inlineKey]byte
	klen uint8 // 0: empty
	idx  int32
}

// idTable maps raw id bytes to indices with open addressing (linear
// probing, load ≤ 1/2). It exists because ingesting tens of millions of
// rows is dominated by id look-ups in tables of a million keys, where a Go
// map costs two or three cache misses per look-up and this table one.
type idTable struct {
	seed  maphash.Seed
	slots []slot
	mask  uint64
	n     int
	long  map[string]int32
}

func newIDTable() *idTable {
	t := &idTable{seed: maphash.MakeSeed(), long: make(map[string]int32)}
	t.resize(1 << 10)
	return t
}

func (t *idTable) resize(n int) {
	old := t.slots
	t.slots = make([]slot, n)
	t.mask = uint64(n - 1)
	for i := range old {
		if s := &old[i]; s.klen != 0 {
			t.place(s.key[:s.klen], s.idx)
		}
	}
}

func (t *idTable) place(key []byte, idx int32) {
	p := maphash.Bytes(t.seed, key) & t.mask
	for t.slots[p].klen != 0 {
		p = (p + 1) & t.mask
	}
	s := &t.slots[p]
	copy(s.key[:], key)
	s.klen = uint8(len(key))
	s.idx = idx
}

// get returns the index of key.
func (t *idTable) get(key []byte) (int32, bool) {
	if len(key) > inlineKey || len(key) == 0 {
		i, ok := t.long[string(key)]
		return i, ok
	}
	p := maphash.Bytes(t.seed, key) & t.mask
	for {
		s := &t.slots[p]
		if s.klen == 0 {
			return 0, false
		}
		if int(s.klen) == len(key) && string(s.key[:s.klen]) == string(key) {
			return s.idx, true
		}
		p = (p + 1) & t.mask
	}
}

// put binds key to idx (key must be absent).
func (t *idTable) put(key []byte, idx int32) {
	if len(key) > inlineKey || len(key) == 0 {
		t.long[string(key)] = idx
		return
	}
	if 2*(t.n+1) > len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	t.place(key, idx)
	t.n++
}

// set rebinds an existing key (or adds it).
func (t *idTable) set(key []byte, idx int32) {
	if len(key) > inlineKey || len(key) == 0 {
		t.long[string(key)] = idx
		return
	}
	p := maphash.Bytes(t.seed, key) & t.mask
	for {
		s := &t.slots[p]
		if s.klen == 0 {
			t.put(key, idx)
			return
		}
		if int(s.klen) == len(key) && string(s.key[:s.klen]) == string(key) {
			s.idx = idx
			return
		}
		p = (p + 1) & t.mask
	}
}

// indexBatch returns the indices of keys, assigning new ones in order. The
// hashes of the whole batch are computed first so that the probes, which
// do not depend on each other, overlap their cache misses.
func (m *IDMap) indexBatch(keys [][]byte, out []int32, hashes []uint64) ([]int32, error) {
	t := m.idx
	hashes = hashes[:0]
	for _, k := range keys {
		hashes = append(hashes, maphash.Bytes(t.seed, k))
	}
	out = out[:0]
	for j, k := range keys {
		if len(k) == 0 || len(k) > inlineKey || m.dense {
			i, err := m.Index(k)
			if err != nil {
				return out, err
			}
			out = append(out, i)
			continue
		}
		p := hashes[j] & t.mask
		for {
			s := &t.slots[p]
			if s.klen == 0 {
				i := int32(len(m.ids))
				m.ids = append(m.ids, string(k))
				if 2*(t.n+1) > len(t.slots) {
					t.put(k, i) // resizes; later hashes stay valid, the mask changes
				} else {
					copy(s.key[:], k)
					s.klen = uint8(len(k))
					s.idx = i
					t.n++
				}
				out = append(out, i)
				break
			}
			if int(s.klen) == len(k) && string(s.key[:s.klen]) == string(k) {
				out = append(out, s.idx)
				break
			}
			p = (p + 1) & t.mask
		}
	}
	return out, nil
}

// Batch is a block of interactions by raw id, for AddBatch.
type Batch struct {
	Users, Items [][]byte
	Rating       []float32
	Timestamp    []int64

	uidx, iidx []int32
	uh, ih     []uint64
}

// Reset empties the batch, keeping its buffers.
func (bt *Batch) Reset() {
	bt.Users, bt.Items = bt.Users[:0], bt.Items[:0]
	bt.Rating, bt.Timestamp = bt.Rating[:0], bt.Timestamp[:0]
}

// AddBatch records a block of interactions by raw ids: the same as calling
// Add for each row in order, but users and items are indexed on two
// goroutines at once.
func (b *Builder) AddBatch(bt *Batch) error {
	var uerr, ierr error
	done := make(chan struct{})
	go func() {
		bt.iidx, ierr = b.Items.indexBatch(bt.Items, bt.iidx, bt.ih)
		close(done)
	}()
	bt.uidx, uerr = b.Users.indexBatch(bt.Users, bt.uidx, bt.uh)
	<-done
	if uerr != nil {
		return fmt.Errorf("user: %w", uerr)
	}
	if ierr != nil {
		return fmt.Errorf("item: %w", ierr)
	}
	b.Inter.User = append(b.Inter.User, bt.uidx...)
	b.Inter.Item = append(b.Inter.Item, bt.iidx...)
	b.Inter.Rating = append(b.Inter.Rating, bt.Rating...)
	b.Inter.Timestamp = append(b.Inter.Timestamp, bt.Timestamp...)
	return nil
}

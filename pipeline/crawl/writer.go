package crawl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"syscall"
	"time"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// write is the one writer: it batches results into write transactions of at
// most BatchItems items or BatchBytes bytes, committing at least every
// BatchInterval, and counts them. noURL items get their "skipped" entry in
// the first batch. On a commit error it cancels the run and drains the rest.
func (r *runner) write(in <-chan result, noURL []string, cancel context.CancelCauseFunc) error {
	b := &imagestore.Batch{}
	tick := time.NewTicker(r.o.BatchInterval)
	defer tick.Stop()
	var werr error
	var pending []result // counted when committed
	flush := func() {
		if b.Len() == 0 || werr != nil {
			b.Reset()
			pending = pending[:0]
			return
		}
		if err := r.st.Commit(b); err != nil {
			if isStoreFull(err) {
				err = fmt.Errorf("%w: %w (%w)", errStoreFull, err, syscall.ENOSPC)
			}
			werr = fmt.Errorf("crawl: %w", err)
			cancel(werr)
		} else {
			r.c.committed(pending)
		}
		b.Reset()
		clear(pending)
		pending = pending[:0]
	}
	class, msg := ClassNoURL, "the item has no image URL"
	if r.o.FromDir != "" {
		class, msg = ClassNoFile, "no image file named after the item in "+r.o.FromDir
	}
	for _, id := range noURL {
		b.PutLedger(id, imagestore.LedgerEntry{Status: imagestore.StatusSkipped, ErrorClass: class, Error: msg})
		pending = append(pending, result{id: id, noURL: true})
		if b.Len() >= r.o.BatchItems {
			flush()
		}
	}
	for {
		select {
		case res, ok := <-in:
			if !ok {
				flush()
				return werr
			}
			if werr != nil {
				continue
			}
			r.add(b, &res)
			res.stored = int64(len(res.img))
			res.img = nil
			pending = append(pending, res)
			if b.Len() >= r.o.BatchItems || b.Bytes() >= r.o.BatchBytes {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// add puts one result into the batch.
func (r *runner) add(b *imagestore.Batch, res *result) {
	e := res.entry
	if e.Status != imagestore.StatusOK {
		if p, ok := r.prev[res.id]; ok && p.status == imagestore.StatusOK {
			// --force: a failed re-fetch keeps the image stored before.
			res.kept = true
			r.o.Logger.Warn("crawl: re-fetch failed, keeping the stored image", "item", res.id, "error", e.Error)
			return
		}
		b.PutLedger(res.id, e)
		return
	}
	if first, dup := r.seen[res.sum]; dup && first != res.id {
		// Stored all the same (status ok): every item keeps its image under
		// its own key; the ledger names the first item with these bytes.
		setExtra(&res.entry, "duplicate_of", first)
		e = res.entry
		res.dup = true
	} else if !dup {
		r.seen[res.sum] = res.id
	}
	b.PutImage(res.id, res.img, e)
}

// setExtra stores a non-standard ledger field.
func setExtra(e *imagestore.LedgerEntry, key string, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		return
	}
	if e.Extra == nil {
		e.Extra = map[string]json.RawMessage{}
	}
	e.Extra[key] = raw
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func parseSHA(s string) ([32]byte, bool) {
	var out [32]byte
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, false
	}
	return out, true
}

// counters are the run's tallies, updated as batches commit.
type counters struct {
	mu         sync.Mutex
	done       int // items whose outcome was committed (fetched this run)
	ok         int
	failed     int
	skipped    int
	noURL      int
	duplicates int
	resized    int
	mismatch   int
	kept       int
	stored     int64
	classes    map[string]int
}

func newCounters() *counters { return &counters{classes: map[string]int{}} }

// committed counts a committed batch.
func (c *counters) committed(rs []result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range rs {
		res := &rs[i]
		if res.noURL {
			c.noURL++
			continue
		}
		c.done++
		switch {
		case res.kept:
			c.kept++
			c.failed++
			c.classes[res.entry.ErrorClass]++
		case res.entry.Status == imagestore.StatusOK:
			c.ok++
			c.stored += res.stored
			if res.dup {
				c.duplicates++
			}
			if res.resized {
				c.resized++
			}
			if res.mismatch {
				c.mismatch++
			}
		case res.entry.Status == imagestore.StatusSkipped:
			c.skipped++
			c.classes[res.entry.ErrorClass]++
		default:
			c.failed++
			c.classes[res.entry.ErrorClass]++
		}
	}
}

// Progress is a snapshot of a running crawl.
type Progress struct {
	Total      int            `json:"total"` // items to fetch in this run
	Done       int            `json:"done"`
	OK         int            `json:"ok"`
	Failed     int            `json:"failed"`
	Skipped    int            `json:"skipped"`
	Duplicates int            `json:"duplicates"`
	Errors     map[string]int `json:"errors"` // failures and skips by class
	Bytes      int64          `json:"bytes_downloaded"`
	Requests   int64          `json:"requests"`
	Elapsed    time.Duration  `json:"-"`
	PerSecond  float64        `json:"per_second"` // items done per second
	ETA        time.Duration  `json:"-"`          // -1 when unknown
	Final      bool           `json:"final"`
}

func (r *runner) snapshot(total int, started time.Time) Progress {
	r.c.mu.Lock()
	p := Progress{Total: total, Done: r.c.done, OK: r.c.ok, Failed: r.c.failed, Skipped: r.c.skipped,
		Duplicates: r.c.duplicates, Errors: maps.Clone(r.c.classes)}
	r.c.mu.Unlock()
	if r.f != nil {
		p.Bytes = r.f.bytes.Load()
		p.Requests = r.f.requests.Load()
	}
	p.Elapsed = time.Since(started)
	p.ETA = -1
	if s := p.Elapsed.Seconds(); s > 0 {
		p.PerSecond = float64(p.Done) / s
		if p.Done > 0 {
			p.ETA = time.Duration(float64(total-p.Done) / p.PerSecond * float64(time.Second))
		}
	}
	return p
}

// startProgress calls Options.Progress periodically; the returned function
// stops it after one final call.
func (r *runner) startProgress(total int, started time.Time) func() {
	if r.o.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.o.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r.o.Progress(r.snapshot(total, started))
			}
		}
	}()
	return func() {
		close(stop)
		wg.Wait()
		p := r.snapshot(total, started)
		p.Final = true
		r.o.Progress(p)
	}
}

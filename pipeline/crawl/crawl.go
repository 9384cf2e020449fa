// Package crawl is the crawl stage: it fetches every item's image into the
// dataset's LMDB image store (store/imagestore), one ledger entry per item
// keyed by the raw item id, politely, safely and resumably.
//
// Pipeline. A scheduler starts one goroutine per item, at most
// 2 × Options.Concurrency at a time and, per host, as many as its rate
// justifies, taking hosts round robin so that one slow or rate-limited host
// does not hold the others back. Each item's goroutine goes through its
// candidate URLs: robots.txt of the origin (fetched once, RFC 9309, with
// Crawl-delay), the host's token bucket and any Retry-After block, then a
// slot among Concurrency open requests, the request itself (keep-alive,
// redirects followed by hand so that each hop is checked again, X-Robots-Tag
// checked before the body is read, a body limit), structural validation
// (format signature, size from the header, pixel limit, the container walked
// to its end marker) and, on request, a decode check (for a JPEG that is not
// resized, extract/vision/jpegcheck: every block entropy-decoded, no pixels)
// and a resize on a pool of Options.Workers (the cores). One writer
// goroutine batches the results into LMDB transactions.
//
// Safety. Only http and https are fetched. The dialer refuses loopback,
// private, link-local, multicast and other non-public addresses after DNS
// resolution and on every redirect hop (net.Dialer.Control), unless
// Options.AllowPrivate or Options.AllowNets say otherwise.
//
// Resume. The ledger is the crawl's state: a re-run fetches only items
// without a ledger entry, or stored from a URL the item no longer lists
// (RetryFailed adds the failed and policy-skipped ones, Force all). URLs
// that several items share are fetched once per run. A killed run loses at most the batch it had not
// committed; the store is never corrupt (LMDB copy-on-write). Cancelling
// the context stops fetching, commits what was finished and returns an
// error wrapping the context's error.
//
// Outputs besides the store: crawl_stats.json (Stats) and failed.parquet
// (every ledger entry that is not ok: item_id, url, status, error_class,
// error, http_status, attempts, time).
package crawl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// prevEntry is what the ledger said about an item before this run.
type prevEntry struct {
	status string
	class  string
	url    string
}

// runner is one crawl run.
type runner struct {
	o   *Options
	f   *fetcher
	st  *imagestore.Store
	cpu chan struct{} // decode/resize slots
	c   *counters

	prev map[string]prevEntry
	seen map[[32]byte]string // sha256 → first item id stored with it

	sharedMu sync.Mutex
	shared   map[string]*sharedFetch // URLs that several items of this run use
}

// sharedFetch is one fetch of a URL that several items use (a placeholder
// image, a shared product photo): the first item fetches it, the others
// wait for and reuse the result.
type sharedFetch struct {
	done chan struct{}
	res  fetched
	refs int // items that may still ask for it
}

// Run crawls according to o. It returns the run's statistics (also written
// to crawl_stats.json) even when it fails or is interrupted, when it got as
// far as opening the store. Errors: *BadInputError for unusable input, an
// error wrapping ctx.Err() when interrupted (resumable), others for I/O.
func Run(ctx context.Context, o Options) (*Stats, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	log := o.Logger
	started := time.Now()
	stats := &Stats{
		Dataset: o.Dataset, Store: o.StoreDir(), StatsFile: o.StatsPath(), FailedFile: o.FailedPath(),
		Started: started.UTC().Format(time.RFC3339), Version: o.Version, Params: o.params(),
		Errors: map[string]int{},
	}
	if o.Shards > 1 {
		stats.Shard = fmt.Sprintf("%d/%d", o.Shard, o.Shards)
	}

	tasks, source, err := loadTasks(ctx, &o, stats)
	if err != nil {
		return nil, err
	}
	stats.Source = source

	st, err := imagestore.Open(o.StoreDir(), imagestore.Options{NoSync: o.NoSync})
	if err != nil {
		return nil, fmt.Errorf("crawl: %w", err)
	}
	r := &runner{o: &o, st: st, cpu: make(chan struct{}, o.Workers), c: newCounters(),
		prev: map[string]prevEntry{}, seen: map[[32]byte]string{}}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	if err := r.loadLedger(); err != nil {
		return nil, err
	}
	todo, noURL := r.plan(tasks, stats)
	stats.ToFetch = len(todo)
	log.Info("crawl: start", "source", source, "items", stats.Items, "to_fetch", len(todo),
		"already_done", stats.AlreadyDone, "without_url", stats.NoURL, "store", o.StoreDir(),
		"shard", stats.Shard, "validate", o.Validate, "resize", o.Resize, "concurrency", o.Concurrency)

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.f = newFetcher(&o)
	defer r.f.close()

	r.planShared(todo)
	results := make(chan result, 2*o.Concurrency)
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		werr = r.write(results, noURL, cancel)
	}()
	stopProgress := r.startProgress(len(todo), started)
	r.schedule(runCtx, todo, results)
	close(results)
	wg.Wait()
	stopProgress()

	// Reports: always, even after an interruption (the store is consistent).
	r.c.fill(stats)
	hosts, origins := r.f.hosts.counts()
	stats.Hosts, stats.RobotsOrigins = hosts, origins
	stats.RobotsFetched = int(r.f.robotsFetched.Load())
	stats.Requests = r.f.requests.Load()
	stats.Retries = r.f.retries.Load()
	stats.BytesDownloaded = r.f.bytes.Load()
	interrupted := ctx.Err() != nil && werr == nil
	stats.Interrupted = interrupted
	stats.NotFinished = len(todo) - stats.Done
	if stats.Done == 0 && len(todo) == 0 && len(noURL) == 0 {
		stats.Skipped = true
	}
	if err := r.report(stats, started); err != nil && werr == nil {
		werr = err
	}
	cerr := st.Close()
	st = nil
	if werr == nil && cerr != nil {
		werr = fmt.Errorf("crawl: %w", cerr)
	}
	if werr == nil {
		if err := store.WriteJSONAtomic(o.StatsPath(), stats); err != nil {
			werr = fmt.Errorf("crawl: %w", err)
		}
	}
	switch {
	case werr != nil:
		return stats, werr
	case interrupted:
		err := ctx.Err()
		if c := context.Cause(ctx); c != nil && c != err {
			err = fmt.Errorf("%w: %w", err, c) // e.g. "terminated signal received"
		}
		return stats, fmt.Errorf("crawl interrupted after %d of %d items (the store is consistent; re-run to resume): %w",
			stats.Done, len(todo), err)
	}
	log.Info("crawl: done", "ok", stats.OK, "failed", stats.Failed, "skipped", stats.SkippedItems,
		"duplicates", stats.Duplicates, "seconds", math.Round(stats.Seconds*10)/10, "per_second", math.Round(stats.PerSecond))
	return stats, nil
}

// loadTasks reads the items to crawl and applies the shard.
func loadTasks(ctx context.Context, o *Options, stats *Stats) ([]task, string, error) {
	var (
		tasks  []task
		source string
		err    error
	)
	switch {
	case o.FromDir != "":
		source = "dir:" + o.FromDir
		var dups []string
		tasks, dups, err = tasksFromDir(o.FromDir)
		if err != nil {
			return nil, "", err
		}
		for _, d := range dups {
			o.Logger.Warn("crawl: --from-dir: duplicate key, file ignored", "file", d)
		}
		stats.DuplicateFiles = len(dups)
		// Items of the dataset without a file get a ledger entry too.
		if _, serr := os.Stat(filepath.Join(o.Dataset, store.ItemsFile)); serr == nil {
			items, err := tasksFromItems(ctx, o.Dataset)
			if err != nil {
				return nil, "", err
			}
			have := make(map[string]bool, len(tasks))
			for _, t := range tasks {
				have[t.id] = true
			}
			known := make(map[string]bool, len(items))
			for _, it := range items {
				known[it.id] = true
				if !have[it.id] {
					tasks = append(tasks, task{id: it.id, path: ""})
				}
			}
			for _, t := range tasks {
				if t.path != "" && !known[t.id] {
					stats.UnknownIDs++
				}
			}
			if stats.UnknownIDs > 0 {
				o.Logger.Warn("crawl: --from-dir: files whose key is not an item id of the dataset (stored anyway)", "files", stats.UnknownIDs)
			}
		}
	case o.URLsFile != "":
		source = "urls:" + o.URLsFile
		tasks, err = tasksFromURLFile(ctx, o.URLsFile)
	default:
		source = "items:" + filepath.Join(o.Dataset, store.ItemsFile)
		tasks, err = tasksFromItems(ctx, o.Dataset)
	}
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(o.outDir(), 0o755); err != nil {
		return nil, "", fmt.Errorf("crawl: %w", err)
	}
	out := tasks[:0]
	for _, t := range tasks {
		if !InShard(t.id, o.Shard, o.Shards) {
			continue
		}
		if err := imagestore.ValidKey(t.id); err != nil {
			stats.InvalidIDs++
			if len(stats.InvalidIDExamples) < 5 {
				stats.InvalidIDExamples = append(stats.InvalidIDExamples, fmt.Sprintf("%.80q: %v", t.id, err))
			}
			continue
		}
		out = append(out, t)
	}
	if stats.InvalidIDs > 0 {
		o.Logger.Warn("crawl: items whose id cannot be an LMDB key are left out", "count", stats.InvalidIDs, "examples", stats.InvalidIDExamples)
	}
	stats.Items = len(out)
	return out, source, nil
}

// loadLedger reads the ledger's statuses (for resuming) and the sha256 of
// the stored images (for counting duplicates).
func (r *runner) loadLedger() error {
	return r.st.LedgerScan(func(key string, e imagestore.LedgerEntry) error {
		r.prev[key] = prevEntry{status: e.Status, class: e.ErrorClass, url: e.URL}
		if e.Status == imagestore.StatusOK && len(e.SHA256) == 64 {
			if sum, ok := parseSHA(e.SHA256); ok {
				if _, dup := r.seen[sum]; !dup {
					r.seen[sum] = key
				}
			}
		}
		return nil
	})
}

// done reports whether an item needs no fetch in this run.
func (r *runner) done(t task) bool {
	if r.o.Force {
		return false
	}
	p, ok := r.prev[t.id]
	if !ok {
		return false
	}
	switch p.status {
	case imagestore.StatusOK, imagestore.StatusDuplicate:
		// Stored; but if the item's URLs changed since (a re-ingest), the
		// stored image may be stale: fetch again.
		return p.url == "" || len(t.urls) == 0 || slices.Contains(t.urls, p.url)
	case imagestore.StatusSkipped:
		if p.class == ClassNoURL || p.class == ClassNoFile {
			return false // the item may have a URL (or file) now
		}
		return !r.o.RetryFailed
	default:
		return !r.o.RetryFailed
	}
}

// plan splits the tasks into those to fetch and the ids without any URL or
// file that need a "skipped" ledger entry.
func (r *runner) plan(tasks []task, stats *Stats) (todo []task, noURL []string) {
	for _, t := range tasks {
		if len(t.urls) == 0 && t.path == "" {
			stats.NoURL++
			if _, ok := r.prev[t.id]; !ok {
				noURL = append(noURL, t.id)
			}
			continue
		}
		if r.done(t) {
			stats.AlreadyDone++
			continue
		}
		todo = append(todo, t)
	}
	return todo, noURL
}

// schedule runs the tasks, at most 2 × Concurrency at a time (Workers × 4
// for files) and per host at most hostCap, taking ready hosts round robin.
// Results go to out; it returns when every started task has finished.
func (r *runner) schedule(ctx context.Context, tasks []task, out chan<- result) {
	type hostQueue struct {
		tasks    []task
		next     int
		inflight int
		cap      int
		queued   bool
	}
	window := 2 * r.o.Concurrency
	if r.o.FromDir != "" {
		window = 4 * r.o.Workers
	}
	queues := map[string]*hostQueue{}
	var ready []string
	for _, t := range tasks {
		q := queues[t.host]
		if q == nil {
			q = &hostQueue{cap: r.hostCap(t.host, window), queued: true}
			queues[t.host] = q
			ready = append(ready, t.host)
		}
		q.tasks = append(q.tasks, t)
	}
	done := make(chan string, window)
	inflight := 0
	for {
		for inflight < window && len(ready) > 0 && ctx.Err() == nil {
			h := ready[0]
			ready = ready[1:]
			q := queues[h]
			q.queued = false
			t := q.tasks[q.next]
			q.tasks[q.next] = task{}
			q.next++
			q.inflight++
			inflight++
			go func() {
				res := r.runTask(ctx, t)
				if !res.interrupted {
					out <- res
				}
				done <- h
			}()
			if q.next < len(q.tasks) && q.inflight < q.cap {
				ready = append(ready, h)
				q.queued = true
			}
		}
		if inflight == 0 {
			return
		}
		h := <-done
		inflight--
		q := queues[h]
		q.inflight--
		if !q.queued && q.next < len(q.tasks) && q.inflight < q.cap {
			ready = append(ready, h)
			q.queued = true
		}
	}
}

// hostCap is how many items of one host run at once: enough to keep its
// rate busy with two-second responses, at least 2.
func (r *runner) hostCap(host string, window int) int {
	if host == "" || r.f == nil {
		return window
	}
	rt := r.f.hosts.rateFor(host)
	if rt <= 0 || math.IsInf(rt, 1) {
		return window
	}
	return min(window, max(2, int(math.Ceil(2*rt))))
}

// result is the outcome of one item, for the writer.
type result struct {
	id          string
	entry       imagestore.LedgerEntry
	img         []byte // stored bytes when entry.Status is ok
	sum         [32]byte
	resized     bool
	mismatch    bool  // declared Content-Type differs from the sniffed format
	interrupted bool  // abandoned: not written
	dup         bool  // same bytes as an earlier item (set by the writer)
	kept        bool  // failed re-fetch of a stored item: nothing written
	noURL       bool  // a "skipped, no URL" entry
	stored      int64 // bytes stored
}

// runTask fetches (or reads) and validates one item, trying its candidate
// URLs in order.
func (r *runner) runTask(ctx context.Context, t task) result {
	start := time.Now()
	if t.path != "" {
		res := r.readFile(ctx, t)
		res.entry.DurationMS = time.Since(start).Milliseconds()
		return res
	}
	var first *result
	attempts := 0
	n := min(len(t.urls), r.o.MaxCandidates)
	for i := 0; i < n; i++ {
		fr := r.fetchShared(ctx, t.urls[i])
		if fr.interrupted {
			return result{interrupted: true}
		}
		attempts += fr.attempts
		res := r.finish(ctx, t.id, fr)
		if res.interrupted {
			return res
		}
		if res.entry.Status == imagestore.StatusOK {
			res.entry.Attempts = attempts
			if i > 0 {
				setExtra(&res.entry, "url_index", i)
			}
			res.entry.DurationMS = time.Since(start).Milliseconds()
			return res
		}
		if first == nil {
			first = &res
		}
	}
	first.entry.Attempts = attempts
	if n > 1 {
		setExtra(&first.entry, "urls_tried", n)
	}
	first.entry.DurationMS = time.Since(start).Milliseconds()
	return *first
}

// planShared finds the URLs that more than one task may fetch.
func (r *runner) planShared(tasks []task) {
	count := map[string]int{}
	for _, t := range tasks {
		for _, u := range t.urls[:min(len(t.urls), r.o.MaxCandidates)] {
			count[u]++
		}
	}
	r.shared = map[string]*sharedFetch{}
	for u, n := range count {
		if n > 1 {
			r.shared[u] = &sharedFetch{refs: n}
		}
	}
}

// fetchShared fetches raw, once per run for URLs that several items use.
// The result of a shared URL is kept until its last user has taken it.
func (r *runner) fetchShared(ctx context.Context, raw string) fetched {
	r.sharedMu.Lock()
	sf := r.shared[raw]
	if sf == nil {
		r.sharedMu.Unlock()
		return r.f.fetch(ctx, raw)
	}
	first := sf.done == nil
	if first {
		sf.done = make(chan struct{})
	}
	r.sharedMu.Unlock()
	if first {
		sf.res = r.f.fetch(ctx, raw)
		close(sf.done)
	} else {
		select {
		case <-sf.done:
		case <-ctx.Done():
			return fetched{url: raw, interrupted: true}
		}
	}
	res := sf.res
	r.sharedMu.Lock()
	if sf.refs--; sf.refs <= 0 {
		delete(r.shared, raw)
	}
	r.sharedMu.Unlock()
	if !first {
		res.attempts = 0 // no request of its own
	}
	return res
}

// finish turns a fetch into a result: the failure, or the validated (and
// possibly resized) image.
func (r *runner) finish(ctx context.Context, id string, fr fetched) result {
	res := result{id: id}
	e := &res.entry
	e.URL = fr.url
	if fr.finalURL != fr.url {
		e.FinalURL = fr.finalURL
	}
	e.HTTPStatus = fr.httpStatus
	if fr.attempts == 0 {
		setExtra(e, "shared_fetch", true) // another item of the run fetched this URL
	}
	if fr.fail != nil {
		setFailure(e, fr.fail)
		if fr.fail.httpStatus != 0 {
			e.HTTPStatus = fr.fail.httpStatus
		}
		return res
	}
	r.validate(ctx, &res, fr.body, fr.declaredType, fr.url)
	return res
}

// readFile reads and validates one --from-dir file.
func (r *runner) readFile(ctx context.Context, t task) result {
	res := result{id: t.id}
	e := &res.entry
	e.Source = t.path
	e.Attempts = 1
	fi, err := os.Stat(t.path)
	if err == nil && fi.Size() > r.o.MaxBytes {
		setFailure(e, failf(ClassTooLarge, false, "%s: %d bytes exceeds the limit of %d", t.path, fi.Size(), r.o.MaxBytes))
		return res
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(t.path)
	}
	if err != nil {
		setFailure(e, failf(ClassIO, false, "%v", err))
		return res
	}
	r.validate(ctx, &res, b, "", t.path)
	return res
}

// validate checks body structurally and, when asked (or to resize),
// decodes it on the worker pool; it fills res with the image to store or
// the failure.
func (r *runner) validate(ctx context.Context, res *result, body []byte, declared, where string) {
	e := &res.entry
	info, err := Structural(body, r.o.MaxPixels)
	if err != nil {
		ie, _ := asImageError(err)
		setFailure(e, failf(ie.Class, false, "%s: %s", where, ie.Msg))
		if info.Width > 0 {
			e.Width, e.Height = info.Width, info.Height
		}
		return
	}
	e.ContentType = info.ContentType()
	if declared != "" && declared != e.ContentType {
		res.mismatch = true
		setExtra(e, "declared_content_type", declared)
	}
	e.Width, e.Height = info.Width, info.Height
	img := body
	if r.o.Validate == ValidateDecode || r.o.Resize > 0 {
		select {
		case r.cpu <- struct{}{}:
		case <-ctx.Done():
			res.interrupted = true
			return
		}
		out, w, h, fl := r.decodeAndResize(body, info)
		<-r.cpu
		if fl != nil {
			fl.msg = where + ": " + fl.msg
			setFailure(e, fl)
			return
		}
		if out != nil {
			setExtra(e, "original_width", info.Width)
			setExtra(e, "original_height", info.Height)
			setExtra(e, "original_bytes", len(body))
			setExtra(e, "original_content_type", e.ContentType)
			img, e.Width, e.Height, e.ContentType = out, w, h, ContentType(FormatJPEG)
			res.resized = true
		}
	}
	e.Status = imagestore.StatusOK
	res.img = img
	res.sum = sha256Sum(img)
}

// decodeAndResize checks that body decodes and, when it exceeds
// Options.Resize, returns the resized JPEG (nil when the original is kept).
// Only a resize needs the pixels and a full decode; otherwise checkImage
// validates the image without reconstructing them (for a JPEG: every block
// entropy-decoded).
func (r *runner) decodeAndResize(body []byte, info ImageInfo) ([]byte, int, int, *failure) {
	if r.o.Resize <= 0 || max(info.Width, info.Height) <= r.o.Resize {
		w, h, err := checkImage(body, info.Format)
		if err != nil {
			return nil, 0, 0, failf(ClassDecode, false, "%s decode: %v", info.Format, err)
		}
		if w != info.Width || h != info.Height {
			return nil, 0, 0, failf(ClassCorrupt, false, "%s header says %d×%d, decoded %d×%d", info.Format, info.Width, info.Height, w, h)
		}
		return nil, 0, 0, nil
	}
	m, err := decodeImage(body, info.Format)
	if err != nil {
		return nil, 0, 0, failf(ClassDecode, false, "%s decode: %v", info.Format, err)
	}
	if b := m.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
		return nil, 0, 0, failf(ClassCorrupt, false, "%s header says %d×%d, decoded %d×%d", info.Format, info.Width, info.Height, b.Dx(), b.Dy())
	}
	out, w, h, err := resizeJPEG(m, r.o.Resize, r.o.JPEGQuality)
	if err != nil {
		return nil, 0, 0, failf(ClassResize, false, "resize: %v", err)
	}
	return out, w, h, nil
}

func setFailure(e *imagestore.LedgerEntry, f *failure) {
	e.Status = f.status
	e.ErrorClass = f.class
	e.Error = f.msg
	if f.httpStatus != 0 {
		e.HTTPStatus = f.httpStatus
	}
}

// errStoreFull marks a commit that failed because the store cannot grow.
var errStoreFull = errors.New("image store full")

// isStoreFull reports whether a commit error means the disk or the map is
// full.
func isStoreFull(err error) bool {
	s := err.Error()
	return strings.Contains(s, "MDB_MAP_FULL") || strings.Contains(s, "no space left")
}

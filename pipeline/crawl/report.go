package crawl

import (
	"fmt"
	"maps"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// Stats is what a crawl run did: crawl_stats.json and the CLI's
// --result-file. Counts of this run are of items whose outcome was
// committed; Store describes the whole store afterwards.
type Stats struct {
	Dataset    string `json:"dataset"`
	Store      string `json:"store"`
	Source     string `json:"source"` // items:<path>, urls:<path> or dir:<path>
	Shard      string `json:"shard,omitempty"`
	StatsFile  string `json:"stats_file"`
	FailedFile string `json:"failed_file"`
	Version    string `json:"mmpipe_version"`
	Started    string `json:"started"`
	Finished   string `json:"finished"`
	// Skipped is true when there was nothing to do (everything done).
	Skipped bool `json:"skipped"`
	// Interrupted is true when the run was cancelled (SIGINT/SIGTERM).
	Interrupted bool `json:"interrupted"`

	Items             int      `json:"items"`        // items of the input (this shard)
	NoURL             int      `json:"without_url"`  // items with no URL (or file)
	AlreadyDone       int      `json:"already_done"` // left alone: the ledger says done
	ToFetch           int      `json:"to_fetch"`     // items this run set out to fetch
	InvalidIDs        int      `json:"invalid_ids,omitempty"`
	InvalidIDExamples []string `json:"invalid_id_examples,omitempty"`
	UnknownIDs        int      `json:"unknown_ids,omitempty"`     // --from-dir files that are not items
	DuplicateFiles    int      `json:"duplicate_files,omitempty"` // --from-dir files with a key already taken

	Done         int `json:"done"` // items whose outcome was committed this run
	OK           int `json:"ok"`
	Failed       int `json:"failed"`
	SkippedItems int `json:"skipped_items"` // robots.txt, X-Robots-Tag
	NotFinished  int `json:"not_finished"`  // left for the next run (interrupted)
	// Duplicates counts stored images whose sha256 equals an earlier
	// item's; each is still stored under its own key (ledger duplicate_of).
	Duplicates int `json:"duplicates"`
	Resized    int `json:"resized"`
	// ContentTypeMismatch counts images whose declared Content-Type was not
	// their sniffed format (stored with the sniffed type).
	ContentTypeMismatch int `json:"content_type_mismatch"`
	// KeptPrevious counts --force re-fetches that failed, keeping the image
	// stored before.
	KeptPrevious int            `json:"kept_previous,omitempty"`
	Errors       map[string]int `json:"errors"` // failures and skips by class

	BytesDownloaded int64   `json:"bytes_downloaded"`
	BytesStored     int64   `json:"bytes_stored"`
	Requests        int64   `json:"requests"` // HTTP requests, retries, redirects and robots.txt included
	Retries         int64   `json:"retries"`
	Hosts           int     `json:"hosts"`
	RobotsOrigins   int     `json:"robots_origins"`
	RobotsFetched   int     `json:"robots_fetched"`
	Seconds         float64 `json:"seconds"`
	PerSecond       float64 `json:"items_per_second"`  // items done per second
	StoredPerSecond float64 `json:"images_per_second"` // images stored per second

	FailedRows int              `json:"failed_rows"` // rows of failed.parquet
	StoreStats imagestore.Stats `json:"store_stats"`
	Params     map[string]any   `json:"params"`
}

// fill copies the counters into s.
func (c *counters) fill(s *Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Done, s.OK, s.Failed, s.SkippedItems = c.done, c.ok, c.failed, c.skipped
	s.Duplicates, s.Resized, s.ContentTypeMismatch, s.KeptPrevious = c.duplicates, c.resized, c.mismatch, c.kept
	s.BytesStored = c.stored
	s.Errors = maps.Clone(c.classes)
}

// params records the options that shape the result.
func (o *Options) params() map[string]any {
	p := map[string]any{
		"concurrency": o.Concurrency, "workers": o.Workers, "default_host_rate": o.DefaultHostRate,
		"user_agent": o.UserAgent, "robots_token": o.RobotsToken, "ignore_robots": o.IgnoreRobots,
		"x_robots_tags": o.XRobotsTags, "retries": o.Retries, "timeout": o.Timeout.String(),
		"connect_timeout": o.ConnectTimeout.String(), "max_redirects": o.MaxRedirects,
		"max_bytes": o.MaxBytes, "max_pixels": o.MaxPixels, "max_candidates": o.MaxCandidates,
		"allow_private": o.AllowPrivate, "validate": o.Validate, "resize": o.Resize,
		"retry_failed": o.RetryFailed, "force": o.Force,
	}
	if len(o.HostRates) > 0 {
		p["host_rates"] = o.HostRates
	}
	if len(o.AllowNets) > 0 {
		nets := make([]string, len(o.AllowNets))
		for i, n := range o.AllowNets {
			nets[i] = n.String()
		}
		p["allow_nets"] = nets
	}
	if o.Resize > 0 {
		p["jpeg_quality"] = o.JPEGQuality
	}
	return p
}

// report finishes the stats: timings, the store's totals and
// failed.parquet.
func (r *runner) report(s *Stats, started time.Time) error {
	fin := time.Now()
	s.Finished = fin.UTC().Format(time.RFC3339)
	s.Seconds = fin.Sub(started).Seconds()
	if s.Seconds > 0 {
		s.PerSecond = float64(s.Done) / s.Seconds
		s.StoredPerSecond = float64(s.OK) / s.Seconds
	}
	st, err := r.st.Stats()
	if err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	s.StoreStats = st
	n, err := writeFailed(r.o.FailedPath(), r.st)
	if err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	s.FailedRows = n
	return nil
}

// FailedSchema is the schema of failed.parquet.
var FailedSchema = arrow.NewSchema([]arrow.Field{
	{Name: "item_id", Type: arrow.BinaryTypes.String},
	{Name: "url", Type: arrow.BinaryTypes.String},
	{Name: "status", Type: arrow.BinaryTypes.String},
	{Name: "error_class", Type: arrow.BinaryTypes.String},
	{Name: "error", Type: arrow.BinaryTypes.String},
	{Name: "http_status", Type: arrow.PrimitiveTypes.Int32},
	{Name: "attempts", Type: arrow.PrimitiveTypes.Int32},
	{Name: "time", Type: arrow.BinaryTypes.String},
}, nil)

// writeFailed writes every ledger entry of st that is not ok (failed or
// skipped, with why) to path, atomically, and returns the row count. The
// url is the item's URL (its source file for --from-dir).
func writeFailed(path string, st *imagestore.Store) (int, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, FailedSchema)
	defer b.Release()
	id := b.Field(0).(*array.StringBuilder)
	u := b.Field(1).(*array.StringBuilder)
	status := b.Field(2).(*array.StringBuilder)
	class := b.Field(3).(*array.StringBuilder)
	msg := b.Field(4).(*array.StringBuilder)
	code := b.Field(5).(*array.Int32Builder)
	att := b.Field(6).(*array.Int32Builder)
	tm := b.Field(7).(*array.StringBuilder)
	n := 0
	err := st.LedgerScan(func(key string, e imagestore.LedgerEntry) error {
		if e.Status == imagestore.StatusOK || e.Status == imagestore.StatusDuplicate {
			return nil
		}
		n++
		id.Append(key)
		if e.URL != "" {
			u.Append(e.URL)
		} else {
			u.Append(e.Source)
		}
		status.Append(e.Status)
		class.Append(e.ErrorClass)
		msg.Append(e.Error)
		code.Append(int32(e.HTTPStatus))
		att.Append(int32(e.Attempts))
		tm.Append(e.Time)
		return nil
	})
	if err != nil {
		return 0, err
	}
	done := false
	err = store.WriteParquet(path, FailedSchema, nil, func() (arrow.RecordBatch, error) {
		if done {
			return nil, nil
		}
		done = true
		return b.NewRecordBatch(), nil
	})
	return n, err
}

package crawl

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mmpipe/mmpipe/store"
)

// Validation modes.
const (
	ValidateStructural = "structural"
	ValidateDecode     = "decode"
)

// Defaults of Options.
const (
	DefaultConcurrency     = 64
	DefaultHostRate        = 4.0 // requests per second per host
	DefaultRobotsToken     = "mmpipe"
	DefaultRetries         = 3
	DefaultBackoffBase     = time.Second
	DefaultBackoffMax      = 30 * time.Second
	DefaultTimeout         = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	DefaultMaxRedirects    = 5
	DefaultMaxRetryAfter   = 2 * time.Minute
	DefaultMaxCrawlDelay   = time.Minute
	DefaultMaxBytes        = 20 << 20
	DefaultMaxPixels       = 89_478_485 // PIL's Image.MAX_IMAGE_PIXELS
	DefaultMaxCandidates   = 3
	DefaultJPEGQuality     = 90
	DefaultBatchItems      = 512
	DefaultBatchBytes      = 16 << 20
	DefaultBatchInterval   = time.Second
	DefaultProgressEvery   = 10 * time.Second
	StatsFileName          = store.CrawlStatsFile
	FailedFileName         = store.CrawlFailedFile
	PartsDir               = store.PartsDir
	defaultUserAgentFormat = "mmpipe/%s (+https://github.com/mmpipe/mmpipe; image crawler for recommendation research; robots.txt token %q)"
)

// DefaultXRobotsTags are the X-Robots-Tag directives that forbid storing an
// image by default.
var DefaultXRobotsTags = []string{"noai", "noimageai"}

// Options configure Run. Zero fields take the defaults above.
type Options struct {
	// Dataset is the dataset directory. Its items.parquet gives the items
	// and their image URLs unless URLsFile or FromDir is set.
	Dataset string
	// OutDir receives images.lmdb, crawl_stats.json and failed.parquet
	// (default: the dataset directory; with a shard, PartDir(Dataset, i, n)).
	OutDir string
	// URLsFile is an `item_id,url` list (CSV, TSV or Parquet) to crawl
	// instead of the dataset's items.
	URLsFile string
	// FromDir builds the store from the image files of a folder, named
	// <item id>.<jpg|jpeg|png|gif|webp>, instead of fetching.
	FromDir string
	// Shard and Shards select a deterministic share of the items (InShard);
	// Shards <= 1 crawls everything.
	Shard, Shards int

	// Concurrency is the number of open HTTP requests (default 64).
	Concurrency int
	// Workers bounds the concurrent decodes and resizes (default GOMAXPROCS).
	Workers int
	// DefaultHostRate is the request rate per host in requests per second
	// (default 4; <= 0 or +Inf: unlimited).
	DefaultHostRate float64
	// HostRates overrides the rate for a host name and its subdomains ("*"
	// for every host); <= 0 or +Inf: unlimited.
	HostRates map[string]float64
	// UserAgent is the User-Agent header (default names mmpipe and the
	// robots token).
	UserAgent string
	// RobotsToken is the product token matched against robots.txt groups
	// and "name:" X-Robots-Tag prefixes (default "mmpipe").
	RobotsToken string
	// IgnoreRobots skips robots.txt (for servers you own).
	IgnoreRobots bool
	// XRobotsTags are the X-Robots-Tag directives that make an image
	// skipped (default noai, noimageai). The header is checked before the
	// body is read.
	XRobotsTags []string
	// Retries is the number of retries of a transient failure (default 3;
	// negative: none).
	Retries int
	// BackoffBase and BackoffMax shape the exponential back-off between
	// retries (defaults 1 s and 30 s; each wait is jittered).
	BackoffBase, BackoffMax time.Duration
	// Timeout bounds one attempt (connect, redirects, headers, body;
	// default 30 s). ConnectTimeout bounds a TCP or TLS handshake (10 s).
	Timeout, ConnectTimeout time.Duration
	// MaxRedirects is the longest redirect chain followed (default 5).
	MaxRedirects int
	// MaxRetryAfter caps the Retry-After the crawler waits for (default
	// 2 min); a longer one fails the item (retry later with RetryFailed).
	MaxRetryAfter time.Duration
	// MaxCrawlDelay is the longest robots.txt Crawl-delay honoured
	// (default 1 min); hosts asking for more are not crawled.
	MaxCrawlDelay time.Duration
	// MaxBytes is the largest body accepted (default 20 MiB).
	MaxBytes int64
	// MaxPixels is the largest width × height accepted, checked from the
	// header before any decoding (default 89,478,485 as in PIL; < 0: none).
	MaxPixels int64
	// MaxCandidates is how many of an item's URLs are tried, in order,
	// until one gives a valid image (default 3).
	MaxCandidates int
	// AllowPrivate permits loopback, private, link-local and other
	// non-public addresses (tests, intranets).
	AllowPrivate bool
	// AllowNets permits these networks even when AllowPrivate is off.
	AllowNets []netip.Prefix

	// Validate is ValidateStructural (default) or ValidateDecode.
	Validate string
	// Resize, when > 0, scales images whose longer side exceeds it down to
	// it and stores them as JPEG of JPEGQuality (default 90); smaller
	// images keep their original bytes.
	Resize      int
	JPEGQuality int

	// RetryFailed fetches the items whose ledger says failed or skipped by
	// a policy (robots, noai) again; by default a re-run fetches only items
	// without a ledger entry.
	RetryFailed bool
	// Force fetches every item again. An item stored before keeps its image
	// when the new fetch fails.
	Force bool

	// BatchItems, BatchBytes and BatchInterval bound a write transaction
	// (defaults 512 items, 16 MiB, 1 s): a kill loses at most one batch.
	BatchItems    int
	BatchBytes    int64
	BatchInterval time.Duration
	// NoSync skips the fsync per transaction (a machine crash may lose
	// committed batches; a process kill does not).
	NoSync bool

	// Logger receives the log (default slog.Default()).
	Logger *slog.Logger
	// Progress, when set, is called every ProgressInterval (default 10 s)
	// and once at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Version is recorded in the stats.
	Version string
}

// PartDir is the output directory of shard i of n of a dataset:
// <dataset>/parts/crawl-<i>-of-<n>; the dataset directory itself when n <= 1.
func PartDir(dataset string, shard, shards int) string {
	if shards <= 1 {
		return dataset
	}
	w := len(strconv.Itoa(shards - 1))
	return filepath.Join(dataset, PartsDir, fmt.Sprintf("crawl-%0*d-of-%d", w, shard, shards))
}

// outDir is where this run's outputs go.
func (o *Options) outDir() string {
	if o.OutDir != "" {
		return o.OutDir
	}
	return PartDir(o.Dataset, o.Shard, o.Shards)
}

// StoreDir is the image store this run writes.
func (o *Options) StoreDir() string { return filepath.Join(o.outDir(), store.ImagesDir) }

// StatsPath is the stats JSON this run writes.
func (o *Options) StatsPath() string { return filepath.Join(o.outDir(), StatsFileName) }

// FailedPath is the failure list this run writes.
func (o *Options) FailedPath() string { return filepath.Join(o.outDir(), FailedFileName) }

// fill sets defaults and checks the options; errors are *BadInputError.
func (o *Options) fill() error {
	if o.Dataset == "" {
		return badInput("crawl: no dataset directory")
	}
	if o.URLsFile != "" && o.FromDir != "" {
		return badInput("crawl: give --urls or --from-dir, not both")
	}
	if o.Shards < 0 || (o.Shards > 1 && (o.Shard < 0 || o.Shard >= o.Shards)) {
		return badInput("crawl: shard %d/%d: want 0 <= i < n", o.Shard, o.Shards)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.DefaultHostRate == 0 {
		o.DefaultHostRate = DefaultHostRate
	}
	if o.RobotsToken == "" {
		o.RobotsToken = DefaultRobotsToken
	}
	if strings.ContainsAny(o.RobotsToken, " \t/:") {
		return badInput("crawl: robots token %q: want one word (letters, digits, '-', '_')", o.RobotsToken)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.UserAgent == "" {
		o.UserAgent = fmt.Sprintf(defaultUserAgentFormat, o.Version, o.RobotsToken)
	}
	if o.XRobotsTags == nil {
		o.XRobotsTags = DefaultXRobotsTags
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	if o.MaxRedirects < 0 {
		o.MaxRedirects = 0
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.MaxCrawlDelay <= 0 {
		o.MaxCrawlDelay = DefaultMaxCrawlDelay
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxPixels == 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.MaxCandidates <= 0 {
		o.MaxCandidates = DefaultMaxCandidates
	}
	switch o.Validate {
	case "":
		o.Validate = ValidateStructural
	case ValidateStructural, ValidateDecode:
	default:
		return badInput("crawl: --validate %q: want structural or decode", o.Validate)
	}
	if o.Resize < 0 {
		return badInput("crawl: --resize %d: want a positive maximum side", o.Resize)
	}
	if o.JPEGQuality == 0 {
		o.JPEGQuality = DefaultJPEGQuality
	}
	if o.JPEGQuality < 1 || o.JPEGQuality > 100 {
		return badInput("crawl: --jpeg-quality %d: want 1..100", o.JPEGQuality)
	}
	if o.BatchItems <= 0 {
		o.BatchItems = DefaultBatchItems
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = DefaultBatchInterval
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressEvery
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// ParseHostRate parses a --host-rate value HOST=N: N requests per second
// for HOST and its subdomains ("*" for all hosts); N = 0, "inf" or
// "unlimited" removes the limit.
func ParseHostRate(s string) (string, float64, error) {
	host, val, ok := strings.Cut(s, "=")
	host = strings.ToLower(strings.TrimSpace(host))
	val = strings.ToLower(strings.TrimSpace(val))
	if !ok || host == "" || val == "" {
		return "", 0, fmt.Errorf("host rate %q: want HOST=N (requests per second)", s)
	}
	switch val {
	case "inf", "unlimited", "0":
		return host, -1, nil
	}
	r, err := strconv.ParseFloat(val, 64)
	if err != nil || r < 0 {
		return "", 0, fmt.Errorf("host rate %q: N must be a non-negative number of requests per second", s)
	}
	return host, r, nil
}

// ParseShard parses --shard i/n (i counted from 0).
func ParseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("shard %q: want i/n with 0 <= i < n", s)
	}
	return i, n, nil
}

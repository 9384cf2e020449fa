package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/pipeline/crawl"
	"github.com/mmpipe/mmpipe/store"
)

func (a *app) crawlCommand() *cobra.Command {
	var (
		o          crawl.Options
		hostRates  []string
		allowNets  []string
		shard      string
		maxBytes   string
		progress   string
		noXRobots  bool
		xRobotsTag []string
	)
	cmd := &cobra.Command{
		Use:   "crawl --dataset DATASET [--urls FILE | --from-dir DIR] [options]",
		Short: "Fetch every item's image into the dataset's LMDB image store, politely and resumably",
		Long: `Fetch every item's image (the image URLs of items.parquet, or an item_id,url list) into
<dataset>/images.lmdb: key = raw item id, value = the image bytes (JPEG, PNG, GIF, WebP as fetched, or a
resized JPEG with --resize), plus one ledger entry per item (url, final url, HTTP status, error class, bytes,
sha256, width, height, content type, attempts, time). With --from-dir the store is built from a folder of
files named <item id>.<jpg|jpeg|png|gif|webp> instead.

Politeness: robots.txt per origin (--robots-token, Crawl-delay), a token bucket per host (--host-rate),
Retry-After on 429/503, X-Robots-Tag noai/noimageai (checked before the body is read). Retries with
exponential back-off and jitter for time-outs, resets and 5xx only. Safety: only http/https; loopback,
private, link-local and multicast addresses are refused after DNS and on every redirect unless
--allow-private or --allow-net. Validation: structural by default (signature, size from the header, pixel
limit, the file walked to its end marker); --validate decode also decodes the image data (JPEG: every block
entropy-decoded by a validating decoder, no pixels built; other formats: a full decode).

Resumable: a re-run fetches only items without a ledger entry (or whose URL changed since they were
stored); --retry-failed also retries failed and
policy-skipped ones; --force refetches everything (keeping stored images whose refetch fails). SIGINT or
SIGTERM commits what is finished and exits with code 3; kill -9 loses at most one uncommitted batch.

Sharding: --shard i/n takes the items whose FNV-1a 64-bit hash of the raw id is i modulo n, and writes
<dataset>/parts/crawl-<i>-of-<n>/{images.lmdb,crawl_stats.json,failed.parquet} (or --out DIR), one
part per shard, for a later merge.

Outputs: crawl_stats.json and failed.parquet (item_id, url, status, error_class, error, http_status,
attempts, time) next to the store; --result-file gets the same statistics.`,
		Example: `  mmpipe crawl --dataset data/baby --host-rate images-amazon.com=50 --host-rate m.media-amazon.com=50
  mmpipe crawl --dataset data/baby --retry-failed
  mmpipe crawl --dataset data/baby --urls urls.csv --resize 256 --jpeg-quality 90
  mmpipe crawl --dataset data/bili --from-dir raw/bilibili/images
  mmpipe crawl --dataset data/baby --shard 3/16 --out /scratch/part3`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.Dataset != "" && o.Dataset != args[0] {
					return usagef("give the dataset once: --dataset %s or %s", o.Dataset, args[0])
				}
				o.Dataset = args[0]
			}
			if o.Dataset == "" {
				return usagef("--dataset is required")
			}
			if shard != "" {
				i, n, err := crawl.ParseShard(shard)
				if err != nil {
					return usagef("--shard: %v", err)
				}
				o.Shard, o.Shards = i, n
			}
			o.HostRates = map[string]float64{}
			for _, s := range hostRates {
				h, r, err := crawl.ParseHostRate(s)
				if err != nil {
					return usagef("--host-rate: %v", err)
				}
				o.HostRates[h] = r
			}
			for _, s := range allowNets {
				p, err := parseNet(s)
				if err != nil {
					return usagef("--allow-net %q: %v", s, err)
				}
				o.AllowNets = append(o.AllowNets, p)
			}
			if maxBytes != "" {
				n, err := parseBytes(maxBytes)
				if err != nil {
					return usagef("--max-bytes: %v", err)
				}
				o.MaxBytes = n
			}
			switch {
			case noXRobots:
				o.XRobotsTags = []string{}
			case len(xRobotsTag) > 0:
				o.XRobotsTags = xRobotsTag
			}
			if o.Retries == 0 {
				o.Retries = -1 // the package reads 0 as "default"
			}
			if o.MaxRedirects == 0 {
				o.MaxRedirects = -1
			}
			o.Version = version
			o.Logger = a.log
			mode, err := progressMode(progress, a.stderr)
			if err != nil {
				return err
			}
			var bar *progressBar
			switch mode {
			case "bar":
				bar = &progressBar{w: a.stderr}
				o.Progress = bar.update
				o.ProgressInterval = 250 * time.Millisecond
				// Log lines would tear the bar: keep only warnings and errors.
				o.Logger = slog.New(slog.NewTextHandler(&barWriter{bar: bar}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			case "log":
				jl := slog.New(slog.NewJSONHandler(a.stderr, nil))
				o.Progress = func(p crawl.Progress) {
					if p.Final {
						return
					}
					jl.Info("crawl progress", "total", p.Total, "done", p.Done, "ok", p.OK, "failed", p.Failed,
						"skipped", p.Skipped, "duplicates", p.Duplicates, "per_second", round1(p.PerSecond),
						"eta_seconds", etaSeconds(p.ETA), "bytes_downloaded", p.Bytes, "requests", p.Requests, "errors", p.Errors)
				}
			}
			stats, err := crawl.Run(cmd.Context(), o)
			if bar != nil {
				bar.finish()
			}
			if errors.Is(err, store.ErrBadInput) {
				return err // exit code 2, before any stats
			}
			if stats != nil {
				printCrawlStats(a.stdout, stats)
			}
			if err != nil {
				return err
			}
			fields := map[string]any{}
			if b, jerr := json.Marshal(stats); jerr == nil {
				_ = json.Unmarshal(b, &fields)
			}
			delete(fields, "skipped")
			return a.writeResult("crawl", stats.Skipped, fields)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dataset, "dataset", "", "dataset directory (its items.parquet gives the image URLs)")
	f.StringVar(&o.URLsFile, "urls", "", "item_id,url list to crawl instead of the dataset's items (CSV, TSV or Parquet)")
	f.StringVar(&o.FromDir, "from-dir", "", "build the store from a folder of <item id>.<jpg|png|gif|webp> files")
	f.StringVar(&o.OutDir, "out", "", "directory for images.lmdb, crawl_stats.json, failed.parquet (default: the dataset, or its parts/crawl-i-of-n with --shard)")
	f.StringVar(&shard, "shard", "", "crawl shard i of n (i from 0): items whose FNV-1a hash of the raw id is i mod n")
	f.IntVar(&o.Concurrency, "concurrency", crawl.DefaultConcurrency, "open HTTP requests at once")
	f.IntVar(&o.Workers, "workers", 0, "concurrent decodes/resizes (default: the number of cores)")
	f.StringArrayVar(&hostRates, "host-rate", nil, "HOST=N: N requests/s for HOST and its subdomains; '*=N' for all; N=0 or inf: unlimited (repeatable; default 4/s per host)")
	f.StringVar(&o.UserAgent, "user-agent", "", "User-Agent header (default: mmpipe/<version> with a contact URL and the robots token)")
	f.StringVar(&o.RobotsToken, "robots-token", crawl.DefaultRobotsToken, "product token matched against robots.txt User-agent groups and X-Robots-Tag prefixes")
	f.BoolVar(&o.IgnoreRobots, "ignore-robots", false, "do not fetch or honour robots.txt (only for servers you own)")
	f.StringArrayVar(&xRobotsTag, "x-robots-tag", nil, "X-Robots-Tag directive that makes an image skipped (repeatable; default noai and noimageai)")
	f.BoolVar(&noXRobots, "no-x-robots-tag", false, "store images whatever their X-Robots-Tag says")
	f.IntVar(&o.Retries, "retries", crawl.DefaultRetries, "retries of a transient failure (time-out, reset, 5xx, 429); 0: none")
	f.DurationVar(&o.Timeout, "timeout", crawl.DefaultTimeout, "time limit of one attempt (connect, redirects, headers and body)")
	f.DurationVar(&o.ConnectTimeout, "connect-timeout", crawl.DefaultConnectTimeout, "time limit of a TCP connect or TLS handshake")
	f.IntVar(&o.MaxRedirects, "max-redirects", crawl.DefaultMaxRedirects, "longest redirect chain followed")
	f.DurationVar(&o.MaxRetryAfter, "max-retry-after", crawl.DefaultMaxRetryAfter, "longest Retry-After waited for; longer ones fail the item")
	f.DurationVar(&o.MaxCrawlDelay, "max-crawl-delay", crawl.DefaultMaxCrawlDelay, "longest robots.txt Crawl-delay honoured; hosts asking more are not crawled")
	f.StringVar(&maxBytes, "max-bytes", "20MiB", "largest image accepted (bytes, or with KB/MB/KiB/MiB/GiB)")
	f.Int64Var(&o.MaxPixels, "max-pixels", crawl.DefaultMaxPixels, "largest width×height accepted, from the header, before decoding (-1: no limit)")
	f.IntVar(&o.MaxCandidates, "max-urls", crawl.DefaultMaxCandidates, "URLs of an item tried in order until one gives a valid image")
	f.BoolVar(&o.AllowPrivate, "allow-private", false, "allow loopback, private, link-local and other non-public addresses (tests, intranets)")
	f.StringArrayVar(&allowNets, "allow-net", nil, "allow this address or CIDR network even if it is not public (repeatable)")
	f.StringVar(&o.Validate, "validate", crawl.ValidateStructural, "structural (signature, header size, end marker, pixel limit) or decode (also decodes the image data: every JPEG block is entropy-decoded, PNG/GIF/WebP fully decoded)")
	f.IntVar(&o.Resize, "resize", 0, "scale images whose longer side exceeds N down to N and store them as JPEG (0: store as fetched)")
	f.IntVar(&o.JPEGQuality, "jpeg-quality", crawl.DefaultJPEGQuality, "JPEG quality of resized images")
	f.BoolVar(&o.RetryFailed, "retry-failed", false, "also fetch items whose ledger says failed or skipped by robots/noai")
	f.BoolVar(&o.Force, "force", false, "fetch every item again")
	f.IntVar(&o.BatchItems, "batch-size", crawl.DefaultBatchItems, "items per LMDB write transaction (a kill loses at most one)")
	f.BoolVar(&o.NoSync, "no-sync", false, "skip the fsync per transaction (faster; a machine crash may lose recent batches)")
	f.StringVar(&progress, "progress", "auto", "progress output: auto (bar on a terminal, JSON log lines otherwise), bar, log, none")
	f.DurationVar(&o.ProgressInterval, "progress-interval", crawl.DefaultProgressEvery, "interval of the JSON progress lines")
	return cmd
}

// parseNet parses an address or CIDR network.
func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseBytes parses a size: a number with an optional unit (B, KB, MB, GB
// powers of 1000; KiB, MiB, GiB powers of 1024).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}}
	mult := int64(1)
	low := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(low, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: want a positive size such as 20MiB", s)
	}
	return int64(v * float64(mult)), nil
}

// progressMode resolves --progress auto: a bar when stderr is a terminal.
func progressMode(p string, w io.Writer) (string, error) {
	switch p {
	case "bar", "log", "none":
		return p, nil
	case "auto":
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return "bar", nil
			}
		}
		return "log", nil
	}
	return "", usagef("--progress %q: want auto, bar, log or none", p)
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

func etaSeconds(d time.Duration) any {
	if d < 0 {
		return nil
	}
	return int64(d.Seconds() + 0.5)
}

// progressBar draws one status line on a terminal: a bar, counts, rate,
// ETA and the most frequent failure classes.
type progressBar struct {
	w    io.Writer
	last string
}

func (b *progressBar) update(p crawl.Progress) {
	const width = 24
	frac := 1.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	fill := int(frac * width)
	eta := "?"
	if p.ETA >= 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	line := fmt.Sprintf("[%s%s] %d/%d %5.1f%% %.0f/s ETA %s  ok %d  failed %d  skipped %d%s",
		strings.Repeat("#", fill), strings.Repeat("-", width-fill), p.Done, p.Total, 100*frac, p.PerSecond, eta,
		p.OK, p.Failed, p.Skipped, topClasses(p.Errors, 3))
	b.last = line
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

// finish ends the bar's line.
func (b *progressBar) finish() {
	if b.last != "" {
		fmt.Fprintln(b.w)
		b.last = ""
	}
}

// barWriter prints log lines above the progress bar.
type barWriter struct{ bar *progressBar }

func (bw *barWriter) Write(p []byte) (int, error) {
	fmt.Fprintf(bw.bar.w, "\r\033[K%s", p)
	if bw.bar.last != "" {
		fmt.Fprintf(bw.bar.w, "%s", bw.bar.last)
	}
	return len(p), nil
}

// topClasses formats the n largest counts: " (http_404 12, timeout 3)".
func topClasses(m map[string]int, n int) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, n)
	for i, k := range keys {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// printCrawlStats prints the summary of a run.
func printCrawlStats(w io.Writer, s *crawl.Stats) {
	if s.Skipped {
		fmt.Fprintf(w, "skipped: every one of the %d items is done in %s (--retry-failed retries failures, --force everything)\n", s.Items, s.Store)
	} else {
		fmt.Fprintf(w, "crawl: %d items to fetch (%d already done, %d without URL): %d stored, %d failed, %d skipped, %d duplicates, %d resized in %.1fs (%.0f images/s)\n",
			s.ToFetch, s.AlreadyDone, s.NoURL, s.OK, s.Failed, s.SkippedItems, s.Duplicates, s.Resized, s.Seconds, s.StoredPerSecond)
		if len(s.Errors) > 0 {
			fmt.Fprintf(w, "failures and skips by class: %s\n", strings.TrimSuffix(strings.TrimPrefix(topClasses(s.Errors, 12), " ("), ")"))
		}
		if s.Interrupted {
			fmt.Fprintf(w, "interrupted: %d items not finished; re-run the same command to resume\n", s.NotFinished)
		}
	}
	ledger := make([]string, 0, len(s.StoreStats.Ledger))
	for _, k := range slices.Sorted(maps.Keys(s.StoreStats.Ledger)) {
		ledger = append(ledger, fmt.Sprintf("%s %d", k, s.StoreStats.Ledger[k]))
	}
	fmt.Fprintf(w, "store %s: %d images, %.1f MB; ledger: %s\n", s.Store, s.StoreStats.Images, float64(s.StoreStats.Bytes)/1e6, strings.Join(ledger, ", "))
	fmt.Fprintf(w, "stats: %s; failures: %s (%d rows)\n", s.StatsFile, s.FailedFile, s.FailedRows)
}

// demoImageServer serves the demo's generated images over HTTP on a random
// port of 127.0.0.1, so that the demo's crawl step fetches them as it would
// fetch a CDN.
type demoImageServer struct {
	srv     *http.Server
	BaseURL string // http://127.0.0.1:PORT/img/
}

// startDemoImageServer serves the files of dir (which may not exist yet)
// under /img/.
func startDemoImageServer(dir string) (*demoImageServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo image server: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/img/", http.StripPrefix("/img/", http.FileServer(http.Dir(dir))))
	s := &demoImageServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, BaseURL: "http://" + l.Addr().String() + "/img/"}
	go s.srv.Serve(l)
	return s, nil
}

// Close stops the server.
func (s *demoImageServer) Close() { s.srv.Close() }

// demoCrawl is the demo's crawl step: it fetches every item's image from
// the local server into <ds>/images.lmdb and prints the crawl's statistics.
func (a *app) demoCrawl(ctx context.Context, ds string) (*crawl.Stats, error) {
	stats, err := crawl.Run(ctx, crawl.Options{
		Dataset:      ds,
		AllowPrivate: true,                                // the server is on 127.0.0.1
		HostRates:    map[string]float64{"127.0.0.1": -1}, // our own server: no rate limit
		Concurrency:  16,
		Version:      version,
		Logger:       a.log,
	})
	if stats != nil {
		printCrawlStats(a.stdout, stats)
	}
	return stats, err
}

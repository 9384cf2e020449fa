// Command gen writes synthetic raw datasets for benchmarks and demos:
//
//	go run ./bench/gen ratings --rows 10000000 --out ratings.csv[.gz]
//	go run ./bench/gen demo --out DIR
//
// "ratings" streams an Amazon 2018 ratings-only CSV (item,user,rating,
// timestamp), gzip-compressed when the output path ends in .gz; "-" writes to
// standard output. "demo" writes the small multi-modal Amazon 2018 demo
// dataset (reviews, metadata, images, hidden categories). Both report what
// they wrote and how fast on standard error.
//
// Exit codes: 0 done, 1 internal error, 2 bad usage, 3 interrupted.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mmpipe/mmpipe/pipeline/synth"
)

// Exit codes, as in the mmpipe CLI.
const (
	exitOK          = 0
	exitInternal    = 1
	exitUsage       = 2
	exitInterrupted = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks errors caused by bad arguments.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: gen ratings --rows N --out FILE | gen demo --out DIR  (-h for flags)")
		return exitUsage
	}
	var err error
	switch args[0] {
	case "ratings":
		err = runRatings(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stderr)
	default:
		err = usageError{fmt.Sprintf("unknown subcommand %q (want ratings or demo)", args[0])}
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "gen:", err)
		return exitUsage
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintln(stderr, "gen: interrupted:", err)
		return exitInterrupted
	default:
		fmt.Fprintln(stderr, "gen:", err)
		return exitInternal
	}
}

// parseFlags parses args into fs, turning parse failures into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments: %q", fs.Args())}
	}
	return nil
}

// runRatings implements "gen ratings".
func runRatings(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("gen ratings", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg synth.RatingsConfig
	fs.Int64Var(&cfg.Rows, "rows", synth.DefaultRatingsRows, "number of rows")
	fs.IntVar(&cfg.Users, "users", synth.DefaultRatingsUsers, "number of distinct users")
	fs.IntVar(&cfg.Items, "items", synth.DefaultRatingsItems, "number of distinct items")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", synth.DefaultRatingsZipfS, "Zipf exponent of item popularity (> 1)")
	fs.Float64Var(&cfg.ZipfV, "zipf-v", synth.DefaultRatingsZipfV, "Zipf offset of item popularity (>= 1; larger flattens the head)")
	fs.Float64Var(&cfg.UserSkew, "user-skew", synth.DefaultRatingsUserSkew, "user activity skew (1 = uniform)")
	fs.IntVar(&cfg.Workers, "workers", 0, "generating goroutines (0 = GOMAXPROCS)")
	out := fs.String("out", "", `output file ("-" = stdout; .gz = gzip)`)
	level := fs.Int("gzip-level", gzip.BestSpeed, "gzip level for .gz outputs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *out == "":
		return usageError{"ratings: --out is required"}
	case cfg.Rows <= 0 || cfg.Users <= 0 || cfg.Items <= 0:
		return usageError{"ratings: --rows, --users and --items must be positive"}
	case *level < gzip.HuffmanOnly || *level > gzip.BestCompression:
		return usageError{fmt.Sprintf("ratings: --gzip-level %d out of range", *level)}
	}

	var dst io.Writer = stdout
	var closeFile func() error
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("ratings: %w", err)
		}
		dst, closeFile = f, f.Close
	}
	counter := &countingWriter{w: dst}
	bw := bufio.NewWriterSize(counter, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if strings.HasSuffix(*out, ".gz") {
		zw, err = gzip.NewWriterLevel(bw, *level)
		if err != nil {
			return usageError{fmt.Sprintf("ratings: %v", err)}
		}
		w = zw
	}

	start := time.Now()
	err = synth.RatingsCSV(ctx, w, cfg)
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if closeFile != nil {
		if cerr := closeFile(); err == nil && cerr != nil {
			err = fmt.Errorf("ratings: close %s: %w", *out, cerr)
		}
		if err != nil {
			_ = os.Remove(*out) // a truncated CSV is of no use
		}
	}
	if errors.Is(err, synth.ErrInvalidConfig) {
		return usageError{err.Error()}
	}
	if err != nil {
		return fmt.Errorf("ratings: %w", err)
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "ratings: %d rows, %d bytes to %s in %.2fs (%.2f M rows/s)\n",
		cfg.Rows, counter.n, *out, secs, float64(cfg.Rows)/secs/1e6)
	return nil
}

// runDemo implements "gen demo".
func runDemo(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg synth.DemoConfig
	out := fs.String("out", "", "output directory")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	fs.StringVar(&cfg.Category, "category", synth.DefaultDemoCategory, "category name used in the file names")
	fs.IntVar(&cfg.Users, "users", synth.DefaultDemoUsers, "number of users")
	fs.IntVar(&cfg.Items, "items", synth.DefaultDemoItems, "number of items")
	fs.IntVar(&cfg.Categories, "categories", synth.DefaultDemoCategories, "number of hidden categories")
	fs.Float64Var(&cfg.MeanInteractions, "mean-interactions", synth.DefaultDemoMeanInteraction, "mean reviews per user (>= 5)")
	fs.Float64Var(&cfg.InCategoryShare, "in-category", synth.DefaultDemoInCategoryShare, "share of reviews in a user's preferred categories")
	fs.StringVar(&cfg.ImageBaseURL, "image-base-url", synth.DefaultImageBaseURL, "URL prefix of the image files in the metadata")
	fs.IntVar(&cfg.Workers, "workers", 0, "image drawing goroutines (0 = GOMAXPROCS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *out == "":
		return usageError{"demo: --out is required"}
	case cfg.Users <= 0 || cfg.Items <= 0 || cfg.Categories <= 0:
		return usageError{"demo: --users, --items and --categories must be positive"}
	}
	start := time.Now()
	info, err := synth.Amazon2018Demo(ctx, *out, cfg)
	if err != nil {
		if errors.Is(err, synth.ErrInvalidConfig) {
			return usageError{err.Error()}
		}
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(stderr, "demo: %d users, %d items, %d reviews (%d duplicate lines), %d images in %s in %.2fs\n",
		info.Users, info.Items, info.Reviews, info.Duplicates, len(info.ImageFiles), info.Dir, time.Since(start).Seconds())
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

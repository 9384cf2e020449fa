package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/export"
	"github.com/mmpipe/mmpipe/pipeline/ingest"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train/gx"
)

// app holds the global flags and the writers of one invocation.
type app struct {
	logFormat  string
	logLevel   string
	resultFile string
	cpuProfile string
	stopProf   func()
	stdout     io.Writer
	stderr     io.Writer
	log        *slog.Logger
}

func newApp() *app { return &app{stdout: os.Stdout, stderr: os.Stderr} }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "mmpipe",
		Short:         "Multi-modal recommendation data from raw dumps to datasets, features and models",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.setupLogging(); err != nil {
				return err
			}
			return a.startProfile()
		},
		PersistentPostRun: func(cmd *cobra.Command, args []string) { a.stopProfile() },
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&a.resultFile, "result-file", "", "write a JSON summary of what the stage did to this path")
	pf.StringVar(&a.cpuProfile, "cpuprofile", "", "write a Go CPU profile to this path")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.ingestCommand(), a.splitCommand(), a.crawlCommand(), a.encodeCommand(), a.exportCommand(), a.inspectCommand(),
		a.demoCommand(), a.versionCommand(), a.trainCommand(), a.evalCommand(), a.recommendCommand(), a.verifyCommand(), a.mergeCommand())
	return root
}

func (a *app) setupLogging() error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch a.logFormat {
	case "text":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return usagef("--log-format %q: want text or json", a.logFormat)
	}
	slog.SetDefault(a.log)
	return nil
}

// writeResult writes the --result-file JSON.
func (a *app) writeResult(stage string, skipped bool, fields map[string]any) error {
	if a.resultFile == "" {
		return nil
	}
	out := map[string]any{"stage": stage, "skipped": skipped, "version": version, "finished": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		out[k] = v
	}
	return store.WriteJSONAtomic(a.resultFile, out)
}

func (a *app) ingestCommand() *cobra.Command {
	var o dataset.Options
	var minRating float64 = math.NaN()
	var minRatingSet string
	cmd := &cobra.Command{
		Use:   "ingest --format F --input PATH... --out DATASET",
		Short: "Read raw source files into a dataset directory",
		Long: "Read raw source files into a dataset directory (items, users, interactions, splits, imported features, manifest).\n\nFormats:\n" +
			formatList(),
		Example: "  mmpipe ingest --format mmrec --input ../shared/data/tiktok --out data/tiktok\n" +
			"  mmpipe ingest --format amazon2018 --input Baby.csv --input meta_Baby.json.gz --out data/baby --split loo --user-core 5 --item-core 5",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Inputs = append(o.Inputs, args...)
			if o.Format == "" {
				return usagef("--format is required (one of %s)", strings.Join(ingest.FormatNames(), ", "))
			}
			if minRatingSet != "" {
				if _, err := fmt.Sscan(minRatingSet, &minRating); err != nil {
					return usagef("--min-rating %q: %v", minRatingSet, err)
				}
			}
			o.MinRating = minRating
			o.Version = version
			o.Logger = a.log
			res, err := dataset.Ingest(cmd.Context(), o)
			if err != nil {
				return err
			}
			if !res.Skipped {
				printReport(a.stdout, res.Report)
			} else {
				fmt.Fprintf(a.stdout, "skipped: %s is complete for the same inputs and parameters (--force redoes it)\n", o.Out)
			}
			s := res.Summary
			if s == nil {
				if s, err = dataset.Summarize(cmd.Context(), o.Out); err != nil {
					return err
				}
			}
			s.Print(a.stdout)
			return a.writeResult("ingest", res.Skipped, map[string]any{"dataset": o.Out, "summary": s})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Format, "format", "", "source format: "+strings.Join(ingest.FormatNames(), ", "))
	f.StringArrayVar(&o.Inputs, "input", nil, "input file or folder (repeatable; trailing paths are inputs too)")
	f.StringVar(&o.Out, "out", "", "dataset directory to write")
	f.Int64Var(&o.Ingest.MaxBadLines, "max-bad-lines", 0, "skip and count up to N malformed lines instead of failing on the first")
	f.IntVar(&o.Ingest.FeatDim, "feat-dim", 0, "width of headerless .feat*CLS feature files (recbole)")
	f.StringVar(&minRatingSet, "min-rating", "", "implicit-feedback threshold: keep interactions rated at least this")
	f.IntVar(&o.UserCore, "user-core", 0, "iterative k-core: keep users with at least N items")
	f.IntVar(&o.ItemCore, "item-core", 0, "iterative k-core: keep items with at least N users")
	addSplitFlags(f, &o.Splits)
	f.BoolVar(&o.Force, "force", false, "redo even if the dataset is complete for the same inputs and parameters")
	return cmd
}

func formatList() string {
	var b strings.Builder
	fs := ingest.Formats()
	for _, n := range ingest.FormatNames() {
		fmt.Fprintf(&b, "  %-11s %s\n", n, fs[n].Describe())
	}
	return b.String()
}

type flagSet interface {
	StringArrayVar(p *[]string, name string, value []string, usage string)
	Uint64Var(p *uint64, name string, value uint64, usage string)
	IntVar(p *int, name string, value int, usage string)
	Float64Var(p *float64, name string, value float64, usage string)
}

func addSplitFlags(f flagSet, so *dataset.SplitOptions) {
	f.StringArrayVar(&so.Names, "split", nil, "split to make: given, random, loo, temporal, none (repeatable; default: given if the source has one, else random)")
	f.Uint64Var(&so.Seed, "seed", 2023, "seed of the random split")
	f.IntVar(&so.LOOMaxLen, "max-len", 0, "loo: keep each user's last N interactions (PMMRec: 23; 0 = all)")
	f.Float64Var(&so.TemporalValid, "valid-quantile", 0.8, "temporal: time quantile where validation starts")
	f.Float64Var(&so.TemporalTest, "test-quantile", 0.9, "temporal: time quantile where test starts")
}

func printReport(w io.Writer, r *ingest.Report) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "read %d lines from %d files; %d bad lines skipped; %d duplicate rows removed\n",
		r.Lines, len(r.Files), r.BadLines, r.DuplicateRows)
	fmt.Fprintf(w, "items without metadata: %d (kept), without text: %d, without image: %d, metadata-only items: %d\n",
		r.ItemsWithoutMeta, r.ItemsWithoutText, r.ItemsWithoutImage, r.MetaOnlyItems)
	for _, s := range r.Warnings {
		fmt.Fprintln(w, "warning:", s)
	}
	for _, s := range r.FirstBad {
		fmt.Fprintln(w, "skipped:", s)
	}
}

func (a *app) splitCommand() *cobra.Command {
	var so dataset.SplitOptions
	var force bool
	cmd := &cobra.Command{
		Use:   "split --split NAME [options] DATASET",
		Short: "Make (or remake) named splits of an ingested dataset",
		Example: "  mmpipe split --split loo data/tiktok\n" +
			"  mmpipe split --split random --seed 7 data/baby",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(so.Names) == 0 {
				return usagef("--split is required")
			}
			res, err := dataset.Resplit(cmd.Context(), args[0], so, force, a.log)
			if err != nil {
				return err
			}
			for _, n := range so.Names {
				si := res.Manifest.Splits[n]
				fmt.Fprintf(a.stdout, "%s: train %d, valid %d, test %d\n", n, si.Train, si.Valid, si.Test)
			}
			return a.writeResult("split", res.Skipped, map[string]any{"dataset": args[0], "splits": res.Manifest.Splits})
		},
	}
	addSplitFlags(cmd.Flags(), &so)
	cmd.Flags().BoolVar(&force, "force", false, "remake splits that already exist with the same parameters")
	return cmd
}

func (a *app) exportCommand() *cobra.Command {
	var o export.Options
	cmd := &cobra.Command{
		Use:   "export --format F --out DIR DATASET",
		Short: "Write a dataset in the layout of MMSSL, MMRec, RecBole/MISSRec, PMMRec, or plain Parquet",
		Example: "  mmpipe export --format mmssl --out out/tiktok-mmssl data/tiktok\n" +
			"  mmpipe export --format recbole --split loo --name Scientific --out out/sci data/sci",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dataset = args[0]
			if o.Format == "" || o.Out == "" {
				return usagef("--format and --out are required (formats: %s)", strings.Join(export.Formats(), ", "))
			}
			files, err := export.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(a.stdout, f)
			}
			return a.writeResult("export", false, map[string]any{"dataset": o.Dataset, "format": o.Format, "files": files})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Format, "format", "", "export format: "+strings.Join(export.Formats(), ", "))
	f.StringVar(&o.Out, "out", "", "output directory")
	f.StringVar(&o.Split, "split", "", "split to export (default: given, else the format's usual split)")
	f.StringVar(&o.Name, "name", "", "dataset name in file names (default: the dataset directory name)")
	f.StringArrayVar(&o.Features, "features", nil, "feature files of features/ to export (repeatable; default: all)")
	f.StringVar(&o.Fill, "fill", "mean", "missing feature rows in .npy exports: mean or zero")
	f.IntVar(&o.MaxHistory, "max-history", 50, "recbole: longest history per row")
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build time",
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(a.stdout, "mmpipe %s (commit %s, built %s, %s %s/%s)\n", version, commit, buildTime,
				runtime.Version(), runtime.GOOS, runtime.GOARCH)
			exp := "none"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "GOEXPERIMENT" && s.Value != "" {
						exp = s.Value
					}
				}
			}
			xla := "not compiled in (build with -tags xla)"
			if gx.XLALinked() {
				xla = "compiled in"
			}
			fmt.Fprintf(a.stdout, "trainer: GoMLX backend %q (%s), XLA backend %s, GOEXPERIMENT %s\n", gx.BackendConfig(), gx.EnvBackend, xla, exp)
			return nil
		},
	}
}

// mustJSON renders v as indented JSON.
func mustJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

func (a *app) startProfile() error {
	if a.cpuProfile == "" {
		return nil
	}
	f, err := os.Create(a.cpuProfile)
	if err != nil {
		return usagef("--cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	a.stopProf = func() { pprof.StopCPUProfile(); f.Close() }
	return nil
}

func (a *app) stopProfile() {
	if a.stopProf != nil {
		a.stopProf()
		a.stopProf = nil
	}
}

package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Files of a run directory.
const (
	RunInfoFile     = "run.json"
	ConfigFile      = "config.yaml"
	MetricsFile     = "metrics.jsonl"
	ReportFile      = "report.json"
	CurvesFile      = "curves.png"
	RecommendFile   = "recommendations.parquet"
	CheckpointsDir  = "checkpoints"
	LastCheckpoint  = "last.ckpt"
	BestCheckpoint  = "best.ckpt"
	RunInfoFormat   = "mmpipe-run/1"
	defaultLogEvery = 30 * time.Second
)

// UsageError is a mistake in how a run was asked for (an existing run
// directory without --resume, a changed config on resume, ...): exit code
// 2 in the CLI, like a ConfigError.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// InterruptedError reports a run stopped by its context at a batch
// boundary after writing a checkpoint; it wraps the context's error.
type InterruptedError struct {
	Epoch, Batch int
	Checkpoint   string
	Err          error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("training interrupted at epoch %d, batch %d; state saved in %s (--resume continues): %v",
		e.Epoch, e.Batch, e.Checkpoint, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// RunInfo is run.json: what a run directory holds.
type RunInfo struct {
	Format        string `json:"format"`
	Model         string `json:"model"`
	Dataset       string `json:"dataset"`
	Split         string `json:"split"`
	Protocol      string `json:"protocol"`
	IDMapSHA256   string `json:"idmap_sha256"`
	MmpipeVersion string `json:"mmpipe_version"`
	Created       string `json:"created"`
	// Init is the checkpoint a transfer run started from (--init), with its
	// SHA-256; absent for a run from scratch.
	Init       string `json:"init,omitempty"`
	InitSHA256 string `json:"init_sha256,omitempty"`
}

// Options of one training run.
type Options struct {
	// Dataset is the dataset directory, Split the split name ("" picks
	// DefaultSplit), Out the run directory.
	Dataset, Split, Out string
	// ConfigFile is a YAML file of config keys; Sets are key=value
	// overrides applied after it.
	ConfigFile string
	Sets       []string
	// Resume continues the run in Out from its last checkpoint.
	Resume bool
	// Init is a checkpoint of an earlier run (e.g. a pre-training run) the
	// model copies its transferable parameters from (--init); only models
	// whose Factory has Transfer set accept it. A resumed run reads it
	// again from run.json and checks its SHA-256.
	Init    string
	Version string
	Log     *slog.Logger
	// Progress receives a per-epoch progress bar (a terminal); when nil,
	// progress is logged every 30 seconds instead.
	Progress io.Writer
	// AfterBatch and AfterEpoch are called after every batch and every
	// completed epoch (tests use them to interrupt a run).
	AfterBatch func(epoch, batch int)
	AfterEpoch func(epoch int)
}

// Report is report.json (DESIGN.md, Contracts), plus a few extra keys.
type Report struct {
	Model        string             `json:"model"`
	Dataset      string             `json:"dataset"`
	Split        string             `json:"split"`
	Protocol     string             `json:"protocol"`
	Seed         uint64             `json:"seed"`
	BestEpoch    int                `json:"best_epoch"`
	EpochsRun    int                `json:"epochs_run"`
	Valid        map[string]float64 `json:"valid"`
	Test         map[string]float64 `json:"test"`
	EpochSeconds float64            `json:"epoch_seconds"`
	// EpochCPUSeconds is the median CPU time of an epoch's training.
	EpochCPUSeconds float64 `json:"epoch_cpu_seconds"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	Config          *Config `json:"config"`

	SelectMetric     string  `json:"select_metric"`
	StoppedEarly     bool    `json:"stopped_early"`
	ValidUsers       int     `json:"valid_users"`
	TestUsers        int     `json:"test_users"`
	TestSkippedUsers int     `json:"test_skipped_users"`
	EvalSeconds      float64 `json:"eval_seconds"`
	TrainSeconds     float64 `json:"train_seconds"`
	Threads          int     `json:"threads"`
	MmpipeVersion    string  `json:"mmpipe_version"`
	Finished         string  `json:"finished"`
	// Skipped is set (not written) when Run found the run complete.
	Skipped bool `json:"-"`
}

// ResolveConfig builds a run's configuration: the model's defaults, then
// the YAML file, then the --set overrides, then validation.
func ResolveConfig(f *Factory, file string, sets []string) (*Config, error) {
	cfg := f.DefaultConfig()
	if file != "" {
		if err := LoadConfigFile(cfg, file); err != nil {
			return nil, err
		}
	}
	for _, s := range sets {
		if err := Set(cfg, s); err != nil {
			return nil, err
		}
	}
	if err := cfg.Resolve(f.Protocol); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readRunConfig reads a run's config.yaml for factory f.
func readRunConfig(f *Factory, dir string) (*Config, error) {
	cfg := f.DefaultConfig()
	p := filepath.Join(dir, ConfigFile)
	if err := LoadConfigFile(cfg, p); err != nil {
		return nil, err
	}
	if err := cfg.Resolve(f.Protocol); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return cfg, nil
}

// readRunInfo reads run.json.
func readRunInfo(dir string) (*RunInfo, error) {
	p := filepath.Join(dir, RunInfoFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	var ri RunInfo
	if err := json.Unmarshal(b, &ri); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if ri.Format != RunInfoFormat {
		return nil, fmt.Errorf("read %s: format %q, want %q", p, ri.Format, RunInfoFormat)
	}
	return &ri, nil
}

// readReport reads a run's report.json, its config into f's types.
func readReport(dir string, f *Factory) (*Report, error) {
	p := filepath.Join(dir, ReportFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	r := &Report{Config: f.DefaultConfig()}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return r, nil
}

// Run trains a model end to end (or resumes it) and returns its report.
func Run(ctx context.Context, f *Factory, o Options) (*Report, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Out == "" {
		return nil, usagef("--out is required")
	}
	hasRun := fileExists(filepath.Join(o.Out, RunInfoFile))
	if hasRun && !o.Resume {
		return nil, usagef("%s already holds a run (%s): pass --resume to continue it, or choose another --out", o.Out, RunInfoFile)
	}
	if o.Init != "" && !f.Transfer {
		return nil, usagef("--init: model %s does not start from a checkpoint (models that do: those whose description says transfer)", f.Name)
	}
	var cfg *Config
	var err error
	var initSHA string
	if hasRun {
		ri, err := readRunInfo(o.Out)
		if err != nil {
			return nil, err
		}
		if ri.Model != f.Name {
			return nil, usagef("--resume: %s is a %s run, not %s", o.Out, ri.Model, f.Name)
		}
		if o.Init != "" && absPath(o.Init) != ri.Init {
			return nil, usagef("--resume: %s started from --init %q, not %q", o.Out, ri.Init, o.Init)
		}
		o.Init, initSHA = ri.Init, ri.InitSHA256
		if cfg, err = readRunConfig(f, o.Out); err != nil {
			return nil, err
		}
		if o.ConfigFile != "" || len(o.Sets) > 0 {
			given, err := ResolveConfig(f, o.ConfigFile, o.Sets)
			if err != nil {
				return nil, err
			}
			a, _ := cfg.YAML()
			b, _ := given.YAML()
			if !bytes.Equal(a, b) {
				return nil, usagef("--resume: the configuration given differs from %s; a run keeps its configuration (start a new --out to change it)",
					filepath.Join(o.Out, ConfigFile))
			}
		}
		if o.Dataset == "" {
			o.Dataset = ri.Dataset
		}
		if o.Split == "" {
			o.Split = ri.Split
		} else if o.Split != ri.Split {
			return nil, usagef("--resume: %s was trained on split %q, not %q", o.Out, ri.Split, o.Split)
		}
		// A complete run is skipped, but only for the configuration it was
		// trained with, on its split and dataset: other settings need
		// another --out. (An unfinished run checks the dataset by its item
		// id map below, so a moved dataset still resumes.)
		if fileExists(filepath.Join(o.Out, ReportFile)) {
			if absPath(o.Dataset) != absPath(ri.Dataset) {
				return nil, usagef("--resume: %s is complete and was trained on dataset %s, not %s", o.Out, ri.Dataset, o.Dataset)
			}
			rep, err := readReport(o.Out, f)
			if err != nil {
				return nil, err
			}
			rep.Skipped = true
			log.Info("run already complete; nothing to do", "run", o.Out, "report", filepath.Join(o.Out, ReportFile))
			return rep, nil
		}
	} else {
		if cfg, err = ResolveConfig(f, o.ConfigFile, o.Sets); err != nil {
			return nil, err
		}
	}
	if o.Dataset == "" {
		return nil, usagef("--dataset is required")
	}
	protocol := eval.Protocol(cfg.Protocol)
	data, err := LoadData(ctx, o.Dataset, o.Split, protocol)
	if err != nil {
		return nil, err
	}
	var initCk *Checkpoint
	if o.Init != "" {
		if initCk, err = ReadCheckpoint(o.Init); err != nil {
			return nil, fmt.Errorf("--init: %w", err)
		}
		if initSHA != "" && initCk.SHA256 != initSHA {
			return nil, usagef("--resume: the --init checkpoint %s changed since the run started (sha256 %s, was %s)", o.Init, initCk.SHA256, initSHA)
		}
		if initCk.Header.Model != f.Name {
			return nil, usagef("--init: %s is a %s checkpoint, not %s", o.Init, initCk.Header.Model, f.Name)
		}
	}
	if hasRun {
		ri, _ := readRunInfo(o.Out)
		if ri.IDMapSHA256 != data.Dataset.Manifest.IDMapSHA256 {
			return nil, usagef("--resume: dataset %s has a different item id map than the one %s was trained on", o.Dataset, o.Out)
		}
	} else {
		if err := initRunDir(o, f, cfg, data, initCk); err != nil {
			return nil, err
		}
	}
	t, err := newTrainer(ctx, f, cfg, data, o, log, initCk)
	if err != nil {
		return nil, err
	}
	return t.run(ctx)
}

// initRunDir writes run.json and config.yaml of a new run.
func initRunDir(o Options, f *Factory, cfg *Config, data *Data, initCk *Checkpoint) error {
	if err := os.MkdirAll(filepath.Join(o.Out, CheckpointsDir), 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	y, err := cfg.YAML()
	if err != nil {
		return err
	}
	af, err := store.OpenAtomicFile(filepath.Join(o.Out, ConfigFile))
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := af.Write(y); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := af.Commit(); err != nil {
		return err
	}
	os.Remove(filepath.Join(o.Out, MetricsFile))
	ri := RunInfo{
		Format: RunInfoFormat, Model: f.Name, Dataset: absPath(o.Dataset), Split: data.SplitName,
		Protocol: cfg.Protocol, IDMapSHA256: data.Dataset.Manifest.IDMapSHA256, MmpipeVersion: o.Version,
		Created: time.Now().UTC().Format(time.RFC3339),
	}
	if initCk != nil {
		ri.Init, ri.InitSHA256 = absPath(o.Init), initCk.SHA256
	}
	return store.WriteJSONAtomic(filepath.Join(o.Out, RunInfoFile), ri)
}

// trainer is one run in progress.
type trainer struct {
	f       *Factory
	cfg     *Config
	data    *Data
	o       Options
	log     *slog.Logger
	model   Model
	rng     *RNG
	state   TrainState
	valid   *eval.Task
	test    *eval.Task
	workers int
	evalOpt eval.Options
}

func newTrainer(ctx context.Context, f *Factory, cfg *Config, data *Data, o Options, log *slog.Logger, initCk *Checkpoint) (*trainer, error) {
	t := &trainer{f: f, cfg: cfg, data: data, o: o, log: log, workers: sparse.Workers(cfg.Threads)}
	t.evalOpt = eval.Options{Ks: cfg.Ks, NGCF: cfg.NDCGNGCF, BlockUsers: cfg.EvalBatch, Workers: t.workers}
	protocol := eval.Protocol(cfg.Protocol)
	var err error
	if data.HasPart(store.PartValid) {
		if t.valid, err = data.Task(protocol, store.PartValid); err != nil {
			return nil, err
		}
	}
	if data.HasPart(store.PartTest) {
		if t.test, err = data.Task(protocol, store.PartTest); err != nil {
			return nil, err
		}
	}
	env := &Env{Data: data, Config: cfg, InitRNG: NewRNG(cfg.Seed, StreamInit), Workers: t.workers, Log: log, Init: initCk}
	if t.model, err = f.New(env); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	t.rng = NewRNG(cfg.Seed, StreamTrain)
	t.state = TrainState{Epoch: 1}
	last := t.ckptPath(LastCheckpoint)
	if o.Resume && fileExists(last) {
		h, err := RestoreCheckpoint(last, f.Name, t.model.State())
		if err != nil {
			return nil, fmt.Errorf("resume from %s: %w", last, err)
		}
		t.state = h.State
		if err := t.rng.Restore(t.state.RNG); err != nil {
			return nil, fmt.Errorf("resume from %s: %w", last, err)
		}
		if err := rewriteMetrics(t.path(MetricsFile), t.state.History); err != nil {
			return nil, err
		}
		log.Info("resuming", "run", o.Out, "epoch", t.state.Epoch, "batch", t.state.Batch, "best_epoch", t.state.BestEpoch)
	} else if o.Resume {
		log.Info("no checkpoint to resume from; starting from the beginning", "run", o.Out)
		os.Remove(t.path(MetricsFile))
	}
	return t, nil
}

func (t *trainer) path(name string) string     { return filepath.Join(t.o.Out, name) }
func (t *trainer) ckptPath(name string) string { return filepath.Join(t.o.Out, CheckpointsDir, name) }

// save writes a checkpoint of the model and the current state.
func (t *trainer) save(name string) error {
	rs, err := t.rng.State()
	if err != nil {
		return err
	}
	t.state.RNG = rs
	h := CheckpointHeader{Model: t.f.Name, Created: time.Now().UTC().Format(time.RFC3339Nano), State: t.state}
	return WriteCheckpoint(t.ckptPath(name), h, t.model.State())
}

// interrupted saves last.ckpt and returns the InterruptedError.
func (t *trainer) interrupted(cause error) error {
	if err := t.save(LastCheckpoint); err != nil {
		return fmt.Errorf("interrupted (%v), and writing the checkpoint failed: %w", cause, err)
	}
	t.log.Warn("interrupted; checkpoint written", "epoch", t.state.Epoch, "batch", t.state.Batch, "checkpoint", t.ckptPath(LastCheckpoint))
	return &InterruptedError{Epoch: t.state.Epoch, Batch: t.state.Batch, Checkpoint: t.ckptPath(LastCheckpoint), Err: cause}
}

// validate scores the validation part.
func (t *trainer) validate(ctx context.Context) (*eval.Result, error) {
	score, err := t.model.Scorer(ctx, store.PartValid)
	if err != nil {
		return nil, err
	}
	return eval.Evaluate(ctx, t.valid, score, t.evalOpt)
}

func (t *trainer) run(ctx context.Context) (*Report, error) {
	cfg, st := t.cfg, &t.state
	nb := t.model.BatchesPerEpoch()
	prog := newProgress(t.o.Progress, t.log, cfg.Epochs, nb)
	t.log.Info("training", "model", t.f.Name, "dataset", t.o.Dataset, "split", t.data.SplitName, "protocol", cfg.Protocol,
		"users", t.data.NumUsers, "items", t.data.NumItems, "train", t.data.TrainRows, "batches_per_epoch", nb,
		"epochs", cfg.Epochs, "threads", t.workers)
	for !st.Finished && st.Epoch <= cfg.Epochs {
		e := st.Epoch
		prog.begin(e, st.Batch)
		for st.Batch < nb {
			if err := ctx.Err(); err != nil {
				prog.clear()
				return nil, t.interrupted(err)
			}
			t0, c0 := time.Now(), CPUTime()
			losses, err := t.model.TrainBatch(ctx, t.rng)
			if err != nil {
				prog.clear()
				return nil, fmt.Errorf("%s: epoch %d batch %d: %w", t.f.Name, e, st.Batch+1, err)
			}
			st.Seconds += time.Since(t0).Seconds()
			st.CPUSeconds += CPUTime() - c0
			if st.LossSums == nil {
				st.LossSums = map[string]float64{}
			}
			for k, v := range losses {
				st.LossSums[k] += v
			}
			st.LossBatches++
			st.Batch++
			prog.step(st.Batch, losses["loss"])
			if t.o.AfterBatch != nil {
				t.o.AfterBatch(e, st.Batch)
			}
		}
		prog.clear()
		rec := EpochRecord{Epoch: e, Seconds: st.Seconds, CPUSeconds: st.CPUSeconds, Losses: meanLosses(st.LossSums, st.LossBatches)}
		improved := false
		if t.valid != nil && (e%cfg.EvalEvery == 0 || e == cfg.Epochs) {
			res, err := t.validate(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, t.interrupted(ctx.Err())
				}
				return nil, fmt.Errorf("validation after epoch %d: %w", e, err)
			}
			rec.Valid, rec.EvalSeconds = res.Metrics, res.Seconds
			if res.NaNScores > 0 {
				t.log.Warn("NaN scores in validation", "epoch", e, "count", res.NaNScores)
			}
			score := res.Metrics[cfg.SelectMetric]
			if st.BestEpoch == 0 || score > st.BestScore {
				st.BestEpoch, st.BestScore, st.BestValid, st.BadEvals = e, score, res.Metrics, 0
				improved = true
			} else {
				st.BadEvals++
			}
		}
		st.History = append(st.History, rec)
		if err := appendMetrics(t.path(MetricsFile), rec); err != nil {
			return nil, err
		}
		t.logEpoch(rec, improved)
		st.Epoch, st.Batch, st.LossSums, st.LossBatches, st.Seconds, st.CPUSeconds = e+1, 0, nil, 0, 0, 0
		stop := cfg.Patience > 0 && st.BadEvals >= cfg.Patience && e >= cfg.MinEpochs
		if stop || st.Epoch > cfg.Epochs {
			st.Finished, st.StoppedEarly = true, stop
		}
		if improved {
			if err := t.save(BestCheckpoint); err != nil {
				return nil, err
			}
		}
		if e%cfg.CheckpointEvery == 0 || st.Finished {
			if err := t.save(LastCheckpoint); err != nil {
				return nil, err
			}
		}
		if stop {
			t.log.Info("early stop", "epoch", e, "best_epoch", st.BestEpoch, cfg.SelectMetric, st.BestScore, "patience", cfg.Patience)
		}
		if t.o.AfterEpoch != nil {
			t.o.AfterEpoch(e)
		}
	}
	if !st.Finished {
		// epochs: 0, or a resume of a run whose epochs were all done.
		st.Finished = true
		if err := t.save(LastCheckpoint); err != nil {
			return nil, err
		}
	}
	return t.finish(ctx)
}

func (t *trainer) logEpoch(rec EpochRecord, improved bool) {
	args := []any{"epoch", rec.Epoch, "seconds", round(rec.Seconds, 3)}
	keys := make([]string, 0, len(rec.Losses))
	for k := range rec.Losses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, k, round(rec.Losses[k], 6))
	}
	if rec.Valid != nil {
		args = append(args, "valid_"+t.cfg.SelectMetric, round(rec.Valid[t.cfg.SelectMetric], 5), "eval_seconds", round(rec.EvalSeconds, 3))
		if improved {
			args = append(args, "best", true)
		}
	}
	t.log.Info("epoch", args...)
}

// finish scores the selected checkpoint on the test part and writes the
// report, the curves and the recommendations.
func (t *trainer) finish(ctx context.Context) (*Report, error) {
	st, cfg := &t.state, t.cfg
	epochsRun := len(st.History)
	best := st.BestEpoch
	if best > 0 {
		p := t.ckptPath(BestCheckpoint)
		h, err := RestoreCheckpoint(p, t.f.Name, t.model.State())
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", p, err)
		}
		if got := h.State.Epoch - 1; got != best {
			return nil, fmt.Errorf("%s holds epoch %d, but the run's best epoch is %d", p, got, best)
		}
	} else {
		best = epochsRun
		t.log.Info("no validation part: the last epoch is the selected one", "epoch", best)
	}
	rep := &Report{
		Model: t.f.Name, Dataset: t.o.Dataset, Split: t.data.SplitName, Protocol: cfg.Protocol, Seed: cfg.Seed,
		BestEpoch: best, EpochsRun: epochsRun, Valid: st.BestValid, Config: cfg, SelectMetric: cfg.SelectMetric,
		StoppedEarly: st.StoppedEarly, Threads: t.workers, MmpipeVersion: t.o.Version,
	}
	if rep.Valid == nil {
		rep.Valid = map[string]float64{}
	}
	if t.valid != nil {
		rep.ValidUsers = len(t.valid.Users)
	}
	var secs, cpus, evals []float64
	for _, r := range st.History {
		secs = append(secs, r.Seconds)
		cpus = append(cpus, r.CPUSeconds)
		rep.TrainSeconds += r.Seconds
		if r.Valid != nil {
			evals = append(evals, r.EvalSeconds)
		}
	}
	rep.EpochSeconds, rep.EpochCPUSeconds, rep.EvalSeconds = median(secs), median(cpus), median(evals)
	rep.Test = map[string]float64{}
	if t.test != nil {
		score, err := t.model.Scorer(ctx, store.PartTest)
		if err != nil {
			return nil, err
		}
		res, err := eval.Evaluate(ctx, t.test, score, t.evalOpt)
		if err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
		rep.Test, rep.TestUsers, rep.TestSkippedUsers = res.Metrics, len(t.test.Users), res.Skipped
	}
	if err := writeCurves(t.path(CurvesFile), t.f.Name, cfg.SelectMetric, st.History); err != nil {
		t.log.Warn("curves.png not written", "err", err)
	}
	if cfg.RecommendK > 0 {
		n, err := writeRecommendations(ctx, t.path(RecommendFile), t.data, t.model, cfg.RecommendK, ExcludeTrain, t.evalOpt)
		if err != nil {
			return nil, err
		}
		t.log.Info("recommendations written", "file", t.path(RecommendFile), "rows", n)
	}
	rep.PeakRSSBytes = PeakRSS()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	if err := store.WriteJSONAtomic(t.path(ReportFile), rep); err != nil {
		return nil, err
	}
	args := []any{"best_epoch", best, "epochs_run", epochsRun, "epoch_seconds", round(rep.EpochSeconds, 3)}
	for _, m := range []string{cfg.SelectMetric, "ndcg@20"} {
		if v, ok := rep.Test[m]; ok {
			args = append(args, "test_"+m, round(v, 5))
		}
	}
	t.log.Info("done", args...)
	return rep, nil
}

// median returns the median (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// round rounds for log lines.
func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// IsInterrupted reports whether err is an interrupted run or evaluation.
func IsInterrupted(err error) bool {
	var ie *InterruptedError
	return errors.As(err, &ie) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

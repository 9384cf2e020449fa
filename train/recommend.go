package train

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Exclude chooses which of a user's known items recommendations leave out.
type Exclude string

// The exclusion rules of recommendations.
const (
	// ExcludeTrain leaves out the user's training items.
	ExcludeTrain Exclude = "train"
	// ExcludeAll leaves out every item of the user in the split (train,
	// valid and test).
	ExcludeAll Exclude = "all"
	// ExcludeNone ranks every item.
	ExcludeNone Exclude = "none"
)

// ParseExclude checks an exclusion rule name.
func ParseExclude(s string) (Exclude, error) {
	switch e := Exclude(s); e {
	case ExcludeTrain, ExcludeAll, ExcludeNone:
		return e, nil
	}
	return "", fmt.Errorf("--exclude %q: want train, all or none", s)
}

// recommendSchema is the schema of recommendations.parquet.
var recommendSchema = arrow.NewSchema([]arrow.Field{
	{Name: "user_idx", Type: arrow.PrimitiveTypes.Int32},
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "rank", Type: arrow.PrimitiveTypes.Int32},
	{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32},
	{Name: "item_id", Type: arrow.BinaryTypes.String},
	{Name: "score", Type: arrow.PrimitiveTypes.Float32},
}, nil)

// writeRecommendations ranks every user's items with the model (scoring
// part test: histories include the validation items) and writes the top k
// per user to path as Parquet: user_idx, user_id, rank (from 1), item_idx,
// item_id, score; rows ordered by user, then rank. It returns the number of
// rows.
func writeRecommendations(ctx context.Context, path string, d *Data, m Model, k int, ex Exclude, o eval.Options) (int, error) {
	users, items, err := d.IDs(ctx)
	if err != nil {
		return 0, err
	}
	score, err := m.Scorer(ctx, store.PartTest)
	if err != nil {
		return 0, err
	}
	var excl [][]int32
	if ex != ExcludeNone {
		excl = make([][]int32, d.NumUsers)
		if ex == ExcludeTrain {
			for u := range d.NumUsers {
				cols, _ := d.Train.Row(u)
				excl[u] = cols
			}
		} else {
			for r, u := range d.Split.User {
				excl[u] = append(excl[u], d.Split.Item[r])
			}
			for u := range excl {
				excl[u] = sortedUnique(excl[u])
			}
		}
	}
	all := make([]int32, d.NumUsers)
	for u := range all {
		all[u] = int32(u)
	}
	var exf func(int) []int32
	if excl != nil {
		exf = func(p int) []int32 { return excl[p] }
	}
	top, scores, n, err := eval.TopK(ctx, all, d.NumItems, k, exf, score, o)
	if err != nil {
		return 0, err
	}
	md := map[string]string{"dataset": d.Dataset.Dir, "split": d.SplitName, "k": fmt.Sprint(k), "exclude": string(ex)}
	rows := 0
	const usersPerRecord = 1 << 14
	lo := 0
	err = store.WriteParquet(path, recommendSchema, md, func() (arrow.RecordBatch, error) {
		if lo >= len(all) && !(lo == 0 && len(all) == 0) {
			return nil, nil
		}
		b := array.NewRecordBuilder(memory.DefaultAllocator, recommendSchema)
		defer b.Release()
		ui := b.Field(0).(*array.Int32Builder)
		uid := b.Field(1).(*array.StringBuilder)
		rk := b.Field(2).(*array.Int32Builder)
		ii := b.Field(3).(*array.Int32Builder)
		iid := b.Field(4).(*array.StringBuilder)
		sc := b.Field(5).(*array.Float32Builder)
		for p := lo; p < min(lo+usersPerRecord, len(all)); p++ {
			for r := range n[p] {
				it := top[p*k+r]
				ui.Append(int32(p))
				uid.Append(users[p].ID)
				rk.Append(int32(r + 1))
				ii.Append(it)
				iid.Append(items[it].ID)
				sc.Append(scores[p*k+r])
				rows++
			}
		}
		lo += usersPerRecord
		return b.NewRecordBatch(), nil
	})
	if err != nil {
		return 0, err
	}
	return rows, nil
}

// sortedUnique sorts and deduplicates in place.
func sortedUnique(s []int32) []int32 {
	if len(s) < 2 {
		return s
	}
	slices.Sort(s)
	w := 1
	for _, v := range s[1:] {
		if v != s[w-1] {
			s[w] = v
			w++
		}
	}
	return s[:w]
}

// RunHandle is a finished (or interrupted) run opened again: its model
// rebuilt from config.yaml and the dataset, ready to load a checkpoint and
// to evaluate or recommend.
type RunHandle struct {
	Dir     string
	Info    *RunInfo
	Config  *Config
	Data    *Data
	Model   Model
	Factory *Factory
	evalOpt eval.Options
}

// OpenRunOptions tune OpenRun.
type OpenRunOptions struct {
	// Dataset overrides the dataset path recorded in run.json (a moved
	// dataset); its item id map must be the same.
	Dataset string
	Log     *slog.Logger
}

// OpenRun opens a run directory; lookup finds the model's factory by name.
func OpenRun(ctx context.Context, dir string, lookup func(name string) (*Factory, bool), o OpenRunOptions) (*RunHandle, error) {
	ri, err := readRunInfo(dir)
	if err != nil {
		return nil, err
	}
	f, ok := lookup(ri.Model)
	if !ok {
		return nil, fmt.Errorf("run %s: unknown model %q", dir, ri.Model)
	}
	cfg, err := readRunConfig(f, dir)
	if err != nil {
		return nil, err
	}
	ds := ri.Dataset
	if o.Dataset != "" {
		ds = o.Dataset
	}
	data, err := LoadData(ctx, ds, ri.Split, eval.Protocol(cfg.Protocol))
	if err != nil {
		return nil, err
	}
	if data.Dataset.Manifest.IDMapSHA256 != ri.IDMapSHA256 {
		return nil, usagef("dataset %s has a different item id map than the one run %s was trained on", ds, dir)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	env := &Env{Data: data, Config: cfg, InitRNG: NewRNG(cfg.Seed, StreamInit), Workers: sparse.Workers(cfg.Threads), Log: log}
	m, err := f.New(env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return &RunHandle{Dir: dir, Info: ri, Config: cfg, Data: data, Model: m, Factory: f,
		evalOpt: eval.Options{Ks: cfg.Ks, NGCF: cfg.NDCGNGCF, BlockUsers: cfg.EvalBatch, Workers: cfg.Threads}}, nil
}

// LoadCheckpoint loads "best", "last" or a checkpoint file into the model
// and returns the epoch it holds.
func (r *RunHandle) LoadCheckpoint(which string) (int, error) {
	p := which
	switch which {
	case "best", "":
		p = filepath.Join(r.Dir, CheckpointsDir, BestCheckpoint)
	case "last":
		p = filepath.Join(r.Dir, CheckpointsDir, LastCheckpoint)
	}
	if !fileExists(p) && (which == "best" || which == "") {
		// A run without validation keeps no best checkpoint.
		p = filepath.Join(r.Dir, CheckpointsDir, LastCheckpoint)
	}
	h, err := RestoreCheckpoint(p, r.Info.Model, r.Model.State())
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", p, err)
	}
	st := h.State
	epoch := st.Epoch - 1
	if st.Batch > 0 && !st.Finished {
		epoch = st.Epoch // mid-epoch
	}
	return epoch, nil
}

// Evaluate scores part (store.PartValid or store.PartTest) with the loaded
// checkpoint under the run's protocol and metrics.
func (r *RunHandle) Evaluate(ctx context.Context, part int8) (*eval.Result, error) {
	task, err := r.Data.Task(eval.Protocol(r.Config.Protocol), part)
	if err != nil {
		return nil, err
	}
	score, err := r.Model.Scorer(ctx, part)
	if err != nil {
		return nil, err
	}
	return eval.Evaluate(ctx, task, score, r.evalOpt)
}

// Recommend writes the top k items of every user to path (Parquet; see
// writeRecommendations) and returns the number of rows.
func (r *RunHandle) Recommend(ctx context.Context, path string, k int, ex Exclude) (int, error) {
	if k <= 0 {
		return 0, usagef("--k must be positive, got %d", k)
	}
	return writeRecommendations(ctx, path, r.Data, r.Model, k, ex, r.evalOpt)
}

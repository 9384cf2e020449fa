package train_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/models"
	"github.com/mmpipe/mmpipe/train/models/lightgcn"
	"github.com/mmpipe/mmpipe/train/models/mf"
	"github.com/mmpipe/mmpipe/train/models/pop"
)

// fast are overrides that make the demo runs quick.
var fastSets = []string{"model.batch_size=512", "model.lr=0.01", "eval_batch=64"}

func runModel(t *testing.T, f *train.Factory, ds, out string, sets ...string) *train.Report {
	t.Helper()
	rep, err := train.Run(context.Background(), f, train.Options{Dataset: ds, Split: "random", Out: out, Sets: sets, Version: "test"})
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return rep
}

func TestTinyTrainBeatsPopularity(t *testing.T) {
	ds := demoDataset(t)
	root := t.TempDir()
	p := runModel(t, pop.Factory(), ds, filepath.Join(root, "pop"))
	popR := p.Test["recall@20"]
	if popR <= 0 {
		t.Fatalf("popularity recall@20 = %v", popR)
	}
	cases := []struct {
		f    *train.Factory
		sets []string
	}{
		{mf.Factory(), append(slices.Clone(fastSets), "epochs=25", "model.reg=0.01")},
		{mf.Factory(), append(slices.Clone(fastSets), "epochs=25", "model.reg=0.01", "model.optimizer=adam")},
		{lightgcn.Factory(), append(slices.Clone(fastSets), "epochs=20")},
	}
	for _, c := range cases {
		rep := runModel(t, c.f, ds, filepath.Join(root, fmt.Sprintf("%s-%d", c.f.Name, len(c.sets))), c.sets...)
		r := rep.Test["recall@20"]
		t.Logf("%s %v: test recall@20 %.4f (popularity %.4f), best epoch %d, %.3f s/epoch", c.f.Name, c.sets[len(fastSets):], r, popR, rep.BestEpoch, rep.EpochSeconds)
		if r <= popR*1.2 {
			t.Errorf("%s: test recall@20 %.4f does not beat popularity %.4f by 20%%", c.f.Name, r, popR)
		}
	}
}

func TestRunDirectoryContract(t *testing.T) {
	ds := demoDataset(t)
	out := filepath.Join(t.TempDir(), "run")
	rep := runModel(t, lightgcn.Factory(), ds, out, append(slices.Clone(fastSets), "epochs=3", "recommend_k=5", "ndcg_ngcf=true")...)
	raw, err := os.ReadFile(filepath.Join(out, train.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"model", "dataset", "split", "protocol", "seed", "best_epoch", "epochs_run", "valid", "test",
		"epoch_seconds", "peak_rss_bytes", "config"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	if rep.BestEpoch < 1 || rep.BestEpoch > 3 || rep.EpochsRun != 3 || rep.PeakRSSBytes <= 0 || rep.Protocol != "graph" {
		t.Errorf("report %+v", rep)
	}
	for _, name := range []string{"recall@20", "ndcg@10", "hit@50", "precision@20", "map@20", "mrr@10", "ndcg_ngcf@20"} {
		if _, ok := rep.Test[name]; !ok {
			t.Errorf("test metrics lack %s", name)
		}
	}
	cfg := m["config"].(map[string]any)
	if cfg["model"].(map[string]any)["layers"].(float64) != 3 || cfg["epochs"].(float64) != 3 {
		t.Errorf("config in report: %v", cfg)
	}
	// metrics.jsonl: one object per epoch with epoch, seconds, loss terms, valid.
	f, err := os.Open(filepath.Join(out, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		n++
		if line["epoch"].(float64) != float64(n) {
			t.Errorf("line %d: epoch %v", n, line["epoch"])
		}
		for _, k := range []string{"seconds", "loss", "bpr", "reg", "valid"} {
			if _, ok := line[k]; !ok {
				t.Errorf("metrics line %d lacks %q: %s", n, k, sc.Text())
			}
		}
	}
	if n != 3 {
		t.Errorf("%d metrics lines, want 3", n)
	}
	png, err := os.ReadFile(filepath.Join(out, train.CurvesFile))
	if err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("curves.png: %v", err)
	}
	// recommendations.parquet: users × 5 rows, ranked by score.
	rows := readRecommendations(t, filepath.Join(out, train.RecommendFile))
	ds0, _ := store.OpenDataset(ds)
	if len(rows) != ds0.Manifest.Users*5 {
		t.Errorf("%d recommendation rows, want %d users × 5", len(rows), ds0.Manifest.Users)
	}
	for k, r := range rows {
		if r.rank != int32(k%5+1) || r.userIdx != int32(k/5) || r.userID == "" || r.itemID == "" {
			t.Fatalf("row %d: %+v", k, r)
		}
		if k%5 > 0 && r.score > rows[k-1].score {
			t.Fatalf("row %d: score %v above rank %d's %v", k, r.score, r.rank-1, rows[k-1].score)
		}
	}
	// Re-running without --resume is refused; with --resume it is skipped.
	_, err = train.Run(context.Background(), lightgcn.Factory(), train.Options{Dataset: ds, Out: out})
	var ue *train.UsageError
	if !errors.As(err, &ue) {
		t.Errorf("second run into the same --out: %v, want a UsageError", err)
	}
	again, err := train.Run(context.Background(), lightgcn.Factory(), train.Options{Out: out, Resume: true})
	if err != nil || !again.Skipped || again.BestEpoch != rep.BestEpoch {
		t.Errorf("resume of a complete run: %+v, %v", again, err)
	}
	// The same settings given again are skipped too; other settings are
	// refused, not reported as the complete run.
	sets := append(slices.Clone(fastSets), "epochs=3", "recommend_k=5", "ndcg_ngcf=true")
	if again, err = train.Run(context.Background(), lightgcn.Factory(), train.Options{Out: out, Resume: true, Sets: sets}); err != nil || !again.Skipped {
		t.Errorf("resume of a complete run with its own settings: %+v, %v", again, err)
	}
	_, err = train.Run(context.Background(), lightgcn.Factory(), train.Options{Out: out, Resume: true, Sets: append(sets, "epochs=6")})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "differs") {
		t.Errorf("resume of a complete run with other settings: %v, want a UsageError naming the difference", err)
	}
	_, err = train.Run(context.Background(), lightgcn.Factory(), train.Options{Out: out, Resume: true, Dataset: t.TempDir()})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "dataset") {
		t.Errorf("resume of a complete run on another dataset: %v, want a UsageError naming the dataset", err)
	}
	if again, err = train.Run(context.Background(), lightgcn.Factory(), train.Options{Out: out, Resume: true, Dataset: ds}); err != nil || !again.Skipped {
		t.Errorf("resume of a complete run on its own dataset: %+v, %v", again, err)
	}
	// eval re-scores the best checkpoint to the report's numbers.
	h, err := train.OpenRun(context.Background(), out, models.Lookup, train.OpenRunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := h.LoadCheckpoint("best")
	if err != nil || epoch != rep.BestEpoch {
		t.Fatalf("best checkpoint epoch %d (%v), want %d", epoch, err, rep.BestEpoch)
	}
	res, err := h.Evaluate(context.Background(), store.PartTest)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics["recall@20"] != rep.Test["recall@20"] || res.Metrics["ndcg@20"] != rep.Test["ndcg@20"] {
		t.Errorf("eval of best.ckpt %v/%v, report %v/%v", res.Metrics["recall@20"], res.Metrics["ndcg@20"], rep.Test["recall@20"], rep.Test["ndcg@20"])
	}
}

type recRow struct {
	userIdx, rank, itemIdx int32
	userID, itemID         string
	score                  float32
}

func readRecommendations(t *testing.T, path string) []recRow {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	pf, err := file.NewParquetReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	want := []string{"user_idx", "user_id", "rank", "item_idx", "item_id", "score"}
	for k, name := range want {
		if tbl.Schema().Field(k).Name != name {
			t.Fatalf("column %d is %q, want %q", k, tbl.Schema().Field(k).Name, name)
		}
	}
	var rows []recRow
	for c := range tbl.Column(0).Data().Chunks() {
		ui := tbl.Column(0).Data().Chunk(c).(*array.Int32)
		uid := tbl.Column(1).Data().Chunk(c).(*array.String)
		rk := tbl.Column(2).Data().Chunk(c).(*array.Int32)
		ii := tbl.Column(3).Data().Chunk(c).(*array.Int32)
		iid := tbl.Column(4).Data().Chunk(c).(*array.String)
		sc := tbl.Column(5).Data().Chunk(c).(*array.Float32)
		for i := range ui.Len() {
			rows = append(rows, recRow{ui.Value(i), rk.Value(i), ii.Value(i), uid.Value(i), iid.Value(i), sc.Value(i)})
		}
	}
	return rows
}

// finalState reads a run's last checkpoint.
func finalState(t *testing.T, out string) *train.Checkpoint {
	t.Helper()
	ck, err := train.ReadCheckpoint(filepath.Join(out, train.CheckpointsDir, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func sameTensors(t *testing.T, name string, a, b *train.Checkpoint) {
	t.Helper()
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%s: %d vs %d tensors", name, len(a.Tensors), len(b.Tensors))
	}
	for n, ta := range a.Tensors {
		tb := b.Tensors[n]
		if !slices.Equal(ta.I64, tb.I64) || len(ta.F32) != len(tb.F32) {
			t.Fatalf("%s: tensor %s differs", name, n)
		}
		for k := range ta.F32 {
			if math.Float32bits(ta.F32[k]) != math.Float32bits(tb.F32[k]) {
				t.Fatalf("%s: tensor %s element %d: %v vs %v (not bit-identical)", name, n, k, ta.F32[k], tb.F32[k])
			}
		}
	}
}

func TestResumeIsBitIdentical(t *testing.T) {
	ds := demoDataset(t)
	for _, f := range []*train.Factory{mf.Factory(), lightgcn.Factory()} {
		t.Run(f.Name, func(t *testing.T) {
			root := t.TempDir()
			sets := append(slices.Clone(fastSets), "epochs=5", "patience=0")
			full := filepath.Join(root, "full")
			want := runModel(t, f, ds, full, sets...)

			cases := []struct {
				name string
				stop func(cancel context.CancelFunc) train.Options
			}{
				{"stop after epoch 2", func(cancel context.CancelFunc) train.Options {
					return train.Options{AfterEpoch: func(e int) {
						if e == 2 {
							cancel()
						}
					}}
				}},
				{"stop mid-epoch 3", func(cancel context.CancelFunc) train.Options {
					return train.Options{AfterBatch: func(e, b int) {
						if e == 3 && b == 2 {
							cancel()
						}
					}}
				}},
			}
			for _, c := range cases {
				out := filepath.Join(root, strings.ReplaceAll(c.name, " ", "-"))
				ctx, cancel := context.WithCancel(context.Background())
				o := c.stop(cancel)
				o.Dataset, o.Split, o.Out, o.Sets = ds, "random", out, sets
				_, err := train.Run(ctx, f, o)
				cancel()
				var ie *train.InterruptedError
				if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) {
					t.Fatalf("%s: error %v, want an InterruptedError wrapping context.Canceled", c.name, err)
				}
				got, err := train.Run(context.Background(), f, train.Options{Out: out, Resume: true})
				if err != nil {
					t.Fatalf("%s: resume: %v", c.name, err)
				}
				sameTensors(t, c.name, finalState(t, full), finalState(t, out))
				if got.BestEpoch != want.BestEpoch || !maps(got.Test, want.Test) || !maps(got.Valid, want.Valid) {
					t.Errorf("%s: report differs: best %d vs %d, test %v vs %v", c.name, got.BestEpoch, want.BestEpoch, got.Test["recall@20"], want.Test["recall@20"])
				}
				lines := countLines(t, filepath.Join(out, train.MetricsFile))
				if lines != 5 {
					t.Errorf("%s: metrics.jsonl has %d lines after resume, want 5", c.name, lines)
				}
			}
		})
	}
}

// TestResumeAfterHardKill resumes from a copy of the run directory taken
// between two periodic checkpoints, as if the process had been killed
// without writing one: the epochs after the last checkpoint are redone and
// metrics.jsonl loses their lines first.
func TestResumeAfterHardKill(t *testing.T) {
	ds := demoDataset(t)
	root := t.TempDir()
	sets := append(slices.Clone(fastSets), "epochs=5", "patience=0", "checkpoint_every=2")
	f := mf.Factory()
	full := filepath.Join(root, "full")
	snap := filepath.Join(root, "snapshot")
	o := train.Options{Dataset: ds, Split: "random", Out: full, Sets: sets, AfterEpoch: func(e int) {
		if e == 3 {
			if err := os.CopyFS(snap, os.DirFS(full)); err != nil {
				t.Error(err)
			}
		}
	}}
	want, err := train.Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, filepath.Join(snap, train.MetricsFile)); n != 3 {
		t.Fatalf("snapshot has %d metrics lines, want 3", n)
	}
	got, err := train.Run(context.Background(), f, train.Options{Out: snap, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "hard kill", finalState(t, full), finalState(t, snap))
	if got.Test["recall@20"] != want.Test["recall@20"] || countLines(t, filepath.Join(snap, train.MetricsFile)) != 5 {
		t.Errorf("resumed report %v, want %v", got.Test["recall@20"], want.Test["recall@20"])
	}
}

func maps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// scripted is a fake model whose validation quality follows a script: at
// epochs in good it ranks each user's positives first, otherwise last. Its
// only parameter counts the epochs trained, so the checkpoint tells which
// epoch a restored model comes from.
type scripted struct {
	data      *train.Data
	good      []int
	batches   int
	trained   []int64
	testCalls *int
}

func (m *scripted) BatchesPerEpoch() int { return m.batches }

func (m *scripted) TrainBatch(context.Context, *train.RNG) (train.Losses, error) {
	m.trained[0]++
	return train.Losses{"loss": 1 / float64(m.trained[0])}, nil
}

func (m *scripted) Scorer(_ context.Context, part int8) (eval.ScoreFunc, error) {
	epoch := int(m.trained[0]) / m.batches
	if part == store.PartTest {
		*m.testCalls++
	}
	good := slices.Contains(m.good, epoch)
	pos := map[[2]int32]bool{}
	for k, u := range m.data.Split.User {
		if m.data.Split.Part[k] == part {
			pos[[2]int32{u, m.data.Split.Item[k]}] = true
		}
	}
	return func(users []int32, scores []float32) error {
		n := m.data.NumItems
		for b, u := range users {
			for i := range n {
				s := float32(0)
				if pos[[2]int32{u, int32(i)}] == good {
					s = 1
				}
				scores[b*n+i] = s
			}
		}
		return nil
	}, nil
}

func (m *scripted) State() []train.Tensor {
	return []train.Tensor{train.I64Tensor("trained", m.trained, 1)}
}

type noConfig struct{}

func (noConfig) Validate() error { return nil }

func TestEarlyStoppingAndTestOnce(t *testing.T) {
	ds := demoDataset(t)
	for _, c := range []struct {
		name string
		sets []string
		run  int
	}{
		// Epoch 2 is best; epochs 3, 4, 5 do not improve: stop after 5.
		{"patience", []string{"epochs=50", "patience=3"}, 5},
		// The same, but no early stop before epoch 8.
		{"min_epochs", []string{"epochs=50", "patience=3", "min_epochs=8"}, 8},
		// min_epochs below the stopping epoch changes nothing.
		{"min_epochs early", []string{"epochs=50", "patience=3", "min_epochs=4"}, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			testCalls := 0
			f := &train.Factory{
				Name: "scripted", Protocol: eval.Graph,
				NewConfig: func() train.ModelConfig { return noConfig{} },
				New: func(env *train.Env) (train.Model, error) {
					return &scripted{data: env.Data, good: []int{2}, batches: 3, trained: make([]int64, 1), testCalls: &testCalls}, nil
				},
			}
			out := filepath.Join(t.TempDir(), "run")
			rep, err := train.Run(context.Background(), f, train.Options{Dataset: ds, Split: "random", Out: out, Sets: c.sets})
			if err != nil {
				t.Fatal(err)
			}
			if rep.BestEpoch != 2 || rep.EpochsRun != c.run || !rep.StoppedEarly {
				t.Errorf("best %d, run %d, stopped early %v; want 2, %d, true", rep.BestEpoch, rep.EpochsRun, rep.StoppedEarly, c.run)
			}
			if testCalls != 1 {
				t.Errorf("test scored %d times, want once", testCalls)
			}
			// The test score comes from the best checkpoint (a perfect
			// ranking), not from the last state (the worst).
			if rep.Test["hit@50"] != 1 || rep.Valid["hit@50"] != 1 {
				t.Errorf("test %v / valid %v, want the best epoch's perfect scores", rep.Test["hit@50"], rep.Valid["hit@50"])
			}
			if ck := finalState(t, out); ck.Tensors["trained"].I64[0] != int64(3*c.run) {
				t.Errorf("last checkpoint trained %d batches, want %d", ck.Tensors["trained"].I64[0], 3*c.run)
			}
		})
	}
}

func TestRunConfigErrors(t *testing.T) {
	ds := demoDataset(t)
	cases := []struct {
		name string
		o    train.Options
		want string
	}{
		{"unknown key", train.Options{Sets: []string{"model.dimension=3"}}, "model.dimension: unknown key"},
		{"bad value", train.Options{Sets: []string{"model.layers=two"}}, "model.layers: want an integer"},
		{"invalid", train.Options{Sets: []string{"model.lr=0"}}, "model.lr: must be positive"},
		{"invalid trainer key", train.Options{Sets: []string{"min_epochs=-1"}}, "min_epochs: must be ≥ 0"},
		{"missing split", train.Options{Split: "temporal"}, "no split \"temporal\""},
	}
	for _, c := range cases {
		c.o.Dataset, c.o.Out = ds, filepath.Join(t.TempDir(), "run")
		_, err := train.Run(context.Background(), lightgcn.Factory(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		var ce *train.ConfigError
		var ue *train.UsageError
		if !errors.As(err, &ce) && !errors.As(err, &ue) {
			t.Errorf("%s: error %T is neither a ConfigError nor a UsageError", c.name, err)
		}
	}
	// A resume with a different configuration is refused.
	out := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := train.Run(ctx, mf.Factory(), train.Options{Dataset: ds, Split: "random", Out: out, Sets: []string{"epochs=2"},
		AfterBatch: func(int, int) { cancel() }})
	cancel()
	if !train.IsInterrupted(err) {
		t.Fatalf("interrupt: %v", err)
	}
	_, err = train.Run(context.Background(), mf.Factory(), train.Options{Out: out, Resume: true, Sets: []string{"epochs=3"}})
	if err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("resume with changed config: %v", err)
	}
	if _, err := train.Run(context.Background(), mf.Factory(), train.Options{Out: out, Resume: true, Sets: []string{"epochs=2"}}); err != nil {
		t.Errorf("resume with the same config: %v", err)
	}
}

func TestFeaturesRefuseForeignIDMap(t *testing.T) {
	src := demoDataset(t)
	ds := filepath.Join(t.TempDir(), "ds")
	if err := os.CopyFS(ds, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	d, err := train.LoadData(context.Background(), ds, "random", eval.Graph)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, idmap string, rows int) {
		m := &store.FeatureMatrix{Meta: store.FeatureMeta{Modality: strings.Split(name, ".")[0], Encoder: "test", IDMapSHA256: idmap},
			Rows: rows, Dim: 2, Data: make([]float32, rows*2)}
		if err := store.WriteFeatures(filepath.Join(ds, store.FeaturesDir, name+".arrow"), m); err != nil {
			t.Fatal(err)
		}
	}
	good := d.Dataset.Manifest.IDMapSHA256
	write("image.good", good, d.NumItems)
	write("text.foreign", strings.Repeat("0", 64), d.NumItems)
	write("audio.short", good, d.NumItems-1)
	ff, err := d.Features("image")
	if err != nil {
		t.Fatalf("matching feature file refused: %v", err)
	}
	if ff.Rows() != d.NumItems || ff.Dim() != 2 {
		t.Errorf("rows %d dim %d", ff.Rows(), ff.Dim())
	}
	ff.Close()
	for name, want := range map[string]string{"text": "idmap_sha256", "audio.short": "rows for", "video": "no features"} {
		if _, err := d.Features(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
}

// TestTikTokPopularity checks the evaluation against the reference code's
// number on the real TikTok split: popularity Recall@20 0.0597, NDCG@20
// 0.0255 (../shared/data/README.md).
func TestTikTokPopularity(t *testing.T) {
	src := sharedData(t, "tiktok")
	ds := filepath.Join(t.TempDir(), "tiktok")
	if _, err := dataset.Ingest(context.Background(), dataset.Options{Format: "mmrec", Inputs: []string{src}, Out: ds, MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	rep, err := train.Run(context.Background(), pop.Factory(), train.Options{Dataset: ds, Out: filepath.Join(t.TempDir(), "run")})
	if err != nil {
		t.Fatal(err)
	}
	r, n := rep.Test["recall@20"], rep.Test["ndcg@20"]
	t.Logf("TikTok popularity: test recall@20 %.4f, ndcg@20 %.4f over %d users", r, n, rep.TestUsers)
	if math.Abs(r-0.0597) > 0.003 || math.Abs(n-0.0255) > 0.002 {
		t.Errorf("popularity recall@20 %.4f / ndcg@20 %.4f, want 0.0597 ± 0.003 / 0.0255 ± 0.002", r, n)
	}
	if rep.Split != "given" || rep.TestUsers == 0 {
		t.Errorf("split %q, %d test users", rep.Split, rep.TestUsers)
	}
}

// TestInitCheckpoint covers --init: refused for a model without Transfer,
// handed to New as Env.Init, recorded in run.json with its sha256, re-read
// on --resume, and refused on resume when the file changed.
func TestInitCheckpoint(t *testing.T) {
	ds := demoDataset(t)
	testCalls := 0
	var got []*train.Checkpoint
	mk := func(transfer bool) *train.Factory {
		return &train.Factory{
			Name: "scripted", Protocol: eval.Graph, Transfer: transfer,
			NewConfig: func() train.ModelConfig { return noConfig{} },
			New: func(env *train.Env) (train.Model, error) {
				got = append(got, env.Init)
				m := &scripted{data: env.Data, good: []int{1}, batches: 2, trained: make([]int64, 1), testCalls: &testCalls}
				if env.Init != nil {
					if err := env.Init.CopyTensor(train.I64Tensor("trained", m.trained, 1)); err != nil {
						return nil, err
					}
				}
				return m, nil
			},
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if _, err := train.Run(context.Background(), mk(false), train.Options{Dataset: ds, Split: "random", Out: src, Sets: []string{"epochs=2"}}); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(src, train.CheckpointsDir, train.LastCheckpoint)
	if _, err := train.Run(context.Background(), mk(false), train.Options{Dataset: ds, Split: "random", Out: filepath.Join(dir, "x"), Init: ckpt}); err == nil || !strings.Contains(err.Error(), "does not start from a checkpoint") {
		t.Fatalf("--init on a model without Transfer: error %v", err)
	}
	got = nil
	out := filepath.Join(dir, "dst")
	ctx, cancel := context.WithCancel(context.Background())
	o := train.Options{Dataset: ds, Split: "random", Out: out, Init: ckpt, Sets: []string{"epochs=3", "patience=0"},
		AfterEpoch: func(e int) {
			if e == 1 {
				cancel()
			}
		}}
	if _, err := train.Run(ctx, mk(true), o); !train.IsInterrupted(err) {
		t.Fatalf("first part: %v", err)
	}
	cancel()
	if len(got) != 1 || got[0] == nil || got[0].Tensors["trained"].I64[0] != 4 {
		t.Fatalf("New got init %v, want the source run's checkpoint (4 batches trained)", got)
	}
	ri, err := os.ReadFile(filepath.Join(out, train.RunInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ri), got[0].SHA256) || !strings.Contains(string(ri), `"init"`) {
		t.Errorf("run.json does not record the init checkpoint and its sha256: %s", ri)
	}
	// Resume without --init: run.json's checkpoint is handed to New again.
	got = nil
	o.AfterEpoch, o.Init, o.Resume, o.Sets = nil, "", true, nil
	o.Dataset = ""
	rep, err := train.Run(context.Background(), mk(true), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] == nil || rep.EpochsRun != 3 {
		t.Fatalf("resume: init %v, epochs %d", got, rep.EpochsRun)
	}
	// The transferred counter went on from 4: 4 + 3 epochs × 2 batches.
	if ck := finalState(t, out); ck.Tensors["trained"].I64[0] != 10 {
		t.Errorf("trained %d, want 10", ck.Tensors["trained"].I64[0])
	}
	// A changed --init file is refused on resume.
	os.Remove(filepath.Join(out, train.ReportFile))
	b, _ := os.ReadFile(ckpt)
	b[len(b)/2] ^= 1
	os.WriteFile(ckpt, b, 0o644)
	if _, err := train.Run(context.Background(), mk(true), o); err == nil {
		t.Error("resume accepted a changed --init checkpoint")
	}
}

// TestTokenFeaturesResolve: token files are found by modality or stem
// (with or without ".tokens"), pooled lookups never return them, an
// ambiguous name is refused, and a missing one wraps ErrNoFeatures.
func TestTokenFeaturesResolve(t *testing.T) {
	src := demoDataset(t)
	ds := filepath.Join(t.TempDir(), "ds")
	if err := os.CopyFS(ds, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	d, err := train.LoadData(context.Background(), ds, "random", eval.Graph)
	if err != nil {
		t.Fatal(err)
	}
	good := d.Dataset.Manifest.IDMapSHA256
	write := func(file string, tokens int) {
		m := &store.FeatureMatrix{Meta: store.FeatureMeta{Modality: strings.Split(file, ".")[0], Encoder: "test", IDMapSHA256: good},
			Rows: d.NumItems, Dim: 2, Tokens: tokens, Data: make([]float32, d.NumItems*2*max(tokens, 1))}
		if err := store.WriteFeatures(filepath.Join(ds, store.FeaturesDir, file), m); err != nil {
			t.Fatal(err)
		}
	}
	write("audio.enc.tokens.arrow", 3)
	write("video.a.tokens.arrow", 2)
	write("video.b.tokens.arrow", 2)
	cases := []struct {
		name, want, err string
	}{
		{"audio", "audio.enc.tokens.arrow", ""},
		{"audio.enc", "audio.enc.tokens.arrow", ""},
		{"audio.enc.tokens", "audio.enc.tokens.arrow", ""},
		{"video.b", "video.b.tokens.arrow", ""},
		{"video", "", "several token features files"},
		{"smell", "", "no token features"},
	}
	for _, c := range cases {
		ff, err := d.TokenFeatures(c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			if c.name == "smell" && !errors.Is(err, train.ErrNoFeatures) {
				t.Errorf("%s: error %v does not wrap ErrNoFeatures", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if filepath.Base(ff.Path()) != c.want || ff.Tokens() == 0 {
			t.Errorf("%s: opened %s (%d tokens), want %s", c.name, ff.Path(), ff.Tokens(), c.want)
		}
		ff.Close()
	}
	if _, err := d.Features("audio"); !errors.Is(err, train.ErrNoFeatures) {
		t.Errorf("pooled lookup of a modality with only a token file: %v", err)
	}
}

package pmmrec_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/internal/cycledata"
	"github.com/mmpipe/mmpipe/train/internal/resumetest"
	"github.com/mmpipe/mmpipe/train/models/pmmrec"
	"github.com/mmpipe/mmpipe/train/models/pop"
)

// cycleDataset writes a RecBole-format dataset whose users walk a cycle of
// items (user u starts at a random item and visits item+1, item+2, ...),
// with pooled 8-d text/image features (.feat1CLS/.feat3CLS), then token
// files features/text.test.tokens.arrow (up to 5 tokens of width textDim,
// item 3 without text) and features/image.test.tokens.arrow (3 tokens of
// width 6). The next item is a function of the last one, so a sequence
// model can reach hit@10 ≈ 1 where popularity stays near 10/items.
func cycleDataset(t *testing.T, users, items, textDim int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	out := cycledata.RecBole(t, r, users, items, cycledata.Options{FeatDim: 8, NoImageItem: -1})
	ds, err := store.OpenDataset(out)
	if err != nil {
		t.Fatal(err)
	}
	nItems := ds.Manifest.Items
	for _, f := range []struct {
		mod      string
		T, d     int
		noneItem int
	}{{"text", 5, textDim, 3}, {"image", 3, 6, -1}} {
		m := &store.FeatureMatrix{Meta: store.FeatureMeta{Modality: f.mod, Encoder: "test", IDMapSHA256: ds.Manifest.IDMapSHA256},
			Rows: nItems, Dim: f.d, Tokens: f.T, Data: make([]float32, nItems*f.T*f.d), NTokens: make([]int32, nItems), Valid: make([]bool, nItems)}
		for i := range nItems {
			if i == f.noneItem {
				continue
			}
			m.Valid[i] = true
			m.NTokens[i] = int32(1 + (i % f.T))
			for k := range int(m.NTokens[i]) * f.d {
				m.Data[i*f.T*f.d+k] = float32(r.NormFloat64())
			}
		}
		if err := store.WriteFeatures(ds.Path(store.FeaturesDir, f.mod+".test.tokens.arrow"), m); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var small = []string{"model.dim=16", "model.fusion_heads=2", "model.heads=2", "model.blocks=1", "model.batch_size=32",
	"model.lr=0.003", "model.weight_decay=0.01", "model.max_seq_len=8", "model.item_bucket=32", "model.eval_batch=64", "eval_batch=128"}

func sets(extra ...string) []string { return append(append([]string{}, small...), extra...) }

func TestPMMRecLearnsTheNextItem(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	ds := cycleDataset(t, 300, 40, 4)
	root := t.TempDir()
	p, err := train.Run(context.Background(), pop.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "pop"), Version: "test",
		Sets: []string{"protocol=seq-loo-masked"}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := train.Run(context.Background(), pmmrec.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "pmmrec"), Version: "test",
		Sets: sets("epochs=12")})
	if err != nil {
		t.Fatal(err)
	}
	h, ph := rep.Test["hit@10"], p.Test["hit@10"]
	t.Logf("pmmrec test hit@10 %.3f ndcg@10 %.3f (popularity %.3f), best epoch %d, %.2f s/epoch", h, rep.Test["ndcg@10"], ph, rep.BestEpoch, rep.EpochSeconds)
	if rep.Protocol != string(eval.SeqLOOMasked) {
		t.Errorf("protocol %q, want seq-loo-masked", rep.Protocol)
	}
	// The masked protocol removes ~10 history items of 40, so popularity
	// is not far from 10/30 here.
	if h < 0.9 || h < 2*ph {
		t.Errorf("pmmrec test hit@10 %.3f: want ≥ 0.9 and ≥ 2× popularity (%.3f)", h, ph)
	}
}

func TestPMMRecResumeIsExact(t *testing.T) {
	ds := cycleDataset(t, 100, 30, 4)
	for _, stage := range []string{pmmrec.StageFinetune, pmmrec.StagePretrain} {
		t.Run(stage, func(t *testing.T) {
			root := t.TempDir()
			s := sets("epochs=2", "model.stage="+stage, "model.dropout=0.1")
			want, err := train.Run(context.Background(), pmmrec.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "full"), Version: "test", Sets: s})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(root, "cut")
			resumetest.InterruptResume(t, pmmrec.Factory(), train.Options{Dataset: ds, Out: out, Version: "test", Sets: s}, want.Test)
			a, _ := os.ReadFile(filepath.Join(root, "full", "metrics.jsonl"))
			b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
			if la, lb := lossesOf(string(a)), lossesOf(string(b)); la != lb || la == "" {
				t.Errorf("losses differ:\n%s\n%s", la, lb)
			}
			if stage == pmmrec.StagePretrain && !strings.Contains(string(a), `"nicl"`) {
				t.Errorf("pre-training metrics without the nicl term: %s", a)
			}
		})
	}
}

func lossesOf(s string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if i := strings.Index(line, `"loss":`); i >= 0 {
			j := strings.IndexAny(line[i+7:], ",}")
			out = append(out, line[i+7:i+7+j])
		}
	}
	return strings.Join(out, " ")
}

// newModel builds a pmmrec for ds with sets and an optional --init
// checkpoint, as the trainer does.
func newModel(t *testing.T, ds string, init *train.Checkpoint, s []string) (train.Model, error) {
	t.Helper()
	f := pmmrec.Factory()
	cfg, err := train.ResolveConfig(f, "", s)
	if err != nil {
		return nil, err
	}
	data, err := train.LoadData(context.Background(), ds, "", eval.SeqLOOMasked)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	env := &train.Env{Data: data, Config: cfg, InitRNG: train.NewRNG(cfg.Seed, train.StreamInit), Workers: 1,
		Log: slog.New(slog.NewTextHandler(&logged, nil)), Init: init}
	m, err := f.New(env)
	if err == nil && init != nil && !strings.Contains(logged.String(), "pmmrec transfer") {
		t.Errorf("the transfer was not logged: %s", logged.String())
	}
	return m, err
}

func TestTransferModes(t *testing.T) {
	src := cycleDataset(t, 60, 30, 4)
	dst := cycleDataset(t, 50, 20, 4) // another catalogue, same token widths
	root := t.TempDir()
	if _, err := train.Run(context.Background(), pmmrec.Factory(), train.Options{Dataset: src, Out: filepath.Join(root, "pre"), Version: "test",
		Sets: sets("epochs=1", "model.stage=pretrain")}); err != nil {
		t.Fatal(err)
	}
	ckPath := filepath.Join(root, "pre", train.CheckpointsDir, train.LastCheckpoint)
	ck, err := train.ReadCheckpoint(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := newModel(t, dst, nil, sets())
	if err != nil {
		t.Fatal(err)
	}
	freshState := map[string][]float32{}
	for _, ts := range fresh.State() {
		freshState[ts.Name] = slices.Clone(ts.F32)
	}
	userLinear := func(name string) bool {
		return strings.HasPrefix(name, "p.user.") && !strings.Contains(name, ".ln")
	}
	tests := []struct {
		mode   string
		copied func(name string) bool
	}{
		{"full", func(n string) bool { return strings.HasPrefix(n, "p.") }},
		{"item_encoder", func(n string) bool { return strings.HasPrefix(n, "p.") && !userLinear(n) }},
		{"user_encoder", func(n string) bool { return strings.HasPrefix(n, "p.user.") }},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			m, err := newModel(t, dst, ck, sets("model.transfer="+tc.mode))
			if err != nil {
				t.Fatal(err)
			}
			nCopied := 0
			for _, ts := range m.State() {
				if ts.F32 == nil {
					if ts.I64[0] != 0 {
						t.Errorf("%s = %d after the transfer, want 0 (not transferred)", ts.Name, ts.I64[0])
					}
					continue
				}
				src := ck.Tensors[ts.Name].F32
				if tc.copied(ts.Name) {
					nCopied++
					if !slices.Equal(ts.F32, src) {
						t.Errorf("%s: not the checkpoint's values", ts.Name)
					}
					continue
				}
				if !slices.Equal(ts.F32, freshState[ts.Name]) {
					t.Errorf("%s: not the fresh initialisation", ts.Name)
				}
				if strings.HasPrefix(ts.Name, "p.") && slices.Equal(ts.F32, src) {
					t.Errorf("%s: equals the checkpoint's although not transferred", ts.Name)
				}
			}
			if nCopied == 0 {
				t.Error("nothing copied")
			}
		})
	}
	// Through the trainer: user_encoder then one epoch.
	rep, err := train.Run(context.Background(), pmmrec.Factory(), train.Options{Dataset: dst, Out: filepath.Join(root, "ft"), Version: "test",
		Init: ckPath, Sets: sets("epochs=1", "model.transfer=user_encoder")})
	if err != nil {
		t.Fatal(err)
	}
	if rep.EpochsRun != 1 {
		t.Errorf("%d epochs", rep.EpochsRun)
	}
	// Token widths that differ from the checkpoint's projections.
	wide := cycleDataset(t, 30, 20, 7)
	for _, mode := range []string{"full", "item_encoder"} {
		if _, err := newModel(t, wide, ck, sets("model.transfer="+mode)); err == nil || !strings.Contains(err.Error(), "7 wide") {
			t.Errorf("%s transfer with 7-wide text tokens onto a 4-wide checkpoint: error %v", mode, err)
		}
	}
	// user_encoder does not read the projections: widths may differ.
	if _, err := newModel(t, wide, ck, sets("model.transfer=user_encoder")); err != nil {
		t.Errorf("user_encoder transfer with other token widths: %v", err)
	}
	// A text tower takes the text projection of a modal checkpoint.
	if _, err := newModel(t, dst, ck, sets("model.tower=text", "model.transfer=full")); err != nil {
		t.Errorf("text tower from a modal checkpoint: %v", err)
	}
	// A different width of the model.
	if _, err := newModel(t, dst, ck, sets("model.dim=32", "model.transfer=full")); err == nil || !strings.Contains(err.Error(), "shape") && !strings.Contains(err.Error(), "float32") {
		t.Errorf("dim 32 from a dim-16 checkpoint: error %v", err)
	}
}

func TestBadConfigs(t *testing.T) {
	ds := cycleDataset(t, 20, 10, 4)
	tests := []struct {
		sets []string
		want string
	}{
		{[]string{"model.stage=train"}, "stage"},
		{[]string{"model.transfer=everything"}, "transfer"},
		{[]string{"model.tower=audio"}, "tower"},
		{[]string{"model.fusion_heads=3"}, "fusion_heads"},
		{[]string{"model.heads=5"}, "heads"},
		{[]string{"model.dropout=1"}, "dropout"},
		{[]string{"model.noise_rate=0"}, "noise_rate"},
		{[]string{"model.temperature=0"}, "temperature"},
		{[]string{"model.text_features="}, "text_features"},
		{[]string{"model.tower=text", "model.stage=pretrain"}, "nicl_weight"},
		{[]string{"model.text_features=audio"}, "audio"},
	}
	for _, tc := range tests {
		_, err := newModel(t, ds, nil, sets(tc.sets...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %q", tc.sets, err, tc.want)
		}
	}
	// Pooled features are read as one token per item.
	if _, err := newModel(t, ds, nil, sets("model.text_features=text.imported", "model.image_features=image.imported")); err != nil {
		t.Logf("features: %v", listFeatures(t, ds))
		t.Errorf("pooled features as single tokens: %v", err)
	}
	// The id and single-modality towers build.
	for _, tower := range []string{"text", "image", "id"} {
		if _, err := newModel(t, ds, nil, sets("model.tower="+tower)); err != nil {
			t.Errorf("tower %s: %v", tower, err)
		}
	}
}

func listFeatures(t *testing.T, ds string) []string {
	d, err := store.OpenDataset(ds)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := d.FeatureFiles()
	return f
}

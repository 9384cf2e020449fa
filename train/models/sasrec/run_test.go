package sasrec_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/internal/resumetest"
	"github.com/mmpipe/mmpipe/train/models/pop"
	"github.com/mmpipe/mmpipe/train/models/sasrec"
)

// cycleDataset writes a dataset whose users walk a cycle of items: user u
// starts at a random item and then visits item+1, item+2, ... (mod items),
// one step per timestamp. The next item is a function of the last one, so
// a sequence model can reach hit@10 ≈ 1 where popularity stays near
// 10/items. Split: leave-one-out.
func cycleDataset(t *testing.T, users, items int) string {
	t.Helper()
	root := t.TempDir()
	var b strings.Builder
	r := rand.New(rand.NewPCG(11, 12))
	for u := range users {
		start, n := r.IntN(items), 6+r.IntN(10)
		for k := range n {
			fmt.Fprintf(&b, "I%03d,U%04d,5,%d\n", (start+k)%items, u, 1_500_000_000+k*60)
		}
	}
	in := filepath.Join(root, "Cycle.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "ds")
	if _, err := dataset.Ingest(context.Background(), dataset.Options{Format: "amazon2018", Inputs: []string{in}, Out: out,
		Splits: dataset.SplitOptions{Names: []string{"loo"}, Seed: 1}, Version: "test", MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	return out
}

var small = []string{"model.dim=32", "model.inner=64", "model.batch_size=64", "model.lr=0.005",
	"model.hidden_dropout=0.1", "model.attn_dropout=0.1", "model.max_len=12", "model.len_bucket=4", "eval_batch=128"}

func TestSASRecLearnsTheNextItem(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	ds := cycleDataset(t, 400, 60)
	root := t.TempDir()
	p, err := train.Run(context.Background(), pop.Factory(), train.Options{Dataset: ds, Split: "loo", Out: filepath.Join(root, "pop"), Version: "test",
		Sets: []string{"protocol=seq-loo"}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := train.Run(context.Background(), sasrec.Factory(), train.Options{Dataset: ds, Split: "loo", Out: filepath.Join(root, "sasrec"), Version: "test",
		Sets: append(small, "epochs=12", "patience=0")})
	if err != nil {
		t.Fatal(err)
	}
	h, ph := rep.Test["hit@10"], p.Test["hit@10"]
	t.Logf("sasrec test hit@10 %.3f ndcg@10 %.3f (popularity %.3f), best epoch %d, %.2f s/epoch", h, rep.Test["ndcg@10"], ph, rep.BestEpoch, rep.EpochSeconds)
	if rep.Protocol != "seq-loo" {
		t.Errorf("protocol %q, want seq-loo", rep.Protocol)
	}
	if h < 0.8 || h < 3*ph {
		t.Errorf("sasrec test hit@10 %.3f: want ≥ 0.8 and ≥ 3× popularity (%.3f)", h, ph)
	}
}

func TestSASRecResumeIsExact(t *testing.T) {
	ds := cycleDataset(t, 200, 40)
	root := t.TempDir()
	sets := append(small, "epochs=3", "patience=0", "model.max_tokens=200")
	want, err := train.Run(context.Background(), sasrec.Factory(), train.Options{Dataset: ds, Split: "loo", Out: filepath.Join(root, "full"), Version: "test", Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "cut")
	got := resumetest.InterruptResume(t, sasrec.Factory(), train.Options{Dataset: ds, Split: "loo", Out: out, Version: "test", Sets: sets}, want.Test)
	for k, v := range want.Valid {
		if got.Valid[k] != v {
			t.Errorf("valid %s: resumed %v, uninterrupted %v", k, got.Valid[k], v)
		}
	}
	a, err := os.ReadFile(filepath.Join(root, "full", "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if la, lb := lossesOf(string(a)), lossesOf(string(b)); la != lb {
		t.Errorf("losses differ:\n%s\n%s", la, lb)
	}
}

// lossesOf extracts the "loss" values of metrics.jsonl lines.
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

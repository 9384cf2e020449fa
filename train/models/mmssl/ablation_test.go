package mmssl

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// TestNoAdversarial checks the ablation without the adversarial part: no
// critic is built (nor checkpointed), a batch runs a single recommender
// forward (the critic step's is skipped), the critic's losses and the
// adversarial term are not reported, and the total loss is the sum of the
// remaining terms.
func TestNoAdversarial(t *testing.T) {
	for _, mode := range []string{Faithful, Intended} {
		t.Run(mode, func(t *testing.T) {
			d := tinyData(t, 9, 16, 6)
			cfg := stepConfig()
			cfg.Mode, cfg.TopK, cfg.NoAdversarial = mode, 3, true
			m := tinyModel(t, d, cfg, 3, 2)
			if m.critic != nil {
				t.Fatal("no_adversarial built a critic")
			}
			for _, ts := range m.State() {
				if strings.HasPrefix(ts.Name, "critic.") {
					t.Errorf("checkpoint state holds %s", ts.Name)
				}
			}
			forwards := 0
			m.hooks = &hooks{forward: func() { forwards++ }}
			rng := train.NewRNG(2, train.StreamTrain)
			before := m.paramsCopy()
			for b := range 3 {
				l, err := m.TrainBatch(context.Background(), rng)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"d_loss", "d_real", "d_fake", "gp", "g_adv"} {
					if _, ok := l[k]; ok {
						t.Errorf("batch %d: loss %s reported without the adversarial part", b, k)
					}
				}
				want := l["bpr"] + l["reg"] + l["feat_reg"] + cfg.CLRate*l["cl"]
				if _, ok := l["cl"]; !ok || math.Abs(l["loss"]-want) > 1e-12*max(1, math.Abs(want)) {
					t.Errorf("batch %d: loss %v, want bpr + reg + feat_reg + cl_rate·cl = %v (cl reported: %v)", b, l["loss"], want, ok)
				}
			}
			if forwards != 3 {
				t.Errorf("%d recommender forwards in 3 batches, want 3 (no critic step)", forwards)
			}
			if slices.EqualFunc(before, m.paramsCopy(), slices.Equal) {
				t.Error("the recommender did not train")
			}
		})
	}
}

// TestNoContrastive checks the ablation cl_rate = 0: from the same state
// and draws, a batch reports no cl term and otherwise the same critic and
// recommender losses as with the contrastive term, and the recommender's
// update differs (the InfoNCE gradient is gone). Batch 0 uses the initial
// generated graphs, where the InfoNCE has a gradient even in faithful mode.
func TestNoContrastive(t *testing.T) {
	d := tinyData(t, 9, 16, 6)
	on := stepConfig()
	off := stepConfig()
	off.CLRate = 0
	a, b := tinyModel(t, d, on, 3, 2), tinyModel(t, d, off, 3, 2)
	la, err := a.TrainBatch(context.Background(), train.NewRNG(4, train.StreamTrain))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.TrainBatch(context.Background(), train.NewRNG(4, train.StreamTrain))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lb["cl"]; ok {
		t.Error("cl reported with cl_rate 0")
	}
	if !(la["cl"] > 0) {
		t.Fatalf("cl %v with cl_rate %v", la["cl"], on.CLRate)
	}
	for _, k := range []string{"bpr", "reg", "feat_reg", "d_loss", "g_adv"} {
		if la[k] != lb[k] {
			t.Errorf("%s: %v with the contrastive term, %v without", k, la[k], lb[k])
		}
	}
	if want := la["loss"] - on.CLRate*la["cl"]; math.Abs(lb["loss"]-want) > 1e-9 {
		t.Errorf("loss %v without the contrastive term, want %v", lb["loss"], want)
	}
	pa, pb := a.paramsCopy(), b.paramsCopy()
	if slices.Equal(pa[0], pb[0]) {
		t.Error("user ID embeddings updated the same with and without the contrastive term")
	}
}

// TestNoModality checks the ablation without the modality branch: U* and
// I* are the reference forward with model_cat_rate = id_cat_rate = 0
// (the ID/CF branch alone), and neither the features nor the modality
// projections change the scores, which they do without the switch.
func TestNoModality(t *testing.T) {
	d := tinyData(t, 9, 16, 6)
	scores := func(m *Model) []float32 {
		t.Helper()
		sc, err := m.Scorer(context.Background(), store.PartValid)
		if err != nil {
			t.Fatal(err)
		}
		users := []int32{0, 3, 8}
		out := make([]float32, len(users)*d.NumItems)
		if err := sc(users, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	perturb := func(m *Model) {
		rng := train.NewRNG(7, 7)
		for k := range m.nm {
			sparse.InitNormal(m.feats[k], 3, rng.Rand)
			m.featsT[k] = m.feats[k].Transpose()
			sparse.InitNormal(m.wm[k], 1, rng.Rand)
		}
	}
	for _, mode := range []string{Faithful, Intended} {
		t.Run(mode, func(t *testing.T) {
			cfg := stepConfig()
			cfg.Mode, cfg.TopK = mode, 3
			plain := tinyModel(t, d, cfg, 3, 2)
			s0 := scores(plain)
			perturb(plain)
			if slices.Equal(s0, scores(plain)) {
				t.Fatal("features do not influence the scores even with the modality branch")
			}
			abl := *cfg
			abl.NoModality = true
			m := tinyModel(t, d, &abl, 3, 2)
			// A few batches first, so that the (intended) generated graphs
			// are no longer the initial ones.
			rng := train.NewRNG(2, train.StreamTrain)
			for range 3 {
				if _, err := m.TrainBatch(context.Background(), rng); err != nil {
					t.Fatal(err)
				}
			}
			s1 := scores(m)
			perturb(m)
			if s2 := scores(m); !slices.Equal(s1, s2) {
				t.Error("features changed the scores with no_modality")
			}
			if mode != Faithful {
				return
			}
			// Faithful, before training: the ID/CF branch of the float64
			// reference forward.
			m = tinyModel(t, d, &abl, 3, 2)
			if err := m.buildGraphs(); err != nil {
				t.Fatal(err)
			}
			if err := m.forward(nil); err != nil {
				t.Fatal(err)
			}
			ref := *cfg
			ref.ModelCatRate, ref.IDCatRate = 0, 0
			var ones []dense
			for range m.nm {
				o := newDense(m.ni, m.d)
				for j := range o.v {
					o.v[j] = 1
				}
				ones = append(ones, o)
			}
			o := refForward(&ref, d, m.feats, refParamsOf(m), ones)
			for _, p := range []struct {
				name string
				got  sparse.Mat
				want dense
			}{{"U*", m.fw.ustar, o.ustar}, {"I*", m.fw.istar, o.istar}} {
				for j, v := range p.got.Data {
					if math.Abs(float64(v)-p.want.v[j]) > 1e-5 {
						t.Fatalf("%s[%d] = %v, want %v", p.name, j, v, p.want.v[j])
					}
				}
			}
		})
	}
}

package mf

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

func tiny(t *testing.T) *train.Data {
	t.Helper()
	us := []int32{0, 0, 1, 1, 2, 3}
	is := []int32{0, 1, 1, 2, 3, 0}
	r, err := sparse.Bipartite(4, 4, us, is)
	if err != nil {
		t.Fatal(err)
	}
	s := &store.Split{}
	for k := range us {
		s.AppendRow(us[k], is[k], 1, int64(k), store.PartTrain)
	}
	return &train.Data{NumUsers: 4, NumItems: 4, Train: r, TrainRows: len(us), Split: s}
}

func newModel(t *testing.T, cfg *Config) *Model {
	t.Helper()
	env := &train.Env{Data: tiny(t), Config: train.DefaultConfig(cfg), InitRNG: train.NewRNG(3, train.StreamInit), Workers: 1}
	m, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Model)
}

func TestGradientBothOptimizers(t *testing.T) {
	u, p, n := []int32{0, 2, 0}, []int32{4 + 1, 4 + 3, 4 + 0}, []int32{4 + 2, 4 + 0, 4 + 2}
	var dense sparse.Mat
	for _, opt := range []string{"adam", "sparse_adam"} {
		cfg := DefaultConfig()
		cfg.Dim, cfg.BatchSize, cfg.Reg, cfg.InitStd, cfg.Optimizer = 3, 3, 0.1, 0.5, opt
		m := newModel(t, cfg)
		if _, _, err := m.lossGrad(u, p, n); err != nil {
			t.Fatal(err)
		}
		var g sparse.Mat
		if opt == "adam" {
			g = m.dense.Clone()
			dense = g
		} else {
			g = m.rowGrad.Dense()
			if !slices.Equal(g.Data, dense.Data) {
				t.Errorf("row-sparse gradient differs from the dense one")
			}
			// Only the batch's rows are touched: users 1 and 3 are not in it.
			for _, r := range m.rowGrad.Rows {
				if r == 1 || r == 3 {
					t.Errorf("row %d touched but not in the batch", r)
				}
			}
		}
		const eps = 1e-2
		for e := range m.emb.Data {
			old := m.emb.Data[e]
			m.emb.Data[e] = old + eps
			bp, rp, _ := m.lossGrad(u, p, n)
			m.emb.Data[e] = old - eps
			bm, rm, _ := m.lossGrad(u, p, n)
			m.emb.Data[e] = old
			num := ((bp + rp) - (bm + rm)) / (2 * eps)
			if math.Abs(num-float64(g.Data[e])) > 1e-3*max(1, math.Abs(num)) {
				t.Errorf("%s: element %d: analytic %v, numeric %v", opt, e, g.Data[e], num)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Optimizer = "sgd"
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "optimizer:") {
		t.Errorf("error %v", err)
	}
	cfg = DefaultConfig()
	cfg.Dim = 0
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "dim:") {
		t.Errorf("error %v", err)
	}
}

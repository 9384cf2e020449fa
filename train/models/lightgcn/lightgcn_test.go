package lightgcn

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// tiny returns a 6-user, 5-item training graph (user 5 has no items).
func tiny(t *testing.T) *train.Data {
	t.Helper()
	us := []int32{0, 0, 1, 1, 2, 3, 3, 4, 4, 4}
	is := []int32{0, 1, 1, 2, 3, 0, 4, 1, 2, 4}
	r, err := sparse.Bipartite(6, 5, us, is)
	if err != nil {
		t.Fatal(err)
	}
	s := &store.Split{}
	for k := range us {
		s.AppendRow(us[k], is[k], 1, int64(k), store.PartTrain)
	}
	return &train.Data{NumUsers: 6, NumItems: 5, Train: r, TrainRows: len(us), Split: s}
}

func newModel(t *testing.T, d *train.Data, cfg *Config) *Model {
	t.Helper()
	env := &train.Env{Data: d, Config: train.DefaultConfig(cfg), InitRNG: train.NewRNG(1, train.StreamInit), Workers: 2}
	m, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Model)
}

// TestStepGradient checks the whole chain (propagation Op, gather, BPR,
// L2 on the ego rows, the Op's VJP) against finite differences of the loss.
func TestStepGradient(t *testing.T) {
	d := tiny(t)
	for _, layers := range []int{0, 1, 3} {
		cfg := DefaultConfig()
		cfg.Dim, cfg.Layers, cfg.BatchSize, cfg.Reg, cfg.InitStd = 4, layers, 3, 0.05, 0.5
		m := newModel(t, d, cfg)
		u, p, n := []int32{0, 3, 0}, []int32{6 + 1, 6 + 4, 6 + 0}, []int32{6 + 3, 6 + 2, 6 + 3}
		bpr, reg, g, err := m.lossGrad(u, p, n)
		if err != nil {
			t.Fatal(err)
		}
		if reg <= 0 || bpr <= 0 {
			t.Fatalf("loss terms %v %v", bpr, reg)
		}
		analytic := g.Clone()
		loss := func() float64 {
			b, r, _, err := m.lossGrad(u, p, n)
			if err != nil {
				t.Fatal(err)
			}
			return b + r
		}
		const eps = 1e-2
		worst := 0.0
		for e := range m.ego.Data {
			old := m.ego.Data[e]
			m.ego.Data[e] = old + eps
			lp := loss()
			m.ego.Data[e] = old - eps
			lm := loss()
			m.ego.Data[e] = old
			num := (lp - lm) / (2 * eps)
			worst = max(worst, math.Abs(num-float64(analytic.Data[e]))/max(1e-2, math.Abs(num)))
		}
		if worst > 2e-2 {
			t.Errorf("layers %d: gradient differs from finite differences by %.3g (relative)", layers, worst)
		}
	}
}

func TestScorerIsPropagatedDot(t *testing.T) {
	d := tiny(t)
	cfg := DefaultConfig()
	cfg.Dim, cfg.Layers = 8, 2
	m := newModel(t, d, cfg)
	score, err := m.Scorer(context.Background(), store.PartTest)
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float32, 2*5)
	if err := score([]int32{4, 1}, scores); err != nil {
		t.Fatal(err)
	}
	// Dense reference: F = (E + ÂE + Â²E)/3.
	a := sparse.NormalizedAdjacency(d.Train).Dense()
	n := 11
	e := m.ego
	f := make([]float64, n*8)
	cur := make([]float64, n*8)
	for k, v := range e.Data {
		cur[k], f[k] = float64(v), float64(v)
	}
	for range 2 {
		nxt := make([]float64, n*8)
		for i := range n {
			for j := range n {
				if w := float64(a.Data[i*n+j]); w != 0 {
					for c := range 8 {
						nxt[i*8+c] += w * cur[j*8+c]
					}
				}
			}
		}
		for k := range f {
			f[k] += nxt[k]
		}
		cur = nxt
	}
	for b, u := range []int{4, 1} {
		for i := range 5 {
			want := 0.0
			for c := range 8 {
				want += f[u*8+c] / 3 * f[(6+i)*8+c] / 3
			}
			if got := float64(scores[b*5+i]); math.Abs(got-want) > 1e-5 {
				t.Errorf("score(user %d, item %d) = %v, want %v", u, i, got, want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Dim = 0 }, "dim:"},
		{func(c *Config) { c.Layers = -1 }, "layers:"},
		{func(c *Config) { c.LR = 0 }, "lr:"},
		{func(c *Config) { c.BatchSize = 0 }, "batch_size:"},
		{func(c *Config) { c.Reg = -1 }, "reg:"},
		{func(c *Config) { c.InitStd = 0 }, "init_std:"},
	} {
		cfg := DefaultConfig()
		c.mut(cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("error %v, want prefix %q", err, c.want)
		}
	}
	if d := DefaultConfig(); d.Dim != 64 || d.Layers != 3 || d.LR != 1e-3 || d.BatchSize != 2048 || d.Reg != 1e-4 {
		t.Errorf("defaults %+v differ from the LightGCN reference", d)
	}
}

// Package lightgcn is LightGCN (He et al., SIGIR 2020) as its reference
// implementation (gusye1234/LightGCN-PyTorch) trains it: user and item
// embeddings E⁰ propagated over the symmetric normalised user–item graph
// Â = D^-1/2 A D^-1/2 with no transform and no non-linearity, final
// embeddings = mean of layers 0..L, score = dot product, loss = BPR with
// one uniformly sampled negative + reg · ½ Σ‖e⁰‖² / B over the batch's ego
// (layer-0) embeddings, dense Adam.
//
// Propagation and its backward pass are the native kernels of
// train/sparse, chained through the Op boundary: a sparse.PropagateOp
// computes the final embeddings, the BPR loss (plain Go here) gives their
// gradient, and the Op's VJP returns the gradient of the ego embeddings.
// Because that gradient reaches nearly every row (every node within L hops
// of the batch), the optimiser is PyTorch's dense Adam, as in the reference
// and the PyTorch comparison script.
package lightgcn

import (
	"context"
	"fmt"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Config is LightGCN's configuration (model.* keys).
type Config struct {
	// Dim is the embedding size (reference: recdim 64).
	Dim int `yaml:"dim" json:"dim"`
	// Layers is the number of propagation layers L (reference: 3).
	Layers int `yaml:"layers" json:"layers"`
	// LR is Adam's learning rate (reference: 1e-3).
	LR float64 `yaml:"lr" json:"lr"`
	// BatchSize is the number of BPR triples per step (reference:
	// bpr_batch 2048); an epoch has ⌈training rows / BatchSize⌉ steps.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// Reg weighs the L2 term on the ego embeddings (reference: decay 1e-4).
	Reg float64 `yaml:"reg" json:"reg"`
	// InitStd is the standard deviation of the normal initialisation
	// (reference: 0.1).
	InitStd float64 `yaml:"init_std" json:"init_std"`
}

// DefaultConfig returns the reference's defaults.
func DefaultConfig() *Config {
	return &Config{Dim: 64, Layers: 3, LR: 1e-3, BatchSize: 2048, Reg: 1e-4, InitStd: 0.1}
}

// Validate checks the keys.
func (c *Config) Validate() error {
	switch {
	case c.Dim < 1:
		return fmt.Errorf("dim: must be ≥ 1, got %d", c.Dim)
	case c.Layers < 0:
		return fmt.Errorf("layers: must be ≥ 0, got %d", c.Layers)
	case !(c.LR > 0):
		return fmt.Errorf("lr: must be positive, got %v", c.LR)
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size: must be ≥ 1, got %d", c.BatchSize)
	case !(c.Reg >= 0):
		return fmt.Errorf("reg: must be ≥ 0, got %v", c.Reg)
	case !(c.InitStd > 0):
		return fmt.Errorf("init_std: must be positive, got %v", c.InitStd)
	}
	return nil
}

// Factory returns the model's factory.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "lightgcn",
		Describe:  "LightGCN: mean of graph-propagated embeddings, BPR",
		Protocol:  eval.Graph,
		NewConfig: func() train.ModelConfig { return DefaultConfig() },
		New:       New,
	}
}

// Model is LightGCN's state.
type Model struct {
	cfg     *Config
	nu, ni  int
	ego     sparse.Mat // (U+I) × dim, users first
	opt     *sparse.Adam
	prop    *sparse.PropagateOp // training
	evalOp  *sparse.PropagateOp // scoring
	sampler *train.BPRSampler
	batches int

	u, p, n    []int32 // p, n hold node rows (item + U)
	fu, fp, fn sparse.Mat
	gu, gp, gn sparse.Mat
	gFinal     sparse.Mat
}

// New builds the graph and initialises the embeddings from env.InitRNG.
func New(env *train.Env) (train.Model, error) {
	cfg, ok := env.Config.Model.(*Config)
	if !ok {
		return nil, fmt.Errorf("lightgcn: config is %T", env.Config.Model)
	}
	d := env.Data
	s, err := train.NewBPRSampler(d.Train)
	if err != nil {
		return nil, err
	}
	adj := sparse.NormalizedAdjacency(d.Train)
	m := &Model{cfg: cfg, nu: d.NumUsers, ni: d.NumItems, sampler: s,
		batches: train.EpochBatches(d.TrainRows, cfg.BatchSize),
		prop:    &sparse.PropagateOp{A: adj, Layers: cfg.Layers, Workers: env.Workers},
		evalOp:  &sparse.PropagateOp{A: adj, Layers: cfg.Layers, Workers: env.Workers},
	}
	n := m.nu + m.ni
	m.ego = sparse.NewMat(n, cfg.Dim)
	sparse.InitNormal(m.ego, cfg.InitStd, env.InitRNG.Rand)
	m.opt = sparse.NewAdam(sparse.DefaultAdam(cfg.LR), n*cfg.Dim, env.Workers)
	b := cfg.BatchSize
	m.u, m.p, m.n = make([]int32, b), make([]int32, b), make([]int32, b)
	for _, x := range []*sparse.Mat{&m.fu, &m.fp, &m.fn, &m.gu, &m.gp, &m.gn} {
		*x = sparse.NewMat(b, cfg.Dim)
	}
	m.gFinal = sparse.NewMat(n, cfg.Dim)
	return m, nil
}

// BatchesPerEpoch is ⌈training rows / batch_size⌉.
func (m *Model) BatchesPerEpoch() int { return m.batches }

// TrainBatch runs forward propagation, BPR, the propagation's VJP and one
// dense Adam step.
func (m *Model) TrainBatch(_ context.Context, rng *train.RNG) (train.Losses, error) {
	m.sampler.Sample(rng, m.u, m.p, m.n)
	off := int32(m.nu)
	for b := range m.p {
		m.p[b] += off
		m.n[b] += off
	}
	bpr, reg, gEgo, err := m.lossGrad(m.u, m.p, m.n)
	if err != nil {
		return nil, err
	}
	if err := m.opt.Update(m.ego.Data, gEgo.Data); err != nil {
		return nil, err
	}
	return train.Losses{"loss": bpr + reg, "bpr": bpr, "reg": reg}, nil
}

// lossGrad returns the BPR and L2 terms of the batch (node rows u, p, n:
// items already offset by the user count) and the gradient of their sum
// with respect to the ego embeddings: the Op chain's forward, the loss, and
// the Op's VJP.
func (m *Model) lossGrad(u, p, n []int32) (bpr, reg float64, gEgo sparse.Mat, err error) {
	final, err := m.prop.Forward([]sparse.Mat{m.ego})
	if err != nil {
		return 0, 0, sparse.Mat{}, err
	}
	for _, g := range []struct {
		dst sparse.Mat
		idx []int32
	}{{m.fu, u}, {m.fp, p}, {m.fn, n}} {
		if err := sparse.Gather(g.dst, final, g.idx); err != nil {
			return 0, 0, sparse.Mat{}, err
		}
	}
	if bpr, err = train.BPR(m.fu, m.fp, m.fn, m.gu, m.gp, m.gn); err != nil {
		return 0, 0, sparse.Mat{}, err
	}
	m.gFinal.Zero()
	for _, g := range []struct {
		idx []int32
		src sparse.Mat
	}{{u, m.gu}, {p, m.gp}, {n, m.gn}} {
		if err := sparse.ScatterAdd(m.gFinal, g.idx, g.src); err != nil {
			return 0, 0, sparse.Mat{}, err
		}
	}
	gs, err := m.prop.VJP(m.gFinal)
	if err != nil {
		return 0, 0, sparse.Mat{}, err
	}
	gEgo = gs[0]
	d := m.cfg.Dim
	add := func(r int32, scale float32, v []float32) {
		row := gEgo.Data[int(r)*d : int(r+1)*d]
		for k := range row {
			row[k] += scale * v[k]
		}
	}
	bsz := len(u)
	reg = train.L2(m.ego, u, m.cfg.Reg, bsz, add) + train.L2(m.ego, p, m.cfg.Reg, bsz, add) + train.L2(m.ego, n, m.cfg.Reg, bsz, add)
	return bpr, reg, gEgo, nil
}

// Scorer propagates the current embeddings once and scores by dot
// products of the final user and item embeddings.
func (m *Model) Scorer(context.Context, int8) (eval.ScoreFunc, error) {
	final, err := m.evalOp.Forward([]sparse.Mat{m.ego})
	if err != nil {
		return nil, err
	}
	d := m.cfg.Dim
	users := sparse.Mat{Rows: m.nu, Cols: d, Data: final.Data[:m.nu*d]}
	items := sparse.Mat{Rows: m.ni, Cols: d, Data: final.Data[m.nu*d:]}
	return train.DotScorer(users, items), nil
}

// State is the ego embeddings and Adam's state.
func (m *Model) State() []train.Tensor {
	n, d := m.nu+m.ni, m.cfg.Dim
	return []train.Tensor{
		train.F32Tensor("embedding", m.ego.Data, n, d),
		train.F32Tensor("adam.m", m.opt.M, n, d),
		train.F32Tensor("adam.v", m.opt.V, n, d),
		train.ScalarI64("adam.step", &m.opt.Step),
	}
}

// Package mf is matrix factorisation trained with BPR (MF-BPR): a user and
// an item embedding table, score = dot product, one uniformly sampled
// negative per (user, positive) pair, loss = BPR + reg · ½ Σ‖e‖² / B over
// the batch's user, positive and negative embeddings (the LightGCN
// reference's PureMF loss), Adam.
//
// The optimiser is chosen with model.optimizer: "sparse_adam" (default) is
// lazy, row-sparse Adam with PyTorch SparseAdam's semantics: only the
// batch's rows are updated, and untouched rows keep their moments; "adam"
// is PyTorch's dense Adam, whose moments decay on every row at every step
// (the reference's torch.optim.Adam over nn.Embedding). See sparse.Adam.
package mf

import (
	"context"
	"fmt"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Config is MF-BPR's configuration (model.* keys).
type Config struct {
	// Dim is the embedding size.
	Dim int `yaml:"dim" json:"dim"`
	// LR is Adam's learning rate.
	LR float64 `yaml:"lr" json:"lr"`
	// BatchSize is the number of triples per step; an epoch has
	// ⌈training rows / BatchSize⌉ steps.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// Reg weighs the L2 term on the batch's embeddings.
	Reg float64 `yaml:"reg" json:"reg"`
	// InitStd is the standard deviation of the normal initialisation.
	InitStd float64 `yaml:"init_std" json:"init_std"`
	// Optimizer is "sparse_adam" (lazy, row-sparse) or "adam" (dense).
	Optimizer string `yaml:"optimizer" json:"optimizer"`
}

// DefaultConfig returns the defaults: dim 64, lr 1e-3 and batch 2048 as
// in the LightGCN reference (whose PureMF shares them), normal
// initialisation with std 0.1, lazy Adam, and reg 0.1. The reference's
// weight decay of 1e-4 lets MF-BPR overfit within a few epochs (TikTok test
// Recall@20 0.026, below popularity's 0.0597); 0.1 reaches about 0.098
// there (BENCHMARKS.md).
func DefaultConfig() *Config {
	return &Config{Dim: 64, LR: 1e-3, BatchSize: 2048, Reg: 0.1, InitStd: 0.1, Optimizer: "sparse_adam"}
}

// Validate checks the keys.
func (c *Config) Validate() error {
	switch {
	case c.Dim < 1:
		return fmt.Errorf("dim: must be ≥ 1, got %d", c.Dim)
	case !(c.LR > 0):
		return fmt.Errorf("lr: must be positive, got %v", c.LR)
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size: must be ≥ 1, got %d", c.BatchSize)
	case !(c.Reg >= 0):
		return fmt.Errorf("reg: must be ≥ 0, got %v", c.Reg)
	case !(c.InitStd > 0):
		return fmt.Errorf("init_std: must be positive, got %v", c.InitStd)
	case c.Optimizer != "sparse_adam" && c.Optimizer != "adam":
		return fmt.Errorf("optimizer: want sparse_adam or adam, got %q", c.Optimizer)
	}
	return nil
}

// Factory returns the model's factory.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "mf",
		Describe:  "matrix factorisation with BPR (MF-BPR)",
		Protocol:  eval.Graph,
		NewConfig: func() train.ModelConfig { return DefaultConfig() },
		New:       New,
	}
}

// Model is MF-BPR's state: one table of users (rows 0..U-1) then items
// (rows U..U+I-1).
type Model struct {
	cfg     *Config
	nu, ni  int
	emb     sparse.Mat
	opt     *sparse.Adam
	sampler *train.BPRSampler
	batches int
	workers int

	u, p, n          []int32
	eu, ep, en       sparse.Mat
	gu, gp, gn       sparse.Mat
	rowGrad          *sparse.RowGrad
	dense            sparse.Mat // dense gradient ("adam")
	itemRows, negIdx []int32
}

// New initialises the tables from env.InitRNG.
func New(env *train.Env) (train.Model, error) {
	cfg, ok := env.Config.Model.(*Config)
	if !ok {
		return nil, fmt.Errorf("mf: config is %T", env.Config.Model)
	}
	d := env.Data
	s, err := train.NewBPRSampler(d.Train)
	if err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, nu: d.NumUsers, ni: d.NumItems, sampler: s, workers: env.Workers,
		batches: train.EpochBatches(d.TrainRows, cfg.BatchSize)}
	n := m.nu + m.ni
	m.emb = sparse.NewMat(n, cfg.Dim)
	sparse.InitNormal(m.emb, cfg.InitStd, env.InitRNG.Rand)
	m.opt = sparse.NewAdam(sparse.DefaultAdam(cfg.LR), n*cfg.Dim, env.Workers)
	b := cfg.BatchSize
	m.u, m.p, m.n = make([]int32, b), make([]int32, b), make([]int32, b)
	for _, x := range []*sparse.Mat{&m.eu, &m.ep, &m.en, &m.gu, &m.gp, &m.gn} {
		*x = sparse.NewMat(b, cfg.Dim)
	}
	m.itemRows, m.negIdx = make([]int32, b), make([]int32, b)
	if cfg.Optimizer == "adam" {
		m.dense = sparse.NewMat(n, cfg.Dim)
	} else {
		m.rowGrad = sparse.NewRowGrad(n, cfg.Dim)
	}
	return m, nil
}

// BatchesPerEpoch is ⌈training rows / batch_size⌉.
func (m *Model) BatchesPerEpoch() int { return m.batches }

// TrainBatch samples a batch and takes one Adam step.
func (m *Model) TrainBatch(_ context.Context, rng *train.RNG) (train.Losses, error) {
	m.sampler.Sample(rng, m.u, m.p, m.n)
	off := int32(m.nu)
	for b := range m.p {
		m.itemRows[b], m.negIdx[b] = m.p[b]+off, m.n[b]+off
	}
	bpr, reg, err := m.lossGrad(m.u, m.itemRows, m.negIdx)
	if err != nil {
		return nil, err
	}
	if m.rowGrad != nil {
		err = m.opt.UpdateRows(m.emb.Data, m.rowGrad)
	} else {
		err = m.opt.Update(m.emb.Data, m.dense.Data)
	}
	if err != nil {
		return nil, err
	}
	return train.Losses{"loss": bpr + reg, "bpr": bpr, "reg": reg}, nil
}

// lossGrad returns the BPR and L2 terms of the batch (table rows u, p, n:
// items already offset by the user count) and leaves the gradient of their
// sum in the row-sparse gradient (sparse_adam) or the dense one (adam).
func (m *Model) lossGrad(u, p, n []int32) (bpr, reg float64, err error) {
	for _, g := range []struct {
		dst sparse.Mat
		idx []int32
	}{{m.eu, u}, {m.ep, p}, {m.en, n}} {
		if err := sparse.Gather(g.dst, m.emb, g.idx); err != nil {
			return 0, 0, err
		}
	}
	if bpr, err = train.BPR(m.eu, m.ep, m.en, m.gu, m.gp, m.gn); err != nil {
		return 0, 0, err
	}
	var add func(r int32, scale float32, v []float32)
	if m.rowGrad != nil {
		m.rowGrad.Reset()
		add = m.rowGrad.Add
	} else {
		m.dense.Zero()
		d := m.cfg.Dim
		add = func(r int32, scale float32, v []float32) {
			row := m.dense.Data[int(r)*d : int(r+1)*d]
			for k := range row {
				row[k] += scale * v[k]
			}
		}
	}
	for b := range u {
		add(u[b], 1, m.gu.Row(b))
		add(p[b], 1, m.gp.Row(b))
		add(n[b], 1, m.gn.Row(b))
	}
	bsz := len(u)
	reg = train.L2(m.emb, u, m.cfg.Reg, bsz, add) + train.L2(m.emb, p, m.cfg.Reg, bsz, add) + train.L2(m.emb, n, m.cfg.Reg, bsz, add)
	return bpr, reg, nil
}

// Scorer scores by dot products of the current tables.
func (m *Model) Scorer(context.Context, int8) (eval.ScoreFunc, error) {
	d := m.cfg.Dim
	users := sparse.Mat{Rows: m.nu, Cols: d, Data: m.emb.Data[:m.nu*d]}
	items := sparse.Mat{Rows: m.ni, Cols: d, Data: m.emb.Data[m.nu*d:]}
	return train.DotScorer(users, items), nil
}

// State is the table and Adam's state.
func (m *Model) State() []train.Tensor {
	n, d := m.nu+m.ni, m.cfg.Dim
	return []train.Tensor{
		train.F32Tensor("embedding", m.emb.Data, n, d),
		train.F32Tensor("adam.m", m.opt.M, n, d),
		train.F32Tensor("adam.v", m.opt.V, n, d),
		train.ScalarI64("adam.step", &m.opt.Step),
	}
}

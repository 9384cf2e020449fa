// Package pmmrec is PMMRec (Li et al., ICDE 2024: "Multi-Modality is All
// You Need for Transferable Recommender Systems") as research/models.md §4
// describes its released code, with the text and image backbones (XLM-R,
// CLIP-ViT) frozen: their token states come from `mmpipe encode --tokens`
// (any token count and width; a pooled feature file counts as one token
// per item).
//
// Trainable: per-token projections of both modalities (Linear in→dim,
// Xavier-normal, zero bias); the merged-attention fusion layer (one
// BERT-style post-LN layer over the concatenated text and image tokens,
// additive −10000 for padded tokens, heads of dim/heads, FFN 4·dim with
// exact GELU, LayerNorm eps 1e-12, N(0, 0.02) init) followed by the masked
// mean → item embedding; and the SASRec user encoder (learned positions,
// LayerNorm eps 1e-6, dropout, blocks of multi-head attention without
// biases under a causal ∧ key-valid −1e9 mask, ReLU FFN 4·dim, post-LN).
// Item towers: modal (above), text or image (masked mean of the projected
// tokens of one modality), id (an Xavier-normal embedding table).
//
// # Fine-tuning (stage=finetune)
//
// One sample per user: the last max_seq_len+1 = 21 training items,
// left-padded; slots 0..19 are inputs, slot j+1 the target of position j.
// A batch of 32 users encodes its distinct items once; logits are the
// user-encoder outputs times the item embeddings of all B·21 slots, minus
// log p_pop of each slot's item (popularity over the training samples;
// padding p = 1), padding columns and every column of the row's user's own
// items except the true target set to −1e4, cross-entropy over the real
// input positions (§4.6 steps 1–5). AdamW (decoupled decay on every
// parameter), lr 1e-4, wd 0.1.
//
// # Pre-training (stage=pretrain): our reading of the paper
//
// The paper's objectives are not released; we build them as
// total = next-item loss + nicl_weight·NICL + nid_weight·NID + rcl_weight·RCL
// (defaults 0.4, 0.1, 0.1; temperature 0.1; noise_rate 0.15):
//
//   - NICL: the pooled projected text vector (masked mean of the projected
//     text tokens) and image vector of every real slot, L2-normalised, no
//     projection head. Each of the 2N vectors is an anchor; its positives
//     are the other modality's vector of the same slot and of the next slot
//     of the same sequence; its negatives are all vectors of both
//     modalities whose item differs from both positives' items; loss =
//     mean over positives of −log softmax over positives ∪ negatives of
//     cos/τ, averaged over anchors (text→image and image→text).
//   - NID: in each sequence k = max(1, round(0.15·n)) of its n input items
//     are replaced by uniformly drawn other items; the noised sequence goes
//     through the user encoder (own dropout draws) and a linear head on
//     each position's output classifies noise vs clean (BCE with logits,
//     mean over real positions).
//   - RCL: symmetric InfoNCE (cos/τ) between the last-position outputs of
//     the clean and the noised sequence of the same user, the other users
//     of the batch as negatives.
//
// # Transfer (--init CKPT, transfer=full|item_encoder|user_encoder)
//
// Every parameter is its own checkpoint tensor ("p.<name>"). full copies
// the item encoder and the user encoder; item_encoder copies the item
// encoder and the user encoder's LayerNorms (its Linear and Embedding
// weights keep their fresh Xavier init, as the reference re-initialises
// them); user_encoder copies the whole user encoder (the reference loads
// nothing in that mode). Adam moments, the step count, the NID head and an
// ID table are never copied. Token widths must match the checkpoint's.
//
// Evaluation is seq-loo-masked: the last 20 history items (train for
// valid, train + valid for test), left-padded; the output at the last
// position times every item embedding (computed once per Scorer call, no
// logQ); the history is masked by the protocol.
package pmmrec

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// planStream is pmmrec's PCG stream for epoch plans.
const planStream = 0x9339ec

// Factory describes PMMRec to the trainer.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "pmmrec",
		Describe:  "PMMRec: frozen text/image token states, per-token projections, merged-attention fusion, SASRec user encoder, in-batch logQ loss; pretrain (NICL+NID+RCL) and transfer (--init) (GoMLX)",
		Protocol:  eval.SeqLOOMasked,
		NewConfig: func() train.ModelConfig { return DefaultConfig() },
		// The reference trains a fixed number of epochs (5 in transfer
		// mode) without early stopping, validating every epoch.
		Defaults: func(c *train.Config) { c.Epochs, c.Patience, c.EvalEvery = 5, 0, 1 },
		New:      New,
		Transfer: true,
	}
}

// Model is a PMMRec being trained.
type Model struct {
	cfg      *Config
	lay      *layout
	numItems int
	numUsers int
	workers  int
	split    *store.Split
	log      func(msg string, args ...any)

	tt, tv *tokenTable // nil when the tower does not read the modality

	offs    []int
	params  []float32
	grad    []float32
	opt     *sparse.Adam
	backend compute.Backend
	trainP  *gx.Program
	itemP   *gx.Program
	userP   *gx.Program

	seqs    [][]int32 // per sample: the last L+1 training item rows (≥ 2 of them)
	logPop  []float32 // [items+1]
	batches int

	plan seqdata.Cursor // the epoch plan (its seed and position are checkpointed)
}

// New builds a PMMRec for env's dataset; with env.Init it copies the
// tensors of the configured transfer part.
func New(env *train.Env) (train.Model, error) {
	cfg, ok := env.Config.Model.(*Config)
	if !ok {
		return nil, fmt.Errorf("pmmrec: config is %T", env.Config.Model)
	}
	d := env.Data
	var tt, tv *tokenTable
	var err error
	if cfg.Tower == TowerModal || cfg.Tower == TowerText {
		if tt, err = openTokens(d, cfg.TextFeatures, cfg.MaxTokens); err != nil {
			return nil, fmt.Errorf("pmmrec: text_features: %w", err)
		}
	}
	if cfg.Tower == TowerModal || cfg.Tower == TowerImage {
		if tv, err = openTokens(d, cfg.ImageFeatures, cfg.MaxTokens); err != nil {
			return nil, fmt.Errorf("pmmrec: image_features: %w", err)
		}
	}
	hist, err := seqdata.Histories(d.Split, d.NumUsers, store.PartTrain)
	if err != nil {
		return nil, fmt.Errorf("pmmrec: %w", err)
	}
	m, err := newModel(cfg, d.NumItems, d.NumUsers, max(env.Workers, 1), tt, tv, hist, env.InitRNG.Rand)
	if err != nil {
		return nil, err
	}
	m.split = d.Split
	m.log = env.Log.Info
	if env.Init != nil {
		if err := m.transfer(env.Init); err != nil {
			return nil, err
		}
	}
	dims := func(t *tokenTable) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprintf("%d×%d (%s)", t.T, t.dim, t.name)
	}
	env.Log.Info("pmmrec", "backend", m.backend.Name(), "stage", cfg.Stage, "tower", cfg.Tower,
		"parameters", len(m.params), "text_tokens", dims(tt), "image_tokens", dims(tv),
		"samples", len(m.seqs), "batches_per_epoch", m.batches)
	return m, nil
}

// newModel builds the model from token tables and training histories
// (item indices, chronological).
func newModel(cfg *Config, numItems, numUsers, workers int, tt, tv *tokenTable, hist [][]int32, initRNG *rand.Rand) (*Model, error) {
	m := &Model{cfg: cfg, numItems: numItems, numUsers: numUsers, workers: workers, tt: tt, tv: tv,
		log: func(string, ...any) {}}
	dimT, dimV := 0, 0
	if tt != nil {
		dimT = tt.dim
	}
	if tv != nil {
		dimV = tv.dim
	}
	m.lay = paramLayout(cfg, numItems, dimT, dimV)
	m.offs = []int{0}
	for _, s := range m.lay.specs {
		m.offs = append(m.offs, m.offs[len(m.offs)-1]+prod(s.shape))
	}
	total := m.offs[len(m.offs)-1]
	m.params, m.grad = make([]float32, total), make([]float32, total)
	for k := range m.lay.specs {
		m.initParam(k, initRNG)
	}
	acfg := sparse.DefaultAdam(cfg.LR)
	acfg.WeightDecay, acfg.Decoupled = cfg.WeightDecay, true
	m.opt = sparse.NewAdam(acfg, total, workers)

	S := cfg.MaxSeqLen + 1
	count := make([]float64, numItems+1)
	var n float64
	for _, h := range hist {
		if len(h) < 2 {
			continue
		}
		h = h[max(0, len(h)-S):]
		s := make([]int32, len(h))
		for k, it := range h {
			s[k] = it + 1
			count[it+1]++
			n++
		}
		m.seqs = append(m.seqs, s)
	}
	if len(m.seqs) == 0 {
		return nil, fmt.Errorf("pmmrec: no user has 2 or more training items")
	}
	m.logPop = make([]float32, numItems+1)
	for r := 1; r <= numItems; r++ {
		m.logPop[r] = float32(math.Log(max(count[r], 1) / n))
	}
	m.batches = (len(m.seqs) + cfg.BatchSize - 1) / cfg.BatchSize

	var err error
	if m.backend, err = gx.NewBackend(""); err != nil {
		return nil, fmt.Errorf("pmmrec: %w", err)
	}
	if m.trainP, err = gx.NewProgram(m.backend, "pmmrec.train", 64, trainGraph(cfg, m.lay)); err != nil {
		return nil, err
	}
	if m.itemP, err = gx.NewProgram(m.backend, "pmmrec.items", 4, itemGraph(cfg, m.lay)); err != nil {
		return nil, err
	}
	if m.userP, err = gx.NewProgram(m.backend, "pmmrec.users", 4, userGraph(cfg, m.lay)); err != nil {
		return nil, err
	}
	return m, nil
}

func prod(s []int) int {
	n := 1
	for _, x := range s {
		n *= x
	}
	return n
}

// param returns parameter k's values.
func (m *Model) param(k int) []float32 { return m.params[m.offs[k]:m.offs[k+1]] }

// initParam draws parameter k. Xavier-normal uses PyTorch's fans: a Linear
// [in, out] here (PyTorch's [out, in]) and an Embedding [n, d] both have
// std √(2/(rows+cols)).
func (m *Model) initParam(k int, rng *rand.Rand) {
	s := m.lay.specs[k]
	p := m.param(k)
	switch s.init {
	case initXavier:
		std := math.Sqrt(2 / float64(s.shape[0]+s.shape[len(s.shape)-1]))
		for j := range p {
			p[j] = float32(rng.NormFloat64() * std)
		}
	case initBert:
		for j := range p {
			p[j] = float32(rng.NormFloat64() * 0.02)
		}
	case initOnes:
		for j := range p {
			p[j] = 1
		}
	case initZeros:
		clear(p)
	}
}

// tensor is parameter k as a checkpoint tensor.
func (m *Model) tensor(k int) train.Tensor {
	s := m.lay.specs[k]
	return train.F32Tensor("p."+s.name, m.param(k), s.shape...)
}

// transfers reports whether the transfer part copies parameter k.
func (m *Model) transfers(k int) bool {
	s := m.lay.specs[k]
	switch s.group {
	case groupItem:
		return m.cfg.Transfer != TransferUserEncoder
	case groupUser:
		switch m.cfg.Transfer {
		case TransferFull, TransferUserEncoder:
			return true
		default: // item_encoder: the user encoder's LayerNorms only
			return strings.Contains(s.name, ".ln")
		}
	}
	return false
}

// transfer copies the configured part from a checkpoint and logs what it
// took.
func (m *Model) transfer(ck *train.Checkpoint) error {
	var took []string
	for k, s := range m.lay.specs {
		if !m.transfers(k) {
			continue
		}
		dst := m.tensor(k)
		src, ok := ck.Tensors[dst.Name]
		if !ok {
			return fmt.Errorf("pmmrec: --init: the checkpoint has no %s, which transfer=%s copies for tower %s (was it trained with another tower?)", dst.Name, m.cfg.Transfer, m.cfg.Tower)
		}
		if (k == m.lay.wt || k == m.lay.wv) && len(src.Shape) == 2 && src.Shape[0] != s.shape[0] {
			mod := "text"
			if k == m.lay.wv {
				mod = "image"
			}
			return fmt.Errorf("pmmrec: --init: the %s tokens of this dataset are %d wide, the checkpoint's %s projection takes %d: encode %s with the same encoder as the pre-training dataset",
				mod, s.shape[0], mod, src.Shape[0], mod)
		}
		if err := ck.CopyTensor(dst); err != nil {
			return fmt.Errorf("pmmrec: --init: %w", err)
		}
		took = append(took, dst.Name)
	}
	if len(took) == 0 {
		return fmt.Errorf("pmmrec: --init: transfer=%s copied no tensor", m.cfg.Transfer)
	}
	m.log("pmmrec transfer", "part", m.cfg.Transfer, "tensors", len(took), "copied", strings.Join(took, ","))
	return nil
}

// BatchesPerEpoch implements train.Model.
func (m *Model) BatchesPerEpoch() int { return m.batches }

func (m *Model) fixedBatch(int) int { return m.cfg.BatchSize }

// TrainBatch runs one AdamW step on the next batch of users of the epoch
// plan.
func (m *Model) TrainBatch(ctx context.Context, rng *train.RNG) (train.Losses, error) {
	ref, plan, err := m.plan.Next(rng, nil, func(seed uint64) *seqdata.Plan {
		all := make([]int, len(m.seqs))
		for k := range all {
			all[k] = k
		}
		return seqdata.NewPlan([][]int{all}, m.fixedBatch, seed, planStream)
	})
	if err != nil {
		return nil, err
	}
	rs := plan.Order[ref.Bucket][ref.Lo:ref.Hi]
	seqs := make([][]int32, len(rs))
	for k, r := range rs {
		seqs[k] = m.seqs[r]
	}
	var noiseRNG *train.RNG
	if m.cfg.Stage == StagePretrain {
		noiseRNG = rng
	}
	bt := buildBatch(seqs, m.cfg.BatchSize, m.cfg.MaxSeqLen, m.logPop, m.cfg.ItemBucket, noiseRNG, m.cfg.NoiseRate, m.numItems)
	losses, err := m.step(bt, rng, m.cfg.Dropout)
	if err != nil {
		return nil, err
	}
	if err := m.opt.Update(m.params, m.grad); err != nil {
		return nil, err
	}
	return losses, nil
}

// itemArgs returns the item-encoder inputs for item rows.
func (m *Model) itemArgs(rows []int32) []any {
	U := len(rows)
	tokArgs := func(t *tokenTable) []any {
		if t == nil {
			return []any{gx.F32(make([]float32, U), U, 1, 1), gx.F32(make([]float32, U), U, 1)}
		}
		tok, mask := t.gather(rows)
		return []any{gx.F32(tok, U, t.T, t.dim), gx.F32(mask, U, t.T)}
	}
	args := append(tokArgs(m.tt), tokArgs(m.tv)...)
	return append(args, gx.I32(rows, U))
}

func (m *Model) paramArgs(args []any) []any {
	for k, s := range m.lay.specs {
		args = append(args, gx.F32(m.param(k), s.shape...))
	}
	return args
}

func (m *Model) tokensPerItem() int {
	T := 0
	if m.cfg.Tower == TowerModal {
		T = m.tt.T + m.tv.T
	}
	return T
}

// step runs the training graph on a batch and leaves the gradient in
// m.grad; rng draws the dropout masks (p = 0: none, rng untouched).
func (m *Model) step(bt *batch, rng *train.RNG, p float64) (train.Losses, error) {
	c := m.cfg
	B, L, S := bt.B, bt.L, bt.S
	pre := c.Stage == StagePretrain
	args := m.paramArgs(nil)
	args = append(args, m.itemArgs(bt.rows)...)
	args = append(args, gx.I32(bt.slot, B*S), gx.F32(bt.attnBias, B, L, L), gx.F32(bt.logQ, B*S),
		gx.F32(bt.colMask, B*L, B*S), gx.I32(bt.target, B*L), gx.F32(bt.rowW, B*L))
	if pre {
		A := 2 * B * S
		args = append(args, gx.I32(bt.noised, B*L), gx.F32(bt.noiseY, B*L), gx.F32(bt.posW, A, A),
			gx.F32(bt.cand, A, A), gx.F32(bt.anchorW, A), gx.F32(bt.userW, B))
	}
	dims, _, _ := maskDims(c, bt.U, m.tokensPerItem(), B, pre)
	for _, dd := range dims {
		args = append(args, gx.F32(seqdata.DropMask(rng, prod(dd), p), dd...))
	}
	outs, err := m.trainP.Run(args...)
	if err != nil {
		return nil, fmt.Errorf("pmmrec: %w", err)
	}
	names := []string{"loss", "next_item"}
	if pre {
		names = append(names, "nicl", "nid", "rcl")
	}
	losses := train.Losses{}
	for k, name := range names {
		v, err := gx.Scalar(outs[k])
		if err != nil {
			gx.Release(outs[k+1:]...)
			return nil, err
		}
		losses[name] = v
	}
	nl := len(names)
	for k := range m.lay.specs {
		if err := gx.CopyF32(m.grad[m.offs[k]:m.offs[k+1]], outs[nl+k]); err != nil {
			gx.Release(outs[nl+k+1:]...)
			return nil, fmt.Errorf("pmmrec: gradient of %s: %w", m.lay.specs[k].name, err)
		}
	}
	if l := losses["loss"]; math.IsNaN(l) || math.IsInf(l, 0) {
		return nil, fmt.Errorf("pmmrec: loss is %v", l)
	}
	return losses, nil
}

// ItemTable returns the embeddings of every item row [items+1, dim] (row 0
// = padding) with the current parameters, without dropout.
func (m *Model) ItemTable(ctx context.Context) (sparse.Mat, error) {
	d, C := m.cfg.Dim, m.cfg.EvalBatch
	out := sparse.NewMat(m.numItems+1, d)
	buf := make([]float32, C*d)
	for lo := 0; lo <= m.numItems; lo += C {
		if err := ctx.Err(); err != nil {
			return sparse.Mat{}, err
		}
		rows := make([]int32, C)
		n := min(C, m.numItems+1-lo)
		for k := range n {
			rows[k] = int32(lo + k)
		}
		outs, err := m.itemP.Run(append(m.paramArgs(nil), m.itemArgs(rows)...)...)
		if err != nil {
			return sparse.Mat{}, fmt.Errorf("pmmrec: %w", err)
		}
		if err := gx.CopyF32(buf, outs[0]); err != nil {
			return sparse.Mat{}, err
		}
		copy(out.Data[lo*d:], buf[:n*d])
	}
	return out, nil
}

// Encode returns the user vector of each history (item indices; the last
// max_seq_len are read, left-padded): the user encoder's output at the
// last position. An empty history gives a zero row.
func (m *Model) Encode(ctx context.Context, items sparse.Mat, hist [][]int32) (sparse.Mat, error) {
	c := m.cfg
	d, L, Bu := c.Dim, c.MaxSeqLen, c.EvalBatch
	out := sparse.NewMat(len(hist), d)
	var us []int
	for u, h := range hist {
		if len(h) > 0 {
			us = append(us, u)
		}
	}
	res := make([]float32, Bu*d)
	for lo := 0; lo < len(us); lo += Bu {
		if err := ctx.Err(); err != nil {
			return sparse.Mat{}, err
		}
		part := us[lo:min(lo+Bu, len(us))]
		x := make([]float32, Bu*L*d)
		bias := make([]float32, Bu*L*L)
		for k := range bias {
			bias[k] = -1e9
		}
		for b, u := range part {
			h := hist[u]
			h = h[max(0, len(h)-L):]
			off := L - len(h)
			for j, it := range h {
				copy(x[(b*L+off+j)*d:], items.Row(int(it)+1))
			}
			for q := off; q < L; q++ {
				for k := off; k <= q; k++ {
					bias[(b*L+q)*L+k] = 0
				}
			}
		}
		args := m.paramArgs(nil)
		args = append(args, gx.F32(x, Bu*L, d), gx.F32(bias, Bu, L, L))
		outs, err := m.userP.Run(args...)
		if err != nil {
			return sparse.Mat{}, fmt.Errorf("pmmrec: %w", err)
		}
		if err := gx.CopyF32(res, outs[0]); err != nil {
			return sparse.Mat{}, err
		}
		for b, u := range part {
			copy(out.Row(u), res[b*d:(b+1)*d])
		}
	}
	return out, nil
}

// Scorer implements train.Model: user vectors from the history before
// part (train for valid, train + valid for test) dotted with every item
// embedding; the protocol masks the history.
func (m *Model) Scorer(ctx context.Context, part int8) (eval.ScoreFunc, error) {
	upTo := store.PartTrain
	if part == store.PartTest {
		upTo = store.PartValid
	}
	hist, err := seqdata.Histories(m.split, m.numUsers, upTo)
	if err != nil {
		return nil, fmt.Errorf("pmmrec: %w", err)
	}
	items, err := m.ItemTable(ctx)
	if err != nil {
		return nil, err
	}
	users, err := m.Encode(ctx, items, hist)
	if err != nil {
		return nil, err
	}
	n, d := m.numItems, m.cfg.Dim
	real := sparse.Mat{Rows: n, Cols: d, Data: items.Data[d:]}
	return func(us []int32, scores []float32) error {
		if len(scores) != len(us)*n {
			return fmt.Errorf("pmmrec: score buffer of %d for %d users × %d items", len(scores), len(us), n)
		}
		u := sparse.NewMat(len(us), d)
		if err := sparse.Gather(u, users, us); err != nil {
			return err
		}
		return sparse.MulABt(sparse.Mat{Rows: len(us), Cols: n, Data: scores}, u, real, 1)
	}, nil
}

// State implements train.Model: every parameter as its own tensor (what
// --init transfers by name), the AdamW state and the epoch plan position.
func (m *Model) State() []train.Tensor {
	var st []train.Tensor
	for k := range m.lay.specs {
		st = append(st, m.tensor(k))
	}
	total := len(m.params)
	st = append(st,
		train.F32Tensor("adam.m", m.opt.M, total),
		train.F32Tensor("adam.v", m.opt.V, total),
		train.ScalarI64("adam.step", &m.opt.Step))
	return append(st, m.plan.State()...)
}

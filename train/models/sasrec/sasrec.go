// Package sasrec is SASRec (Kang & McAuley, ICDM 2018) as RecBole runs it:
// an ID-based causal transformer over a user's item history, trained with
// full-softmax cross-entropy and evaluated with the seq-loo protocol
// (chronological leave-one-out, all items ranked, history not masked).
//
// The dense model (embeddings, attention, feed-forward, loss and its
// gradients) is a GoMLX graph (train/gx); parameters, Adam moments and
// dropout draws stay on the host, so checkpoints and resume work as for
// every other model.
//
// # Training samples
//
// RecBole trains on one row per prefix of a user's training sequence and
// takes the loss at the prefix's last position. SASRec predicts every
// position at once, so this package trains on whole sequences: the inputs
// s1..s(n-1) predict s2..sn, each position a cross-entropy target over all
// items. The targets are the same as RecBole's prefix rows (each training
// item after the first, once per epoch); a causal mask makes position t see
// exactly its prefix. A sequence longer than max_len+1 is cut into windows
// of at most max_len inputs from the most recent end, so the first targets
// of a later window see a shorter history than RecBole's 50-item prefixes
// would (this affects only users with more than max_len+1 training items).
// Windows are grouped into length buckets (len_bucket) and padded per
// bucket, not to max_len.
package sasrec

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Factory describes SASRec to the trainer.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "sasrec",
		Describe:  "SASRec: ID-based causal transformer over the item history, full-softmax cross-entropy (GoMLX)",
		Protocol:  eval.SeqLOO,
		NewConfig: func() train.ModelConfig { return DefaultConfig() },
		// RecBole's trainer: at most 300 epochs, validation every epoch,
		// early stop after 10 validations without a better NDCG@10.
		Defaults: func(c *train.Config) { c.Epochs, c.Patience, c.EvalEvery = 300, 10, 1 },
		New:      New,
	}
}

// Model is a SASRec being trained.
type Model struct {
	cfg      *Config
	numItems int
	numUsers int
	workers  int
	split    *store.Split

	shapes  [][]int
	offs    []int // parameter k is params[offs[k]:offs[k+1]]
	params  []float32
	grad    []float32
	opt     *sparse.Adam
	backend compute.Backend
	trainP  *gx.Program // the whole step in GoMLX (XLA backends); nil with native
	hidP    *gx.Program // native: the encoder's hidden states at the targets
	vjpP    *gx.Program // native: their vector–Jacobian product
	native  bool        // the output softmax runs natively (GoMLX's Go backend)
	evalP   *gx.Program

	hist    [][]int32 // training sequences
	wins    []window
	lens    []int
	members [][]int
	batches int

	plan seqdata.Cursor // the epoch plan (its seed and position are checkpointed)
}

// New builds a SASRec for env's dataset.
func New(env *train.Env) (train.Model, error) {
	cfg, ok := env.Config.Model.(*Config)
	if !ok {
		return nil, fmt.Errorf("sasrec: config is %T", env.Config.Model)
	}
	d := env.Data
	if cfg.MaxLen > 4096 {
		return nil, fmt.Errorf("sasrec: max_len %d is larger than 4096", cfg.MaxLen)
	}
	b, err := gx.NewBackend("")
	if err != nil {
		return nil, fmt.Errorf("sasrec: %w", err)
	}
	m := &Model{cfg: cfg, numItems: d.NumItems, numUsers: d.NumUsers, workers: env.Workers, split: d.Split, backend: b}
	m.allocParams()
	total := len(m.params)
	m.init(env.InitRNG)
	acfg := sparse.DefaultAdam(cfg.LR)
	acfg.WeightDecay = cfg.WeightDecay
	m.opt = sparse.NewAdam(acfg, total, env.Workers)

	if m.hist, err = seqdata.Histories(d.Split, d.NumUsers, store.PartTrain); err != nil {
		return nil, fmt.Errorf("sasrec: %w", err)
	}
	m.wins = windows(m.hist, cfg.MaxLen)
	m.lens, m.members = seqdata.Buckets(len(m.wins), func(k int) int { return int(m.wins[k].n) }, cfg.LenBucket, cfg.MaxLen)
	m.batches = seqdata.CountBatches(m.members, m.bucketBatch)

	np := len(m.shapes)
	// On the pure-Go backend GoMLX's element-wise kernels over the
	// [targets, items] logits dominated the step (BENCHMARKS.md); the
	// output layer then runs on the native AVX2 product kernel instead.
	m.native = !strings.HasPrefix(b.Name(), "xla")
	if m.native {
		if m.hidP, err = gx.NewProgram(b, "sasrec.hidden", 128, hiddenGraph(cfg, np)); err != nil {
			return nil, err
		}
		if m.vjpP, err = gx.NewProgram(b, "sasrec.hidden_vjp", 128, hiddenVJPGraph(cfg, np)); err != nil {
			return nil, err
		}
	} else if m.trainP, err = gx.NewProgram(b, "sasrec.train", 128, trainGraph(cfg, d.NumItems, np)); err != nil {
		return nil, err
	}
	if m.evalP, err = gx.NewProgram(b, "sasrec.eval", 64, evalGraph(cfg, np)); err != nil {
		return nil, err
	}
	env.Log.Info("sasrec", "backend", b.Name(), "parameters", total, "windows", len(m.wins),
		"buckets", fmt.Sprint(m.lens), "batches_per_epoch", m.batches)
	return m, nil
}

// allocParams lays out the parameters of m.cfg and m.numItems in one flat
// slice (m.shapes, m.offs) and allocates it and its gradient, zeroed.
func (m *Model) allocParams() {
	m.shapes = paramShapes(m.cfg, m.numItems)
	m.offs = []int{0}
	for _, s := range m.shapes {
		n := 1
		for _, x := range s {
			n *= x
		}
		m.offs = append(m.offs, m.offs[len(m.offs)-1]+n)
	}
	total := m.offs[len(m.offs)-1]
	m.params, m.grad = make([]float32, total), make([]float32, total)
}

// init draws the parameters: N(0, init_std) for embeddings and weight
// matrices, zero biases, LayerNorm scale 1 and shift 0 (RecBole's
// _init_weights; the padding row is drawn too, as nn.Embedding does
// without padding_idx, and never receives a gradient).
func (m *Model) init(rng *train.RNG) {
	for k, s := range m.shapes {
		p := m.params[m.offs[k]:m.offs[k+1]]
		isLNScale := k == pLN0g || (k >= nGlobal && ((k-nGlobal)%nPerLayer == lLN1g || (k-nGlobal)%nPerLayer == lLN2g))
		switch {
		case len(s) == 2:
			for j := range p {
				p[j] = float32(rng.NormFloat64() * m.cfg.InitStd)
			}
		case isLNScale:
			for j := range p {
				p[j] = 1
			}
		}
	}
}

// bucketBatch is the number of sequences per batch of bucket b.
func (m *Model) bucketBatch(b int) int { return m.cfg.batchFor(m.lens[b]) }

// BatchesPerEpoch implements train.Model.
func (m *Model) BatchesPerEpoch() int { return m.batches }

func (m *Model) paramArgs(args []any) []any {
	for k, s := range m.shapes {
		args = append(args, gx.F32(m.params[m.offs[k]:m.offs[k+1]], s...))
	}
	return args
}

// TrainBatch runs one Adam step on the next batch of the epoch plan.
func (m *Model) TrainBatch(_ context.Context, rng *train.RNG) (train.Losses, error) {
	ref, plan, err := m.plan.Next(rng, nil, func(seed uint64) *seqdata.Plan {
		return seqdata.NewPlan(m.members, m.bucketBatch, seed, 0x5a5ec)
	})
	if err != nil {
		return nil, err
	}
	c := m.cfg
	B, L := m.bucketBatch(ref.Bucket), m.lens[ref.Bucket]
	ws := plan.Order[ref.Bucket][ref.Lo:ref.Hi]

	seq := make([]int32, B*L)
	var tPos, tItem []int32
	for r, wi := range ws {
		w := m.wins[wi]
		s := m.hist[w.user][w.start : w.start+w.n+1]
		for t := range int(w.n) {
			seq[r*L+t] = s[t] + 1
			tPos = append(tPos, int32(r*L+t))
			tItem = append(tItem, s[t+1])
		}
	}
	// Pad the targets to a quarter-step of B·L so that few shapes compile.
	q := max(1, B*L/4)
	n := (len(tPos) + q - 1) / q * q
	tW := make([]float32, n)
	for k := range tPos {
		tW[k] = 1
	}
	for len(tPos) < n {
		tPos, tItem = append(tPos, 0), append(tItem, 0)
	}
	args := m.paramArgs(make([]any, 0, len(m.shapes)+5+1+3*c.Layers))
	args = append(args, gx.I32(seq, B, L), gx.F32(attnBias(seq, B, L), B, L, L),
		gx.I32(tPos, n), gx.I32(tItem, n), gx.F32(tW, n))
	d, H := c.Dim, c.Heads
	args = append(args, gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d))
	for range c.Layers {
		args = append(args, gx.F32(seqdata.DropMask(rng, B*H*L*L, c.AttnDropout), B, H, L, L),
			gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d),
			gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d))
	}
	var loss float64
	if m.native {
		loss, err = m.nativeStep(args, tItem, tW)
	} else {
		loss, err = m.graphStep(args)
	}
	if err != nil {
		return nil, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("sasrec: loss is %v", loss)
	}
	if err := m.opt.Update(m.params, m.grad); err != nil {
		return nil, err
	}
	return train.Losses{"loss": loss}, nil
}

// graphStep runs the whole step in GoMLX: the mean cross-entropy and the
// gradient of every parameter into m.grad.
func (m *Model) graphStep(args []any) (float64, error) {
	outs, err := m.trainP.Run(args...)
	if err != nil {
		return 0, fmt.Errorf("sasrec: %w", err)
	}
	loss, err := gx.Scalar(outs[0])
	if err != nil {
		gx.Release(outs[1:]...)
		return 0, err
	}
	for k := range m.shapes {
		if err := gx.CopyF32(m.grad[m.offs[k]:m.offs[k+1]], outs[k+1]); err != nil {
			gx.Release(outs[k+2:]...)
			return 0, fmt.Errorf("sasrec: gradient %d: %w", k, err)
		}
	}
	return loss, nil
}

// nativeStep runs the encoder in GoMLX and the output layer natively:
// hidden states at the targets, sparse.SoftmaxXent over all items (rows
// 1..V of the item table), then the encoder's VJP with the hidden states'
// gradient; the output layer's item gradient is added to the table's.
// args are trainGraph's inputs (the targets' items and weights among them
// are not read by the programs). The VJP program recomputes the encoder's
// forward pass: activations do not cross GoMLX program boundaries.
func (m *Model) nativeStep(args []any, tItem []int32, tW []float32) (float64, error) {
	np := len(m.shapes)
	in := append(append([]any(nil), args[:np+3]...), args[np+5:]...) // without tgtItem, tgtW
	outs, err := m.hidP.Run(in...)
	if err != nil {
		return 0, fmt.Errorf("sasrec: %w", err)
	}
	n, d, v := len(tItem), m.cfg.Dim, m.numItems
	h := sparse.NewMat(n, d)
	if err := gx.CopyF32(h.Data, outs[0]); err != nil {
		return 0, fmt.Errorf("sasrec: hidden states: %w", err)
	}
	items := m.params[m.offs[pItem]:m.offs[pItem+1]]
	table := sparse.Mat{Rows: v, Cols: d, Data: items[d : (v+1)*d]}
	dh, dtable := sparse.NewMat(n, d), sparse.NewMat(v, d)
	loss, err := sparse.SoftmaxXent(h, table, table.Transpose(), tItem, tW, dh, dtable, m.workers)
	if err != nil {
		return 0, fmt.Errorf("sasrec: %w", err)
	}
	outs, err = m.vjpP.Run(append(in, gx.F32(dh.Data, n, d))...)
	if err != nil {
		return 0, fmt.Errorf("sasrec: %w", err)
	}
	for k := range m.shapes {
		if err := gx.CopyF32(m.grad[m.offs[k]:m.offs[k+1]], outs[k]); err != nil {
			gx.Release(outs[k+1:]...)
			return 0, fmt.Errorf("sasrec: gradient %d: %w", k, err)
		}
	}
	g := m.grad[m.offs[pItem]+d : m.offs[pItem]+(v+1)*d]
	for j, x := range dtable.Data {
		g[j] += x
	}
	return loss, nil
}

// attnBias is RecBole's extended attention mask as an additive bias:
// 0 where query t may attend key j (j ≤ t and j is not padding), -10000
// elsewhere.
func attnBias(seq []int32, B, L int) []float32 {
	out := make([]float32, B*L*L)
	for b := range B {
		row := seq[b*L : (b+1)*L]
		for t := range L {
			o := out[(b*L+t)*L : (b*L+t+1)*L]
			for j := range L {
				if j > t || row[j] == 0 {
					o[j] = -10000
				}
			}
		}
	}
	return out
}

// Scorer encodes every user's history (training items for valid; training
// and valid items for test; the last max_len of them) and scores all items
// by the dot product with the item embeddings.
func (m *Model) Scorer(ctx context.Context, part int8) (eval.ScoreFunc, error) {
	upTo := store.PartTrain
	if part == store.PartTest {
		upTo = store.PartValid
	}
	hist, err := seqdata.Histories(m.split, m.numUsers, upTo)
	if err != nil {
		return nil, fmt.Errorf("sasrec: %w", err)
	}
	users, err := m.Encode(ctx, hist)
	if err != nil {
		return nil, err
	}
	d := m.cfg.Dim
	items := sparse.Mat{Rows: m.numItems, Cols: d, Data: m.params[m.offs[pItem]+d : m.offs[pItem+1]]}
	return train.DotScorer(users, items.Clone()), nil
}

// Encode returns the sequence representation (hidden state at the last
// position) of each history, without dropout; an empty history gives a
// zero row.
func (m *Model) Encode(ctx context.Context, hist [][]int32) (sparse.Mat, error) {
	c := m.cfg
	out := sparse.NewMat(len(hist), c.Dim)
	groups := map[int][]int{}
	for u, h := range hist {
		if len(h) == 0 {
			continue
		}
		l := seqdata.BucketLen(min(len(h), c.MaxLen), c.LenBucket, c.MaxLen)
		groups[l] = append(groups[l], u)
	}
	B := c.EvalBatch
	for L, us := range groups {
		for lo := 0; lo < len(us); lo += B {
			if err := ctx.Err(); err != nil {
				return sparse.Mat{}, err
			}
			part := us[lo:min(lo+B, len(us))]
			seq := make([]int32, B*L)
			last := make([]int32, B)
			for r, u := range part {
				h := hist[u]
				h = h[max(0, len(h)-c.MaxLen):]
				for t, it := range h {
					seq[r*L+t] = it + 1
				}
				last[r] = int32(r*L + len(h) - 1)
			}
			args := m.paramArgs(make([]any, 0, len(m.shapes)+3))
			args = append(args, gx.I32(seq, B, L), gx.F32(attnBias(seq, B, L), B, L, L), gx.I32(last, B))
			outs, err := m.evalP.Run(args...)
			if err != nil {
				return sparse.Mat{}, fmt.Errorf("sasrec: %w", err)
			}
			h := make([]float32, B*c.Dim)
			if err := gx.CopyF32(h, outs[0]); err != nil {
				return sparse.Mat{}, err
			}
			for r, u := range part {
				copy(out.Row(u), h[r*c.Dim:(r+1)*c.Dim])
			}
		}
	}
	return out, nil
}

// State implements train.Model.
func (m *Model) State() []train.Tensor {
	total := m.offs[len(m.offs)-1]
	return append([]train.Tensor{
		train.F32Tensor("params", m.params, total),
		train.F32Tensor("adam.m", m.opt.M, total),
		train.F32Tensor("adam.v", m.opt.V, total),
		train.ScalarI64("adam.step", &m.opt.Step),
	}, m.plan.State()...)
}

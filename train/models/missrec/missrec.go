// Package missrec is MISSRec (Wang et al., ACM MM 2023: multi-modal
// interest-aware sequence representation) as the reference code
// (gimpong/MM23-MISSRec) runs it — see research/models.md §3: multi-domain
// pre-training, and fine-tuning from scratch or from a pre-trained
// checkpoint.
//
// Items are represented by linear adaptors of their text and image
// features (any input dimension → dim, 300 by default); an item token is
// the sum of the two, plus a learned position and, in transductive mode,
// an item-ID embedding. Before every epoch the adaptor outputs of all items
// and both modalities are clustered (the reference's one-pass mini-batch
// k-means, kmeans.go, or DPC-KNN, dpcknn.go); every item gets a text and an
// image interest id and the centroids become the interest embeddings. A
// sequence's sorted unique interest ids go through a one-layer transformer
// encoder (no positions); a one-layer decoder over the item tokens
// (bidirectional self-attention, cross-attention to the interests) gives,
// at the last position, the L2-normalised sequence vector s. An item's
// score is the user-adaptive fusion of the per-modality cosines of s with
// the normalised adaptor outputs (weights softmax(f·cosines), f learnable,
// 0 at start), averaged 1:2 with the ID cosine in transductive mode,
// divided by the temperature.
//
// Fine-tuning (stage=finetune): full-softmax cross-entropy at the last
// position of every RecBole prefix row plus gamma times the interest
// regulariser (the squared norm of a weighted sum of the encoder outputs).
// With --init, the position embeddings, the decoder-input LayerNorm, the
// fusion factor, the Transformer and (when their input dimensions match)
// the adaptors are copied from the checkpoint, and the position embeddings
// and the Transformer are frozen (no Adam step), as the reference's
// finetune.py does; item-ID embeddings are always new.
//
// Pre-training (stage=pretrain): the training sequences of --dataset and of
// the pretrain_datasets (item ids prefixed by domain, i.e. offset into one
// item table) in shuffled batches; loss = in-batch sequence–item contrast
// (fused cosines with the batch's positive items) + lambda · sequence–
// sequence contrast with an augmented view (item drop or word drop) +
// gamma · both views' interest regularisers. No item-ID embeddings. The
// interest clustering runs over every domain's items. --dataset's valid
// split is scored every epoch as a monitor (model selection on it has no
// meaning for pre-training; use the last checkpoint).
//
// The dense model is a GoMLX graph (train/gx); parameters, Adam moments,
// the interest tables and dropout draws stay on the host, so checkpoints
// and resume work as for every other model; each parameter is its own
// checkpoint tensor ("param.<name>"), which is what --init copies by name.
// Evaluation is seq-loo: every user's history (train for valid, train+valid
// for test, last max_len items) against all items, history not masked.
package missrec

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gomlx/compute"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Factory describes MISSRec to the trainer.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "missrec",
		Describe:  "MISSRec: interest-aware multi-modal sequence model (text+image adaptors, interest clustering, encoder-decoder); multi-domain contrastive pre-training, full-softmax fine-tuning from scratch or by transfer (--init) (GoMLX)",
		Protocol:  eval.SeqLOO,
		NewConfig: func() train.ModelConfig { return DefaultConfig() },
		// RecBole's trainer: at most 300 epochs, validation every epoch,
		// early stop after 10 validations without a better NDCG@10.
		Defaults: func(c *train.Config) { c.Epochs, c.Patience, c.EvalEvery = 300, 10, 1 },
		New:      New,
		// stage=finetune starts from a checkpoint (--init) of a pre-training
		// (or any MISSRec) run.
		Transfer: true,
	}
}

// Model is a MISSRec being fine-tuned.
type Model struct {
	cfg      *Config
	lay      *layout
	numItems int
	numUsers int
	workers  int
	split    *store.Split

	featT, featV []float32 // [items+1, dT|dV] (row 0 = padding, zero); a [1, 1] zero when missing
	dimT, dimV   int
	// scoreItems is the number of items scored (the dataset's; numItems
	// counts every domain's in pre-training, the dataset's being first).
	scoreItems int
	// featT2 is the word-dropped text table [items+1, dT] of pre-training
	// (nil when absent).
	featT2 []float32

	offs    []int // parameter k is params[offs[k]:offs[k+1]]
	params  []float32
	grad    []float32
	opt     *sparse.Adam
	backend compute.Backend
	trainP  *gx.Program // fine-tuning or pre-training step
	evalP   *gx.Program
	itemP   *gx.Program

	// trained lists the parameters that get gradients and updates (nil:
	// all); ranges are their spans of params, for Adam (nil: all).
	trained []int
	ranges  [][2]int

	// Interest tables (state): item index → text/image interest id (1..K),
	// the interest embeddings [K+1, dim] (row 0 = 0), and whether they have
	// been computed.
	numInterest int
	lookT       []int64
	lookV       []int64
	interest    []float32
	clustered   int64

	hist    [][]int32
	rows    []prefix
	lens    []int
	members [][]int
	batches int

	plan seqdata.Cursor // the epoch plan (its seed and position are checkpointed)
}

// New builds a MISSRec for env's dataset (and, pre-training, the
// pretrain_datasets), and copies what transfers from env.Init.
func New(env *train.Env) (train.Model, error) {
	cfg, ok := env.Config.Model.(*Config)
	if !ok {
		return nil, fmt.Errorf("missrec: config is %T", env.Config.Model)
	}
	pretrain := cfg.Stage == StagePretrain
	if pretrain && env.Init != nil {
		return nil, fmt.Errorf("missrec: --init is for stage=finetune; pre-training starts from scratch")
	}
	d := env.Data
	m := &Model{cfg: cfg, numUsers: d.NumUsers, workers: max(env.Workers, 1), split: d.Split}
	doms := []*train.Data{d}
	if pretrain {
		for _, dir := range cfg.PretrainDatasets {
			dd, err := train.LoadData(context.Background(), dir, "", eval.SeqLOO)
			if err != nil {
				return nil, fmt.Errorf("missrec: pretrain_datasets %s: %w", dir, err)
			}
			doms = append(doms, dd)
		}
	}
	offs := make([]int32, len(doms)) // first global item index of each domain
	for k, dd := range doms {
		offs[k] = int32(m.numItems)
		m.numItems += dd.NumItems
	}
	m.scoreItems = d.NumItems
	var err error
	if m.featT, m.dimT, err = domainFeatures(doms, cfg.TextFeatures); err != nil {
		return nil, err
	}
	if m.featV, m.dimV, err = domainFeatures(doms, cfg.ImageFeatures); err != nil {
		return nil, err
	}
	if pretrain && cfg.TextAugFeatures != "" && m.dimT > 0 {
		var dim2 int
		if m.featT2, dim2, err = domainFeatures(doms, cfg.TextAugFeatures); err != nil {
			return nil, err
		}
		if dim2 != m.dimT {
			return nil, fmt.Errorf("missrec: text_aug_features %q are %d-d, text_features %q %d-d", cfg.TextAugFeatures, dim2, cfg.TextFeatures, m.dimT)
		}
	}
	if m.backend, err = gx.NewBackend(""); err != nil {
		return nil, fmt.Errorf("missrec: %w", err)
	}
	m.lay = paramLayout(cfg, m.numItems, m.dimT, m.dimV)
	m.offs = []int{0}
	for _, s := range m.lay.specs {
		m.offs = append(m.offs, m.offs[len(m.offs)-1]+prod(s.shape))
	}
	total := m.offs[len(m.offs)-1]
	m.params, m.grad = make([]float32, total), make([]float32, total)
	m.init(env.InitRNG.Rand)
	if env.Init != nil {
		if err := m.transfer(env.Init, env.Log); err != nil {
			return nil, err
		}
	}
	acfg := sparse.DefaultAdam(cfg.LR)
	acfg.WeightDecay = cfg.WeightDecay
	m.opt = sparse.NewAdam(acfg, total, m.workers)

	mods := 0
	if m.dimT > 0 {
		mods++
		m.lookT = make([]int64, m.numItems)
	}
	if m.dimV > 0 {
		mods++
		m.lookV = make([]int64, m.numItems)
	}
	m.numInterest = numInterests(mods*m.numItems, cfg.InterestRatio)
	m.interest = make([]float32, (m.numInterest+1)*cfg.Dim)

	for k, dd := range doms {
		h, err := seqdata.Histories(dd.Split, dd.NumUsers, store.PartTrain)
		if err != nil {
			return nil, fmt.Errorf("missrec: %s: %w", dd.Dataset.Dir, err)
		}
		for _, s := range h {
			for j := range s {
				s[j] += offs[k]
			}
		}
		m.hist = append(m.hist, h...)
	}
	m.rows = prefixes(m.hist)
	if pretrain {
		// One group: in-batch negatives come from the whole shuffled
		// training set, as in the reference; each batch is padded to its
		// longest history.
		all := make([]int, len(m.rows))
		for k := range all {
			all[k] = k
		}
		m.lens, m.members = []int{cfg.MaxLen}, [][]int{all}
	} else {
		m.lens, m.members = seqdata.Buckets(len(m.rows), func(k int) int { return min(int(m.rows[k].end), cfg.MaxLen) }, cfg.LenBucket, cfg.MaxLen)
	}
	m.batches = seqdata.CountBatches(m.members, m.fixedBatch)

	if pretrain {
		m.trainP, err = gx.NewProgram(m.backend, "missrec.pretrain", 256, pretrainGraph(cfg, m.lay, m.featT2 != nil))
	} else {
		m.trainP, err = gx.NewProgram(m.backend, "missrec.train", 256, trainGraph(cfg, m.lay, m.trained))
	}
	if err != nil {
		return nil, err
	}
	if m.evalP, err = gx.NewProgram(m.backend, "missrec.eval", 128, evalGraph(cfg, m.lay)); err != nil {
		return nil, err
	}
	if m.itemP, err = gx.NewProgram(m.backend, "missrec.items", 4, itemGraph(cfg, m.lay)); err != nil {
		return nil, err
	}
	if pretrain && env.Config.Patience > 0 {
		env.Log.Warn("missrec: pre-training validates --dataset's valid split as a monitor only; with patience > 0 it may stop early (the reference runs every epoch: set patience=0)",
			"patience", env.Config.Patience)
	}
	env.Log.Info("missrec", "backend", m.backend.Name(), "stage", cfg.Stage, "mode", cfg.Mode, "parameters", total,
		"domains", len(doms), "items", m.numItems, "text_dim", m.dimT, "image_dim", m.dimV,
		"word_drop_features", m.featT2 != nil, "interests", m.numInterest, "cluster", cfg.Cluster, "rows", len(m.rows),
		"buckets", fmt.Sprint(m.lens), "batches_per_epoch", m.batches)
	return m, nil
}

// domainFeatures reads a feature file of every domain into one
// [items+1, dim] table (row 0 padding, then each domain's items in
// order); every domain's file must have the same dimension.
func domainFeatures(doms []*train.Data, name string) ([]float32, int, error) {
	out, dim, err := readFeatures(doms[0], name)
	if err != nil || len(doms) == 1 || dim == 0 {
		return out, dim, err
	}
	for _, dd := range doms[1:] {
		f, dd2, err := readFeatures(dd, name)
		if err != nil {
			return nil, 0, err
		}
		if dd2 != dim {
			return nil, 0, fmt.Errorf("missrec: features %q of %s are %d-d, of %s %d-d", name, dd.Dataset.Dir, dd2, doms[0].Dataset.Dir, dim)
		}
		out = append(out, f[dim:]...)
	}
	return out, dim, nil
}

// paramPrefix names a parameter's tensor in the model state.
const paramPrefix = "param."

// transfer copies the transferable parameters of an --init checkpoint
// (§3.8: the reference's load_state_dict(strict=False) of a pre-trained
// model): position embeddings, the decoder-input LayerNorm, the fusion
// factor and the whole Transformer must be there with this configuration's
// shapes; the adaptors are copied when the checkpoint's input dimensions
// match (else they stay freshly initialised); item-ID embeddings are
// always new. With freeze, the position embeddings and the Transformer are
// frozen, as the reference's finetune.py does.
func (m *Model) transfer(ck *train.Checkpoint, log *slog.Logger) error {
	l := m.lay
	var copied, frozen, fresh []string
	for k, s := range l.specs {
		t := train.F32Tensor(paramPrefix+s.name, m.params[m.offs[k]:m.offs[k+1]], s.shape...)
		transformer := strings.HasPrefix(s.name, "encoder.") || strings.HasPrefix(s.name, "decoder.")
		switch {
		case k == l.item:
			fresh = append(fresh, s.name)
		case k == l.wt || k == l.bt || k == l.wv || k == l.bv:
			src, ok := ck.Tensors[t.Name]
			if !ok || !slices.Equal(src.Shape, s.shape) {
				fresh = append(fresh, s.name)
				continue
			}
			if err := ck.CopyTensor(t); err != nil {
				return fmt.Errorf("missrec: --init: %w", err)
			}
			copied = append(copied, s.name)
		default:
			if err := ck.CopyTensor(t); err != nil {
				return fmt.Errorf("missrec: --init: %w", err)
			}
			copied = append(copied, s.name)
		}
		if m.cfg.Freeze && (k == l.pos || transformer) {
			frozen = append(frozen, s.name)
			continue
		}
		m.trained = append(m.trained, k)
	}
	if len(frozen) > 0 {
		for _, k := range m.trained {
			lo, hi := m.offs[k], m.offs[k+1]
			if n := len(m.ranges); n > 0 && m.ranges[n-1][1] == lo {
				m.ranges[n-1][1] = hi
			} else {
				m.ranges = append(m.ranges, [2]int{lo, hi})
			}
		}
	} else {
		m.trained = nil
	}
	log.Info("missrec: --init transfer", "copied", strings.Join(copied, " "), "frozen", strings.Join(frozen, " "),
		"new", strings.Join(fresh, " "))
	return nil
}

func prod(s []int) int {
	n := 1
	for _, x := range s {
		n *= x
	}
	return n
}

// readFeatures reads a feature file into an [items+1, dim] table whose row
// 0 (padding) and the rows of items without a vector are zero. name ""
// gives a [1, 1] zero placeholder and dim 0.
func readFeatures(d *train.Data, name string) ([]float32, int, error) {
	if name == "" {
		return make([]float32, 1), 0, nil
	}
	ff, err := d.Features(name)
	if err != nil {
		return nil, 0, fmt.Errorf("missrec: %w", err)
	}
	defer ff.Close()
	if ff.Tokens() > 0 {
		return nil, 0, fmt.Errorf("missrec: features %q are a token file; use pooled features", name)
	}
	dim := ff.Dim()
	out := make([]float32, (d.NumItems+1)*dim)
	for r := range d.NumItems {
		if ff.Valid(r) {
			copy(out[(r+1)*dim:(r+2)*dim], ff.Vector(r))
		}
	}
	return out, dim, nil
}

// init draws the parameters (see paramLayout).
func (m *Model) init(rng *rand.Rand) {
	for k, s := range m.lay.specs {
		p := m.params[m.offs[k]:m.offs[k+1]]
		switch s.init {
		case initNormal:
			for j := range p {
				p[j] = float32(rng.NormFloat64() * m.cfg.InitStd)
			}
		case initXavier, initUniform:
			for j := range p {
				p[j] = float32((2*rng.Float64() - 1) * s.bound)
			}
		case initOnes:
			for j := range p {
				p[j] = 1
			}
		}
	}
	if m.lay.item >= 0 { // padding_idx row
		clear(m.params[m.offs[m.lay.item] : m.offs[m.lay.item]+m.cfg.Dim])
	}
}

// fixedBatch is the number of prefix rows per batch, the same in every
// bucket.
func (m *Model) fixedBatch(int) int { return m.cfg.BatchSize }

// BatchesPerEpoch implements train.Model.
func (m *Model) BatchesPerEpoch() int { return m.batches }

func (m *Model) commonArgs(args []any) []any {
	for k, s := range m.lay.specs {
		args = append(args, gx.F32(m.params[m.offs[k]:m.offs[k+1]], s.shape...))
	}
	ft, fv := []int{1, 1}, []int{1, 1}
	if m.dimT > 0 {
		ft = []int{m.numItems + 1, m.dimT}
	}
	if m.dimV > 0 {
		fv = []int{m.numItems + 1, m.dimV}
	}
	return append(args, gx.F32(m.featT, ft...), gx.F32(m.featV, fv...))
}

// itemTables runs the item program: raw and normalised adaptor outputs
// (text, image) and normalised ID embeddings, [items+1, dim] each (nil when
// absent; see itemGraph for a single modality in transductive mode).
func (m *Model) itemTables() ([5][]float32, error) {
	var out [5][]float32
	outs, err := m.itemP.Run(m.commonArgs(nil)...)
	if err != nil {
		return out, fmt.Errorf("missrec: %w", err)
	}
	present := [5]bool{m.dimT > 0, m.dimT > 0, m.dimV > 0, m.dimV > 0, m.lay.item >= 0 && m.dimT > 0 && m.dimV > 0}
	for k, t := range outs {
		if !present[k] {
			gx.Release(t)
			continue
		}
		out[k] = make([]float32, (m.numItems+1)*m.cfg.Dim)
		if err := gx.CopyF32(out[k], t); err != nil {
			gx.Release(outs[k+1:]...)
			return out, fmt.Errorf("missrec: item table %d: %w", k, err)
		}
	}
	return out, nil
}

// discover is the interest discovery of an epoch's start: k-means over the
// current adaptor outputs of every item, text tokens then image tokens.
func (m *Model) discover(seed uint64) error {
	tabs, err := m.itemTables()
	if err != nil {
		return err
	}
	d, n := m.cfg.Dim, m.numItems
	var toks []float32
	for _, t := range [][]float32{tabs[0], tabs[2]} {
		if t != nil {
			toks = append(toks, t[d:]...) // rows 1..items
		}
	}
	tokens := sparse.Mat{Rows: len(toks) / d, Cols: d, Data: toks}
	var labels []int32
	var cent sparse.Mat
	if m.cfg.Cluster == ClusterDPCKNN {
		labels, cent, err = dpcKNN(tokens, m.numInterest, numInterests(tokens.Rows, m.cfg.KNNLocalRatio), m.workers)
	} else {
		labels, cent, err = kmeans(tokens, m.numInterest, m.cfg.KMeansBatch, m.cfg.KMeansAbs,
			rand.New(rand.NewPCG(seed, 0x6b6d)), m.workers)
	}
	if err != nil {
		return fmt.Errorf("missrec: interest discovery: %w", err)
	}
	off := 0
	for _, look := range [][]int64{m.lookT, m.lookV} {
		if look == nil {
			continue
		}
		for i := range n {
			look[i] = int64(labels[off+i]) + 1
		}
		off += n
	}
	clear(m.interest[:d])
	copy(m.interest[d:], cent.Data)
	m.clustered = 1
	return nil
}

// interestEmb gathers the interest embeddings of ids [B·Q] into [B·Q, dim].
func (m *Model) interestEmb(ids []int32) []float32 {
	d := m.cfg.Dim
	out := make([]float32, len(ids)*d)
	for k, id := range ids {
		copy(out[k*d:(k+1)*d], m.interest[int(id)*d:(int(id)+1)*d])
	}
	return out
}

// TrainBatch runs one Adam step on the next batch of the epoch plan; the
// first batch of an epoch first runs the interest discovery.
func (m *Model) TrainBatch(ctx context.Context, rng *train.RNG) (train.Losses, error) {
	ref, plan, err := m.plan.Next(rng, func() error { return m.discover(rng.Uint64()) }, func(seed uint64) *seqdata.Plan {
		return seqdata.NewPlan(m.members, m.fixedBatch, seed, 0x3155ec)
	})
	if err != nil {
		return nil, err
	}
	c := m.cfg
	B := c.BatchSize
	rs := plan.Order[ref.Bucket][ref.Lo:ref.Hi]
	hs := make([][]int32, len(rs))
	target := make([]int32, B)
	rowW := make([]float32, B)
	for r, ri := range rs {
		p := m.rows[ri]
		s := m.hist[p.user]
		hs[r] = s[max(0, int(p.end)-c.MaxLen):p.end]
		target[r] = s[p.end] + 1
		rowW[r] = 1
	}
	var losses train.Losses
	if c.Stage == StagePretrain {
		losses, err = m.pretrainStep(hs, target, rowW, rng)
	} else {
		in := buildBatch(hs, B, m.lens[ref.Bucket], c.LenBucket, m.lookT, m.lookV, c.MaxLen)
		losses, err = m.step(in, target, rowW, rng)
	}
	if err != nil {
		return nil, err
	}
	if err := m.update(); err != nil {
		return nil, err
	}
	return losses, nil
}

// update applies Adam to the trained parameters; frozen ones are skipped
// (no moment update, no weight decay), one optimiser step for all.
func (m *Model) update() error {
	if m.ranges == nil {
		return m.opt.Update(m.params, m.grad)
	}
	step := m.opt.Step
	for _, r := range m.ranges {
		sub := &sparse.Adam{AdamConfig: m.opt.AdamConfig, Step: step, M: m.opt.M[r[0]:r[1]], V: m.opt.V[r[0]:r[1]], Workers: m.opt.Workers}
		if err := sub.Update(m.params[r[0]:r[1]], m.grad[r[0]:r[1]]); err != nil {
			return fmt.Errorf("missrec: %w", err)
		}
	}
	m.opt.Step = step + 1
	return nil
}

// masks appends the dropout masks of a view of B×L items and Q interests
// (all ones when rng is nil).
func (m *Model) masks(args []any, B, L, Q int, rng *train.RNG) []any {
	for _, dims := range maskDims(m.cfg, B, L, Q) {
		p := m.cfg.Dropout
		if rng == nil {
			p = 0
		}
		args = append(args, gx.F32(seqdata.DropMask(rng, prod(dims), p), dims...))
	}
	return args
}

// run runs a training program, returns its leading scalar outputs as the
// losses names and copies the gradients that follow into m.grad (for the
// parameters of m.trained, or all).
func (m *Model) run(args []any, names []string) (train.Losses, error) {
	outs, err := m.trainP.Run(args...)
	if err != nil {
		return nil, fmt.Errorf("missrec: %w", err)
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
	idx := m.trained
	if idx == nil {
		idx = make([]int, len(m.lay.specs))
		for k := range idx {
			idx[k] = k
		}
	}
	base := len(names)
	for j, k := range idx {
		if err := gx.CopyF32(m.grad[m.offs[k]:m.offs[k+1]], outs[base+j]); err != nil {
			gx.Release(outs[base+j+1:]...)
			return nil, fmt.Errorf("missrec: gradient of %s: %w", m.lay.specs[k].name, err)
		}
	}
	if v := losses[names[0]]; math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("missrec: loss is %v", v)
	}
	return losses, nil
}

// step runs the fine-tuning graph on a batch and leaves the gradient in
// m.grad. rng draws the dropout masks (nil: no dropout).
func (m *Model) step(in *batchInputs, target []int32, rowW []float32, rng *train.RNG) (train.Losses, error) {
	c := m.cfg
	B, L, Q := in.B, in.L, in.Q
	args := m.commonArgs(make([]any, 0, len(m.lay.specs)+trainInputs+numMasks))
	args = append(args, gx.I32(in.seq, B, L), gx.F32(in.selfBias, B, L),
		gx.F32(m.interestEmb(in.ids), B, Q, c.Dim), gx.F32(in.memBias, B, Q), gx.I32(in.last, B),
		gx.I32(target, B), gx.F32(rowW, B), gx.F32(in.regW, B, Q))
	args = m.masks(args, B, L, Q, rng)
	return m.run(args, []string{"loss", "ce", "reg"})
}

// pretrainViews builds the two views of a pre-training batch of histories
// hs (global item indices): the sequences themselves and their
// augmentation (§3.7: one draw per batch chooses item drop with
// probability item_drop_coefficient, else word drop; one keep draw per
// position with probability 1 − item_drop_ratio). Both are padded to the
// bucketed longest history and to the same interest count.
func (m *Model) pretrainViews(hs [][]int32, rng *train.RNG) (v1, v2 *batchInputs) {
	c := m.cfg
	itemDrop := rng.Float64() < c.ItemDropCoefficient
	t2Off := -1
	if m.featT2 != nil {
		t2Off = m.numItems + 1
	}
	longest, nq := 1, 0
	r1, r2 := make([]viewRow, len(hs)), make([]viewRow, len(hs))
	for r, h := range hs {
		keep := make([]bool, len(h))
		for k := range keep {
			keep[k] = rng.Float64() >= c.ItemDropRatio
		}
		t := make([]int32, len(h))
		for k, it := range h {
			t[k] = it + 1
		}
		r1[r] = viewRow{t: t, v: t, set: interestSet(h, m.lookT, m.lookV, c.MaxLen, nil)}
		r2[r] = augment(h, keep, itemDrop, m.lookT, m.lookV, c.MaxLen, t2Off)
		longest = max(longest, len(h))
		nq = max(nq, len(r1[r].set), len(r2[r].set))
	}
	L := seqdata.BucketLen(longest, c.LenBucket, c.MaxLen)
	Q := qPad(nq, c.LenBucket)
	return fillBatch(r1, c.BatchSize, L, Q), fillBatch(r2, c.BatchSize, L, Q)
}

// pretrainStep runs the pre-training graph on a batch (rows hs with
// positive items target, real rows rowW = 1) and leaves the gradient in
// m.grad. rng draws the augmentation and the dropout masks.
func (m *Model) pretrainStep(hs [][]int32, target []int32, rowW []float32, rng *train.RNG) (train.Losses, error) {
	v1, v2 := m.pretrainViews(hs, rng)
	return m.pretrainRun(v1, v2, target, rowW, rng)
}

// pretrainRun runs the pre-training graph on two prepared views (dropout
// from rng; nil: none).
func (m *Model) pretrainRun(v1, v2 *batchInputs, target []int32, rowW []float32, rng *train.RNG) (train.Losses, error) {
	c := m.cfg
	B, L, Q := v1.B, v1.L, v1.Q
	colBias := make([]float32, B)
	for r, w := range rowW {
		if w == 0 {
			colBias[r] = maskBias
		}
	}
	args := m.commonArgs(make([]any, 0, len(m.lay.specs)+pretrainInputs+2*numMasks))
	if m.featT2 != nil {
		args = append(args, gx.F32(m.featT2, m.numItems+1, m.dimT))
	} else {
		args = append(args, gx.F32(make([]float32, 1), 1, 1))
	}
	for _, v := range []*batchInputs{v1, v2} {
		args = append(args, gx.I32(v.seq, B, L), gx.I32(v.seqV, B, L), gx.F32(v.selfBias, B, L),
			gx.F32(m.interestEmb(v.ids), B, Q, c.Dim), gx.F32(v.memBias, B, Q), gx.I32(v.last, B), gx.F32(v.regW, B, Q))
	}
	args = append(args, gx.I32(target, B), gx.F32(rowW, B), gx.F32(colBias, B))
	args = m.masks(args, B, L, Q, rng)
	args = m.masks(args, B, L, Q, rng)
	return m.run(args, []string{"loss", "seq_item", "seq_seq", "reg"})
}

// Scorer encodes every user's history (training items for valid; training
// and valid items for test; the last max_len of them) and scores all items
// with the fused cosine of §3.5 divided by the temperature.
func (m *Model) Scorer(ctx context.Context, part int8) (eval.ScoreFunc, error) {
	if m.clustered == 0 {
		// Scoring before any training: discover interests once from the
		// initial adaptors (a fixed seed, so repeated calls agree).
		if err := m.discover(0); err != nil {
			return nil, err
		}
	}
	upTo := store.PartTrain
	if part == store.PartTest {
		upTo = store.PartValid
	}
	hist, err := seqdata.Histories(m.split, m.numUsers, upTo)
	if err != nil {
		return nil, fmt.Errorf("missrec: %w", err)
	}
	users, err := m.Encode(ctx, hist)
	if err != nil {
		return nil, err
	}
	tabs, err := m.itemTables()
	if err != nil {
		return nil, err
	}
	return m.fusedScorer(users, tabs), nil
}

// fusedScorer scores users (rows of s, normalised sequence vectors) against
// every item (rows 1.. of the normalised tables).
func (m *Model) fusedScorer(s sparse.Mat, tabs [5][]float32) eval.ScoreFunc {
	d, n := m.cfg.Dim, m.scoreItems
	tr := func(t []float32) sparse.Mat {
		if t == nil {
			return sparse.Mat{}
		}
		return sparse.Mat{Rows: n, Cols: d, Data: t[d : (n+1)*d]}.Transpose()
	}
	tT, tV, tE := tr(tabs[1]), tr(tabs[3]), tr(tabs[4])
	f := float64(m.params[m.offs[m.lay.fusion]])
	static := m.cfg.Fusion == FusionStatic
	invTau := float32(1 / m.cfg.Temperature)
	return func(us []int32, scores []float32) error {
		if len(scores) != len(us)*n {
			return fmt.Errorf("missrec: score buffer of %d for %d users × %d items", len(scores), len(us), n)
		}
		u := sparse.NewMat(len(us), d)
		if err := sparse.Gather(u, s, us); err != nil {
			return err
		}
		out := sparse.Mat{Rows: len(us), Cols: n, Data: scores}
		var ct, cv, ce []float32
		mul := func(t sparse.Mat) ([]float32, error) {
			if t.Data == nil {
				return nil, nil
			}
			o := sparse.NewMat(len(us), n)
			return o.Data, sparse.MulABtT(o, u, t, 1)
		}
		var err error
		if ct, err = mul(tT); err != nil {
			return err
		}
		if cv, err = mul(tV); err != nil {
			return err
		}
		if ce, err = mul(tE); err != nil {
			return err
		}
		for k := range out.Data {
			var fused float32
			switch {
			case ct == nil:
				fused = cv[k]
			case cv == nil:
				fused = ct[k]
			case static:
				fused = (ct[k] + cv[k]) * 0.5
			default:
				diff := ct[k] - cv[k]
				w := float32(1 / (1 + math.Exp(-f*float64(diff))))
				fused = cv[k] + w*diff
			}
			if ce != nil {
				fused = (ce[k] + 2*fused) / 3
			}
			out.Data[k] = fused * invTau
		}
		return nil
	}
}

// Encode returns the normalised sequence vector of each history, without
// dropout; an empty history gives a zero row.
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
			hs := make([][]int32, len(part))
			for r, u := range part {
				h := hist[u]
				hs[r] = h[max(0, len(h)-c.MaxLen):]
			}
			in := buildBatch(hs, B, L, c.LenBucket, m.lookT, m.lookV, c.MaxLen)
			args := m.commonArgs(make([]any, 0, len(m.lay.specs)+7))
			args = append(args, gx.I32(in.seq, B, L), gx.F32(in.selfBias, B, L),
				gx.F32(m.interestEmb(in.ids), B, in.Q, c.Dim), gx.F32(in.memBias, B, in.Q), gx.I32(in.last, B))
			outs, err := m.evalP.Run(args...)
			if err != nil {
				return sparse.Mat{}, fmt.Errorf("missrec: %w", err)
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

// State implements train.Model: parameters, Adam state, the interest
// tables of the current epoch and the epoch plan position.
func (m *Model) State() []train.Tensor {
	total := m.offs[len(m.offs)-1]
	var st []train.Tensor
	for k, s := range m.lay.specs {
		st = append(st, train.F32Tensor(paramPrefix+s.name, m.params[m.offs[k]:m.offs[k+1]], s.shape...))
	}
	st = append(st,
		train.F32Tensor("adam.m", m.opt.M, total),
		train.F32Tensor("adam.v", m.opt.V, total),
		train.ScalarI64("adam.step", &m.opt.Step),
		train.F32Tensor("interest.embeddings", m.interest, m.numInterest+1, m.cfg.Dim),
		train.ScalarI64("interest.ready", &m.clustered),
	)
	st = append(st, m.plan.State()...)
	if m.lookT != nil {
		st = append(st, train.I64Tensor("interest.text", m.lookT, len(m.lookT)))
	}
	if m.lookV != nil {
		st = append(st, train.I64Tensor("interest.image", m.lookV, len(m.lookV)))
	}
	return st
}

package missrec

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // the graph DSL reads best unqualified

	"github.com/mmpipe/mmpipe/train/gx"
)

// Parameter initialisations (the reference's, see paramLayout).
const (
	initNormal  = iota // N(0, init_std)
	initXavier         // U(±√(6/(fan_in+fan_out))) of nn.MultiheadAttention's in_proj
	initUniform        // U(±1/√fan_in), PyTorch's default nn.Linear init
	initOnes
	initZeros
)

type paramSpec struct {
	name  string
	shape []int
	init  int
	bound float64 // for initXavier and initUniform
}

// attn indexes an attention block's parameters: Wq, bq, Wk, bk, Wv, bv, Wo, bo.
type attn struct{ wq, bq, wk, bk, wv, bv, wo, bo int }

// ffn indexes a feed-forward block: W1, b1, W2, b2.
type ffn struct{ w1, b1, w2, b2 int }

// lnorm indexes a LayerNorm: scale, shift.
type lnorm struct{ g, b int }

// layout is the parameter list and the index of every parameter (-1 when
// the configuration has none).
type layout struct {
	specs []paramSpec

	wt, bt, wv, bv int // text and image adaptors
	pos            int // position embedding [max_len, d]
	ln0            lnorm
	fusion         int // fusion factor [1]
	item           int // item-ID embedding [items+1, d] (transductive), row 0 = padding

	encSA          attn
	encLN1, encLN2 lnorm
	encFF          ffn
	encNorm        lnorm

	decSA, decCA           attn
	decLN1, decLN2, decLN3 lnorm
	decFF                  ffn
	decNorm                lnorm
}

// paramLayout lists MISSRec's parameters. Initialisation as the reference
// runs it: the adaptors keep PyTorch's default Linear init (they are created
// after the generic init), embeddings and nn.Linear weights (attention
// output projections, feed-forward) N(0, 0.02) with zero biases, the
// attention input projections nn.Transformer's Xavier-uniform (they are not
// nn.Linear), LayerNorms (1, 0), the fusion factor 0.
func paramLayout(c *Config, numItems, dimT, dimV int) *layout {
	l := &layout{wt: -1, bt: -1, wv: -1, bv: -1, item: -1}
	d, f := c.Dim, c.Inner
	add := func(name string, init int, bound float64, shape ...int) int {
		l.specs = append(l.specs, paramSpec{name, shape, init, bound})
		return len(l.specs) - 1
	}
	ln := func(name string) lnorm {
		return lnorm{add(name+".g", initOnes, 0, d), add(name+".b", initZeros, 0, d)}
	}
	xav := math.Sqrt(6 / float64(d+3*d)) // in_proj_weight is [3d, d]
	at := func(name string) attn {
		return attn{
			add(name+".wq", initXavier, xav, d, d), add(name+".bq", initZeros, 0, d),
			add(name+".wk", initXavier, xav, d, d), add(name+".bk", initZeros, 0, d),
			add(name+".wv", initXavier, xav, d, d), add(name+".bv", initZeros, 0, d),
			add(name+".wo", initNormal, 0, d, d), add(name+".bo", initZeros, 0, d),
		}
	}
	ff := func(name string) ffn {
		return ffn{add(name+".w1", initNormal, 0, d, f), add(name+".b1", initZeros, 0, f),
			add(name+".w2", initNormal, 0, f, d), add(name+".b2", initZeros, 0, d)}
	}
	if dimT > 0 {
		b := 1 / math.Sqrt(float64(dimT))
		l.wt, l.bt = add("text_adaptor.w", initUniform, b, dimT, d), add("text_adaptor.b", initUniform, b, d)
	}
	if dimV > 0 {
		b := 1 / math.Sqrt(float64(dimV))
		l.wv, l.bv = add("img_adaptor.w", initUniform, b, dimV, d), add("img_adaptor.b", initUniform, b, d)
	}
	l.pos = add("position_embedding", initNormal, 0, c.MaxLen, d)
	l.ln0 = ln("layer_norm")
	l.fusion = add("fusion_factor", initZeros, 0, 1)
	if c.Mode == ModeTransductive && c.Stage == StageFinetune {
		l.item = add("item_embedding", initNormal, 0, numItems+1, d)
	}
	l.encSA, l.encLN1, l.encFF, l.encLN2 = at("encoder.self_attn"), ln("encoder.norm1"), ff("encoder.ffn"), ln("encoder.norm2")
	l.encNorm = ln("encoder.norm")
	l.decSA, l.decLN1 = at("decoder.self_attn"), ln("decoder.norm1")
	l.decCA, l.decLN2 = at("decoder.cross_attn"), ln("decoder.norm2")
	l.decFF, l.decLN3 = ff("decoder.ffn"), ln("decoder.norm3")
	l.decNorm = ln("decoder.norm")
	return l
}

// Dropout masks of a training step, in input order.
const (
	mDecIn   = iota // decoder input [B·L, d]
	mEncSA          // encoder self-attention weights [B, H, Q, Q]
	mEncRes1        // encoder attention branch [B·Q, d]
	mEncFF          // encoder feed-forward hidden [B·Q, inner]
	mEncRes2        // encoder feed-forward branch [B·Q, d]
	mDecSA          // decoder self-attention weights [B, H, L, L]
	mDecRes1        // [B·L, d]
	mDecCA          // decoder cross-attention weights [B, H, L, Q]
	mDecRes2        // [B·L, d]
	mDecFF          // [B·L, inner]
	mDecRes3        // [B·L, d]
	numMasks
)

// maskDims returns the dimensions of every dropout mask.
func maskDims(c *Config, B, L, Q int) [numMasks][]int {
	d, H, f := c.Dim, c.Heads, c.Inner
	return [numMasks][]int{
		{B * L, d}, {B, H, Q, Q}, {B * Q, d}, {B * Q, f}, {B * Q, d},
		{B, H, L, L}, {B * L, d}, {B, H, L, Q}, {B * L, d}, {B * L, f}, {B * L, d},
	}
}

// net builds MISSRec's forward pass over the parameter nodes p.
type net struct {
	cfg *Config
	lay *layout
	p   []*Node
	// masks are the pre-scaled dropout masks (nil at evaluation).
	masks []*Node
}

func (n *net) drop(k int, x *Node) *Node {
	if n.masks == nil || n.masks[k] == nil {
		return x
	}
	return Mul(x, n.masks[k])
}

func (n *net) layerNorm(x *Node, l lnorm) *Node {
	return gx.LayerNorm(x, n.p[l.g], n.p[l.b], n.cfg.LNEps)
}

func dense(x, w, b *Node) *Node { return gx.Dense(x, w, b) }

func gelu(x *Node) *Node { return gx.GELU(x) }

// l2norm is F.normalize: x / max(‖x‖, 1e-12) along the last axis.
func l2norm(x *Node) *Node {
	return Div(x, MaxScalar(Sqrt(ReduceAndKeep(Square(x), ReduceSum, -1)), 1e-12))
}

// mha is nn.MultiheadAttention (batch first): q from xq [B·Lq, d], keys and
// values from xkv [B·Lk, d], bias [B, Lk] additive key-padding bias,
// dropout mask k on the attention weights. It returns [B·Lq, d].
func (n *net) mha(xq, xkv, bias *Node, a attn, B, Lq, Lk, k int) *Node {
	d, H := n.cfg.Dim, n.cfg.Heads
	dh := d / H
	p := n.p
	qh := Reshape(dense(xq, p[a.wq], p[a.bq]), B, Lq, H, dh)
	kh := Reshape(dense(xkv, p[a.wk], p[a.bk]), B, Lk, H, dh)
	vh := Reshape(dense(xkv, p[a.wv], p[a.bv]), B, Lk, H, dh)
	scores := MulScalar(Einsum("bqhd,bkhd->bhqk", qh, kh), 1/math.Sqrt(float64(dh)))
	probs := n.drop(k, Softmax(Add(scores, Reshape(bias, B, 1, 1, Lk)), -1))
	ctx := Reshape(Einsum("bhqk,bkhd->bqhd", probs, vh), B*Lq, d)
	return dense(ctx, p[a.wo], p[a.bo])
}

func (n *net) ffn(x *Node, f ffn, inner int) *Node {
	p := n.p
	return dense(n.drop(inner, gelu(dense(x, p[f.w1], p[f.b1]))), p[f.w2], p[f.b2])
}

// adaptors returns the raw adaptor outputs of every item row (row 0 =
// padding, whose features are zero): text and image [items+1, d] (nil for a
// missing modality).
func (n *net) adaptors(featT, featV *Node) (at, av *Node) {
	l, p := n.lay, n.p
	if l.wt >= 0 {
		at = dense(featT, p[l.wt], p[l.bt])
	}
	if l.wv >= 0 {
		av = dense(featV, p[l.wv], p[l.bv])
	}
	return at, av
}

// idTable is the item-ID embedding with its padding row forced to zero (as
// nn.Embedding's padding_idx: no output, no gradient); normalised, the
// real rows are L2-normalised and the padding row stays zero (as
// F.normalize of a zero row, without the infinite slope of the norm at 0).
func (n *net) idTable(normalised bool) *Node {
	e := n.p[n.lay.item]
	rest := Slice(e, AxisRange(1, e.Shape().Dimensions[0]))
	if normalised {
		rest = l2norm(rest)
	}
	return Concatenate([]*Node{ZerosLike(Slice(e, AxisRange(0, 1))), rest}, 0)
}

// encode returns the normalised sequence vectors [B, d] and the encoder
// output (memory) [B·Q, d]. at/av are the adaptor outputs of all items,
// seqT and seqV [B, L] the rows of at and av of every position (the same
// item rows, except in pre-training's augmented view, whose text rows may
// point into the word-dropped table and whose image rows are those of the
// un-augmented sequence, as in the reference); seqT also indexes the
// item-ID embeddings. selfBias [B, L] and memBias [B, Q] are additive
// key-padding biases, interest [B, Q, d] the interest embeddings, last [B]
// the flat position of each row's last item.
func (n *net) encode(at, av, seqT, seqV, selfBias, interest, memBias, last *Node) (s, mem *Node) {
	c, l, p := n.cfg, n.lay, n.p
	dims := seqT.Shape().Dimensions
	B, L, Q, d := dims[0], dims[1], interest.Shape().Dimensions[1], c.Dim
	idx := Reshape(seqT, B*L, 1)
	var x *Node
	if at != nil {
		x = Gather(at, idx)
	}
	if av != nil {
		g := Gather(av, Reshape(seqV, B*L, 1))
		if x == nil {
			x = g
		} else {
			x = Add(x, g)
		}
	}
	x = Add(Reshape(x, B, L, d), ExpandDims(Slice(p[l.pos], AxisRange(0, L)), 0))
	x = Reshape(x, B*L, d)
	if l.item >= 0 {
		x = Add(x, Gather(n.idTable(false), idx))
	}
	x = n.drop(mDecIn, n.layerNorm(x, l.ln0))

	// Encoder over the interest tokens (no positions, no input norm).
	src := Reshape(interest, B*Q, d)
	src = n.layerNorm(Add(src, n.drop(mEncRes1, n.mha(src, src, memBias, l.encSA, B, Q, Q, mEncSA))), l.encLN1)
	src = n.layerNorm(Add(src, n.drop(mEncRes2, n.ffn(src, l.encFF, mEncFF))), l.encLN2)
	mem = n.layerNorm(src, l.encNorm)

	// Decoder over the item tokens: bidirectional self-attention, then
	// cross-attention to the interests.
	x = n.layerNorm(Add(x, n.drop(mDecRes1, n.mha(x, x, selfBias, l.decSA, B, L, L, mDecSA))), l.decLN1)
	x = n.layerNorm(Add(x, n.drop(mDecRes2, n.mha(x, mem, memBias, l.decCA, B, L, Q, mDecCA))), l.decLN2)
	x = n.layerNorm(Add(x, n.drop(mDecRes3, n.ffn(x, l.decFF, mDecFF))), l.decLN3)
	x = n.layerNorm(x, l.decNorm)
	s = l2norm(Gather(x, Reshape(last, B, 1)))
	return s, mem
}

// scores returns the fused cosine scores (before the temperature) of the
// sequence vectors s [B, d] against all item rows [B, items+1]: per
// modality s·norm(adaptor), fused by softmax(f·cosines) weights (dynamic)
// or averaged (static); transductive adds the ID cosine as (id + 2·fused)/3.
//
// With a single modality in transductive mode the reference scores
// differently (its _compute_test_item_embeddings): s·norm(adaptor + ID
// embedding), the sum normalised, not the 1:2 average of cosines.
func (n *net) scores(s, at, av *Node) *Node {
	c, l, p := n.cfg, n.lay, n.p
	if (at == nil) != (av == nil) && l.item >= 0 {
		return Einsum("bd,id->bi", s, n.singleTable(at, av))
	}
	var ct, cv *Node
	if at != nil {
		ct = Einsum("bd,id->bi", s, l2norm(at))
	}
	if av != nil {
		cv = Einsum("bd,id->bi", s, l2norm(av))
	}
	var fused *Node
	switch {
	case ct == nil:
		fused = cv
	case cv == nil:
		fused = ct
	case c.Fusion == FusionStatic:
		fused = MulScalar(Add(ct, cv), 0.5)
	default:
		// softmax over the two modalities of f·(a_t, a_v): w_t = σ(f·(a_t − a_v)).
		diff := Sub(ct, cv)
		wt := Sigmoid(Mul(diff, Reshape(p[l.fusion]))) // scalar f broadcast
		fused = Add(cv, Mul(wt, diff))
	}
	if l.item >= 0 {
		ids := Einsum("bd,id->bi", s, n.idTable(true))
		fused = DivScalar(Add(ids, MulScalar(fused, 2)), 3)
	}
	return fused
}

// singleTable is the item table of a single modality in transductive
// mode: norm(adaptor output + ID embedding) of every item row (the padding
// row: the adaptor bias).
func (n *net) singleTable(at, av *Node) *Node {
	a := at
	if a == nil {
		a = av
	}
	return l2norm(Add(a, n.idTable(false)))
}

// trainInputs is the number of non-parameter, non-mask inputs of the
// training graph.
const trainInputs = 10

// crossEntropy is the mean over rows of weight rowW [B] of the softmax
// cross-entropy of logits [B, V] at target [B].
func crossEntropy(logits, target, rowW *Node) *Node {
	B, V := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1]
	mx := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))
	lse := Add(Log(ReduceSum(Exp(Sub(logits, mx)), -1)), Reshape(mx, B))
	tl := ReduceSum(Mul(logits, OneHot(target, V, dtypes.Float32)), -1)
	nrows := Max(ReduceAllSum(rowW), ScalarOne(rowW.Graph(), rowW.DType()))
	return Div(ReduceAllSum(Mul(Sub(lse, tl), rowW)), nrows)
}

// interestReg is the interest regulariser Σ_b Σ_d (Σ_j w_bj · mem_bj,d)² / d
// of the encoder output mem [B·Q, d] with weights regW [B, Q].
func interestReg(c *Config, mem, regW *Node) *Node {
	B, Q := regW.Shape().Dimensions[0], regW.Shape().Dimensions[1]
	pooled := Einsum("bq,bqd->bd", regW, Reshape(mem, B, Q, c.Dim))
	return DivScalar(ReduceAllSum(Square(pooled)), float64(c.Dim))
}

// gradients returns the gradient of loss with respect to the parameters
// listed in trained (all when nil): frozen parameters get none computed.
func gradients(loss *Node, params []*Node, trained []int) []*Node {
	if trained == nil {
		return Gradient(loss, params...)
	}
	sub := make([]*Node, len(trained))
	for k, i := range trained {
		sub[k] = params[i]
	}
	return Gradient(loss, sub...)
}

// trainGraph is the fine-tuning step. Inputs: the parameters, then featT
// [items+1, dT] and featV [items+1, dV] (a [1, 1] placeholder for a missing
// modality), seq [B, L] int32, selfBias [B, L], interest [B, Q, d],
// memBias [B, Q], last [B] int32, target [B] int32 (item row, 0 = padding
// class), rowW [B] (1 for a real row), regW [B, Q] (the interest
// regulariser's per-position weight), then the dropout masks. Outputs:
// total loss, cross-entropy, regulariser, then the gradient of the total
// loss with respect to every parameter of trained (nil: all, in order).
func trainGraph(c *Config, lay *layout, trained []int) func(in []*Node) []*Node {
	np := len(lay.specs)
	return func(in []*Node) []*Node {
		params := in[:np]
		featT, featV, seq, selfBias := in[np], in[np+1], in[np+2], in[np+3]
		interest, memBias, last, target := in[np+4], in[np+5], in[np+6], in[np+7]
		rowW, regW := in[np+8], in[np+9]
		masks := in[np+trainInputs:]
		n := &net{cfg: c, lay: lay, p: params, masks: masks}
		at, av := n.adaptors(featT, featV)
		s, mem := n.encode(at, av, seq, seq, selfBias, interest, memBias, last)
		logits := DivScalar(n.scores(s, at, av), c.Temperature) // [B, items+1]
		tgt := target
		if !c.PadClass {
			cols := logits.Shape().Dimensions[1]
			logits = Slice(logits, AxisRange(), AxisRange(1, cols))
			tgt = AddScalar(target, -1)
		}
		ce := crossEntropy(logits, tgt, rowW)
		reg := interestReg(c, mem, regW)
		loss := Add(ce, MulScalar(reg, c.Gamma))
		return append([]*Node{loss, ce, reg}, gradients(loss, params, trained)...)
	}
}

// viewInputs is the number of inputs of one view of a pre-training batch:
// seqT, seqV, selfBias, interest, memBias, last, regW (as in trainGraph;
// seqT indexes the text table followed by the word-dropped one).
const viewInputs = 7

// pretrainInputs is the number of non-parameter, non-mask inputs of the
// pre-training graph.
const pretrainInputs = 3 + 2*viewInputs + 3

// pretrainGraph is the pre-training step (§3.7). Inputs: the parameters,
// featT, featV, featT2 (the word-dropped text features, [items+1, dT]; a
// [1, 1] placeholder when absent), the original view and the augmented
// view (viewInputs each), target [B] int32 (the item rows of the batch's
// positive items), rowW [B] (1 for a real row), colBias [B] (0 for a real
// row's candidate, maskBias for a padding row's), then the dropout masks of
// the original view and of the augmented view. Loss: L_si + λ·L_ss +
// γ·(R + R_aug), where L_si is the cross-entropy of the fused cosines of
// each sequence with the batch's positive items (diagonal labels, no
// false-negative masking), L_ss that of s·s'ᵀ between the sequence vectors
// of the two views. Outputs: loss, L_si, L_ss, R + R_aug, then the
// gradients of the loss with respect to every parameter.
func pretrainGraph(c *Config, lay *layout, hasT2 bool) func(in []*Node) []*Node {
	np := len(lay.specs)
	return func(in []*Node) []*Node {
		params := in[:np]
		featT, featV, featT2 := in[np], in[np+1], in[np+2]
		v1, v2 := in[np+3:np+3+viewInputs], in[np+3+viewInputs:np+3+2*viewInputs]
		target, rowW, colBias := in[np+3+2*viewInputs], in[np+4+2*viewInputs], in[np+5+2*viewInputs]
		masks := in[np+pretrainInputs:]
		n1 := &net{cfg: c, lay: lay, p: params, masks: masks[:numMasks]}
		n2 := &net{cfg: c, lay: lay, p: params, masks: masks[numMasks:]}
		at, av := n1.adaptors(featT, featV)
		at2 := at
		if at != nil && hasT2 {
			at2 = Concatenate([]*Node{at, dense(featT2, params[lay.wt], params[lay.bt])}, 0)
		}
		s1, mem1 := n1.encode(at, av, v1[0], v1[1], v1[2], v1[3], v1[4], v1[5])
		s2, mem2 := n2.encode(at2, av, v2[0], v2[1], v2[2], v2[3], v2[4], v2[5])
		B := s1.Shape().Dimensions[0]
		idx := Reshape(target, B, 1)
		var ct, cv *Node
		if at != nil {
			ct = Gather(at, idx)
		}
		if av != nil {
			cv = Gather(av, idx)
		}
		diag := Iota(s1.Graph(), shapes.Make(dtypes.Int32, B), 0)
		bias := Reshape(colBias, 1, B)
		si := crossEntropy(Add(DivScalar(n1.scores(s1, ct, cv), c.Temperature), bias), diag, rowW)
		ss := crossEntropy(Add(DivScalar(Einsum("bd,cd->bc", s1, s2), c.Temperature), bias), diag, rowW)
		reg := Add(interestReg(c, mem1, v1[6]), interestReg(c, mem2, v2[6]))
		loss := Add(Add(si, MulScalar(ss, c.Lambda)), MulScalar(reg, c.Gamma))
		return append([]*Node{loss, si, ss, reg}, Gradient(loss, params...)...)
	}
}

// evalGraph encodes histories without dropout: the parameters, then featT,
// featV, seq, selfBias, interest, memBias, last as in trainGraph. It returns
// the normalised sequence vectors [B, d].
func evalGraph(c *Config, lay *layout) func(in []*Node) []*Node {
	np := len(lay.specs)
	return func(in []*Node) []*Node {
		n := &net{cfg: c, lay: lay, p: in[:np]}
		at, av := n.adaptors(in[np], in[np+1])
		s, _ := n.encode(at, av, in[np+2], in[np+2], in[np+3], in[np+4], in[np+5], in[np+6])
		return []*Node{s}
	}
}

// itemGraph returns the item-side tables of the current parameters: the
// raw adaptor outputs (interest discovery) and their normalised versions
// (scoring) for text and image, and the normalised ID embeddings
// (transductive with both modalities; with one, its scoring table is
// singleTable instead and there is no separate ID table), each
// [items+1, d]; a missing part is a [1, 1] zero.
func itemGraph(c *Config, lay *layout) func(in []*Node) []*Node {
	np := len(lay.specs)
	return func(in []*Node) []*Node {
		n := &net{cfg: c, lay: lay, p: in[:np]}
		at, av := n.adaptors(in[np], in[np+1])
		g := in[np].Graph()
		zero := func() *Node { return Zeros(g, shapes.Make(dtypes.Float32, 1, 1)) }
		out := make([]*Node, 5)
		for k := range out {
			out[k] = zero()
		}
		if at != nil {
			out[0], out[1] = at, l2norm(at)
		}
		if av != nil {
			out[2], out[3] = av, l2norm(av)
		}
		switch {
		case lay.item >= 0 && at != nil && av != nil:
			out[4] = n.idTable(true)
		case lay.item >= 0 && at != nil: // single modality: the scoring table is norm(adaptor + ID)
			out[1] = n.singleTable(at, nil)
		case lay.item >= 0:
			out[3] = n.singleTable(nil, av)
		}
		return out
	}
}

package pmmrec

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // the graph DSL reads best unqualified

	"github.com/mmpipe/mmpipe/train/gx"
)

// Parameter initialisations.
const (
	initXavier = iota // Xavier-normal N(0, 2/(fan_in+fan_out)) (projections, user encoder, ID table)
	initBert          // N(0, 0.02) (the fusion layer's init_bert_weights)
	initOnes
	initZeros
)

// Parameter groups (what a transfer mode copies).
const (
	groupItem = iota // projections + fusion
	groupUser        // SASRec user encoder
	groupID          // ID table (tower id): dataset-specific, never transferred
	groupHead        // pre-training heads (NID)
)

type paramSpec struct {
	name  string
	shape []int
	init  int
	group int
}

// attn indexes an attention block: Q, K, V, O weights and biases (-1 when
// the block has no biases).
type attn struct{ wq, bq, wk, bk, wv, bv, wo, bo int }

type ffn struct{ w1, b1, w2, b2 int }

type lnorm struct{ g, b int }

type block struct {
	at       attn
	ln1, ln2 lnorm
	ff       ffn
}

// layout lists the parameters of a configuration (-1: absent).
type layout struct {
	specs          []paramSpec
	wt, bt, wv, bv int // text and image projections
	fuse           block
	idEmb          int
	pos            int
	ln0            lnorm
	blocks         []block
	nidW, nidB     int
}

// paramLayout lists PMMRec's parameters for a tower and stage; dimT and
// dimV are the token widths (0 when the tower does not read the modality).
func paramLayout(c *Config, numItems, dimT, dimV int) *layout {
	l := &layout{wt: -1, bt: -1, wv: -1, bv: -1, idEmb: -1, nidW: -1, nidB: -1}
	l.fuse = block{at: attn{-1, -1, -1, -1, -1, -1, -1, -1}, ln1: lnorm{-1, -1}, ln2: lnorm{-1, -1}, ff: ffn{-1, -1, -1, -1}}
	d := c.Dim
	add := func(name string, init, group int, shape ...int) int {
		l.specs = append(l.specs, paramSpec{name, shape, init, group})
		return len(l.specs) - 1
	}
	ln := func(name string, group int) lnorm {
		return lnorm{add(name+".g", initOnes, group, d), add(name+".b", initZeros, group, d)}
	}
	if dimT > 0 {
		l.wt, l.bt = add("text_proj.w", initXavier, groupItem, dimT, d), add("text_proj.b", initZeros, groupItem, d)
	}
	if dimV > 0 {
		l.wv, l.bv = add("image_proj.w", initXavier, groupItem, dimV, d), add("image_proj.b", initZeros, groupItem, d)
	}
	if c.Tower == TowerModal {
		f := &l.fuse
		f.at = attn{
			add("fusion.wq", initBert, groupItem, d, d), add("fusion.bq", initZeros, groupItem, d),
			add("fusion.wk", initBert, groupItem, d, d), add("fusion.bk", initZeros, groupItem, d),
			add("fusion.wv", initBert, groupItem, d, d), add("fusion.bv", initZeros, groupItem, d),
			add("fusion.wo", initBert, groupItem, d, d), add("fusion.bo", initZeros, groupItem, d),
		}
		f.ln1 = ln("fusion.ln1", groupItem)
		f.ff = ffn{add("fusion.w1", initBert, groupItem, d, 4*d), add("fusion.b1", initZeros, groupItem, 4*d),
			add("fusion.w2", initBert, groupItem, 4*d, d), add("fusion.b2", initZeros, groupItem, d)}
		f.ln2 = ln("fusion.ln2", groupItem)
	}
	if c.Tower == TowerID {
		l.idEmb = add("item_embedding", initXavier, groupID, numItems+1, d)
	}
	l.pos = add("user.position", initXavier, groupUser, c.MaxSeqLen, d)
	l.ln0 = ln("user.ln", groupUser)
	for k := range c.Blocks {
		p := fmt.Sprintf("user.block%d.", k)
		var b block
		b.at = attn{add(p+"wq", initXavier, groupUser, d, d), -1, add(p+"wk", initXavier, groupUser, d, d), -1,
			add(p+"wv", initXavier, groupUser, d, d), -1, add(p+"wo", initXavier, groupUser, d, d), -1}
		b.ln1 = ln(p+"ln1", groupUser)
		b.ff = ffn{add(p+"w1", initXavier, groupUser, d, 4*d), add(p+"b1", initZeros, groupUser, 4*d),
			add(p+"w2", initXavier, groupUser, 4*d, d), add(p+"b2", initZeros, groupUser, d)}
		b.ln2 = ln(p+"ln2", groupUser)
		l.blocks = append(l.blocks, b)
	}
	if c.Stage == StagePretrain {
		l.nidW, l.nidB = add("nid.w", initXavier, groupHead, d, 1), add("nid.b", initZeros, groupHead, 1)
	}
	return l
}

// Dropout masks. Item-encoder masks depend on U (distinct items) and T
// (tokens); user-encoder masks on B users and L positions. A pre-training
// step has a second set of user-encoder masks for the noised sequences.
type maskSet struct {
	fAttn, fRes1, fRes2 int // fusion: [U,H,T,T], [U·T,d], [U·T,d]
	uIn                 int // [B·L,d]
	uAttn, uRes1, uRes2 []int
}

// maskDims lists the dropout masks of a training step in input order and
// the index of each (fusion masks only for the modal tower; a second user
// set when noised).
func maskDims(c *Config, U, T, B int, noised bool) (dims [][]int, clean, noise maskSet) {
	d, L := c.Dim, c.MaxSeqLen
	add := func(s ...int) int { dims = append(dims, s); return len(dims) - 1 }
	user := func(ms *maskSet) {
		ms.uIn = add(B*L, d)
		for range c.Blocks {
			ms.uAttn = append(ms.uAttn, add(B, c.Heads, L, L))
			ms.uRes1 = append(ms.uRes1, add(B*L, d))
			ms.uRes2 = append(ms.uRes2, add(B*L, d))
		}
	}
	clean.fAttn, clean.fRes1, clean.fRes2 = -1, -1, -1
	if c.Tower == TowerModal {
		clean.fAttn, clean.fRes1, clean.fRes2 = add(U, c.FusionHeads, T, T), add(U*T, d), add(U*T, d)
	}
	user(&clean)
	if noised {
		noise.fAttn, noise.fRes1, noise.fRes2 = -1, -1, -1
		user(&noise)
	}
	return dims, clean, noise
}

// net builds the forward pass over the parameter nodes p.
type net struct {
	cfg   *Config
	lay   *layout
	p     []*Node
	masks []*Node // nil at evaluation
}

func (n *net) drop(k int, x *Node) *Node {
	if n.masks == nil || k < 0 {
		return x
	}
	return Mul(x, n.masks[k])
}

func (n *net) dense(x *Node, w, b int) *Node {
	if b < 0 {
		return MatMul(x, n.p[w])
	}
	return gx.Dense(x, n.p[w], n.p[b])
}

func (n *net) layerNorm(x *Node, l lnorm, eps float64) *Node {
	return gx.LayerNorm(x, n.p[l.g], n.p[l.b], eps)
}

// mha is multi-head self-attention over x [B·L, d] with heads H, additive
// bias broadcastable to [B, H, L, L] (given as [B, 1, 1|L, L]) and the
// attention-probability dropout mask k. It returns the output projection
// [B·L, d] (before dropout and residual).
func (n *net) mha(x, bias *Node, a attn, B, L, H, k int) *Node {
	d := n.cfg.Dim
	dh := d / H
	q := Reshape(n.dense(x, a.wq, a.bq), B, L, H, dh)
	kk := Reshape(n.dense(x, a.wk, a.bk), B, L, H, dh)
	v := Reshape(n.dense(x, a.wv, a.bv), B, L, H, dh)
	scores := Add(MulScalar(Einsum("bqhd,bkhd->bhqk", q, kk), 1/math.Sqrt(float64(dh))), bias)
	probs := n.drop(k, Softmax(scores, -1))
	ctx := Reshape(Einsum("bhqk,bkhd->bqhd", probs, v), B*L, d)
	return n.dense(ctx, a.wo, a.bo)
}

// maskedMean is Σ_t m_t·x_t / max(Σ_t m_t, 1) for x [U, T, d], m [U, T].
func maskedMean(x, m *Node) *Node {
	cnt := MaxScalar(ReduceAndKeep(m, ReduceSum, -1), 1) // [U, 1]
	return Div(Einsum("ut,utd->ud", m, x), cnt)
}

// project applies a per-token projection to tok [U, T, in] → [U, T, d].
func (n *net) project(tok *Node, w, b int) *Node {
	dims := tok.Shape().Dimensions
	U, T, in := dims[0], dims[1], dims[2]
	return Reshape(n.dense(Reshape(tok, U*T, in), w, b), U, T, n.cfg.Dim)
}

// itemInputs are the token inputs of the item encoder for U items.
type itemInputs struct {
	tokT, maskT, tokV, maskV *Node // [U,Tt,dT], [U,Tt], [U,Tv,dV], [U,Tv]
	ids                      *Node // [U] int32 item rows (tower id)
}

// items encodes U items: the item embeddings [U, d], and for the modal
// tower the pooled projected text and image vectors (NICL's inputs).
func (n *net) items(in itemInputs, ms maskSet) (emb, pt, pv *Node) {
	c, l := n.cfg, n.lay
	switch c.Tower {
	case TowerID:
		return Gather(n.p[l.idEmb], ExpandDims(in.ids, -1)), nil, nil
	case TowerText:
		return maskedMean(n.project(in.tokT, l.wt, l.bt), in.maskT), nil, nil
	case TowerImage:
		return maskedMean(n.project(in.tokV, l.wv, l.bv), in.maskV), nil, nil
	}
	xt, xv := n.project(in.tokT, l.wt, l.bt), n.project(in.tokV, l.wv, l.bv)
	pt, pv = maskedMean(xt, in.maskT), maskedMean(xv, in.maskV)
	x := Concatenate([]*Node{xt, xv}, 1)
	m := Concatenate([]*Node{in.maskT, in.maskV}, 1)
	dims := x.Shape().Dimensions
	U, T, d := dims[0], dims[1], dims[2]
	bias := Reshape(MulScalar(AddScalar(m, -1), 10000), U, 1, 1, T) // 0 valid, −10000 padded
	f := l.fuse
	h := Reshape(x, U*T, d)
	a := n.drop(ms.fRes1, n.mha(h, bias, f.at, U, T, c.FusionHeads, ms.fAttn))
	h = n.layerNorm(Add(a, h), f.ln1, 1e-12)
	ff := n.drop(ms.fRes2, n.dense(gx.GELU(n.dense(h, f.ff.w1, f.ff.b1)), f.ff.w2, f.ff.b2))
	h = n.layerNorm(Add(ff, h), f.ln2, 1e-12)
	return maskedMean(Reshape(h, U, T, d), m), pt, pv
}

// user runs the SASRec user encoder over x [B·L, d] (the item embeddings
// of the input positions) with the additive attention bias [B, L, L] and
// returns one vector per position [B·L, d].
func (n *net) user(x, bias *Node, B int, ms maskSet) *Node {
	c, l := n.cfg, n.lay
	L, d := c.MaxSeqLen, c.Dim
	h := Add(Reshape(x, B, L, d), ExpandDims(n.p[l.pos], 0))
	h = n.drop(ms.uIn, n.layerNorm(Reshape(h, B*L, d), l.ln0, 1e-6))
	b4 := Reshape(bias, B, 1, L, L)
	for k, bl := range l.blocks {
		am, r1, r2 := -1, -1, -1
		if ms.uAttn != nil {
			am, r1, r2 = ms.uAttn[k], ms.uRes1[k], ms.uRes2[k]
		}
		a := n.drop(r1, n.mha(h, b4, bl.at, B, L, c.Heads, am))
		h = n.layerNorm(Add(a, h), bl.ln1, 1e-6)
		ff := n.drop(r2, n.dense(MaxScalar(n.dense(h, bl.ff.w1, bl.ff.b1), 0), bl.ff.w2, bl.ff.b2))
		h = n.layerNorm(Add(ff, h), bl.ln2, 1e-6)
	}
	return h
}

// logSumExp over the last axis ([R, C] → [R]).
func logSumExp(x *Node) *Node {
	R := x.Shape().Dimensions[0]
	mx := StopGradient(ReduceAndKeep(x, ReduceMax, -1))
	return Add(Log(ReduceSum(Exp(Sub(x, mx)), -1)), Reshape(mx, R))
}

// weightedMean is Σ w·v / max(Σ w, 1e-12).
func weightedMean(v, w *Node) *Node {
	return Div(ReduceAllSum(Mul(v, w)), MaxScalar(ReduceAllSum(w), 1e-12))
}

// nextItemLoss is §4.6: logits H·Eᵀ − logQ[col], masked columns set to
// −1e4, cross-entropy at the target column, mean over the rows of weight 1.
// h [R, d], e [C, d], logQ [C], colMask [R, C] (1 = set to −1e4), target
// [R] int32, rowW [R].
func nextItemLoss(h, e, logQ, colMask, target, rowW *Node) *Node {
	C := e.Shape().Dimensions[0]
	logits := Sub(Einsum("rd,cd->rc", h, e), ExpandDims(logQ, 0))
	logits = Add(Mul(logits, OneMinus(colMask)), MulScalar(colMask, -1e4))
	tl := ReduceSum(Mul(logits, OneHot(target, C, dtypes.Float32)), -1)
	return weightedMean(Sub(logSumExp(logits), tl), rowW)
}

// l2norm is F.normalize along the last axis (x / max(‖x‖, 1e-12)); the
// clamp comes before the square root so that a zero row (padding, an item
// without text) has a zero gradient rather than NaN.
func l2norm(x *Node) *Node {
	return Div(x, Sqrt(MaxScalar(ReduceAndKeep(Square(x), ReduceSum, -1), 1e-24)))
}

// niclLoss is NICL over z [A, d] (A anchors: the normalised pooled text
// vectors then the image vectors of the batch's slots): sim = z·zᵀ/τ,
// per anchor lse over its candidates (cand [A, A], 1 = positive or
// negative) minus the mean similarity to its positives (posW [A, A], the
// positives' weights 1/|P|), averaged over the anchors of weight 1.
func niclLoss(z, posW, cand, anchorW *Node, tau float64) *Node {
	z = l2norm(z)
	sim := DivScalar(Einsum("ad,bd->ab", z, z), tau)
	lse := logSumExp(Add(sim, MulScalar(OneMinus(cand), -1e9)))
	return weightedMean(Sub(lse, ReduceSum(Mul(sim, posW), -1)), anchorW)
}

// nidLoss is binary cross-entropy with logits z [R] against labels y [R]
// (1 = noise), mean over rows of weight 1.
func nidLoss(z, y, rowW *Node) *Node {
	bce := Sub(Add(MaxScalar(z, 0), Log(AddScalar(Exp(Neg(Abs(z))), 1))), Mul(y, z))
	return weightedMean(bce, rowW)
}

// rclLoss is the symmetric in-batch InfoNCE between the clean (a [B, d])
// and noised (b [B, d]) user vectors: cosines / τ, user i's positive is
// column i; users of weight 0 are neither anchors nor negatives.
func rclLoss(a, b, userW *Node, tau float64) *Node {
	a, b = l2norm(a), l2norm(b)
	sim := DivScalar(Einsum("id,jd->ij", a, b), tau)
	off := MulScalar(ExpandDims(OneMinus(userW), 0), -1e9) // [1, B]
	diag := DivScalar(ReduceSum(Mul(a, b), -1), tau)
	ab := Sub(logSumExp(Add(sim, off)), diag)
	ba := Sub(logSumExp(Add(Transpose(sim, 0, 1), off)), diag)
	return MulScalar(Add(weightedMean(ab, userW), weightedMean(ba, userW)), 0.5)
}

// Inputs of the training graph after the parameters: the item encoder's
// five (tokT, maskT, tokV, maskV, ids), then slot [B·S] int32, attnBias
// [B, L, L], logQ [B·S], colMask [B·L, B·S], target [B·L] int32, rowW
// [B·L]; pre-training adds noised [B·L] int32, noiseY [B·L], posW [A, A],
// cand [A, A], anchorW [A], userW [B] (A = 2·B·S); then the dropout masks
// (maskDims).
const (
	itemInputsN  = 5
	trainInputsN = itemInputsN + 6
	preInputsN   = 6
)

func readItemInputs(in []*Node) itemInputs {
	return itemInputs{tokT: in[0], maskT: in[1], tokV: in[2], maskV: in[3], ids: in[4]}
}

// trainGraph is the training step; outputs: total loss, next-item loss
// (and NICL, NID, RCL when pre-training), then the gradient of the total
// with respect to every parameter.
func trainGraph(c *Config, lay *layout) func(in []*Node) []*Node {
	np := len(lay.specs)
	pre := c.Stage == StagePretrain
	return func(in []*Node) []*Node {
		params := in[:np]
		x := in[np:]
		it := readItemInputs(x)
		slot, attnBias, logQ, colMask, target, rowW := x[5], x[6], x[7], x[8], x[9], x[10]
		rest := x[trainInputsN:]
		if pre {
			rest = rest[preInputsN:]
		}
		B := attnBias.Shape().Dimensions[0]
		U := it.ids.Shape().Dimensions[0]
		T := 0
		if c.Tower == TowerModal {
			T = it.tokT.Shape().Dimensions[1] + it.tokV.Shape().Dimensions[1]
		}
		_, clean, noise := maskDims(c, U, T, B, pre)
		n := &net{cfg: c, lay: lay, p: params, masks: rest}
		L, S, d := c.MaxSeqLen, c.MaxSeqLen+1, c.Dim
		emb, pt, pv := n.items(it, clean)
		idx := ExpandDims(slot, -1)
		e := Gather(emb, idx) // [B·S, d]
		inputs := func(e *Node) *Node {
			return Reshape(Slice(Reshape(e, B, S, d), AxisRange(), AxisRange(0, L)), B*L, d)
		}
		h := n.user(inputs(e), attnBias, B, clean)
		rec := nextItemLoss(h, e, logQ, colMask, target, rowW)
		outs := []*Node{nil, rec}
		loss := rec
		if pre {
			p := x[trainInputsN:]
			noised, noiseY, posW, cand, anchorW, userW := p[0], p[1], p[2], p[3], p[4], p[5]
			hn := n.user(Gather(emb, ExpandDims(noised, -1)), attnBias, B, noise)
			nicl := ScalarZero(rec.Graph(), rec.DType())
			if pt != nil {
				z := Concatenate([]*Node{Gather(pt, idx), Gather(pv, idx)}, 0)
				nicl = niclLoss(z, posW, cand, anchorW, c.Temperature)
			}
			z := Reshape(n.dense(hn, lay.nidW, lay.nidB), B*L)
			nid := nidLoss(z, noiseY, rowW)
			last := func(h *Node) *Node {
				return Reshape(Slice(Reshape(h, B, L, d), AxisRange(), AxisRange(L-1, L)), B, d)
			}
			rcl := rclLoss(last(h), last(hn), userW, c.Temperature)
			loss = Add(loss, Add(MulScalar(nicl, c.NICLWeight), Add(MulScalar(nid, c.NIDWeight), MulScalar(rcl, c.RCLWeight))))
			outs = append(outs, nicl, nid, rcl)
		}
		outs[0] = loss
		return append(outs, Gradient(loss, params...)...)
	}
}

// itemGraph encodes items without dropout: the parameters, then the item
// encoder's five inputs; it returns the embeddings [U, d].
func itemGraph(c *Config, lay *layout) func(in []*Node) []*Node {
	np := len(lay.specs)
	return func(in []*Node) []*Node {
		n := &net{cfg: c, lay: lay, p: in[:np]}
		emb, _, _ := n.items(readItemInputs(in[np:]), maskSet{fAttn: -1, fRes1: -1, fRes2: -1, uIn: -1})
		return []*Node{emb}
	}
}

// userGraph encodes histories without dropout: the parameters, then x
// [B·L, d] (input item embeddings) and attnBias [B, L, L]; it returns the
// outputs at the last position [B, d].
func userGraph(c *Config, lay *layout) func(in []*Node) []*Node {
	np := len(lay.specs)
	return func(in []*Node) []*Node {
		n := &net{cfg: c, lay: lay, p: in[:np]}
		x, bias := in[np], in[np+1]
		B, L, d := bias.Shape().Dimensions[0], c.MaxSeqLen, c.Dim
		h := n.user(x, bias, B, maskSet{fAttn: -1, fRes1: -1, fRes2: -1, uIn: -1})
		return []*Node{Reshape(Slice(Reshape(h, B, L, d), AxisRange(), AxisRange(L-1, L)), B, d)}
	}
}

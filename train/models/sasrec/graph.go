package sasrec

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // the graph DSL reads best unqualified

	"github.com/mmpipe/mmpipe/train/gx"
)

// Parameter layout: item embedding (row 0 = padding, item i at row i+1),
// position embedding, the embedding LayerNorm, then per block the query,
// key, value and output projections with biases, the attention LayerNorm,
// the two feed-forward layers with biases and the feed-forward LayerNorm.
const (
	pItem = iota
	pPos
	pLN0g
	pLN0b
	nGlobal
)

const (
	lWq = iota
	lBq
	lWk
	lBk
	lWv
	lBv
	lWo
	lBo
	lLN1g
	lLN1b
	lW1
	lB1
	lW2
	lB2
	lLN2g
	lLN2b
	nPerLayer
)

// paramShapes lists the parameters' shapes in layout order.
func paramShapes(c *Config, numItems int) [][]int {
	d := c.Dim
	s := [][]int{{numItems + 1, d}, {c.MaxLen, d}, {d}, {d}}
	for range c.Layers {
		s = append(s, []int{d, d}, []int{d}, []int{d, d}, []int{d}, []int{d, d}, []int{d}, []int{d, d}, []int{d},
			[]int{d}, []int{d}, []int{d, c.Inner}, []int{c.Inner}, []int{c.Inner, d}, []int{d}, []int{d}, []int{d})
	}
	return s
}

// encoder builds SASRec's forward pass (RecBole's SASRec: post-LN
// transformer blocks, GELU, additive -10000 attention mask).
type encoder struct {
	cfg *Config
	p   []*Node
}

func (e *encoder) layerNorm(x, g, b *Node) *Node { return gx.LayerNorm(x, g, b, e.cfg.LNEps) }

func dense(x, w, b *Node) *Node { return gx.Dense(x, w, b) }

func gelu(x *Node) *Node { return gx.GELU(x) }

// forward returns the hidden states [B·L, d] of seq [B, L] (item rows,
// 0 = padding). bias [B, L, L] is the additive attention mask. masks holds
// the pre-scaled dropout masks (embedding [B·L, d], then per block the
// attention weights [B, H, L, L], attention output [B·L, d], feed-forward
// output [B·L, d]); nil at evaluation.
func (e *encoder) forward(seq, bias *Node, masks []*Node) *Node {
	c := e.cfg
	dims := seq.Shape().Dimensions
	B, L, d, H := dims[0], dims[1], c.Dim, c.Heads
	dh := d / H
	x := Gather(e.p[pItem], Reshape(seq, B*L, 1)) // [B·L, d]
	pos := Slice(e.p[pPos], AxisRange(0, L))      // [L, d]
	x = Add(Reshape(x, B, L, d), ExpandDims(pos, 0))
	x = e.layerNorm(Reshape(x, B*L, d), e.p[pLN0g], e.p[pLN0b])
	mask := func(k int, v *Node) *Node {
		if masks == nil || masks[k] == nil {
			return v
		}
		return Mul(v, masks[k])
	}
	x = mask(0, x)
	bias4 := ExpandDims(bias, 1) // [B, 1, L, L]
	for l := range c.Layers {
		q := e.p[nGlobal+l*nPerLayer:]
		heads := func(w, b *Node) *Node { return Reshape(dense(x, w, b), B, L, H, dh) }
		qh, kh, vh := heads(q[lWq], q[lBq]), heads(q[lWk], q[lBk]), heads(q[lWv], q[lBv])
		scores := MulScalar(Einsum("bqhd,bkhd->bhqk", qh, kh), 1/math.Sqrt(float64(dh)))
		probs := mask(1+3*l, Softmax(Add(scores, bias4), -1))
		ctx := Reshape(Einsum("bhqk,bkhd->bqhd", probs, vh), B*L, d)
		att := mask(2+3*l, dense(ctx, q[lWo], q[lBo]))
		x = e.layerNorm(Add(att, x), q[lLN1g], q[lLN1b])
		ff := dense(gelu(dense(x, q[lW1], q[lB1])), q[lW2], q[lB2])
		x = e.layerNorm(Add(mask(3+3*l, ff), x), q[lLN2g], q[lLN2b])
	}
	return x
}

// trainGraph is the training step in one GoMLX graph (used on the XLA
// backends, where the logits stay on the device): in = params, seq [B, L] int32, bias
// [B, L, L], tgtPos [N] int32 (flat positions into B·L), tgtItem [N] int32
// (item index), tgtW [N] (1 for a target, 0 for padding), then the dropout
// masks. It returns the mean cross-entropy over the targets (softmax over
// all items) and its gradient with respect to every parameter.
func trainGraph(c *Config, numItems, numParams int) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		params := in[:numParams]
		seq, bias, tgtPos, tgtItem, tgtW := in[numParams], in[numParams+1], in[numParams+2], in[numParams+3], in[numParams+4]
		masks := in[numParams+5:]
		e := &encoder{cfg: c, p: params}
		h := e.forward(seq, bias, masks)
		n := tgtPos.Shape().Dimensions[0]
		ht := Gather(h, Reshape(tgtPos, n, 1))                   // [N, d]
		items := Slice(params[pItem], AxisRange(1, numItems+1))  // [V, d]
		logits := Einsum("nd,vd->nv", ht, items)                 // [N, V]
		mx := StopGradient(ReduceAndKeep(logits, ReduceMax, -1)) // [N, 1]
		lse := Add(Log(ReduceSum(Exp(Sub(logits, mx)), -1)), Reshape(mx, n))
		tv := Gather(params[pItem], Reshape(AddScalar(tgtItem, 1), n, 1)) // [N, d]
		tl := ReduceSum(Mul(ht, tv), -1)
		loss := Div(ReduceAllSum(Mul(Sub(lse, tl), tgtW)), Max(ReduceAllSum(tgtW), ScalarOne(tgtW.Graph(), tgtW.DType())))
		return append([]*Node{loss}, Gradient(loss, params...)...)
	}
}

// hiddenGraph is the encoder half of the training step for the native
// output layer: in = params, seq [B, L], bias [B, L, L], tgtPos [N] int32,
// then the dropout masks. It returns the hidden states at the targets,
// [N, d]; the cross-entropy over all items runs natively
// (sparse.SoftmaxXent).
func hiddenGraph(c *Config, numParams int) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		return []*Node{targetHidden(c, numParams, in)}
	}
}

// hiddenVJPGraph is hiddenGraph's vector–Jacobian product: the same inputs
// (the same dropout masks) plus g [N, d], the loss gradient at the hidden
// states; it returns gᵀ·∂h/∂p for every parameter.
func hiddenVJPGraph(c *Config, numParams int) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		g := in[len(in)-1]
		h := targetHidden(c, numParams, in[:len(in)-1])
		return Gradient(ReduceAllSum(Mul(h, g)), in[:numParams]...)
	}
}

// targetHidden gathers the encoder's hidden states at the target
// positions: in = params, seq, bias, tgtPos, masks.
func targetHidden(c *Config, numParams int, in []*Node) *Node {
	params := in[:numParams]
	seq, bias, tgtPos := in[numParams], in[numParams+1], in[numParams+2]
	e := &encoder{cfg: c, p: params}
	h := e.forward(seq, bias, in[numParams+3:])
	n := tgtPos.Shape().Dimensions[0]
	return Gather(h, Reshape(tgtPos, n, 1))
}

// evalGraph encodes histories without dropout: in = params, seq [B, L],
// bias [B, L, L], last [B] int32 (flat position of each row's last item).
// It returns the hidden state at the last position, [B, d].
func evalGraph(c *Config, numParams int) func(in []*Node) []*Node {
	return func(in []*Node) []*Node {
		params := in[:numParams]
		seq, bias, last := in[numParams], in[numParams+1], in[numParams+2]
		e := &encoder{cfg: c, p: params}
		h := e.forward(seq, bias, nil)
		b := last.Shape().Dimensions[0]
		return []*Node{Gather(h, Reshape(last, b, 1))}
	}
}

package sparse

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Op is the one boundary between mmpipe's native kernels and the dense part
// of a model's step: a differentiable function of dense matrices with a
// hand-written vector–Jacobian product. A model chains Ops (native graph
// propagation, gathers) with a dense part (GoMLX, or plain Go for the
// baselines): it calls Forward on each in order, computes the loss and its
// gradient with respect to the last output, then calls VJP in reverse order.
//
// Forward keeps what VJP needs (the inputs' shapes, gather indices, ...);
// VJP refers to the most recent Forward. The matrices an Op returns may be
// buffers it reuses on the next call: copy them to keep them. An Op is not
// safe for concurrent use; its kernels use the workers given at
// construction.
type Op interface {
	// Forward computes the output from the inputs.
	Forward(in []Mat) (Mat, error)
	// VJP returns gᵀ·∂out/∂in_k for each input k, given g = ∂L/∂out of
	// the last Forward. An entry is the zero Mat for an input that has no
	// gradient (a constant).
	VJP(g Mat) ([]Mat, error)
}

// errNoForward is returned by VJP before any Forward.
var errNoForward = errors.New("VJP called before Forward")

// SpMMOp is Op(X) = A·X for a fixed sparse A. Its VJP is Aᵀ·g (the same
// kernel when A is symmetric).
type SpMMOp struct {
	A       *CSR
	Workers int

	out, grad Mat
	rows      int
	done      bool
}

// Forward computes A·X (one input).
func (o *SpMMOp) Forward(in []Mat) (Mat, error) {
	if len(in) != 1 {
		return Mat{}, fmt.Errorf("spmm op: %d inputs, want 1", len(in))
	}
	o.out = resize(o.out, o.A.NRows, in[0].Cols)
	if err := o.A.Mul(o.out, in[0], o.Workers); err != nil {
		return Mat{}, err
	}
	o.rows, o.done = in[0].Rows, true
	return o.out, nil
}

// VJP computes Aᵀ·g.
func (o *SpMMOp) VJP(g Mat) ([]Mat, error) {
	if !o.done {
		return nil, fmt.Errorf("spmm op: %w", errNoForward)
	}
	o.grad = resize(o.grad, o.A.NCols, g.Cols)
	if err := o.A.MulT(o.grad, g, o.Workers); err != nil {
		return nil, err
	}
	return []Mat{o.grad}, nil
}

// PropagateOp is LightGCN's graph propagation with layer averaging:
// Op(X) = (X + ÂX + Â²X + … + Â^L X) / (L+1) for a square Â and L =
// Layers ≥ 0. It is linear, so its VJP is the same sum with Âᵀ:
// (g + Âᵀg + … + (Âᵀ)^L g) / (L+1); for the symmetric normalised graph the
// same kernel runs in both directions.
type PropagateOp struct {
	A       *CSR
	Layers  int
	Workers int

	out, grad, cur, nxt Mat
	done                bool
}

// propagate computes dst = mean over k = 0..L of M^k src.
func (o *PropagateOp) propagate(dst *Mat, src Mat, m *CSR) error {
	if m.NRows != m.NCols || src.Rows != m.NRows {
		return fmt.Errorf("propagate op: Â is %d×%d, input has %d rows", m.NRows, m.NCols, src.Rows)
	}
	if o.Layers < 0 {
		return fmt.Errorf("propagate op: %d layers", o.Layers)
	}
	*dst = resize(*dst, src.Rows, src.Cols)
	copy(dst.Data, src.Data)
	o.cur = resize(o.cur, src.Rows, src.Cols)
	o.nxt = resize(o.nxt, src.Rows, src.Cols)
	prev := src
	for l := range o.Layers {
		scale := float32(1)
		if l == o.Layers-1 {
			scale = 1 / float32(o.Layers+1)
		}
		if err := m.MulAcc(o.nxt, prev, *dst, scale, o.Workers); err != nil {
			return err
		}
		o.cur, o.nxt = o.nxt, o.cur
		prev = o.cur
	}
	return nil
}

// Forward computes the layer mean (one input).
func (o *PropagateOp) Forward(in []Mat) (Mat, error) {
	if len(in) != 1 {
		return Mat{}, fmt.Errorf("propagate op: %d inputs, want 1", len(in))
	}
	if err := o.propagate(&o.out, in[0], o.A); err != nil {
		return Mat{}, err
	}
	o.done = true
	return o.out, nil
}

// VJP computes the layer mean with Âᵀ.
func (o *PropagateOp) VJP(g Mat) ([]Mat, error) {
	if !o.done {
		return nil, fmt.Errorf("propagate op: %w", errNoForward)
	}
	if err := o.propagate(&o.grad, g, o.A.transpose()); err != nil {
		return nil, err
	}
	return []Mat{o.grad}, nil
}

// GatherOp is Op(X) = X[Index] (row b of the output is row Index[b] of
// X): an embedding lookup. Its VJP scatter-adds g's rows into a zero
// matrix of X's shape, summing rows gathered more than once.
type GatherOp struct {
	Index []int32

	out, grad Mat
	rows      int
	done      bool
}

// Forward gathers the rows (one input).
func (o *GatherOp) Forward(in []Mat) (Mat, error) {
	if len(in) != 1 {
		return Mat{}, fmt.Errorf("gather op: %d inputs, want 1", len(in))
	}
	o.out = resize(o.out, len(o.Index), in[0].Cols)
	if err := Gather(o.out, in[0], o.Index); err != nil {
		return Mat{}, err
	}
	o.rows, o.done = in[0].Rows, true
	return o.out, nil
}

// VJP scatter-adds g into a zero matrix shaped like the input.
func (o *GatherOp) VJP(g Mat) ([]Mat, error) {
	if !o.done {
		return nil, fmt.Errorf("gather op: %w", errNoForward)
	}
	o.grad = resize(o.grad, o.rows, g.Cols)
	o.grad.Zero()
	if err := ScatterAdd(o.grad, o.Index, g); err != nil {
		return nil, err
	}
	return []Mat{o.grad}, nil
}

// Chain composes single-input Ops: Forward runs them in order, VJP in
// reverse.
type Chain []Op

// Forward runs every Op on the previous one's output.
func (c Chain) Forward(in []Mat) (Mat, error) {
	if len(in) != 1 {
		return Mat{}, fmt.Errorf("chain: %d inputs, want 1", len(in))
	}
	x := in[0]
	for k, op := range c {
		y, err := op.Forward([]Mat{x})
		if err != nil {
			return Mat{}, fmt.Errorf("chain step %d: %w", k, err)
		}
		x = y
	}
	return x, nil
}

// VJP runs the Ops' VJPs in reverse order.
func (c Chain) VJP(g Mat) ([]Mat, error) {
	for k := len(c) - 1; k >= 0; k-- {
		gs, err := c[k].VJP(g)
		if err != nil {
			return nil, fmt.Errorf("chain step %d: %w", k, err)
		}
		if len(gs) != 1 {
			return nil, fmt.Errorf("chain step %d: %d gradients, want 1", k, len(gs))
		}
		g = gs[0]
	}
	return []Mat{g}, nil
}

// CheckVJP compares op's VJP with central finite differences of the scalar
// L(X) = Σ R ⊙ Op(X) for a random R, at probes randomly chosen input
// elements (all elements when probes ≤ 0). It returns the largest error
// |analytic − numeric| / max(1, |numeric|) over the probes. The inputs are
// perturbed by ±eps and restored.
func CheckVJP(op Op, in []Mat, eps float64, probes int, rng *rand.Rand) (float64, error) {
	out, err := op.Forward(in)
	if err != nil {
		return 0, err
	}
	r := NewMat(out.Rows, out.Cols)
	for k := range r.Data {
		r.Data[k] = float32(rng.NormFloat64())
	}
	gs, err := op.VJP(r)
	if err != nil {
		return 0, err
	}
	if len(gs) != len(in) {
		return 0, fmt.Errorf("check vjp: %d gradients for %d inputs", len(gs), len(in))
	}
	analytic := make([]Mat, len(gs))
	for k, g := range gs {
		analytic[k] = g.Clone()
	}
	loss := func() (float64, error) {
		o, err := op.Forward(in)
		if err != nil {
			return 0, err
		}
		s := 0.0
		for k, v := range o.Data {
			s += float64(v) * float64(r.Data[k])
		}
		return s, nil
	}
	worst := 0.0
	for k, x := range in {
		idx := make([]int, 0, len(x.Data))
		if probes <= 0 || probes >= len(x.Data) {
			for e := range x.Data {
				idx = append(idx, e)
			}
		} else {
			for range probes {
				idx = append(idx, rng.IntN(len(x.Data)))
			}
		}
		for _, e := range idx {
			old := x.Data[e]
			x.Data[e] = old + float32(eps)
			lp, err := loss()
			if err != nil {
				return 0, err
			}
			x.Data[e] = old - float32(eps)
			lm, err := loss()
			if err != nil {
				return 0, err
			}
			x.Data[e] = old
			num := (lp - lm) / (2 * eps)
			var an float64
			if len(analytic[k].Data) > 0 {
				an = float64(analytic[k].Data[e])
			}
			worst = max(worst, math.Abs(an-num)/max(1, math.Abs(num)))
		}
	}
	return worst, nil
}

package mmssl

import (
	"fmt"
	"math"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// attnOp is the cross-modal multi-head self-attention the paper describes
// (mode=intended), as a sparse.Op: for each row (a user or an item) the M
// modality views x_1..x_M (inputs 0..M-1, n × d each) attend to each other,
//
//	q_m = x_m·Wq, k_m = x_m·Wk, v_m = x_m·Wv, split into H heads of d/H,
//	o_m^h = Σ_m' softmax_m'(q_m^h·k_m'^h / √(d/H)) · v_m'^h,
//	out = (1/M) Σ_m concat_h(o_m^h) · Wo,
//
// with Wq, Wk, Wv, Wo (d × d) the inputs M..M+3. The reference's version
// (mode=faithful) reduces to x_m·W_sum (quirk Q2).
type attnOp struct {
	M, Heads int
	Workers  int

	in         []sparse.Mat
	q, k, v, o []sparse.Mat // n × d per modality
	a          []float32    // n × H × M × M attention weights
	obar, out  sparse.Mat
	gq, gk, gv []sparse.Mat
	done       bool
	n, d, dh   int
	scale      float32
}

// Forward computes the fused rows.
func (o *attnOp) Forward(in []sparse.Mat) (sparse.Mat, error) {
	if len(in) != o.M+4 {
		return sparse.Mat{}, fmt.Errorf("attention op: %d inputs, want %d", len(in), o.M+4)
	}
	n, d := in[0].Rows, in[0].Cols
	if o.Heads < 1 || d%o.Heads != 0 {
		return sparse.Mat{}, fmt.Errorf("attention op: %d heads do not divide d = %d", o.Heads, d)
	}
	for k, x := range in {
		if (k < o.M && (x.Rows != n || x.Cols != d)) || (k >= o.M && (x.Rows != d || x.Cols != d)) {
			return sparse.Mat{}, fmt.Errorf("attention op: input %d is %d×%d", k, x.Rows, x.Cols)
		}
	}
	o.in, o.n, o.d, o.dh = in, n, d, d/o.Heads
	o.scale = float32(1 / math.Sqrt(float64(o.dh)))
	grow := func(ms *[]sparse.Mat) {
		for len(*ms) < o.M {
			*ms = append(*ms, sparse.Mat{})
		}
		for k := range o.M {
			if len((*ms)[k].Data) != n*d {
				(*ms)[k] = sparse.NewMat(n, d)
			}
		}
	}
	for _, ms := range []*[]sparse.Mat{&o.q, &o.k, &o.v, &o.o} {
		grow(ms)
	}
	wq, wk, wv, wo := in[o.M], in[o.M+1], in[o.M+2], in[o.M+3]
	for m := range o.M {
		for _, p := range []struct{ dst, w sparse.Mat }{{o.q[m], wq}, {o.k[m], wk}, {o.v[m], wv}} {
			if err := gemm(p.dst, in[m], p.w, o.Workers); err != nil {
				return sparse.Mat{}, err
			}
		}
	}
	M, H, dh := o.M, o.Heads, o.dh
	if len(o.a) != n*H*M*M {
		o.a = make([]float32, n*H*M*M)
	}
	o.obar = resizeMat(o.obar, n, d)
	sparse.ParallelFor(n, o.Workers, func(lo, hi int) {
		s := make([]float64, M)
		for r := lo; r < hi; r++ {
			ob := o.obar.Row(r)
			clear(ob)
			for h := range H {
				c0 := h * dh
				for m := range M {
					qm := o.q[m].Row(r)[c0 : c0+dh]
					mx := math.Inf(-1)
					for mp := range M {
						s[mp] = float64(o.scale) * dot64(qm, o.k[mp].Row(r)[c0:c0+dh])
						mx = max(mx, s[mp])
					}
					tot := 0.0
					for mp := range M {
						s[mp] = math.Exp(s[mp] - mx)
						tot += s[mp]
					}
					om := o.o[m].Row(r)[c0 : c0+dh]
					clear(om)
					for mp := range M {
						w := float32(s[mp] / tot)
						o.a[((r*H+h)*M+m)*M+mp] = w
						axpy(w, o.v[mp].Row(r)[c0:c0+dh], om)
					}
					axpy(1/float32(M), om, ob[c0:c0+dh])
				}
			}
		}
	})
	o.out = resizeMat(o.out, n, d)
	if err := gemm(o.out, o.obar, wo, o.Workers); err != nil {
		return sparse.Mat{}, err
	}
	o.done = true
	return o.out, nil
}

// resizeMat returns m if it is rows × cols, else a new zero matrix.
func resizeMat(m sparse.Mat, rows, cols int) sparse.Mat {
	if m.Rows == rows && m.Cols == cols && len(m.Data) == rows*cols {
		return m
	}
	return sparse.NewMat(rows, cols)
}

// VJP returns the gradients of the M views and the four weights.
func (o *attnOp) VJP(g sparse.Mat) ([]sparse.Mat, error) {
	if !o.done {
		return nil, fmt.Errorf("attention op: VJP called before Forward")
	}
	n, d, M, H, dh := o.n, o.d, o.M, o.Heads, o.dh
	if g.Rows != n || g.Cols != d {
		return nil, fmt.Errorf("attention op: gradient %d×%d for output %d×%d", g.Rows, g.Cols, n, d)
	}
	wq, wk, wv, wo := o.in[M], o.in[M+1], o.in[M+2], o.in[M+3]
	grads := make([]sparse.Mat, M+4)
	// out = obar·Wo: gWo = obarᵀ·g, gobar = g·Woᵀ.
	grads[M+3] = sparse.NewMat(d, d)
	if err := gemm(grads[M+3], o.obar.Transpose(), g, o.Workers); err != nil {
		return nil, err
	}
	gob := sparse.NewMat(n, d)
	if err := gemm(gob, g, wo.Transpose(), o.Workers); err != nil {
		return nil, err
	}
	for len(o.gq) < M {
		o.gq, o.gk, o.gv = append(o.gq, sparse.Mat{}), append(o.gk, sparse.Mat{}), append(o.gv, sparse.Mat{})
	}
	for m := range M {
		o.gq[m], o.gk[m], o.gv[m] = sparse.NewMat(n, d), sparse.NewMat(n, d), sparse.NewMat(n, d)
	}
	invM := 1 / float32(M)
	sparse.ParallelFor(n, o.Workers, func(lo, hi int) {
		ga := make([]float64, M)
		for r := lo; r < hi; r++ {
			gor := gob.Row(r)
			for h := range H {
				c0 := h * dh
				gom := gor[c0 : c0+dh] // ∂L/∂o_m^h = gobar/M for every m
				for m := range M {
					a := o.a[((r*H+h)*M+m)*M : ((r*H+h)*M+m+1)*M]
					sum := 0.0
					for mp := range M {
						vm := o.v[mp].Row(r)[c0 : c0+dh]
						axpy(invM*a[mp], gom, o.gv[mp].Row(r)[c0:c0+dh])
						ga[mp] = float64(invM) * dot64(gom, vm)
						sum += float64(a[mp]) * ga[mp]
					}
					qm := o.q[m].Row(r)[c0 : c0+dh]
					gqm := o.gq[m].Row(r)[c0 : c0+dh]
					for mp := range M {
						gs := float32(float64(a[mp])*(ga[mp]-sum)) * o.scale
						axpy(gs, o.k[mp].Row(r)[c0:c0+dh], gqm)
						axpy(gs, qm, o.gk[mp].Row(r)[c0:c0+dh])
					}
				}
			}
		}
	})
	// q = x·Wq etc.: gW = xᵀ·g, gx = g·Wᵀ.
	for k := range 3 {
		grads[M+k] = sparse.NewMat(d, d)
	}
	wts := []sparse.Mat{wq.Transpose(), wk.Transpose(), wv.Transpose()}
	tmp := sparse.NewMat(d, d)
	gx := sparse.NewMat(n, d)
	for m := range M {
		grads[m] = sparse.NewMat(n, d)
		xt := o.in[m].Transpose()
		for k, gm := range []sparse.Mat{o.gq[m], o.gk[m], o.gv[m]} {
			if err := gemm(tmp, xt, gm, o.Workers); err != nil {
				return nil, err
			}
			addInto(grads[M+k].Data, tmp.Data, o.Workers)
			if err := gemm(gx, gm, wts[k], o.Workers); err != nil {
				return nil, err
			}
			addInto(grads[m].Data, gx.Data, o.Workers)
		}
	}
	return grads, nil
}

package mmssl

import (
	"fmt"
	"math"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// bnEps is BatchNorm1d's eps.
const bnEps = 1e-5

// critic is MMSSL's Discriminator as the reference runs it (always in
// training mode):
//
//	Linear(I → H1) → LeakyReLU(slope 1 = identity) → BatchNorm1d(H1) → Dropout(p1)
//	→ Linear(H1 → H2) → identity → BatchNorm1d(H2) → Dropout(p2)
//	→ Linear(H2 → 1) → Sigmoid → × 100
//
// with H1 = int(I/4), H2 = int(I/8), BatchNorm on the statistics of the
// batch it is called with. slope is the LeakyReLU's negative slope (1 in
// faithful mode, where the layer is the identity). Its first layer is
// stored transposed (w1t, I × H1, the layout of its gradient); w1 (H1 × I)
// is the transposed copy the gradient penalty's Gram product needs,
// refreshed after each update.
type critic struct {
	items, h1, h2 int
	workers       int
	p1, p2        float64
	slope         float32

	w1t, b1, g1, be1 []float32
	w2, b2, g2, be2  []float32
	w3, b3           []float32
	w1, w2t          []float32

	grads [][]float32 // same order as params()
	opt   []*sparse.Adam

	ps   pass
	tmp  []float32 // I × H1
	kbuf []float32 // H1 × H1
	cbuf []float32 // H1 × H1
	tbuf []float32 // transposes
	sums []sparse.Mat
	sbuf [][]float32
	z    []sparse.Mat
	zbuf [][]float32
	wqt  []sparse.Mat
	wbuf [][]float32
	qt   []float32

	// stale is set when the parameters may have been overwritten from
	// outside (State() hands out aliases for a checkpoint restore): the
	// transposed copies are refreshed before the next use.
	stale bool

	// onForward, when set (tests), sees every forward pass.
	onForward func(p *pass)
}

// pass holds one call of the critic on n rows: the forward activations and
// dropout masks, and the buffers of its backward passes.
type pass struct {
	n                 int
	xw, xh1, m1, d1   []float32 // n × H1
	a1p               []float32 // n × H1: pre-activation before LeakyReLU (slope ≠ 1)
	xh2, m2, d2, a2p  []float32 // n × H2
	r1, r2            []float32
	a3, s             []float64
	gXh1, t1, ga1, gb []float32 // n × H1
	gXh2, t2, ga2     []float32 // n × H2
	gn2, tr           []float32
	mm1, mm2          []float64
	adj1              []float32 // n × H1: ∂L/∂(X·W1ᵀ)
}

// newCritic initialises the critic for items inputs with Kaiming-normal
// weights (std √(2/fan_in)), zero biases and BatchNorm γ = 1, β = 0.
func newCritic(items int, p1, p2, slope float64, adam sparse.AdamConfig, rng *train.RNG, workers int) (*critic, error) {
	h1, h2 := items/4, items/8
	if h1 < 1 || h2 < 1 {
		return nil, fmt.Errorf("critic: %d items give hidden sizes %d and %d; MMSSL's critic needs at least 8 items", items, h1, h2)
	}
	c := &critic{items: items, h1: h1, h2: h2, workers: workers, p1: p1, p2: p2, slope: float32(slope)}
	normal := func(n int, fanIn int) []float32 {
		w := make([]float32, n)
		std := math.Sqrt(2 / float64(fanIn))
		for k := range w {
			w[k] = float32(rng.NormFloat64() * std)
		}
		return w
	}
	ones := func(n int) []float32 {
		w := make([]float32, n)
		for k := range w {
			w[k] = 1
		}
		return w
	}
	// W1 is drawn in PyTorch's layout (H1 × I) and stored transposed.
	c.w1 = normal(h1*items, items)
	c.w1t = make([]float32, items*h1)
	transposeInto(sparse.Mat{Rows: items, Cols: h1, Data: c.w1t}, sparse.Mat{Rows: h1, Cols: items, Data: c.w1}, workers)
	c.b1, c.g1, c.be1 = make([]float32, h1), ones(h1), make([]float32, h1)
	c.w2 = normal(h2*h1, h1)
	c.w2t = make([]float32, h1*h2)
	c.b2, c.g2, c.be2 = make([]float32, h2), ones(h2), make([]float32, h2)
	c.w3, c.b3 = normal(h2, h2), make([]float32, 1)
	for _, p := range c.params() {
		c.grads = append(c.grads, make([]float32, len(p.F32)))
		c.opt = append(c.opt, sparse.NewAdam(adam, len(p.F32), workers))
	}
	c.refresh()
	return c, nil
}

// params lists the critic's parameters (state names and shapes).
func (c *critic) params() []train.Tensor {
	return []train.Tensor{
		train.F32Tensor("critic.w1t", c.w1t, c.items, c.h1),
		train.F32Tensor("critic.b1", c.b1, c.h1),
		train.F32Tensor("critic.bn1.weight", c.g1, c.h1),
		train.F32Tensor("critic.bn1.bias", c.be1, c.h1),
		train.F32Tensor("critic.w2", c.w2, c.h2, c.h1),
		train.F32Tensor("critic.b2", c.b2, c.h2),
		train.F32Tensor("critic.bn2.weight", c.g2, c.h2),
		train.F32Tensor("critic.bn2.bias", c.be2, c.h2),
		train.F32Tensor("critic.w3", c.w3, 1, c.h2),
		train.F32Tensor("critic.b3", c.b3, 1),
	}
}

// state is the parameters and Adam's moments and step counts.
func (c *critic) state() []train.Tensor {
	c.stale = true
	ps := c.params()
	out := append([]train.Tensor(nil), ps...)
	for k, p := range ps {
		o := c.opt[k]
		out = append(out, train.F32Tensor(p.Name+".adam.m", o.M, p.Shape...),
			train.F32Tensor(p.Name+".adam.v", o.V, p.Shape...), train.ScalarI64(p.Name+".adam.step", &o.Step))
	}
	return out
}

// refresh recomputes the transposed copies after a parameter change.
func (c *critic) refresh() {
	transposeInto(sparse.Mat{Rows: c.h1, Cols: c.items, Data: c.w1}, sparse.Mat{Rows: c.items, Cols: c.h1, Data: c.w1t}, c.workers)
	transposeInto(sparse.Mat{Rows: c.h1, Cols: c.h2, Data: c.w2t}, sparse.Mat{Rows: c.h2, Cols: c.h1, Data: c.w2}, c.workers)
}

// zeroGrad clears the gradients.
func (c *critic) zeroGrad() {
	for _, g := range c.grads {
		clear(g)
	}
}

// update applies one Adam step with the accumulated gradients.
func (c *critic) update() error {
	for k, p := range c.params() {
		if err := c.opt[k].Update(p.F32, c.grads[k]); err != nil {
			return fmt.Errorf("critic %s: %w", p.Name, err)
		}
	}
	c.refresh()
	return nil
}

// prepare computes the per-step products of the low-rank terms t ≥ from
// (the inputs to come use no other): (W1·Q_t)ᵀ and Z_t = Pb_t·(W1·Q_t)ᵀ,
// and clears the per-user gradient sums.
func (c *critic) prepare(f *factors, batch, from int) error {
	nt := len(f.Q)
	for len(c.wbuf) < nt {
		c.wbuf = append(c.wbuf, nil)
		c.zbuf = append(c.zbuf, nil)
		c.sbuf = append(c.sbuf, nil)
	}
	c.wqt, c.z, c.sums = c.wqt[:0], c.z[:0], c.sums[:0]
	w1t := sparse.Mat{Rows: c.items, Cols: c.h1, Data: c.w1t}
	for t := range nt {
		d := f.Q[t].Cols
		w := mat(&c.wbuf[t], d, c.h1)
		z := mat(&c.zbuf[t], batch, c.h1)
		if t >= from {
			qt := mat(&c.qt, d, c.items)
			transposeInto(qt, f.Q[t], c.workers)
			if err := gemm(w, qt, w1t, c.workers); err != nil {
				return err
			}
			if err := gemm(z, f.Pb[t], w, c.workers); err != nil {
				return err
			}
		}
		c.wqt = append(c.wqt, w)
		c.z = append(c.z, z)
		s := mat(&c.sbuf[t], batch, c.h1)
		s.Zero()
		c.sums = append(c.sums, s)
	}
	return nil
}

// grow sizes the pass buffers for n rows.
func (p *pass) grow(n, h1, h2 int) {
	p.n = n
	for _, b := range []*[]float32{&p.xw, &p.xh1, &p.m1, &p.d1, &p.a1p, &p.gXh1, &p.t1, &p.ga1, &p.gb, &p.adj1} {
		mat(b, n, h1)
	}
	for _, b := range []*[]float32{&p.xh2, &p.m2, &p.d2, &p.a2p, &p.gXh2, &p.t2, &p.ga2, &p.gn2} {
		mat(b, n, h2)
	}
	p.r1 = append(p.r1[:0], make([]float32, h1)...)
	p.r2 = append(p.r2[:0], make([]float32, h2)...)
	p.a3 = append(p.a3[:0], make([]float64, n)...)
	p.s = append(p.s[:0], make([]float64, n)...)
}

// dropMask fills m with PyTorch dropout scales: 0 with probability p, else
// 1/(1−p). One draw of rng seeds the mask; fixed chunks of it come from
// splitmix64 streams derived from that seed (two 32-bit uniforms per
// 64-bit output), generated in parallel and identical whatever the number
// of workers.
func dropMask(m []float32, p float64, rng *train.RNG, workers int) {
	if p <= 0 {
		for k := range m {
			m[k] = 1
		}
		return
	}
	keep := float32(1 / (1 - p))
	thr := uint64(p * (1 << 32))
	seed := rng.Uint64()
	const chunk = 1 << 14
	nc := (len(m) + chunk - 1) / chunk
	sparse.ParallelFor(nc, workers, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			st := seed ^ (uint64(c+1) * 0x9e3779b97f4a7c15)
			part := m[c*chunk : min((c+1)*chunk, len(m))]
			for k := 0; k < len(part); k += 2 {
				st += 0x9e3779b97f4a7c15
				z := st
				z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
				z = (z ^ (z >> 27)) * 0x94d049bb133111eb
				z ^= z >> 31
				part[k] = keep
				if z&0xffffffff < thr {
					part[k] = 0
				}
				if k+1 < len(part) {
					part[k+1] = keep
					if z>>32 < thr {
						part[k+1] = 0
					}
				}
			}
		}
	})
}

// colBlocks runs fn on column ranges of an h-column matrix in parallel.
func colBlocks(h, workers int, fn func(c0, c1 int)) {
	sparse.ParallelFor(h, workers, fn)
}

// batchNorm normalises the n × h pre-activations a with the batch
// statistics: xh = (a − μ)·r, r = 1/√(σ²+eps) (biased variance), then
// applies the optional LeakyReLU before it (a holds the layer output;
// apre receives the pre-activation copy when slope ≠ 1).
func batchNorm(xh, a []float32, r []float32, n, h, workers int) {
	colBlocks(h, workers, func(c0, c1 int) {
		mu := make([]float64, c1-c0)
		vr := make([]float64, c1-c0)
		for row := range n {
			x := a[row*h+c0 : row*h+c1]
			for j, v := range x {
				mu[j] += float64(v)
			}
		}
		for j := range mu {
			mu[j] /= float64(n)
		}
		for row := range n {
			x := a[row*h+c0 : row*h+c1]
			for j, v := range x {
				d := float64(v) - mu[j]
				vr[j] += d * d
			}
		}
		for j := range vr {
			r[c0+j] = float32(1 / math.Sqrt(vr[j]/float64(n)+bnEps))
		}
		for row := range n {
			x := a[row*h+c0 : row*h+c1]
			o := xh[row*h+c0 : row*h+c1]
			for j, v := range x {
				o[j] = float32((float64(v) - mu[j]) * float64(r[c0+j]))
			}
		}
	})
}

// leaky applies LeakyReLU(slope) in place, keeping the input in pre when
// the slope is not 1.
func leaky(a, pre []float32, slope float32) {
	if slope == 1 {
		return
	}
	copy(pre, a)
	for k, v := range a {
		if v < 0 {
			a[k] = slope * v
		}
	}
}

// leakyVJP multiplies g by LeakyReLU's derivative at pre.
func leakyVJP(g, pre []float32, slope float32) {
	if slope == 1 {
		return
	}
	for k, v := range pre {
		if v < 0 {
			g[k] *= slope
		}
	}
}

// forward runs the critic on the rows of in (low-rank factors f, products
// prepared by prepare) with fresh dropout masks from rng and returns the
// outputs 100·σ(a3) (the pass keeps everything backward needs).
func (c *critic) forward(in *critInput, f *factors, rng *train.RNG) ([]float64, error) {
	p := &c.ps
	n, h1, h2 := in.n, c.h1, c.h2
	p.grow(n, h1, h2)
	xwm := sparse.Mat{Rows: n, Cols: h1, Data: p.xw}
	xw(xwm, in, sparse.Mat{Rows: c.items, Cols: h1, Data: c.w1t}, c.z, c.workers)
	dropMask(p.m1, c.p1, rng, c.workers)
	dropMask(p.m2, c.p2, rng, c.workers)
	// Layer 1: a1 = XW1ᵀ + b1 (in d1 as scratch), LeakyReLU, BN, dropout.
	a1 := p.d1
	for r := range n {
		row, x := a1[r*h1:(r+1)*h1], p.xw[r*h1:(r+1)*h1]
		for j := range row {
			row[j] = x[j] + c.b1[j]
		}
	}
	leaky(a1, p.a1p, c.slope)
	batchNorm(p.xh1, a1, p.r1, n, h1, c.workers)
	for r := range n {
		xh, m, d := p.xh1[r*h1:(r+1)*h1], p.m1[r*h1:(r+1)*h1], p.d1[r*h1:(r+1)*h1]
		for j := range d {
			d[j] = (c.g1[j]*xh[j] + c.be1[j]) * m[j]
		}
	}
	// Layer 2.
	a2 := sparse.Mat{Rows: n, Cols: h2, Data: p.d2}
	if err := gemm(a2, sparse.Mat{Rows: n, Cols: h1, Data: p.d1}, sparse.Mat{Rows: h1, Cols: h2, Data: c.w2t}, c.workers); err != nil {
		return nil, err
	}
	for r := range n {
		row := p.d2[r*h2 : (r+1)*h2]
		for j := range row {
			row[j] += c.b2[j]
		}
	}
	leaky(p.d2, p.a2p, c.slope)
	batchNorm(p.xh2, p.d2, p.r2, n, h2, c.workers)
	out := make([]float64, n)
	for r := range n {
		xh, m, d := p.xh2[r*h2:(r+1)*h2], p.m2[r*h2:(r+1)*h2], p.d2[r*h2:(r+1)*h2]
		for j := range d {
			d[j] = (c.g2[j]*xh[j] + c.be2[j]) * m[j]
		}
		a := dot64(d, c.w3) + float64(c.b3[0])
		p.a3[r] = a
		p.s[r] = sigmoid64(a)
		out[r] = 100 * p.s[r]
	}
	if c.onForward != nil {
		c.onForward(p)
	}
	return out, nil
}

// bnVJP is the VJP of BatchNorm's normalisation xh = (a − μ)·r given
// adjoints gxh of xh and (optionally) rt of r: it writes
// ga = r·T − (r²·rt/n)·xh with T = gxh − mean(gxh) − xh·mean(gxh·xh) (T
// kept in t when not nil) and returns mm = mean(gxh·xh) per column.
func bnVJP(ga, t, gxh []float32, rt []float64, xh, r []float32, n, h, workers int) []float64 {
	mm := make([]float64, h)
	colBlocks(h, workers, func(c0, c1 int) {
		m1 := make([]float64, c1-c0)
		for row := range n {
			g, x := gxh[row*h+c0:row*h+c1], xh[row*h+c0:row*h+c1]
			for j := range g {
				m1[j] += float64(g[j])
				mm[c0+j] += float64(g[j]) * float64(x[j])
			}
		}
		for j := range m1 {
			m1[j] /= float64(n)
			mm[c0+j] /= float64(n)
		}
		for row := range n {
			g, x, o := gxh[row*h+c0:row*h+c1], xh[row*h+c0:row*h+c1], ga[row*h+c0:row*h+c1]
			for j := range g {
				tv := float64(g[j]) - m1[j] - float64(x[j])*mm[c0+j]
				if t != nil {
					t[row*h+c0+j] = float32(tv)
				}
				rj := float64(r[c0+j])
				v := rj * tv
				if rt != nil {
					v -= rj * rj * rt[c0+j] / float64(n) * float64(x[j])
				}
				o[j] = float32(v)
			}
		}
	})
	return mm
}

// colSum adds the column sums of the n × h matrix a (times w, if not nil,
// element-wise) to dst.
func colSum(dst []float32, a, w []float32, n, h, workers int) {
	colBlocks(h, workers, func(c0, c1 int) {
		acc := make([]float64, c1-c0)
		for row := range n {
			x := a[row*h+c0 : row*h+c1]
			if w == nil {
				for j, v := range x {
					acc[j] += float64(v)
				}
				continue
			}
			y := w[row*h+c0 : row*h+c1]
			for j, v := range x {
				acc[j] += float64(v) * float64(y[j])
			}
		}
		for j, v := range acc {
			dst[c0+j] += float32(v)
		}
	})
}

// gradient indices into c.grads (the order of params()).
const (
	gW1t = iota
	gB1
	gG1
	gBe1
	gW2
	gB2
	gG2
	gBe2
	gW3
	gB3
)

// backward propagates ga3 = ∂L/∂a3 (the sigmoid's input, per row) of the
// last forward back to ∂L/∂(X·W1ᵀ), which it leaves in pass.adj1 and
// accumulates into the low-rank W1 gradient sums (accum) and the
// parameter gradients (params). extra adjoints of the forward's
// normalised activations and inverse deviations (xh2t, r2t, xh1t, r1t;
// nil for none) come from the gradient penalty's second-order pass.
func (c *critic) backward(in *critInput, ga3 []float64, xh2t []float32, r2t []float64, xh1t []float32, r1t []float64, params bool) error {
	p := &c.ps
	n, h1, h2 := p.n, c.h1, c.h2
	w := c.workers
	// Output layer.
	dn2 := p.gn2 // scratch n × h2: ∂L/∂(bn2 output)
	for r := range n {
		d, m, o := p.d2[r*h2:(r+1)*h2], p.m2[r*h2:(r+1)*h2], dn2[r*h2:(r+1)*h2]
		g := float32(ga3[r])
		if params {
			axpy(g, d, c.grads[gW3])
			c.grads[gB3][0] += g
		}
		for j := range o {
			o[j] = g * c.w3[j] * m[j]
		}
	}
	if params {
		colSum(c.grads[gG2], dn2, p.xh2, n, h2, w)
		colSum(c.grads[gBe2], dn2, nil, n, h2, w)
	}
	gxh2 := p.t2 // scratch
	for r := range n {
		o, x := gxh2[r*h2:(r+1)*h2], dn2[r*h2:(r+1)*h2]
		for j := range o {
			o[j] = x[j] * c.g2[j]
		}
		if xh2t != nil {
			axpy(1, xh2t[r*h2:(r+1)*h2], o)
		}
	}
	ga2 := p.ga2
	bnVJP(ga2, nil, gxh2, r2t, p.xh2, p.r2, n, h2, w)
	leakyVJP(ga2, p.a2p, c.slope)
	if params {
		colSum(c.grads[gB2], ga2, nil, n, h2, w)
		// gW2 (h2 × h1) += ga2ᵀ · d1
		gt := mat(&c.tbuf, h2, n)
		transposeInto(gt, sparse.Mat{Rows: n, Cols: h2, Data: ga2}, w)
		tmp := mat(&c.cbuf, h2, h1)
		if err := gemm(tmp, gt, sparse.Mat{Rows: n, Cols: h1, Data: p.d1}, w); err != nil {
			return err
		}
		addInto(c.grads[gW2], tmp.Data, w)
	}
	// Layer 1.
	dn1 := p.gb
	if err := gemm(sparse.Mat{Rows: n, Cols: h1, Data: dn1}, sparse.Mat{Rows: n, Cols: h2, Data: ga2}, sparse.Mat{Rows: h2, Cols: h1, Data: c.w2}, w); err != nil {
		return err
	}
	for k := range dn1 {
		dn1[k] *= p.m1[k]
	}
	if params {
		colSum(c.grads[gG1], dn1, p.xh1, n, h1, w)
		colSum(c.grads[gBe1], dn1, nil, n, h1, w)
	}
	gxh1 := p.t1
	for r := range n {
		o, x := gxh1[r*h1:(r+1)*h1], dn1[r*h1:(r+1)*h1]
		for j := range o {
			o[j] = x[j] * c.g1[j]
		}
		if xh1t != nil {
			axpy(1, xh1t[r*h1:(r+1)*h1], o)
		}
	}
	bnVJP(p.adj1, nil, gxh1, r1t, p.xh1, p.r1, n, h1, w)
	leakyVJP(p.adj1, p.a1p, c.slope)
	if params {
		colSum(c.grads[gB1], p.adj1, nil, n, h1, w)
		w1GradAccum(c.sums, in, sparse.Mat{Rows: n, Cols: h1, Data: p.adj1}, sparse.Mat{Rows: c.items, Cols: h1, Data: c.grads[gW1t]}, w)
	}
	return nil
}

// finishW1 adds the low-rank part of the first layer's gradient,
// Σ_t Q_t · (Pb_tᵀ · S_t), to grads[gW1t].
func (c *critic) finishW1(f *factors) error {
	nt := len(f.Q)
	d := f.Q[0].Cols
	nb := f.Pb[0].Rows
	// Hcat (nt·d × H1) and Qcat (I × nt·d).
	hcat := mat(&c.cbuf, nt*d, c.h1)
	for t := range nt {
		pt := mat(&c.tbuf, d, nb)
		transposeInto(pt, f.Pb[t], c.workers)
		if err := gemm(sparse.Mat{Rows: d, Cols: c.h1, Data: hcat.Data[t*d*c.h1 : (t+1)*d*c.h1]}, pt, c.sums[t], c.workers); err != nil {
			return err
		}
	}
	qcat := mat(&c.qt, c.items, nt*d)
	for i := range c.items {
		for t := range nt {
			copy(qcat.Data[i*nt*d+t*d:i*nt*d+(t+1)*d], f.Q[t].Row(i))
		}
	}
	tmp := mat(&c.tmp, c.items, c.h1)
	if err := gemm(tmp, qcat, hcat, c.workers); err != nil {
		return err
	}
	addInto(c.grads[gW1t], tmp.Data, c.workers)
	return nil
}

// gradPenalty runs the gradient-penalty pass on the rows of in:
// GP = λ·mean_r (‖∇_x Σ_s D(x)_s‖_r − 1)², where the input gradient couples
// rows through BatchNorm's batch statistics exactly as torch.autograd.grad
// of the summed outputs does, and adds weight·∂GP/∂θ (the second-order
// terms through the whole critic) to the gradients. It returns GP
// (without weight).
func (c *critic) gradPenalty(in *critInput, f *factors, lambda, weight float64, rng *train.RNG) (float64, error) {
	if _, err := c.forward(in, f, rng); err != nil {
		return 0, err
	}
	p := &c.ps
	n, h1, h2, w := p.n, c.h1, c.h2, c.workers
	// First order: G = ∂(Σ D)/∂X = ga1 · W1, keeping the intermediates.
	cN := make([]float64, n)
	for r := range n {
		s := p.s[r]
		cN[r] = 100 * s * (1 - s)
		o, m := p.gn2[r*h2:(r+1)*h2], p.m2[r*h2:(r+1)*h2]
		for j := range o {
			o[j] = float32(cN[r]) * c.w3[j] * m[j]
		}
	}
	for r := range n {
		o, x := p.gXh2[r*h2:(r+1)*h2], p.gn2[r*h2:(r+1)*h2]
		for j := range o {
			o[j] = x[j] * c.g2[j]
		}
	}
	p.mm2 = bnVJP(p.ga2, p.t2, p.gXh2, nil, p.xh2, p.r2, n, h2, w)
	leakyVJP(p.ga2, p.a2p, c.slope)
	gn1 := p.gb
	if err := gemm(sparse.Mat{Rows: n, Cols: h1, Data: gn1}, sparse.Mat{Rows: n, Cols: h2, Data: p.ga2}, sparse.Mat{Rows: h2, Cols: h1, Data: c.w2}, w); err != nil {
		return 0, err
	}
	for k := range gn1 {
		gn1[k] *= p.m1[k]
	}
	for r := range n {
		o, x := p.gXh1[r*h1:(r+1)*h1], gn1[r*h1:(r+1)*h1]
		for j := range o {
			o[j] = x[j] * c.g1[j]
		}
	}
	p.mm1 = bnVJP(p.ga1, p.t1, p.gXh1, nil, p.xh1, p.r1, n, h1, w)
	leakyVJP(p.ga1, p.a1p, c.slope)
	// ‖G_r‖² = ga1_r · K · ga1_r with K = W1·W1ᵀ.
	k := mat(&c.kbuf, h1, h1)
	if err := gramSym(k, sparse.Mat{Rows: h1, Cols: c.items, Data: c.w1}, sparse.Mat{Rows: c.items, Cols: h1, Data: c.w1t}, w); err != nil {
		return 0, err
	}
	gak := sparse.Mat{Rows: n, Cols: h1, Data: p.adj1} // scratch: ga1·K
	ga1 := sparse.Mat{Rows: n, Cols: h1, Data: p.ga1}
	if err := gemm(gak, ga1, k, w); err != nil {
		return 0, err
	}
	gp := 0.0
	coef := make([]float32, n)
	for r := range n {
		nrm := math.Sqrt(max(dot64(ga1.Row(r), gak.Row(r)), 0))
		gp += (nrm - 1) * (nrm - 1)
		if nrm > 0 {
			coef[r] = float32(weight * lambda * 2 / float64(n) * (nrm - 1) / nrm)
		}
	}
	gp *= lambda / float64(n)
	// ∂/∂W1 of G = ga1·W1: ga1ᵀ·diag(coef)·ga1·W1 = C·W1, in W1ᵀ's layout
	// W1ᵀ·C (C is symmetric).
	st := mat(&c.tbuf, h1, n)
	transposeInto(st, ga1, w)
	for j := range h1 {
		row := st.Data[j*n : (j+1)*n]
		for r := range row {
			row[r] *= coef[r]
		}
	}
	cm := mat(&c.cbuf, h1, h1)
	if err := symProduct(cm, st, ga1, w); err != nil {
		return 0, err
	}
	tmp := mat(&c.tmp, c.items, h1)
	if err := gemm(tmp, sparse.Mat{Rows: c.items, Cols: h1, Data: c.w1t}, cm, w); err != nil {
		return 0, err
	}
	addInto(c.grads[gW1t], tmp.Data, w)
	// Adjoint of ga1: diag(coef)·ga1·K.
	gat := gak
	for r := range n {
		row := gat.Row(r)
		for j := range row {
			row[j] *= coef[r]
		}
	}
	// Back through ga1 = LeakyReLU'·bnVJP(gXh1, xh1, r1).
	leakyVJP(gat.Data, p.a1p, c.slope)
	xh1t := make([]float32, n*h1)
	r1t := make([]float64, h1)
	ggxh1 := c.bnVJPAdj(gat.Data, p.gXh1, p.xh1, p.r1, p.t1, p.mm1, xh1t, r1t, n, h1)
	// gXh1 = gn1 ⊙ γ1.
	colSum(c.grads[gG1], ggxh1, gn1, n, h1, w)
	for r := range n {
		o := ggxh1[r*h1 : (r+1)*h1]
		m := p.m1[r*h1 : (r+1)*h1]
		for j := range o {
			o[j] *= c.g1[j] * m[j] // adjoint of gd1 = ga2·W2
		}
	}
	// gd1 = ga2·W2: W2 gets ga2ᵀ·adj, ga2 gets adj·W2ᵀ.
	gt := mat(&c.tbuf, h2, n)
	transposeInto(gt, sparse.Mat{Rows: n, Cols: h2, Data: p.ga2}, w)
	tw := mat(&c.cbuf, h2, h1)
	if err := gemm(tw, gt, sparse.Mat{Rows: n, Cols: h1, Data: ggxh1}, w); err != nil {
		return 0, err
	}
	addInto(c.grads[gW2], tw.Data, w)
	gga2 := make([]float32, n*h2)
	if err := gemm(sparse.Mat{Rows: n, Cols: h2, Data: gga2}, sparse.Mat{Rows: n, Cols: h1, Data: ggxh1}, sparse.Mat{Rows: h1, Cols: h2, Data: c.w2t}, w); err != nil {
		return 0, err
	}
	leakyVJP(gga2, p.a2p, c.slope)
	xh2t := make([]float32, n*h2)
	r2t := make([]float64, h2)
	ggxh2 := c.bnVJPAdj(gga2, p.gXh2, p.xh2, p.r2, p.t2, p.mm2, xh2t, r2t, n, h2)
	// gXh2 = gn2 ⊙ γ2, gn2 = (c ⊗ w3) ⊙ m2.
	colSum(c.grads[gG2], ggxh2, p.gn2, n, h2, w)
	ga3 := make([]float64, n)
	for r := range n {
		o, m := ggxh2[r*h2:(r+1)*h2], p.m2[r*h2:(r+1)*h2]
		ct := 0.0
		for j := range o {
			y := o[j] * c.g2[j] * m[j]
			c.grads[gW3][j] += float32(cN[r]) * y
			ct += float64(y) * float64(c.w3[j])
		}
		s := p.s[r]
		ga3[r] = ct * 100 * s * (1 - s) * (1 - 2*s)
	}
	// The forward pass's own backward with the extra adjoints.
	if err := c.backward(in, ga3, xh2t, r2t, xh1t, r1t, true); err != nil {
		return 0, err
	}
	return gp, nil
}

// bnVJPAdj is the VJP of bnVJP's output ga = r·T (no rt) with respect to
// its inputs, given the adjoint gat of ga: it returns the adjoint of gxh
// and adds those of xh and r to xht and rt.
func (c *critic) bnVJPAdj(gat, gxh, xh, r, t []float32, mm []float64, xht []float32, rt []float64, n, h int) []float32 {
	out := make([]float32, n*h)
	colBlocks(h, c.workers, func(c0, c1 int) {
		mT := make([]float64, c1-c0)
		mTx := make([]float64, c1-c0)
		for row := range n {
			g, tt, x := gat[row*h+c0:row*h+c1], t[row*h+c0:row*h+c1], xh[row*h+c0:row*h+c1]
			for j := range g {
				rj := float64(r[c0+j])
				rt[c0+j] += float64(g[j]) * float64(tt[j])
				tv := rj * float64(g[j])
				mT[j] += tv
				mTx[j] += tv * float64(x[j])
			}
		}
		for j := range mT {
			mT[j] /= float64(n)
			mTx[j] /= float64(n)
		}
		for row := range n {
			g, x, gx := gat[row*h+c0:row*h+c1], xh[row*h+c0:row*h+c1], gxh[row*h+c0:row*h+c1]
			o, xo := out[row*h+c0:row*h+c1], xht[row*h+c0:row*h+c1]
			for j := range g {
				tv := float64(r[c0+j]) * float64(g[j])
				o[j] = float32(tv - mT[j] - float64(x[j])*mTx[j])
				xo[j] += float32(-tv*mm[c0+j] - float64(gx[j])*mTx[j])
			}
		}
	})
	return out
}

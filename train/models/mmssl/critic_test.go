package mmssl

import (
	"math"
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// refCritic is an independent float64 implementation of the critic on a
// dense input with fixed dropout masks: straightforward loops, used to
// check the native critic's forward, backward and gradient penalty.
type refCritic struct {
	items, h1, h2 int
	slope         float64
	// params in PyTorch layouts: w1 h1×items, w2 h2×h1.
	w1, b1, g1, be1, w2, b2, g2, be2, w3, b3 []float64
	m1, m2                                   []float64 // n×h1, n×h2
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for k, v := range x {
		out[k] = float64(v)
	}
	return out
}

func newRefCritic(c *critic) *refCritic {
	w1 := make([]float64, c.h1*c.items)
	for i := range c.items {
		for j := range c.h1 {
			w1[j*c.items+i] = float64(c.w1t[i*c.h1+j])
		}
	}
	return &refCritic{items: c.items, h1: c.h1, h2: c.h2, slope: float64(c.slope),
		w1: w1, b1: f64(c.b1), g1: f64(c.g1), be1: f64(c.be1), w2: f64(c.w2), b2: f64(c.b2),
		g2: f64(c.g2), be2: f64(c.be2), w3: f64(c.w3), b3: f64(c.b3), m1: f64(c.ps.m1), m2: f64(c.ps.m2)}
}

// params returns the parameter slices in the order of critic.params()
// (w1 in PyTorch's layout).
func (r *refCritic) params() [][]float64 {
	return [][]float64{r.w1, r.b1, r.g1, r.be1, r.w2, r.b2, r.g2, r.be2, r.w3, r.b3}
}

// layer state of one BN layer for the reference backward.
type refLayer struct {
	pre, act, xh []float64 // n×h
	r            []float64
}

func refLinear(x []float64, n, in int, w, b []float64, out int) []float64 {
	y := make([]float64, n*out)
	for r := range n {
		for o := range out {
			s := b[o]
			for k := range in {
				s += x[r*in+k] * w[o*in+k]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func (rc *refCritic) bn(a []float64, n, h int) refLayer {
	l := refLayer{pre: a, act: make([]float64, n*h), xh: make([]float64, n*h), r: make([]float64, h)}
	for k, v := range a {
		if v < 0 {
			v *= rc.slope
		}
		l.act[k] = v
	}
	for j := range h {
		mu, vr := 0.0, 0.0
		for r := range n {
			mu += l.act[r*h+j]
		}
		mu /= float64(n)
		for r := range n {
			d := l.act[r*h+j] - mu
			vr += d * d
		}
		l.r[j] = 1 / math.Sqrt(vr/float64(n)+bnEps)
		for r := range n {
			l.xh[r*h+j] = (l.act[r*h+j] - mu) * l.r[j]
		}
	}
	return l
}

// bnBack maps ∂L/∂xh to ∂L/∂pre (through BN and the LeakyReLU).
func (rc *refCritic) bnBack(l refLayer, gxh []float64, n, h int) []float64 {
	g := make([]float64, n*h)
	for j := range h {
		m1, m2 := 0.0, 0.0
		for r := range n {
			m1 += gxh[r*h+j]
			m2 += gxh[r*h+j] * l.xh[r*h+j]
		}
		m1 /= float64(n)
		m2 /= float64(n)
		for r := range n {
			v := l.r[j] * (gxh[r*h+j] - m1 - l.xh[r*h+j]*m2)
			if l.pre[r*h+j] < 0 {
				v *= rc.slope
			}
			g[r*h+j] = v
		}
	}
	return g
}

// forward returns the outputs 100σ(a3) and, with grad, ∂(Σ_r w_r y_r)/∂X.
func (rc *refCritic) run(x []float64, n int, w []float64) (y []float64, gx []float64) {
	h1, h2 := rc.h1, rc.h2
	l1 := rc.bn(refLinear(x, n, rc.items, rc.w1, rc.b1, h1), n, h1)
	d1 := make([]float64, n*h1)
	for k := range d1 {
		j := k % h1
		d1[k] = (rc.g1[j]*l1.xh[k] + rc.be1[j]) * rc.m1[k]
	}
	l2 := rc.bn(refLinear(d1, n, h1, rc.w2, rc.b2, h2), n, h2)
	d2 := make([]float64, n*h2)
	for k := range d2 {
		j := k % h2
		d2[k] = (rc.g2[j]*l2.xh[k] + rc.be2[j]) * rc.m2[k]
	}
	a3 := refLinear(d2, n, h2, rc.w3, rc.b3, 1)
	y = make([]float64, n)
	ga3 := make([]float64, n)
	for r := range n {
		s := 1 / (1 + math.Exp(-a3[r]))
		y[r] = 100 * s
		if w != nil {
			ga3[r] = w[r] * 100 * s * (1 - s)
		}
	}
	if w == nil {
		return y, nil
	}
	gxh2 := make([]float64, n*h2)
	for r := range n {
		for j := range h2 {
			gxh2[r*h2+j] = ga3[r] * rc.w3[j] * rc.m2[r*h2+j] * rc.g2[j]
		}
	}
	ga2 := rc.bnBack(l2, gxh2, n, h2)
	gxh1 := make([]float64, n*h1)
	for r := range n {
		for k := range h1 {
			s := 0.0
			for j := range h2 {
				s += ga2[r*h2+j] * rc.w2[j*h1+k]
			}
			gxh1[r*h1+k] = s * rc.m1[r*h1+k] * rc.g1[k]
		}
	}
	ga1 := rc.bnBack(l1, gxh1, n, h1)
	gx = make([]float64, n*rc.items)
	for r := range n {
		for i := range rc.items {
			s := 0.0
			for k := range h1 {
				s += ga1[r*h1+k] * rc.w1[k*rc.items+i]
			}
			gx[r*rc.items+i] = s
		}
	}
	return y, gx
}

// gp is the gradient penalty λ·mean_r(‖∇_x Σ D‖_r − 1)².
func (rc *refCritic) gp(x []float64, n int, lambda float64) float64 {
	ones := make([]float64, n)
	for k := range ones {
		ones[k] = 1
	}
	_, g := rc.run(x, n, ones)
	s := 0.0
	for r := range n {
		q := 0.0
		for i := range rc.items {
			q += g[r*rc.items+i] * g[r*rc.items+i]
		}
		s += (math.Sqrt(q) - 1) * (math.Sqrt(q) - 1)
	}
	return lambda * s / float64(n)
}

// testInput builds random factors (terms × (B × d, I × d)) and an n-row
// critic input with random coefficients and corrections on a few items.
func testInput(rng *train.RNG, items, nb, d, terms, copies int) (*factors, *critInput) {
	f := &factors{}
	for range terms {
		p, q := sparse.NewMat(nb, d), sparse.NewMat(items, d)
		sparse.InitNormal(p, 1, rng.Rand)
		sparse.InitNormal(q, 1, rng.Rand)
		f.Pb, f.Q = append(f.Pb, p), append(f.Q, q)
	}
	bi := &batchItems{}
	bi.ptr = []int32{0}
	for range nb {
		for i := range items {
			if rng.IntN(4) == 0 {
				bi.item = append(bi.item, int32(i))
			}
		}
		bi.ptr = append(bi.ptr, int32(len(bi.item)))
	}
	in := &critInput{}
	in.reset(nb*copies, terms)
	for range copies {
		appendRows(in, bi)
	}
	for k := range in.coef {
		if rng.IntN(3) > 0 {
			in.coef[k] = float32(rng.NormFloat64() * 0.3)
		}
	}
	for k := range in.val {
		in.val[k] = float32(rng.NormFloat64())
	}
	return f, in
}

func testCritic(t *testing.T, items int, slope float64, seed uint64) (*critic, *train.RNG) {
	t.Helper()
	rng := train.NewRNG(seed, train.StreamInit)
	c, err := newCritic(items, 0.31, 0.5, slope, sparse.AdamConfig{LR: 3e-4, Beta1: 0.5, Beta2: 0.9, Eps: 1e-8}, rng, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Non-trivial BN affine parameters and biases.
	for _, p := range [][]float32{c.b1, c.g1, c.be1, c.b2, c.g2, c.be2, c.b3} {
		for k := range p {
			p[k] += float32(rng.NormFloat64() * 0.3)
		}
	}
	c.refresh()
	return c, rng
}

// analyticW1 returns the critic's W1 gradient in PyTorch's layout.
func (c *critic) gradsPyTorch() [][]float64 {
	out := make([][]float64, len(c.grads))
	for k, g := range c.grads {
		out[k] = f64(g)
	}
	w := make([]float64, len(c.grads[gW1t]))
	for i := range c.items {
		for j := range c.h1 {
			w[j*c.items+i] = float64(c.grads[gW1t][i*c.h1+j])
		}
	}
	out[gW1t] = w
	return out
}

// compareFD checks analytic gradients against central differences of f
// over every parameter of rc.
func compareFD(t *testing.T, name string, rc *refCritic, analytic [][]float64, f func() float64, tol float64) {
	t.Helper()
	names := []string{"w1", "b1", "g1", "be1", "w2", "b2", "g2", "be2", "w3", "b3"}
	compareParamsFD(t, name, rc.params(), names, analytic, f, tol)
}

func TestCriticForwardBackward(t *testing.T) {
	for _, slope := range []float64{1, 0.2} {
		c, rng := testCritic(t, 16, slope, 3)
		f, in := testInput(rng, 16, 3, 3, 2, 2)
		if err := c.prepare(f, 3, 0); err != nil {
			t.Fatal(err)
		}
		y, err := c.forward(in, f, rng)
		if err != nil {
			t.Fatal(err)
		}
		rc := newRefCritic(c)
		x := f64(in.dense(f, 16).Data)
		want, _ := rc.run(x, in.n, nil)
		for r := range y {
			if math.Abs(y[r]-want[r]) > 1e-3*max(1, math.Abs(want[r])) {
				t.Fatalf("slope %v: D(x)[%d] = %v, want %v", slope, r, y[r], want[r])
			}
		}
		// L = Σ w_r D(x)_r.
		w := make([]float64, in.n)
		ga3 := make([]float64, in.n)
		for r := range w {
			w[r] = rng.NormFloat64()
			s := c.ps.s[r]
			ga3[r] = w[r] * 100 * s * (1 - s)
		}
		c.zeroGrad()
		if err := c.backward(in, ga3, nil, nil, nil, nil, true); err != nil {
			t.Fatal(err)
		}
		if err := c.finishW1(f); err != nil {
			t.Fatal(err)
		}
		loss := func() float64 {
			y, _ := rc.run(x, in.n, nil)
			s := 0.0
			for r := range y {
				s += w[r] * y[r]
			}
			return s
		}
		compareFD(t, "first-order", rc, c.gradsPyTorch(), loss, 2e-3)
		// The reference's own input gradient against differences.
		_, gx := rc.run(x, in.n, w)
		for k := range x {
			old := x[k]
			x[k] = old + 1e-6
			lp := loss()
			x[k] = old - 1e-6
			lm := loss()
			x[k] = old
			if num := (lp - lm) / 2e-6; math.Abs(num-gx[k]) > 1e-5*max(1, math.Abs(num)) {
				t.Fatalf("reference input gradient %d: %v, differences %v", k, gx[k], num)
			}
		}
	}
}

// TestGradientPenalty checks the gradient penalty's value and its exact
// second-order gradient (through BatchNorm's batch statistics, the dropout
// masks and the sigmoid) against central differences of an independent
// float64 implementation.
func TestGradientPenalty(t *testing.T) {
	for _, slope := range []float64{1, 0.2} {
		c, rng := testCritic(t, 24, slope, 5)
		f, in := testInput(rng, 24, 4, 3, 3, 2)
		if err := c.prepare(f, 4, 0); err != nil {
			t.Fatal(err)
		}
		c.zeroGrad()
		const lambda = 0.3
		gp, err := c.gradPenalty(in, f, lambda, 1, rng)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.finishW1(f); err != nil {
			t.Fatal(err)
		}
		rc := newRefCritic(c)
		x := f64(in.dense(f, 24).Data)
		want := rc.gp(x, in.n, lambda)
		if math.Abs(gp-want) > 1e-3*max(1, want) {
			t.Fatalf("slope %v: GP = %v, want %v", slope, gp, want)
		}
		compareFD(t, "gradient penalty", rc, c.gradsPyTorch(), func() float64 { return rc.gp(x, in.n, lambda) }, 5e-3)
	}
}

// TestDropMask checks the dropout masks' rate and scale and that they do
// not depend on the number of workers.
func TestDropMask(t *testing.T) {
	a, b := make([]float32, 100003), make([]float32, 100003)
	dropMask(a, 0.31, train.NewRNG(1, 1), 1)
	dropMask(b, 0.31, train.NewRNG(1, 1), 3)
	zeros := 0
	for k, v := range a {
		if v != b[k] {
			t.Fatalf("mask differs at %d between worker counts", k)
		}
		switch v {
		case 0:
			zeros++
		case float32(1 / 0.69):
		default:
			t.Fatalf("mask value %v", v)
		}
	}
	if r := float64(zeros) / float64(len(a)); math.Abs(r-0.31) > 0.005 {
		t.Errorf("drop rate %.4f, want 0.31", r)
	}
}

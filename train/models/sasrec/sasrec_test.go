package sasrec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
)

func TestWindows(t *testing.T) {
	tests := []struct {
		name   string
		seq    int
		maxLen int
		want   []window
	}{
		{"too short", 1, 3, nil},
		{"two items", 2, 3, []window{{0, 0, 1}}},
		{"fits", 4, 3, []window{{0, 0, 3}}},
		{"one over", 5, 3, []window{{0, 1, 3}, {0, 0, 1}}},
		{"two windows full", 7, 3, []window{{0, 3, 3}, {0, 0, 3}}},
		{"three windows", 9, 3, []window{{0, 5, 3}, {0, 2, 3}, {0, 0, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := [][]int32{make([]int32, tc.seq)}
			got := windows(h, tc.maxLen)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("windows(len %d, max %d) = %v, want %v", tc.seq, tc.maxLen, got, tc.want)
			}
			// Every target 1..len-1 exactly once.
			seen := make([]int, tc.seq)
			for _, w := range got {
				if w.n > int32(tc.maxLen) {
					t.Fatalf("window %v longer than %d", w, tc.maxLen)
				}
				for k := w.start + 1; k <= w.start+w.n; k++ {
					seen[k]++
				}
			}
			for k := 1; k < tc.seq; k++ {
				if seen[k] != 1 {
					t.Fatalf("target %d covered %d times", k, seen[k])
				}
			}
		})
	}
}

func TestAttnBiasAndDropMask(t *testing.T) {
	b := attnBias([]int32{3, 5, 0}, 1, 3)
	want := []float32{0, -10000, -10000, 0, 0, -10000, 0, 0, -10000}
	if !slices.Equal(b, want) {
		t.Fatalf("bias %v, want %v", b, want)
	}
	rng := train.NewRNG(1, 2)
	m := seqdata.DropMask(rng, 100000, 0.5)
	zeros := 0
	for _, v := range m {
		switch v {
		case 0:
			zeros++
		case 2:
		default:
			t.Fatalf("mask value %v", v)
		}
	}
	if f := float64(zeros) / float64(len(m)); math.Abs(f-0.5) > 0.01 {
		t.Fatalf("dropped fraction %v, want ≈ 0.5", f)
	}
	for _, v := range seqdata.DropMask(rng, 10, 0) {
		if v != 1 {
			t.Fatal("p = 0 mask is not all ones")
		}
	}
}

// refLoss is an independent float64 implementation of the training loss
// (RecBole's SASRec forward, no dropout, cross-entropy at every target).
func refLoss(c *Config, numItems int, p [][]float64, seq []int32, B, L int, tPos, tItem []int32) float64 {
	d, H := c.Dim, c.Heads
	dh := d / H
	ln := func(x []float64, g, b []float64) []float64 {
		var mu, v float64
		for _, a := range x {
			mu += a
		}
		mu /= float64(len(x))
		for _, a := range x {
			v += (a - mu) * (a - mu)
		}
		v /= float64(len(x))
		out := make([]float64, len(x))
		for k, a := range x {
			out[k] = (a-mu)/math.Sqrt(v+c.LNEps)*g[k] + b[k]
		}
		return out
	}
	lin := func(x []float64, w, b []float64, in, out int) []float64 {
		y := make([]float64, out)
		for j := range out {
			s := b[j]
			for k := range in {
				s += x[k] * w[k*out+j]
			}
			y[j] = s
		}
		return y
	}
	hidden := make([][]float64, B*L)
	for bi := range B {
		x := make([][]float64, L)
		for t := range L {
			e := make([]float64, d)
			it := int(seq[bi*L+t])
			for k := range d {
				e[k] = p[pItem][it*d+k] + p[pPos][t*d+k]
			}
			x[t] = ln(e, p[pLN0g], p[pLN0b])
		}
		for l := range c.Layers {
			q := p[nGlobal+l*nPerLayer:]
			Q, K, V := make([][]float64, L), make([][]float64, L), make([][]float64, L)
			for t := range L {
				Q[t], K[t], V[t] = lin(x[t], q[lWq], q[lBq], d, d), lin(x[t], q[lWk], q[lBk], d, d), lin(x[t], q[lWv], q[lBv], d, d)
			}
			nx := make([][]float64, L)
			for t := range L {
				ctx := make([]float64, d)
				for h := range H {
					sc := make([]float64, L)
					mx := math.Inf(-1)
					for j := range L {
						var s float64
						for k := h * dh; k < (h+1)*dh; k++ {
							s += Q[t][k] * K[j][k]
						}
						s /= math.Sqrt(float64(dh))
						if j > t || seq[bi*L+j] == 0 {
							s -= 10000
						}
						sc[j] = s
						mx = max(mx, s)
					}
					var z float64
					for j := range L {
						sc[j] = math.Exp(sc[j] - mx)
						z += sc[j]
					}
					for j := range L {
						for k := h * dh; k < (h+1)*dh; k++ {
							ctx[k] += sc[j] / z * V[j][k]
						}
					}
				}
				att := lin(ctx, q[lWo], q[lBo], d, d)
				for k := range d {
					att[k] += x[t][k]
				}
				a := ln(att, q[lLN1g], q[lLN1b])
				f := lin(a, q[lW1], q[lB1], d, c.Inner)
				for k := range f {
					f[k] = 0.5 * f[k] * (1 + math.Erf(f[k]/math.Sqrt2))
				}
				f2 := lin(f, q[lW2], q[lB2], c.Inner, d)
				for k := range d {
					f2[k] += a[k]
				}
				nx[t] = ln(f2, q[lLN2g], q[lLN2b])
			}
			x = nx
		}
		for t := range L {
			hidden[bi*L+t] = x[t]
		}
	}
	var loss float64
	for n, pos := range tPos {
		h := hidden[pos]
		logits := make([]float64, numItems)
		mx := math.Inf(-1)
		for i := range numItems {
			var s float64
			for k := range d {
				s += h[k] * p[pItem][(i+1)*d+k]
			}
			logits[i] = s
			mx = max(mx, s)
		}
		var z float64
		for _, s := range logits {
			z += math.Exp(s - mx)
		}
		loss += math.Log(z) + mx - logits[tItem[n]]
	}
	return loss / float64(len(tPos))
}

// TestTrainGraphMatchesReference checks the GoMLX loss against refLoss and
// its gradient against central finite differences of refLoss, on a tiny
// model with random (not initial) parameters.
func TestTrainGraphMatchesReference(t *testing.T) {
	c := DefaultConfig()
	c.Dim, c.Heads, c.Inner, c.Layers, c.MaxLen = 4, 2, 6, 2, 4
	c.HiddenDropout, c.AttnDropout = 0, 0
	const numItems, B, L = 5, 2, 3
	shapes := paramShapes(c, numItems)
	rng := rand.New(rand.NewPCG(3, 4))
	p32 := make([][]float32, len(shapes))
	p64 := make([][]float64, len(shapes))
	for k, s := range shapes {
		n := 1
		for _, x := range s {
			n *= x
		}
		p32[k], p64[k] = make([]float32, n), make([]float64, n)
		for j := range n {
			v := float32(rng.NormFloat64() * 0.7)
			p32[k][j], p64[k][j] = v, float64(v)
		}
	}
	seq := []int32{2, 5, 1, 3, 0, 0}
	tPos := []int32{0, 1, 2, 3}
	tItem := []int32{4, 0, 2, 1}
	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := gx.NewProgram(b, "test", 0, trainGraph(c, numItems, len(shapes)))
	if err != nil {
		t.Fatal(err)
	}
	args := []any{}
	for k, s := range shapes {
		args = append(args, gx.F32(p32[k], s...))
	}
	// One padded target with weight 0 must not change anything.
	args = append(args, gx.I32(seq, B, L), gx.F32(attnBias(seq, B, L), B, L, L),
		gx.I32(append(slices.Clone(tPos), 5), 5), gx.I32(append(slices.Clone(tItem), 3), 5), gx.F32([]float32{1, 1, 1, 1, 0}, 5))
	ones := func(n int) []float32 { return seqdata.DropMask(nil, n, 0) }
	args = append(args, gx.F32(ones(B*L*c.Dim), B*L, c.Dim))
	for range c.Layers {
		args = append(args, gx.F32(ones(B*c.Heads*L*L), B, c.Heads, L, L), gx.F32(ones(B*L*c.Dim), B*L, c.Dim), gx.F32(ones(B*L*c.Dim), B*L, c.Dim))
	}
	outs, err := prog.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := gx.Scalar(outs[0])
	want := refLoss(c, numItems, p64, seq, B, L, tPos, tItem)
	if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
		t.Fatalf("loss %v, reference %v", got, want)
	}
	// Gradients: check a few entries of every parameter.
	for k, s := range shapes {
		g := make([]float32, len(p32[k]))
		if err := gx.CopyF32(g, outs[k+1]); err != nil {
			t.Fatal(err)
		}
		for _, j := range []int{0, len(g) / 2, len(g) - 1} {
			const h = 1e-5
			orig := p64[k][j]
			p64[k][j] = orig + h
			lp := refLoss(c, numItems, p64, seq, B, L, tPos, tItem)
			p64[k][j] = orig - h
			lm := refLoss(c, numItems, p64, seq, B, L, tPos, tItem)
			p64[k][j] = orig
			fd := (lp - lm) / (2 * h)
			if math.Abs(float64(g[j])-fd) > 2e-3*(1+math.Abs(fd)) {
				t.Errorf("param %d %v [%d]: gradient %v, finite difference %v", k, s, j, g[j], fd)
			}
		}
	}
}

func TestPlanCoversEveryWindowOnce(t *testing.T) {
	c := DefaultConfig()
	c.BatchSize, c.MaxTokens, c.LenBucket, c.MaxLen = 64, 100, 4, 12
	r := rand.New(rand.NewPCG(5, 6))
	var hist [][]int32
	for range 300 {
		hist = append(hist, make([]int32, 2+r.IntN(30)))
	}
	ws := windows(hist, c.MaxLen)
	lens, members := seqdata.Buckets(len(ws), func(k int) int { return int(ws[k].n) }, c.LenBucket, c.MaxLen)
	if !slices.Equal(lens, []int{4, 8, 12}) {
		t.Fatalf("bucket lengths %v", lens)
	}
	bs := func(b int) int { return c.batchFor(lens[b]) }
	if got := []int{bs(0), bs(1), bs(2)}; !slices.Equal(got, []int{25, 12, 8}) {
		t.Fatalf("batch sizes %v, want [25 12 8] (max_tokens 100)", got)
	}
	p := seqdata.NewPlan(members, bs, 42, 0x5a5ec)
	if len(p.Batches) != seqdata.CountBatches(members, bs) {
		t.Fatalf("plan has %d batches, countBatches says %d", len(p.Batches), seqdata.CountBatches(members, bs))
	}
	seen := make([]int, len(ws))
	for _, br := range p.Batches {
		if br.Hi-br.Lo > bs(br.Bucket) || br.Hi <= br.Lo {
			t.Fatalf("batch %v of bucket %d: size %d, max %d", br, br.Bucket, br.Hi-br.Lo, bs(br.Bucket))
		}
		for _, wi := range p.Order[br.Bucket][br.Lo:br.Hi] {
			seen[wi]++
			if l := seqdata.BucketLen(int(ws[wi].n), c.LenBucket, c.MaxLen); l != lens[br.Bucket] {
				t.Fatalf("window of %d inputs in bucket of length %d", ws[wi].n, lens[br.Bucket])
			}
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("window %d planned %d times", k, n)
		}
	}
	if q := seqdata.NewPlan(members, bs, 42, 0x5a5ec); !slices.Equal(q.Batches, p.Batches) {
		t.Fatal("the same seed gave a different plan")
	}
}

// TestNativeStepMatchesGraph checks the native output layer (GoMLX encoder,
// sparse.SoftmaxXent, the encoder's VJP) against the all-GoMLX step on the
// same inputs: random parameters, live dropout masks, a padded target and
// more items than one 16-wide kernel tile.
func TestNativeStepMatchesGraph(t *testing.T) {
	c := DefaultConfig()
	c.Dim, c.Heads, c.Inner, c.Layers, c.MaxLen = 8, 2, 12, 2, 6
	const numItems, B, L = 37, 3, 5
	m := &Model{cfg: c, numItems: numItems, workers: 2}
	m.allocParams()
	shapes := m.shapes
	rng := rand.New(rand.NewPCG(7, 8))
	for k := range m.params {
		m.params[k] = float32(rng.NormFloat64() * 0.5)
	}
	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	np := len(shapes)
	if m.trainP, err = gx.NewProgram(b, "train", 0, trainGraph(c, numItems, np)); err != nil {
		t.Fatal(err)
	}
	if m.hidP, err = gx.NewProgram(b, "hidden", 0, hiddenGraph(c, np)); err != nil {
		t.Fatal(err)
	}
	if m.vjpP, err = gx.NewProgram(b, "vjp", 0, hiddenVJPGraph(c, np)); err != nil {
		t.Fatal(err)
	}
	seq := []int32{2, 5, 1, 3, 9, 7, 4, 0, 0, 0, 30, 36, 37, 1, 2}
	tPos := []int32{0, 1, 2, 3, 5, 6, 10, 11, 12, 13, 0}
	tItem := []int32{4, 0, 2, 1, 8, 36, 35, 36, 0, 1, 0}
	tW := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}
	n := len(tPos)
	trng := train.NewRNG(3, train.StreamTrain)
	args := m.paramArgs(nil)
	args = append(args, gx.I32(seq, B, L), gx.F32(attnBias(seq, B, L), B, L, L), gx.I32(tPos, n), gx.I32(tItem, n), gx.F32(tW, n),
		gx.F32(seqdata.DropMask(trng, B*L*c.Dim, 0.2), B*L, c.Dim))
	for range c.Layers {
		args = append(args, gx.F32(seqdata.DropMask(trng, B*c.Heads*L*L, 0.2), B, c.Heads, L, L),
			gx.F32(seqdata.DropMask(trng, B*L*c.Dim, 0.2), B*L, c.Dim), gx.F32(seqdata.DropMask(trng, B*L*c.Dim, 0.2), B*L, c.Dim))
	}
	want, err := m.graphStep(args)
	if err != nil {
		t.Fatal(err)
	}
	wantGrad := slices.Clone(m.grad)
	clear(m.grad)
	got, err := m.nativeStep(args, tItem, tW)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
		t.Fatalf("native loss %v, GoMLX %v", got, want)
	}
	for k := range shapes {
		for j := m.offs[k]; j < m.offs[k+1]; j++ {
			if d := math.Abs(float64(m.grad[j] - wantGrad[j])); d > 1e-4*(1+math.Abs(float64(wantGrad[j]))) {
				t.Fatalf("param %d %v, entry %d: native gradient %v, GoMLX %v", k, shapes[k], j-m.offs[k], m.grad[j], wantGrad[j])
			}
		}
	}
	// The padding row of the item table gets no gradient.
	for j := range c.Dim {
		if m.grad[m.offs[pItem]+j] != 0 {
			t.Fatalf("padding row gradient %v", m.grad[m.offs[pItem]:m.offs[pItem]+c.Dim])
		}
	}
}

package missrec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
	"github.com/mmpipe/mmpipe/train/sparse"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

// TestKMeansHandComputed follows the reference's k-means pass by hand on 7
// two-dimensional tokens, K = 2, mini-batch 3: chunk [x0 x1 x2], then the
// last chunk takes the 4 remaining tokens (4 − 3 = 1 ≤ K left after it).
func TestKMeansHandComputed(t *testing.T) {
	x := sparse.Mat{Rows: 7, Cols: 2, Data: []float32{
		0, 0, 1, 0, -4, 0, // chunk 1
		0, -1, -5, 1, 2.5, 0, -4, -1, // chunk 2
	}}
	pick := func(rows, k int) []int {
		if rows != 3 || k != 2 {
			t.Fatalf("first chunk %d rows, k %d; want 3, 2", rows, k)
		}
		return []int{0, 2} // c = (0,0), (-4,0)
	}
	tests := []struct {
		name   string
		abs    bool
		labels []int32
		cent   []float64
	}{
		// abs (the reference): chunk 1 → x0, x1 | x2; centroids become the
		// means of |x|: (0.5,0), (4,0); n = 3, 2. Chunk 2 against them:
		// x3, x4, x6 → 0, x5 → 1; c0 = (0.5,0)·2/3 + (3,1)/3 = (4/3, 1/3),
		// c1 = (4,0)/2 + (2.5,0)/2 = (3.25, 0).
		{"reference abs", true, []int32{0, 0, 0, 0, 0, 1, 0}, []float64{4.0 / 3, 1.0 / 3, 3.25, 0}},
		// signed means: (0.5,0), (-4,0); chunk 2: x3, x5 → 0, x4, x6 → 1;
		// c0 = (0.5,0)·2/3 + (1.25,−0.5)/3 = (0.75, −1/6), c1 = (−4.25, 0).
		{"signed", false, []int32{0, 0, 1, 0, 1, 0, 1}, []float64{0.75, -1.0 / 6, -4.25, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			labels, cent, err := kmeansPick(x, 2, 3, tc.abs, pick, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(labels, tc.labels) {
				t.Errorf("labels %v, want %v", labels, tc.labels)
			}
			for k, v := range cent.Data {
				if !near(float64(v), tc.cent[k], 1e-6) {
					t.Errorf("centroids %v, want %v", cent.Data, tc.cent)
					break
				}
			}
		})
	}
	// One chunk when everything fits: empty clusters become zero vectors
	// (a duplicate token drawn twice leaves the second cluster empty).
	dup := sparse.Mat{Rows: 3, Cols: 1, Data: []float32{1, 1, 3}}
	labels, cent, err := kmeansPick(dup, 2, 2048, true, func(int, int) []int { return []int{0, 1} }, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(labels, []int32{0, 0, 0}) || !slices.Equal(cent.Data, []float32{5.0 / 3, 0}) {
		t.Errorf("duplicate init: labels %v centroids %v, want [0 0 0] [1.667 0]", labels, cent.Data)
	}
	if got := numInterests(8770, 0.5); got != 4385 {
		t.Errorf("numInterests(8770, 0.5) = %d, want 4385", got)
	}
	if got := numInterests(3, 0.02); got != 1 {
		t.Errorf("numInterests(3, 0.02) = %d, want 1", got)
	}
	// The random init draws distinct tokens.
	big := sparse.NewMat(50, 3)
	for k := range big.Data {
		big.Data[k] = float32(k)
	}
	if _, c, err := kmeans(big, 50, 2048, false, rand.New(rand.NewPCG(1, 2)), 1); err != nil {
		t.Fatal(err)
	} else {
		seen := map[float32]bool{}
		for j := range 50 {
			seen[c.Row(j)[0]] = true
		}
		if len(seen) != 50 {
			t.Errorf("k = n: %d distinct centroids, want 50", len(seen))
		}
	}
}

func TestInterestSetAndBatch(t *testing.T) {
	lookT := []int64{3, 1, 3, 2}
	lookV := []int64{5, 4, 5, 5}
	// Items 0, 2, 0 → text 3, 3, 3 and image 5, 5, 5; shorter than max_len,
	// so the reference's padding adds id 0.
	if got := interestSet([]int32{0, 2, 0}, lookT, lookV, 5, nil); !slices.Equal(got, []int32{0, 3, 5}) {
		t.Errorf("set %v, want [0 3 5]", got)
	}
	// A full-length history has no padding: no 0.
	if got := interestSet([]int32{1, 3, 1}, lookT, lookV, 3, nil); !slices.Equal(got, []int32{1, 2, 4, 5}) {
		t.Errorf("full set %v, want [1 2 4 5]", got)
	}
	if got := interestSet([]int32{1}, lookT, nil, 3, nil); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("text-only set %v, want [0 1]", got)
	}
	// Batch of 3 rows (the third is padding), L = 4, Q step 2, max_len 3.
	in := buildBatch([][]int32{{0, 2}, {1, 3, 1}}, 3, 4, 2, lookT, lookV, 3)
	const m = maskBias
	if in.L != 4 || in.nq != 4 || in.Q != 4 {
		t.Fatalf("L %d nq %d Q %d, want 4 4 4", in.L, in.nq, in.Q)
	}
	if want := []int32{1, 3, 0, 0, 2, 4, 2, 0, 0, 0, 0, 0}; !slices.Equal(in.seq, want) {
		t.Errorf("seq %v, want %v", in.seq, want)
	}
	if want := []float32{0, 0, m, m, 0, 0, 0, m, m, m, m, m}; !slices.Equal(in.selfBias, want) {
		t.Errorf("selfBias %v, want %v", in.selfBias, want)
	}
	if want := []int32{1, 6, 8}; !slices.Equal(in.last, want) {
		t.Errorf("last %v, want %v", in.last, want)
	}
	// Row 0: {0, 3, 5} padded; row 1: {1, 2, 4, 5}; row 2: nothing.
	if want := []int32{0, 3, 5, 0, 1, 2, 4, 5, 0, 0, 0, 0}; !slices.Equal(in.ids, want) {
		t.Errorf("ids %v, want %v", in.ids, want)
	}
	if want := []float32{m, 0, 0, m, 0, 0, 0, 0, m, m, m, m}; !slices.Equal(in.memBias, want) {
		t.Errorf("memBias %v, want %v", in.memBias, want)
	}
	// Weights: row 0 has 2 real of N_q = 4, row 1 4 of 4, row 2 none.
	if want := []float32{0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 0, 0, 0, 0}; !slices.Equal(in.regW, want) {
		t.Errorf("regW %v, want %v", in.regW, want)
	}
	// Q is padded past N_q; the extra positions get no regulariser weight.
	in = buildBatch([][]int32{{0}}, 1, 2, 4, lookT, lookV, 3)
	if in.nq != 3 || in.Q != 4 || !slices.Equal(in.regW, []float32{2.0 / 3, 2.0 / 3, 2.0 / 3, 0}) {
		t.Errorf("nq %d Q %d regW %v, want 3 4 [2/3 2/3 2/3 0]", in.nq, in.Q, in.regW)
	}
}

// TestFusedScore checks the evaluation scorer's fusion by hand: s = (1, 0);
// item 0: text (0.6, 0.8), image (1, 0), ID (0, 1); item 1: text (0, 1),
// image (0, -2) (normalised: (0, -1)), ID (1, 0).
func TestFusedScore(t *testing.T) {
	for _, tc := range []struct {
		mode, fusion string
		f            float32
		want         [2]float64
	}{
		// a = (0.6, 1): w_t = 1/(1+e^{2·0.4}); fused = 1 − 0.4·w_t.
		{ModeInductive, FusionDynamic, 2, [2]float64{1 - 0.4/(1+math.Exp(0.8)), 0}},
		{ModeInductive, FusionStatic, 2, [2]float64{0.8, 0}},
		// f = 0 is the plain average.
		{ModeInductive, FusionDynamic, 0, [2]float64{0.8, 0}},
		// Transductive: (id + 2·fused)/3.
		{ModeTransductive, FusionDynamic, 2, [2]float64{2 * (1 - 0.4/(1+math.Exp(0.8))) / 3, 1.0 / 3}},
	} {
		cfg := DefaultConfig()
		cfg.Dim, cfg.Heads, cfg.Mode, cfg.Fusion, cfg.Temperature = 2, 1, tc.mode, tc.fusion, 0.5
		m := &Model{cfg: cfg, numItems: 2}
		m.lay = paramLayout(cfg, 2, 3, 3)
		m.offs = []int{0}
		for _, s := range m.lay.specs {
			m.offs = append(m.offs, m.offs[len(m.offs)-1]+prod(s.shape))
		}
		m.params = make([]float32, m.offs[len(m.offs)-1])
		m.params[m.offs[m.lay.fusion]] = tc.f
		norm := func(v ...float32) []float32 { // rows 1..: normalised already, row 0 padding
			return append([]float32{9, 9}, v...)
		}
		tabs := [5][]float32{nil, norm(0.6, 0.8, 0, 1), nil, norm(1, 0, 0, -1), nil}
		if tc.mode == ModeTransductive {
			tabs[4] = norm(0, 1, 1, 0)
		}
		score := m.fusedScorer(sparse.Mat{Rows: 1, Cols: 2, Data: []float32{1, 0}}, tabs)
		got := make([]float32, 2)
		if err := score([]int32{0}, got); err != nil {
			t.Fatal(err)
		}
		for k := range 2 {
			if !near(float64(got[k]), tc.want[k]/0.5, 1e-6) {
				t.Errorf("%s %s f=%v: scores %v, want %v / τ", tc.mode, tc.fusion, tc.f, got, tc.want)
				break
			}
		}
	}
}

// refModel is an independent float64 implementation of the training loss
// (no dropout) for the gradient check.
type refModel struct {
	c          *Config
	lay        *layout
	items      int
	dT, dV     int
	featT      []float64
	featV      []float64
	seq        []int32 // [B, L]
	selfBias   []float32
	interest   []float64 // [B, Q, d]
	memBias    []float32
	last       []int32
	target     []int32
	rowW       []float32
	regW       []float32
	B, L, Q    int
	targetsPad bool
}

func (r *refModel) loss(p [][]float64) float64 {
	c, l := r.c, r.lay
	d, H, F := c.Dim, c.Heads, c.Inner
	dh := d / H
	ln := func(x []float64, g lnorm) []float64 {
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
			out[k] = (a-mu)/math.Sqrt(v+c.LNEps)*p[g.g][k] + p[g.b][k]
		}
		return out
	}
	lin := func(x []float64, w, b int, in, out int) []float64 {
		y := make([]float64, out)
		for j := range out {
			s := p[b][j]
			for k := range in {
				s += x[k] * p[w][k*out+j]
			}
			y[j] = s
		}
		return y
	}
	add := func(a, b []float64) []float64 {
		out := make([]float64, len(a))
		for k := range a {
			out[k] = a[k] + b[k]
		}
		return out
	}
	mha := func(xq, xkv [][]float64, bias []float32, a attn) [][]float64 {
		Q, K, V := make([][]float64, len(xq)), make([][]float64, len(xkv)), make([][]float64, len(xkv))
		for i := range xq {
			Q[i] = lin(xq[i], a.wq, a.bq, d, d)
		}
		for j := range xkv {
			K[j], V[j] = lin(xkv[j], a.wk, a.bk, d, d), lin(xkv[j], a.wv, a.bv, d, d)
		}
		out := make([][]float64, len(xq))
		for i := range xq {
			ctx := make([]float64, d)
			for h := range H {
				sc := make([]float64, len(xkv))
				mx := math.Inf(-1)
				for j := range xkv {
					var s float64
					for k := h * dh; k < (h+1)*dh; k++ {
						s += Q[i][k] * K[j][k]
					}
					sc[j] = s/math.Sqrt(float64(dh)) + float64(bias[j])
					mx = max(mx, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					z += sc[j]
				}
				for j := range sc {
					for k := h * dh; k < (h+1)*dh; k++ {
						ctx[k] += sc[j] / z * V[j][k]
					}
				}
			}
			out[i] = lin(ctx, a.wo, a.bo, d, d)
		}
		return out
	}
	ff := func(x []float64, f ffn) []float64 {
		h := lin(x, f.w1, f.b1, d, F)
		for k := range h {
			h[k] = 0.5 * h[k] * (1 + math.Erf(h[k]/math.Sqrt2))
		}
		return lin(h, f.w2, f.b2, F, d)
	}
	norm := func(x []float64) []float64 {
		var s float64
		for _, a := range x {
			s += a * a
		}
		n := max(math.Sqrt(s), 1e-12)
		out := make([]float64, len(x))
		for k, a := range x {
			out[k] = a / n
		}
		return out
	}
	dot := func(a, b []float64) float64 {
		var s float64
		for k := range a {
			s += a[k] * b[k]
		}
		return s
	}
	// Adaptor outputs of every item row.
	at, av := make([][]float64, r.items+1), make([][]float64, r.items+1)
	for i := range r.items + 1 {
		at[i] = lin(r.featT[i*r.dT:(i+1)*r.dT], l.wt, l.bt, r.dT, d)
		av[i] = lin(r.featV[i*r.dV:(i+1)*r.dV], l.wv, l.bv, r.dV, d)
	}
	idRow := func(i int) []float64 {
		if i == 0 {
			return make([]float64, d)
		}
		return p[l.item][i*d : (i+1)*d]
	}
	var ceSum, rows, reg float64
	for b := range r.B {
		x := make([][]float64, r.L)
		for t := range r.L {
			it := int(r.seq[b*r.L+t])
			e := add(at[it], av[it])
			e = add(e, p[l.pos][t*d:(t+1)*d])
			if l.item >= 0 {
				e = add(e, idRow(it))
			}
			x[t] = ln(e, l.ln0)
		}
		src := make([][]float64, r.Q)
		for j := range r.Q {
			src[j] = r.interest[(b*r.Q+j)*d : (b*r.Q+j+1)*d]
		}
		mb := r.memBias[b*r.Q : (b+1)*r.Q]
		sa := mha(src, src, mb, l.encSA)
		for j := range src {
			src[j] = ln(add(src[j], sa[j]), l.encLN1)
		}
		for j := range src {
			src[j] = ln(add(src[j], ff(src[j], l.encFF)), l.encLN2)
		}
		mem := make([][]float64, r.Q)
		for j := range src {
			mem[j] = ln(src[j], l.encNorm)
		}
		sb := r.selfBias[b*r.L : (b+1)*r.L]
		s1 := mha(x, x, sb, l.decSA)
		for t := range x {
			x[t] = ln(add(x[t], s1[t]), l.decLN1)
		}
		s2 := mha(x, mem, mb, l.decCA)
		for t := range x {
			x[t] = ln(add(x[t], s2[t]), l.decLN2)
		}
		for t := range x {
			x[t] = ln(add(x[t], ff(x[t], l.decFF)), l.decLN3)
			x[t] = ln(x[t], l.decNorm)
		}
		s := norm(x[int(r.last[b])-b*r.L])
		f := p[l.fusion][0]
		logits := make([]float64, r.items+1)
		for i := range logits {
			ct, cv := dot(s, norm(at[i])), dot(s, norm(av[i]))
			wt := math.Exp(f*ct) / (math.Exp(f*ct) + math.Exp(f*cv))
			fused := wt*ct + (1-wt)*cv
			if l.item >= 0 {
				fused = (dot(s, norm(idRow(i))) + 2*fused) / 3
			}
			logits[i] = fused / c.Temperature
		}
		if !c.PadClass {
			logits = logits[1:]
		}
		tg := int(r.target[b])
		if !c.PadClass {
			tg--
		}
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = max(mx, v)
		}
		var z float64
		for _, v := range logits {
			z += math.Exp(v - mx)
		}
		if r.rowW[b] != 0 {
			ceSum += float64(r.rowW[b]) * (math.Log(z) + mx - logits[tg])
		}
		rows += float64(r.rowW[b])
		pooled := make([]float64, d)
		for j := range r.Q {
			for k := range d {
				pooled[k] += float64(r.regW[b*r.Q+j]) * mem[j][k]
			}
		}
		for _, v := range pooled {
			reg += v * v
		}
	}
	return ceSum/max(rows, 1) + c.Gamma*reg/float64(d)
}

// TestTrainGraphMatchesReference checks the GoMLX loss against the float64
// reference and its gradient against central finite differences of it, on
// a tiny model with random parameters, in both modes.
func TestTrainGraphMatchesReference(t *testing.T) {
	for _, mode := range []string{ModeTransductive, ModeInductive} {
		t.Run(mode, func(t *testing.T) { checkGradients(t, mode) })
	}
}

func checkGradients(t *testing.T, mode string) {
	c := DefaultConfig()
	c.Mode, c.Dim, c.Heads, c.Inner, c.MaxLen, c.Dropout = mode, 4, 2, 3, 4, 0
	c.Gamma = 0.3 // large enough for the regulariser to matter in the check
	c.PadClass = mode == ModeTransductive
	const items, dT, dV, B, L = 5, 3, 2, 3, 3
	lay := paramLayout(c, items, dT, dV)
	rng := rand.New(rand.NewPCG(3, 4))
	p32 := make([][]float32, len(lay.specs))
	p64 := make([][]float64, len(lay.specs))
	for k, s := range lay.specs {
		n := prod(s.shape)
		p32[k], p64[k] = make([]float32, n), make([]float64, n)
		for j := range n {
			v := float32(rng.NormFloat64() * 0.6)
			p32[k][j], p64[k][j] = v, float64(v)
		}
	}
	if lay.item >= 0 { // the padding row: its value must not matter
		for j := range c.Dim {
			p32[lay.item][j], p64[lay.item][j] = 5, 5
		}
	}
	feat := func(dim int) ([]float32, []float64) {
		a, b := make([]float32, (items+1)*dim), make([]float64, (items+1)*dim)
		for j := dim; j < len(a); j++ {
			v := float32(rng.NormFloat64())
			a[j], b[j] = v, float64(v)
		}
		return a, b
	}
	fT32, fT64 := feat(dT)
	fV32, fV64 := feat(dV)
	lookT, lookV := []int64{1, 2, 1, 3, 2}, []int64{4, 3, 4, 1, 2}
	const K = 4
	inter := make([]float32, (K+1)*c.Dim)
	for j := c.Dim; j < len(inter); j++ {
		inter[j] = float32(rng.NormFloat64())
	}
	// Row 0: 2 items, row 1: 3 items (= max_len − 1), row 2: padding row.
	in := buildBatch([][]int32{{4, 0}, {1, 3, 2}}, B, L, 2, lookT, lookV, c.MaxLen)
	target := []int32{3, 1, 0}
	rowW := []float32{1, 1, 0}
	m := &Model{cfg: c, interest: inter}
	emb := m.interestEmb(in.ids)
	ref := &refModel{c: c, lay: lay, items: items, dT: dT, dV: dV, featT: fT64, featV: fV64, seq: in.seq,
		selfBias: in.selfBias, memBias: in.memBias, last: in.last, target: target, rowW: rowW, regW: in.regW,
		B: B, L: L, Q: in.Q}
	ref.interest = make([]float64, len(emb))
	for k, v := range emb {
		ref.interest[k] = float64(v)
	}
	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := gx.NewProgram(b, "test", 0, trainGraph(c, lay))
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for k, s := range lay.specs {
		args = append(args, gx.F32(p32[k], s.shape...))
	}
	args = append(args, gx.F32(fT32, items+1, dT), gx.F32(fV32, items+1, dV), gx.I32(in.seq, B, L), gx.F32(in.selfBias, B, L),
		gx.F32(emb, B, in.Q, c.Dim), gx.F32(in.memBias, B, in.Q), gx.I32(in.last, B), gx.I32(target, B),
		gx.F32(rowW, B), gx.F32(in.regW, B, in.Q))
	for _, dims := range maskDims(c, B, L, in.Q) {
		args = append(args, gx.F32(seqdata.DropMask(nil, prod(dims), 0), dims...))
	}
	outs, err := prog.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := gx.Scalar(outs[0])
	gx.Release(outs[1], outs[2])
	want := ref.loss(p64)
	if !near(got, want, 1e-4) {
		t.Fatalf("loss %v, reference %v", got, want)
	}
	for k, s := range lay.specs {
		g := make([]float32, len(p32[k]))
		if err := gx.CopyF32(g, outs[k+3]); err != nil {
			t.Fatal(err)
		}
		if k == lay.item {
			for j := range c.Dim {
				if g[j] != 0 {
					t.Errorf("padding row of the item embedding has gradient %v", g[:c.Dim])
					break
				}
			}
		}
		for _, j := range []int{0, len(g) / 2, len(g) - 1} {
			const h = 1e-5
			orig := p64[k][j]
			p64[k][j] = orig + h
			lp := ref.loss(p64)
			p64[k][j] = orig - h
			lm := ref.loss(p64)
			p64[k][j] = orig
			fd := (lp - lm) / (2 * h)
			if math.Abs(float64(g[j])-fd) > 2e-3*(1+math.Abs(fd)) {
				t.Errorf("param %s %v [%d]: gradient %v, finite difference %v", s.name, s.shape, j, g[j], fd)
			}
		}
	}
}

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
		m := &Model{cfg: cfg, numItems: 2, scoreItems: 2}
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

// refView is one view of a batch for the float64 reference: text and
// image table rows per position, key-padding biases, interest embeddings,
// last positions and regulariser weights (as batchInputs).
type refView struct {
	seqT, seqV []int32 // [B, L]
	selfBias   []float32
	interest   []float64 // [B, Q, d]
	memBias    []float32
	last       []int32
	regW       []float32
	Q          int
}

// refModel is an independent float64 implementation of the training
// losses (no dropout) for the gradient checks.
type refModel struct {
	c      *Config
	lay    *layout
	items  int
	dT, dV int
	featT  []float64
	featV  []float64
	featT2 []float64 // word-dropped text (pre-training), nil when absent
	view   refView
	aug    refView // pre-training's augmented view
	target []int32
	rowW   []float32
	B, L   int
}

func newRefView(in *batchInputs, emb []float32) refView {
	v := refView{seqT: in.seq, seqV: in.seqV, selfBias: in.selfBias, memBias: in.memBias, last: in.last, regW: in.regW, Q: in.Q}
	if v.seqV == nil {
		v.seqV = in.seq
	}
	v.interest = make([]float64, len(emb))
	for k, x := range emb {
		v.interest[k] = float64(x)
	}
	return v
}

// ref64 holds the float64 building blocks over parameters p.
type ref64 struct {
	c   *Config
	lay *layout
	p   [][]float64
}

func (r ref64) ln(x []float64, g lnorm) []float64 {
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
		out[k] = (a-mu)/math.Sqrt(v+r.c.LNEps)*r.p[g.g][k] + r.p[g.b][k]
	}
	return out
}

func (r ref64) lin(x []float64, w, b int, in, out int) []float64 {
	y := make([]float64, out)
	for j := range out {
		s := r.p[b][j]
		for k := range in {
			s += x[k] * r.p[w][k*out+j]
		}
		y[j] = s
	}
	return y
}

func add64(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for k := range a {
		out[k] = a[k] + b[k]
	}
	return out
}

func norm64(x []float64) []float64 {
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

func dot64(a, b []float64) float64 {
	var s float64
	for k := range a {
		s += a[k] * b[k]
	}
	return s
}

func (r ref64) mha(xq, xkv [][]float64, bias []float32, a attn) [][]float64 {
	d, H := r.c.Dim, r.c.Heads
	dh := d / H
	Q, K, V := make([][]float64, len(xq)), make([][]float64, len(xkv)), make([][]float64, len(xkv))
	for i := range xq {
		Q[i] = r.lin(xq[i], a.wq, a.bq, d, d)
	}
	for j := range xkv {
		K[j], V[j] = r.lin(xkv[j], a.wk, a.bk, d, d), r.lin(xkv[j], a.wv, a.bv, d, d)
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
		out[i] = r.lin(ctx, a.wo, a.bo, d, d)
	}
	return out
}

func (r ref64) ff(x []float64, f ffn) []float64 {
	h := r.lin(x, f.w1, f.b1, r.c.Dim, r.c.Inner)
	for k := range h {
		h[k] = 0.5 * h[k] * (1 + math.Erf(h[k]/math.Sqrt2))
	}
	return r.lin(h, f.w2, f.b2, r.c.Inner, r.c.Dim)
}

// adaptors returns the adaptor outputs of every row of a feature table.
func (r ref64) adaptor(feat []float64, dim, w, b int) [][]float64 {
	n := len(feat) / dim
	out := make([][]float64, n)
	for i := range n {
		out[i] = r.lin(feat[i*dim:(i+1)*dim], w, b, dim, r.c.Dim)
	}
	return out
}

func (r ref64) idRow(i int) []float64 {
	d := r.c.Dim
	if i == 0 {
		return make([]float64, d)
	}
	return r.p[r.lay.item][i*d : (i+1)*d]
}

// encode returns row b's normalised sequence vector and its pooled
// regulariser term Σ_d (Σ_j w_j mem_j,d)² / d.
func (r ref64) encode(at, av [][]float64, v refView, b, L int) ([]float64, float64) {
	c, l, d := r.c, r.lay, r.c.Dim
	x := make([][]float64, L)
	for t := range L {
		e := at[v.seqT[b*L+t]]
		if av != nil {
			e = add64(e, av[v.seqV[b*L+t]])
		}
		e = add64(e, r.p[l.pos][t*d:(t+1)*d])
		if l.item >= 0 {
			e = add64(e, r.idRow(int(v.seqT[b*L+t])))
		}
		x[t] = r.ln(e, l.ln0)
	}
	src := make([][]float64, v.Q)
	for j := range v.Q {
		src[j] = v.interest[(b*v.Q+j)*d : (b*v.Q+j+1)*d]
	}
	mb := v.memBias[b*v.Q : (b+1)*v.Q]
	sa := r.mha(src, src, mb, l.encSA)
	for j := range src {
		src[j] = r.ln(add64(src[j], sa[j]), l.encLN1)
	}
	for j := range src {
		src[j] = r.ln(add64(src[j], r.ff(src[j], l.encFF)), l.encLN2)
	}
	mem := make([][]float64, v.Q)
	for j := range src {
		mem[j] = r.ln(src[j], l.encNorm)
	}
	sb := v.selfBias[b*L : (b+1)*L]
	s1 := r.mha(x, x, sb, l.decSA)
	for t := range x {
		x[t] = r.ln(add64(x[t], s1[t]), l.decLN1)
	}
	s2 := r.mha(x, mem, mb, l.decCA)
	for t := range x {
		x[t] = r.ln(add64(x[t], s2[t]), l.decLN2)
	}
	for t := range x {
		x[t] = r.ln(add64(x[t], r.ff(x[t], l.decFF)), l.decLN3)
		x[t] = r.ln(x[t], l.decNorm)
	}
	pooled := make([]float64, d)
	for j := range v.Q {
		for k := range d {
			pooled[k] += float64(v.regW[b*v.Q+j]) * mem[j][k]
		}
	}
	var reg float64
	for _, a := range pooled {
		reg += a * a
	}
	_ = c
	return norm64(x[int(v.last[b])-b*L]), reg / float64(d)
}

// fused is the fused cosine of s with an item's text and image adaptor
// outputs (and ID embedding row id ≥ 0 in transductive mode); im nil: text
// only, scored s·norm(t + ID) in transductive mode.
func (r ref64) fused(s, t, im []float64, id int) float64 {
	if im == nil {
		if r.lay.item >= 0 && id >= 0 {
			return dot64(s, norm64(add64(t, r.idRow(id))))
		}
		return dot64(s, norm64(t))
	}
	ct, cv := dot64(s, norm64(t)), dot64(s, norm64(im))
	f := r.p[r.lay.fusion][0]
	wt := math.Exp(f*ct) / (math.Exp(f*ct) + math.Exp(f*cv))
	out := wt*ct + (1-wt)*cv
	if r.lay.item >= 0 && id >= 0 {
		out = (dot64(s, norm64(r.idRow(id))) + 2*out) / 3
	}
	return out
}

// ce64 is the softmax cross-entropy of logits at tg.
func ce64(logits []float64, tg int) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = max(mx, v)
	}
	var z float64
	for _, v := range logits {
		z += math.Exp(v - mx)
	}
	return math.Log(z) + mx - logits[tg]
}

// loss is the fine-tuning loss.
func (r *refModel) loss(p [][]float64) float64 {
	c, l := r.c, r.lay
	m := ref64{c, l, p}
	at := m.adaptor(r.featT, r.dT, l.wt, l.bt)
	var av [][]float64
	if r.dV > 0 {
		av = m.adaptor(r.featV, r.dV, l.wv, l.bv)
	}
	var ceSum, rows, reg float64
	for b := range r.B {
		s, rg := m.encode(at, av, r.view, b, r.L)
		logits := make([]float64, r.items+1)
		for i := range logits {
			var im []float64
			if av != nil {
				im = av[i]
			}
			logits[i] = m.fused(s, at[i], im, i) / c.Temperature
		}
		tg := int(r.target[b])
		if !c.PadClass {
			logits, tg = logits[1:], tg-1
		}
		if r.rowW[b] != 0 {
			ceSum += float64(r.rowW[b]) * ce64(logits, tg)
		}
		rows += float64(r.rowW[b])
		reg += rg
	}
	return ceSum/max(rows, 1) + c.Gamma*reg
}

// pretrainLoss is the pre-training loss and its terms (L_si, L_ss,
// R + R_aug); rows with rowW 0 are neither anchors nor candidates.
func (r *refModel) pretrainLoss(p [][]float64) (loss, si, ss, reg float64) {
	c, l := r.c, r.lay
	m := ref64{c, l, p}
	at, av := m.adaptor(r.featT, r.dT, l.wt, l.bt), m.adaptor(r.featV, r.dV, l.wv, l.bv)
	at2 := at
	if r.featT2 != nil {
		at2 = append(append([][]float64{}, at...), m.adaptor(r.featT2, r.dT, l.wt, l.bt)...)
	}
	s1, s2 := make([][]float64, r.B), make([][]float64, r.B)
	for b := range r.B {
		var g1, g2 float64
		s1[b], g1 = m.encode(at, av, r.view, b, r.L)
		s2[b], g2 = m.encode(at2, av, r.aug, b, r.L)
		reg += g1 + g2
	}
	var real []int
	for b := range r.B {
		if r.rowW[b] != 0 {
			real = append(real, b)
		}
	}
	for k, b := range real {
		li, ls := make([]float64, len(real)), make([]float64, len(real))
		for j, cb := range real {
			tg := r.target[cb]
			li[j] = m.fused(s1[b], at[tg], av[tg], -1) / c.Temperature
			ls[j] = dot64(s1[b], s2[cb]) / c.Temperature
		}
		si += ce64(li, k)
		ss += ce64(ls, k)
	}
	si /= float64(len(real))
	ss /= float64(len(real))
	return si + c.Lambda*ss + c.Gamma*reg, si, ss, reg
}

// TestTrainGraphMatchesReference checks the GoMLX loss against the float64
// reference and its gradient against central finite differences of it, on
// a tiny model with random parameters, in both modes.
func TestTrainGraphMatchesReference(t *testing.T) {
	for _, mode := range []string{ModeTransductive, ModeInductive} {
		t.Run(mode, func(t *testing.T) { checkGradients(t, mode, false) })
		t.Run(mode+"-text-only", func(t *testing.T) { checkGradients(t, mode, true) })
	}
}

func checkGradients(t *testing.T, mode string, textOnly bool) {
	c := DefaultConfig()
	c.Mode, c.Dim, c.Heads, c.Inner, c.MaxLen, c.Dropout = mode, 4, 2, 3, 4, 0
	c.Gamma = 0.3 // large enough for the regulariser to matter in the check
	c.PadClass = mode == ModeTransductive
	const items, dT, B, L = 5, 3, 3, 3
	dV := 2
	if textOnly {
		dV = 0
	}
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
	fvShape := []int{items + 1, dV}
	lookT, lookV := []int64{1, 2, 1, 3, 2}, []int64{4, 3, 4, 1, 2}
	if textOnly {
		fV32, fvShape, lookV = make([]float32, 1), []int{1, 1}, nil
	}
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
	ref := &refModel{c: c, lay: lay, items: items, dT: dT, dV: dV, featT: fT64, featV: fV64,
		view: newRefView(in, emb), target: target, rowW: rowW, B: B, L: L}
	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := gx.NewProgram(b, "test", 0, trainGraph(c, lay, nil))
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for k, s := range lay.specs {
		args = append(args, gx.F32(p32[k], s.shape...))
	}
	args = append(args, gx.F32(fT32, items+1, dT), gx.F32(fV32, fvShape...), gx.I32(in.seq, B, L), gx.F32(in.selfBias, B, L),
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

// TestItemGraphTextOnly checks the scoring table of a single modality in
// transductive mode: norm(text adaptor + ID embedding), padding row = the
// normalised adaptor bias, and no separate ID table.
func TestItemGraphTextOnly(t *testing.T) {
	c := DefaultConfig()
	c.Dim, c.Heads, c.Inner, c.MaxLen = 4, 2, 3, 4
	const items, dT = 3, 2
	lay := paramLayout(c, items, dT, 0)
	rng := rand.New(rand.NewPCG(7, 8))
	var args []any
	ps := make([][]float32, len(lay.specs))
	for k, s := range lay.specs {
		ps[k] = make([]float32, prod(s.shape))
		for j := range ps[k] {
			ps[k][j] = float32(rng.NormFloat64())
		}
		args = append(args, gx.F32(ps[k], s.shape...))
	}
	feat := make([]float32, (items+1)*dT)
	for j := dT; j < len(feat); j++ {
		feat[j] = float32(rng.NormFloat64())
	}
	args = append(args, gx.F32(feat, items+1, dT), gx.F32(make([]float32, 1), 1, 1))
	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := gx.NewProgram(b, "items", 0, itemGraph(c, lay))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := prog.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, (items+1)*c.Dim)
	if err := gx.CopyF32(got, outs[1]); err != nil {
		t.Fatal(err)
	}
	id := make([]float32, 1)
	if err := gx.CopyF32(id, outs[4]); err != nil {
		t.Fatalf("ID table output is not a [1, 1] placeholder: %v", err)
	}
	for i := range items + 1 {
		row := make([]float64, c.Dim)
		for j := range c.Dim {
			v := float64(ps[lay.bt][j])
			for k := range dT {
				v += float64(feat[i*dT+k]) * float64(ps[lay.wt][k*c.Dim+j])
			}
			if i > 0 {
				v += float64(ps[lay.item][i*c.Dim+j])
			}
			row[j] = v
		}
		want := norm64(row)
		for j := range c.Dim {
			if !near(float64(got[i*c.Dim+j]), want[j], 1e-5) {
				t.Fatalf("row %d: %v, want %v", i, got[i*c.Dim:(i+1)*c.Dim], want)
			}
		}
	}
}

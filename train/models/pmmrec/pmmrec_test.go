package pmmrec

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/train"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

// ---- float64 reference of the network, written from the description ----

type ref struct {
	c    *Config
	lay  *layout
	p    map[string][]float64
	shp  map[string][]int
	tokT [][][]float64 // item index → valid tokens
	tokV [][][]float64
}

func newRef(m *Model) *ref {
	r := &ref{c: m.cfg, lay: m.lay, p: map[string][]float64{}, shp: map[string][]int{}}
	for k, s := range m.lay.specs {
		r.p[s.name] = f64(m.param(k))
		r.shp[s.name] = s.shape
	}
	toks := func(t *tokenTable) [][][]float64 {
		if t == nil {
			return nil
		}
		out := make([][][]float64, m.numItems)
		for i := range out {
			row := t.row(i)
			for j := range int(t.n[i]) {
				out[i] = append(out[i], f64(row[j*t.dim:(j+1)*t.dim]))
			}
		}
		return out
	}
	r.tokT, r.tokV = toks(m.tt), toks(m.tv)
	return r
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for k, x := range v {
		out[k] = float64(x)
	}
	return out
}

// lin is x·W + b for W [in, out] stored row-major (b may be nil).
func (r *ref) lin(x []float64, w, b string) []float64 {
	W, sh := r.p[w], r.shp[w]
	in, out := sh[0], sh[1]
	y := make([]float64, out)
	for o := range out {
		var s float64
		for i := range in {
			s += x[i] * W[i*out+o]
		}
		if b != "" {
			s += r.p[b][o]
		}
		y[o] = s
	}
	return y
}

func (r *ref) ln(x []float64, name string, eps float64) []float64 {
	var mean, v float64
	for _, a := range x {
		mean += a
	}
	mean /= float64(len(x))
	for _, a := range x {
		v += (a - mean) * (a - mean)
	}
	v /= float64(len(x))
	g, b := r.p[name+".g"], r.p[name+".b"]
	y := make([]float64, len(x))
	for k, a := range x {
		y[k] = (a-mean)/math.Sqrt(v+eps)*g[k] + b[k]
	}
	return y
}

func add(a, b []float64) []float64 {
	y := make([]float64, len(a))
	for k := range a {
		y[k] = a[k] + b[k]
	}
	return y
}

func dot(a, b []float64) float64 {
	var s float64
	for k := range a {
		s += a[k] * b[k]
	}
	return s
}

// attention: xs are the sequence's vectors; query q attends to keys
// allowed(q, k); pre is the parameter prefix; bias selects biased Q/K/V/O.
func (r *ref) attention(xs [][]float64, H int, pre string, bias bool, allowed func(q, k int) bool) [][]float64 {
	d := r.c.Dim
	dh := d / H
	b := func(s string) string {
		if bias {
			return pre + s
		}
		return ""
	}
	var Q, K, V [][]float64
	for _, x := range xs {
		Q = append(Q, r.lin(x, pre+"wq", b("bq")))
		K = append(K, r.lin(x, pre+"wk", b("bk")))
		V = append(V, r.lin(x, pre+"wv", b("bv")))
	}
	out := make([][]float64, len(xs))
	for q := range xs {
		ctx := make([]float64, d)
		for h := range H {
			var ks []int
			var sc []float64
			mx := math.Inf(-1)
			for k := range xs {
				if !allowed(q, k) {
					continue
				}
				s := dot(Q[q][h*dh:(h+1)*dh], K[k][h*dh:(h+1)*dh]) / math.Sqrt(float64(dh))
				ks, sc = append(ks, k), append(sc, s)
				mx = max(mx, s)
			}
			var z float64
			for j := range sc {
				sc[j] = math.Exp(sc[j] - mx)
				z += sc[j]
			}
			for j, k := range ks {
				for t := range dh {
					ctx[h*dh+t] += sc[j] / z * V[k][h*dh+t]
				}
			}
		}
		out[q] = r.lin(ctx, pre+"wo", b("bo"))
	}
	return out
}

// item is the embedding of item index i (-1: padding → 0).
func (r *ref) item(i int) []float64 {
	d := r.c.Dim
	if i < 0 {
		if r.c.Tower == TowerID {
			return r.p["item_embedding"][:d]
		}
		return make([]float64, d)
	}
	mean := func(xs [][]float64) []float64 {
		y := make([]float64, d)
		for _, x := range xs {
			for k := range y {
				y[k] += x[k] / float64(len(xs))
			}
		}
		return y
	}
	var xt, xv [][]float64
	if r.tokT != nil {
		for _, t := range r.tokT[i] {
			xt = append(xt, r.lin(t, "text_proj.w", "text_proj.b"))
		}
	}
	if r.tokV != nil {
		for _, t := range r.tokV[i] {
			xv = append(xv, r.lin(t, "image_proj.w", "image_proj.b"))
		}
	}
	switch r.c.Tower {
	case TowerID:
		return r.p["item_embedding"][(i+1)*d : (i+2)*d]
	case TowerText:
		return mean(xt)
	case TowerImage:
		return mean(xv)
	}
	xs := append(append([][]float64{}, xt...), xv...)
	if len(xs) == 0 {
		return make([]float64, d)
	}
	a := r.attention(xs, r.c.FusionHeads, "fusion.", true, func(q, k int) bool { return true })
	var hs [][]float64
	for k, x := range xs {
		h := r.ln(add(a[k], x), "fusion.ln1", 1e-12)
		f := r.lin(h, "fusion.w1", "fusion.b1")
		for j, v := range f {
			f[j] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
		}
		hs = append(hs, r.ln(add(r.lin(f, "fusion.w2", "fusion.b2"), h), "fusion.ln2", 1e-12))
	}
	return mean(hs)
}

// pooled returns the masked mean of the projected text and image tokens.
func (r *ref) pooled(i int) (pt, pv []float64) {
	d := r.c.Dim
	pt, pv = make([]float64, d), make([]float64, d)
	for _, t := range r.tokT[i] {
		for k, v := range r.lin(t, "text_proj.w", "text_proj.b") {
			pt[k] += v / float64(len(r.tokT[i]))
		}
	}
	for _, t := range r.tokV[i] {
		for k, v := range r.lin(t, "image_proj.w", "image_proj.b") {
			pv[k] += v / float64(len(r.tokV[i]))
		}
	}
	return pt, pv
}

// user returns the encoder outputs of the n ≤ L input item embeddings xs,
// which sit at positions L−n..L−1.
func (r *ref) user(xs [][]float64) [][]float64 {
	L, d := r.c.MaxSeqLen, r.c.Dim
	off := L - len(xs)
	h := make([][]float64, len(xs))
	for k, x := range xs {
		h[k] = r.ln(add(x, r.p["user.position"][(off+k)*d:(off+k+1)*d]), "user.ln", 1e-6)
	}
	for b := range r.c.Blocks {
		pre := "user.block" + string(rune('0'+b)) + "."
		a := r.attention(h, r.c.Heads, pre, false, func(q, k int) bool { return k <= q })
		for k := range h {
			x := r.ln(add(a[k], h[k]), pre+"ln1", 1e-6)
			f := r.lin(x, pre+"w1", pre+"b1")
			for j := range f {
				f[j] = max(f[j], 0)
			}
			h[k] = r.ln(add(r.lin(f, pre+"w2", pre+"b2"), x), pre+"ln2", 1e-6)
		}
	}
	return h
}

// nextItemLoss is §4.6 on users' sequences (item indices, ≤ L+1 each)
// padded to B users; logPop from counts over the sequences.
func (r *ref) nextItemLoss(seqs [][]int32, B int, logPop map[int32]float64) float64 {
	L := r.c.MaxSeqLen
	S := L + 1
	slots := make([]int32, B*S) // item index, −1 = padding
	for k := range slots {
		slots[k] = -1
	}
	for b, s := range seqs {
		for k, it := range s {
			slots[b*S+S-len(s)+k] = it
		}
	}
	emb := map[int32][]float64{}
	for _, it := range slots {
		if _, ok := emb[it]; !ok {
			emb[it] = r.item(int(it))
		}
	}
	var total float64
	var rows int
	for b, s := range seqs {
		in := s[:len(s)-1]
		xs := make([][]float64, len(in))
		for k, it := range in {
			xs[k] = emb[it]
		}
		h := r.user(xs)
		for k := range in {
			tc := b*S + S - len(s) + k + 1
			logits := make([]float64, B*S)
			for c, it := range slots {
				switch {
				case c == tc:
					logits[c] = dot(h[k], emb[it]) - logPop[it]
				case it < 0 || slices.Contains(s, it):
					logits[c] = -1e4
				default:
					logits[c] = dot(h[k], emb[it]) - logPop[it]
				}
			}
			mx := slices.Max(logits)
			var z float64
			for _, v := range logits {
				z += math.Exp(v - mx)
			}
			total += mx + math.Log(z) - logits[tc]
			rows++
		}
	}
	return total / float64(rows)
}

func popularity(seqs [][]int32) map[int32]float64 {
	cnt := map[int32]float64{}
	var n float64
	for _, s := range seqs {
		for _, it := range s {
			cnt[it]++
			n++
		}
	}
	out := map[int32]float64{-1: 0}
	for it, c := range cnt {
		out[it] = math.Log(c / n)
	}
	return out
}

// ---- fixtures ----

func tinyConfig(tower string) *Config {
	c := DefaultConfig()
	c.Tower, c.Dim, c.FusionHeads, c.Heads, c.Blocks = tower, 4, 2, 2, 2
	c.MaxSeqLen, c.BatchSize, c.Dropout, c.ItemBucket, c.EvalBatch = 3, 4, 0, 4, 4
	return c
}

// tinyTokens: 6 items; text 3 slots × 3 wide (item 2 has no text), image
// 2 slots × 2 wide.
func tinyTokens(rng *rand.Rand, items, T, dim int, none int) *tokenTable {
	n := make([]int32, items)
	data := make([][]float32, items)
	for i := range items {
		n[i] = int32(1 + (i % T))
		if i == none {
			n[i] = 0
		}
		data[i] = make([]float32, T*dim)
		for k := range int(n[i]) * dim {
			data[i][k] = float32(rng.NormFloat64())
		}
	}
	return memTokens("mem", T, dim, n, data)
}

var tinyHist = [][]int32{{0, 1, 2, 3, 4}, {4, 1}, {5}, {2, 5, 5}}

func tinyModel(t *testing.T, c *Config) *Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	tt, tv := tinyTokens(rng, 6, 3, 3, 2), tinyTokens(rng, 6, 2, 2, -1)
	if c.Tower == TowerText {
		tv = nil
	}
	if c.Tower == TowerImage {
		tt = nil
	}
	if c.Tower == TowerID {
		tt, tv = nil, nil
	}
	m, err := newModel(c, 6, len(tinyHist), 1, tt, tv, tinyHist, rng)
	if err != nil {
		t.Fatal(err)
	}
	for k := range m.params { // move away from the symmetric init
		m.params[k] += float32(0.3 * rng.NormFloat64())
	}
	return m
}

// ---- tests ----

// TestFinetuneLossAndGradients compares one fine-tuning step's loss with
// the float64 reference, and every parameter's gradient with central
// finite differences of the reference, for every tower.
func TestFinetuneLossAndGradients(t *testing.T) {
	for _, tower := range []string{TowerModal, TowerText, TowerImage, TowerID} {
		t.Run(tower, func(t *testing.T) {
			m := tinyModel(t, tinyConfig(tower))
			if len(m.seqs) != 3 || !slices.Equal(m.seqs[0], []int32{2, 3, 4, 5}) {
				t.Fatalf("samples %v: want the last 4 items (rows) of the 3 users with ≥ 2 items", m.seqs)
			}
			bt := buildBatch(m.seqs, 4, 3, m.logPop, 4, nil, 0, 6)
			if bt.U != 8 || len(bt.rows) != 8 {
				t.Errorf("U = %d (%d rows), want 8: 6 distinct items (with padding) rounded up to 4", bt.U, len(bt.rows))
			}
			losses, err := m.step(bt, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			seqs := [][]int32{{1, 2, 3, 4}, {4, 1}, {2, 5, 5}} // item indices of the 3 users (+ a padded one)
			r := newRef(m)
			pop := popularity(seqs)
			want := r.nextItemLoss(seqs, 4, pop)
			if got := losses["loss"]; !near(got, want, 2e-5) {
				t.Fatalf("loss %v, float64 reference %v", got, want)
			}
			const h = 1e-5
			bad := 0
			for k, s := range m.lay.specs {
				p := r.p[s.name]
				g := m.grad[m.offs[k]:m.offs[k+1]]
				for j := range p {
					o := p[j]
					p[j] = o + h
					lp := r.nextItemLoss(seqs, 4, pop)
					p[j] = o - h
					lm := r.nextItemLoss(seqs, 4, pop)
					p[j] = o
					fd := (lp - lm) / (2 * h)
					if math.Abs(float64(g[j])-fd) > 2e-3*(1+math.Abs(fd)) {
						if bad++; bad < 10 {
							t.Errorf("%s[%d]: gradient %v, finite difference %v", s.name, j, g[j], fd)
						}
					}
				}
			}
		})
	}
}

// TestMasksOfABatch checks §4.6's masks on a hand-built batch.
func TestMasksOfABatch(t *testing.T) {
	logPop := []float32{0, -1, -2, -3, -4}
	// L = 2, S = 3: user 0 = [pad, 1, 2], user 1 = [3, 1, 4].
	bt := buildBatch([][]int32{{1, 2}, {3, 1, 4}}, 2, 2, logPop, 1, nil, 0, 4)
	if !slices.Equal(bt.rowW, []float32{0, 1, 1, 1}) {
		t.Errorf("rowW %v", bt.rowW)
	}
	if !slices.Equal(bt.target, []int32{1, 2, 4, 5}) {
		t.Errorf("target %v", bt.target)
	}
	if !slices.Equal(bt.logQ, []float32{0, -1, -2, -3, -1, -4}) {
		t.Errorf("logQ %v", bt.logQ)
	}
	// Row 1 (user 0, position 1, target column 2 = item 2): padding column
	// 0 and own item 1 (column 1 and user 1's column 4) masked; items 3, 4
	// of user 1 open.
	want := [][]float32{
		{1, 0, 1, 0, 1, 0}, // row 0 (not a real row): target column 1
		{1, 1, 0, 0, 1, 0},
		{1, 1, 0, 1, 0, 1}, // user 1, target column 4 (item 1); own 3, 1, 4 and padding masked, item 2 open
		{1, 1, 0, 1, 1, 0}, // target column 5 (item 4)
	}
	for r, w := range want {
		if got := bt.colMask[r*6 : (r+1)*6]; !slices.Equal(got, w) {
			t.Errorf("colMask row %d = %v, want %v", r, got, w)
		}
	}
	// Attention: user 0's position 0 is padding.
	if !slices.Equal(bt.attnBias[:8], []float32{-1e9, -1e9, -1e9, 0, 0, -1e9, 0, 0}) {
		t.Errorf("attnBias %v", bt.attnBias[:8])
	}
}

// ---- pre-training losses on hand-built batches ----

// runLoss runs one loss function on host inputs.
func runLoss(t *testing.T, fn func(in []*graphNode) *graphNode, args ...any) float64 {
	t.Helper()
	return runGraphScalar(t, fn, args...)
}

func randVecs(rng *rand.Rand, n, d int) []float32 {
	out := make([]float32, n*d)
	for k := range out {
		out[k] = float32(rng.NormFloat64())
	}
	return out
}

func cos(a, b []float32) float64 {
	var ab, aa, bb float64
	for k := range a {
		ab += float64(a[k]) * float64(b[k])
		aa += float64(a[k]) * float64(a[k])
		bb += float64(b[k]) * float64(b[k])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestNICL(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// L = 3, S = 4. User 0: [pad, 1, 2, 3]; user 1: [2, 4, 4, 5]
	// (a repeat, and item 2 shared with user 0).
	seqs := [][]int32{{1, 2, 3}, {2, 4, 4, 5}}
	bt := buildBatch(seqs, 2, 3, make([]float32, 6), 1, train.NewRNG(1, 2), 0.15, 5)
	const d, tau = 3, 0.1
	N := 8
	items := []int32{0, 1, 2, 3, 2, 4, 4, 5}
	zt, zv := randVecs(rng, N, d), randVecs(rng, N, d)
	vec := func(mod, s int) []float64 {
		if mod == 0 {
			return f64(zt[s*d : (s+1)*d])
		}
		return f64(zv[s*d : (s+1)*d])
	}
	want := niclRef(items, 4, vec, tau)
	z := append(append([]float32{}, zt...), zv...)
	got := runLoss(t, func(in []*graphNode) *graphNode { return niclLoss(in[0], in[1], in[2], in[3], tau) },
		f32(z, 2*N, d), f32(bt.posW, 2*N, 2*N), f32(bt.cand, 2*N, 2*N), f32(bt.anchorW, 2*N))
	if !near(got, want, 1e-5) {
		t.Errorf("NICL %v, float64 %v", got, want)
	}
	// Spot checks of the masks: anchor text of slot 1 (item 1): positives
	// image slots 1 and 2; text slot 2 (item 2 = next) excluded; text slot
	// 4 (item 2 in user 1) excluded; text slot 5 (item 4) a negative.
	A := 2 * N
	row := bt.posW[1*A : 2*A]
	if row[N+1] != 0.5 || row[N+2] != 0.5 || bt.cand[1*A+2] != 0 || bt.cand[1*A+4] != 0 || bt.cand[1*A+5] != 1 || bt.cand[1*A+1] != 0 {
		t.Errorf("anchor 1: posW %v cand %v", row, bt.cand[A:2*A])
	}
}

func TestNIDNoiseAndLoss(t *testing.T) {
	seqs := [][]int32{{1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 4}, {5, 6, 7}}
	const L, numItems = 8, 12
	bt := buildBatch(seqs, 4, L, make([]float32, numItems+1), 1, train.NewRNG(7, 8), 0.3, numItems)
	S := L + 1
	// Replaced positions: round(0.3·n) of each user's n inputs, at least 1,
	// items changed exactly there.
	for b, want := range []int{2, 1, 1, 0} {
		got := 0
		for j := range L {
			orig := bt.rows[bt.slot[b*S+j]]
			now := bt.rows[bt.noised[b*L+j]]
			if bt.noiseY[b*L+j] == 1 {
				got++
				if now == orig || now < 1 || now > numItems || orig == 0 {
					t.Errorf("user %d position %d: %d replaced by %d", b, j, orig, now)
				}
			} else if now != orig {
				t.Errorf("user %d position %d: clean item %d changed to %d", b, j, orig, now)
			}
		}
		if got != want {
			t.Errorf("user %d: %d noised positions, want %d", b, got, want)
		}
	}
	if !slices.Equal(bt.userW, []float32{1, 1, 1, 0}) {
		t.Errorf("userW %v", bt.userW)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	z := randVecs(rng, 4*L, 1)
	var total, n float64
	for k, zk := range z {
		if bt.rowW[k] == 0 {
			continue
		}
		p := 1 / (1 + math.Exp(-float64(zk)))
		y := float64(bt.noiseY[k])
		total += -(y*math.Log(p) + (1-y)*math.Log(1-p))
		n++
	}
	got := runLoss(t, func(in []*graphNode) *graphNode { return nidLoss(in[0], in[1], in[2]) },
		f32(z, 4*L), f32(bt.noiseY, 4*L), f32(bt.rowW, 4*L))
	if !near(got, total/n, 1e-5) {
		t.Errorf("NID %v, float64 %v", got, total/n)
	}
}

func TestRCL(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const B, d, tau = 4, 5, 0.1
	a, b := randVecs(rng, B, d), randVecs(rng, B, d)
	w := []float32{1, 1, 0, 1} // user 2 is batch padding
	v := func(x []float32, i int) []float32 { return x[i*d : (i+1)*d] }
	var ab, ba float64
	var n float64
	for i := range B {
		if w[i] == 0 {
			continue
		}
		var za, zb float64
		for j := range B {
			if w[j] == 0 {
				continue
			}
			za += math.Exp(cos(v(a, i), v(b, j)) / tau)
			zb += math.Exp(cos(v(b, i), v(a, j)) / tau)
		}
		pos := cos(v(a, i), v(b, i)) / tau
		ab += math.Log(za) - pos
		ba += math.Log(zb) - pos
		n++
	}
	want := (ab/n + ba/n) / 2
	got := runLoss(t, func(in []*graphNode) *graphNode { return rclLoss(in[0], in[1], in[2], tau) },
		f32(a, B, d), f32(b, B, d), f32(w, B))
	if !near(got, want, 1e-5) {
		t.Errorf("RCL %v, float64 %v", got, want)
	}
}

// cos64 is the cosine of F.normalize'd vectors: 0 when either is zero.
func cos64(a, b []float64) float64 {
	if dot(a, a) == 0 || dot(b, b) == 0 {
		return 0
	}
	return dot(a, b) / math.Sqrt(dot(a, a)*dot(b, b))
}

// niclRef is NICL from its definition: items are the slots' items (0 =
// padding, S slots per user), vec(mod, s) the text (0) or image (1) vector
// of slot s.
func niclRef(items []int32, S int, vec func(mod, s int) []float64, tau float64) float64 {
	N := len(items)
	var total float64
	var anchors int
	type pv struct{ mod, s int }
	for mod := range 2 {
		for s := range N {
			if items[s] == 0 {
				continue
			}
			a := vec(mod, s)
			pos := []pv{{1 - mod, s}}
			ids := []int32{items[s]}
			if s%S != S-1 && items[s+1] != 0 {
				pos = append(pos, pv{1 - mod, s + 1})
				ids = append(ids, items[s+1])
			}
			var z float64
			for m2 := range 2 {
				for s2 := range N {
					isPos := slices.Contains(pos, pv{m2, s2})
					if isPos || (items[s2] != 0 && !slices.Contains(ids, items[s2]) && !(m2 == mod && s2 == s)) {
						z += math.Exp(cos64(a, vec(m2, s2)) / tau)
					}
				}
			}
			var l float64
			for _, p := range pos {
				l += -(cos64(a, vec(p.mod, p.s))/tau - math.Log(z))
			}
			total += l / float64(len(pos))
			anchors++
		}
	}
	return total / float64(anchors)
}

// pretrainRef is the float64 pre-training loss of a batch built by
// buildBatch (its noise draws and slot layout are read from bt; the rest
// is computed from the sequences): next-item, NICL, NID, RCL.
func (r *ref) pretrainRef(seqs [][]int32, bt *batch, pop map[int32]float64) (rec, nicl, nid, rcl float64) {
	c := r.c
	B, L, S := bt.B, bt.L, bt.S
	rec = r.nextItemLoss(seqs, B, pop)
	// NICL on the pooled projected vectors of every slot.
	items := make([]int32, B*S) // rows, 0 = padding
	for b, s := range seqs {
		for k, it := range s {
			items[b*S+S-len(s)+k] = it + 1
		}
	}
	pooled := map[int32][2][]float64{}
	for _, it := range items {
		if it > 0 {
			pt, pv := r.pooled(int(it - 1))
			pooled[it] = [2][]float64{pt, pv}
		}
	}
	zero := make([]float64, c.Dim)
	nicl = niclRef(items, S, func(mod, s int) []float64 {
		if items[s] == 0 {
			return zero
		}
		return pooled[items[s]][mod]
	}, c.Temperature)
	// NID and RCL: clean and noised inputs through the user encoder.
	var bce float64
	var n int
	var lastC, lastN [][]float64
	for b, s := range seqs {
		in := s[:len(s)-1]
		xs, xn := make([][]float64, len(in)), make([][]float64, len(in))
		off := L - len(in)
		for k, it := range in {
			xs[k] = r.item(int(it))
			xn[k] = r.item(int(bt.rows[bt.noised[b*L+off+k]]) - 1)
		}
		hc, hn := r.user(xs), r.user(xn)
		for k := range in {
			z := r.lin(hn[k], "nid.w", "nid.b")[0]
			y := float64(bt.noiseY[b*L+off+k])
			p := 1 / (1 + math.Exp(-z))
			bce += -(y*math.Log(p) + (1-y)*math.Log(1-p))
			n++
		}
		lastC, lastN = append(lastC, hc[len(in)-1]), append(lastN, hn[len(in)-1])
	}
	nid = bce / float64(n)
	var ab, ba float64
	for i := range lastC {
		var za, zb float64
		for j := range lastC {
			za += math.Exp(cos64(lastC[i], lastN[j]) / c.Temperature)
			zb += math.Exp(cos64(lastN[i], lastC[j]) / c.Temperature)
		}
		p := cos64(lastC[i], lastN[i]) / c.Temperature
		ab += math.Log(za) - p
		ba += math.Log(zb) - p
	}
	rcl = (ab + ba) / 2 / float64(len(lastC))
	return rec, nicl, nid, rcl
}

// TestPretrainStep compares a pre-training step's four losses with the
// float64 reference (clean and noised sequences, pooled vectors gathered
// per slot, last positions) and the total's gradient with finite
// differences.
func TestPretrainStep(t *testing.T) {
	c := tinyConfig(TowerModal)
	c.Stage = StagePretrain
	c.NoiseRate = 0.4
	m := tinyModel(t, c)
	bt := buildBatch(m.seqs, 4, 3, m.logPop, 4, train.NewRNG(5, 6), c.NoiseRate, 6)
	if !slices.Contains(bt.noiseY, 1) {
		t.Fatal("no noised position")
	}
	losses, err := m.step(bt, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seqs := [][]int32{{1, 2, 3, 4}, {4, 1}, {2, 5, 5}}
	pop := popularity(seqs)
	r := newRef(m)
	rec, nicl, nid, rcl := r.pretrainRef(seqs, bt, pop)
	for name, want := range map[string]float64{"next_item": rec, "nicl": nicl, "nid": nid, "rcl": rcl,
		"loss": rec + c.NICLWeight*nicl + c.NIDWeight*nid + c.RCLWeight*rcl} {
		if got := losses[name]; !near(got, want, 2e-5) {
			t.Errorf("%s %v, float64 reference %v", name, got, want)
		}
	}
	total := func() float64 {
		rec, nicl, nid, rcl := r.pretrainRef(seqs, bt, pop)
		return rec + c.NICLWeight*nicl + c.NIDWeight*nid + c.RCLWeight*rcl
	}
	const h = 1e-5
	bad := 0
	for k, s := range m.lay.specs {
		p := r.p[s.name]
		g := m.grad[m.offs[k]:m.offs[k+1]]
		for j := range p {
			o := p[j]
			p[j] = o + h
			lp := total()
			p[j] = o - h
			lm := total()
			p[j] = o
			fd := (lp - lm) / (2 * h)
			if math.Abs(float64(g[j])-fd) > 2e-3*(1+math.Abs(fd)) {
				if bad++; bad < 10 {
					t.Errorf("%s[%d]: gradient %v, finite difference %v", s.name, j, g[j], fd)
				}
			}
		}
	}
}

// TestScoringMatchesReference checks the evaluation path: every item's
// embedding (computed in eval_batch chunks) and the user vector of a
// history (its last max_seq_len items, left-padded, output at the last
// position) against the float64 reference.
func TestScoringMatchesReference(t *testing.T) {
	for _, tower := range []string{TowerModal, TowerID} {
		t.Run(tower, func(t *testing.T) {
			m := tinyModel(t, tinyConfig(tower))
			r := newRef(m)
			items, err := m.ItemTable(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				for k, want := range r.item(i) {
					if got := float64(items.Row(i + 1)[k]); !near(got, want, 1e-4) {
						t.Fatalf("item %d [%d]: %v, float64 %v", i, k, got, want)
					}
				}
			}
			hist := [][]int32{{0, 1, 2, 3, 4}, {4, 1}, {}}
			users, err := m.Encode(context.Background(), items, hist)
			if err != nil {
				t.Fatal(err)
			}
			for u, h := range hist {
				if len(h) == 0 {
					if slices.ContainsFunc(users.Row(u), func(v float32) bool { return v != 0 }) {
						t.Errorf("user %d with an empty history: %v, want zeros", u, users.Row(u))
					}
					continue
				}
				h = h[max(0, len(h)-3):]
				xs := make([][]float64, len(h))
				for k, it := range h {
					xs[k] = r.item(int(it))
				}
				out := r.user(xs)
				for k, want := range out[len(out)-1] {
					if got := float64(users.Row(u)[k]); !near(got, want, 1e-4) {
						t.Fatalf("user %d [%d]: %v, float64 %v", u, k, got, want)
					}
				}
			}
		})
	}
}

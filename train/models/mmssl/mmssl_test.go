package mmssl

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// tinyData returns a random training graph of nu users and ni items (every
// user has 1–4 items).
func tinyData(t *testing.T, nu, ni int, seed uint64) *train.Data {
	t.Helper()
	rng := train.NewRNG(seed, 9)
	var us, is []int32
	for u := range nu {
		n := 1 + rng.IntN(4)
		for _, i := range rng.Perm(ni)[:n] {
			us, is = append(us, int32(u)), append(is, int32(i))
		}
	}
	r, err := sparse.Bipartite(nu, ni, us, is)
	if err != nil {
		t.Fatal(err)
	}
	s := &store.Split{}
	for k := range us {
		s.AppendRow(us[k], is[k], 1, int64(k), store.PartTrain)
	}
	return &train.Data{NumUsers: nu, NumItems: ni, Train: r, TrainRows: len(us), Split: s}
}

func tinyModel(t *testing.T, d *train.Data, cfg *Config, dims ...int) *Model {
	t.Helper()
	rng := train.NewRNG(11, 8)
	var feats []sparse.Mat
	var names []string
	for k, dm := range dims {
		x := sparse.NewMat(d.NumItems, dm)
		sparse.InitNormal(x, 1, rng.Rand)
		feats = append(feats, x)
		names = append(names, string(rune('a'+k)))
	}
	env := &train.Env{Data: d, Config: train.DefaultConfig(cfg), InitRNG: train.NewRNG(1, train.StreamInit), Workers: 2}
	m, err := build(env, cfg, feats, names)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ---- an independent float64 reference of MMSSL's faithful step ----

type dense struct {
	r, c int
	v    []float64
}

func newDense(r, c int) dense           { return dense{r, c, make([]float64, r*c)} }
func (a dense) at(i, j int) float64     { return a.v[i*a.c+j] }
func (a dense) set(i, j int, x float64) { a.v[i*a.c+j] = x }
func (a dense) row(i int) []float64     { return a.v[i*a.c : (i+1)*a.c] }
func fromMat(m sparse.Mat) dense        { return dense{m.Rows, m.Cols, f64(m.Data)} }

func mul(a, b dense) dense {
	o := newDense(a.r, b.c)
	for i := range a.r {
		for k := range a.c {
			x := a.at(i, k)
			for j := range b.c {
				o.v[i*o.c+j] += x * b.at(k, j)
			}
		}
	}
	return o
}

func normRows(a dense) dense {
	o := newDense(a.r, a.c)
	for i := range a.r {
		n := 0.0
		for _, x := range a.row(i) {
			n += x * x
		}
		n = max(math.Sqrt(n), 1e-12)
		for j, x := range a.row(i) {
			o.set(i, j, x/n)
		}
	}
	return o
}

func softmaxRows64(a dense) dense {
	o := newDense(a.r, a.c)
	for i := range a.r {
		mx := math.Inf(-1)
		for _, x := range a.row(i) {
			mx = max(mx, x)
		}
		s := 0.0
		for _, x := range a.row(i) {
			s += math.Exp(x - mx)
		}
		for j, x := range a.row(i) {
			o.set(i, j, math.Exp(x-mx)/s)
		}
	}
	return o
}

// refParams are the recommender's parameters in float64.
type refParams struct {
	eu, ei dense
	w      []dense
	b      [][]float64
	wcat   dense
}

func (p *refParams) all() [][]float64 {
	out := [][]float64{p.eu.v, p.ei.v}
	for k := range p.w {
		out = append(out, p.w[k].v, p.b[k])
	}
	return append(out, p.wcat.v)
}

func refParamsOf(m *Model) *refParams {
	p := &refParams{eu: fromMat(m.eu), ei: fromMat(m.ei), wcat: fromMat(m.wcat)}
	for k := range m.nm {
		p.w = append(p.w, fromMat(m.wm[k]))
		p.b = append(p.b, f64(m.bm[k]))
	}
	return p
}

// refOut is the reference forward's output.
type refOut struct {
	ustar, istar dense
	um, im, ut   []dense
}

// refGraphs returns the dense G_ui and G_iu of R: half-normalised (rows
// scaled by (degree + 1e-8)^-1/2) or, with graph_norm sym, scaled on both
// sides by the user's and the item's degree.
func refGraphs(d *train.Data, norm string) (gui, giu dense) {
	r := d.Train.Dense()
	gui, giu = newDense(d.NumUsers, d.NumItems), newDense(d.NumItems, d.NumUsers)
	du, di := make([]float64, d.NumUsers), make([]float64, d.NumItems)
	for u := range d.NumUsers {
		for i := range d.NumItems {
			du[u] += float64(r.Data[u*d.NumItems+i])
			di[i] += float64(r.Data[u*d.NumItems+i])
		}
	}
	for u := range d.NumUsers {
		for i := range d.NumItems {
			v := float64(r.Data[u*d.NumItems+i])
			switch norm {
			case GraphNormSym:
				v /= math.Sqrt(du[u]+1e-8) * math.Sqrt(di[i]+1e-8)
				gui.set(u, i, v)
				giu.set(i, u, v)
			default:
				gui.set(u, i, v/math.Sqrt(du[u]+1e-8))
				giu.set(i, u, v/math.Sqrt(di[i]+1e-8))
			}
		}
	}
	return gui, giu
}

// refForward is MMSSL's forward (§2.5) with the initial generated graphs
// (= G_ui, G_iu) and the given feature dropout masks.
func refForward(cfg *Config, d *train.Data, feats []sparse.Mat, p *refParams, masks []dense) refOut {
	gui, giu := refGraphs(d, cfg.GraphNorm)
	var o refOut
	nm := len(feats)
	dd := cfg.EmbedSize
	wsum := newDense(dd, dd)
	for h := range cfg.HeadNum {
		for k := range dd * dd {
			wsum.v[k] += p.wcat.v[h*dd*dd+k]
		}
	}
	zu, zi := newDense(d.NumUsers, dd), newDense(d.NumItems, dd)
	for k := range nm {
		f := mul(fromMat(feats[k]), p.w[k])
		for i := range f.r {
			for j := range dd {
				f.set(i, j, (f.at(i, j)+p.b[k][j])*masks[k].at(i, j))
			}
		}
		um := mul(gui, f)
		o.um = append(o.um, um)
		o.im = append(o.im, mul(giu, um))
		ut := mul(gui, p.ei)
		it := mul(giu, p.eu)
		o.ut = append(o.ut, ut)
		a, b := mul(ut, wsum), mul(it, wsum)
		for j := range zu.v {
			zu.v[j] += a.v[j] / float64(nm)
		}
		for j := range zi.v {
			zi.v[j] += b.v[j] / float64(nm)
		}
	}
	nzu, nzi := normRows(zu), normRows(zi)
	e0u, e0i := newDense(zu.r, dd), newDense(zi.r, dd)
	for j := range e0u.v {
		e0u.v[j] = p.eu.v[j] + cfg.IDCatRate*nzu.v[j]
	}
	for j := range e0i.v {
		e0i.v[j] = p.ei.v[j] + cfg.IDCatRate*nzi.v[j]
	}
	su, si := slices.Clone(e0u.v), slices.Clone(e0i.v)
	prevU, prevI := e0u, e0i
	for l := range cfg.CFLayers {
		u := mul(gui, prevI)
		var i dense
		if cfg.CFProp == PropParallel {
			i = mul(giu, prevU) // LightGCN: both sides from layer l-1
		}
		if l == cfg.CFLayers-1 && cfg.CFSoftmax {
			u = softmaxRows64(u)
		}
		if cfg.CFProp != PropParallel {
			i = mul(giu, u) // the reference: items from the new user layer
		}
		if l == cfg.CFLayers-1 && cfg.CFSoftmax {
			i = softmaxRows64(i)
		}
		for j := range su {
			su[j] += u.v[j]
		}
		for j := range si {
			si[j] += i.v[j]
		}
		prevU, prevI = u, i
	}
	o.ustar, o.istar = newDense(zu.r, dd), newDense(zi.r, dd)
	for j := range su {
		o.ustar.v[j] = su[j] / float64(cfg.CFLayers+1)
	}
	for j := range si {
		o.istar.v[j] = si[j] / float64(cfg.CFLayers+1)
	}
	for k := range nm {
		nu, ni := normRows(o.um[k]), normRows(o.im[k])
		for j := range nu.v {
			o.ustar.v[j] += cfg.ModelCatRate * nu.v[j]
		}
		for j := range ni.v {
			o.istar.v[j] += cfg.ModelCatRate * ni.v[j]
		}
	}
	return o
}

// refUSim is u_sim(users, P, Q): normalise((P_u·Qᵀ) ⊙ (1 − R_u)).
func refUSim(d *train.Data, users []int32, p, q dense) dense {
	r := d.Train.Dense()
	o := newDense(len(users), q.r)
	for b, u := range users {
		for i := range q.r {
			if r.Data[int(u)*d.NumItems+i] != 0 {
				continue
			}
			s := 0.0
			for k := range p.c {
				s += p.at(int(u), k) * q.at(i, k)
			}
			o.set(b, i, s)
		}
	}
	return normRows(o)
}

func gatherRows(a dense, idx []int32) dense {
	o := newDense(len(idx), a.c)
	for b, r := range idx {
		copy(o.row(b), a.row(int(r)))
	}
	return o
}

// refInfoNCE is batched_contrastive_loss(z1, z2).
func refInfoNCE(z1, z2 dense, tau float64) float64 {
	a, b := normRows(z1), normRows(z2)
	n := z1.r
	loss := 0.0
	for i := range n {
		s, pos := 0.0, 0.0
		for j := range n {
			ra, rb := 0.0, 0.0
			for k := range z1.c {
				ra += a.at(i, k) * a.at(j, k)
				rb += a.at(i, k) * b.at(j, k)
			}
			s += math.Exp(ra/tau) + math.Exp(rb/tau)
			if j == i {
				s -= math.Exp(ra / tau)
				pos = math.Exp(rb / tau)
			}
		}
		loss += -math.Log(pos/s + 1e-8)
	}
	return loss / float64(n)
}

func stack(rows ...dense) []float64 {
	var out []float64
	for _, r := range rows {
		out = append(out, r.v...)
	}
	return out
}

// draws records a step's random draws through the model's test hooks.
type draws struct {
	fwdMasks  [][]dense // per recommender forward: feature masks
	critMasks [][2][]float64
	tb, soft  []float32
	alpha     []float32
}

func record(m *Model) *draws {
	dr := &draws{}
	m.hooks = &hooks{
		forward: func() {
			var ms []dense
			for _, mk := range m.fw.mask {
				ms = append(ms, fromMat(mk))
			}
			dr.fwdMasks = append(dr.fwdMasks, ms)
		},
		real:  func(tb, soft []float32) { dr.tb, dr.soft = slices.Clone(tb), slices.Clone(soft) },
		alpha: func(a []float32) { dr.alpha = slices.Clone(a) },
	}
	m.critic.onForward = func(p *pass) {
		dr.critMasks = append(dr.critMasks, [2][]float64{f64(p.m1), f64(p.m2)})
	}
	return dr
}

// critState snapshots the critic's parameters as a refCritic (masks set
// later).
func critState(c *critic) *refCritic { return newRefCritic(c) }

func stepConfig() *Config {
	cfg := DefaultConfig()
	cfg.EmbedSize, cfg.BatchSize, cfg.HeadNum = 4, 4, 2
	// Weights large enough for every term to show in the gradients.
	cfg.Reg, cfg.FeatRegDecay, cfg.CLRate, cfg.GRate = 0.01, 0.05, 0.5, 0.05
	return cfg
}

// TestFaithfulStep runs one faithful training step on a tiny graph and
// checks it against an independent float64 computation: the critic's
// gradient (WGAN loss on dense fake/real/interpolated rows built from the
// reference forward, gradient penalty with its second-order term) and the
// recommender's gradient (BPR, L2 terms, InfoNCE, adversarial term) by
// central differences of the reference losses, the loss values, and the
// AdamW / Adam updates of the parameters. The second case swaps the
// reference's graphs and last layer (quirk Q4) for LightGCN's
// (graph_norm sym, cf_softmax false).
func TestFaithfulStep(t *testing.T) {
	for _, c := range []struct {
		name    string
		norm    string
		softmax bool
		prop    string
	}{
		{"reference", GraphNormHalf, true, PropSequential},
		{"sym-nosoftmax", GraphNormSym, false, PropSequential},
		{"parallel", GraphNormHalf, true, PropParallel},
		{"sym-nosoftmax-parallel", GraphNormSym, false, PropParallel},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := stepConfig()
			cfg.GraphNorm, cfg.CFSoftmax, cfg.CFProp = c.norm, c.softmax, c.prop
			testFaithfulStep(t, cfg)
		})
	}
}

func testFaithfulStep(t *testing.T, cfg *Config) {
	d := tinyData(t, 7, 16, 4)
	m := tinyModel(t, d, cfg, 3, 5)
	dr := record(m)
	p0 := refParamsOf(m)
	c0 := critState(m.critic)
	before := m.paramsCopy()
	critBefore := m.critic.paramsCopy()
	losses, err := m.TrainBatch(context.Background(), train.NewRNG(5, train.StreamTrain))
	if err != nil {
		t.Fatal(err)
	}
	if len(dr.fwdMasks) != 2 || len(dr.critMasks) != 4 {
		t.Fatalf("%d forwards and %d critic passes, want 2 and 4", len(dr.fwdMasks), len(dr.critMasks))
	}
	users, pos, neg := m.buf.users, m.buf.pos, m.buf.neg
	nm, nb := m.nm, len(users)
	n := nm * nb

	// Critic step: L_D = −mean D(real) + mean D(fake) + gp_rate·GP.
	o := refForward(cfg, d, m.feats, p0, dr.fwdMasks[0])
	var fakeRows []dense
	for k := range nm {
		fakeRows = append(fakeRows, refUSim(d, users, o.um[k], o.im[k]))
	}
	fake := stack(fakeRows...)
	us := refUSim(d, users, o.ustar, o.istar)
	r := newDense(nb, m.ni)
	for b := range nb {
		for j := m.bi.ptr[b]; j < m.bi.ptr[b+1]; j++ {
			r.set(b, int(m.bi.item[j]), float64(dr.soft[j]))
		}
		for i := range m.ni {
			r.set(b, i, r.at(b, i)+cfg.UIPreScale*us.at(b, i))
		}
	}
	r = normRows(r)
	var realRows []dense
	for range nm {
		realRows = append(realRows, r)
	}
	real := stack(realRows...)
	interp := make([]float64, len(real))
	for row := range n {
		a := float64(dr.alpha[row])
		for i := range m.ni {
			k := row*m.ni + i
			interp[k] = a*real[k] + (1-a)*fake[k]
		}
	}
	crit := func(x []float64, pass int, c *refCritic) []float64 {
		c.m1, c.m2 = dr.critMasks[pass][0], dr.critMasks[pass][1]
		y, _ := c.run(x, n, nil)
		return y
	}
	mean := func(y []float64) float64 {
		s := 0.0
		for _, v := range y {
			s += v
		}
		return s / float64(len(y))
	}
	lossD := func() float64 {
		l := mean(crit(fake, 0, c0)) - mean(crit(real, 1, c0))
		c0.m1, c0.m2 = dr.critMasks[2][0], dr.critMasks[2][1]
		return l + cfg.GPRate*c0.gp(interp, n, cfg.GPLambda)
	}
	if got, want := losses["d_loss"], lossD(); math.Abs(got-want) > 1e-3*max(1, math.Abs(want)) {
		t.Errorf("critic loss %v, want %v", got, want)
	}
	compareFD(t, "critic step", c0, m.critic.gradsPyTorch(), lossD, 1e-2)
	// Adam(0.5, 0.9) first step: p − lr·g/(|g| + eps).
	checkAdamFirst(t, "critic", critBefore, m.critic.paramsCopy(), m.critic.grads, cfg.DLR, 0)

	// Generator step with the updated critic.
	c1 := critState(m.critic)
	lossG := func() float64 {
		o := refForward(cfg, d, m.feats, p0, dr.fwdMasks[1])
		bu, bp, bn := gatherRows(o.ustar, users), gatherRows(o.istar, pos), gatherRows(o.istar, neg)
		bpr, reg := 0.0, 0.0
		for b := range nb {
			x := 0.0
			for k := range bu.c {
				x += bu.at(b, k) * (bp.at(b, k) - bn.at(b, k))
				reg += bu.at(b, k)*bu.at(b, k) + bp.at(b, k)*bp.at(b, k) + bn.at(b, k)*bn.at(b, k)
			}
			bpr += -math.Log(1 / (1 + math.Exp(-x)))
		}
		bpr /= float64(nb)
		reg = cfg.Reg * 0.5 * reg / float64(nb)
		feat, cl := 0.0, 0.0
		var rows []dense
		for k := range nm {
			for _, v := range stack(o.um[k], o.im[k]) {
				feat += v * v
			}
			cl += refInfoNCE(gatherRows(o.ut[k], users), bu, cfg.Tau)
			rows = append(rows, refUSim(d, users, o.um[k], o.im[k]))
		}
		feat *= 0.5 * cfg.FeatRegDecay / float64(m.ni)
		adv := -mean(crit(stack(rows...), 3, c1))
		return bpr + reg + feat + cfg.CLRate*cl + cfg.GRate*adv
	}
	if got, want := losses["loss"], lossG(); math.Abs(got-want) > 1e-4*max(1, math.Abs(want)) {
		t.Errorf("generator loss %v, want %v", got, want)
	}
	ref := p0.all()
	analytic := make([][]float64, len(m.grads))
	for k, g := range m.grads {
		analytic[k] = f64(g)
	}
	compareParamsFD(t, "generator step", ref, nil, analytic, lossG, 1e-2)
	checkAdamFirst(t, "recommender", before, m.paramsCopy(), m.grads, cfg.LR, cfg.WeightDecay)
}

// compareParamsFD compares analytic gradients with central differences
// of f over the float64 parameter slices ps (named by names, or by index
// when names is nil). Errors are relative to the larger of the element's
// and a tenth of the tensor's largest gradient (or 1e-4 of the largest of
// all): float32 round-off is absolute at the scale of the tensor (the
// biases before a BatchNorm have a zero gradient).
func compareParamsFD(t *testing.T, name string, ps [][]float64, names []string, analytic [][]float64, f func() float64, tol float64) {
	t.Helper()
	const eps = 1e-6
	worst, where := 0.0, ""
	global := 0.0
	nums := make([][]float64, len(ps))
	for pi, p := range ps {
		nums[pi] = make([]float64, len(p))
		for k := range p {
			old := p[k]
			p[k] = old + eps
			lp := f()
			p[k] = old - eps
			lm := f()
			p[k] = old
			nums[pi][k] = (lp - lm) / (2 * eps)
			global = max(global, math.Abs(nums[pi][k]))
		}
	}
	for pi, num := range nums {
		scale := 0.0
		for _, v := range num {
			scale = max(scale, math.Abs(v))
		}
		for k := range num {
			if e := math.Abs(num[k]-analytic[pi][k]) / max(1e-4*global, 0.1*scale, math.Abs(num[k])); e > worst {
				tensor := fmt.Sprint("tensor ", pi)
				if names != nil {
					tensor = names[pi]
				}
				worst, where = e, fmt.Sprintf("%s[%d]: %.6g vs %.6g", tensor, k, analytic[pi][k], num[k])
			}
		}
	}
	t.Logf("%s: worst relative error %.3g (%s)", name, worst, where)
	if worst > tol {
		t.Errorf("%s: analytic gradient differs from central differences by %.3g (relative, worst in %s)", name, worst, where)
	}
}

// checkAdamFirst checks a first (Adam)W step: p·(1 − lr·wd) − lr·g/(|g|+eps)
// (the bias-corrected moments of step 1 are g and g²).
func checkAdamFirst(t *testing.T, name string, before, after, grads [][]float32, lr, wd float64) {
	t.Helper()
	for k := range before {
		for j, p := range before[k] {
			g := float64(grads[k][j])
			want := float64(p)*(1-lr*wd) - lr*g/(math.Abs(g)+1e-8)
			if got := float64(after[k][j]); math.Abs(got-want) > 1e-6*max(1, math.Abs(want)) {
				t.Fatalf("%s tensor %d element %d: %v after the step, want %v", name, k, j, got, want)
			}
		}
	}
}

func (m *Model) paramsCopy() [][]float32 {
	var out [][]float32
	for _, p := range m.params() {
		out = append(out, slices.Clone(p.F32))
	}
	return out
}

func (c *critic) paramsCopy() [][]float32 {
	var out [][]float32
	for _, p := range c.params() {
		out = append(out, slices.Clone(p.F32))
	}
	return out
}

// TestResume checks exact resume: a run interrupted after 3 batches,
// checkpointed through train's checkpoint file, restored into a freshly
// built model and continued ends bit for bit where an uninterrupted run
// does, across an epoch boundary and with generated graphs that are
// rebuilt (k = 2, T = 2).
func TestResume(t *testing.T) {
	for _, mode := range []string{Faithful, Intended} {
		t.Run(mode, func(t *testing.T) { testResume(t, mode, func(*Config) {}) })
		// The ablations together (no critic in the checkpoint).
		t.Run(mode+"/ablations", func(t *testing.T) {
			testResume(t, mode, func(c *Config) { c.NoAdversarial, c.NoModality, c.CLRate = true, true, 0 })
		})
	}
}

func testResume(t *testing.T, mode string, mut func(*Config)) {
	d := tinyData(t, 9, 16, 6)
	cfg := stepConfig()
	cfg.MTopKRate, cfg.T, cfg.TopK, cfg.Mode = 2.0/16, 2, 3, mode
	mut(cfg)
	ctx := context.Background()
	total, cut := 8, 3
	a := tinyModel(t, d, cfg, 3, 2)
	if (a.k != 2 && mode == Faithful) || a.BatchesPerEpoch() >= total {
		t.Fatalf("k = %d, %d batches per epoch", a.k, a.BatchesPerEpoch())
	}
	rngA := train.NewRNG(9, train.StreamTrain)
	for range total {
		if _, err := a.TrainBatch(ctx, rngA); err != nil {
			t.Fatal(err)
		}
	}
	b := tinyModel(t, d, cfg, 3, 2)
	rngB := train.NewRNG(9, train.StreamTrain)
	for range cut {
		if _, err := b.TrainBatch(ctx, rngB); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "last.ckpt")
	rs, err := rngB.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := train.WriteCheckpoint(path, train.CheckpointHeader{Model: "mmssl", State: train.TrainState{RNG: rs}}, b.State()); err != nil {
		t.Fatal(err)
	}
	ck, err := train.ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	c := tinyModel(t, d, cfg, 3, 2)
	if err := ck.LoadInto(c.State()); err != nil {
		t.Fatal(err)
	}
	rngC := train.NewRNG(1, train.StreamTrain)
	if err := rngC.Restore(ck.Header.State.RNG); err != nil {
		t.Fatal(err)
	}
	for range total - cut {
		if _, err := c.TrainBatch(ctx, rngC); err != nil {
			t.Fatal(err)
		}
	}
	built := false
	for k, ta := range a.State() {
		tc := c.State()[k]
		if !slices.Equal(ta.F32, tc.F32) || !slices.Equal(ta.I64, tc.I64) {
			t.Errorf("tensor %s differs after resume", ta.Name)
		}
		if strings.HasSuffix(ta.Name, ".npairs") && ta.I64[0] > 0 {
			built = true
		}
		if strings.HasSuffix(ta.Name, ".rows") && ta.I64[0] >= 0 {
			built = true
		}
	}
	if !built {
		t.Error("no generated graph was rebuilt from collected pairs")
	}
	// The scores agree too.
	sa, err := a.Scorer(ctx, store.PartValid)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.Scorer(ctx, store.PartValid)
	if err != nil {
		t.Fatal(err)
	}
	x, y := make([]float32, 2*d.NumItems), make([]float32, 2*d.NumItems)
	if err := sa([]int32{0, 5}, x); err != nil {
		t.Fatal(err)
	}
	if err := sc([]int32{0, 5}, y); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, y) {
		t.Error("scores differ after resume")
	}
}

// TestCollapse checks quirk Q1 with the reference's schedule (T = 1, k =
// int(16·1e-4) = 0): batches 0 and 1 use the initial graphs, batch 1
// rebuilds them from the (empty) collected pairs, and from batch 2 on Ũ_m
// = Ĩ_m = 0, so the fused branch vanishes and the contrastive term is the
// constant log(2B−1) per modality.
func TestCollapse(t *testing.T) {
	d := tinyData(t, 9, 16, 6)
	cfg := stepConfig()
	m := tinyModel(t, d, cfg, 3, 2)
	rng := train.NewRNG(2, train.StreamTrain)
	want := 2 * math.Log(2*float64(cfg.BatchSize)-1)
	for b := range 4 {
		l, err := m.TrainBatch(context.Background(), rng)
		if err != nil {
			t.Fatal(err)
		}
		collapsed := math.Abs(l["cl"]-want) < 1e-6
		if collapsed != (b >= 2) {
			t.Errorf("batch %d: contrastive term %v (collapsed constant %v)", b, l["cl"], want)
		}
		if b >= 2 {
			for k := range m.nm {
				for _, v := range append(slices.Clone(m.fw.ut[k].Data), m.fw.it[k].Data...) {
					if v != 0 {
						t.Fatalf("batch %d: generated-graph embedding not zero", b)
					}
				}
			}
			// The fused branch is 0, so E0 = E.
			for _, v := range append(slices.Clone(m.fw.zu.Data), m.fw.nzi.Data...) {
				if v != 0 {
					t.Fatalf("batch %d: fused modality embedding not zero", b)
				}
			}
		}
	}
	if g := m.graphs[0]; g.built != 1 || g.npairs != 0 {
		t.Errorf("graph state built=%d npairs=%d, want 1 and 0", g.built, g.npairs)
	}
}

// TestGraphNorms checks both normalisations on a hand-computed graph:
// R = [[1 1 0] [0 1 1]] plus a repeated pair (user 0, item 0) counted
// twice; degrees du = (3, 2), di = (2, 2, 1).
func TestGraphNorms(t *testing.T) {
	r, err := sparse.NewCSR(2, 3, []int32{0, 0, 0, 1, 1}, []int32{0, 0, 1, 1, 2}, []float32{1, 1, 1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	s2, s3 := math.Sqrt(2), math.Sqrt(3)
	for _, c := range []struct {
		name   string
		norm   func(*sparse.CSR) (*sparse.CSR, *sparse.CSR)
		ui, iu [][]float64
	}{
		{"half", halfNorm,
			[][]float64{{2 / s3, 1 / s3, 0}, {0, 1 / s2, 1 / s2}},
			[][]float64{{2 / s2, 0}, {1 / s2, 1 / s2}, {0, 1}}},
		{"sym", symNorm,
			[][]float64{{2 / (s3 * s2), 1 / (s3 * s2), 0}, {0, 1 / (s2 * s2), 1 / s2}},
			[][]float64{{2 / (s3 * s2), 0}, {1 / (s3 * s2), 1 / (s2 * s2)}, {0, 1 / s2}}},
	} {
		ui, iu := c.norm(r)
		for _, g := range []struct {
			name string
			a    *sparse.CSR
			want [][]float64
		}{{"ui", ui, c.ui}, {"iu", iu, c.iu}} {
			got := g.a.Dense()
			for row, w := range g.want {
				for col, v := range w {
					if x := float64(got.Data[row*got.Cols+col]); math.Abs(x-v) > 1e-6 {
						t.Errorf("%s %s[%d,%d] = %v, want %v", c.name, g.name, row, col, x, v)
					}
				}
			}
		}
	}
}

// TestEmbedInit checks the ID embeddings' init: Xavier-uniform within
// ±√(6/(d + rows)) by default, N(0, std²) with embed_init_std.
func TestEmbedInit(t *testing.T) {
	d := tinyData(t, 300, 200, 4)
	for _, std := range []float64{0, 0.1} {
		cfg := stepConfig()
		cfg.EmbedSize, cfg.EmbedInitStd = 16, std
		m := tinyModel(t, d, cfg, 3)
		for _, e := range []struct {
			name string
			x    sparse.Mat
		}{{"users", m.eu}, {"items", m.ei}} {
			bound := math.Sqrt(6 / float64(cfg.EmbedSize+e.x.Rows))
			s, peak := 0.0, 0.0
			for _, v := range e.x.Data {
				s += float64(v) * float64(v)
				peak = max(peak, math.Abs(float64(v)))
			}
			got := math.Sqrt(s / float64(len(e.x.Data)))
			want := bound / math.Sqrt(3) // a uniform's standard deviation
			if std > 0 {
				want = std
			} else if peak > bound {
				t.Errorf("xavier %s: |value| %v above the bound %v", e.name, peak, bound)
			}
			if math.Abs(got-want) > 0.1*want {
				t.Errorf("std %v, %s: sample std %v, want %v", std, e.name, got, want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Mode = "x" }, "mode:"},
		{func(c *Config) { c.EmbedSize = 0 }, "embed_size:"},
		{func(c *Config) { c.CFLayers = 0 }, "cf_layers:"},
		{func(c *Config) { c.BatchSize = 1 }, "batch_size:"},
		{func(c *Config) { c.LR = 0 }, "lr:"},
		{func(c *Config) { c.Tau = 0 }, "tau:"},
		{func(c *Config) { c.T = 0 }, "t:"},
		{func(c *Config) { c.GDrop1 = 1 }, "g_drop1:"},
		{func(c *Config) { c.Reg = -1 }, "reg:"},
		{func(c *Config) { c.Modalities = []string{""} }, "modalities:"},
		{func(c *Config) { c.GraphNorm = "full" }, "graph_norm:"},
		{func(c *Config) { c.CFProp = "both" }, "cf_prop:"},
		{func(c *Config) { c.EmbedInitStd = -1 }, "embed_init_std:"},
		{func(c *Config) { c.GraphKeepTrain = true }, "graph_keep_train:"},
	} {
		cfg := DefaultConfig()
		c.mut(cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("error %v, want prefix %q", err, c.want)
		}
	}
	d := DefaultConfig()
	if d.EmbedSize != 64 || d.CFLayers != 2 || d.BatchSize != 1024 || d.LR != 5.5e-4 || d.WeightDecay != 0.01 || d.DLR != 3e-4 ||
		d.GPLambda != 0.3 || d.GRate != 1e-4 || d.CLRate != 0.03 || d.IDCatRate != 0.36 || d.ModelCatRate != 0.55 ||
		d.CriticSlope != 1 || d.MTopKRate != 1e-4 || d.T != 1 || d.Mode != Faithful || !d.CFSoftmax || d.GraphNorm != GraphNormHalf ||
		d.CFProp != PropSequential {
		t.Errorf("defaults %+v differ from the MMSSL reference", d)
	}
	f := Factory().DefaultConfig()
	if f.Seed != 2022 || f.Patience != 8 || !f.NDCGNGCF {
		t.Errorf("trainer defaults %+v", f)
	}
}

// TestRecommenderVJP checks the recommender's hand-written backward pass
// (both modes, generated graphs that are neither the initial nor empty)
// against central differences of L = Σ R ⊙ outputs for random R over U*,
// I*, U_m, I_m and Ũ_m, without dropout.
func TestRecommenderVJP(t *testing.T) {
	for _, c := range []struct {
		mode     string
		noMod    bool
		lightGCN bool // graph_norm sym, cf_softmax false
		parallel bool // cf_prop parallel
	}{
		{Faithful, false, false, false}, {Intended, false, false, false}, {Faithful, true, false, false},
		{Intended, true, false, false}, {Intended, false, true, false},
		{Faithful, false, false, true}, {Intended, false, true, true},
	} {
		mode := c.mode
		if c.noMod {
			mode += "/no_modality"
		}
		if c.lightGCN {
			mode += "/sym-nosoftmax"
		}
		if c.parallel {
			mode += "/parallel"
		}
		t.Run(mode, func(t *testing.T) {
			d := tinyData(t, 7, 12, 8)
			cfg := stepConfig()
			cfg.Mode, cfg.TopK, cfg.MTopKRate, cfg.NoModality = c.mode, 2, 2.0/12, c.noMod
			if c.lightGCN {
				cfg.GraphNorm, cfg.CFSoftmax = GraphNormSym, false
			}
			if c.parallel {
				cfg.CFProp = PropParallel
			}
			m := tinyModel(t, d, cfg, 3, 2)
			rng := train.NewRNG(3, 3)
			// Generated graphs: random pairs (faithful, with a repeat) or
			// rows (intended, user 0 keeps its training items).
			for _, g := range m.graphs {
				if m.intended {
					for j := m.k; j < len(g.cur); j++ {
						g.cur[j] = int64(rng.IntN(m.ni))
					}
					continue
				}
				g.built, g.npairs = 1, 6
				for j := range 6 {
					g.pairs[j] = int64(rng.IntN(m.nu))*int64(m.ni) + int64(rng.IntN(m.ni))
				}
				g.pairs[5] = g.pairs[4]
			}
			if err := m.buildGraphs(); err != nil {
				t.Fatal(err)
			}
			rg := m.newRecGrads()
			outs := func() []sparse.Mat {
				o := []sparse.Mat{m.fw.ustar, m.fw.istar}
				o = append(o, m.fw.um...)
				o = append(o, m.fw.im...)
				return append(o, m.fw.ut...)
			}
			if err := m.forward(nil); err != nil {
				t.Fatal(err)
			}
			var rs []sparse.Mat
			for _, o := range outs() {
				r := sparse.NewMat(o.Rows, o.Cols)
				sparse.InitNormal(r, 1, rng.Rand)
				rs = append(rs, r)
			}
			grads := append([]sparse.Mat{rg.ustar, rg.istar}, rg.um...)
			grads = append(append(grads, rg.im...), rg.ut...)
			for k, r := range rs {
				copy(grads[k].Data, r.Data)
			}
			if err := m.backward(rg); err != nil {
				t.Fatal(err)
			}
			loss := func() float64 {
				if err := m.forward(nil); err != nil {
					t.Fatal(err)
				}
				s := 0.0
				for k, o := range outs() {
					for j, v := range o.Data {
						s += float64(v) * float64(rs[k].Data[j])
					}
				}
				return s
			}
			const eps = 1e-2
			worst := 0.0
			for k, p := range m.params() {
				for j := range p.F32 {
					old := p.F32[j]
					p.F32[j] = old + eps
					lp := loss()
					p.F32[j] = old - eps
					lm := loss()
					p.F32[j] = old
					num := (lp - lm) / (2 * eps)
					if e := math.Abs(num-float64(m.grads[k][j])) / max(1, math.Abs(num)); e > worst {
						worst = e
					}
				}
			}
			t.Logf("%s: worst error %.3g", mode, worst)
			if worst > 3e-2 {
				t.Errorf("%s: backward differs from finite differences by %.3g", mode, worst)
			}
		})
	}
}

// TestIntendedRuns trains a few intended-mode batches: finite losses,
// generated graphs rebuilt from predictions, and a contrastive term that
// does not collapse.
func TestIntendedRuns(t *testing.T) {
	d := tinyData(t, 9, 16, 6)
	cfg := stepConfig()
	cfg.Mode, cfg.TopK = Intended, 3
	m := tinyModel(t, d, cfg, 3, 2)
	if m.critic.slope != 0.2 {
		t.Errorf("critic slope %v, want 0.2", m.critic.slope)
	}
	rng := train.NewRNG(2, train.StreamTrain)
	collapsed := 2 * math.Log(2*float64(cfg.BatchSize)-1)
	for b := range 5 {
		l, err := m.TrainBatch(context.Background(), rng)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range l {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("batch %d: %s = %v", b, k, v)
			}
		}
		if math.Abs(l["cl"]-collapsed) < 1e-6 {
			t.Errorf("batch %d: contrastive term collapsed", b)
		}
	}
	rows := 0
	for u := range m.nu {
		if m.graphs[0].cur[u*m.k] >= 0 {
			rows++
		}
	}
	if rows == 0 {
		t.Error("no user row of the generated graph was rebuilt")
	}
}

// TestGraphKeepTrain checks the generated graphs' rows after a few
// intended-mode batches: the user's top-k predictions alone by default,
// the training items plus those predictions with graph_keep_train; users
// not yet rebuilt keep their training items either way.
func TestGraphKeepTrain(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "predictions", true: "keep-train"}[keep], func(t *testing.T) {
			d := tinyData(t, 9, 16, 6)
			cfg := stepConfig()
			cfg.Mode, cfg.TopK, cfg.GraphKeepTrain, cfg.NoAdversarial = Intended, 3, keep, true
			m := tinyModel(t, d, cfg, 3, 2)
			rng := train.NewRNG(2, train.StreamTrain)
			for range 3 {
				if _, err := m.TrainBatch(context.Background(), rng); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.buildGraphs(); err != nil {
				t.Fatal(err)
			}
			rebuilt := 0
			for gi, g := range m.graphs {
				for u := range m.nu {
					own, _ := m.train.Row(u)
					set := map[int32]bool{}
					if g.cur[u*m.k] < 0 || keep {
						for _, i := range own {
							set[i] = true
						}
					}
					if g.cur[u*m.k] >= 0 {
						rebuilt++
						for _, i := range g.cur[u*m.k : (u+1)*m.k] {
							set[int32(i)] = true
						}
					}
					var want []int32
					for i := range set {
						want = append(want, i)
					}
					slices.Sort(want)
					got, _ := g.ui.Row(u)
					if !slices.Equal(got, want) {
						t.Errorf("graph %d user %d: items %v, want %v", gi, u, got, want)
					}
				}
			}
			if rebuilt == 0 {
				t.Error("no user row was rebuilt")
			}
		})
	}
}

// TestStandardizeCols checks the column standardisation on hand values.
func TestStandardizeCols(t *testing.T) {
	x := sparse.NewMat(4, 3)
	copy(x.Data, []float32{
		1, 5, 2,
		3, 5, -2,
		5, 5, 2,
		7, 5, -2,
	})
	standardizeCols(x)
	// Column 0: mean 4, variance (9+1+1+9)/4 = 5; column 1 constant;
	// column 2: mean 0, variance 4.
	s5 := float32(1 / math.Sqrt(5))
	want := []float32{
		-3 * s5, 0, 1,
		-1 * s5, 0, -1,
		1 * s5, 0, 1,
		3 * s5, 0, -1,
	}
	for k := range want {
		if math.Abs(float64(x.Data[k]-want[k])) > 1e-6 {
			t.Fatalf("standardised %v, want %v", x.Data, want)
		}
	}
}

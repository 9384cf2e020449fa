package mmssl

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// stepBuffers are scratch matrices reused from batch to batch.
type stepBuffers struct {
	fuse, tu, ti, ge0u, ge0i, tmpU, tmpI, gzu, gzi, git, xt, gf []float32
	gu, gi                                                      [][]float32
	perm                                                        []int32
	users, pos, neg                                             []int32
	pb                                                          [][]float32
	fake, real, interp                                          critInput
	sims                                                        []usim
	rg                                                          *recGrads
	gpb, gq, v1, hg, st                                         []float32
	bu, bp, bn, gbu, gbp, gbn                                   []float32
}

// sample draws the batch: B distinct users among those with training
// items (random.sample; with replacement when there are fewer), one
// positive uniformly from each user's items and one negative uniformly from
// the items not in them (rejection sampling).
func (m *Model) sample(rng *train.RNG) {
	b := m.cfg.BatchSize
	bf := &m.buf
	bf.users, bf.pos, bf.neg = bf.users[:0], bf.pos[:0], bf.neg[:0]
	if b <= len(m.exist) {
		bf.perm = append(bf.perm[:0], m.exist...)
		for k := range b {
			j := k + rng.IntN(len(bf.perm)-k)
			bf.perm[k], bf.perm[j] = bf.perm[j], bf.perm[k]
		}
		bf.users = append(bf.users, bf.perm[:b]...)
	} else {
		for range b {
			bf.users = append(bf.users, m.exist[rng.IntN(len(m.exist))])
		}
	}
	for _, u := range bf.users {
		items, _ := m.train.Row(int(u))
		bf.pos = append(bf.pos, items[rng.IntN(len(items))])
		var neg int32
		for range 1000 {
			neg = int32(rng.IntN(m.ni))
			if _, found := slices.BinarySearch(items, neg); !found {
				break
			}
		}
		bf.neg = append(bf.neg, neg)
	}
}

// setFactors gathers the batch users' rows of U* and U_m into the low-rank
// factors (term 0: (U*, I*), term 1+m: (U_m, I_m)) and computes their
// factored u_sim.
func (m *Model) setFactors(f *factors) error {
	fw, bf := &m.fw, &m.buf
	nt := m.nm + 1
	for len(bf.pb) < nt {
		bf.pb = append(bf.pb, nil)
	}
	for len(bf.sims) < nt {
		bf.sims = append(bf.sims, usim{})
	}
	f.Pb, f.Q = f.Pb[:0], f.Q[:0]
	b := len(bf.users)
	for t := range nt {
		src, q := fw.ustar, fw.istar
		if t > 0 {
			src, q = fw.um[t-1], fw.im[t-1]
		}
		pb := mat(&bf.pb[t], b, m.d)
		if err := sparse.Gather(pb, src, bf.users); err != nil {
			return fmt.Errorf("mmssl: %w", err)
		}
		f.Pb, f.Q = append(f.Pb, pb), append(f.Q, q)
		bf.sims[t].compute(pb, q, &m.bi, m.workers)
	}
	return nil
}

// fakeInput builds the fake rows: u_sim(users, U_m, I_m) for each modality
// m, stacked (row m·B + b).
func (m *Model) fakeInput(in *critInput) {
	b := len(m.buf.users)
	in.reset(m.nm*b, m.nm+1)
	for k := range m.nm {
		appendRows(in, &m.bi)
		addTerm(in, k*b, 1+k, &m.buf.sims[1+k], nil, &m.bi)
	}
}

// realInput builds the real rows: normalise(softmax((R_u + s·g)/τ) +
// ui_pre_scale·u_sim(u, U*, I*)) with Gumbel noise g, the same row for each
// modality block (the reference's concat(r, r)). Non-training items'
// Gumbel-softmax weights underflow to exactly 0 in float32 (the logit gap
// is 1/τ = 200), so only the training items draw noise. It returns the
// per-user scale t_b and Gumbel-softmax values (aligned with m.bi) for the
// interpolates.
func (m *Model) realInput(in *critInput, rng *train.RNG) (tb []float32, soft []float32) {
	cfg := m.cfg
	bi := &m.bi
	b := len(m.buf.users)
	soft = make([]float32, len(bi.item))
	tb = make([]float32, b)
	sim := &m.buf.sims[0]
	for u := range b {
		lo, hi := bi.ptr[u], bi.ptr[u+1]
		mx := math.Inf(-1)
		logits := make([]float64, hi-lo)
		for k := range logits {
			g := -math.Log(-math.Log(rng.Float64()+1e-8) + 1e-8)
			logits[k] = (1 + cfg.LogLogScale*g) / cfg.RealDataTau
			mx = max(mx, logits[k])
		}
		s := 0.0
		for k, l := range logits {
			logits[k] = math.Exp(l - mx)
			s += logits[k]
		}
		sq := 0.0
		for k := range logits {
			v := float32(logits[k] / s)
			soft[int(lo)+k] = v
			sq += float64(v) * float64(v)
		}
		cf := cfg.UIPreScale * sim.norm[u] * float64(sim.inv[u])
		tb[u] = float32(1 / max(math.Sqrt(sq+cf*cf), normEps))
	}
	in.reset(m.nm*b, m.nm+1)
	scale := make([]float32, b)
	for u := range b {
		scale[u] = float32(cfg.UIPreScale) * tb[u]
	}
	for k := range m.nm {
		appendRows(in, bi)
		addTerm(in, k*b, 0, sim, scale, bi)
		for u := range b {
			r := k*b + u
			k0 := in.ptr[r]
			for j := bi.ptr[u]; j < bi.ptr[u+1]; j++ {
				in.val[k0+j-bi.ptr[u]] += tb[u] * soft[j]
			}
		}
	}
	if m.hooks != nil && m.hooks.real != nil {
		m.hooks.real(tb, soft)
	}
	return tb, soft
}

// interpInput builds α·real + (1−α)·fake row by row, α ~ U(0, 1) per row.
func (m *Model) interpInput(in *critInput, tb, soft []float32, rng *train.RNG) {
	cfg := m.cfg
	bi := &m.bi
	b := len(m.buf.users)
	n := m.nm * b
	alpha := make([]float32, n)
	for r := range alpha {
		alpha[r] = float32(rng.Float64())
	}
	if m.hooks != nil && m.hooks.alpha != nil {
		m.hooks.alpha(alpha)
	}
	in.reset(n, m.nm+1)
	sa := make([]float32, b)
	sf := make([]float32, b)
	for k := range m.nm {
		appendRows(in, bi)
		for u := range b {
			a := alpha[k*b+u]
			sa[u] = a * float32(cfg.UIPreScale) * tb[u]
			sf[u] = 1 - a
		}
		addTerm(in, k*b, 0, &m.buf.sims[0], sa, bi)
		addTerm(in, k*b, 1+k, &m.buf.sims[1+k], sf, bi)
		for u := range b {
			r := k*b + u
			a := alpha[r]
			k0 := in.ptr[r]
			for j := bi.ptr[u]; j < bi.ptr[u+1]; j++ {
				in.val[k0+j-bi.ptr[u]] += a * tb[u] * soft[j]
			}
		}
	}
}

// criticStep is step 1 of a batch: the critic's WGAN-GP update on the
// detached model outputs. It returns the loss terms.
func (m *Model) criticStep(rng *train.RNG) (dReal, dFake, gp float64, err error) {
	var f factors
	if err := m.forward(rng); err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	defer func() { m.tCritic += time.Since(t0) }()
	if err := m.setFactors(&f); err != nil {
		return 0, 0, 0, err
	}
	c := m.critic
	b := len(m.buf.users)
	if err := c.prepare(&f, b, 0); err != nil {
		return 0, 0, 0, err
	}
	c.zeroGrad()
	bf := &m.buf
	m.fakeInput(&bf.fake)
	run := func(in *critInput, sign float64) (float64, error) {
		y, err := c.forward(in, &f, rng)
		if err != nil {
			return 0, err
		}
		n := float64(in.n)
		ga3 := make([]float64, in.n)
		mean := 0.0
		for r, v := range y {
			mean += v / n
			s := c.ps.s[r]
			ga3[r] = sign / n * 100 * s * (1 - s)
		}
		return mean, c.backward(in, ga3, nil, nil, nil, nil, true)
	}
	if dFake, err = run(&bf.fake, 1); err != nil {
		return 0, 0, 0, err
	}
	tb, soft := m.realInput(&bf.real, rng)
	if dReal, err = run(&bf.real, -1); err != nil {
		return 0, 0, 0, err
	}
	m.interpInput(&bf.interp, tb, soft, rng)
	if gp, err = c.gradPenalty(&bf.interp, &f, m.cfg.GPLambda, m.cfg.GPRate, rng); err != nil {
		return 0, 0, 0, err
	}
	if err := c.finishW1(&f); err != nil {
		return 0, 0, 0, err
	}
	if err := c.update(); err != nil {
		return 0, 0, 0, err
	}
	return dReal, dFake, gp, nil
}

// TrainBatch runs one batch: the critic's update, then the recommender's
// (BPR + L2 + feature L2 + cl_rate·InfoNCE + G_rate·adversarial) with
// AdamW, and the generated graphs' bookkeeping. The ablations skip their
// parts: no_adversarial the critic's update and the adversarial term,
// cl_rate 0 the InfoNCE.
func (m *Model) TrainBatch(_ context.Context, rng *train.RNG) (train.Losses, error) {
	t0 := time.Now()
	c0 := m.tCritic
	if m.critic != nil && m.critic.stale {
		m.critic.refresh()
		m.critic.stale = false
	}
	if err := m.buildGraphs(); err != nil {
		return nil, err
	}
	m.sample(rng)
	m.bi.set(m.train, m.buf.users)
	var dReal, dFake, gp float64
	if m.critic != nil {
		var err error
		if dReal, dFake, gp, err = m.criticStep(rng); err != nil {
			return nil, err
		}
	}
	l, err := m.generatorStep(rng)
	if err != nil {
		return nil, err
	}
	if m.critic != nil {
		l["d_loss"] = -dReal + dFake + m.cfg.GPRate*gp
		l["d_real"], l["d_fake"], l["gp"] = dReal, dFake, gp
	}
	m.tModel += time.Since(t0) - (m.tCritic - c0)
	if m.step == 0 && m.log != nil {
		m.log.Info("mmssl epoch time", "critic_s", m.tCritic.Seconds(), "recommender_s", m.tModel.Seconds())
		m.tCritic, m.tModel = 0, 0
	}
	return l, nil
}

// generatorStep is step 2 of a batch.
func (m *Model) generatorStep(rng *train.RNG) (train.Losses, error) {
	cfg, fw, bf := m.cfg, &m.fw, &m.buf
	if err := m.forward(rng); err != nil {
		return nil, err
	}
	if bf.rg == nil {
		bf.rg = m.newRecGrads()
	}
	g := bf.rg
	g.zero()
	users, pos, neg := bf.users, bf.pos, bf.neg
	b := len(users)
	d := m.d
	// BPR and the L2 term on the batch's final embeddings.
	bu, bp, bn := mat(&bf.bu, b, d), mat(&bf.bp, b, d), mat(&bf.bn, b, d)
	gbu, gbp, gbn := mat(&bf.gbu, b, d), mat(&bf.gbp, b, d), mat(&bf.gbn, b, d)
	if err := sparse.Gather(bu, fw.ustar, users); err != nil {
		return nil, err
	}
	if err := sparse.Gather(bp, fw.istar, pos); err != nil {
		return nil, err
	}
	if err := sparse.Gather(bn, fw.istar, neg); err != nil {
		return nil, err
	}
	bpr, err := train.BPR(bu, bp, bn, gbu, gbp, gbn)
	if err != nil {
		return nil, fmt.Errorf("mmssl: %w", err)
	}
	reg := 0.0
	rs := float32(cfg.Reg / float64(b))
	for _, p := range []struct {
		x, g sparse.Mat
	}{{bu, gbu}, {bp, gbp}, {bn, gbn}} {
		for k, v := range p.x.Data {
			reg += float64(v) * float64(v)
			p.g.Data[k] += rs * v
		}
	}
	reg *= cfg.Reg * 0.5 / float64(b)
	if err := sparse.ScatterAdd(g.ustar, users, gbu); err != nil {
		return nil, err
	}
	if err := sparse.ScatterAdd(g.istar, pos, gbp); err != nil {
		return nil, err
	}
	if err := sparse.ScatterAdd(g.istar, neg, gbn); err != nil {
		return nil, err
	}
	// Generated graphs' bookkeeping (on this forward's detached scores).
	idx := int(m.step % int64(m.batches))
	if err := m.bookkeeping(idx); err != nil {
		return nil, err
	}
	m.step = (m.step + 1) % int64(m.batches)
	// Feature L2 over the full modality matrices, / items.
	feat := 0.0
	fr := cfg.FeatRegDecay / float64(m.ni)
	for k := range m.nm {
		for _, p := range []struct{ x, g sparse.Mat }{{fw.um[k], g.um[k]}, {fw.im[k], g.im[k]}} {
			for j, v := range p.x.Data {
				feat += float64(v) * float64(v)
				p.g.Data[j] += float32(fr) * v
			}
		}
	}
	feat *= 0.5 * fr
	// InfoNCE(Ũ_m[users], U*[users]), skipped by the ablation cl_rate 0.
	cl := 0.0
	z2 := bu // U*[users]
	views := m.nm
	if cfg.CLRate == 0 {
		views = 0
	}
	for k := range views {
		z1 := mat(&bf.gpb, b, d)
		if err := sparse.Gather(z1, fw.ut[k], users); err != nil {
			return nil, err
		}
		g1, g2 := sparse.NewMat(b, d), sparse.NewMat(b, d)
		l, err := infoNCE(z1, z2, cfg.Tau, cfg.CLRate, g1, g2, m.workers)
		if err != nil {
			return nil, err
		}
		cl += l
		if err := sparse.ScatterAdd(g.ut[k], users, g1); err != nil {
			return nil, err
		}
		if err := sparse.ScatterAdd(g.ustar, users, g2); err != nil {
			return nil, err
		}
	}
	dg, err := m.adversarial(rng, g)
	if err != nil {
		return nil, err
	}
	if err := m.backward(g); err != nil {
		return nil, err
	}
	for k, p := range m.params() {
		if err := m.opt[k].Update(p.F32, m.grads[k]); err != nil {
			return nil, fmt.Errorf("mmssl %s: %w", p.Name, err)
		}
	}
	loss := bpr + reg + feat + cfg.CLRate*cl - cfg.GRate*dg
	l := train.Losses{"loss": loss, "bpr": bpr, "reg": reg, "feat_reg": feat}
	if cfg.CLRate != 0 {
		l["cl"] = cl
	}
	if m.critic != nil {
		l["g_adv"] = -dg
	}
	return l, nil
}

// adversarial adds the gradient of the generator's adversarial term
// −G_rate · mean D(fake), through the just-updated critic, into g and
// returns mean D(fake); 0 without a critic (no_adversarial).
func (m *Model) adversarial(rng *train.RNG, g *recGrads) (float64, error) {
	if m.critic == nil {
		return 0, nil
	}
	cfg, bf := m.cfg, &m.buf
	b := len(bf.users)
	t0 := time.Now()
	var f factors
	if err := m.setFactors(&f); err != nil {
		return 0, err
	}
	c := m.critic
	if err := c.prepare(&f, b, 1); err != nil {
		return 0, err
	}
	m.fakeInput(&bf.fake)
	y, err := c.forward(&bf.fake, &f, rng)
	if err != nil {
		return 0, err
	}
	n := float64(bf.fake.n)
	ga3 := make([]float64, bf.fake.n)
	dg := 0.0
	for r, v := range y {
		dg += v / n
		s := c.ps.s[r]
		ga3[r] = -cfg.GRate / n * 100 * s * (1 - s)
	}
	if err := c.backward(&bf.fake, ga3, nil, nil, nil, nil, false); err != nil {
		return 0, err
	}
	for k := range m.nm {
		if err := m.fakeVJP(k, &f, g); err != nil {
			return 0, err
		}
	}
	m.tCritic += time.Since(t0)
	return dg, nil
}

// bookkeeping runs the generated graphs' schedule after the generator's
// forward at batch idx of the epoch.
//
// Faithful mode (the reference's): when idx % T == 0 and idx ≠ 0 the graphs
// are rebuilt from the pairs collected since the last rebuild (which are
// then cleared); otherwise the top-k items of each batch user's modality
// scores u_sim(u, U_m, I_m) are collected (k = int(items · m_topk_rate), 0
// on TikTok: quirk Q1, the graphs become empty).
//
// Intended mode: every batch replaces its users' rows of the pending
// graphs by their current top-k (k = topk), and every T batches the
// pending graphs become the ones the model propagates over.
func (m *Model) bookkeeping(idx int) error {
	if m.intended {
		for k, g := range m.graphs {
			tops, err := m.topK(k)
			if err != nil {
				return err
			}
			for b, u := range m.buf.users {
				for j, i := range tops[b] {
					g.pend[int(u)*m.k+j] = int64(i)
				}
			}
			if (idx+1)%m.cfg.T == 0 {
				copy(g.cur, g.pend)
			}
		}
		return nil
	}
	if idx%m.cfg.T == 0 && idx != 0 {
		for _, g := range m.graphs {
			copy(g.pairs, g.collect[:g.ncollect])
			g.npairs, g.ncollect, g.built = g.ncollect, 0, 1
		}
		return nil
	}
	if m.k == 0 {
		return nil
	}
	for k, g := range m.graphs {
		tops, err := m.topK(k)
		if err != nil {
			return err
		}
		for b, u := range m.buf.users {
			for _, i := range tops[b] {
				if int(g.ncollect) >= len(g.collect) {
					return fmt.Errorf("mmssl: generated graph: more than %d collected pairs", len(g.collect))
				}
				g.collect[g.ncollect] = int64(u)*int64(m.ni) + int64(i)
				g.ncollect++
			}
		}
	}
	return nil
}

// topK returns, for every batch user, the m.k items with the highest
// scores (U_m·I_mᵀ)_u with the user's training items scored 0 (u_sim's mask;
// its normalisation does not change the order), ties to the lower index.
// The batch's B × items scores are one product.
func (m *Model) topK(k int) ([][]int32, error) {
	fw, users := &m.fw, m.buf.users
	b := len(users)
	pb := sparse.NewMat(b, m.d)
	if err := sparse.Gather(pb, fw.um[k], users); err != nil {
		return nil, err
	}
	scores := sparse.NewMat(b, m.ni)
	if err := gemm(scores, pb, fw.im[k].Transpose(), m.workers); err != nil {
		return nil, err
	}
	out := make([][]int32, b)
	sparse.ParallelFor(b, m.workers, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := scores.Row(r)
			items, _ := m.train.Row(int(users[r]))
			for _, i := range items {
				row[i] = 0
			}
			// Insertion into the sorted top list: an item enters only
			// when strictly better than the current last, so ties keep
			// the lower index.
			top := make([]int32, 0, m.k)
			for i, v := range row {
				if len(top) == m.k && v <= row[top[m.k-1]] {
					continue
				}
				j := len(top)
				if j < m.k {
					top = append(top, 0)
				} else {
					j = m.k - 1
				}
				for j > 0 && row[top[j-1]] < v {
					top[j] = top[j-1]
					j--
				}
				top[j] = int32(i)
			}
			out[r] = top
		}
	})
	return out, nil
}

// fakeVJP adds the gradient of the critic's input rows of modality k (the
// fake rows m·B..m·B+B of the last critic pass, whose ∂L/∂(X·W1ᵀ) the
// critic's backward left in pass.adj1) with respect to U_m (batch rows)
// and I_m into g. With x_r = s_b·y_b, y_b = (P_b·Qᵀ) ⊙ (1 − R_b), s_b =
// 1/‖y_b‖ and gx_r = W1ᵀ·a_r (a_r = adj1 row r), never materialised:
//
//	gy_r = s_b·(gx_r − κ_r·x_r),  κ_r = x_r·gx_r = (X·W1ᵀ)_r·a_r
//	gP_b = s_b·[a_r·(W1·Q) − κ_r·s_b·(P_b·QᵀQ − Σ_{i∈R_b} y'_i Q_i) − Σ_{i∈R_b} (W1ᵀa_r)_i Q_i]
//	gQ   = W1ᵀ·Σ_r s_b a_rᵀ P_b − Q·Σ_r s_b² κ_r P_bᵀP_b − Σ_r Σ_{i∈R_b} (s_b (W1ᵀa_r)_i − s_b² κ_r y'_i) e_i P_b
//
// where y'_i = P_b·Q_i are the masked raw scores.
func (m *Model) fakeVJP(k int, f *factors, g *recGrads) error {
	c, bf := m.critic, &m.buf
	b := len(bf.users)
	d, h1 := m.d, c.h1
	t := 1 + k
	pb, q := f.Pb[t], f.Q[t]
	sim := &bf.sims[t]
	p := &c.ps
	r0 := k * b
	adj := sparse.Mat{Rows: b, Cols: h1, Data: p.adj1[r0*h1 : (r0+b)*h1]}
	xwm := p.xw[r0*h1 : (r0+b)*h1]
	w1t := sparse.Mat{Rows: c.items, Cols: h1, Data: c.w1t}
	// a_r·(W1·Q): adj (B × H1) times WQ = wqtᵀ (H1 × d).
	wq := c.wqt[t].Transpose()
	v1 := mat(&bf.v1, b, d)
	if err := gemm(v1, adj, wq, m.workers); err != nil {
		return err
	}
	gq := gram64(q, m.workers)
	gpb := sparse.NewMat(b, d)
	kappa := make([]float64, b)
	gpm := make([]float64, d*d) // −Σ s² κ P_bᵀP_b
	for u := range b {
		s := float64(sim.inv[u])
		a := adj.Row(u)
		kappa[u] = dot64(xwm[u*h1:(u+1)*h1], a)
		pu := pb.Row(u)
		// y·Q = P_b·QᵀQ − Σ_{i∈R} y'_i Q_i.
		yq := make([]float64, d)
		for x := range d {
			acc := 0.0
			for z := range d {
				acc += float64(pu[z]) * gq[z*d+x]
			}
			yq[x] = acc
		}
		out := gpb.Row(u)
		for j := m.bi.ptr[u]; j < m.bi.ptr[u+1]; j++ {
			i := int(m.bi.item[j])
			qi := q.Row(i)
			own := float64(sim.own[j])
			gxi := dot64(w1t.Data[i*h1:(i+1)*h1], a)
			for x := range d {
				yq[x] -= own * float64(qi[x])
			}
			// gQ correction for masked items.
			cq := float32(-(s*gxi - s*s*kappa[u]*own))
			axpy(cq, pu, g.im[k].Row(i))
			for x := range d {
				out[x] -= float32(s * gxi * float64(qi[x]))
			}
		}
		vr := v1.Row(u)
		for x := range d {
			out[x] += float32(s*float64(vr[x]) - s*kappa[u]*s*yq[x])
		}
		w := s * s * kappa[u]
		for x := range d {
			for z := range d {
				gpm[x*d+z] -= w * float64(pu[x]) * float64(pu[z])
			}
		}
	}
	if err := sparse.ScatterAdd(g.um[k], bf.users, gpb); err != nil {
		return err
	}
	// W1ᵀ·Hg with Hg = adjᵀ·diag(s)·P (H1 × d).
	sp := sparse.NewMat(b, d)
	for u := range b {
		axpy(sim.inv[u], pb.Row(u), sp.Row(u))
	}
	adjT := mat(&bf.st, h1, b)
	transposeInto(adjT, adj, m.workers)
	hg := mat(&bf.hg, h1, d)
	if err := gemm(hg, adjT, sp, m.workers); err != nil {
		return err
	}
	gqa := mat(&bf.gq, m.ni, d)
	if err := gemm(gqa, w1t, hg, m.workers); err != nil {
		return err
	}
	addInto(g.im[k].Data, gqa.Data, m.workers)
	// Q·Gp.
	gp32 := sparse.NewMat(d, d)
	for j, v := range gpm {
		gp32.Data[j] = float32(v)
	}
	if err := gemm(gqa, q, gp32, m.workers); err != nil {
		return err
	}
	addInto(g.im[k].Data, gqa.Data, m.workers)
	return nil
}

// infoNCE computes the reference's batched_contrastive_loss(z1, z2) (mean
// over anchors of −log(e^{c(z1_i,z2_i)/τ} / (Σ_j e^{c(z1_i,z1_j)/τ} +
// Σ_j e^{c(z1_i,z2_j)/τ} − e^{c(z1_i,z1_i)/τ}) + 1e-8), cosine c) and writes
// weight·∂/∂z1 and weight·∂/∂z2 into g1 and g2 (zeroed first).
func infoNCE(z1, z2 sparse.Mat, tau, weight float64, g1, g2 sparse.Mat, workers int) (float64, error) {
	b, d := z1.Rows, z1.Cols
	a, bn := sparse.NewMat(b, d), sparse.NewMat(b, d)
	da, db := make([]float32, b), make([]float32, b)
	normalizeRows(a, z1, da)
	normalizeRows(bn, z2, db)
	refl := sparse.NewMat(b, b)
	betw := sparse.NewMat(b, b)
	if err := gemm(refl, a, a.Transpose(), workers); err != nil {
		return 0, err
	}
	if err := gemm(betw, a, bn.Transpose(), workers); err != nil {
		return 0, err
	}
	loss := make([]float64, b)
	// Per anchor: S_i, ρ_i, and the adjoints of refl and betw (times e/τ).
	sparse.ParallelFor(b, workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			rr, br := refl.Row(i), betw.Row(i)
			s := 0.0
			for j := range b {
				rr[j] = float32(math.Exp(float64(rr[j]) / tau))
				br[j] = float32(math.Exp(float64(br[j]) / tau))
				s += float64(rr[j]) + float64(br[j])
			}
			s -= float64(rr[i])
			rho := float64(br[i]) / s
			loss[i] = -math.Log(rho + 1e-8)
			w := -weight / float64(b) / (rho + 1e-8) // ∂L/∂ρ_i
			sig := -w * float64(br[i]) / (s * s)     // ∂L/∂S_i
			// ∂L/∂(cos) = ∂L/∂e · e / τ.
			for j := range b {
				gr := sig
				if j == i {
					gr = 0 // +refl_ii − refl_ii
				}
				rr[j] = float32(gr * float64(rr[j]) / tau)
				gb := sig
				if j == i {
					gb += w / s
				}
				br[j] = float32(gb * float64(br[j]) / tau)
			}
		}
	})
	// cos_refl = a·aᵀ: ga += (Gr + Grᵀ)·a; cos_betw = a·bnᵀ: ga += Gb·bn,
	// gbn += Gbᵀ·a.
	ga, gbn, tmp := sparse.NewMat(b, d), sparse.NewMat(b, d), sparse.NewMat(b, d)
	rt := sparse.NewMat(b, b)
	transposeInto(rt, refl, workers)
	addInto(refl.Data, rt.Data, workers)
	if err := gemm(ga, refl, a, workers); err != nil {
		return 0, err
	}
	if err := gemm(tmp, betw, bn, workers); err != nil {
		return 0, err
	}
	addInto(ga.Data, tmp.Data, workers)
	transposeInto(rt, betw, workers)
	if err := gemm(gbn, rt, a, workers); err != nil {
		return 0, err
	}
	g1.Zero()
	g2.Zero()
	normalizeRowsVJP(g1, a, ga, da)
	normalizeRowsVJP(g2, bn, gbn, db)
	mean := 0.0
	for _, l := range loss {
		mean += l
	}
	return mean / float64(b), nil
}

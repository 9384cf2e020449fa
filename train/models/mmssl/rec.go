package mmssl

import (
	"math"
	"slices"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// fwd holds the recommender's forward activations (all users and items).
type fwd struct {
	mask, f     []sparse.Mat // I × d per modality: dropout scales, projected features
	um, im      []sparse.Mat // U_m = G_ui·F_m, I_m = G_iu·U_m
	ut, it      []sparse.Mat // Ũ_m = G^m_ui·E_i, Ĩ_m = G^m_iu·E_u
	wsum        sparse.Mat   // d × d
	zu, zi      sparse.Mat   // fused modality ID embeddings
	nzu, nzi    sparse.Mat
	dzu, dzi    []float32
	e0u, e0i    sparse.Mat
	us, is      []sparse.Mat // CF layers (last after the softmax)
	num, nim    []sparse.Mat // norm(U_m), norm(I_m)
	dum, dim    [][]float32
	ustar       sparse.Mat
	istar       sparse.Mat
	initialised bool
}

func (m *Model) initFwd() {
	f := &m.fw
	if f.initialised {
		return
	}
	f.initialised = true
	nu, ni, d := m.nu, m.ni, m.d
	for range m.nm {
		f.mask = append(f.mask, sparse.NewMat(ni, d))
		f.f = append(f.f, sparse.NewMat(ni, d))
		f.um = append(f.um, sparse.NewMat(nu, d))
		f.im = append(f.im, sparse.NewMat(ni, d))
		f.ut = append(f.ut, sparse.NewMat(nu, d))
		f.it = append(f.it, sparse.NewMat(ni, d))
		f.num = append(f.num, sparse.NewMat(nu, d))
		f.nim = append(f.nim, sparse.NewMat(ni, d))
		f.dum = append(f.dum, make([]float32, nu))
		f.dim = append(f.dim, make([]float32, ni))
	}
	f.wsum = sparse.NewMat(d, d)
	f.zu, f.zi, f.nzu, f.nzi = sparse.NewMat(nu, d), sparse.NewMat(ni, d), sparse.NewMat(nu, d), sparse.NewMat(ni, d)
	f.dzu, f.dzi = make([]float32, nu), make([]float32, ni)
	f.e0u, f.e0i = sparse.NewMat(nu, d), sparse.NewMat(ni, d)
	for range m.cfg.CFLayers {
		f.us = append(f.us, sparse.NewMat(nu, d))
		f.is = append(f.is, sparse.NewMat(ni, d))
	}
	f.ustar, f.istar = sparse.NewMat(nu, d), sparse.NewMat(ni, d)
}

// softmaxRows applies a softmax over each row in place.
func softmaxRows(x sparse.Mat) {
	for r := range x.Rows {
		row := x.Row(r)
		mx := float32(math.Inf(-1))
		for _, v := range row {
			mx = max(mx, v)
		}
		s := 0.0
		for k, v := range row {
			e := float32(math.Exp(float64(v - mx)))
			row[k] = e
			s += float64(e)
		}
		inv := float32(1 / s)
		for k := range row {
			row[k] *= inv
		}
	}
}

// softmaxRowsVJP replaces g by the gradient of the softmax's input, given
// the output y: y ⊙ (g − y·g).
func softmaxRowsVJP(g, y sparse.Mat) {
	for r := range y.Rows {
		yr, gr := y.Row(r), g.Row(r)
		p := float32(dot64(yr, gr))
		for k := range gr {
			gr[k] = yr[k] * (gr[k] - p)
		}
	}
}

// forward computes every activation; with rng (training) it draws the
// feature dropout masks, without it dropout is off (evaluation).
func (m *Model) forward(rng *train.RNG) error {
	m.initFwd()
	f, cfg, w := &m.fw, m.cfg, m.workers
	d := m.d
	for k := range m.nm {
		if err := gemm(f.f[k], m.feats[k], m.wm[k], w); err != nil {
			return err
		}
		if rng != nil {
			dropMask(f.mask[k].Data, cfg.DropRate, rng, w)
		} else {
			for j := range f.mask[k].Data {
				f.mask[k].Data[j] = 1
			}
		}
		for r := range m.ni {
			row, mk := f.f[k].Row(r), f.mask[k].Row(r)
			for j := range row {
				row[j] = (row[j] + m.bm[k][j]) * mk[j]
			}
		}
		if err := m.gui.Mul(f.um[k], f.f[k], w); err != nil {
			return err
		}
		if err := m.giu.Mul(f.im[k], f.um[k], w); err != nil {
			return err
		}
		g := m.graphs[k]
		if err := g.ui.Mul(f.ut[k], m.ei, w); err != nil {
			return err
		}
		if err := g.iu.Mul(f.it[k], m.eu, w); err != nil {
			return err
		}
		normalizeRows(f.num[k], f.um[k], f.dum[k])
		normalizeRows(f.nim[k], f.im[k], f.dim[k])
	}
	if m.intended {
		for _, p := range []struct {
			op  *attnOp
			x   []sparse.Mat
			out sparse.Mat
		}{{m.attU, f.ut, f.zu}, {m.attI, f.it, f.zi}} {
			y, err := p.op.Forward(append(slices.Clone(p.x), m.watt...))
			if err != nil {
				return err
			}
			copy(p.out.Data, y.Data)
		}
	} else {
		// W_sum = Σ_h W_cat[h·d:(h+1)·d, :].
		f.wsum.Zero()
		for h := range cfg.HeadNum {
			axpy(1, m.wcat.Data[h*d*d:(h+1)*d*d], f.wsum.Data)
		}
		if err := m.fuse(f.zu, f.ut); err != nil {
			return err
		}
		if err := m.fuse(f.zi, f.it); err != nil {
			return err
		}
	}
	normalizeRows(f.nzu, f.zu, f.dzu)
	normalizeRows(f.nzi, f.zi, f.dzi)
	mc, idc := m.catRates()
	for k := range f.e0u.Data {
		f.e0u.Data[k] = m.eu.Data[k] + idc*f.nzu.Data[k]
	}
	for k := range f.e0i.Data {
		f.e0i.Data[k] = m.ei.Data[k] + idc*f.nzi.Data[k]
	}
	// Sequential (Q4): u_l = G_ui·i_(l-1), i_l = G_iu·u_l. Parallel
	// (LightGCN): i_l = G_iu·u_(l-1) instead.
	parallel := cfg.CFProp == PropParallel
	prevU, prevI := f.e0u, f.e0i
	last := cfg.CFLayers - 1
	for l := range cfg.CFLayers {
		if err := m.gui.Mul(f.us[l], prevI, w); err != nil {
			return err
		}
		src := f.us[l]
		if parallel {
			src = prevU
		} else if l == last && cfg.CFSoftmax {
			softmaxRows(f.us[l])
		}
		if err := m.giu.Mul(f.is[l], src, w); err != nil {
			return err
		}
		if l == last && cfg.CFSoftmax {
			if parallel {
				softmaxRows(f.us[l])
			}
			softmaxRows(f.is[l])
		}
		prevU, prevI = f.us[l], f.is[l]
	}
	inv := float32(1 / float64(cfg.CFLayers+1))
	combine := func(out, e0 sparse.Mat, layers, norms []sparse.Mat) {
		for k := range out.Data {
			s := e0.Data[k]
			for _, l := range layers {
				s += l.Data[k]
			}
			v := s * inv
			for _, n := range norms {
				v += mc * n.Data[k]
			}
			out.Data[k] = v
		}
	}
	normsU, normsI := f.num, f.nim
	if mc == 0 {
		normsU, normsI = nil, nil
	}
	combine(f.ustar, f.e0u, f.us, normsU)
	combine(f.istar, f.e0i, f.is, normsI)
	if m.hooks != nil && m.hooks.forward != nil {
		m.hooks.forward()
	}
	return nil
}

// catRates returns the weights of the normalised modality embeddings in
// the final vectors (model_cat_rate) and of the fused modality ID
// embeddings in E0 (id_cat_rate): both 0 with no_modality, which leaves
// U* and I* to the ID/CF branch.
func (m *Model) catRates() (modelCat, idCat float32) {
	if m.cfg.NoModality {
		return 0, 0
	}
	return float32(m.cfg.ModelCatRate), float32(m.cfg.IDCatRate)
}

// fuse computes out = (1/M) Σ_m x_m · W_sum: the reference's cross-modal
// "attention" as it executes (Q2).
func (m *Model) fuse(out sparse.Mat, x []sparse.Mat) error {
	out.Zero()
	tmp := mat(&m.buf.fuse, out.Rows, out.Cols)
	inv := float32(1 / float64(m.nm))
	for _, xm := range x {
		if err := gemm(tmp, xm, m.fw.wsum, m.workers); err != nil {
			return err
		}
		axpy(inv, tmp.Data, out.Data)
	}
	return nil
}

// recGrads are the gradients flowing into the forward's outputs: the final
// embeddings, the modality embeddings and the generated-graph ID
// embeddings.
type recGrads struct {
	ustar, istar sparse.Mat
	um, im       []sparse.Mat
	ut           []sparse.Mat
}

func (m *Model) newRecGrads() *recGrads {
	g := &recGrads{ustar: sparse.NewMat(m.nu, m.d), istar: sparse.NewMat(m.ni, m.d)}
	for range m.nm {
		g.um = append(g.um, sparse.NewMat(m.nu, m.d))
		g.im = append(g.im, sparse.NewMat(m.ni, m.d))
		g.ut = append(g.ut, sparse.NewMat(m.nu, m.d))
	}
	return g
}

func (g *recGrads) zero() {
	g.ustar.Zero()
	g.istar.Zero()
	for k := range g.um {
		g.um[k].Zero()
		g.im[k].Zero()
		g.ut[k].Zero()
	}
}

// gradient indices of the recommender's parameters.
func (m *Model) gEU() []float32     { return m.grads[0] }
func (m *Model) gEI() []float32     { return m.grads[1] }
func (m *Model) gW(k int) []float32 { return m.grads[2+2*k] }
func (m *Model) gB(k int) []float32 { return m.grads[3+2*k] }
func (m *Model) gWcat() []float32   { return m.grads[2+2*m.nm] }

// backward propagates g (destroyed) through the last forward into the
// parameter gradients m.grads (overwritten).
func (m *Model) backward(g *recGrads) error {
	f, cfg, w := &m.fw, m.cfg, m.workers
	for _, gr := range m.grads {
		clear(gr)
	}
	nu, ni, d := m.nu, m.ni, m.d
	mc, idc := m.catRates()
	inv := float32(1 / float64(cfg.CFLayers+1))
	// Final embeddings → modality norms and CF layers.
	tu := mat(&m.buf.tu, nu, d)
	ti := mat(&m.buf.ti, ni, d)
	for k := range tu.Data {
		tu.Data[k] = mc * g.ustar.Data[k]
	}
	for k := range ti.Data {
		ti.Data[k] = mc * g.istar.Data[k]
	}
	for k := range m.nm {
		normalizeRowsVJP(g.um[k], f.num[k], tu, f.dum[k])
		normalizeRowsVJP(g.im[k], f.nim[k], ti, f.dim[k])
	}
	L := cfg.CFLayers
	for len(m.buf.gu) < L {
		m.buf.gu, m.buf.gi = append(m.buf.gu, nil), append(m.buf.gi, nil)
	}
	gu := make([]sparse.Mat, L)
	gi := make([]sparse.Mat, L)
	for l := range L {
		gu[l] = mat(&m.buf.gu[l], nu, d)
		gi[l] = mat(&m.buf.gi[l], ni, d)
		for k := range gu[l].Data {
			gu[l].Data[k] = inv * g.ustar.Data[k]
		}
		for k := range gi[l].Data {
			gi[l].Data[k] = inv * g.istar.Data[k]
		}
	}
	ge0u := mat(&m.buf.ge0u, nu, d)
	ge0i := mat(&m.buf.ge0i, ni, d)
	for k := range ge0u.Data {
		ge0u.Data[k] = inv * g.ustar.Data[k]
	}
	for k := range ge0i.Data {
		ge0i.Data[k] = inv * g.istar.Data[k]
	}
	tmpU := mat(&m.buf.tmpU, nu, d)
	tmpI := mat(&m.buf.tmpI, ni, d)
	parallel := cfg.CFProp == PropParallel
	for l := L - 1; l >= 0; l-- {
		if l == L-1 && m.cfg.CFSoftmax {
			softmaxRowsVJP(gi[l], f.is[l])
		}
		if err := m.giu.MulT(tmpU, gi[l], w); err != nil {
			return err
		}
		switch {
		case !parallel:
			addInto(gu[l].Data, tmpU.Data, w) // i_l = G_iu·u_l
		case l > 0:
			addInto(gu[l-1].Data, tmpU.Data, w) // i_l = G_iu·u_(l-1)
		default:
			addInto(ge0u.Data, tmpU.Data, w)
		}
		if l == L-1 && m.cfg.CFSoftmax {
			softmaxRowsVJP(gu[l], f.us[l])
		}
		if err := m.gui.MulT(tmpI, gu[l], w); err != nil {
			return err
		}
		if l > 0 {
			addInto(gi[l-1].Data, tmpI.Data, w)
		} else {
			addInto(ge0i.Data, tmpI.Data, w)
		}
	}
	// E0 = E + id_cat_rate·norm(fused).
	copy(m.gEU(), ge0u.Data)
	copy(m.gEI(), ge0i.Data)
	for k := range ge0u.Data {
		ge0u.Data[k] *= idc
	}
	for k := range ge0i.Data {
		ge0i.Data[k] *= idc
	}
	gzu := mat(&m.buf.gzu, nu, d)
	gzi := mat(&m.buf.gzi, ni, d)
	gzu.Zero()
	gzi.Zero()
	normalizeRowsVJP(gzu, f.nzu, ge0u, f.dzu)
	normalizeRowsVJP(gzi, f.nzi, ge0i, f.dzi)
	if m.intended {
		return m.backwardIntended(g, gzu, gzi, tmpU, tmpI)
	}
	// fused = (1/M) Σ_m x_m·W_sum: x_m gets (1/M)·g·W_sumᵀ, W_sum gets
	// (1/M)·x_mᵀ·g, and each head block of W_cat gets W_sum's gradient.
	wsT := f.wsum.Transpose()
	invM := float32(1 / float64(m.nm))
	gws := make([]float32, d*d)
	gIt := mat(&m.buf.git, ni, d)
	for k := range m.nm {
		if err := gemm(tmpU, gzu, wsT, w); err != nil {
			return err
		}
		axpy(invM, tmpU.Data, g.ut[k].Data)
		if err := gemm(gIt, gzi, wsT, w); err != nil {
			return err
		}
		for j := range gIt.Data {
			gIt.Data[j] *= invM
		}
		for _, p := range []struct{ x, g sparse.Mat }{{f.ut[k], gzu}, {f.it[k], gzi}} {
			xt := mat(&m.buf.xt, d, p.x.Rows)
			transposeInto(xt, p.x, w)
			t := sparse.NewMat(d, d)
			if err := gemm(t, xt, p.g, w); err != nil {
				return err
			}
			axpy(invM, t.Data, gws)
		}
		gr := m.graphs[k]
		if err := gr.ui.MulT(tmpI, g.ut[k], w); err != nil {
			return err
		}
		addInto(m.gEI(), tmpI.Data, w)
		if err := gr.iu.MulT(tmpU, gIt, w); err != nil {
			return err
		}
		addInto(m.gEU(), tmpU.Data, w)
	}
	for h := range cfg.HeadNum {
		copy(m.gWcat()[h*d*d:(h+1)*d*d], gws)
	}
	return m.backwardModalities(g, tmpU)
}

// backwardIntended is backward's tail in intended mode: the attention
// Ops' VJPs, the generated graphs, then the modality branch.
func (m *Model) backwardIntended(g *recGrads, gzu, gzi, tmpU, tmpI sparse.Mat) error {
	w := m.workers
	gu, err := m.attU.VJP(gzu)
	if err != nil {
		return err
	}
	for k := range m.nm {
		addInto(g.ut[k].Data, gu[k].Data, w)
	}
	gi, err := m.attI.VJP(gzi)
	if err != nil {
		return err
	}
	// The attention weights (after E_u, E_i and the modality weights).
	for j := range 4 {
		gr := m.grads[2+2*m.nm+j]
		copy(gr, gu[m.nm+j].Data)
		addInto(gr, gi[m.nm+j].Data, w)
	}
	for k := range m.nm {
		gr := m.graphs[k]
		if err := gr.ui.MulT(tmpI, g.ut[k], w); err != nil {
			return err
		}
		addInto(m.gEI(), tmpI.Data, w)
		if err := gr.iu.MulT(tmpU, gi[k], w); err != nil {
			return err
		}
		addInto(m.gEU(), tmpU.Data, w)
	}
	return m.backwardModalities(g, tmpU)
}

// backwardModalities is the modality branch's backward: I_m = G_iu·U_m,
// U_m = G_ui·F_m, F_m = drop(X·W + b).
func (m *Model) backwardModalities(g *recGrads, tmpU sparse.Mat) error {
	f, w := &m.fw, m.workers
	ni, d := m.ni, m.d
	for k := range m.nm {
		if err := m.giu.MulT(tmpU, g.im[k], w); err != nil {
			return err
		}
		addInto(g.um[k].Data, tmpU.Data, w)
		gf := mat(&m.buf.gf, ni, d)
		if err := m.gui.MulT(gf, g.um[k], w); err != nil {
			return err
		}
		for j := range gf.Data {
			gf.Data[j] *= f.mask[k].Data[j]
		}
		if err := gemm(sparse.Mat{Rows: m.featsT[k].Rows, Cols: d, Data: m.gW(k)}, m.featsT[k], gf, w); err != nil {
			return err
		}
		gb := m.gB(k)
		for r := range ni {
			axpy(1, gf.Row(r), gb)
		}
	}
	return nil
}

package mmssl

import (
	"math"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// The critic reads, for each batch user, a score vector over all items:
// u_sim(u, P, Q) = normalise((P_u · Qᵀ) ⊙ (1 − R_u)) for the "fake"
// (modality) rows and normalise(gumbel_softmax(R_u) + 100·u_sim(u, U*, I*))
// for the "real" rows. Every such row is a few low-rank terms (a
// coefficient times P_u·Qᵀ for an embedding pair (P, Q)) plus a correction
// on the user's training items only. critInput keeps the rows in that
// form, so the critic's first layer X·W1ᵀ costs B·d·H1 + nnz·H1 instead of
// B·I·H1, and the critic's B × items inputs are never materialised.

// factors are the embedding pairs of the low-rank terms of one step: term 0
// is (U*, I*), term 1+m is modality m's (U_m, I_m). Pb holds the batch
// users' rows (B × d), Q the item matrix (I × d).
type factors struct {
	Pb []sparse.Mat
	Q  []sparse.Mat
}

// critInput is a batch of critic input rows: row r is
//
//	Σ_t coef[r·T+t] · (Pb_t[user r] · Q_tᵀ) + Σ_k val[k] e_{item[k]}
//
// with the sparse part of row r at positions ptr[r]..ptr[r+1] (the training
// items of the row's user).
type critInput struct {
	n, terms int
	user     []int32 // batch row (0..B-1) of each input row
	coef     []float32
	ptr      []int32
	item     []int32
	val      []float32
}

// reset sizes the input for n rows of the given batch users' items.
func (c *critInput) reset(n, terms int) {
	c.n, c.terms = n, terms
	c.user = c.user[:0]
	c.coef = append(c.coef[:0], make([]float32, n*terms)...)
	c.ptr = append(c.ptr[:0], 0)
	c.item = c.item[:0]
	c.val = c.val[:0]
}

// dense writes the rows as a dense n × items matrix (tests only).
func (c *critInput) dense(f *factors, items int) sparse.Mat {
	out := sparse.NewMat(c.n, items)
	for r := range c.n {
		o := out.Row(r)
		for t := range c.terms {
			a := c.coef[r*c.terms+t]
			if a == 0 {
				continue
			}
			p := f.Pb[t].Row(int(c.user[r]))
			for i := range items {
				o[i] += a * sparse.Dot(p, f.Q[t].Row(i))
			}
		}
		for k := c.ptr[r]; k < c.ptr[r+1]; k++ {
			o[c.item[k]] += c.val[k]
		}
	}
	return out
}

// batchItems are the training items of the batch users: user b's items are
// item[ptr[b]:ptr[b+1]].
type batchItems struct {
	ptr  []int32
	item []int32
}

// set collects the training items of users from the training matrix.
func (bi *batchItems) set(train *sparse.CSR, users []int32) {
	bi.ptr = append(bi.ptr[:0], 0)
	bi.item = bi.item[:0]
	for _, u := range users {
		cols, _ := train.Row(int(u))
		bi.item = append(bi.item, cols...)
		bi.ptr = append(bi.ptr, int32(len(bi.item)))
	}
}

// usim holds u_sim(users, P, Q) in factored form for one embedding pair:
// inv[b] = 1/max(‖y_b‖, eps) with y_b = (P_b·Qᵀ) ⊙ (1 − R_b), and the raw
// scores P_b·Q_i on the batch users' training items (aligned with
// batchItems), which the mask removes.
type usim struct {
	inv  []float32
	norm []float64 // ‖y_b‖
	own  []float32
}

// gram64 returns QᵀQ (d × d) as float64 values of a float32 product.
func gram64(q sparse.Mat, workers int) []float64 {
	d := q.Cols
	qt := q.Transpose()
	g := sparse.NewMat(d, d)
	gemmAcc(g, qt, q, workers)
	return f64s(g.Data)
}

// f64s converts to float64.
func f64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for k, v := range x {
		out[k] = float64(v)
	}
	return out
}

// compute fills the factored u_sim of the batch rows pb (B × d) against q.
func (s *usim) compute(pb, q sparse.Mat, bi *batchItems, workers int) {
	d := q.Cols
	g := gram64(q, workers)
	nb := pb.Rows
	s.inv = append(s.inv[:0], make([]float32, nb)...)
	s.norm = append(s.norm[:0], make([]float64, nb)...)
	s.own = append(s.own[:0], make([]float32, len(bi.item))...)
	for b := range nb {
		p := pb.Row(b)
		tot := 0.0
		for x := range d {
			px := float64(p[x])
			if px == 0 {
				continue
			}
			gx := g[x*d : (x+1)*d]
			acc := 0.0
			for y := range d {
				acc += gx[y] * float64(p[y])
			}
			tot += px * acc
		}
		for k := bi.ptr[b]; k < bi.ptr[b+1]; k++ {
			v := sparse.Dot(p, q.Row(int(bi.item[k])))
			s.own[k] = v
			tot -= float64(v) * float64(v)
		}
		nrm := math.Sqrt(max(tot, 0))
		s.norm[b] = nrm
		s.inv[b] = float32(1 / max(nrm, normEps))
	}
}

// addTerm adds the rows u_sim(b) of term t for every batch user b,
// scaled by scale[b] (nil: 1), into the rows [r0, r0+B) of in, which must
// already have their users set; sparse values are added to the rows'
// existing correction (same item pattern).
func addTerm(in *critInput, r0, t int, s *usim, scale []float32, bi *batchItems) {
	nb := len(s.inv)
	for b := range nb {
		r := r0 + b
		a := s.inv[b]
		if scale != nil {
			a *= scale[b]
		}
		in.coef[r*in.terms+t] += a
		k0 := in.ptr[r]
		for k := bi.ptr[b]; k < bi.ptr[b+1]; k++ {
			in.val[k0+k-bi.ptr[b]] -= a * s.own[k]
		}
	}
}

// appendRows appends B rows (one per batch user, users 0..B-1) with the
// users' item patterns and zero values.
func appendRows(in *critInput, bi *batchItems) {
	nb := len(bi.ptr) - 1
	for b := range nb {
		in.user = append(in.user, int32(b))
		in.item = append(in.item, bi.item[bi.ptr[b]:bi.ptr[b+1]]...)
		in.val = append(in.val, make([]float32, bi.ptr[b+1]-bi.ptr[b])...)
		in.ptr = append(in.ptr, int32(len(in.item)))
	}
}

// xw computes out = X · W1ᵀ (no bias) for the rows of in: the low-rank
// terms from z[t] = Pb_t · (W1·Q_t)ᵀ (B × H1, see critic.prepare) and the
// correction through rows of W1ᵀ (w1t, items × H1).
func xw(out sparse.Mat, in *critInput, w1t sparse.Mat, z []sparse.Mat, workers int) {
	h := out.Cols
	sparse.ParallelFor(in.n, workers, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := out.Row(r)
			clear(o)
			b := int(in.user[r])
			for t := range in.terms {
				if a := in.coef[r*in.terms+t]; a != 0 {
					axpy(a, z[t].Data[b*h:(b+1)*h], o)
				}
			}
			for k := in.ptr[r]; k < in.ptr[r+1]; k++ {
				if v := in.val[k]; v != 0 {
					i := int(in.item[k])
					axpy(v, w1t.Data[i*h:(i+1)*h], o)
				}
			}
		}
	})
}

// w1GradAccum accumulates the low-rank part of Xᵀ·G, the first layer's weight
// gradient (items × H1, W1ᵀ's layout), of input rows in with output
// gradients g (n × H1) into the per-term user sums s[t] (B × H1): call it
// for every pass, then w1GradFinish.
func w1GradAccum(s []sparse.Mat, in *critInput, g sparse.Mat, gw1t sparse.Mat, workers int) {
	h := g.Cols
	for r := range in.n {
		b := int(in.user[r])
		gr := g.Row(r)
		for t := range in.terms {
			if a := in.coef[r*in.terms+t]; a != 0 {
				axpy(a, gr, s[t].Data[b*h:(b+1)*h])
			}
		}
	}
	// The correction: row item of gw1t += val · g_r, parallel over item
	// ranges (each worker scans every entry and applies its own items).
	items := gw1t.Rows
	sparse.ParallelFor(items, workers, func(lo, hi int) {
		for r := range in.n {
			gr := g.Row(r)
			for k := in.ptr[r]; k < in.ptr[r+1]; k++ {
				i := int(in.item[k])
				if i >= lo && i < hi && in.val[k] != 0 {
					axpy(in.val[k], gr, gw1t.Data[i*h:(i+1)*h])
				}
			}
		}
	})
}

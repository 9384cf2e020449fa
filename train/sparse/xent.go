package sparse

import (
	"fmt"
	"math"
)

// SoftmaxXent is the full-softmax cross-entropy of a sequence model's
// output layer and its gradient, without the n × V logits ever existing
// at once: rows of h (n × d hidden states) are scored against every row of
// table (V × d, the output embeddings; tableT is its d × V transpose) in
// blocks of xentBlock rows, each block's log-sum-exp, loss and softmax
// gradient computed in place on the AVX2 product kernel's output.
//
// The loss is Σ_r w_r·(logsumexp_r − logit_{r, tgt_r}) / max(Σ_r w_r, 1),
// where a weight of 0 marks a padding row (its target is not read). dh
// (n × d) and dtable (V × d) are overwritten with the loss's gradient with
// respect to h and table.
//
// The result is bit-identical for any number of workers: the blocks form a
// fixed number of groups whose table gradients and losses are summed in
// group order.
func SoftmaxXent(h, table, tableT Mat, tgt []int32, w []float32, dh, dtable Mat, workers int) (float64, error) {
	for _, m := range []struct {
		name string
		m    Mat
	}{{"h", h}, {"table", table}, {"tableT", tableT}, {"dh", dh}, {"dtable", dtable}} {
		if err := m.m.check("SoftmaxXent " + m.name); err != nil {
			return 0, err
		}
	}
	n, d, v := h.Rows, h.Cols, table.Rows
	switch {
	case table.Cols != d || tableT.Rows != d || tableT.Cols != v:
		return 0, fmt.Errorf("SoftmaxXent: h %d×%d, table %d×%d, tableT %d×%d do not match", n, d, v, table.Cols, tableT.Rows, tableT.Cols)
	case len(tgt) != n || len(w) != n:
		return 0, fmt.Errorf("SoftmaxXent: %d rows, %d targets, %d weights", n, len(tgt), len(w))
	case dh.Rows != n || dh.Cols != d || dtable.Rows != v || dtable.Cols != d:
		return 0, fmt.Errorf("SoftmaxXent: gradients %d×%d and %d×%d, want %d×%d and %d×%d", dh.Rows, dh.Cols, dtable.Rows, dtable.Cols, n, d, v, d)
	}
	var wsum float64
	for r, x := range w {
		if x != 0 && (tgt[r] < 0 || int(tgt[r]) >= v) {
			return 0, fmt.Errorf("SoftmaxXent: row %d: target %d outside [0, %d)", r, tgt[r], v)
		}
		wsum += float64(x)
	}
	scale := 1 / max(wsum, 1)
	blocks := (n + xentBlock - 1) / xentBlock
	groups := min(xentGroups, blocks)
	gradT := make([]Mat, groups) // each group's Gᵀ·h, summed in group order below
	loss := make([]float64, groups)
	ParallelFor(groups, workers, func(glo, ghi int) {
		logits := NewMat(xentBlock, v)
		gt := NewMat(v, xentBlock)
		part := NewMat(v, d)
		for g := glo; g < ghi; g++ {
			acc := NewMat(v, d)
			var l float64
			for b := g * blocks / groups; b < (g+1)*blocks/groups; b++ {
				l += xentBlockStep(h, table, tableT, tgt, w, dh, logits, gt, part, acc, b, scale)
			}
			gradT[g], loss[g] = acc, l
		}
	})
	clear(dtable.Data)
	var total float64
	for g := range groups {
		for j, x := range gradT[g].Data {
			dtable.Data[j] += x
		}
		total += loss[g]
	}
	return total * scale, nil
}

// xentBlockStep runs block b of SoftmaxXent: the block's rows of dh, its
// Gᵀ·h added to acc, and its unscaled loss Σ_r w_r·(logsumexp_r −
// logit_{r, tgt_r}) returned. logits, gt and part are scratch.
func xentBlockStep(h, table, tableT Mat, tgt []int32, w []float32, dh, logits, gt, part, acc Mat, b int, scale float64) float64 {
	n, d, v := h.Rows, h.Cols, table.Rows
	r0, r1 := b*xentBlock, min((b+1)*xentBlock, n)
	k := r1 - r0
	hb := Mat{Rows: k, Cols: d, Data: h.Data[r0*d : r1*d]}
	lg := Mat{Rows: k, Cols: v, Data: logits.Data[:k*v]}
	// The shapes were checked by SoftmaxXent: the products cannot fail.
	_ = MulABtT(lg, hb, tableT, 1)
	var l float64
	for i := range k {
		row := lg.Row(i)
		wr := w[r0+i]
		if wr == 0 {
			clear(row)
			continue
		}
		mx := row[0]
		for _, x := range row {
			mx = max(mx, x)
		}
		t := tgt[r0+i]
		lt := row[t]
		var s float64
		for j, x := range row {
			e := exp32(x - mx)
			row[j] = e
			s += float64(e)
		}
		// logsumexp − logit_t = log s + mx − logit_t.
		l += float64(wr) * (math.Log(s) + float64(mx) - float64(lt))
		c := float32(float64(wr) * scale / s)
		for j := range row {
			row[j] *= c
		}
		row[t] -= float32(float64(wr) * scale)
	}
	// dh rows = G·table; acc += Gᵀ·h_block.
	_ = MulABtT(Mat{Rows: k, Cols: d, Data: dh.Data[r0*d : r1*d]}, lg, table, 1)
	gb := Mat{Rows: v, Cols: k, Data: gt.Data[:v*k]}
	for i := range k {
		for j, x := range lg.Row(i) {
			gb.Data[j*k+i] = x
		}
	}
	_ = MulABtT(part, gb, hb, 1)
	for j, x := range part.Data {
		acc.Data[j] += x
	}
	return l
}

// xentBlock is SoftmaxXent's rows per block: 32 rows of logits over 10⁴
// items are 1.3 MB, which stays in L2 between the product, the softmax and
// the gradient products.
const xentBlock = 32

// xentGroups is the number of block groups whose table gradients
// SoftmaxXent sums in a fixed order (so the sum does not depend on the
// number of workers); it bounds the parallelism and costs one V × d matrix
// each.
const xentGroups = 8

// exp32 is e^x for x ≤ 0 in float32 (x − max of a row): Cody–Waite range
// reduction x = k·ln2 + r, |r| ≤ ln2/2, and a degree-6 polynomial for e^r
// (relative error below 3e-7); 0 below −87.
func exp32(x float32) float32 {
	if x < -87 {
		return 0
	}
	ki := -int32(-x*1.442695041 + 0.5) // round(x·log2 e), x ≤ 0
	k := float32(ki)
	r := x - k*0.693359375 + k*2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(ki+127)<<23)
}

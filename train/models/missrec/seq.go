package missrec

import (
	"slices"
)

// prefix is one training row, as RecBole builds them: the history
// hist[user][max(0, end−max_len):end] predicts hist[user][end].
type prefix struct {
	user int32
	end  int32
}

// prefixes lists every training row: each item after a user's first is a
// target once.
func prefixes(hist [][]int32) []prefix {
	var out []prefix
	for u, s := range hist {
		for t := 1; t < len(s); t++ {
			out = append(out, prefix{int32(u), int32(t)})
		}
	}
	return out
}

// interestSet returns the sorted unique interest ids of a history, as the
// reference builds them: the text and the image cluster id (+1) of every
// item, and 0 when the reference's max_len-long padded sequence has padding
// (len(h) < maxLen), since the padding positions look up id 0. lookT and
// lookV map item index → id (nil for a missing modality).
func interestSet(h []int32, lookT, lookV []int64, maxLen int, buf []int32) []int32 {
	return interestSetOf(h, h, lookT, lookV, len(h) < maxLen, buf)
}

// interestSetOf is interestSet with the text ids taken from the items tItems
// and the image ids from vItems (pre-training's augmented view keeps the
// image ids of the un-augmented sequence); pad adds id 0.
func interestSetOf(tItems, vItems []int32, lookT, lookV []int64, pad bool, buf []int32) []int32 {
	buf = buf[:0]
	if pad {
		buf = append(buf, 0)
	}
	if lookT != nil {
		for _, it := range tItems {
			buf = append(buf, int32(lookT[it]))
		}
	}
	if lookV != nil {
		for _, it := range vItems {
			buf = append(buf, int32(lookV[it]))
		}
	}
	slices.Sort(buf)
	return slices.Compact(buf)
}

// batchInputs are the host-side inputs of one batch of histories.
type batchInputs struct {
	B, L, Q  int
	seq      []int32   // [B, L] item rows of the text table (index+1), 0 = padding
	seqV     []int32   // [B, L] item rows of the image table (= seq but in an augmented view)
	selfBias []float32 // [B, L] 0 or maskBias
	last     []int32   // [B] flat position of the last item
	ids      []int32   // [B, Q] interest ids, 0 = padding
	memBias  []float32 // [B, Q]
	regW     []float32 // [B, Q] regulariser weights
	nq       int       // the reference's N_q: the batch's largest interest set
}

// maskBias is the additive bias of a masked key (exp underflows to 0; a row
// with every key masked gets uniform weights instead of NaN).
const maskBias = -1e9

// viewRow is one row of a batch: the text-table and image-table rows of
// its positions (same length; 0 = padding, not allowed inside) and its
// interest set.
type viewRow struct {
	t, v []int32
	set  []int32
}

// qPad rounds an interest count up to a multiple of step (at least step).
func qPad(nq, step int) int { return max(step, (nq+step-1)/step*step) }

// buildBatch lays out histories (each already cut to max_len, at most L
// items) for a batch of B rows: items left-aligned, interest sets
// right-padded with 0 to a multiple of qStep. The regulariser weight of row
// b is (its non-padding interests)/N_q on the first N_q positions (N_q = the
// batch's largest set, as the reference pads to it) and 0 after.
func buildBatch(hs [][]int32, B, L, qStep int, lookT, lookV []int64, maxLen int) *batchInputs {
	rows := make([]viewRow, len(hs))
	nq := 0
	for r, h := range hs {
		t := make([]int32, len(h))
		for k, it := range h {
			t[k] = it + 1
		}
		rows[r] = viewRow{t: t, v: t, set: interestSet(h, lookT, lookV, maxLen, nil)}
		nq = max(nq, len(rows[r].set))
	}
	return fillBatch(rows, B, L, qPad(nq, qStep))
}

// fillBatch lays out rows (at most B, each at most L positions, sets at
// most Q ids) as buildBatch describes.
func fillBatch(rows []viewRow, B, L, Q int) *batchInputs {
	in := &batchInputs{B: B, L: L, Q: Q, seq: make([]int32, B*L), seqV: make([]int32, B*L),
		selfBias: make([]float32, B*L), last: make([]int32, B)}
	for _, r := range rows {
		in.nq = max(in.nq, len(r.set))
	}
	in.ids, in.memBias, in.regW = make([]int32, B*Q), make([]float32, B*Q), make([]float32, B*Q)
	for r := range B {
		var row viewRow
		if r < len(rows) {
			row = rows[r]
		}
		for t := range L {
			if t < len(row.t) {
				in.seq[r*L+t], in.seqV[r*L+t] = row.t[t], row.v[t]
			} else {
				in.selfBias[r*L+t] = maskBias
			}
		}
		in.last[r] = int32(r*L + max(len(row.t)-1, 0))
		real := 0
		for j := range Q {
			if j < len(row.set) {
				in.ids[r*Q+j] = row.set[j]
			}
			if in.ids[r*Q+j] == 0 {
				in.memBias[r*Q+j] = maskBias
			} else {
				real++
			}
		}
		if in.nq > 0 {
			w := float32(real) / float32(in.nq)
			for j := range in.nq {
				in.regW[r*Q+j] = w
			}
		}
	}
	return in
}

// augment builds the augmented view of a pre-training history h (global
// item indices, oldest first) as the reference's transform does (§3.7):
// keep[k] is the Bernoulli(1 − item_drop_ratio) draw of position k.
//
//   - item drop: the kept positions (position 0 always kept), compacted to
//     the left; their text rows and text interest ids, but — the
//     reference's quirk — the image rows and image interest ids of the
//     un-augmented sequence;
//   - word drop: the same sequence, the text of each dropped position
//     taken from the word-dropped table (rows t2Off + index + 1), or, when
//     there is none (t2Off < 0), from no text (row 0, zero features).
//
// The interest set has id 0 when the view is shorter than maxLen.
func augment(h []int32, keep []bool, itemDrop bool, lookT, lookV []int64, maxLen, t2Off int) viewRow {
	if itemDrop {
		var aug []int32
		for k, it := range h {
			if k == 0 || keep[k] {
				aug = append(aug, it)
			}
		}
		t, v := make([]int32, len(aug)), make([]int32, len(aug))
		for k := range aug {
			t[k], v[k] = aug[k]+1, h[k]+1
		}
		return viewRow{t: t, v: v, set: interestSetOf(aug, h, lookT, lookV, len(aug) < maxLen, nil)}
	}
	t, v := make([]int32, len(h)), make([]int32, len(h))
	for k, it := range h {
		t[k], v[k] = it+1, it+1
		if !keep[k] {
			t[k] = 0
			if t2Off >= 0 {
				t[k] = int32(t2Off) + it + 1
			}
		}
	}
	return viewRow{t: t, v: v, set: interestSet(h, lookT, lookV, maxLen, nil)}
}

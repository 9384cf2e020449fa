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
	buf = buf[:0]
	if len(h) < maxLen {
		buf = append(buf, 0)
	}
	for _, it := range h {
		if lookT != nil {
			buf = append(buf, int32(lookT[it]))
		}
		if lookV != nil {
			buf = append(buf, int32(lookV[it]))
		}
	}
	slices.Sort(buf)
	return slices.Compact(buf)
}

// batchInputs are the host-side inputs of one batch of histories.
type batchInputs struct {
	B, L, Q  int
	seq      []int32   // [B, L] item rows (index+1), 0 = padding
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

// buildBatch lays out histories (each already cut to max_len, at most L
// items) for a batch of B rows: items left-aligned, interest sets
// right-padded with 0 to a multiple of qStep. The regulariser weight of row
// b is (its non-padding interests)/N_q on the first N_q positions (N_q = the
// batch's largest set, as the reference pads to it) and 0 after.
func buildBatch(hs [][]int32, B, L, qStep int, lookT, lookV []int64, maxLen int) *batchInputs {
	in := &batchInputs{B: B, L: L, seq: make([]int32, B*L), selfBias: make([]float32, B*L), last: make([]int32, B)}
	sets := make([][]int32, len(hs))
	for r, h := range hs {
		sets[r] = interestSet(h, lookT, lookV, maxLen, nil)
		in.nq = max(in.nq, len(sets[r]))
	}
	in.Q = max(qStep, (in.nq+qStep-1)/qStep*qStep)
	Q := in.Q
	in.ids, in.memBias, in.regW = make([]int32, B*Q), make([]float32, B*Q), make([]float32, B*Q)
	for r := range B {
		var h []int32
		if r < len(hs) {
			h = hs[r]
		}
		for t := range L {
			if t < len(h) {
				in.seq[r*L+t] = h[t] + 1
			} else {
				in.selfBias[r*L+t] = maskBias
			}
		}
		in.last[r] = int32(r*L + max(len(h)-1, 0))
		var set []int32
		if r < len(sets) {
			set = sets[r]
		}
		real := 0
		for j := range Q {
			if j < len(set) {
				in.ids[r*Q+j] = set[j]
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

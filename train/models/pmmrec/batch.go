package pmmrec

import (
	"math"
	"slices"

	"github.com/mmpipe/mmpipe/train"
)

// batch is the host side of one training step: B users, S = L+1 slots
// each (left-padded item rows, 0 = padding), the distinct items to encode
// and every mask of §4.6 and of the pre-training losses.
type batch struct {
	B, L, S, U int
	rows       []int32   // [U] item rows to encode (distinct, padded with 0)
	slot       []int32   // [B·S] index into rows of each slot's item
	attnBias   []float32 // [B, L, L] 0 where key ≤ query and the key slot is real, else −1e9
	logQ       []float32 // [B·S] log popularity of each slot's item (0 for padding)
	colMask    []float32 // [B·L, B·S] 1 where the logit is set to −1e4
	target     []int32   // [B·L] target column b·S+j+1
	rowW       []float32 // [B·L] 1 for a real input position

	// Pre-training.
	noised  []int32   // [B·L] index into rows of the noised sequences' items
	noiseY  []float32 // [B·L] 1 where the item was replaced
	posW    []float32 // [2N, 2N] NICL positives' weights 1/|P| (N = B·S)
	cand    []float32 // [2N, 2N] NICL candidates (positives and negatives)
	anchorW []float32 // [2N] 1 for a real slot
	userW   []float32 // [B] 1 for a user with at least one input
}

// buildBatch lays out seqs (each ≤ L+1 item rows, the last L+1 training
// items of a user) as a batch of B users. logPop[r] is log p_pop of item
// row r. With rng (pre-training), a share noiseRate of each sequence's
// input items is replaced by random items (rows 1..numItems) and the NICL
// and RCL masks are built. bucket rounds U up.
func buildBatch(seqs [][]int32, B, L int, logPop []float32, bucket int, rng *train.RNG, noiseRate float64, numItems int) *batch {
	S := L + 1
	bt := &batch{B: B, L: L, S: S}
	items := make([]int32, B*S)
	for b, s := range seqs {
		copy(items[b*S+S-len(s):(b+1)*S], s)
	}
	index := map[int32]int32{}
	add := func(r int32) int32 {
		k, ok := index[r]
		if !ok {
			k = int32(len(bt.rows))
			index[r] = k
			bt.rows = append(bt.rows, r)
		}
		return k
	}
	add(0)
	bt.slot = make([]int32, B*S)
	bt.logQ = make([]float32, B*S)
	for c, r := range items {
		bt.slot[c] = add(r)
		bt.logQ[c] = logPop[r]
	}
	bt.attnBias = make([]float32, B*L*L)
	bt.target = make([]int32, B*L)
	bt.rowW = make([]float32, B*L)
	bt.colMask = make([]float32, B*L*B*S)
	for b := range B {
		own := items[b*S : (b+1)*S]
		for q := range L {
			for k := range L {
				if k > q || own[k] == 0 {
					bt.attnBias[(b*L+q)*L+k] = -1e9
				}
			}
		}
		for j := range L {
			row := b*L + j
			tc := b*S + j + 1
			bt.target[row] = int32(tc)
			if own[j] != 0 {
				bt.rowW[row] = 1
			}
			m := bt.colMask[row*B*S : (row+1)*B*S]
			for c, r := range items {
				if c != tc && (r == 0 || slices.Contains(own, r)) {
					m[c] = 1
				}
			}
		}
	}
	if rng != nil {
		bt.noise(items, rng, noiseRate, numItems, add)
		bt.nicl(items)
	}
	bt.U = (len(bt.rows) + bucket - 1) / bucket * bucket
	for len(bt.rows) < bt.U {
		bt.rows = append(bt.rows, 0)
	}
	return bt
}

// noise draws the noised sequences: in each user's real input positions
// (n of them), k = max(1, round(rate·n)) distinct positions get a random
// other item.
func (bt *batch) noise(items []int32, rng *train.RNG, rate float64, numItems int, add func(int32) int32) {
	B, L, S := bt.B, bt.L, bt.S
	bt.noised = make([]int32, B*L)
	bt.noiseY = make([]float32, B*L)
	bt.userW = make([]float32, B)
	for b := range B {
		var pos []int
		for j := range L {
			bt.noised[b*L+j] = bt.slot[b*S+j]
			if items[b*S+j] != 0 {
				pos = append(pos, j)
			}
		}
		if len(pos) == 0 {
			continue
		}
		bt.userW[b] = 1
		if numItems < 2 {
			continue
		}
		k := max(1, int(math.Round(rate*float64(len(pos)))))
		for i := range k { // partial Fisher–Yates
			r := i + rng.IntN(len(pos)-i)
			pos[i], pos[r] = pos[r], pos[i]
			j := pos[i]
			orig := items[b*S+j]
			nr := int32(1 + rng.IntN(numItems-1)) // 1..numItems−1, skipping orig
			if nr >= orig {
				nr++
			}
			bt.noised[b*L+j] = add(nr)
			bt.noiseY[b*L+j] = 1
		}
	}
}

// nicl builds NICL's masks over the 2N anchors (text vectors of the N
// slots, then their image vectors). An anchor of slot s (item i) has as
// positives the other modality's vector of slot s and, when slot s+1 is a
// real slot of the same user (item i'), of slot s+1; its negatives are the
// vectors of both modalities of every real slot whose item is neither i nor
// i'; the other vectors (the anchor itself, same-item and next-item
// vectors of another slot or of the same modality) take no part.
func (bt *batch) nicl(items []int32) {
	N, S := bt.B*bt.S, bt.S
	A := 2 * N
	bt.posW = make([]float32, A*A)
	bt.cand = make([]float32, A*A)
	bt.anchorW = make([]float32, A)
	for a := range A {
		s := a % N
		if items[s] == 0 {
			continue
		}
		bt.anchorW[a] = 1
		other := N - (a/N)*N // offset of the other modality: +N for text, 0 for image
		pos := []int{other + s}
		ids := []int32{items[s]}
		if s%S+1 < S && items[s+1] != 0 {
			pos = append(pos, other+s+1)
			ids = append(ids, items[s+1])
		}
		w := float32(1) / float32(len(pos))
		for _, p := range pos {
			bt.posW[a*A+p] = w
			bt.cand[a*A+p] = 1
		}
		for x := range A {
			r := items[x%N]
			if x == a || r == 0 || slices.Contains(ids, r) {
				continue
			}
			bt.cand[a*A+x] = 1
		}
	}
}

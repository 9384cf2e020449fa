package sasrec

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// window is one training sequence: inputs seq[start : start+n] predict
// seq[start+1 : start+n+1], every position a target.
type window struct {
	user  int32
	start int32
	n     int32
}

// windows cuts each user's training sequence into windows of at most
// maxLen inputs that cover every target (items 2..len) exactly once,
// starting from the most recent: a sequence of up to maxLen+1 items is one
// window; the targets of a longer one that fall before its last window
// form earlier windows.
func windows(hist [][]int32, maxLen int) []window {
	var out []window
	for u, s := range hist {
		end := len(s) // targets are s[1:end]
		for end > 1 {
			st := max(0, end-1-maxLen)
			out = append(out, window{user: int32(u), start: int32(st), n: int32(end - 1 - st)})
			end = st + 1
		}
	}
	return out
}

// bucketLen returns the padded length of a window of n inputs.
func bucketLen(n, step, maxLen int) int {
	return min(maxLen, (n+step-1)/step*step)
}

// batchRef is one batch of an epoch plan: windows[lo:hi] of bucket b.
type batchRef struct{ bucket, lo, hi int }

// plan is an epoch's order: windows shuffled inside their length bucket,
// cut into batches, the batches shuffled.
type plan struct {
	order   [][]int // per bucket, window indices
	batches []batchRef
}

// buckets groups window indices by padded length (ascending).
func buckets(ws []window, step, maxLen int) (lens []int, members [][]int) {
	idx := map[int]int{}
	for k, w := range ws {
		l := bucketLen(int(w.n), step, maxLen)
		b, ok := idx[l]
		if !ok {
			b = len(lens)
			idx[l] = b
			lens = append(lens, l)
			members = append(members, nil)
		}
		members[b] = append(members[b], k)
	}
	// Sort buckets by length for stable, readable plans.
	perm := make([]int, len(lens))
	for k := range perm {
		perm[k] = k
	}
	slices.SortFunc(perm, func(a, b int) int { return cmp.Compare(lens[a], lens[b]) })
	sl, sm := make([]int, len(lens)), make([][]int, len(lens))
	for k, p := range perm {
		sl[k], sm[k] = lens[p], members[p]
	}
	return sl, sm
}

// countBatches is the number of batches of every epoch; batch gives the
// batch size of bucket b.
func countBatches(members [][]int, batch func(b int) int) int {
	n := 0
	for b, m := range members {
		n += (len(m) + batch(b) - 1) / batch(b)
	}
	return n
}

// newPlan draws an epoch plan from seed.
func newPlan(members [][]int, batch func(b int) int, seed uint64) *plan {
	r := rand.New(rand.NewPCG(seed, 0x5a5ec))
	p := &plan{order: make([][]int, len(members))}
	for b, m := range members {
		o := slices.Clone(m)
		r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		p.order[b] = o
		bs := batch(b)
		for lo := 0; lo < len(o); lo += bs {
			p.batches = append(p.batches, batchRef{bucket: b, lo: lo, hi: min(lo+bs, len(o))})
		}
	}
	r.Shuffle(len(p.batches), func(i, j int) { p.batches[i], p.batches[j] = p.batches[j], p.batches[i] })
	return p
}

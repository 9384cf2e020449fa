package seqdata

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/mmpipe/mmpipe/train"
)

// BucketLen returns the padded length of a sequence of n inputs: n rounded
// up to a multiple of step, at most maxLen.
func BucketLen(n, step, maxLen int) int {
	return min(maxLen, (n+step-1)/step*step)
}

// Buckets groups rows 0..n-1 by padded length (length(k) is row k's
// unpadded input length), in ascending order of length.
func Buckets(n int, length func(k int) int, step, maxLen int) (lens []int, members [][]int) {
	idx := map[int]int{}
	for k := range n {
		l := BucketLen(length(k), step, maxLen)
		b, ok := idx[l]
		if !ok {
			b = len(lens)
			idx[l] = b
			lens = append(lens, l)
			members = append(members, nil)
		}
		members[b] = append(members[b], k)
	}
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

// CountBatches is the number of batches of every epoch; batch gives the
// batch size of bucket b.
func CountBatches(members [][]int, batch func(b int) int) int {
	n := 0
	for b, m := range members {
		n += (len(m) + batch(b) - 1) / batch(b)
	}
	return n
}

// BatchRef is one batch of an epoch plan: rows Order[Bucket][Lo:Hi].
type BatchRef struct{ Bucket, Lo, Hi int }

// Plan is an epoch's order: rows shuffled inside their length bucket, cut
// into batches, the batches shuffled.
type Plan struct {
	Order   [][]int // per bucket, row indices
	Batches []BatchRef
}

// NewPlan draws an epoch plan from seed on the PCG stream of the model
// (each model keeps its own stream constant, so its plans never change).
func NewPlan(members [][]int, batch func(b int) int, seed, stream uint64) *Plan {
	r := rand.New(rand.NewPCG(seed, stream))
	p := &Plan{Order: make([][]int, len(members))}
	for b, m := range members {
		o := slices.Clone(m)
		r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		p.Order[b] = o
		bs := batch(b)
		for lo := 0; lo < len(o); lo += bs {
			p.Batches = append(p.Batches, BatchRef{Bucket: b, Lo: lo, Hi: min(lo+bs, len(o))})
		}
	}
	r.Shuffle(len(p.Batches), func(i, j int) { p.Batches[i], p.Batches[j] = p.Batches[j], p.Batches[i] })
	return p
}

// Cursor walks a model's epoch plans: at the start of an epoch it draws
// the plan's seed from the training stream, and it rebuilds the plan after
// a resume from the seed and position a checkpoint saved (State). Its
// zero value starts an epoch.
type Cursor struct {
	seed, pos int64
	plan      *Plan
	planFor   int64
}

// Next returns the next batch and its plan. At the start of an epoch it
// draws the seed (one rng.Uint64) and then calls epochStart (nil: none),
// which may draw more; build makes the plan from the seed.
func (c *Cursor) Next(rng *train.RNG, epochStart func() error, build func(seed uint64) *Plan) (BatchRef, *Plan, error) {
	if c.pos == 0 || c.plan == nil || c.planFor != c.seed {
		if c.pos == 0 {
			c.seed = int64(rng.Uint64() >> 1)
			if epochStart != nil {
				if err := epochStart(); err != nil {
					return BatchRef{}, nil, err
				}
			}
		}
		c.plan = build(uint64(c.seed))
		c.planFor = c.seed
	}
	if c.pos < 0 || int(c.pos) >= len(c.plan.Batches) {
		return BatchRef{}, nil, fmt.Errorf("epoch plan: batch %d of a plan of %d (a checkpoint of another dataset or batch size?)", c.pos, len(c.plan.Batches))
	}
	ref := c.plan.Batches[c.pos]
	c.pos++
	if int(c.pos) == len(c.plan.Batches) {
		c.pos = 0
	}
	return ref, c.plan, nil
}

// State returns the checkpoint tensors of the cursor: the current plan's
// seed ("plan.seed") and the next batch of it ("plan.pos"; 0 starts a new
// epoch).
func (c *Cursor) State() []train.Tensor {
	return []train.Tensor{train.ScalarI64("plan.seed", &c.seed), train.ScalarI64("plan.pos", &c.pos)}
}

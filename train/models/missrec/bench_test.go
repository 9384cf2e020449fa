package missrec

import (
	"math/rand/v2"
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/gx"
)

// BenchmarkTrainStep times one training step at the reference's sizes
// (dim 300, batch 512, 512-d text and image features) on a catalogue of
// 1,585 items (the CLIP subset of Amazon Scientific), histories of 20.
func BenchmarkTrainStep(b *testing.B) {
	c := DefaultConfig()
	const items, feat, L = 1585, 512, 20
	lay := paramLayout(c, items, feat, feat)
	m := &Model{cfg: c, lay: lay, numItems: items, dimT: feat, dimV: feat}
	m.offs = []int{0}
	for _, s := range lay.specs {
		m.offs = append(m.offs, m.offs[len(m.offs)-1]+prod(s.shape))
	}
	m.params = make([]float32, m.offs[len(m.offs)-1])
	m.grad = make([]float32, len(m.params))
	r := rand.New(rand.NewPCG(1, 2))
	m.init(r)
	m.featT, m.featV = make([]float32, (items+1)*feat), make([]float32, (items+1)*feat)
	for k := feat; k < len(m.featT); k++ {
		m.featT[k], m.featV[k] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	m.lookT, m.lookV = make([]int64, items), make([]int64, items)
	for i := range items {
		m.lookT[i], m.lookV[i] = int64(1+r.IntN(items)), int64(1+r.IntN(items))
	}
	m.numInterest = items
	m.interest = make([]float32, (items+1)*c.Dim)
	be, err := gx.NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	if m.trainP, err = gx.NewProgram(be, "bench", 0, trainGraph(c, lay, nil)); err != nil {
		b.Fatal(err)
	}
	hs := make([][]int32, c.BatchSize)
	target, rowW := make([]int32, c.BatchSize), make([]float32, c.BatchSize)
	for k := range hs {
		n := 1 + r.IntN(L)
		for range n {
			hs[k] = append(hs[k], int32(r.IntN(items)))
		}
		target[k], rowW[k] = int32(1+r.IntN(items)), 1
	}
	in := buildBatch(hs, c.BatchSize, L, c.LenBucket, m.lookT, m.lookV, c.MaxLen)
	rng := train.NewRNG(1, 2)
	b.ResetTimer()
	for range b.N {
		if _, err := m.step(in, target, rowW, rng); err != nil {
			b.Fatal(err)
		}
	}
}

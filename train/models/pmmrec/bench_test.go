package pmmrec

import (
	"math/rand/v2"
	"testing"

	"github.com/mmpipe/mmpipe/train"
)

// BenchmarkTrainStep times one fine-tuning step at Office-like shapes
// (2,420 items, 32 users × 21 slots, text tower, 16 tokens × 384, dim
// 128) and, separately, the host-side batch construction.
//
//	GOEXPERIMENT=simd go test -run - -bench TrainStep ./train/models/pmmrec/
func BenchmarkTrainStep(b *testing.B) {
	const items, users = 2420, 600
	rng := rand.New(rand.NewPCG(1, 2))
	c := DefaultConfig()
	c.Tower, c.Dim, c.FusionHeads = TowerText, 128, 2
	tt := tinyTokensB(rng, items, 16, 384)
	hist := make([][]int32, users)
	for u := range hist {
		n := 3 + rng.IntN(20)
		for range n {
			hist[u] = append(hist[u], int32(rng.IntN(items)))
		}
	}
	m, err := newModel(c, items, users, 2, tt, nil, hist, rng)
	if err != nil {
		b.Fatal(err)
	}
	seqs := m.seqs[:32]
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			buildBatch(seqs, 32, 20, m.logPop, 64, nil, 0, items)
		}
	})
	bt := buildBatch(seqs, 32, 20, m.logPop, 64, nil, 0, items)
	r := train.NewRNG(1, 2)
	b.Run("step", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.step(bt, r, c.Dropout); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func tinyTokensB(rng *rand.Rand, items, T, dim int) *tokenTable {
	n := make([]int32, items)
	data := make([][]float32, items)
	for i := range items {
		n[i] = int32(1 + rng.IntN(T))
		data[i] = make([]float32, T*dim)
		for k := range int(n[i]) * dim {
			data[i][k] = float32(rng.NormFloat64() * 0.05)
		}
	}
	return memTokens("bench", T, dim, n, data)
}

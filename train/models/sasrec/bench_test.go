package sasrec

import (
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
)

// BenchmarkTrainStep times one SASRec training step (forward, backward,
// without the host Adam update) at the default sizes on a 4,385-item
// catalogue (Amazon Scientific) for a few length buckets: 256 sequences,
// every position a target.
func BenchmarkTrainStep(b *testing.B) {
	for _, L := range []int{10, 50} {
		b.Run("len"+itoa(L), func(b *testing.B) {
			c := DefaultConfig()
			const numItems, B = 4385, 256
			shapes := paramShapes(c, numItems)
			rng := train.NewRNG(1, 1)
			var params [][]float32
			for _, s := range shapes {
				n := 1
				for _, x := range s {
					n *= x
				}
				p := make([]float32, n)
				for j := range p {
					p[j] = float32(rng.NormFloat64() * 0.02)
				}
				params = append(params, p)
			}
			seq := make([]int32, B*L)
			var tPos, tItem []int32
			for k := range seq {
				seq[k] = int32(rng.IntN(numItems)) + 1
				tPos, tItem = append(tPos, int32(k)), append(tItem, int32(rng.IntN(numItems)))
			}
			tW := seqdata.DropMask(nil, len(tPos), 0)
			be, err := gx.NewBackend("")
			if err != nil {
				b.Fatal(err)
			}
			prog, err := gx.NewProgram(be, "bench", 0, trainGraph(c, numItems, len(shapes)))
			if err != nil {
				b.Fatal(err)
			}
			grads := make([][]float32, len(shapes))
			for k := range grads {
				grads[k] = make([]float32, len(params[k]))
			}
			b.ResetTimer()
			for range b.N {
				args := []any{}
				for k, s := range shapes {
					args = append(args, gx.F32(params[k], s...))
				}
				n := len(tPos)
				d, H := c.Dim, c.Heads
				args = append(args, gx.I32(seq, B, L), gx.F32(attnBias(seq, B, L), B, L, L), gx.I32(tPos, n), gx.I32(tItem, n), gx.F32(tW, n),
					gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d))
				for range c.Layers {
					args = append(args, gx.F32(seqdata.DropMask(rng, B*H*L*L, c.AttnDropout), B, H, L, L),
						gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d), gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d))
				}
				outs, err := prog.Run(args...)
				if err != nil {
					b.Fatal(err)
				}
				gx.Release(outs[0])
				for k := range shapes {
					if err := gx.CopyF32(grads[k], outs[k+1]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

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
// every position a target. "native" is the step the model runs on GoMLX's
// Go backend (GoMLX encoder, native output softmax); "graph" the whole step
// in one GoMLX graph, as on the XLA backends.
func BenchmarkTrainStep(b *testing.B) {
	for _, step := range []string{"native", "graph"} {
		for _, L := range []int{10, 50} {
			b.Run(step+"/len"+itoa(L), func(b *testing.B) {
				c := DefaultConfig()
				const numItems, B = 4385, 256
				m := &Model{cfg: c, numItems: numItems, workers: 1}
				m.allocParams()
				shapes := m.shapes
				rng := train.NewRNG(1, 1)
				for j := range m.params {
					m.params[j] = float32(rng.NormFloat64() * 0.02)
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
				np := len(shapes)
				if step == "graph" {
					m.trainP, err = gx.NewProgram(be, "bench", 0, trainGraph(c, numItems, np))
				} else if m.hidP, err = gx.NewProgram(be, "bench.hidden", 0, hiddenGraph(c, np)); err == nil {
					m.vjpP, err = gx.NewProgram(be, "bench.vjp", 0, hiddenVJPGraph(c, np))
				}
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					n := len(tPos)
					d, H := c.Dim, c.Heads
					args := m.paramArgs(nil)
					args = append(args, gx.I32(seq, B, L), gx.F32(attnBias(seq, B, L), B, L, L), gx.I32(tPos, n), gx.I32(tItem, n), gx.F32(tW, n),
						gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d))
					for range c.Layers {
						args = append(args, gx.F32(seqdata.DropMask(rng, B*H*L*L, c.AttnDropout), B, H, L, L),
							gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d), gx.F32(seqdata.DropMask(rng, B*L*d, c.HiddenDropout), B*L, d))
					}
					if step == "graph" {
						_, err = m.graphStep(args)
					} else {
						_, err = m.nativeStep(args, tItem, tW)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

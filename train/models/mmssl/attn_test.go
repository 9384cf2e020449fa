package mmssl

import (
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// TestAttentionVJP checks the intended mode's cross-modal attention Op
// against central differences (sparse.CheckVJP) for 2 and 3 modalities.
func TestAttentionVJP(t *testing.T) {
	rng := train.NewRNG(4, 1)
	for _, c := range []struct{ m, heads int }{{2, 2}, {3, 1}, {2, 4}} {
		op := &attnOp{M: c.m, Heads: c.heads, Workers: 2}
		var in []sparse.Mat
		for range c.m {
			x := sparse.NewMat(5, 8)
			sparse.InitNormal(x, 1, rng.Rand)
			in = append(in, x)
		}
		for range 4 {
			w := sparse.NewMat(8, 8)
			sparse.InitNormal(w, 0.5, rng.Rand)
			in = append(in, w)
		}
		worst, err := sparse.CheckVJP(op, in, 1e-2, 0, rng.Rand)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d modalities, %d heads: worst error %.3g", c.m, c.heads, worst)
		if worst > 2e-2 {
			t.Errorf("%d modalities, %d heads: VJP differs from finite differences by %.3g", c.m, c.heads, worst)
		}
	}
}

package train

import (
	"fmt"
	"math"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// BPR computes Bayesian personalised ranking's loss over a batch of B
// triples, the rows of u (users), p (positive items) and n (negative
// items):
//
//	L = (1/B) Σ_b softplus(−x_b),  x_b = ⟨u_b, p_b⟩ − ⟨u_b, n_b⟩
//
// (= −mean log σ(x_b), computed stably), and writes ∂L/∂u, ∂L/∂p and
// ∂L/∂n into gu, gp and gn (overwritten; same shapes as the inputs).
func BPR(u, p, n, gu, gp, gn sparse.Mat) (float64, error) {
	b, d := u.Rows, u.Cols
	for _, m := range []sparse.Mat{p, n, gu, gp, gn} {
		if m.Rows != b || m.Cols != d || len(m.Data) != b*d {
			return 0, fmt.Errorf("bpr: shapes differ: %d×%d and %d×%d", b, d, m.Rows, m.Cols)
		}
	}
	if b == 0 {
		return 0, nil
	}
	loss := 0.0
	inv := 1 / float64(b)
	for r := range b {
		ur, pr, nr := u.Row(r), p.Row(r), n.Row(r)
		x := 0.0
		for k := range d {
			x += float64(ur[k]) * (float64(pr[k]) - float64(nr[k]))
		}
		loss += softplus(-x)
		// d softplus(−x)/dx = −σ(−x)
		c := float32(-sigmoid(-x) * inv)
		gur, gpr, gnr := gu.Row(r), gp.Row(r), gn.Row(r)
		for k := range d {
			gur[k] = c * (pr[k] - nr[k])
			gpr[k] = c * ur[k]
			gnr[k] = -c * ur[k]
		}
	}
	return loss * inv, nil
}

// softplus returns log(1 + e^x) without overflow.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

// sigmoid returns 1/(1 + e^−x) without overflow.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// L2 returns weight · ½ Σ ‖row‖² / B over the rows idx of table (each
// occurrence counted, as the LightGCN reference does on the batch's ego
// embeddings) and, when grad is not nil, adds its gradient weight·row/B to
// grad's rows.
func L2(table sparse.Mat, idx []int32, weight float64, batch int, grad func(row int32, scale float32, v []float32)) float64 {
	if weight == 0 || batch == 0 {
		return 0
	}
	s := 0.0
	scale := float32(weight / float64(batch))
	for _, r := range idx {
		row := table.Row(int(r))
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		if grad != nil {
			grad(r, scale, row)
		}
	}
	return weight * 0.5 * s / float64(batch)
}

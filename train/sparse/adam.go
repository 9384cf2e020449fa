package sparse

import (
	"fmt"
	"math"
)

// AdamConfig holds Adam's hyper-parameters (PyTorch's names and defaults:
// betas 0.9 and 0.999, eps 1e-8).
type AdamConfig struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	// Decoupled selects AdamW (decay applied to the parameters, scaled by
	// the learning rate) instead of Adam's L2 term added to the gradient.
	Decoupled bool
}

// DefaultAdam returns PyTorch's defaults with learning rate lr.
func DefaultAdam(lr float64) AdamConfig {
	return AdamConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Adam is the optimiser state of one float32 parameter tensor: the step
// count and the first and second moments. It offers two update rules:
//
//   - [Adam.Update], dense: PyTorch's torch.optim.Adam / AdamW
//     (single-tensor path). Every element's moments decay on every step,
//     whether or not its gradient is zero: the rule the LightGCN reference
//     and the PyTorch comparison script use.
//
//   - [Adam.UpdateRows], lazy (row-sparse): PyTorch's torch.optim.SparseAdam.
//     Only the rows present in the gradient have their moments and values
//     updated; untouched rows keep their moments unchanged (no decay).
//     Bias correction uses the tensor's global step count, incremented once
//     per call, as SparseAdam does; so does its placement of eps:
//     p -= lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + eps). With WeightDecay, the L2
//     term (Adam) or the decoupled decay (AdamW) applies to the touched rows
//     only (SparseAdam itself has no weight decay).
//
// Use one rule per tensor for the whole run. Moments are float32 like
// PyTorch's; bias corrections are computed in float64.
type Adam struct {
	AdamConfig
	Step    int64
	M, V    []float32
	Workers int
}

// NewAdam returns the state for a parameter of n elements.
func NewAdam(cfg AdamConfig, n, workers int) *Adam {
	return &Adam{AdamConfig: cfg, M: make([]float32, n), V: make([]float32, n), Workers: workers}
}

// Validate checks the hyper-parameters.
func (c AdamConfig) Validate() error {
	switch {
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learning rate must be positive, got %v", c.LR)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("beta1 must be in [0, 1), got %v", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("beta2 must be in [0, 1), got %v", c.Beta2)
	case !(c.Eps > 0):
		return fmt.Errorf("eps must be positive, got %v", c.Eps)
	case !(c.WeightDecay >= 0):
		return fmt.Errorf("weight decay must be ≥ 0, got %v", c.WeightDecay)
	}
	return nil
}

// Update applies one dense Adam (or AdamW) step to param with gradient
// grad (same length as the state). grad is not modified.
func (o *Adam) Update(param, grad []float32) error {
	if len(param) != len(o.M) || len(grad) != len(o.M) {
		return fmt.Errorf("adam: %d parameters and %d gradients for a state of %d", len(param), len(grad), len(o.M))
	}
	o.Step++
	t := float64(o.Step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2sqrt := math.Sqrt(1 - math.Pow(o.Beta2, t))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	a1, a2 := float32(1-o.Beta1), float32(1-o.Beta2)
	stepSize := float32(o.LR / bc1)
	inv2 := float32(1 / bc2sqrt)
	eps := float32(o.Eps)
	wd := float32(o.WeightDecay)
	decay := float32(1 - o.LR*o.WeightDecay)
	decoupled := o.Decoupled && o.WeightDecay != 0
	coupled := !o.Decoupled && o.WeightDecay != 0
	consts := [7]float32{b1, a1, b2, a2, stepSize, inv2, eps}
	asm := useAVX2 && !coupled && !decoupled
	ParallelFor(len(param), o.Workers, func(lo, hi int) {
		p, g, m, v := param[lo:hi], grad[lo:hi], o.M[lo:hi], o.V[lo:hi]
		if n8 := len(p) / 8 * 8; asm && n8 > 0 {
			adamStep(&p[0], &g[0], &m[0], &v[0], n8, &consts)
			p, g, m, v = p[n8:], g[n8:], m[n8:], v[n8:]
		}
		for k := range p {
			gk := g[k]
			if coupled {
				gk += wd * p[k]
			} else if decoupled {
				p[k] *= decay
			}
			mk := m[k]*b1 + a1*gk
			vk := v[k]*b2 + a2*gk*gk
			m[k], v[k] = mk, vk
			p[k] -= stepSize * mk / (sqrt32(vk)*inv2 + eps)
		}
	})
	return nil
}

// UpdateRows applies one lazy (SparseAdam) step to the rows of a
// rows × g.Dim parameter table present in g; see [Adam].
func (o *Adam) UpdateRows(param []float32, g *RowGrad) error {
	d := g.Dim
	if len(param) != len(o.M) || d <= 0 || len(param)%d != 0 {
		return fmt.Errorf("adam: %d parameters (row width %d) for a state of %d", len(param), d, len(o.M))
	}
	o.Step++
	t := float64(o.Step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	stepSize := float32(o.LR * math.Sqrt(bc2) / bc1)
	a1, a2 := float32(1-o.Beta1), float32(1-o.Beta2)
	eps := float32(o.Eps)
	wd := float32(o.WeightDecay)
	decay := float32(1 - o.LR*o.WeightDecay)
	decoupled := o.Decoupled && o.WeightDecay != 0
	coupled := !o.Decoupled && o.WeightDecay != 0
	nrows := len(param) / d
	for _, r := range g.Rows {
		if r < 0 || int(r) >= nrows {
			return fmt.Errorf("adam: gradient row %d outside [0, %d)", r, nrows)
		}
	}
	ParallelFor(len(g.Rows), o.Workers, func(lo, hi int) {
		for s := lo; s < hi; s++ {
			r := int(g.Rows[s])
			p, m, v := param[r*d:(r+1)*d], o.M[r*d:(r+1)*d], o.V[r*d:(r+1)*d]
			gr := g.Vals[s*d : (s+1)*d]
			for k := range p {
				gk := gr[k]
				if coupled {
					gk += wd * p[k]
				} else if decoupled {
					p[k] *= decay
				}
				mk := m[k] + (gk-m[k])*a1
				vk := v[k] + (gk*gk-v[k])*a2
				m[k], v[k] = mk, vk
				p[k] -= stepSize * mk / (sqrt32(vk) + eps)
			}
		}
	})
	return nil
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

package sparse

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestExp32(t *testing.T) {
	worst := 0.0
	for k := range 200001 {
		x := -88 * float64(k) / 200000
		got, want := float64(exp32(float32(x))), math.Exp(float64(float32(x)))
		if x < -87 {
			want = 0
		}
		if e := math.Abs(got-want) / max(want, 1e-300); want > 0 && e > worst {
			worst = e
		}
		if want == 0 && got != 0 {
			t.Fatalf("exp32(%v) = %v, want 0", x, got)
		}
	}
	if worst > 5e-7 {
		t.Errorf("exp32: worst relative error %.3g", worst)
	}
}

// xentRef is the float64 cross-entropy of SoftmaxXent's definition.
func xentRef(h, table [][]float64, tgt []int32, w []float64) float64 {
	var loss, ws float64
	for r := range h {
		if w[r] == 0 {
			continue
		}
		mx := math.Inf(-1)
		lg := make([]float64, len(table))
		for j := range table {
			for c := range h[r] {
				lg[j] += h[r][c] * table[j][c]
			}
			mx = max(mx, lg[j])
		}
		s := 0.0
		for _, x := range lg {
			s += math.Exp(x - mx)
		}
		loss += w[r] * (math.Log(s) + mx - lg[tgt[r]])
		ws += w[r]
	}
	return loss / max(ws, 1)
}

// TestSoftmaxXent checks the loss against a float64 reference and both
// gradients against its central finite differences, over sizes that
// leave partial blocks and kernel tails, with padding rows and several
// workers.
func TestSoftmaxXent(t *testing.T) {
	for _, c := range []struct{ n, v, d, workers int }{{5, 7, 3, 1}, {70, 37, 16, 3}, {33, 100, 64, 2}} {
		rng := rand.New(rand.NewPCG(uint64(c.n), 9))
		h, table := NewMat(c.n, c.d), NewMat(c.v, c.d)
		for k := range h.Data {
			h.Data[k] = float32(rng.NormFloat64())
		}
		for k := range table.Data {
			table.Data[k] = float32(rng.NormFloat64() * 0.5)
		}
		tgt, w := make([]int32, c.n), make([]float32, c.n)
		for r := range c.n {
			tgt[r], w[r] = int32(rng.IntN(c.v)), 1
			if r%7 == 3 {
				w[r], tgt[r] = 0, -5 // padding: target not read
			}
		}
		dh, dt := NewMat(c.n, c.d), NewMat(c.v, c.d)
		got, err := SoftmaxXent(h, table, table.Transpose(), tgt, w, dh, dt, c.workers)
		if err != nil {
			t.Fatal(err)
		}
		h64, t64, w64 := to64(h), to64(table), make([]float64, c.n)
		for r := range w {
			w64[r] = float64(w[r])
		}
		want := xentRef(h64, t64, tgt, w64)
		if math.Abs(got-want) > 1e-5*(1+want) {
			t.Fatalf("%+v: loss %v, reference %v", c, got, want)
		}
		const eps = 1e-5
		check := func(name string, m [][]float64, g Mat) {
			for _, rc := range [][2]int{{0, 0}, {len(m) / 2, c.d - 1}, {len(m) - 1, c.d / 2}, {3, 1 % c.d}} {
				r, col := rc[0], rc[1]
				if r >= len(m) {
					continue
				}
				o := m[r][col]
				m[r][col] = o + eps
				lp := xentRef(h64, t64, tgt, w64)
				m[r][col] = o - eps
				lm := xentRef(h64, t64, tgt, w64)
				m[r][col] = o
				fd := (lp - lm) / (2 * eps)
				if e := math.Abs(float64(g.Data[r*c.d+col]) - fd); e > 1e-4*(1+math.Abs(fd)) {
					t.Errorf("%+v: %s[%d,%d] = %v, finite difference %v", c, name, r, col, g.Data[r*c.d+col], fd)
				}
			}
		}
		check("dh", h64, dh)
		check("dtable", t64, dt)
	}
}

func to64(m Mat) [][]float64 {
	out := make([][]float64, m.Rows)
	for r := range out {
		for _, x := range m.Row(r) {
			out[r] = append(out[r], float64(x))
		}
	}
	return out
}

func TestSoftmaxXentErrors(t *testing.T) {
	h, table := NewMat(2, 3), NewMat(4, 3)
	dh, dt := NewMat(2, 3), NewMat(4, 3)
	if _, err := SoftmaxXent(h, table, table.Transpose(), []int32{0, 4}, []float32{1, 1}, dh, dt, 1); err == nil {
		t.Error("target 4 of 4 items accepted")
	}
	if _, err := SoftmaxXent(h, table, table, []int32{0, 1}, []float32{1, 1}, dh, dt, 1); err == nil {
		t.Error("an untransposed tableT accepted")
	}
	// No rows: zero loss and a zeroed table gradient, not a panic.
	dt.Data[0] = 5
	if loss, err := SoftmaxXent(NewMat(0, 3), table, table.Transpose(), nil, nil, NewMat(0, 3), dt, 2); err != nil || loss != 0 || dt.Data[0] != 0 {
		t.Errorf("no rows: loss %v, table gradient %v, %v", loss, dt.Data[:3], err)
	}
}

// TestSoftmaxXentDeterministic checks that loss and gradients are
// bit-identical whatever the number of workers and from call to call.
func TestSoftmaxXentDeterministic(t *testing.T) {
	const n, v, d = 300, 211, 16
	rng := rand.New(rand.NewPCG(1, 2))
	h, table := NewMat(n, d), NewMat(v, d)
	for k := range h.Data {
		h.Data[k] = float32(rng.NormFloat64())
	}
	for k := range table.Data {
		table.Data[k] = float32(rng.NormFloat64())
	}
	tgt, w := make([]int32, n), make([]float32, n)
	for r := range n {
		tgt[r], w[r] = int32(rng.IntN(v)), 1
	}
	tt := table.Transpose()
	var loss0 float64
	var dh0, dt0 Mat
	for k, workers := range []int{1, 3, 7, 3, 2} {
		dh, dt := NewMat(n, d), NewMat(v, d)
		loss, err := SoftmaxXent(h, table, tt, tgt, w, dh, dt, workers)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			loss0, dh0, dt0 = loss, dh, dt
			continue
		}
		if loss != loss0 || !slices.Equal(dh.Data, dh0.Data) || !slices.Equal(dt.Data, dt0.Data) {
			t.Fatalf("%d workers: results differ from 1 worker's", workers)
		}
	}
}

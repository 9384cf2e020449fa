package sparse

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randMat(rng *rand.Rand, r, c int) Mat {
	m := NewMat(r, c)
	InitNormal(m, 1, rng)
	return m
}

// randCSR returns a random sparse matrix with about density·r·c entries,
// with duplicate coordinates, plus its dense equivalent.
func randCSR(t *testing.T, rng *rand.Rand, r, c int, density float64) (*CSR, Mat) {
	t.Helper()
	var rows, cols []int32
	var vals []float32
	dense := NewMat(r, c)
	for range int(density * float64(r*c)) {
		i, j := rng.IntN(r), rng.IntN(c)
		v := float32(rng.NormFloat64())
		rows, cols, vals = append(rows, int32(i)), append(cols, int32(j)), append(vals, v)
		dense.Data[i*c+j] += v
	}
	a, err := NewCSR(r, c, rows, cols, vals)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a, dense
}

// denseMul is the float64 reference product a·b.
func denseMul(a, b Mat) []float64 {
	out := make([]float64, a.Rows*b.Cols)
	for i := range a.Rows {
		for k := range a.Cols {
			x := float64(a.Data[i*a.Cols+k])
			if x == 0 {
				continue
			}
			for j := range b.Cols {
				out[i*b.Cols+j] += x * float64(b.Data[k*b.Cols+j])
			}
		}
	}
	return out
}

func transposeDense(m Mat) Mat {
	t := NewMat(m.Cols, m.Rows)
	for i := range m.Rows {
		for j := range m.Cols {
			t.Data[j*m.Rows+i] = m.Data[i*m.Cols+j]
		}
	}
	return t
}

func maxDiff(got []float32, want []float64) float64 {
	w := 0.0
	for k := range got {
		w = max(w, math.Abs(float64(got[k])-want[k]))
	}
	return w
}

func TestNewCSR(t *testing.T) {
	// 3×4 with a duplicate (1,2) and an empty row 2.
	a, err := NewCSR(3, 4, []int32{1, 0, 1, 1, 0}, []int32{2, 3, 0, 2, 1}, []float32{1, 2, 3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	wantPtr := []int64{0, 2, 4, 4}
	wantCol := []int32{1, 3, 0, 2}
	wantVal := []float32{5, 2, 3, 5}
	if !slices.Equal(a.RowPtr, wantPtr) || !slices.Equal(a.ColIdx, wantCol) || !slices.Equal(a.Val, wantVal) {
		t.Errorf("csr = %v %v %v, want %v %v %v", a.RowPtr, a.ColIdx, a.Val, wantPtr, wantCol, wantVal)
	}
	b, err := NewCSR(2, 2, []int32{0, 0, 1}, []int32{1, 1, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Val, []float32{1, 1}) || b.NNZ() != 2 {
		t.Errorf("binary pattern values %v, want duplicates collapsed to 1", b.Val)
	}
	for _, c := range []struct {
		name       string
		rows, cols []int32
	}{
		{"row out of range", []int32{3}, []int32{0}},
		{"negative col", []int32{0}, []int32{-1}},
		{"col out of range", []int32{0}, []int32{4}},
		{"length mismatch", []int32{0, 1}, []int32{0}},
	} {
		if _, err := NewCSR(3, 4, c.rows, c.cols, nil); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestMulAgainstDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range []struct{ r, c, d int }{{1, 1, 1}, {7, 5, 3}, {50, 80, 64}, {200, 30, 13}} {
		a, dense := randCSR(t, rng, sz.r, sz.c, 0.1)
		x := randMat(rng, sz.c, sz.d)
		want := denseMul(dense, x)
		var first []float32
		for _, w := range []int{1, 2, 3, 8} {
			out := NewMat(sz.r, sz.d)
			if err := a.Mul(out, x, w); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(out.Data, want); d > 1e-4 {
				t.Errorf("%v workers %d: max diff %g from dense", sz, w, d)
			}
			if first == nil {
				first = out.Data
			} else if !slices.Equal(first, out.Data) {
				t.Errorf("%v: result with %d workers differs bitwise from 1 worker", sz, w)
			}
		}
		// Transpose product against the dense transpose.
		g := randMat(rng, sz.r, sz.d)
		wantT := denseMul(transposeDense(dense), g)
		outT := NewMat(sz.c, sz.d)
		if err := a.MulT(outT, g, 2); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(outT.Data, wantT); d > 1e-4 {
			t.Errorf("%v: MulT max diff %g from dense", sz, d)
		}
	}
	a, _ := randCSR(t, rng, 4, 3, 0.5)
	if err := a.Mul(NewMat(4, 2), NewMat(4, 2), 1); err == nil {
		t.Error("shape mismatch accepted")
	}
}

func TestNormalizedAdjacency(t *testing.T) {
	// Users 0,1,2 (user 2 has no items); items 0,1. Edges: u0-i0, u0-i1,
	// u1-i1, plus a duplicate u0-i0.
	r, err := Bipartite(3, 2, []int32{0, 0, 1, 0}, []int32{0, 1, 1, 0})
	if err != nil {
		t.Fatal(err)
	}
	a := NormalizedAdjacency(r)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	// deg(u0)=2, deg(u1)=1, deg(i0)=1, deg(i1)=2. Node ids: u0 0, u1 1,
	// u2 2, i0 3, i1 4.
	want := map[[2]int]float64{
		{0, 3}: 1 / math.Sqrt(2*1), {0, 4}: 1 / math.Sqrt(2*2), {1, 4}: 1 / math.Sqrt(1*2),
	}
	d := a.Dense()
	for i := range 5 {
		for j := range 5 {
			w := want[[2]int{i, j}]
			if w == 0 {
				w = want[[2]int{j, i}]
			}
			if got := float64(d.Data[i*5+j]); math.Abs(got-w) > 1e-7 {
				t.Errorf("Â[%d,%d] = %g, want %g", i, j, got, w)
			}
		}
	}
	if !a.Symmetric {
		t.Error("not marked symmetric")
	}
	at := a.Transpose()
	if !slices.Equal(at.RowPtr, a.RowPtr) || !slices.Equal(at.ColIdx, a.ColIdx) || !slices.Equal(at.Val, a.Val) {
		t.Error("normalised adjacency differs from its transpose")
	}
}

func TestOpsVJP(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sq, _ := randCSR(t, rng, 30, 30, 0.1)
	rect, _ := randCSR(t, rng, 20, 30, 0.15)
	r, err := Bipartite(12, 9, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 3, 5}, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 8, 7, 6})
	if err != nil {
		t.Fatal(err)
	}
	adj := NormalizedAdjacency(r)
	cases := []struct {
		name string
		op   Op
		rows int
	}{
		{"spmm rectangular", &SpMMOp{A: rect, Workers: 2}, 30},
		{"spmm square", &SpMMOp{A: sq, Workers: 3}, 30},
		{"propagate 0 layers", &PropagateOp{A: adj, Layers: 0}, 21},
		{"propagate 3 layers sym", &PropagateOp{A: adj, Layers: 3, Workers: 2}, 21},
		{"propagate 2 layers nonsym", &PropagateOp{A: sq, Layers: 2, Workers: 2}, 30},
		{"gather with repeats", &GatherOp{Index: []int32{3, 0, 3, 29, 7}}, 30},
		{"chain propagate+gather", Chain{&PropagateOp{A: sq, Layers: 2}, &GatherOp{Index: []int32{1, 1, 5}}}, 30},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := randMat(rng, c.rows, 4)
			worst, err := CheckVJP(c.op, []Mat{x}, 1e-2, 0, rng)
			if err != nil {
				t.Fatal(err)
			}
			if worst > 2e-3 {
				t.Errorf("VJP differs from finite differences by %g", worst)
			}
		})
	}
	// A wrong VJP must be caught.
	bad := &wrongOp{SpMMOp{A: sq}}
	worst, err := CheckVJP(bad, []Mat{randMat(rng, 30, 4)}, 1e-2, 0, rng)
	if err != nil {
		t.Fatal(err)
	}
	if worst < 0.1 {
		t.Errorf("a VJP that uses A instead of Aᵀ passed the check (error %g)", worst)
	}
	if _, err := (&SpMMOp{A: sq}).VJP(NewMat(30, 4)); err == nil {
		t.Error("VJP before Forward accepted")
	}
}

// wrongOp returns A·g instead of Aᵀ·g.
type wrongOp struct{ SpMMOp }

func (o *wrongOp) VJP(g Mat) ([]Mat, error) {
	out := NewMat(o.A.NRows, g.Cols)
	return []Mat{out}, o.A.Mul(out, g, 1)
}

func TestPropagateMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a, dense := randCSR(t, rng, 25, 25, 0.1)
	x := randMat(rng, 25, 6)
	op := &PropagateOp{A: a, Layers: 3, Workers: 2}
	out, err := op.Forward([]Mat{x})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(x.Data))
	cur := x
	for k := range x.Data {
		want[k] = float64(x.Data[k])
	}
	for range 3 {
		nxt := denseMul(dense, cur)
		c := NewMat(25, 6)
		for k := range nxt {
			want[k] += nxt[k]
			c.Data[k] = float32(nxt[k])
		}
		cur = c
	}
	for k := range want {
		want[k] /= 4
	}
	if d := maxDiff(out.Data, want); d > 1e-4 {
		t.Errorf("propagate differs from dense reference by %g", d)
	}
}

func TestGatherScatterRowGrad(t *testing.T) {
	table := Mat{Rows: 3, Cols: 2, Data: []float32{1, 2, 3, 4, 5, 6}}
	out := NewMat(3, 2)
	if err := Gather(out, table, []int32{2, 0, 2}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Data, []float32{5, 6, 1, 2, 5, 6}) {
		t.Errorf("gather = %v", out.Data)
	}
	if err := Gather(out, table, []int32{0, 3, 1}); err == nil {
		t.Error("out-of-range gather accepted")
	}
	dst := NewMat(3, 2)
	if err := ScatterAdd(dst, []int32{2, 0, 2}, Mat{Rows: 3, Cols: 2, Data: []float32{1, 1, 2, 2, 3, 3}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dst.Data, []float32{2, 2, 0, 0, 4, 4}) {
		t.Errorf("scatter-add = %v", dst.Data)
	}
	g := NewRowGrad(5, 2)
	g.Add(4, 1, []float32{1, 2})
	g.Add(1, 2, []float32{1, 1})
	g.Add(4, -1, []float32{0.5, 0.5})
	if !slices.Equal(g.Rows, []int32{4, 1}) || !slices.Equal(g.Vals, []float32{0.5, 1.5, 2, 2}) {
		t.Errorf("row grad = %v %v", g.Rows, g.Vals)
	}
	d := g.Dense()
	if !slices.Equal(d.Data, []float32{0, 0, 2, 2, 0, 0, 0, 0, 0.5, 1.5}) {
		t.Errorf("dense row grad = %v", d.Data)
	}
	g.Reset()
	g.Add(0, 1, []float32{1, 1})
	if !slices.Equal(g.Rows, []int32{0}) || !slices.Equal(g.Vals, []float32{1, 1}) {
		t.Errorf("after reset: %v %v", g.Rows, g.Vals)
	}
}

func TestAdamHandComputed(t *testing.T) {
	// Expected values computed by hand from PyTorch's update rules (see
	// the comments in adam.go), for a single parameter starting at 1 with
	// gradients 0.5 then -0.25 and lr 0.1.
	cases := []struct {
		name string
		cfg  AdamConfig
		want [2]float64
	}{
		{"adam", AdamConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, [2]float64{0.900000002, 0.8733662987078463}},
		{"adam l2", AdamConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}, [2]float64{0.9000000016666666, 0.8544413674617625}},
		{"adamw", AdamConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Decoupled: true}, [2]float64{0.890000002, 0.8544662986878463}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Two copies of the parameter: same result in both, and in
			// both workers settings.
			o := NewAdam(c.cfg, 2, 2)
			p := []float32{1, 1}
			for s, g := range []float32{0.5, -0.25} {
				if err := o.Update(p, []float32{g, g}); err != nil {
					t.Fatal(err)
				}
				for k := range p {
					if math.Abs(float64(p[k])-c.want[s]) > 2e-7 {
						t.Errorf("step %d: p[%d] = %.9f, want %.9f", s+1, k, p[k], c.want[s])
					}
				}
			}
			if o.Step != 2 {
				t.Errorf("step count %d", o.Step)
			}
		})
	}
	// Dense Adam keeps moving a parameter whose gradient became zero.
	o := NewAdam(DefaultAdam(0.1), 1, 1)
	p := []float32{1}
	_ = o.Update(p, []float32{0.5})
	before := p[0]
	_ = o.Update(p, []float32{0})
	if p[0] == before {
		t.Error("dense Adam did not move a parameter with zero gradient but non-zero momentum")
	}
}

func TestSparseAdamHandComputed(t *testing.T) {
	// Row 0 is touched at steps 1 and 3, row 1 at step 2 only; eps 1e-3
	// makes SparseAdam's eps placement visible. Row 0's expected values
	// were computed by hand with SparseAdam's rule.
	cfg := AdamConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-3}
	o := NewAdam(cfg, 4, 1)
	p := []float32{1, 1, 1, 1} // 2 rows × 2
	g := NewRowGrad(2, 2)
	step := func(row int32, v float32) {
		g.Reset()
		g.Add(row, 1, []float32{v, v})
		if err := o.UpdateRows(p, g); err != nil {
			t.Fatal(err)
		}
	}
	step(0, 0.5)
	if math.Abs(float64(p[0])-0.9059483487151976) > 2e-7 || p[2] != 1 {
		t.Errorf("after step 1: %v, want row 0 = 0.905948349, row 1 untouched", p)
	}
	step(1, 0.5)
	if math.Abs(float64(p[0])-0.9059483487151976) > 2e-7 {
		t.Errorf("row 0 moved while untouched: %v", p[0])
	}
	if o.M[0] != float32(0.05) {
		t.Errorf("untouched row's moment decayed: %v", o.M[0])
	}
	step(0, -0.25)
	if math.Abs(float64(p[0])-0.8843089124476097) > 2e-7 || p[0] != p[1] {
		t.Errorf("after step 3: row 0 = %v, want 0.884308912", p[:2])
	}
	if err := o.UpdateRows(p[:3], g); err == nil {
		t.Error("bad parameter length accepted")
	}
}

func TestAdamConfigValidate(t *testing.T) {
	for _, c := range []AdamConfig{
		{LR: 0, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		{LR: 1e-3, Beta1: 1, Beta2: 0.999, Eps: 1e-8},
		{LR: 1e-3, Beta1: 0.9, Beta2: -0.1, Eps: 1e-8},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 0},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: -1},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := DefaultAdam(1e-3).Validate(); err != nil {
		t.Error(err)
	}
}

func TestMulABt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range []struct{ a, b, d int }{{1, 1, 1}, {5, 7, 3}, {33, 301, 64}, {3, 1000, 65}} {
		a, b := randMat(rng, sz.a, sz.d), randMat(rng, sz.b, sz.d)
		out := NewMat(sz.a, sz.b)
		if err := MulABt(out, a, b, 2); err != nil {
			t.Fatal(err)
		}
		want := denseMul(a, transposeDense(b))
		if d := maxDiff(out.Data, want); d > 1e-4 {
			t.Errorf("%v: max diff %g", sz, d)
		}
	}
	if err := MulABt(NewMat(2, 2), NewMat(2, 3), NewMat(2, 4), 1); err == nil {
		t.Error("shape mismatch accepted")
	}
}

func BenchmarkSpMM(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	nu, ni := 10000, 8000
	var us, is []int32
	for range 200000 {
		us = append(us, int32(rng.IntN(nu)))
		is = append(is, int32(min(ni-1, int(math.Abs(rng.NormFloat64())*float64(ni)/2.5))))
	}
	r, _ := Bipartite(nu, ni, us, is)
	a := NormalizedAdjacency(r)
	x := randMat(rng, nu+ni, 64)
	out := NewMat(nu+ni, 64)
	b.ResetTimer()
	for b.Loop() {
		_ = a.Mul(out, x, 0)
	}
}

// TestKernelPaths runs the Go and the assembly kernels (where the CPU has
// them) on widths that exercise every chunk size and tail.
func TestKernelPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	paths := []bool{false}
	if useAVX2 {
		paths = append(paths, true)
	} else {
		t.Log("no AVX2+FMA: only the Go kernels are tested")
	}
	for _, d := range []int{1, 5, 8, 13, 32, 40, 64, 72, 100, 128} {
		a, dense := randCSR(t, rng, 37, 29, 0.2)
		x := randMat(rng, 29, d)
		want := denseMul(dense, x)
		for _, asm := range paths {
			out := NewMat(37, d)
			for k := range out.Data {
				out.Data[k] = float32(math.NaN()) // must be overwritten
			}
			a.mulRows(out, x, 0, 37, asm)
			if diff := maxDiff(out.Data, want); diff > 1e-4 || math.IsNaN(diff) {
				t.Errorf("spmm d=%d asm=%v: max diff %g", d, asm, diff)
			}
		}
	}
	for _, sz := range []struct{ r, k, n int }{{1, 1, 1}, {4, 64, 16}, {7, 64, 100}, {9, 13, 33}, {16, 128, 48}, {3, 0, 5}} {
		a, b := randMat(rng, sz.r, sz.k), randMat(rng, sz.n, sz.k)
		want := denseMul(a, transposeDense(b))
		bt := b.Transpose()
		for _, asm := range paths {
			out := NewMat(sz.r, sz.n)
			for k := range out.Data {
				out.Data[k] = float32(math.NaN())
			}
			mulABtTRows(out, a, bt, 0, sz.r, asm)
			if diff := maxDiff(out.Data, want); diff > 1e-4 || math.IsNaN(diff) {
				t.Errorf("gemm %v asm=%v: max diff %g", sz, asm, diff)
			}
		}
		out := NewMat(sz.r, sz.n)
		if err := MulABtT(out, a, bt, 3); err != nil {
			t.Fatal(err)
		}
		if diff := maxDiff(out.Data, want); diff > 1e-4 {
			t.Errorf("MulABtT %v: max diff %g", sz, diff)
		}
	}
}

func BenchmarkScore(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	a, items := randMat(rng, 256, 64), randMat(rng, 7050, 64)
	bt := items.Transpose()
	out := NewMat(256, 7050)
	for b.Loop() {
		_ = MulABtT(out, a, bt, 1)
	}
}

// TestAdamAsmMatchesGo checks that the assembly Adam step gives the same
// bits as the Go loop (it performs the same float32 operations in the same
// order), on lengths with and without a tail.
func TestAdamAsmMatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{8, 13, 64, 1001} {
		p := make([]float32, n)
		for k := range p {
			p[k] = float32(rng.NormFloat64())
		}
		q := slices.Clone(p)
		a := NewAdam(DefaultAdam(0.01), n, 2)
		b := NewAdam(AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0}, n, 1)
		for range 5 {
			g := make([]float32, n)
			for k := range g {
				g[k] = float32(rng.NormFloat64())
			}
			if err := a.Update(p, g); err != nil {
				t.Fatal(err)
			}
			goAdam(b, q, g) // the Go loop, run by hand

		}
		for k := range p {
			if math.Float32bits(p[k]) != math.Float32bits(q[k]) || a.M[k] != b.M[k] || a.V[k] != b.V[k] {
				t.Fatalf("n=%d element %d: asm %v, Go %v", n, k, p[k], q[k])
			}
		}
	}
	acc, o := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}
	addScale(&acc[0], &o[0], 8, 0.5)
	if !slices.Equal(acc, []float32{1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 9}) {
		t.Errorf("addScale = %v", acc)
	}
}

// goAdam is the Go loop of Adam.Update without weight decay.
func goAdam(o *Adam, param, grad []float32) {
	o.Step++
	t := float64(o.Step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2sqrt := math.Sqrt(1 - math.Pow(o.Beta2, t))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	a1, a2 := float32(1-o.Beta1), float32(1-o.Beta2)
	stepSize, inv2, eps := float32(o.LR/bc1), float32(1/bc2sqrt), float32(o.Eps)
	for k := range param {
		gk := grad[k]
		mk := o.M[k]*b1 + a1*gk
		vk := o.V[k]*b2 + a2*gk*gk
		o.M[k], o.V[k] = mk, vk
		param[k] -= stepSize * mk / (sqrt32(vk)*inv2 + eps)
	}
}

package mmssl

import (
	"math"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// TestGemm checks the blocked kernel against float64 loops on shapes with
// row, column and k tails, and that the result does not depend on the
// number of workers.
func TestGemm(t *testing.T) {
	rng := train.NewRNG(3, 1)
	for _, sh := range [][3]int{{1, 1, 1}, {6, 16, 3}, {13, 300, 37}, {7, 5, 600}, {300, 70, 19}, {64, 1677, 520}} {
		m, k, n := sh[0], sh[1], sh[2]
		a, b := sparse.NewMat(m, k), sparse.NewMat(k, n)
		sparse.InitNormal(a, 1, rng.Rand)
		sparse.InitNormal(b, 1, rng.Rand)
		var outs [][]float32
		for _, w := range []int{1, 2, 3} {
			out := sparse.NewMat(m, n)
			for j := range out.Data {
				out.Data[j] = 7 // overwritten
			}
			if err := gemm(out, a, b, w); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, out.Data)
		}
		for r := range m {
			for c := range n {
				want := 0.0
				for p := range k {
					want += float64(a.Data[r*k+p]) * float64(b.Data[p*n+c])
				}
				if got := float64(outs[0][r*n+c]); math.Abs(got-want) > 1e-4*math.Sqrt(float64(k))*max(1, math.Abs(want)) {
					t.Fatalf("%v: out[%d,%d] = %v, want %v", sh, r, c, got, want)
				}
			}
		}
		if !slices.Equal(outs[0], outs[1]) || !slices.Equal(outs[0], outs[2]) {
			t.Errorf("%v: results differ between worker counts", sh)
		}
	}
	// The symmetric Gram product equals the plain one.
	for _, h := range []int{5, 150, 301} {
		a := sparse.NewMat(h, 77)
		sparse.InitNormal(a, 1, rng.Rand)
		at := a.Transpose()
		want, got := sparse.NewMat(h, h), sparse.NewMat(h, h)
		if err := gemm(want, a, at, 2); err != nil {
			t.Fatal(err)
		}
		if err := gramSym(got, a, at, 2); err != nil {
			t.Fatal(err)
		}
		for i := range h {
			for j := range i + 1 {
				if got.Data[i*h+j] != want.Data[i*h+j] || got.Data[j*h+i] != want.Data[i*h+j] {
					t.Fatalf("h %d: gram[%d,%d] = %v / %v, want %v", h, i, j, got.Data[i*h+j], got.Data[j*h+i], want.Data[i*h+j])
				}
			}
		}
	}
	if err := gemm(sparse.NewMat(2, 3), sparse.NewMat(2, 4), sparse.NewMat(3, 3), 1); err == nil {
		t.Error("mismatched shapes accepted")
	}
}

// BenchmarkGemmGram times the gradient penalty's Gram product W1·W1ᵀ at
// TikTok's size (1677 × 6710 · 6710 × 1677).
func BenchmarkGemmGram(b *testing.B) {
	w1, w1t := sparse.NewMat(1677, 6710), sparse.NewMat(6710, 1677)
	out := sparse.NewMat(1677, 1677)
	rng := train.NewRNG(1, 1)
	sparse.InitNormal(w1, 1, rng.Rand)
	transposeInto(w1t, w1, 2)
	b.ResetTimer()
	for range b.N {
		if err := gemm(out, w1, w1t, 2); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*1677*6710*1677*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkMulABtTGram is the same product with train/sparse's 4×16 kernel.
func BenchmarkMulABtTGram(b *testing.B) {
	w1, w1t := sparse.NewMat(1677, 6710), sparse.NewMat(6710, 1677)
	out := sparse.NewMat(1677, 1677)
	rng := train.NewRNG(1, 1)
	sparse.InitNormal(w1, 1, rng.Rand)
	transposeInto(w1t, w1, 2)
	b.ResetTimer()
	for range b.N {
		if err := sparse.MulABtT(out, w1, w1t, 2); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*1677*6710*1677*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

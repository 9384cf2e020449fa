package sparse

import (
	"fmt"
	"runtime"
	"sync"
)

// Mat is a dense row-major float32 matrix: element (r, c) is
// Data[r*Cols+c].
type Mat struct {
	Rows, Cols int
	Data       []float32
}

// NewMat returns a zero rows × cols matrix.
func NewMat(rows, cols int) Mat {
	return Mat{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
}

// Row returns row r as a slice of the matrix's data.
func (m Mat) Row(r int) []float32 {
	return m.Data[r*m.Cols : (r+1)*m.Cols : (r+1)*m.Cols]
}

// Clone returns a deep copy.
func (m Mat) Clone() Mat {
	return Mat{Rows: m.Rows, Cols: m.Cols, Data: append([]float32(nil), m.Data...)}
}

// Zero sets every element to 0.
func (m Mat) Zero() { clear(m.Data) }

// check verifies that Data has Rows*Cols elements.
func (m Mat) check(name string) error {
	if m.Rows < 0 || m.Cols < 0 || len(m.Data) != m.Rows*m.Cols {
		return fmt.Errorf("%s: %d×%d matrix with %d values", name, m.Rows, m.Cols, len(m.Data))
	}
	return nil
}

// sameShape reports whether a and b have the same shape.
func sameShape(a, b Mat) bool { return a.Rows == b.Rows && a.Cols == b.Cols }

// resize returns m reshaped to rows × cols, reusing its storage when large
// enough. The contents are unspecified.
func resize(m Mat, rows, cols int) Mat {
	n := rows * cols
	if cap(m.Data) < n {
		return NewMat(rows, cols)
	}
	return Mat{Rows: rows, Cols: cols, Data: m.Data[:n]}
}

// Workers resolves a worker count: n ≤ 0 means runtime.GOMAXPROCS(0).
func Workers(n int) int {
	if n <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return n
}

// ParallelFor splits [0, n) into at most workers contiguous ranges of
// nearly equal length and calls fn on each, concurrently; it returns when
// all have finished. Ranges never overlap, so fn may write the elements of
// its own range without locking.
func ParallelFor(n, workers int, fn func(lo, hi int)) {
	w := min(Workers(workers), n)
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for k := range w {
		lo, hi := n*k/w, n*(k+1)/w
		if lo == hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// parallelBounds runs fn on the ranges [b[k], b[k+1]) concurrently.
func parallelBounds(b []int, fn func(lo, hi int)) {
	if len(b) <= 2 {
		if len(b) == 2 && b[1] > b[0] {
			fn(b[0], b[1])
		}
		return
	}
	var wg sync.WaitGroup
	for k := 0; k+1 < len(b); k++ {
		lo, hi := b[k], b[k+1]
		if lo == hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// axpy computes y += a*x for len(y) elements (x at least as long).
func axpy(a float32, x, y []float32) {
	x = x[:len(y)]
	i := 0
	for ; i+8 <= len(y); i += 8 {
		xs, ys := x[i:i+8:i+8], y[i:i+8:i+8]
		ys[0] += a * xs[0]
		ys[1] += a * xs[1]
		ys[2] += a * xs[2]
		ys[3] += a * xs[3]
		ys[4] += a * xs[4]
		ys[5] += a * xs[5]
		ys[6] += a * xs[6]
		ys[7] += a * xs[7]
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

// axpy2 computes y += a*x + b*z, reading and writing y once.
func axpy2(a float32, x []float32, b float32, z, y []float32) {
	x, z = x[:len(y)], z[:len(y)]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		xs, zs, ys := x[i:i+4:i+4], z[i:i+4:i+4], y[i:i+4:i+4]
		ys[0] += a*xs[0] + b*zs[0]
		ys[1] += a*xs[1] + b*zs[1]
		ys[2] += a*xs[2] + b*zs[2]
		ys[3] += a*xs[3] + b*zs[3]
	}
	for ; i < len(y); i++ {
		y[i] += a*x[i] + b*z[i]
	}
}

// Dot returns the float32 dot product of a and b (b at least as long as
// a), accumulated in four interleaved partial sums.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		as, bs := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += as[0] * bs[0]
		s1 += as[1] * bs[1]
		s2 += as[2] * bs[2]
		s3 += as[3] * bs[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// MulABt computes out = a · bᵀ (out is a.Rows × b.Rows, a and b share
// Cols) over row blocks of a on workers goroutines. It is the scoring
// kernel: users × dim times (items × dim)ᵀ, one block of users at a time.
func MulABt(out, a, b Mat, workers int) error {
	if err := a.check("MulABt a"); err != nil {
		return err
	}
	if err := b.check("MulABt b"); err != nil {
		return err
	}
	if a.Cols != b.Cols || out.Rows != a.Rows || out.Cols != b.Rows || len(out.Data) != out.Rows*out.Cols {
		return fmt.Errorf("MulABt: out %d×%d, a %d×%d, b %d×%d do not match", out.Rows, out.Cols, a.Rows, a.Cols, b.Rows, b.Cols)
	}
	// Items in tiles that stay in cache across a few user rows.
	const tile = 256
	ParallelFor(a.Rows, workers, func(lo, hi int) {
		for j0 := 0; j0 < b.Rows; j0 += tile {
			j1 := min(j0+tile, b.Rows)
			for r := lo; r < hi; r++ {
				ar := a.Row(r)
				o := out.Data[r*out.Cols : (r+1)*out.Cols]
				j := j0
				for ; j+4 <= j1; j += 4 {
					o[j], o[j+1], o[j+2], o[j+3] = dot4(ar, b.Row(j), b.Row(j+1), b.Row(j+2), b.Row(j+3))
				}
				for ; j < j1; j++ {
					o[j] = Dot(ar, b.Row(j))
				}
			}
		}
	})
	return nil
}

// Transpose returns mᵀ as a new matrix.
func (m Mat) Transpose() Mat {
	t := NewMat(m.Cols, m.Rows)
	for r := range m.Rows {
		row := m.Row(r)
		for c, v := range row {
			t.Data[c*m.Rows+r] = v
		}
	}
	return t
}

// MulABtT computes out = a · bt, where bt is the transpose of the second
// operand (a.Cols × n, e.g. dim × items) and out is a.Rows × n: the scoring
// kernel of a block of users against all items, with the items' transposed
// embeddings prepared once. Row groups run on workers goroutines; with
// AVX2 and FMA it uses a 4 × 16 register-blocked assembly kernel.
func MulABtT(out, a, bt Mat, workers int) error {
	if err := a.check("MulABtT a"); err != nil {
		return err
	}
	if err := bt.check("MulABtT bt"); err != nil {
		return err
	}
	if a.Cols != bt.Rows || out.Rows != a.Rows || out.Cols != bt.Cols || len(out.Data) != out.Rows*out.Cols {
		return fmt.Errorf("MulABtT: out %d×%d, a %d×%d, bt %d×%d do not match", out.Rows, out.Cols, a.Rows, a.Cols, bt.Rows, bt.Cols)
	}
	groups := (a.Rows + 3) / 4
	ParallelFor(groups, workers, func(glo, ghi int) {
		mulABtTRows(out, a, bt, 4*glo, min(4*ghi, a.Rows), useAVX2)
	})
	return nil
}

// mulABtTRows computes rows [lo, hi) of out = a·bt.
func mulABtTRows(out, a, bt Mat, lo, hi int, asm bool) {
	k, n := a.Cols, bt.Cols
	full := lo
	if asm && k > 0 {
		full = lo + (hi-lo)/4*4
		nj := n / 16 * 16
		for j := 0; j < nj; j += 16 {
			for r := lo; r < full; r += 4 {
				gemm4x16(&out.Data[r*n+j], n, &a.Data[r*k], k, &bt.Data[j], n, k)
			}
		}
		if nj < n {
			for r := lo; r < full; r++ {
				o := out.Data[r*n+nj : (r+1)*n]
				clear(o)
				ar := a.Row(r)
				for p, x := range ar {
					axpy(x, bt.Data[p*n+nj:(p+1)*n], o)
				}
			}
		}
	}
	for r := full; r < hi; r++ {
		o := out.Data[r*n : (r+1)*n]
		clear(o)
		for p, x := range a.Row(r) {
			axpy(x, bt.Data[p*n:(p+1)*n], o)
		}
	}
}

// dot4 returns the dot products of a with four rows at once, loading each
// element of a once.
func dot4(a, b0, b1, b2, b3 []float32) (float32, float32, float32, float32) {
	n := len(a)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	var s0, s1, s2, s3, t0, t1, t2, t3 float32
	i := 0
	for ; i+2 <= n; i += 2 {
		x, y := a[i], a[i+1]
		s0 += x * b0[i]
		s1 += x * b1[i]
		s2 += x * b2[i]
		s3 += x * b3[i]
		t0 += y * b0[i+1]
		t1 += y * b1[i+1]
		t2 += y * b2[i+1]
		t3 += y * b3[i+1]
	}
	if i < n {
		x := a[i]
		s0 += x * b0[i]
		s1 += x * b1[i]
		s2 += x * b2[i]
		s3 += x * b3[i]
	}
	return s0 + t0, s1 + t1, s2 + t2, s3 + t3
}

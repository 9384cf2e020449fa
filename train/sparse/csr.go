package sparse

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// CSR is a sparse matrix in compressed sparse row form: the non-zeros of
// row r are ColIdx[RowPtr[r]:RowPtr[r+1]] (ascending, distinct) with values
// Val at the same positions.
type CSR struct {
	NRows, NCols int
	RowPtr       []int64
	ColIdx       []int32
	Val          []float32
	// Symmetric is set by constructors that guarantee A = Aᵀ; MulT then
	// uses A itself.
	Symmetric bool

	tOnce sync.Once
	t     *CSR // cached transpose
}

// NNZ returns the number of stored non-zeros.
func (a *CSR) NNZ() int { return len(a.ColIdx) }

// Row returns the column indices and values of row r.
func (a *CSR) Row(r int) ([]int32, []float32) {
	lo, hi := a.RowPtr[r], a.RowPtr[r+1]
	return a.ColIdx[lo:hi:hi], a.Val[lo:hi:hi]
}

// Validate checks the structure: sizes, monotone row pointers, columns in
// range and strictly ascending within each row.
func (a *CSR) Validate() error {
	if a.NRows < 0 || a.NCols < 0 || len(a.RowPtr) != a.NRows+1 {
		return fmt.Errorf("csr: %d rows with %d row pointers", a.NRows, len(a.RowPtr))
	}
	if a.RowPtr[0] != 0 || a.RowPtr[a.NRows] != int64(len(a.ColIdx)) || len(a.Val) != len(a.ColIdx) {
		return fmt.Errorf("csr: row pointers 0..%d for %d columns and %d values", a.RowPtr[a.NRows], len(a.ColIdx), len(a.Val))
	}
	for r := range a.NRows {
		if a.RowPtr[r+1] < a.RowPtr[r] {
			return fmt.Errorf("csr: row pointer of row %d decreases", r)
		}
		cols, _ := a.Row(r)
		for k, c := range cols {
			if c < 0 || int(c) >= a.NCols {
				return fmt.Errorf("csr: row %d has column %d outside [0, %d)", r, c, a.NCols)
			}
			if k > 0 && cols[k-1] >= c {
				return fmt.Errorf("csr: row %d columns not strictly ascending at %d", r, c)
			}
		}
	}
	return nil
}

// NewCSR builds an nRows × nCols matrix from coordinate triples. Duplicate
// (row, col) pairs are summed, in input order. vals may be nil for a binary
// pattern (every stored value 1, duplicates collapsed to 1).
func NewCSR(nRows, nCols int, rows, cols []int32, vals []float32) (*CSR, error) {
	if len(rows) != len(cols) || (vals != nil && len(vals) != len(rows)) {
		return nil, fmt.Errorf("csr: %d rows, %d cols, %d values", len(rows), len(cols), len(vals))
	}
	count := make([]int64, nRows+1)
	for k, r := range rows {
		if r < 0 || int(r) >= nRows {
			return nil, fmt.Errorf("csr: entry %d has row %d outside [0, %d)", k, r, nRows)
		}
		if c := cols[k]; c < 0 || int(c) >= nCols {
			return nil, fmt.Errorf("csr: entry %d has column %d outside [0, %d)", k, c, nCols)
		}
		count[r+1]++
	}
	for r := range nRows {
		count[r+1] += count[r]
	}
	// Counting sort by row keeps the input order within a row.
	ci := make([]int32, len(rows))
	cv := make([]float32, len(rows))
	next := slices.Clone(count[:nRows])
	for k, r := range rows {
		p := next[r]
		next[r]++
		ci[p] = cols[k]
		if vals == nil {
			cv[p] = 1
		} else {
			cv[p] = vals[k]
		}
	}
	a := &CSR{NRows: nRows, NCols: nCols, RowPtr: make([]int64, nRows+1)}
	a.ColIdx = ci[:0]
	a.Val = cv[:0]
	type entry struct {
		c int32
		v float32
		k int
	}
	var buf []entry
	w := int64(0)
	for r := range nRows {
		lo, hi := count[r], count[r+1]
		buf = buf[:0]
		for p := lo; p < hi; p++ {
			buf = append(buf, entry{ci[p], cv[p], int(p)})
		}
		// Stable by column so duplicates are summed in input order.
		slices.SortStableFunc(buf, func(x, y entry) int { return int(x.c) - int(y.c) })
		for k := 0; k < len(buf); {
			c, v := buf[k].c, buf[k].v
			k++
			for k < len(buf) && buf[k].c == c {
				if vals == nil {
					v = 1
				} else {
					v += buf[k].v
				}
				k++
			}
			ci[w], cv[w] = c, v
			w++
		}
		a.RowPtr[r+1] = w
	}
	a.ColIdx = ci[:w:w]
	a.Val = cv[:w:w]
	return a, nil
}

// Transpose returns Aᵀ as a new CSR (columns ascending within each row).
func (a *CSR) Transpose() *CSR {
	t := &CSR{NRows: a.NCols, NCols: a.NRows, RowPtr: make([]int64, a.NCols+1),
		ColIdx: make([]int32, a.NNZ()), Val: make([]float32, a.NNZ()), Symmetric: a.Symmetric}
	for _, c := range a.ColIdx {
		t.RowPtr[c+1]++
	}
	for c := range a.NCols {
		t.RowPtr[c+1] += t.RowPtr[c]
	}
	next := slices.Clone(t.RowPtr[:a.NCols])
	for r := range a.NRows {
		cols, vals := a.Row(r)
		for k, c := range cols {
			p := next[c]
			next[c]++
			t.ColIdx[p] = int32(r)
			t.Val[p] = vals[k]
		}
	}
	return t
}

// transpose returns the cached transpose (A itself when symmetric).
func (a *CSR) transpose() *CSR {
	if a.Symmetric {
		return a
	}
	a.tOnce.Do(func() { a.t = a.Transpose() })
	return a.t
}

// Dense returns the matrix as a dense Mat (for tests and small matrices).
func (a *CSR) Dense() Mat {
	m := NewMat(a.NRows, a.NCols)
	for r := range a.NRows {
		cols, vals := a.Row(r)
		for k, c := range cols {
			m.Data[r*a.NCols+int(c)] = vals[k]
		}
	}
	return m
}

// rowBlocks splits the rows into at most w contiguous blocks holding
// nearly equal numbers of non-zeros (plus one per row, so that empty rows
// still count as work).
func (a *CSR) rowBlocks(w int) []int {
	w = max(1, min(w, a.NRows))
	total := a.RowPtr[a.NRows] + int64(a.NRows)
	b := make([]int, 0, w+1)
	b = append(b, 0)
	for k := 1; k < w; k++ {
		target := total * int64(k) / int64(w)
		// first row r with RowPtr[r] + r >= target
		lo, hi := 0, a.NRows
		for lo < hi {
			m := (lo + hi) / 2
			if a.RowPtr[m]+int64(m) < target {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if r := lo; r > b[len(b)-1] {
			b = append(b, r)
		}
	}
	b = append(b, a.NRows)
	return b
}

// Mul computes out = A · in, where in is NCols × d and out is NRows × d,
// over row blocks balanced by non-zeros on workers goroutines. out must not
// share storage with in.
func (a *CSR) Mul(out, in Mat, workers int) error {
	if err := in.check("spmm input"); err != nil {
		return err
	}
	if in.Rows != a.NCols || out.Rows != a.NRows || out.Cols != in.Cols || len(out.Data) != out.Rows*out.Cols {
		return fmt.Errorf("spmm: A is %d×%d, input %d×%d, output %d×%d", a.NRows, a.NCols, in.Rows, in.Cols, out.Rows, out.Cols)
	}
	parallelBounds(a.rowBlocks(Workers(workers)), func(lo, hi int) { a.mulRows(out, in, lo, hi, useAVX2) })
	return nil
}

// MulAcc computes out = A·in like Mul and, fused row by row while the row
// is in cache, acc = (acc + out)·scale. acc has out's shape.
func (a *CSR) MulAcc(out, in, acc Mat, scale float32, workers int) error {
	if !sameShape(out, acc) || len(acc.Data) != acc.Rows*acc.Cols {
		return fmt.Errorf("spmm: accumulator %d×%d for output %d×%d", acc.Rows, acc.Cols, out.Rows, out.Cols)
	}
	if err := in.check("spmm input"); err != nil {
		return err
	}
	if in.Rows != a.NCols || out.Rows != a.NRows || out.Cols != in.Cols || len(out.Data) != out.Rows*out.Cols {
		return fmt.Errorf("spmm: A is %d×%d, input %d×%d, output %d×%d", a.NRows, a.NCols, in.Rows, in.Cols, out.Rows, out.Cols)
	}
	d := in.Cols
	parallelBounds(a.rowBlocks(Workers(workers)), func(lo, hi int) {
		const chunk = 64
		for r0 := lo; r0 < hi; r0 += chunk {
			r1 := min(r0+chunk, hi)
			a.mulRows(out, in, r0, r1, useAVX2)
			o, s := out.Data[r0*d:r1*d], acc.Data[r0*d:r1*d]
			if n8 := len(s) / 8 * 8; useAVX2 && n8 > 0 {
				addScale(&s[0], &o[0], n8, scale)
				o, s = o[n8:], s[n8:]
			}
			if scale == 1 {
				for k := range s {
					s[k] += o[k]
				}
			} else {
				for k := range s {
					s[k] = (s[k] + o[k]) * scale
				}
			}
		}
	})
	return nil
}

// mulRows computes rows [lo, hi) of out = A·in, with the assembly kernels
// when asm is set.
func (a *CSR) mulRows(out, in Mat, lo, hi int, asm bool) {
	d := in.Cols
	for r := lo; r < hi; r++ {
		o := out.Data[r*d : (r+1)*d : (r+1)*d]
		p0, p1 := a.RowPtr[r], a.RowPtr[r+1]
		cols, vals := a.ColIdx[p0:p1], a.Val[p0:p1]
		if len(cols) == 0 {
			clear(o)
			continue
		}
		c := 0
		if asm {
			for ; c+64 <= d; c += 64 {
				spmmRow64(&o[c], &in.Data[c], &cols[0], &vals[0], len(cols), d)
			}
			for ; c+32 <= d; c += 32 {
				spmmRow32(&o[c], &in.Data[c], &cols[0], &vals[0], len(cols), d)
			}
			for ; c+8 <= d; c += 8 {
				spmmRow8(&o[c], &in.Data[c], &cols[0], &vals[0], len(cols), d)
			}
			if c == d {
				continue
			}
		}
		// Columns [c, d) in Go.
		oc := o[c:]
		clear(oc)
		k := 0
		for ; k+2 <= len(cols); k += 2 {
			c0, c1 := int(cols[k])*d+c, int(cols[k+1])*d+c
			axpy2(vals[k], in.Data[c0:c0+len(oc)], vals[k+1], in.Data[c1:c1+len(oc)], oc)
		}
		if k < len(cols) {
			c0 := int(cols[k])*d + c
			axpy(vals[k], in.Data[c0:c0+len(oc)], oc)
		}
	}
}

// MulT computes out = Aᵀ · in, the vector–Jacobian product of Mul: for a
// symmetric matrix the same kernel on A, otherwise Mul on a transpose built
// once and cached. in is NRows × d, out is NCols × d.
func (a *CSR) MulT(out, in Mat, workers int) error {
	return a.transpose().Mul(out, in, workers)
}

// Bipartite returns the binary nUsers × nItems interaction matrix R of the
// given pairs (duplicates collapsed).
func Bipartite(nUsers, nItems int, users, items []int32) (*CSR, error) {
	r, err := NewCSR(nUsers, nItems, users, items, nil)
	if err != nil {
		return nil, fmt.Errorf("user–item matrix: %w", err)
	}
	return r, nil
}

// NormalizedAdjacency returns the symmetric normalised adjacency
// Â = D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [Rᵀ, 0]] of a
// binary user–item matrix R (users × items): an (U+I) × (U+I) matrix whose
// nodes are the users 0..U-1 followed by the items U..U+I-1, with
// Â[u, U+i] = Â[U+i, u] = 1/√(deg(u)·deg(i)) for every stored (u, i). Nodes
// without edges have no entries (LightGCN's reference sets their inverse
// square-root degree to 0). The result is marked Symmetric.
func NormalizedAdjacency(r *CSR) *CSR {
	nu, ni := r.NRows, r.NCols
	n := nu + ni
	deg := make([]float64, n)
	for u := range nu {
		deg[u] = float64(r.RowPtr[u+1] - r.RowPtr[u])
	}
	for _, i := range r.ColIdx {
		deg[nu+int(i)]++
	}
	inv := make([]float64, n)
	for k, d := range deg {
		if d > 0 {
			inv[k] = 1 / math.Sqrt(d)
		}
	}
	rt := r.Transpose()
	a := &CSR{NRows: n, NCols: n, RowPtr: make([]int64, n+1), Symmetric: true,
		ColIdx: make([]int32, 0, 2*r.NNZ()), Val: make([]float32, 0, 2*r.NNZ())}
	for u := range nu {
		cols, _ := r.Row(u)
		for _, i := range cols {
			a.ColIdx = append(a.ColIdx, int32(nu)+i)
			a.Val = append(a.Val, float32(inv[u]*inv[nu+int(i)]))
		}
		a.RowPtr[u+1] = int64(len(a.ColIdx))
	}
	for i := range ni {
		users, _ := rt.Row(i)
		for _, u := range users {
			a.ColIdx = append(a.ColIdx, u)
			a.Val = append(a.Val, float32(inv[u]*inv[nu+i]))
		}
		a.RowPtr[nu+i+1] = int64(len(a.ColIdx))
	}
	return a
}

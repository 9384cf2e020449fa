package mmssl

import (
	"fmt"
	"math"
	"sync"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// mat returns a rows × cols view of buf (grown when too small): the
// package's scratch matrices are reused from batch to batch.
func mat(buf *[]float32, rows, cols int) sparse.Mat {
	n := rows * cols
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	*buf = (*buf)[:n]
	return sparse.Mat{Rows: rows, Cols: cols, Data: *buf}
}

// gemm computes out = a · b for row-major a (m×k) and b (k×n) (out is
// overwritten); see gemmAcc.
func gemm(out, a, b sparse.Mat, workers int) error {
	if a.Cols != b.Rows || out.Rows != a.Rows || out.Cols != b.Cols ||
		len(a.Data) != a.Rows*a.Cols || len(b.Data) != b.Rows*b.Cols || len(out.Data) != out.Rows*out.Cols {
		return fmt.Errorf("mmssl gemm: out %d×%d, a %d×%d, b %d×%d do not match", out.Rows, out.Cols, a.Rows, a.Cols, b.Rows, b.Cols)
	}
	sparse.ParallelFor(len(out.Data), workers, func(lo, hi int) { clear(out.Data[lo:hi]) })
	gemmAcc(out, a, b, workers)
	return nil
}

// gramSym computes out = a · at for at = aᵀ (out is h × h, symmetric).
func gramSym(out, a, at sparse.Mat, workers int) error { return symProduct(out, a, at, workers) }

// symProduct computes out = a · b for a product known to be symmetric (h
// × h, e.g. a·aᵀ or aᵀ·D·a with b = D·a): only the blocks on and below the
// diagonal are multiplied (interleaved over workers, which balances the
// triangle), the rest is mirrored.
func symProduct(out, a, at sparse.Mat, workers int) error {
	h := a.Rows
	if at.Rows != a.Cols || at.Cols != h || out.Rows != h || out.Cols != h || len(out.Data) != h*h {
		return fmt.Errorf("mmssl symmetric product: out %d×%d, a %d×%d, b %d×%d do not match", out.Rows, out.Cols, a.Rows, a.Cols, at.Rows, at.Cols)
	}
	clear(out.Data)
	nb := (h + gemmMC - 1) / gemmMC
	w := min(max(1, sparse.Workers(workers)), nb)
	var wg sync.WaitGroup
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for blk := g; blk < nb; blk += w {
				r0, r1 := blk*gemmMC, min((blk+1)*gemmMC, h)
				gemmBlock(out, a, at, r0, r1, 0, min(h, (r1+15)/16*16))
			}
		}()
	}
	wg.Wait()
	sparse.ParallelFor(h, workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := i + 1; j < h; j++ {
				out.Data[i*h+j] = out.Data[j*h+i]
			}
		}
	})
	return nil
}

// Blocking of gemmAcc: k in panels of gemmKC, rows in blocks of gemmMC
// (a multiple of 6), so that a 6 × KC slice of a and a KC × 16 strip of b
// stay in L1 and the MC × KC block of a in L2.
const (
	gemmKC = 256
	gemmMC = 144
)

// gemmAcc computes out += a · b (shapes already checked) with the AVX2
// 6 × 16 register-blocked kernel, cache-blocked over k and rows, parallel
// over row ranges (or column ranges when there are few rows). Each output
// element sums its k panels in the same order whatever the number of
// workers, so results are deterministic.
func gemmAcc(out, a, b sparse.Mat, workers int) {
	m, n := a.Rows, b.Cols
	w := max(1, sparse.Workers(workers))
	if m >= 12*w || n < 32*w {
		groups := (m + 5) / 6
		sparse.ParallelFor(groups, w, func(glo, ghi int) {
			gemmBlock(out, a, b, 6*glo, min(6*ghi, m), 0, n)
		})
		return
	}
	strips := (n + 15) / 16
	sparse.ParallelFor(strips, w, func(slo, shi int) {
		gemmBlock(out, a, b, 0, m, 16*slo, min(16*shi, n))
	})
}

// gemmBlock computes out[r0:r1, c0:c1] += a[r0:r1, :] · b[:, c0:c1]. The
// last columns (fewer than 16) and rows (fewer than 6) go through the same
// kernel on zero-padded copies.
func gemmBlock(out, a, b sparse.Mat, r0, r1, c0, c1 int) {
	k, n := a.Cols, b.Cols
	if !useAsm {
		for r := r0; r < r1; r++ {
			o := out.Data[r*n+c0 : r*n+c1]
			for p := range k {
				if x := a.Data[r*k+p]; x != 0 {
					axpy(x, b.Data[p*n+c0:p*n+c1], o)
				}
			}
		}
		return
	}
	nj := c0 + (c1-c0)/16*16
	rem := c1 - nj
	var btail, otile, atile []float32
	if rem > 0 {
		btail = make([]float32, gemmKC*16)
	}
	otile = make([]float32, 6*16)
	// tile runs the kernel on the padded 6 × 16 tile of out at (r, j) with
	// valid rows nr and columns nc, a rows from ap (stride lda), b from bp
	// (stride ldb).
	tile := func(r, j, nr, nc int, ap *float32, lda int, bp *float32, ldb, kk int) {
		clear(otile)
		for x := range nr {
			copy(otile[x*16:x*16+nc], out.Data[(r+x)*n+j:(r+x)*n+j+nc])
		}
		gemm6x16acc(&otile[0], 16, ap, lda, bp, ldb, kk)
		for x := range nr {
			copy(out.Data[(r+x)*n+j:(r+x)*n+j+nc], otile[x*16:x*16+nc])
		}
	}
	for p0 := 0; p0 < k; p0 += gemmKC {
		kk := min(gemmKC, k-p0)
		if rem > 0 {
			clear(btail)
			for p := range kk {
				copy(btail[p*16:p*16+rem], b.Data[(p0+p)*n+nj:(p0+p)*n+c1])
			}
		}
		for rb := r0; rb < r1; rb += gemmMC {
			re := min(rb+gemmMC, r1)
			full := rb + (re-rb)/6*6
			for j := c0; j < nj; j += 16 {
				for r := rb; r < full; r += 6 {
					gemm6x16acc(&out.Data[r*n+j], n, &a.Data[r*k+p0], k, &b.Data[p0*n+j], n, kk)
				}
			}
			if rem > 0 {
				for r := rb; r < full; r += 6 {
					tile(r, nj, 6, rem, &a.Data[r*k+p0], k, &btail[0], 16, kk)
				}
			}
			if full < re {
				nr := re - full
				if atile == nil {
					atile = make([]float32, 6*gemmKC)
				}
				clear(atile)
				for x := range nr {
					copy(atile[x*gemmKC:x*gemmKC+kk], a.Data[(full+x)*k+p0:(full+x)*k+p0+kk])
				}
				for j := c0; j < nj; j += 16 {
					tile(full, j, nr, 16, &atile[0], gemmKC, &b.Data[p0*n+j], n, kk)
				}
				if rem > 0 {
					tile(full, nj, nr, rem, &atile[0], gemmKC, &btail[0], 16, kk)
				}
			}
		}
	}
}

// transposeInto writes srcᵀ into dst (dst is src.Cols × src.Rows), in
// cache-sized tiles, parallel over tiles of source columns.
func transposeInto(dst, src sparse.Mat, workers int) {
	const tile = 64
	r, c := src.Rows, src.Cols
	nt := (c + tile - 1) / tile
	sparse.ParallelFor(nt, workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			c0, c1 := t*tile, min((t+1)*tile, c)
			for r0 := 0; r0 < r; r0 += tile {
				r1 := min(r0+tile, r)
				for i := r0; i < r1; i++ {
					row := src.Data[i*c : (i+1)*c]
					for j := c0; j < c1; j++ {
						dst.Data[j*r+i] = row[j]
					}
				}
			}
		}
	})
}

// addInto computes dst += src element-wise, in parallel.
func addInto(dst, src []float32, workers int) {
	src = src[:len(dst)]
	sparse.ParallelFor(len(dst), workers, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		for k := range d {
			d[k] += s[k]
		}
	})
}

// dot64 returns Σ a_k b_k accumulated in float64.
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1 float64
	k := 0
	for ; k+2 <= len(a); k += 2 {
		s0 += float64(a[k]) * float64(b[k])
		s1 += float64(a[k+1]) * float64(b[k+1])
	}
	if k < len(a) {
		s0 += float64(a[k]) * float64(b[k])
	}
	return s0 + s1
}

// axpy computes y += a·x.
func axpy(a float32, x, y []float32) {
	x = x[:len(y)]
	for k := range y {
		y[k] += a * x[k]
	}
}

// normEps is F.normalize's eps: rows with a smaller norm are divided by
// it instead.
const normEps = 1e-12

// normalizeRows writes out = F.normalize(x, dim=1) and the divisors
// max(‖x_r‖, 1e-12) into den (one per row).
func normalizeRows(out, x sparse.Mat, den []float32) {
	for r := range x.Rows {
		row := x.Row(r)
		d := math.Max(math.Sqrt(dot64(row, row)), normEps)
		den[r] = float32(d)
		inv := float32(1 / d)
		o := out.Row(r)
		for k, v := range row {
			o[k] = v * inv
		}
	}
}

// normalizeRowsVJP adds to gx the gradient of F.normalize given the
// gradient gy of its output y and the divisors den: (gy − y (y·gy)) / den
// for rows whose norm exceeded eps, gy / eps otherwise (the clamp passes no
// gradient, as in PyTorch).
func normalizeRowsVJP(gx, y, gy sparse.Mat, den []float32) {
	for r := range y.Rows {
		yr, gr, out := y.Row(r), gy.Row(r), gx.Row(r)
		inv := 1 / den[r]
		if float64(den[r]) <= normEps {
			for k := range out {
				out[k] += gr[k] * inv
			}
			continue
		}
		p := float32(dot64(yr, gr))
		for k := range out {
			out[k] += (gr[k] - yr[k]*p) * inv
		}
	}
}

// sigmoid64 is the logistic function.
func sigmoid64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

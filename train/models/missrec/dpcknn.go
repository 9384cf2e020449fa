package missrec

import (
	"fmt"
	"math"
	"slices"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// dpcKNN is the reference's DPC-KNN interest discovery
// (cluster_utils.cluster_dpc_knn, unweighted tokens), the alternative to
// kmeans:
//
//   - distances d(i, j) = ‖x_i − x_j‖ / √D (torch.cdist / √D);
//   - local density ρ_i = exp(−mean of d(i, j)² over the `local` nearest
//     tokens j, the token itself included);
//   - δ_i = the smallest distance to a token of strictly higher density,
//     capped at the largest distance of all pairs (which a token without a
//     denser one gets);
//   - the k tokens of largest ρ·δ are the centres (ties to the lower
//     index), cluster c = the c-th largest;
//   - every token goes to its nearest centre (ties to the lower cluster), a
//     centre to its own cluster;
//   - centroid c = Σ of its tokens / (count + 1e-4).
//
// The N × N distances are recomputed in blocks of rows (two passes and the
// assignment), so memory stays O(block · N); time is O(N² · D). It returns
// the labels (0-based) and the centroids [k, D].
func dpcKNN(tokens sparse.Mat, k, local, workers int) ([]int32, sparse.Mat, error) {
	n, d := tokens.Rows, tokens.Cols
	if k < 1 || k > n {
		return nil, sparse.Mat{}, fmt.Errorf("dpc-knn: %d clusters for %d tokens", k, n)
	}
	local = min(max(local, 1), n)
	sq := make([]float32, n)
	for i := range n {
		var s float32
		for _, v := range tokens.Row(i) {
			s += v * v
		}
		sq[i] = s
	}
	tt := tokens.Transpose()
	invD := 1 / float64(d)
	const block = 256
	buf := sparse.NewMat(min(block, n), n)
	// rows calls f on the squared scaled distances d(i, ·)² of each row i.
	rows := func(f func(i int, d2 []float32)) error {
		for lo := 0; lo < n; lo += block {
			hi := min(lo+block, n)
			a := sparse.Mat{Rows: hi - lo, Cols: d, Data: tokens.Data[lo*d : hi*d]}
			out := sparse.Mat{Rows: hi - lo, Cols: n, Data: buf.Data[:(hi-lo)*n]}
			if err := sparse.MulABtT(out, a, tt, workers); err != nil {
				return fmt.Errorf("dpc-knn: %w", err)
			}
			for r := range hi - lo {
				i := lo + r
				row := out.Row(r)
				for j, p := range row {
					row[j] = float32(math.Max(float64(sq[i]+sq[j]-2*p), 0) * invD)
				}
				row[i] = 0
				f(i, row)
			}
		}
		return nil
	}
	density := make([]float64, n)
	var maxD2 float32
	sel := make([]float32, n)
	if err := rows(func(i int, d2 []float32) {
		copy(sel, d2)
		for _, v := range d2 {
			maxD2 = max(maxD2, v)
		}
		smallest(sel, local)
		var s float64
		for _, v := range sel[:local] {
			s += float64(v)
		}
		density[i] = math.Exp(-s / float64(local))
	}); err != nil {
		return nil, sparse.Mat{}, err
	}
	score := make([]float64, n)
	if err := rows(func(i int, d2 []float32) {
		best := maxD2
		for j, v := range d2 {
			if density[j] > density[i] && v < best {
				best = v
			}
		}
		score[i] = math.Sqrt(float64(best)) * density[i]
	}); err != nil {
		return nil, sparse.Mat{}, err
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case score[a] > score[b]:
			return -1
		case score[a] < score[b]:
			return 1
		}
		return 0
	})
	centres := order[:k]
	cent := sparse.NewMat(k, d)
	for c, i := range centres {
		copy(cent.Row(c), tokens.Row(i))
	}
	labels, err := nearest(tokens, cent, workers)
	if err != nil {
		return nil, sparse.Mat{}, err
	}
	for c, i := range centres {
		labels[i] = int32(c)
	}
	sum := make([]float64, k*d)
	cnt := make([]float64, k)
	for i, lab := range labels {
		cnt[lab]++
		s := sum[int(lab)*d : (int(lab)+1)*d]
		for c, v := range tokens.Row(i) {
			s[c] += float64(v)
		}
	}
	for c := range k {
		row := cent.Row(c)
		for j := range row {
			row[j] = float32(sum[c*d+j] / (cnt[c] + 1e-4))
		}
	}
	return labels, cent, nil
}

// nearest returns the centroid of smallest Euclidean distance to every row
// of x (ties to the lower index).
func nearest(x, cent sparse.Mat, workers int) ([]int32, error) {
	k := cent.Rows
	ct := cent.Transpose()
	cn := make([]float32, k)
	for j := range k {
		for _, v := range cent.Row(j) {
			cn[j] += v * v
		}
	}
	labels := make([]int32, x.Rows)
	const block = 512
	prod := sparse.NewMat(min(block, x.Rows), k)
	for lo := 0; lo < x.Rows; lo += block {
		hi := min(lo+block, x.Rows)
		a := sparse.Mat{Rows: hi - lo, Cols: x.Cols, Data: x.Data[lo*x.Cols : hi*x.Cols]}
		out := sparse.Mat{Rows: hi - lo, Cols: k, Data: prod.Data[:(hi-lo)*k]}
		if err := sparse.MulABtT(out, a, ct, workers); err != nil {
			return nil, fmt.Errorf("dpc-knn: %w", err)
		}
		for i := range hi - lo {
			best, bj := float32(math.Inf(1)), 0
			for j, p := range out.Row(i) {
				if s := cn[j] - 2*p; s < best { // ‖x‖² is common to the row
					best, bj = s, j
				}
			}
			labels[lo+i] = int32(bj)
		}
	}
	return labels, nil
}

// smallest reorders v so that its first m elements are its m smallest
// (in any order): quickselect with median-of-three pivots.
func smallest(v []float32, m int) {
	lo, hi := 0, len(v)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		p := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case m-1 <= j:
			hi = j
		case m-1 >= i:
			lo = i
		default:
			return
		}
	}
}

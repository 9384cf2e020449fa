package missrec

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// numInterests is the reference's num_interest: max(⌈tokens·ratio⌉, 1).
func numInterests(tokens int, ratio float64) int {
	return max(int(math.Ceil(float64(tokens)*ratio)), 1)
}

// kmeans is the reference's interest discovery (cluster_utils.cluster_kmeans
// over TorchPQ's MinibatchKMeans, Euclidean), as it actually executes:
//
//   - batch := kmeans_batch, raised to ⌊1.1·K⌋ when it is ≤ K;
//   - the tokens are walked in order in chunks of batch; a chunk after
//     which at most K tokens would remain takes all of them and ends the
//     pass;
//   - the centroids start as K distinct tokens of the first chunk, drawn
//     uniformly (numpy's choice without replacement);
//   - per chunk: each token goes to its nearest centroid; then (abs, the
//     reference's behaviour) TorchPQ's in-place distance kernel has left
//     |x| in the chunk and |c| in the centroids; c_delta = mean of the
//     chunk's tokens per cluster (0 for a cluster with none);
//     c ← c·(1−w) + c_delta·w with w = 1/n_k, n_k = 1 + tokens assigned to
//     k in earlier chunks (so the first chunk replaces every centroid by
//     its chunk mean and empty clusters become 0);
//   - the convergence error is measured after the in-place update, so it is
//     always 0 and the reference's outer loop stops after one pass;
//   - final labels: every token (signed) to its nearest final centroid.
//
// Nearest = largest 2·x·c − |x|² − |c|² (TorchPQ's euc_sim), ties to the
// lower cluster. It returns the labels (0-based) and the centroids [K, d].
func kmeans(tokens sparse.Mat, k, batch int, abs bool, rng *rand.Rand, workers int) ([]int32, sparse.Mat, error) {
	return kmeansPick(tokens, k, batch, abs, func(rows, k int) []int {
		// Partial Fisher–Yates: k distinct rows of the chunk.
		perm := make([]int, rows)
		for i := range perm {
			perm[i] = i
		}
		for j := range k {
			r := j + rng.IntN(rows-j)
			perm[j], perm[r] = perm[r], perm[j]
		}
		return perm[:k]
	}, workers)
}

// kmeansPick is kmeans with the initial centroids chosen by pick (k
// distinct row indices of the first chunk of the given number of rows).
func kmeansPick(tokens sparse.Mat, k, batch int, abs bool, pick func(rows, k int) []int, workers int) ([]int32, sparse.Mat, error) {
	n, d := tokens.Rows, tokens.Cols
	if k < 1 || k > n {
		return nil, sparse.Mat{}, fmt.Errorf("kmeans: %d clusters for %d tokens", k, n)
	}
	if batch <= k {
		batch = int(float64(k) * 1.1)
	}
	counts := make([]float32, k)
	for j := range counts {
		counts[j] = 1
	}
	var cent sparse.Mat
	for ptr := 0; ptr < n; ptr += batch {
		end := ptr + batch
		last := n-ptr-batch <= k
		if last {
			end = n
		}
		x := sparse.Mat{Rows: end - ptr, Cols: d, Data: tokens.Data[ptr*d : end*d]}
		if cent.Data == nil {
			if x.Rows < k {
				return nil, sparse.Mat{}, fmt.Errorf("kmeans: first chunk of %d tokens for %d clusters", x.Rows, k)
			}
			cent = sparse.NewMat(k, d)
			for j, r := range pick(x.Rows, k) {
				copy(cent.Row(j), x.Row(r))
			}
		}
		labels, err := assign(x, cent, workers)
		if err != nil {
			return nil, sparse.Mat{}, err
		}
		if abs {
			for i, v := range cent.Data {
				cent.Data[i] = float32(math.Abs(float64(v)))
			}
		}
		sum := make([]float64, k*d)
		cnt := make([]int, k)
		for i, lab := range labels {
			cnt[lab]++
			row := x.Row(i)
			s := sum[int(lab)*d : (int(lab)+1)*d]
			for c, v := range row {
				if abs {
					v = float32(math.Abs(float64(v)))
				}
				s[c] += float64(v)
			}
		}
		for j := range k {
			w := 1 / counts[j]
			row := cent.Row(j)
			for c := range row {
				var delta float32
				if cnt[j] > 0 {
					delta = float32(sum[j*d+c] / float64(cnt[j]))
				}
				row[c] = row[c]*(1-w) + delta*w
			}
			counts[j] += float32(cnt[j])
		}
		if last {
			break
		}
	}
	labels, err := assign(tokens, cent, workers)
	if err != nil {
		return nil, sparse.Mat{}, err
	}
	return labels, cent, nil
}

// assign returns the nearest centroid of every row of x (largest
// 2·x·c − |x|² − |c|², ties to the lower index), in blocks of rows.
func assign(x, cent sparse.Mat, workers int) ([]int32, error) {
	k := cent.Rows
	ct := cent.Transpose()
	cn := make([]float32, k)
	for j := range k {
		var s float32
		for _, v := range cent.Row(j) {
			s += v * v
		}
		cn[j] = s
	}
	labels := make([]int32, x.Rows)
	const block = 512
	prod := sparse.NewMat(min(block, x.Rows), k)
	for lo := 0; lo < x.Rows; lo += block {
		hi := min(lo+block, x.Rows)
		a := sparse.Mat{Rows: hi - lo, Cols: x.Cols, Data: x.Data[lo*x.Cols : hi*x.Cols]}
		out := sparse.Mat{Rows: hi - lo, Cols: k, Data: prod.Data[:(hi-lo)*k]}
		if err := sparse.MulABtT(out, a, ct, workers); err != nil {
			return nil, fmt.Errorf("kmeans: %w", err)
		}
		for i := range hi - lo {
			var xn float32
			for _, v := range a.Row(i) {
				xn += v * v
			}
			row := out.Row(i)
			best, bj := float32(math.Inf(-1)), 0
			for j, p := range row {
				if s := 2*p - xn - cn[j]; s > best {
					best, bj = s, j
				}
			}
			labels[lo+i] = int32(bj)
		}
	}
	return labels, nil
}

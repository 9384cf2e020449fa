package missrec

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// TestDPCKNNHandComputed follows DPC-KNN by hand on five 2-D tokens
// (a, a) for a = 0, 0.12, 0.2, 1, 1.05: with D = 2 the scaled distance
// ‖x_i − x_j‖/√2 is |a_i − a_j|. Local size 3 (the token and its two
// nearest): mean squared distances 0.018133, 0.006933, 0.015467,
// 0.214167, 0.241667, so ρ = e^−mean orders the tokens 1 > 2 > 0 > 3 > 4.
// δ (nearest denser token; the largest distance 1.05 for token 1): 1.05,
// 0.12 (→1), 0.08 (→1), 0.8 (→2), 0.05 (→3). Scores ρ·δ: 1.04274,
// 0.11784, 0.07877, 0.64578, 0.03927: centres 1, 3 (K = 2) and then 0
// (K = 3).
func TestDPCKNNHandComputed(t *testing.T) {
	as := []float32{0, 0.12, 0.2, 1, 1.05}
	x := sparse.NewMat(len(as), 2)
	for i, a := range as {
		x.Row(i)[0], x.Row(i)[1] = a, a
	}
	for _, tc := range []struct {
		k      int
		labels []int32
		cent   []float64 // first coordinate (both are equal)
	}{
		// K = 2: tokens 0, 1, 2 → centre 1 (cluster 0), 3, 4 → centre 3;
		// centroids Σ/(n + 1e-4).
		{2, []int32{0, 0, 0, 1, 1}, []float64{0.32 / 3.0001, 2.05 / 2.0001}},
		// K = 3: centre 0 is cluster 2; token 2 is nearer token 1 (0.08)
		// than token 0 (0.2).
		{3, []int32{2, 0, 0, 1, 1}, []float64{0.32 / 2.0001, 2.05 / 2.0001, 0 / 1.0001}},
	} {
		labels, cent, err := dpcKNN(x, tc.k, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(labels, tc.labels) {
			t.Errorf("K=%d: labels %v, want %v", tc.k, labels, tc.labels)
		}
		for c, want := range tc.cent {
			if !near(float64(cent.Row(c)[0]), want, 1e-5) || cent.Row(c)[0] != cent.Row(c)[1] {
				t.Errorf("K=%d: centroid %d = %v, want (%v, %v)", tc.k, c, cent.Row(c), want, want)
			}
		}
	}
	if _, _, err := dpcKNN(x, 6, 3, 1); err == nil {
		t.Error("6 clusters of 5 tokens: no error")
	}
}

// TestSmallest checks the quickselect against sorting.
func TestSmallest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for n := 1; n < 40; n++ {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.IntN(7)) // many ties
		}
		want := slices.Clone(v)
		slices.Sort(want)
		for m := 1; m <= n; m++ {
			w := slices.Clone(v)
			smallest(w, m)
			got := slices.Clone(w[:m])
			slices.Sort(got)
			if !slices.Equal(got, want[:m]) {
				t.Fatalf("n %d m %d: %v, want %v", n, m, got, want[:m])
			}
		}
	}
}

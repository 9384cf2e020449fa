// Package seqdata holds what mmpipe's sequential models share on the host:
// users' chronological histories from a split and inverted-dropout masks
// drawn from the run's random stream.
package seqdata

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
)

// Histories returns each user's items of the parts ≤ upTo (train only for
// store.PartTrain; train then valid for store.PartValid), in chronological
// order (timestamp, then row order).
func Histories(s *store.Split, numUsers int, upTo int8) ([][]int32, error) {
	type row struct {
		ts   int64
		part int8
		k    int
	}
	per := make([][]row, numUsers)
	for k, u := range s.User {
		p := s.Part[k]
		if p > upTo {
			continue
		}
		if u < 0 || int(u) >= numUsers {
			return nil, fmt.Errorf("split row %d: user %d outside [0, %d)", k, u, numUsers)
		}
		var ts int64
		if len(s.Timestamp) > k {
			ts = s.Timestamp[k]
		}
		per[u] = append(per[u], row{ts, p, k})
	}
	out := make([][]int32, numUsers)
	for u, rs := range per {
		// Train rows come before valid rows whatever their timestamps (the
		// leave-one-out split put the valid item after the training ones).
		slices.SortStableFunc(rs, func(a, b row) int {
			if c := cmp.Compare(a.part, b.part); c != 0 {
				return c
			}
			return cmp.Compare(a.ts, b.ts)
		})
		seq := make([]int32, len(rs))
		for j, r := range rs {
			seq[j] = s.Item[r.k]
		}
		out[u] = seq
	}
	return out, nil
}

// DropMask returns n inverted-dropout factors: 0 with probability p, else
// 1/(1-p) (all ones when p = 0, without touching rng). Each factor uses 16 bits of one draw.
func DropMask(rng *train.RNG, n int, p float64) []float32 {
	out := make([]float32, n)
	if p <= 0 {
		for k := range out {
			out[k] = 1
		}
		return out
	}
	keep := float32(1 / (1 - p))
	thr := uint64(math.Round(p * 65536))
	for k := 0; k < n; k += 4 {
		v := rng.Uint64()
		for j := k; j < min(k+4, n); j++ {
			if v&0xffff >= thr {
				out[j] = keep
			}
			v >>= 16
		}
	}
	return out
}

package train

import (
	"fmt"
	"slices"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// BPRSampler draws (user, positive, negative) training triples the way
// LightGCN's reference sampler does: a user uniformly among the users with
// at least one training item, a positive uniformly among that user's
// training items, and a negative uniformly among all items, redrawn while
// it is one of the user's training items.
type BPRSampler struct {
	train    *sparse.CSR
	users    []int32
	numItems int
}

// maxNegativeDraws bounds the redraws of a negative (a user who has
// almost every item keeps the last draw).
const maxNegativeDraws = 1000

// NewBPRSampler builds a sampler over the binary training matrix.
func NewBPRSampler(train *sparse.CSR) (*BPRSampler, error) {
	s := &BPRSampler{train: train, numItems: train.NCols}
	for u := range train.NRows {
		if train.RowPtr[u+1] > train.RowPtr[u] {
			s.users = append(s.users, int32(u))
		}
	}
	if len(s.users) == 0 {
		return nil, fmt.Errorf("bpr sampler: no training interactions")
	}
	if s.numItems < 2 {
		return nil, fmt.Errorf("bpr sampler: %d items, need at least 2", s.numItems)
	}
	return s, nil
}

// Sample fills u, p and n (same length) with triples.
func (s *BPRSampler) Sample(rng *RNG, u, p, n []int32) {
	for b := range u {
		user := s.users[rng.IntN(len(s.users))]
		items, _ := s.train.Row(int(user))
		pos := items[rng.IntN(len(items))]
		var neg int32
		for range maxNegativeDraws {
			neg = int32(rng.IntN(s.numItems))
			if _, found := slices.BinarySearch(items, neg); !found {
				break
			}
		}
		u[b], p[b], n[b] = user, pos, neg
	}
}

// Package itemknn is ItemKNN-CBF, the content-based nearest-neighbour
// baseline: items are compared by the cosine similarity of a modality's
// feature vectors (features/<modality>.*.arrow), each item keeps its K most
// similar items, and a user's score for item i is the sum of the
// similarities between i and the user's training items:
//
//	score(u, i) = Σ_{j ∈ train(u)} sim_K(j, i),  sim_K(j, i) = cos(x_j, x_i) if i is among j's K nearest, else 0
//
// Items without a vector (null rows) have no neighbours and are never a
// neighbour. The model has nothing to train: it is the first baseline that
// uses the dataset's modality features, and shows what the features alone
// carry. Building the neighbour lists costs items² · dim multiply-adds, done
// in parallel blocks (about a second for 7,000 items × 128 here); it is
// meant for catalogues up to a few hundred thousand items.
package itemknn

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
)

// Config is the model's keys (under `model.`).
type Config struct {
	// Features names the feature file: a modality ("image") or a file stem
	// ("image.imported").
	Features string `yaml:"features" json:"features"`
	// K is the number of neighbours kept per item.
	K int `yaml:"k" json:"k"`
}

// Validate checks the values.
func (c *Config) Validate() error {
	if c.Features == "" {
		return fmt.Errorf("features: name a modality or feature file, e.g. image")
	}
	if c.K <= 0 {
		return fmt.Errorf("k: must be positive, got %d", c.K)
	}
	return nil
}

// Factory returns the model's factory.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "itemknn-cbf",
		Describe:  "ItemKNN-CBF: cosine neighbours of the items' modality features (model.features), no training",
		Protocol:  eval.Graph,
		NewConfig: func() train.ModelConfig { return &Config{Features: "image", K: 100} },
		Defaults: func(c *train.Config) {
			c.Epochs = 1
			c.Patience = 0
		},
		New: New,
	}
}

// Model holds the neighbour lists: item j's neighbours are
// nbr[j*K : j*K+n[j]] with similarities sim[...].
type Model struct {
	k     int
	items int
	nbr   []int32
	sim   []float32
	count []int32
	data  *train.Data
}

// New reads the features and builds the neighbour lists.
func New(env *train.Env) (train.Model, error) {
	cfg := env.Config.Model.(*Config)
	ff, err := env.Data.Features(cfg.Features)
	if err != nil {
		return nil, err
	}
	defer ff.Close()
	n, d := ff.Rows(), ff.Dim()
	if ff.Tokens() > 0 {
		return nil, fmt.Errorf("itemknn-cbf: %s is a token file; use pooled features", cfg.Features)
	}
	x := make([]float32, n*d) // L2-normalised rows; zero for items without a vector
	valid := make([]bool, n)
	for r := range n {
		if !ff.Valid(r) {
			continue
		}
		v := ff.Vector(r)
		var ss float64
		for _, a := range v {
			ss += float64(a) * float64(a)
		}
		if ss == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(ss))
		for c, a := range v {
			x[r*d+c] = a * inv
		}
		valid[r] = true
	}
	k := min(cfg.K, max(n-1, 1))
	m := &Model{k: k, items: n, nbr: make([]int32, n*k), sim: make([]float32, n*k), count: make([]int32, n), data: env.Data}
	workers := max(env.Workers, 1)
	var wg sync.WaitGroup
	next := make(chan int, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			type cand struct {
				i int32
				s float32
			}
			row := make([]cand, 0, n)
			for j := range next {
				if !valid[j] {
					continue
				}
				xj := x[j*d : (j+1)*d]
				row = row[:0]
				for i := range n {
					if i == j || !valid[i] {
						continue
					}
					var s float32
					for c, a := range x[i*d : (i+1)*d] {
						s += a * xj[c]
					}
					row = append(row, cand{int32(i), s})
				}
				// Highest similarity first, ties by lower index.
				slices.SortFunc(row, func(a, b cand) int {
					if c := cmp.Compare(b.s, a.s); c != 0 {
						return c
					}
					return cmp.Compare(a.i, b.i)
				})
				c := min(k, len(row))
				for t := range c {
					m.nbr[j*k+t], m.sim[j*k+t] = row[t].i, row[t].s
				}
				m.count[j] = int32(c)
			}
		}()
	}
	for j := range n {
		next <- j
	}
	close(next)
	wg.Wait()
	return m, nil
}

// BatchesPerEpoch is 0: nothing to train.
func (m *Model) BatchesPerEpoch() int { return 0 }

// TrainBatch is never called.
func (m *Model) TrainBatch(context.Context, *train.RNG) (train.Losses, error) { return nil, nil }

// Scorer sums the neighbour similarities of each user's training items.
func (m *Model) Scorer(context.Context, int8) (eval.ScoreFunc, error) {
	tr := m.data.Train
	return func(users []int32, scores []float32) error {
		n := m.items
		for b, u := range users {
			s := scores[b*n : (b+1)*n]
			clear(s)
			for p := tr.RowPtr[u]; p < tr.RowPtr[u+1]; p++ {
				j := int(tr.ColIdx[p])
				for t := range int(m.count[j]) {
					s[m.nbr[j*m.k+t]] += m.sim[j*m.k+t]
				}
			}
		}
		return nil
	}, nil
}

// State is the neighbour lists.
func (m *Model) State() []train.Tensor {
	return []train.Tensor{
		train.F32Tensor("neighbour_similarity", m.sim, m.items, m.k),
	}
}

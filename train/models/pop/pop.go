// Package pop is the item-popularity baseline: every user gets the same
// ranking, items ordered by their number of training interactions (ties
// by lower item index, the evaluation's tie rule). It has nothing to
// train; a model below it is broken.
package pop

import (
	"context"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
)

// Config has no keys.
type Config struct{}

// Validate accepts the empty config.
func (c *Config) Validate() error { return nil }

// Factory returns the model's factory.
func Factory() *train.Factory {
	return &train.Factory{
		Name:      "pop",
		Describe:  "item popularity: training interactions per item (no training)",
		Protocol:  eval.Graph,
		NewConfig: func() train.ModelConfig { return &Config{} },
		Defaults: func(c *train.Config) {
			c.Epochs = 1
			c.Patience = 0
		},
		New: New,
	}
}

// Model is the popularity ranking.
type Model struct {
	counts []float32
}

// New counts the training rows of every item.
func New(env *train.Env) (train.Model, error) {
	d := env.Data
	m := &Model{counts: make([]float32, d.NumItems)}
	for k, p := range d.Split.Part {
		if p == store.PartTrain {
			m.counts[d.Split.Item[k]]++
		}
	}
	return m, nil
}

// BatchesPerEpoch is 0: nothing to train.
func (m *Model) BatchesPerEpoch() int { return 0 }

// TrainBatch is never called.
func (m *Model) TrainBatch(context.Context, *train.RNG) (train.Losses, error) { return nil, nil }

// Scorer gives every user the popularity counts.
func (m *Model) Scorer(context.Context, int8) (eval.ScoreFunc, error) {
	return func(users []int32, scores []float32) error {
		n := len(m.counts)
		for b := range users {
			copy(scores[b*n:(b+1)*n], m.counts)
		}
		return nil
	}, nil
}

// State is the count vector.
func (m *Model) State() []train.Tensor {
	return []train.Tensor{train.F32Tensor("popularity", m.counts, len(m.counts))}
}

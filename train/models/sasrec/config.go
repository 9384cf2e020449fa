package sasrec

import "fmt"

// Config is SASRec's configuration. The defaults are RecBole's SASRec
// (model/sequential_recommender/sasrec.yaml and the overall defaults):
// 2 blocks of 2 heads, hidden 64, feed-forward 256, GELU, dropout 0.5 on
// hidden states and attention weights, LayerNorm eps 1e-12, N(0, 0.02)
// initialisation, history of at most 50 items, full-softmax cross-entropy,
// Adam with learning rate 1e-3.
type Config struct {
	// Dim is the hidden size (item and position embeddings).
	Dim int `yaml:"dim" json:"dim"`
	// Layers is the number of transformer blocks.
	Layers int `yaml:"layers" json:"layers"`
	// Heads is the number of attention heads (must divide dim).
	Heads int `yaml:"heads" json:"heads"`
	// Inner is the feed-forward width.
	Inner int `yaml:"inner" json:"inner"`
	// HiddenDropout is the dropout on the embedding output, the attention
	// output and the feed-forward output.
	HiddenDropout float64 `yaml:"hidden_dropout" json:"hidden_dropout"`
	// AttnDropout is the dropout on the attention weights.
	AttnDropout float64 `yaml:"attn_dropout" json:"attn_dropout"`
	// LNEps is LayerNorm's epsilon.
	LNEps float64 `yaml:"ln_eps" json:"ln_eps"`
	// InitStd is the standard deviation of the normal initialisation of
	// embeddings and weight matrices (biases start at 0, LayerNorm at 1/0).
	InitStd float64 `yaml:"init_std" json:"init_std"`
	// MaxLen is the longest history the model reads (RecBole's
	// MAX_ITEM_LIST_LENGTH): older items are dropped.
	MaxLen int `yaml:"max_len" json:"max_len"`
	// LR and WeightDecay are Adam's learning rate and L2 weight decay.
	LR          float64 `yaml:"lr" json:"lr"`
	WeightDecay float64 `yaml:"weight_decay" json:"weight_decay"`
	// BatchSize is the number of training windows (sequences) per batch;
	// every position of a window is a training target.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// MaxTokens bounds the padded positions (batch × bucket length) of a
	// training batch: a bucket of length L takes min(batch_size,
	// max_tokens / L) sequences per batch. The item softmax is computed for
	// every target position, so this bounds the [targets, items] logits
	// (and the run's memory) on large catalogues. 0 = batch_size × max_len.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens"`
	// LenBucket is the granularity of sequence-length buckets: a batch's
	// sequences are padded to a multiple of it (one compiled graph per
	// bucket), instead of always to max_len.
	LenBucket int `yaml:"len_bucket" json:"len_bucket"`
	// EvalBatch is the number of users encoded per scoring call.
	EvalBatch int `yaml:"eval_batch" json:"eval_batch"`
}

// batchFor returns the number of sequences per batch in a bucket of
// padded length l.
func (c *Config) batchFor(l int) int {
	if c.MaxTokens == 0 {
		return c.BatchSize
	}
	return min(c.BatchSize, max(1, c.MaxTokens/l))
}

// DefaultConfig returns RecBole's SASRec defaults.
func DefaultConfig() *Config {
	return &Config{Dim: 64, Layers: 2, Heads: 2, Inner: 256, HiddenDropout: 0.5, AttnDropout: 0.5,
		LNEps: 1e-12, InitStd: 0.02, MaxLen: 50, LR: 1e-3, BatchSize: 256, LenBucket: 10, EvalBatch: 512}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Dim < 1:
		return fmt.Errorf("dim: must be ≥ 1, got %d", c.Dim)
	case c.Layers < 0:
		return fmt.Errorf("layers: must be ≥ 0, got %d", c.Layers)
	case c.Heads < 1 || c.Dim%c.Heads != 0:
		return fmt.Errorf("heads: must be ≥ 1 and divide dim %d, got %d", c.Dim, c.Heads)
	case c.Inner < 1:
		return fmt.Errorf("inner: must be ≥ 1, got %d", c.Inner)
	case !(c.HiddenDropout >= 0 && c.HiddenDropout < 1):
		return fmt.Errorf("hidden_dropout: must be in [0, 1), got %v", c.HiddenDropout)
	case !(c.AttnDropout >= 0 && c.AttnDropout < 1):
		return fmt.Errorf("attn_dropout: must be in [0, 1), got %v", c.AttnDropout)
	case !(c.LNEps > 0):
		return fmt.Errorf("ln_eps: must be positive, got %v", c.LNEps)
	case !(c.InitStd > 0):
		return fmt.Errorf("init_std: must be positive, got %v", c.InitStd)
	case c.MaxLen < 1:
		return fmt.Errorf("max_len: must be ≥ 1, got %d", c.MaxLen)
	case !(c.LR > 0):
		return fmt.Errorf("lr: must be positive, got %v", c.LR)
	case !(c.WeightDecay >= 0):
		return fmt.Errorf("weight_decay: must be ≥ 0, got %v", c.WeightDecay)
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size: must be ≥ 1, got %d", c.BatchSize)
	case c.MaxTokens < 0:
		return fmt.Errorf("max_tokens: must be ≥ 0, got %d", c.MaxTokens)
	case c.LenBucket < 1:
		return fmt.Errorf("len_bucket: must be ≥ 1, got %d", c.LenBucket)
	case c.EvalBatch < 1:
		return fmt.Errorf("eval_batch: must be ≥ 1, got %d", c.EvalBatch)
	}
	return nil
}

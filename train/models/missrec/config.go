package missrec

import (
	"fmt"
	"math"
)

// Stages and modes.
const (
	StageFinetune = "finetune"
	StagePretrain = "pretrain"

	// ModeTransductive uses item-ID embeddings beside the modality
	// features (the reference's transductive_ft); ModeInductive uses the
	// features only (inductive_ft).
	ModeTransductive = "transductive"
	ModeInductive    = "inductive"

	// FusionDynamic is the reference's dynamic_shared item fusion: one
	// learnable scalar f, per-modality cosines weighted by
	// softmax(f·cosines). FusionStatic is the plain average.
	FusionDynamic = "dynamic"
	FusionStatic  = "static"
)

// Config is MISSRec's configuration. The defaults are the reference's
// fine-tuning configuration (props/MISSRec.yaml, props/finetune.yaml and
// RecBole's overall defaults): hidden size 300, one encoder and one decoder
// layer of 4 heads, feed-forward 256, GELU, dropout 0.5, LayerNorm eps
// 1e-12, temperature 0.07, interest regulariser weight 1e-4, interest ratio
// 0.5, history of at most 50 items, batch 512, Adam with learning rate 1e-3.
type Config struct {
	// Stage is "finetune" (train on the dataset's sequences; from scratch)
	// or "pretrain" (not implemented yet).
	Stage string `yaml:"stage" json:"stage"`
	// Mode is "transductive" (with item-ID embeddings) or "inductive"
	// (modality features only).
	Mode string `yaml:"mode" json:"mode"`
	// TextFeatures and ImageFeatures name the feature files of the two
	// modalities (a modality such as "text", or a file stem such as
	// "text.imported"); "" leaves that modality out.
	TextFeatures  string `yaml:"text_features" json:"text_features"`
	ImageFeatures string `yaml:"image_features" json:"image_features"`
	// Dim is the hidden size (adaptor output, positions, interests).
	Dim int `yaml:"dim" json:"dim"`
	// Heads is the number of attention heads (must divide dim).
	Heads int `yaml:"heads" json:"heads"`
	// Inner is the feed-forward width.
	Inner int `yaml:"inner" json:"inner"`
	// Dropout is the one dropout rate of the reference (attention weights,
	// residual branches, feed-forward, decoder input).
	Dropout float64 `yaml:"dropout" json:"dropout"`
	// LNEps is LayerNorm's epsilon.
	LNEps float64 `yaml:"ln_eps" json:"ln_eps"`
	// InitStd is the standard deviation of the N(0, init_std) initialisation
	// of embeddings, output projections and feed-forward weights.
	InitStd float64 `yaml:"init_std" json:"init_std"`
	// MaxLen is the longest history the model reads (older items dropped).
	MaxLen int `yaml:"max_len" json:"max_len"`
	// Temperature divides the fused cosine scores in the softmax.
	Temperature float64 `yaml:"temperature" json:"temperature"`
	// Gamma weighs the interest regulariser.
	Gamma float64 `yaml:"gamma" json:"gamma"`
	// Fusion is the item-side fusion of the per-modality cosines:
	// "dynamic" (reference default, dynamic_shared) or "static".
	Fusion string `yaml:"fusion" json:"fusion"`
	// InterestRatio sets the number of interests: ⌈ratio · tokens⌉, tokens
	// = (number of modalities) × items.
	InterestRatio float64 `yaml:"interest_ratio" json:"interest_ratio"`
	// KMeansBatch is the k-means mini-batch size (raised to ⌊1.1·K⌋ when
	// it is not larger than K, as the reference does).
	KMeansBatch int `yaml:"kmeans_batch" json:"kmeans_batch"`
	// KMeansAbs reproduces the reference's k-means exactly: TorchPQ's
	// in-place distance computation leaves |x| in the mini-batch and |c| in
	// the centroids, so centroids are means of absolute values (see
	// kmeans.go). false gives textbook means.
	KMeansAbs bool `yaml:"kmeans_abs" json:"kmeans_abs"`
	// PadClass keeps the padding item as a class of the training softmax
	// (its logit comes from the adaptor biases), as the reference does.
	PadClass bool `yaml:"pad_class" json:"pad_class"`
	// LR and WeightDecay are Adam's learning rate and L2 weight decay.
	LR          float64 `yaml:"lr" json:"lr"`
	WeightDecay float64 `yaml:"weight_decay" json:"weight_decay"`
	// BatchSize is the number of prefix rows (history, target) per batch.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// LenBucket is the granularity of the padded history length (one
	// compiled graph per bucket) and of the padded interest count.
	LenBucket int `yaml:"len_bucket" json:"len_bucket"`
	// EvalBatch is the number of users encoded per scoring call.
	EvalBatch int `yaml:"eval_batch" json:"eval_batch"`
}

// DefaultConfig returns the reference's fine-tuning defaults.
func DefaultConfig() *Config {
	return &Config{Stage: StageFinetune, Mode: ModeTransductive, TextFeatures: "text", ImageFeatures: "image",
		Dim: 300, Heads: 4, Inner: 256, Dropout: 0.5, LNEps: 1e-12, InitStd: 0.02, MaxLen: 50,
		Temperature: 0.07, Gamma: 1e-4, Fusion: FusionDynamic, InterestRatio: 0.5, KMeansBatch: 2048,
		KMeansAbs: true, PadClass: true, LR: 1e-3, BatchSize: 512, LenBucket: 10, EvalBatch: 1024}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Stage != StageFinetune && c.Stage != StagePretrain:
		return fmt.Errorf("stage: must be %q or %q, got %q", StageFinetune, StagePretrain, c.Stage)
	case c.Mode != ModeTransductive && c.Mode != ModeInductive:
		return fmt.Errorf("mode: must be %q or %q, got %q", ModeTransductive, ModeInductive, c.Mode)
	case c.TextFeatures == "" && c.ImageFeatures == "":
		return fmt.Errorf("text_features, image_features: name at least one feature file")
	case c.Dim < 1:
		return fmt.Errorf("dim: must be ≥ 1, got %d", c.Dim)
	case c.Heads < 1 || c.Dim%c.Heads != 0:
		return fmt.Errorf("heads: must be ≥ 1 and divide dim %d, got %d", c.Dim, c.Heads)
	case c.Inner < 1:
		return fmt.Errorf("inner: must be ≥ 1, got %d", c.Inner)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("dropout: must be in [0, 1), got %v", c.Dropout)
	case !(c.LNEps > 0):
		return fmt.Errorf("ln_eps: must be positive, got %v", c.LNEps)
	case !(c.InitStd > 0):
		return fmt.Errorf("init_std: must be positive, got %v", c.InitStd)
	case c.MaxLen < 1 || c.MaxLen > 4096:
		return fmt.Errorf("max_len: must be in [1, 4096], got %d", c.MaxLen)
	case !(c.Temperature > 0) || math.IsInf(c.Temperature, 0):
		return fmt.Errorf("temperature: must be positive, got %v", c.Temperature)
	case !(c.Gamma >= 0):
		return fmt.Errorf("gamma: must be ≥ 0, got %v", c.Gamma)
	case c.Fusion != FusionDynamic && c.Fusion != FusionStatic:
		return fmt.Errorf("fusion: must be %q or %q, got %q", FusionDynamic, FusionStatic, c.Fusion)
	case !(c.InterestRatio > 0 && c.InterestRatio <= 1):
		return fmt.Errorf("interest_ratio: must be in (0, 1], got %v", c.InterestRatio)
	case c.KMeansBatch < 1:
		return fmt.Errorf("kmeans_batch: must be ≥ 1, got %d", c.KMeansBatch)
	case !(c.LR > 0):
		return fmt.Errorf("lr: must be positive, got %v", c.LR)
	case !(c.WeightDecay >= 0):
		return fmt.Errorf("weight_decay: must be ≥ 0, got %v", c.WeightDecay)
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size: must be ≥ 1, got %d", c.BatchSize)
	case c.LenBucket < 1:
		return fmt.Errorf("len_bucket: must be ≥ 1, got %d", c.LenBucket)
	case c.EvalBatch < 1:
		return fmt.Errorf("eval_batch: must be ≥ 1, got %d", c.EvalBatch)
	}
	return nil
}

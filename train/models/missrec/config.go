package missrec

import (
	"fmt"
	"math"
	"slices"
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

	// ClusterKMeans is the reference's one-pass mini-batch k-means (the
	// algorithm its trainer calls); ClusterDPCKNN is the density-peak
	// clustering with k-nearest-neighbour density of cluster_utils.py
	// (commented out at the reference's call site).
	ClusterKMeans = "kmeans"
	ClusterDPCKNN = "dpc-knn"
)

// Config is MISSRec's configuration. The defaults are the reference's
// fine-tuning configuration (props/MISSRec.yaml, props/finetune.yaml and
// RecBole's overall defaults): hidden size 300, one encoder and one decoder
// layer of 4 heads, feed-forward 256, GELU, dropout 0.5, LayerNorm eps
// 1e-12, temperature 0.07, interest regulariser weight 1e-4, interest ratio
// 0.5, history of at most 50 items, batch 512, Adam with learning rate 1e-3.
type Config struct {
	// Stage is "finetune" (full-softmax next-item training on the
	// dataset's sequences, from scratch or from an --init checkpoint) or
	// "pretrain" (in-batch sequence–item and sequence–sequence contrastive
	// training on the sequences of the dataset and of pretrain_datasets;
	// no item-ID embeddings; the dataset's valid split is scored as a
	// monitor only).
	Stage string `yaml:"stage" json:"stage"`
	// Mode is "transductive" (with item-ID embeddings) or "inductive"
	// (modality features only); fine-tuning only (pre-training has no IDs).
	Mode string `yaml:"mode" json:"mode"`
	// PretrainDatasets are further mmpipe dataset directories pre-trained
	// on beside --dataset (stage=pretrain): their training sequences join
	// the batches and their items the interest clustering, with item ids
	// prefixed by domain (domain 0 = --dataset). Each must have the same
	// feature files (same names and dimensions).
	PretrainDatasets []string `yaml:"pretrain_datasets" json:"pretrain_datasets"`
	// TextAugFeatures names the word-dropped text feature file of the
	// word-drop augmentation (the reference's .feat2CLS), in every
	// pre-training dataset; "" replaces a dropped word's text by no text
	// (a zero feature row, i.e. the adaptor bias).
	TextAugFeatures string `yaml:"text_aug_features" json:"text_aug_features"`
	// Lambda weighs the sequence–sequence contrastive loss (pre-training).
	Lambda float64 `yaml:"lambda" json:"lambda"`
	// ItemDropRatio is the probability that a position is dropped by the
	// augmentation; ItemDropCoefficient the probability that a batch's
	// augmentation is item drop (else word drop).
	ItemDropRatio       float64 `yaml:"item_drop_ratio" json:"item_drop_ratio"`
	ItemDropCoefficient float64 `yaml:"item_drop_coefficient" json:"item_drop_coefficient"`
	// Freeze, when fine-tuning from an --init checkpoint, freezes what the
	// reference's finetune.py freezes: the position embeddings and the whole
	// Transformer (encoder and decoder). false trains everything.
	Freeze bool `yaml:"freeze" json:"freeze"`
	// Cluster is the interest discovery algorithm: "kmeans" (reference) or
	// "dpc-knn".
	Cluster string `yaml:"cluster" json:"cluster"`
	// KNNLocalRatio sets DPC-KNN's neighbourhood: ⌈ratio · tokens⌉ nearest
	// neighbours give a token's local density.
	KNNLocalRatio float64 `yaml:"knn_local_ratio" json:"knn_local_ratio"`
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

// DefaultConfig returns the reference's fine-tuning defaults (the
// reference pre-trains with interest_ratio 0.02 and batch_size 4096: set
// those two beside stage=pretrain to follow it).
func DefaultConfig() *Config {
	return &Config{Stage: StageFinetune, Mode: ModeTransductive, TextFeatures: "text", ImageFeatures: "image",
		PretrainDatasets: []string{}, Lambda: 1e-3, ItemDropRatio: 0.2, ItemDropCoefficient: 0.9, Freeze: true,
		Cluster: ClusterKMeans, KNNLocalRatio: 0.1,
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
	case c.Stage == StagePretrain && slices.Contains(c.PretrainDatasets, ""):
		return fmt.Errorf("pretrain_datasets: an empty directory name")
	case c.Stage != StagePretrain && len(c.PretrainDatasets) > 0:
		return fmt.Errorf("pretrain_datasets: only for stage=%s (stage is %q)", StagePretrain, c.Stage)
	case !(c.Lambda >= 0):
		return fmt.Errorf("lambda: must be ≥ 0, got %v", c.Lambda)
	case !(c.ItemDropRatio >= 0 && c.ItemDropRatio < 1):
		return fmt.Errorf("item_drop_ratio: must be in [0, 1), got %v", c.ItemDropRatio)
	case !(c.ItemDropCoefficient >= 0 && c.ItemDropCoefficient <= 1):
		return fmt.Errorf("item_drop_coefficient: must be in [0, 1], got %v", c.ItemDropCoefficient)
	case c.Cluster != ClusterKMeans && c.Cluster != ClusterDPCKNN:
		return fmt.Errorf("cluster: must be %q or %q, got %q", ClusterKMeans, ClusterDPCKNN, c.Cluster)
	case !(c.KNNLocalRatio > 0 && c.KNNLocalRatio <= 1):
		return fmt.Errorf("knn_local_ratio: must be in (0, 1], got %v", c.KNNLocalRatio)
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

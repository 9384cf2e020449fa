package pmmrec

import (
	"fmt"
	"math"
)

// Stages, transfer parts and item towers.
const (
	StageFinetune = "finetune"
	StagePretrain = "pretrain"

	TransferFull        = "full"
	TransferItemEncoder = "item_encoder"
	TransferUserEncoder = "user_encoder"

	TowerModal = "modal"
	TowerText  = "text"
	TowerImage = "image"
	TowerID    = "id"
)

// Config is PMMRec's configuration. The defaults are the reference's
// (setup.py / parameters.py, research/models.md §4.10): width 768, a
// merged-attention fusion layer of 12 heads × 64, a SASRec user encoder of
// 2 blocks × 2 heads, dropout 0.1, at most 20 input items (21 slots),
// 50 tokens per modality, batch 32 users, AdamW lr 1e-4 wd 0.1. The
// pre-training weights, noise rate and temperature are ours (the paper's
// objectives are not released; see the package documentation).
type Config struct {
	// Stage is "finetune" (next-item loss only) or "pretrain" (next-item
	// loss + NICL + NID + RCL).
	Stage string `yaml:"stage" json:"stage"`
	// Transfer is the part taken from an --init checkpoint: "full",
	// "item_encoder" (the reference's default) or "user_encoder".
	Transfer string `yaml:"transfer" json:"transfer"`
	// Tower is the item tower: "modal" (fusion of text and image tokens),
	// "text", "image" (masked mean of the projected tokens) or "id".
	Tower string `yaml:"tower" json:"tower"`
	// TextFeatures and ImageFeatures name the token files (a modality such
	// as "text", or a stem such as "text.text-hash.tokens"); a pooled
	// feature file is accepted as one token per item.
	TextFeatures  string `yaml:"text_features" json:"text_features"`
	ImageFeatures string `yaml:"image_features" json:"image_features"`
	// MaxTokens caps the tokens per item and modality.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens"`
	// Dim is the width of the projections, fusion and user encoder.
	Dim int `yaml:"dim" json:"dim"`
	// FusionHeads is the number of heads of the fusion layer (BERT-base:
	// 12 of 64); its feed-forward width is 4·dim.
	FusionHeads int `yaml:"fusion_heads" json:"fusion_heads"`
	// Heads and Blocks shape the SASRec user encoder (feed-forward 4·dim).
	Heads  int `yaml:"heads" json:"heads"`
	Blocks int `yaml:"blocks" json:"blocks"`
	// Dropout is the one dropout rate (fusion attention and residual
	// branches, user encoder input, attention and residual branches).
	Dropout float64 `yaml:"dropout" json:"dropout"`
	// MaxSeqLen is the number of input positions (slots = MaxSeqLen+1).
	MaxSeqLen int `yaml:"max_seq_len" json:"max_seq_len"`
	// BatchSize is the number of users per batch.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// LR and WeightDecay are AdamW's (decoupled decay, every parameter).
	LR          float64 `yaml:"lr" json:"lr"`
	WeightDecay float64 `yaml:"weight_decay" json:"weight_decay"`
	// Pre-training: loss weights, share of each sequence's input items
	// replaced by random items, and the InfoNCE temperature.
	NICLWeight  float64 `yaml:"nicl_weight" json:"nicl_weight"`
	NIDWeight   float64 `yaml:"nid_weight" json:"nid_weight"`
	RCLWeight   float64 `yaml:"rcl_weight" json:"rcl_weight"`
	NoiseRate   float64 `yaml:"noise_rate" json:"noise_rate"`
	Temperature float64 `yaml:"temperature" json:"temperature"`
	// ItemBucket rounds the number of distinct items encoded per batch up
	// to a multiple (one compiled graph per bucket).
	ItemBucket int `yaml:"item_bucket" json:"item_bucket"`
	// EvalBatch is the number of items / users encoded per scoring call.
	EvalBatch int `yaml:"eval_batch" json:"eval_batch"`
}

// DefaultConfig returns the reference's defaults.
func DefaultConfig() *Config {
	return &Config{Stage: StageFinetune, Transfer: TransferItemEncoder, Tower: TowerModal,
		TextFeatures: "text", ImageFeatures: "image", MaxTokens: 50,
		Dim: 768, FusionHeads: 12, Heads: 2, Blocks: 2, Dropout: 0.1, MaxSeqLen: 20, BatchSize: 32,
		LR: 1e-4, WeightDecay: 0.1,
		NICLWeight: 0.4, NIDWeight: 0.1, RCLWeight: 0.1, NoiseRate: 0.15, Temperature: 0.1,
		ItemBucket: 64, EvalBatch: 256}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	oneOf := func(v string, ok ...string) bool {
		for _, s := range ok {
			if v == s {
				return true
			}
		}
		return false
	}
	switch {
	case !oneOf(c.Stage, StageFinetune, StagePretrain):
		return fmt.Errorf("stage: must be %q or %q, got %q", StageFinetune, StagePretrain, c.Stage)
	case !oneOf(c.Transfer, TransferFull, TransferItemEncoder, TransferUserEncoder):
		return fmt.Errorf("transfer: must be %q, %q or %q, got %q", TransferFull, TransferItemEncoder, TransferUserEncoder, c.Transfer)
	case !oneOf(c.Tower, TowerModal, TowerText, TowerImage, TowerID):
		return fmt.Errorf("tower: must be %q, %q, %q or %q, got %q", TowerModal, TowerText, TowerImage, TowerID, c.Tower)
	case (c.Tower == TowerModal || c.Tower == TowerText) && c.TextFeatures == "":
		return fmt.Errorf("text_features: tower %q needs a text token file", c.Tower)
	case (c.Tower == TowerModal || c.Tower == TowerImage) && c.ImageFeatures == "":
		return fmt.Errorf("image_features: tower %q needs an image token file", c.Tower)
	case c.MaxTokens < 1:
		return fmt.Errorf("max_tokens: must be ≥ 1, got %d", c.MaxTokens)
	case c.Dim < 1:
		return fmt.Errorf("dim: must be ≥ 1, got %d", c.Dim)
	case c.FusionHeads < 1 || c.Dim%c.FusionHeads != 0:
		return fmt.Errorf("fusion_heads: must be ≥ 1 and divide dim %d, got %d (BERT-base: dim/64)", c.Dim, c.FusionHeads)
	case c.Heads < 1 || c.Dim%c.Heads != 0:
		return fmt.Errorf("heads: must be ≥ 1 and divide dim %d, got %d", c.Dim, c.Heads)
	case c.Blocks < 1:
		return fmt.Errorf("blocks: must be ≥ 1, got %d", c.Blocks)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("dropout: must be in [0, 1), got %v", c.Dropout)
	case c.MaxSeqLen < 1 || c.MaxSeqLen > 512:
		return fmt.Errorf("max_seq_len: must be in [1, 512], got %d", c.MaxSeqLen)
	case c.BatchSize < 1:
		return fmt.Errorf("batch_size: must be ≥ 1, got %d", c.BatchSize)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("lr: must be positive, got %v", c.LR)
	case !(c.WeightDecay >= 0):
		return fmt.Errorf("weight_decay: must be ≥ 0, got %v", c.WeightDecay)
	case !(c.NICLWeight >= 0) || !(c.NIDWeight >= 0) || !(c.RCLWeight >= 0):
		return fmt.Errorf("nicl_weight, nid_weight, rcl_weight: must be ≥ 0, got %v, %v, %v", c.NICLWeight, c.NIDWeight, c.RCLWeight)
	case c.Stage == StagePretrain && c.NICLWeight > 0 && c.Tower != TowerModal:
		return fmt.Errorf("nicl_weight: NICL contrasts text and image, it needs tower %q (got %q; set nicl_weight=0)", TowerModal, c.Tower)
	case !(c.NoiseRate > 0 && c.NoiseRate < 1):
		return fmt.Errorf("noise_rate: must be in (0, 1), got %v", c.NoiseRate)
	case !(c.Temperature > 0) || math.IsInf(c.Temperature, 0):
		return fmt.Errorf("temperature: must be positive, got %v", c.Temperature)
	case c.ItemBucket < 1:
		return fmt.Errorf("item_bucket: must be ≥ 1, got %d", c.ItemBucket)
	case c.EvalBatch < 1:
		return fmt.Errorf("eval_batch: must be ≥ 1, got %d", c.EvalBatch)
	}
	return nil
}

// Package train is mmpipe's training run life cycle, shared by every
// model: configuration (defaults, YAML, --set overrides, validation), data
// loading from a dataset directory, the epoch loop with a progress bar,
// per-epoch validation, metrics.jsonl, checkpoints (periodic, best, and on
// interrupt) with exact resume, early stopping, the test score of the
// selected checkpoint, report.json, curves.png and top-K recommendations as
// Parquet.
//
// A model plugs in through [Factory] and [Model]; the kernels it uses live
// in train/sparse and the metrics in train/eval.
//
// # Run directory
//
//	run.json                what was run: model, dataset, split, protocol, versions
//	config.yaml             the resolved configuration
//	metrics.jsonl           one JSON object per epoch: epoch, seconds, loss terms, valid
//	checkpoints/last.ckpt   the latest state (every checkpoint_every epochs, at the end,
//	                        and when interrupted, mid-epoch at a batch boundary)
//	checkpoints/best.ckpt   the state at the best validation score
//	report.json             the final report (DESIGN.md, Contracts)
//	curves.png              training loss and validation metric per epoch
//	recommendations.parquet top-K per user (recommend_k > 0, or `mmpipe recommend`)
//
// # Determinism
//
// Parameters are initialised from the seed's init stream and every random
// draw of training comes from the seed's training stream, whose state is
// saved in every checkpoint; the kernels are deterministic whatever the
// number of threads. A resumed run therefore ends with the same parameters,
// bit for bit, as an uninterrupted one.
package train

import (
	"context"
	"log/slog"

	"github.com/mmpipe/mmpipe/train/eval"
)

// Losses are the loss terms of one batch (e.g. "loss", "bpr", "reg"); the
// trainer reports their mean over an epoch's batches.
type Losses map[string]float64

// Model is one trainable recommender.
type Model interface {
	// BatchesPerEpoch returns the number of training batches of an epoch
	// (0 for a model with nothing to train, such as popularity).
	BatchesPerEpoch() int
	// TrainBatch runs one optimisation step. rng is the run's training
	// stream: every random draw of training must come from it (and only
	// in the calling goroutine), so that a resumed run repeats an
	// uninterrupted one.
	TrainBatch(ctx context.Context, rng *RNG) (Losses, error)
	// Scorer returns a scoring function for the current parameters, for
	// ranking the items of part (store.PartValid or store.PartTest; a
	// sequential model builds each user's history from it). The function
	// must be safe for concurrent use and stays valid until the next
	// TrainBatch.
	Scorer(ctx context.Context, part int8) (eval.ScoreFunc, error)
	// State returns the tensors of the model's state: parameters and
	// optimiser state (moments, step counts). They alias the model's
	// memory: a checkpoint writes them and a restore copies into them.
	State() []Tensor
}

// Env is what a model's constructor gets.
type Env struct {
	Data   *Data
	Config *Config
	// InitRNG is the seed's initialisation stream.
	InitRNG *RNG
	// Workers is the number of goroutines the kernels may use.
	Workers int
	Log     *slog.Logger
	// Init is the checkpoint given with --init (nil for a run from
	// scratch), already verified and of this model; only models whose
	// Factory sets Transfer get one. New copies the tensors it transfers
	// (Checkpoint.Tensor, Checkpoint.CopyTensor) after initialising the
	// rest, and must say which it took: a transfer that silently loads
	// nothing is a bug (PMMRec's reference user_encoder mode).
	Init *Checkpoint
}

// Factory describes a model to the trainer and the CLI.
type Factory struct {
	// Name is the --model name.
	Name string
	// Describe is a one-line description.
	Describe string
	// Protocol is the evaluation protocol the model is evaluated with by
	// default.
	Protocol eval.Protocol
	// NewConfig returns the model's default configuration.
	NewConfig func() ModelConfig
	// Defaults adjusts the trainer defaults for the model (optional), e.g.
	// one epoch for a model without training.
	Defaults func(*Config)
	// New builds the model, initialising its parameters from env.InitRNG.
	New func(env *Env) (Model, error)
	// Transfer says that the model can start from a checkpoint of an
	// earlier run of the same model (--init, Env.Init).
	Transfer bool
}

// DefaultConfig returns the complete default configuration of the model.
func (f *Factory) DefaultConfig() *Config {
	c := DefaultConfig(f.NewConfig())
	if f.Defaults != nil {
		f.Defaults(c)
	}
	return c
}

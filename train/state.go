package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/mmpipe/mmpipe/store"
)

// TrainState is the trainer's part of a checkpoint: where the run stands,
// the RNG state, early stopping and the per-epoch history.
type TrainState struct {
	// Epoch is the epoch in progress, or the next one (from 1).
	Epoch int `json:"epoch"`
	// Batch is the next batch of Epoch to run; BatchesPerEpoch when the
	// epoch's training is done but its validation is not.
	Batch int `json:"batch"`
	// LossSums, LossBatches and Seconds accumulate the epoch in progress.
	LossSums    map[string]float64 `json:"loss_sums,omitempty"`
	LossBatches int                `json:"loss_batches"`
	Seconds     float64            `json:"seconds"`
	CPUSeconds  float64            `json:"cpu_seconds"`
	// RNG is the training stream's state.
	RNG []byte `json:"rng"`
	// BestEpoch is the epoch with the best validation score so far (0:
	// none), BestScore its select_metric and BestValid all its metrics.
	BestEpoch int                `json:"best_epoch"`
	BestScore float64            `json:"best_score"`
	BestValid map[string]float64 `json:"best_valid,omitempty"`
	// BadEvals counts validations since the best without improvement.
	BadEvals int `json:"bad_evals"`
	// Finished is set once training has ended (last epoch or early stop).
	Finished     bool `json:"finished"`
	StoppedEarly bool `json:"stopped_early"`
	// History holds one record per completed epoch.
	History []EpochRecord `json:"history"`
}

// EpochRecord is one line of metrics.jsonl.
type EpochRecord struct {
	Epoch int `json:"epoch"`
	// Seconds is the epoch's training wall time (validation excluded),
	// CPUSeconds the process's CPU time (user + system) meanwhile.
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// Losses are the mean loss terms over the epoch's batches.
	Losses map[string]float64 `json:"losses,omitempty"`
	// Valid holds the validation metrics (absent when the epoch was not
	// validated).
	Valid       map[string]float64 `json:"valid,omitempty"`
	EvalSeconds float64            `json:"eval_seconds,omitempty"`
}

// reservedKeys are the metrics.jsonl keys loss terms may not use.
var reservedKeys = []string{"epoch", "seconds", "cpu_seconds", "valid", "eval_seconds"}

// jsonLine renders the record as one metrics.jsonl object: epoch, seconds,
// the loss terms at the top level, valid, eval_seconds.
func (r EpochRecord) jsonLine() ([]byte, error) {
	m := map[string]any{"epoch": r.Epoch, "seconds": r.Seconds, "cpu_seconds": r.CPUSeconds}
	for k, v := range r.Losses {
		if slices.Contains(reservedKeys, k) {
			return nil, fmt.Errorf("loss term %q clashes with a metrics.jsonl key", k)
		}
		m[k] = v
	}
	if r.Valid != nil {
		m["valid"] = r.Valid
		m["eval_seconds"] = r.EvalSeconds
	}
	return json.Marshal(m)
}

// appendMetrics appends one record to metrics.jsonl and syncs it.
func appendMetrics(path string, r EpochRecord) error {
	line, err := r.jsonLine()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	return f.Close()
}

// rewriteMetrics replaces metrics.jsonl with the given history (on resume,
// dropping lines of epochs after the checkpoint).
func rewriteMetrics(path string, hist []EpochRecord) error {
	af, err := store.OpenAtomicFile(path)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer af.Abort()
	bw := bufio.NewWriter(af)
	for _, r := range hist {
		line, err := r.jsonLine()
		if err != nil {
			return err
		}
		bw.Write(line)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	return af.Commit()
}

// meanLosses divides loss sums by the batch count.
func meanLosses(sums map[string]float64, n int) map[string]float64 {
	if n == 0 {
		return nil
	}
	out := maps.Clone(sums)
	for k := range out {
		out[k] /= float64(n)
	}
	return out
}

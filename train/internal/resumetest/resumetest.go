// Package resumetest checks that a model's training resumes exactly: a run
// cancelled during epoch 2 and resumed from its checkpoint must end with the
// same test metrics as an uninterrupted run. It is test support, imported
// only by _test files.
package resumetest

import (
	"context"
	"errors"
	"testing"

	"github.com/mmpipe/mmpipe/train"
)

// InterruptResume runs f with o (o.Out the run folder, o.AfterBatch
// replaced), cancels it after batch 1 of epoch 2, checks that Run reports an
// InterruptedError, resumes it with --resume and compares every test metric
// with want (the uninterrupted run's) bit for bit. It returns the resumed
// run's report for further checks.
func InterruptResume(t *testing.T, f *train.Factory, o train.Options, want map[string]float64) *train.Report {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.AfterBatch = func(e, b int) {
		if e == 2 && b == 1 {
			cancel()
		}
	}
	_, err := train.Run(ctx, f, o)
	var ie *train.InterruptedError
	if !errors.As(err, &ie) {
		t.Fatalf("interrupted run: %v, want an InterruptedError", err)
	}
	got, err := train.Run(context.Background(), f, train.Options{Out: o.Out, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got.Test[k] != v {
			t.Errorf("test %s: resumed %v, uninterrupted %v", k, got.Test[k], v)
		}
	}
	return got
}

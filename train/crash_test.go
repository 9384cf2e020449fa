package train_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/models/lightgcn"
	"github.com/mmpipe/mmpipe/train/models/mf"
)

// The crash test trains in a child process (this test binary re-executed
// with trainHelperOut set, running TestTrainHelperProcess), kills it with
// SIGKILL at random moments and resumes it with --resume semantics.
const (
	trainHelperOut     = "TRAIN_CRASH_OUT"
	trainHelperDataset = "TRAIN_CRASH_DATASET"
	trainHelperModel   = "TRAIN_CRASH_MODEL"
)

// crashSets: enough epochs that a run can be killed inside one, a
// checkpoint after each, no early stop.
var crashSets = append(slices.Clone(fastSets), "epochs=16", "patience=0", "checkpoint_every=1", "eval_every=2")

func crashFactory(name string) *train.Factory {
	if name == "lightgcn" {
		return lightgcn.Factory()
	}
	return mf.Factory()
}

// TestTrainHelperProcess is not a test: it is the child process of
// TestTrainCrashResume and returns at once when run normally. It starts the
// run or resumes it (as `mmpipe train --resume` does: a fresh directory
// starts a run). Exit codes: 0 done, 1 error.
func TestTrainHelperProcess(t *testing.T) {
	out := os.Getenv(trainHelperOut)
	if out == "" {
		return
	}
	_, err := train.Run(context.Background(), crashFactory(os.Getenv(trainHelperModel)), train.Options{
		Dataset: os.Getenv(trainHelperDataset), Split: "random", Out: out, Sets: crashSets, Resume: true, Version: "test"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperTrain(ds, out, model string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), trainHelperOut+"="+out, trainHelperDataset+"="+ds, trainHelperModel+"="+model)
	cmd.Stderr = os.Stderr
	return cmd
}

// metricsWithoutTimes reads metrics.jsonl without the wall-clock fields.
func metricsWithoutTimes(t *testing.T, out string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics.jsonl line %d: %v", len(recs)+1, err)
		}
		for k := range m {
			if k == "seconds" || k == "cpu_seconds" || k == "eval_seconds" {
				delete(m, k)
			}
		}
		recs = append(recs, m)
	}
	return recs
}

// TestTrainCrashResume kills training with SIGKILL at seeded random moments
// (loading, inside an epoch, while evaluating or checkpointing) and resumes
// it each time: the run that finishes has the final parameters, report
// metrics and per-epoch metrics of an uninterrupted run, bit for bit.
func TestTrainCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: trains in child processes (-short)")
	}
	ds := demoDataset(t)
	for _, model := range []string{"mf", "lightgcn"} {
		t.Run(model, func(t *testing.T) {
			root := t.TempDir()
			full := filepath.Join(root, "full")
			t0 := time.Now()
			if out, err := helperTrain(ds, full, model).Output(); err != nil {
				t.Fatalf("uninterrupted run: %v %s", err, out)
			}
			d := time.Since(t0)
			want := readRunReport(t, full)

			out := filepath.Join(root, "killed")
			rng := rand.New(rand.NewPCG(uint64(len(model)), 5))
			killed := 0
			for round := 0; round < 12 && killed < 3; round++ {
				// Within what is left of the run: the epochs in
				// metrics.jsonl are done.
				left := 1 - float64(countLinesIfAny(filepath.Join(out, train.MetricsFile)))/16
				delay := time.Duration(rng.Float64() * max(left, 0.1) * float64(d))
				logf := func(err error) {
					t.Logf("round %d: kill after %v (an uninterrupted run takes %v): %v; %d epochs in metrics.jsonl", round,
						delay.Round(time.Millisecond), d.Round(time.Millisecond), err, countLinesIfAny(filepath.Join(out, train.MetricsFile)))
				}
				cmd := helperTrain(ds, out, model)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(delay)
				cmd.Process.Signal(syscall.SIGKILL)
				err := cmd.Wait()
				var ee *exec.ExitError
				switch {
				case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
					killed++
					logf(err)
				case err != nil:
					t.Fatalf("round %d: training failed: %v", round, err)
				default:
					logf(err)
					// Finished before the kill: check it, then start over
					// with shorter delays (every later run would skip).
					sameRun(t, fmt.Sprintf("round %d", round), full, out, want)
					d = d * 3 / 4
					if err := os.RemoveAll(out); err != nil {
						t.Fatal(err)
					}
				}
			}
			if killed < 2 {
				t.Fatalf("only %d runs were killed before they finished", killed)
			}
			if b, err := helperTrain(ds, out, model).Output(); err != nil {
				t.Fatalf("the run after the kills failed: %v %s", err, b)
			}
			sameRun(t, fmt.Sprintf("after %d kills", killed), full, out, want)
		})
	}
}

// sameRun fails unless the run in out ended as the uninterrupted run in
// full: final parameters bit for bit, report metrics, metrics.jsonl.
func sameRun(t *testing.T, name, full, out string, want *runReport) {
	t.Helper()
	got := readRunReport(t, out)
	sameTensors(t, name, finalState(t, full), finalState(t, out))
	if got.BestEpoch != want.BestEpoch || got.EpochsRun != want.EpochsRun || !maps(got.Test, want.Test) || !maps(got.Valid, want.Valid) {
		t.Fatalf("%s: report differs: best epoch %d vs %d, epochs %d vs %d, test %v vs %v, valid %v vs %v", name,
			got.BestEpoch, want.BestEpoch, got.EpochsRun, want.EpochsRun, got.Test, want.Test, got.Valid, want.Valid)
	}
	if a, b := metricsWithoutTimes(t, out), metricsWithoutTimes(t, full); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: metrics.jsonl differs:\n got %v\nwant %v", name, a, b)
	}
}

// runReport is the part of report.json a resumed run must reproduce.
type runReport struct {
	BestEpoch int                `json:"best_epoch"`
	EpochsRun int                `json:"epochs_run"`
	Valid     map[string]float64 `json:"valid"`
	Test      map[string]float64 `json:"test"`
}

func readRunReport(t *testing.T, out string) *runReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, train.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var r runReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return &r
}

// countLinesIfAny counts the lines of a file, 0 when there is none.
func countLinesIfAny(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

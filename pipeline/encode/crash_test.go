package encode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/synth"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// The crash tests run the encoder in a child process: this test binary,
// re-executed with encodeHelperDataset set, runs TestEncodeHelperProcess,
// which the parent kills with SIGKILL at random moments.
const (
	encodeHelperDataset = "ENCODE_CRASH_DATASET"
	encodeHelperEncoder = "ENCODE_CRASH_ENCODER"
)

// TestEncodeHelperProcess is not a test: it is the child process of
// TestEncodeCrashResume and returns at once when run normally. Exit codes:
// 0 done, 1 error.
func TestEncodeHelperProcess(t *testing.T) {
	dir := os.Getenv(encodeHelperDataset)
	if dir == "" {
		return
	}
	if _, err := Run(context.Background(), crashOptions(dir, os.Getenv(encodeHelperEncoder))); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// crashOptions are the options of every run of the crash test: small
// batches and one worker, so a run lasts long enough to be killed inside.
func crashOptions(dir, encoder string) Options {
	o := Options{Dataset: dir, Encoder: encoder, Factory: factory(encoder), BatchSize: 4, Workers: 1, Version: "test"}
	if encoder == builtin.TextHashName {
		o.Opts = extract.Options{Dim: 64, TokenOutput: true, MaxTokens: 16}
	}
	return o
}

func helperEncode(dir, encoder string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEncodeHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), encodeHelperDataset+"="+dir, encodeHelperEncoder+"="+encoder)
	cmd.Stderr = os.Stderr
	return cmd
}

// crashDataset ingests the synth demo with n items and stores every image
// in images.lmdb.
func crashDataset(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	info, err := synth.Amazon2018Demo(ctx, t.TempDir(), synth.DemoConfig{Seed: 3, Users: n, Items: n, Categories: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ds")
	if _, err := dataset.Ingest(ctx, dataset.Options{Format: "amazon2018", Inputs: []string{info.ReviewsFile, info.MetaFile},
		Out: dir, Splits: dataset.SplitOptions{Names: []string{"random"}, Seed: 1}, Version: "test", MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	st, err := imagestore.Open(filepath.Join(dir, store.ImagesDir), imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &imagestore.Batch{}
	for _, p := range info.ImageFiles {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.PutImage(strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)), data, imagestore.LedgerEntry{Source: filepath.Base(p)})
	}
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snapshot reads every file of a dataset directory except LMDB's lock file
// (which readers rewrite), by relative path.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock.mdb" {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// diffSnapshots lists the files that differ between two snapshots.
func diffSnapshots(got, want map[string][]byte) []string {
	var diff []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diff = append(diff, "missing "+k)
		} else if !bytes.Equal(g, w) {
			diff = append(diff, "differs "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diff = append(diff, "extra "+k)
		}
	}
	slices.Sort(diff)
	return diff
}

// TestEncodeCrashResume kills the encoder with SIGKILL at seeded random
// moments (while it loads, fits, encodes or writes) and re-runs it after
// each kill: a killed run never leaves a feature file that does not read
// back as a whole file of the dataset, and the run that finishes leaves the
// dataset byte for byte as one uninterrupted run does (feature files,
// manifest, no stray temporary file).
func TestEncodeCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the encoder in child processes (-short)")
	}
	base := crashDataset(t, 300)
	for _, enc := range []string{builtin.ImageStatsName, builtin.TextHashName} {
		t.Run(enc, func(t *testing.T) {
			// Two uninterrupted runs: the result, and (warm) how long a run
			// takes, which bounds the kill times.
			var want map[string][]byte
			d := time.Duration(math.MaxInt64)
			for range 2 {
				ref := filepath.Join(t.TempDir(), "ref")
				if err := os.CopyFS(ref, os.DirFS(base)); err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				if out, err := helperEncode(ref, enc).Output(); err != nil {
					t.Fatalf("uninterrupted run: %v %s", err, out)
				}
				d = min(d, time.Since(t0))
				snap := snapshot(t, ref)
				if want != nil {
					if diff := diffSnapshots(snap, want); len(diff) > 0 {
						t.Fatalf("two uninterrupted runs differ: %v", diff)
					}
				}
				want = snap
			}

			work := filepath.Join(t.TempDir(), "work")
			if err := os.CopyFS(work, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(len(enc)), 9))
			killed := 0
			for round := 0; round < 12 && killed < 4; round++ {
				delay := time.Duration(rng.Float64() * float64(d))
				cmd := helperEncode(work, enc)
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
				case err != nil:
					t.Fatalf("round %d: the encoder failed: %v", round, err)
				}
				t.Logf("round %d: killed after %v (an uninterrupted run takes %v): %v", round, delay.Round(time.Millisecond), d.Round(time.Millisecond), err)
				checkComplete(t, work)
				if err == nil {
					// The run finished before the kill (the machine is faster
					// now): it must equal an uninterrupted run; then start
					// over with shorter delays, or every later run would
					// just skip.
					if diff := diffSnapshots(snapshot(t, work), want); len(diff) > 0 {
						t.Fatalf("round %d: a run after %d kills differs from an uninterrupted run: %v", round, killed, diff)
					}
					d = d * 3 / 4
					if err := os.RemoveAll(work); err != nil {
						t.Fatal(err)
					}
					if err := os.CopyFS(work, os.DirFS(base)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if killed < 2 {
				t.Fatalf("only %d runs were killed before they finished", killed)
			}
			if out, err := helperEncode(work, enc).Output(); err != nil {
				t.Fatalf("the run after the kills failed: %v %s", err, out)
			}
			if diff := diffSnapshots(snapshot(t, work), want); len(diff) > 0 {
				t.Fatalf("after %d kills the dataset differs from an uninterrupted run's: %v", killed, diff)
			}
		})
	}
}

// checkComplete fails unless every feature file in the dataset reads back
// whole and belongs to the dataset (a killed run may leave none, never a
// torn one).
func checkComplete(t *testing.T, dir string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, store.FeaturesDir, "*.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range names {
		if err := CheckFeatureFile(dir, p); err != nil {
			t.Fatalf("after a kill: %v", err)
		}
	}
}

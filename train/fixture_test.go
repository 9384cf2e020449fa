package train_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/synth"
)

// demo is the generated dataset shared by the tests of this package (built
// once, read-only afterwards).
type demo struct {
	once sync.Once
	root string
	dir  string
	err  error
}

var demoData demo

// TestMain removes the shared fixture afterwards.
func TestMain(m *testing.M) {
	code := m.Run()
	if demoData.root != "" {
		os.RemoveAll(demoData.root)
	}
	os.Exit(code)
}

// demoDataset returns a dataset directory generated with synth's Amazon
// 2018 demo (600 users, 400 items, 6 hidden categories) and ingested with a
// random split.
func demoDataset(t *testing.T) string {
	t.Helper()
	demoData.once.Do(func() {
		root, err := os.MkdirTemp("", "mmpipe-train-test-")
		if err != nil {
			demoData.err = err
			return
		}
		demoData.root = root
		raw := filepath.Join(root, "raw")
		if err := os.MkdirAll(raw, 0o755); err != nil {
			demoData.err = err
			return
		}
		info, err := synth.Amazon2018Demo(context.Background(), raw, synth.DemoConfig{Seed: 7})
		if err != nil {
			demoData.err = err
			return
		}
		out := filepath.Join(root, "dataset")
		_, err = dataset.Ingest(context.Background(), dataset.Options{
			Format: "amazon2018", Inputs: []string{info.ReviewsFile, info.MetaFile}, Out: out,
			Splits: dataset.SplitOptions{Names: []string{"random", "loo"}, Seed: 7}, Version: "test", MinRating: math.NaN(),
		})
		demoData.dir, demoData.err = out, err
	})
	if demoData.err != nil {
		t.Fatalf("demo dataset: %v", demoData.err)
	}
	return demoData.dir
}

// sharedData returns a folder of the shared real data, skipping (or
// failing when MMPIPE_REQUIRE_DATA=1) where it is absent.
func sharedData(t *testing.T, sub string) string {
	t.Helper()
	root := os.Getenv("MMPIPE_DATA")
	if root == "" {
		root = filepath.Join("..", "..", "shared", "data")
	}
	p := filepath.Join(root, sub)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MMPIPE_REQUIRE_DATA") == "1" {
			t.Fatalf("MMPIPE_REQUIRE_DATA=1 but %s is missing: %v", p, err)
		}
		t.Skipf("shared data %s not present (set MMPIPE_DATA): %v", p, err)
	}
	return p
}

package verify

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/encode"
	"github.com/mmpipe/mmpipe/pipeline/synth"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// newDataset ingests the synth Amazon 2018 demo (seeded), stores its images
// in images.lmdb and encodes the item texts with the text-hash encoder.
func newDataset(t *testing.T, seed uint64) (dir string, imageKeys []string) {
	t.Helper()
	ctx := context.Background()
	raw := t.TempDir()
	info, err := synth.Amazon2018Demo(ctx, raw, synth.DemoConfig{Seed: seed, Users: 40, Items: 30, Categories: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "ds")
	if _, err := dataset.Ingest(ctx, dataset.Options{Format: "amazon2018", Inputs: []string{info.ReviewsFile, info.MetaFile},
		Out: dir, Splits: dataset.SplitOptions{Names: []string{"random", "loo"}, Seed: 1}, Version: "test", MinRating: math.NaN()}); err != nil {
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
		id := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		b.PutImage(id, data, imagestore.LedgerEntry{Source: p})
		imageKeys = append(imageKeys, id)
	}
	b.PutLedger("no-image-item", imagestore.LedgerEntry{Status: imagestore.StatusFailed, Error: "http 404"})
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(imageKeys) == 0 {
		t.Fatal("the demo has no images")
	}
	if _, err := encode.Run(ctx, encode.Options{Dataset: dir, Encoder: builtin.TextHashName,
		Factory: builtin.Factories()[builtin.TextHashName], Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return dir, imageKeys
}

// copyDataset copies a (closed) dataset directory, LMDB included.
func copyDataset(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func verifyDir(t *testing.T, dir string) *Report {
	t.Helper()
	rep, err := Dataset(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// wantProblem fails unless rep has a problem of kind in file (and key, when
// given) whose message contains substr.
func wantProblem(t *testing.T, rep *Report, file, key, kind, substr string) {
	t.Helper()
	if rep.OK {
		t.Errorf("report OK, want a %s problem in %s", kind, file)
	}
	for _, p := range rep.Problems {
		if p.File == file && p.Kind == kind && (key == "" || p.Key == key) && strings.Contains(p.Message, substr) {
			return
		}
	}
	t.Errorf("no %s problem in %s (key %q) containing %q; problems:\n%v", kind, file, key, substr, rep.Problems)
}

func TestVerify(t *testing.T) {
	clean, keys := newDataset(t, 1)
	rep := verifyDir(t, clean)
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("clean dataset: %v", rep.Problems)
	}
	m, err := store.ReadManifest(clean)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked.Files != len(m.Outputs) || rep.Checked.Splits != 2 || rep.Checked.Features != 1 ||
		rep.Checked.Images != len(keys) || rep.Checked.Ledger != len(keys)+1 {
		t.Errorf("checked %+v; outputs %d, images %d", rep.Checked, len(m.Outputs), len(keys))
	}

	t.Run("flipped byte in items.parquet", func(t *testing.T) {
		dir := copyDataset(t, clean)
		p := filepath.Join(dir, store.ItemsFile)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x40
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := verifyDir(t, dir)
		wantProblem(t, rep, store.ItemsFile, "", KindHash, "content changed")
		for _, pr := range rep.Problems {
			if pr.File != store.ItemsFile {
				t.Errorf("problem outside items.parquet: %v", pr)
			}
		}
	})

	t.Run("deleted split", func(t *testing.T) {
		dir := copyDataset(t, clean)
		if err := os.Remove(store.SplitPath(dir, "loo")); err != nil {
			t.Fatal(err)
		}
		rep := verifyDir(t, dir)
		wantProblem(t, rep, "splits/loo.parquet", "", KindMissing, "absent")
		wantProblem(t, rep, "splits/loo.parquet", "", KindSplit, `split "loo" is in manifest.json but its file is absent`)
	})

	t.Run("feature file of another dataset", func(t *testing.T) {
		other, _ := newDataset(t, 2)
		dir := copyDataset(t, clean)
		name := encode.FileName("text", builtin.TextHashName, false)
		data, err := os.ReadFile(filepath.Join(other, store.FeaturesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, store.FeaturesDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := verifyDir(t, dir)
		wantProblem(t, rep, store.FeaturesDir+"/"+name, "", KindFeatures, "another dataset's id map")
	})

	t.Run("unexpected file", func(t *testing.T) {
		dir := copyDataset(t, clean)
		if err := os.WriteFile(filepath.Join(dir, "stray.txt"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, verifyDir(t, dir), "stray.txt", "", KindUnexpected, "not listed")
	})

	t.Run("corrupted LMDB image", func(t *testing.T) {
		dir := copyDataset(t, clean)
		st, err := imagestore.Open(filepath.Join(dir, store.ImagesDir), imagestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e, ok, err := st.Ledger(keys[0])
		if err != nil || !ok {
			t.Fatalf("ledger %s: %v %v", keys[0], ok, err)
		}
		e.SHA256 = strings.Repeat("0", 64)
		b := &imagestore.Batch{}
		b.PutLedger(keys[0], e) // the image stays, its ledger now disagrees
		b.PutLedger(keys[1], imagestore.LedgerEntry{Status: imagestore.StatusFailed, Error: "timeout"})
		b.PutLedger("ghost", imagestore.LedgerEntry{Status: imagestore.StatusOK, SHA256: strings.Repeat("1", 64)})
		if err := st.Commit(b); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		rep := verifyDir(t, dir)
		wantProblem(t, rep, store.ImagesDir, keys[0], KindImages, "ledger says \"0000")
		wantProblem(t, rep, store.ImagesDir, keys[1], KindImages, `ledger status is "failed"`)
		wantProblem(t, rep, store.ImagesDir, "ghost", KindImages, "no image stored")
		if len(rep.Problems) != 3 {
			t.Errorf("want 3 problems, got %v", rep.Problems)
		}
	})

	t.Run("no manifest", func(t *testing.T) {
		dir := copyDataset(t, clean)
		os.Remove(filepath.Join(dir, store.ManifestFile))
		wantProblem(t, verifyDir(t, dir), store.ManifestFile, "", KindManifest, "not a complete mmpipe dataset")
	})
}

func TestVerifyCancelled(t *testing.T) {
	dir, _ := newDataset(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dataset(ctx, dir); err == nil {
		t.Error("cancelled verify returned no error")
	}
	if _, err := Dataset(context.Background(), filepath.Join(dir, "absent")); err == nil {
		t.Error("verify of a missing directory returned no error")
	}
}

package merge

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/pipeline/crawl"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/encode"
	"github.com/mmpipe/mmpipe/pipeline/synth"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// newDataset ingests the synth Amazon 2018 demo into a fresh directory.
func newDataset(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	info, err := synth.Amazon2018Demo(ctx, t.TempDir(), synth.DemoConfig{Seed: 5, Users: 40, Items: 37, Categories: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ds")
	if _, err := dataset.Ingest(ctx, dataset.Options{Format: "amazon2018", Inputs: []string{info.ReviewsFile, info.MetaFile},
		Out: dir, Splits: dataset.SplitOptions{Names: []string{"random"}, Seed: 1}, Version: "test", MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	return dir
}

var textOpts = extract.Options{Dim: 24, TokenOutput: true, MaxTokens: 6}

func encodeText(t *testing.T, dir string, shard encode.Shard, opts extract.Options) *encode.Result {
	t.Helper()
	res, err := encode.Run(context.Background(), encode.Options{Dataset: dir, Encoder: builtin.TextHashName,
		Factory: builtin.Factories()[builtin.TextHashName], Opts: opts, Shard: shard, Version: "test", BatchSize: 4, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openDS(t *testing.T, dir string) *store.Dataset {
	t.Helper()
	ds, err := store.OpenDataset(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestFourShardsEqualOneRun(t *testing.T) {
	dir := newDataset(t)
	whole := encodeText(t, dir, encode.Shard{}, textOpts)
	pooled := readFile(t, filepath.Join(dir, whole.File))
	tokens := readFile(t, filepath.Join(dir, whole.TokensFile))
	for _, f := range []string{whole.File, whole.TokensFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		encodeText(t, dir, encode.Shard{I: i, N: 4}, textOpts)
	}
	res, err := Run(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Features) != 2 || res.Crawl != nil {
		t.Fatalf("result %+v", res)
	}
	if got := readFile(t, filepath.Join(dir, whole.File)); !bytes.Equal(got, pooled) {
		t.Errorf("merged %s differs from the unsharded run (%d vs %d bytes)", whole.File, len(got), len(pooled))
	}
	if got := readFile(t, filepath.Join(dir, whole.TokensFile)); !bytes.Equal(got, tokens) {
		t.Errorf("merged %s differs from the unsharded run (%d vs %d bytes)", whole.TokensFile, len(got), len(tokens))
	}
	if res.Features[0].Present != whole.Present || res.Features[0].Present == 0 || res.Features[0].Present == res.Features[0].Rows {
		t.Errorf("present %d, unsharded %d (rows %d): want some items with and some without text",
			res.Features[0].Present, whole.Present, res.Features[0].Rows)
	}
	m := openDS(t, dir).Manifest
	for _, f := range []string{whole.File, whole.TokensFile} {
		if !slices.Contains(m.Features, filepath.Base(f)) {
			t.Errorf("manifest features %v lack %s", m.Features, f)
		}
		sum, _, _ := store.FileSHA256(filepath.Join(dir, f))
		if m.Outputs[f].SHA256 != sum {
			t.Errorf("manifest output of %s: %+v, file sha256 %s", f, m.Outputs[f], sum)
		}
	}
	if err := encode.CheckFeatureFile(dir, filepath.Join(dir, whole.File)); err != nil {
		t.Error(err)
	}
	// Merging again gives the same file.
	if _, err := Run(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, whole.File)); !bytes.Equal(got, pooled) {
		t.Error("a second merge changed the file")
	}
}

func wantBadInput(t *testing.T, err error, substr string) {
	t.Helper()
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), substr) {
		t.Errorf("error %v: want bad input mentioning %q", err, substr)
	}
}

func TestRefuseInconsistentFeatureParts(t *testing.T) {
	dir := newDataset(t)
	opts := extract.Options{Dim: 16}
	for i := range 3 {
		encodeText(t, dir, encode.Shard{I: i, N: 3}, opts)
	}
	parts := filepath.Join(dir, store.FeaturesDir, "parts")
	part := func(i, n int) string { return filepath.Join(parts, "text.text-hash."+itoa(i)+"-of-"+itoa(n)+".arrow") }
	ctx := context.Background()

	// Missing shard.
	saved := readFile(t, part(2, 3))
	os.Remove(part(2, 3))
	_, err := Run(ctx, dir)
	wantBadInput(t, err, "shard 2 of 3 is missing")
	if err := os.WriteFile(part(2, 3), saved, 0o644); err != nil {
		t.Fatal(err)
	}

	// A part of another shard count.
	encodeText(t, dir, encode.Shard{I: 0, N: 2}, opts)
	_, err = Run(ctx, dir)
	wantBadInput(t, err, "different runs")
	os.Remove(part(0, 2))

	// A part made with other encoder settings.
	encodeText(t, dir, encode.Shard{I: 1, N: 3}, extract.Options{Dim: 8})
	_, err = Run(ctx, dir)
	wantBadInput(t, err, "do not belong together")
	encodeText(t, dir, encode.Shard{I: 1, N: 3}, opts)

	// A part built for another dataset's id map.
	ff, err := store.OpenFeatures(part(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	m := ff.Matrix()
	ff.Close()
	m.Meta.IDMapSHA256 = strings.Repeat("ab", 32)
	if err := store.WriteFeatures(part(1, 3), m); err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, dir)
	wantBadInput(t, err, "another dataset's id map")
	encodeText(t, dir, encode.Shard{I: 1, N: 3}, opts)

	// A part with a vector of another shard (metadata says 1/3, rows of 0/3).
	ff, err = store.OpenFeatures(part(0, 3))
	if err != nil {
		t.Fatal(err)
	}
	m = ff.Matrix()
	ff.Close()
	m.Meta.Extra[encode.MetaShard] = "1/3"
	if err := store.WriteFeatures(part(1, 3), m); err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, dir)
	wantBadInput(t, err, "belongs to shard 0/3")
	encodeText(t, dir, encode.Shard{I: 1, N: 3}, opts)

	if _, err := Run(ctx, dir); err != nil {
		t.Fatalf("consistent parts: %v", err)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

// putImages writes one image per key into a new store.
func putImages(t *testing.T, dir string, keys ...string) {
	t.Helper()
	st, err := imagestore.Open(dir, imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &imagestore.Batch{}
	for _, k := range keys {
		b.PutImage(k, []byte("image of "+k), imagestore.LedgerEntry{})
	}
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCrawlParts(t *testing.T) {
	dir := newDataset(t)
	ctx := context.Background()
	if _, err := Run(ctx, dir); !errors.Is(err, ErrBadInput) {
		t.Errorf("no parts: %v", err)
	}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	var shards [2][]string
	for _, k := range keys {
		for i := range 2 {
			if crawl.InShard(k, i, 2) {
				shards[i] = append(shards[i], k)
			}
		}
	}
	putImages(t, filepath.Join(crawl.PartDir(dir, 0, 2), store.ImagesDir), shards[0]...)
	_, err := Run(ctx, dir)
	wantBadInput(t, err, "crawl shard 1 of 2 is missing")

	putImages(t, filepath.Join(dir, crawl.PartsDir, "crawl-0-of-3", store.ImagesDir), "z")
	_, err = Run(ctx, dir)
	wantBadInput(t, err, "different crawls")
	os.RemoveAll(filepath.Join(dir, crawl.PartsDir, "crawl-0-of-3"))

	putImages(t, filepath.Join(crawl.PartDir(dir, 1, 2), store.ImagesDir), shards[1]...)
	if err := os.WriteFile(filepath.Join(crawl.PartDir(dir, 1, 2), crawl.StatsFileName), []byte(`{"shard":"1/2","interrupted":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, dir)
	wantBadInput(t, err, "interrupted")
	if err := os.WriteFile(filepath.Join(crawl.PartDir(dir, 1, 2), crawl.StatsFileName), []byte(`{"shard":"1/2"}`), 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := Run(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Crawl == nil || res.Crawl.Parts != 2 || res.Crawl.Images != len(keys) {
		t.Fatalf("result %+v", res.Crawl)
	}
	st, err := imagestore.Open(filepath.Join(dir, store.ImagesDir), imagestore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range keys {
		img, ok, err := st.Get(k)
		if err != nil || !ok || string(img) != "image of "+k {
			t.Errorf("merged store %s: %q %v %v", k, img, ok, err)
		}
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoAndEncodeCLI runs a small demo (which encodes with the built-in
// encoders) and then the encode command on its dataset.
func TestDemoAndEncodeCLI(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, code := run(t, "demo", "--out", out, "--users", "80", "--items", "60")
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"encode text-hash", "encode image-stats", "modality image", "modality text",
		"image.image-stats.arrow: mean cosine within hidden categories"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	ds := filepath.Join(out, "dataset")
	images := filepath.Join(out, "raw", "images")

	resFile := filepath.Join(t.TempDir(), "res.json")
	stdout, stderr, code = run(t, "--result-file", resFile, "encode", "--dataset", ds, "--encoder", "text-hash",
		"--tokens", "--max-tokens", "5", "--dim", "24", "--batch-size", "7")
	if code != 0 || !strings.Contains(stdout, "features/text.text-hash.arrow: encoded") || !strings.Contains(stdout, "text.text-hash.tokens.arrow") {
		t.Fatalf("encode exit %d\n%s\n%s", code, stdout, stderr)
	}
	var res struct {
		Stage   string `json:"stage"`
		Skipped bool   `json:"skipped"`
		Encode  struct {
			File    string `json:"file"`
			Encoded int    `json:"encoded"`
			Items   int    `json:"items"`
		} `json:"encode"`
	}
	data, err := os.ReadFile(resFile)
	if err != nil || json.Unmarshal(data, &res) != nil || res.Stage != "encode" || res.Skipped || res.Encode.Encoded == 0 || res.Encode.Items != 60 {
		t.Fatalf("result file %s: %v", data, err)
	}
	stdout, _, code = run(t, "encode", "--dataset", ds, "--encoder", "text-hash", "--tokens", "--max-tokens", "5", "--dim", "24")
	if code != 0 || !strings.HasPrefix(stdout, "skipped") {
		t.Errorf("re-run exit %d: %s", code, stdout)
	}
	stdout, _, code = run(t, "inspect", "--json", ds)
	var sum struct {
		Modalities []struct {
			Name, Encoder, File string
			Dim, Tokens         int
		} `json:"modalities"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &sum) != nil {
		t.Fatalf("inspect: %d %s", code, stdout)
	}
	found := false
	for _, m := range sum.Modalities {
		if m.File == "text.text-hash.tokens.arrow" && m.Tokens == 5 && m.Dim == 24 && m.Encoder == "text-hash" {
			found = true
		}
	}
	if !found {
		t.Errorf("inspect modalities %+v", sum.Modalities)
	}

	// Without the crawled store (and without --images) there is nothing to
	// read images from.
	if err := os.Rename(filepath.Join(ds, "images.lmdb"), filepath.Join(t.TempDir(), "images.lmdb")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no dataset", []string{"encode", "--encoder", "text-hash"}, "--dataset is required"},
		{"no encoder", []string{"encode", "--dataset", ds}, "--encoder is required"},
		{"unknown encoder", []string{"encode", "--dataset", ds, "--encoder", "nope"}, "image-stats, "},
		{"bad device", []string{"encode", "--dataset", ds, "--encoder", "text-hash", "--device", "tpu"}, "want cpu or cuda"},
		{"cuda built-in", []string{"encode", "--dataset", ds, "--encoder", "text-hash", "--device", "cuda"}, "CPU only"},
		{"bad shard", []string{"encode", "--dataset", ds, "--encoder", "text-hash", "--shard", "3/2"}, "i/n"},
		{"no images", []string{"encode", "--dataset", ds, "--encoder", "image-stats"}, "--images DIR"},
		{"not a dataset", []string{"encode", "--dataset", t.TempDir(), "--encoder", "text-hash"}, "manifest.json"},
	}
	for _, c := range cases {
		_, stderr, code := run(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.msg) {
			t.Errorf("%s: exit %d, stderr %q (want 2 and %q)", c.name, code, stderr, c.msg)
		}
	}
	stdout, stderr, code = run(t, "encode", "--dataset", ds, "--encoder", "image-stats", "--images", images, "--shard", "0/2")
	if code != 0 || !strings.Contains(stdout, "features/parts/image.image-stats.0-of-2.arrow") {
		t.Errorf("shard: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

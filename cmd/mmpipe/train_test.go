package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTrainEvalRecommendCLI(t *testing.T) {
	src := writeMMRec(t, toyInter)
	ds := filepath.Join(t.TempDir(), "ds")
	if _, errs, code := run(t, "ingest", "--format", "mmrec", "--input", src, "--out", ds); code != 0 {
		t.Fatalf("ingest: %d %s", code, errs)
	}
	runDir := filepath.Join(t.TempDir(), "run")
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model", []string{"train", "--dataset", ds, "--out", runDir}, 2, "--model is required"},
		{"unknown model", []string{"train", "--model", "gpt", "--dataset", ds, "--out", runDir}, 2, "unknown model"},
		{"bad key", []string{"train", "--model", "mf", "--dataset", ds, "--out", runDir, "--set", "model.dimm=3"}, 2, "model.dimm: unknown key"},
		{"bad value", []string{"train", "--model", "mf", "--dataset", ds, "--out", runDir, "--set", "model.dim=abc"}, 2, "model.dim: want an integer"},
		{"invalid value", []string{"train", "--model", "lightgcn", "--dataset", ds, "--out", runDir, "--set", "model.layers=-1"}, 2, "model.layers: must be"},
		{"no dataset", []string{"train", "--model", "pop", "--dataset", filepath.Join(ds, "nope"), "--out", runDir}, 2, "--dataset"},
		{"show config", []string{"train", "--model", "lightgcn", "--show-config", "--set", "model.dim=16"}, 0, "dim: 16"},
		{"train", []string{"train", "--model", "lightgcn", "--dataset", ds, "--out", runDir, "--set", "epochs=2", "--set", "model.batch_size=4"}, 0, "best epoch"},
		{"again without resume", []string{"train", "--model", "lightgcn", "--dataset", ds, "--out", runDir}, 2, "--resume"},
		{"resume complete", []string{"train", "--model", "lightgcn", "--out", runDir, "--resume"}, 0, "skipped"},
		{"eval", []string{"eval", runDir, "--part", "test"}, 0, "\"test\""},
		{"eval bad part", []string{"eval", runDir, "--part", "train"}, 2, "--part"},
		{"recommend", []string{"recommend", runDir, "--k", "2"}, 0, "wrote 6 recommendations"},
		{"recommend bad exclude", []string{"recommend", runDir, "--exclude", "some"}, 2, "--exclude"},
	}
	for _, c := range cases {
		out, errs, code := run(t, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.msg) {
			t.Errorf("%s: exit %d (want %d), output %q / %q, want %q", c.name, code, c.code, out, errs, c.msg)
		}
		if c.name == "eval" {
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Errorf("eval output is not JSON: %v", err)
			} else if _, ok := m["test"].(map[string]any)["recall@20"]; !ok {
				t.Errorf("eval output lacks test recall@20: %s", out)
			}
		}
	}
	for _, f := range []string{"report.json", "metrics.jsonl", "config.yaml", "run.json", "curves.png", "recommendations.parquet",
		"checkpoints/last.ckpt", "checkpoints/best.ckpt"} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
}

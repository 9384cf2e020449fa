package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMergeCLI encodes a demo dataset in two shards, checks that merge
// refuses an incomplete set, merges the full set and verifies the result.
func TestMergeCLI(t *testing.T) {
	out := t.TempDir()
	if stdout, stderr, code := run(t, "demo", "--out", out, "--users", "40", "--items", "30"); code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, stdout, stderr)
	}
	ds := filepath.Join(out, "dataset")
	if _, stderr, code := run(t, "merge", "--dataset", ds); code != 2 || !strings.Contains(stderr, "no shard parts") {
		t.Errorf("merge without parts: exit %d, stderr %s", code, stderr)
	}
	for _, s := range []string{"0/2", "1/2"} {
		if stdout, stderr, code := run(t, "encode", "--dataset", ds, "--encoder", "text-hash", "--dim", "12", "--shard", s); code != 0 {
			t.Fatalf("encode --shard %s: exit %d\n%s\n%s", s, code, stdout, stderr)
		}
	}
	part1 := filepath.Join(ds, "features", "parts", "text.text-hash.1-of-2.arrow")
	saved, err := os.ReadFile(part1)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(part1)
	if _, stderr, code := run(t, "merge", ds); code != 2 || !strings.Contains(stderr, "shard 1 of 2 is missing") {
		t.Errorf("merge with a missing shard: exit %d, stderr %s", code, stderr)
	}
	if err := os.WriteFile(part1, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "merge", "--dataset", ds)
	if code != 0 || !strings.Contains(stdout, "features/text.text-hash.arrow: 2 parts") {
		t.Fatalf("merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The merge re-hashed every output (the restored part included), so
	// the dataset verifies clean.
	if stdout, stderr, code := run(t, "verify", ds); code != 0 {
		t.Errorf("verify after merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

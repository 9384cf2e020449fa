package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
)

func TestVerifyCommand(t *testing.T) {
	src := writeMMRec(t, toyInter)
	ds := filepath.Join(t.TempDir(), "ds")
	if _, stderr, code := run(t, "ingest", "--format", "mmrec", "--input", src, "--out", ds); code != 0 {
		t.Fatalf("ingest: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := run(t, "verify", ds)
	if code != 0 || !strings.Contains(stdout, "0 problems") {
		t.Fatalf("clean dataset: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// A changed byte in users.parquet and a stray file.
	p := filepath.Join(ds, store.UsersFile)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ds, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run(t, "verify", ds)
	if code != 2 {
		t.Fatalf("damaged dataset: exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{"users.parquet: sha256:", "notes.txt: unexpected:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not contain %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "problems") {
		t.Errorf("stderr %q does not say there were problems", stderr)
	}

	stdout, _, code = run(t, "verify", "--json", ds)
	var rep struct {
		OK       bool `json:"ok"`
		Problems []struct {
			File, Kind, Message string
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if code != 2 || rep.OK || len(rep.Problems) < 2 {
		t.Errorf("--json: exit %d, report %+v", code, rep)
	}

	if _, _, code := run(t, "verify", filepath.Join(ds, "absent")); code != 2 {
		t.Errorf("missing directory: exit %d, want 2", code)
	}
}

package store

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCommitRemovesStaleTemps: a commit removes the temporaries of its path
// that a writer which no longer runs left behind, and keeps those of a
// running writer, of other files and of unknown form.
func TestCommitRemovesStaleTemps(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no process to outlive: %v", err)
	}
	deadPID := strconv.Itoa(dead.ProcessState.Pid())
	livePID := strconv.Itoa(os.Getppid())
	dir := t.TempDir()
	files := map[string]bool{ // name → kept
		".manifest.json.tmp-" + deadPID + "-1":    false, // a killed writer's
		".manifest.json.tmp-" + livePID + "-2":    true,  // a running writer's
		".items.parquet.tmp-" + deadPID + "-3":    true,  // another file's
		".manifest.json.tmp-12345":                true,  // unknown form
		".manifest.json.tmp-" + deadPID + "-dir/": true,  // not a regular file
	}
	for name := range files {
		p := filepath.Join(dir, name) // without the slash
		var err error
		if strings.HasSuffix(name, "/") {
			err = os.Mkdir(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte("partial"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, write := range []func(path string) error{
		func(path string) error { return WriteJSONAtomic(path, map[string]int{"a": 1}) },
		func(path string) error { return WriteFeatCLS(path, []float32{1, 2}) },
	} {
		if err := write(filepath.Join(dir, "manifest.json")); err != nil {
			t.Fatal(err)
		}
		for name, kept := range files {
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(name, "/"))); (err == nil) != kept {
				t.Errorf("%s: exists %v, want %v", name, err == nil, kept)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(files) {
		t.Errorf("%d files left, want %d (the stale one removed, the new one committed)", len(entries), len(files))
	}
}

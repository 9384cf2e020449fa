package store

import (
	"os"
	"path/filepath"
	"testing"
)

func TestScratch(t *testing.T) {
	dir := t.TempDir()
	const n = 3<<20 + 5 // over 12 MB, not a page multiple
	s, err := NewScratch(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Data) != n || s.Data[0] != 0 || s.Data[n-1] != 0 {
		t.Fatalf("len %d, ends %v %v", len(s.Data), s.Data[0], s.Data[n-1])
	}
	for i := range s.Data {
		s.Data[i] = float32(i)
	}
	// Nothing visible in the directory: the file is unlinked at once.
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("scratch left %d entries in %s", len(ents), dir)
	}
	// It round-trips through a feature file like a heap slice.
	m := &FeatureMatrix{Rows: n / 5, Dim: 5, Data: s.Data[:n/5*5]}
	p := filepath.Join(dir, "f.arrow")
	if err := WriteFeatures(p, m); err != nil {
		t.Fatal(err)
	}
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	if v := ff.Vector(n/5 - 1); v[4] != float32(n/5*5-1) {
		t.Errorf("last value %v", v[4])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := NewScratch(filepath.Join(dir, "missing"), 10); err == nil {
		t.Error("scratch in a missing directory")
	}
}

package store

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFeatCLSRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		dim  int
		data []float32
	}{
		{"3x4", 4, []float32{1, 2, 3, 4, 5, 6, 7, 8, -9, 10.5, 11, 1e-30}},
		{"1x1", 1, []float32{-0.25}},
		{"empty", 8, []float32{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".feat1CLS")
			if err := WriteFeatCLS(p, c.data); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(p)
			if err != nil || st.Size() != int64(4*len(c.data)) {
				t.Fatalf("size %v, %v; want %d", st, err, 4*len(c.data))
			}
			rows, got, err := ReadFeatCLS(p, c.dim)
			if err != nil {
				t.Fatal(err)
			}
			if rows != len(c.data)/c.dim || !reflect.DeepEqual(got, c.data) {
				t.Errorf("rows %d data %v, want %d %v", rows, got, len(c.data)/c.dim, c.data)
			}
		})
	}
	// Little-endian on disk: 1.0 is 00 00 80 3f.
	raw, _ := os.ReadFile(filepath.Join(dir, "3x4.feat1CLS"))
	if !bytes.Equal(raw[:4], []byte{0, 0, 0x80, 0x3f}) {
		t.Errorf("first value bytes % x, want 00 00 80 3f", raw[:4])
	}
}

func TestFeatCLSLarge(t *testing.T) {
	// More than one read chunk.
	data := make([]float32, npyChunk/4+3*16)
	for i := range data {
		data[i] = float32(i)
	}
	p := filepath.Join(t.TempDir(), "big.feat2CLS")
	if err := WriteFeatCLS(p, data); err != nil {
		t.Fatal(err)
	}
	rows, got, err := ReadFeatCLS(p, 16)
	if err != nil || rows != len(data)/16 || !reflect.DeepEqual(got, data) {
		t.Errorf("rows %d, err %v, equal %v", rows, err, reflect.DeepEqual(got, data))
	}
}

func TestFeatCLSBadSize(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "odd.feat1CLS")
	if err := WriteFeatCLS(p, make([]float32, 10)); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadFeatCLS(p, 4)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "size 40") || !strings.Contains(err.Error(), "dim 4") {
		t.Errorf("bad size: %v", err)
	}
	os.WriteFile(p, []byte{1, 2, 3}, 0o644)
	if _, _, err := ReadFeatCLS(p, 1); err == nil || !strings.Contains(err.Error(), "size 3") {
		t.Errorf("3-byte file: %v", err)
	}
	if _, _, err := ReadFeatCLS(p, 0); err == nil || !strings.Contains(err.Error(), "dim must be positive") {
		t.Errorf("dim 0: %v", err)
	}
	if _, _, err := ReadFeatCLS(filepath.Join(dir, "none"), 4); err == nil {
		t.Error("missing file accepted")
	}
}

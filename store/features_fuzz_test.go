package store

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpenFeatures reads arbitrary bytes as a feature file: no panic (the
// Arrow IPC reader trusts the file's offsets; OpenFeatures must turn what
// that breaks into an error), an error names the package and no file is
// returned with it; an accepted file's rows can all be read (each vector as
// wide as the file says, validity counted as Present says, token counts in
// range), and its matrix written back and read again gives the same file.
func FuzzOpenFeatures(f *testing.F) {
	dir := f.TempDir()
	seeds := []*FeatureMatrix{
		{Meta: FeatureMeta{Modality: "image", Encoder: "stats", Normalized: true, Extra: map[string]string{"k": "v"}},
			Rows: 3, Dim: 2, Data: []float32{1, 2, 0, 0, float32(math.NaN()), -1}, Valid: []bool{true, false, true}},
		{Meta: FeatureMeta{Modality: "text"}, Rows: 2, Dim: 2, Tokens: 2, Data: make([]float32, 8), NTokens: []int32{2, 1}},
		{Meta: FeatureMeta{Modality: "audio"}, Rows: 0, Dim: 4},
	}
	for i, m := range seeds {
		p := filepath.Join(dir, "seed.arrow")
		if err := WriteFeatures(p, m); err != nil {
			f.Fatalf("seed %d: %v", i, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-9]) // footer cut
		c := []byte(string(b))
		c[len(c)/2] ^= 0xFF
		f.Add(c)
	}
	f.Add([]byte("ARROW1\x00\x00ARROW1"))
	f.Add([]byte("not arrow"))
	f.Fuzz(func(t *testing.T, b []byte) { checkFeatureBytes(t, dir, b) })
}

// checkFeatureBytes is FuzzOpenFeatures' property, for b written in dir.
func checkFeatureBytes(t *testing.T, dir string, b []byte) {
	{
		p := filepath.Join(dir, "fuzz.arrow")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ff, err := OpenFeatures(p)
		if err != nil {
			if ff != nil {
				t.Fatalf("error %v with an open file", err)
			}
			if !strings.HasPrefix(err.Error(), "features: ") {
				t.Fatalf("error does not say where it comes from: %v", err)
			}
			return
		}
		defer ff.Close()
		w := ff.Dim()
		if ff.Tokens() > 0 {
			w *= ff.Tokens()
		}
		if ff.Rows() < 0 || ff.Dim() <= 0 || ff.Tokens() < 0 || ff.Present() < 0 || ff.Present() > ff.Rows() {
			t.Fatalf("rows %d, dim %d, tokens %d, present %d", ff.Rows(), ff.Dim(), ff.Tokens(), ff.Present())
		}
		present := 0
		for r := range ff.Rows() {
			if v := ff.Vector(r); len(v) != w {
				t.Fatalf("row %d: %d values, want %d", r, len(v), w)
			}
			if ff.Valid(r) {
				present++
			}
			if n := ff.NTokens(r); n < 0 || n > ff.Tokens() {
				t.Fatalf("row %d: %d tokens of %d", r, n, ff.Tokens())
			}
		}
		if present != ff.Present() {
			t.Fatalf("%d valid rows, Present says %d", present, ff.Present())
		}
		m := ff.Matrix()
		p2 := filepath.Join(dir, "back.arrow")
		if err := WriteFeatures(p2, m); err != nil {
			t.Fatalf("write back an accepted file: %v", err)
		}
		back, err := OpenFeatures(p2)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		defer back.Close()
		if back.Rows() != ff.Rows() || back.Dim() != ff.Dim() || back.Tokens() != ff.Tokens() || back.Present() != ff.Present() {
			t.Fatalf("read back %d×%d×%d (%d present), want %d×%d×%d (%d)", back.Rows(), back.Dim(), back.Tokens(), back.Present(),
				ff.Rows(), ff.Dim(), ff.Tokens(), ff.Present())
		}
		for r := range ff.Rows() {
			if back.Valid(r) != ff.Valid(r) || back.NTokens(r) != ff.NTokens(r) {
				t.Fatalf("row %d: valid %v/%v, tokens %d/%d", r, back.Valid(r), ff.Valid(r), back.NTokens(r), ff.NTokens(r))
			}
			if !ff.Valid(r) {
				continue
			}
			a, c := ff.Vector(r), back.Vector(r)
			for k := range a {
				if math.Float32bits(a[k]) != math.Float32bits(c[k]) {
					t.Fatalf("row %d value %d: %v, want %v", r, k, c[k], a[k])
				}
			}
		}
	}
}

package dataset

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/pipeline/export"
	"github.com/mmpipe/mmpipe/store"
)

// sharedData returns the shared data folder, skipping (or failing when
// MMPIPE_REQUIRE_DATA=1) where it is absent.
func sharedData(t *testing.T, sub string) string {
	t.Helper()
	root := os.Getenv("MMPIPE_DATA")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "data")
	}
	p := filepath.Join(root, sub)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MMPIPE_REQUIRE_DATA") == "1" {
			t.Fatalf("MMPIPE_REQUIRE_DATA=1 but %s is missing: %v", p, err)
		}
		t.Skipf("shared data %s not present (set MMPIPE_DATA): %v", p, err)
	}
	return p
}

func ingestInto(t *testing.T, format string, inputs []string, so SplitOptions, featDim int) (string, *Result) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ds")
	o := Options{Format: format, Inputs: inputs, Out: out, Splits: so, Version: "test", MinRating: math.NaN()}
	o.Ingest.FeatDim = featDim
	res, err := Ingest(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

func TestRealDatasetsCounts(t *testing.T) {
	cases := []struct {
		name, dir, format  string
		users, items       int
		inter              int64
		train, valid, test int64
		modalities         map[string]int // name → dim
		featDim            int
	}{
		{"tiktok", "tiktok", "mmrec", 9308, 6710, 68722, 59541, 3051, 6130, map[string]int{"image": 128, "audio": 128}, 0},
		{"amazon-scientific", "amazon-scientific", "recbole", 8442, 4385, 59427, 42543, 8442, 8442, map[string]int{}, 0},
		{"amazon-baby", "amazon-baby", "mmssl", 19445, 7050, 160792, 119674, 20559, 20559, map[string]int{}, 0},
		{"clipsubset", "amazon-scientific-clipsubset", "recbole", 2928, 1585, -1, -1, 2928, 2928, map[string]int{"text": 512, "image": 512}, 512},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := sharedData(t, c.dir)
			out, _ := ingestInto(t, c.format, []string{in}, SplitOptions{}, c.featDim)
			s, err := Summarize(context.Background(), out)
			if err != nil {
				t.Fatal(err)
			}
			if s.Users != c.users || s.Items != c.items || (c.inter >= 0 && s.Interactions != c.inter) {
				t.Errorf("users/items/interactions = %d/%d/%d, want %d/%d/%d", s.Users, s.Items, s.Interactions, c.users, c.items, c.inter)
			}
			g := s.Splits["given"]
			if (c.train >= 0 && g.Train != c.train) || g.Valid != c.valid || g.Test != c.test {
				t.Errorf("given split %+v, want %d/%d/%d", g, c.train, c.valid, c.test)
			}
			if g.Train+g.Valid+g.Test != s.Interactions {
				t.Errorf("split rows %d != interactions %d", g.Train+g.Valid+g.Test, s.Interactions)
			}
			if len(s.Modalities) != len(c.modalities) {
				t.Fatalf("modalities %+v, want %v", s.Modalities, c.modalities)
			}
			for _, m := range s.Modalities {
				if c.modalities[m.Name] != m.Dim {
					t.Errorf("modality %s dim %d, want %d", m.Name, m.Dim, c.modalities[m.Name])
				}
			}
		})
	}
}

// TestTikTokFeaturesMatchNPY checks that the float16 .npy values arrive in
// the Arrow feature file unchanged (row r = item r).
func TestTikTokFeaturesMatchNPY(t *testing.T) {
	in := sharedData(t, "tiktok")
	out, _ := ingestInto(t, "mmrec", []string{in}, SplitOptions{}, 0)
	a, err := store.ReadNPY(filepath.Join(in, "image_feat.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ff, err := store.OpenFeatures(filepath.Join(out, "features", "image.imported.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	if a.DType != "<f2" || ff.Rows() != a.Shape[0] || ff.Dim() != a.Shape[1] {
		t.Fatalf("npy %s %v, arrow %d×%d", a.DType, a.Shape, ff.Rows(), ff.Dim())
	}
	for _, r := range []int{0, 1, 3355, ff.Rows() - 1} {
		if !slices.Equal(ff.Vector(r), a.Data[r*128:(r+1)*128]) {
			t.Errorf("row %d differs", r)
		}
	}
	m, _ := store.ReadManifest(out)
	if ff.Meta().IDMapSHA256 != m.IDMapSHA256 || ff.Meta().Encoder != "imported:image_feat.npy (<f2)" {
		t.Errorf("provenance %+v", ff.Meta())
	}
}

func userSets(t *testing.T, path string) map[string][]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string][]int
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m {
		slices.Sort(m[k])
	}
	return m
}

// TestMMSSLRoundTrip: ingest mmssl → export mmssl gives the same user →
// items sets and the same feature values.
func TestMMSSLRoundTrip(t *testing.T) {
	src := t.TempDir()
	lists := map[string]map[string][]int{
		"train.json": {"0": {3, 1}, "1": {0, 2, 4}, "3": {1}},
		"val.json":   {"0": {2}, "1": {}, "3": {4}},
		"test.json":  {"0": {0}, "1": {1}},
	}
	for name, m := range lists {
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	feat := make([]float32, 6*3)
	for i := range feat {
		feat[i] = float32(i)*0.25 - 1
	}
	if err := store.WriteNPY(filepath.Join(src, "image_feat.npy"), []int{6, 3}, feat); err != nil {
		t.Fatal(err)
	}
	ds, res := ingestInto(t, "mmssl", []string{src}, SplitOptions{}, 0)
	if res.Manifest.Users != 4 || res.Manifest.Items != 6 || res.Manifest.Interactions != 10 {
		t.Fatalf("counts %d %d %d", res.Manifest.Users, res.Manifest.Items, res.Manifest.Interactions)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := export.Run(context.Background(), export.Options{Format: "mmssl", Dataset: ds, Out: out}); err != nil {
		t.Fatal(err)
	}
	for name, m := range lists {
		got := userSets(t, filepath.Join(out, name))
		want := map[string][]int{}
		for k, v := range m {
			if len(v) > 0 {
				want[k] = slices.Sorted(slices.Values(v))
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: users %v, want %v", name, got, want)
		}
		for k, v := range want {
			if !slices.Equal(got[k], v) {
				t.Errorf("%s user %s: %v, want %v", name, k, got[k], v)
			}
		}
	}
	a, err := store.ReadNPY(filepath.Join(out, "image_feat.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Data, feat) || !slices.Equal(a.Shape, []int{6, 3}) {
		t.Errorf("features %v %v", a.Shape, a.Data)
	}
	// And the export ingests again to the same dataset.
	ds2, _ := ingestInto(t, "mmssl", []string{out}, SplitOptions{}, 0)
	m1, _ := store.ReadManifest(ds)
	m2, _ := store.ReadManifest(ds2)
	g1, g2 := m1.Splits["given"], m2.Splits["given"]
	if g1.Train != g2.Train || g1.Valid != g2.Valid || g1.Test != g2.Test || m1.Users != m2.Users || m1.Items != m2.Items {
		t.Errorf("splits differ: %+v vs %+v", m1.Splits, m2.Splits)
	}
}

// TestRecBoleRoundTrip: export of the Scientific split as RecBole sequence
// files reproduces the source files' rows.
func TestRecBoleRoundTrip(t *testing.T) {
	in := sharedData(t, "amazon-scientific")
	ds, _ := ingestInto(t, "recbole", []string{in}, SplitOptions{}, 0)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := export.Run(context.Background(), export.Options{Format: "recbole", Dataset: ds, Out: out, Name: "Scientific"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Scientific.train.inter", "Scientific.valid.inter", "Scientific.test.inter", "Scientific.item2index", "Scientific.user2index"} {
		want, err := os.ReadFile(filepath.Join(in, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "Scientific.train.inter" || f == "Scientific.valid.inter" || f == "Scientific.test.inter" {
			if string(got) != string(want) {
				t.Errorf("%s differs from the source (%d vs %d bytes)", f, len(got), len(want))
			}
			continue
		}
		wl, gl := sortedLines(want), sortedLines(got)
		if !slices.Equal(wl, gl) {
			t.Errorf("%s differs as a set of lines", f)
		}
	}
}

func sortedLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	slices.Sort(out)
	return out
}

func TestIngestSkipsAndForces(t *testing.T) {
	src := t.TempDir()
	inter := "userID\titemID\tx_label\r\n0\t1\t0\r\n0\t2\t1\r\n1\t0\t0\r\n1\t2\t2\r\n"
	if err := os.WriteFile(filepath.Join(src, "x.inter"), []byte(inter), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ds")
	o := Options{Format: "mmrec", Inputs: []string{src}, Out: out, MinRating: math.NaN()}
	r1, err := Ingest(context.Background(), o)
	if err != nil || r1.Skipped {
		t.Fatalf("first run: %v skipped=%v", err, r1 != nil && r1.Skipped)
	}
	r2, err := Ingest(context.Background(), o)
	if err != nil || !r2.Skipped {
		t.Fatalf("second run not skipped: %v", err)
	}
	o.Force = true
	r3, err := Ingest(context.Background(), o)
	if err != nil || r3.Skipped {
		t.Fatalf("forced run skipped: %v", err)
	}
	// Other parameters: redone, and the old split file is gone.
	o.Force = false
	o.Splits.Names = []string{"loo"}
	r4, err := Ingest(context.Background(), o)
	if err != nil || r4.Skipped {
		t.Fatalf("changed parameters skipped: %v", err)
	}
	if _, err := os.Stat(store.SplitPath(out, "given")); !os.IsNotExist(err) {
		t.Errorf("stale given split left: %v", err)
	}
	// Manifest outputs match the files.
	for rel, f := range r4.Manifest.Outputs {
		sum, n, err := store.FileSHA256(filepath.Join(out, rel))
		if err != nil || sum != f.SHA256 || n != f.Bytes {
			t.Errorf("output %s: %v %d %s", rel, err, n, sum)
		}
	}
	// A changed input is noticed.
	if err := os.WriteFile(filepath.Join(src, "x.inter"), []byte(inter+"2\t0\t0\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r5, err := Ingest(context.Background(), o)
	if err != nil || r5.Skipped || r5.Manifest.Users != 3 {
		t.Fatalf("changed input: err=%v skipped=%v", err, r5 != nil && r5.Skipped)
	}
}

func TestKCoreReindexesFeatures(t *testing.T) {
	src := t.TempDir()
	// Item 1 has one user: a 2-core drops it and item 2 becomes index 1.
	inter := "userID\titemID\tx_label\n0\t0\t0\n0\t2\t0\n1\t0\t0\n1\t2\t0\n2\t1\t0\n2\t0\t0\n2\t2\t0\n"
	if err := os.WriteFile(filepath.Join(src, "x.inter"), []byte(inter), 0o644); err != nil {
		t.Fatal(err)
	}
	feat := []float32{0, 0, 1, 1, 2, 2}
	if err := store.WriteNPY(filepath.Join(src, "v_feat.npy"), []int{3, 2}, feat); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ds")
	res, err := Ingest(context.Background(), Options{Format: "mmrec", Inputs: []string{src}, Out: out, UserCore: 2, ItemCore: 2, MinRating: math.NaN()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Items != 2 || res.Manifest.Interactions != 6 {
		t.Fatalf("items %d interactions %d", res.Manifest.Items, res.Manifest.Interactions)
	}
	ff, err := store.OpenFeatures(filepath.Join(out, "features", "v.imported.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	if ff.Rows() != 2 || !slices.Equal(ff.Vector(1), []float32{2, 2}) {
		t.Errorf("feature rows %d, row 1 %v (want item 2's vector)", ff.Rows(), ff.Vector(1))
	}
}

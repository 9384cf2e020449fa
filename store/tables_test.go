package store

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestItemsRoundTrip(t *testing.T) {
	items := []Item{
		{Idx: 0, ID: "B000A", Title: "Tutu", Description: "pink", Categories: []string{"Toys", "Girls"}, Brand: "Acme",
			ImageURLs: []string{"http://x/a.jpg", "http://x/a2.jpg"}, Text: "free", Price: 3.17, HasMeta: true},
		NewItem(1, "B000B"), // no metadata: NaN price, no lists
		{Idx: 2, ID: "Amélie ★", Title: "", Categories: []string{}, Price: 0, HasMeta: true},
	}
	p := filepath.Join(t.TempDir(), "items.parquet")
	if err := WriteItems(p, items, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadItems(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(items) {
		t.Fatalf("got %d items, want %d", len(got), len(items))
	}
	for i := range items {
		w, g := items[i], got[i]
		if g.ID != w.ID || g.Title != w.Title || g.Brand != w.Brand || g.Text != w.Text || g.HasMeta != w.HasMeta ||
			len(g.Categories) != len(w.Categories) || !slices.Equal(g.ImageURLs, w.ImageURLs) || g.Description != w.Description {
			t.Errorf("item %d: got %+v, want %+v", i, g, w)
		}
		if math.IsNaN(w.Price) != math.IsNaN(g.Price) || (!math.IsNaN(w.Price) && w.Price != g.Price) {
			t.Errorf("item %d price: got %v, want %v", i, g.Price, w.Price)
		}
	}
	if !slices.Equal(got[0].Categories, items[0].Categories) {
		t.Errorf("categories %v", got[0].Categories)
	}
}

func TestInteractionsRoundTripManyRowGroups(t *testing.T) {
	n := RowGroupRows + 12345 // crosses a row group: the arrow-go sliced-record bug would repeat group 0
	var in Interactions
	in.Grow(n)
	for i := range n {
		r := float32(i%5) + 1
		if i%7 == 0 {
			r = float32(math.NaN())
		}
		in.Append(int32(i%1000), int32(i/3), r, int64(1_400_000_000+i))
	}
	p := filepath.Join(t.TempDir(), "interactions.parquet")
	if err := WriteInteractions(p, &in, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadInteractions(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != n {
		t.Fatalf("rows %d, want %d", got.Len(), n)
	}
	for _, i := range []int{0, 1, 6, 7, RowGroupRows - 1, RowGroupRows, RowGroupRows + 1, n - 1} {
		if got.User[i] != in.User[i] || got.Item[i] != in.Item[i] || got.Timestamp[i] != in.Timestamp[i] {
			t.Errorf("row %d: got (%d,%d,%d), want (%d,%d,%d)", i, got.User[i], got.Item[i], got.Timestamp[i], in.User[i], in.Item[i], in.Timestamp[i])
		}
		gn, wn := math.IsNaN(float64(got.Rating[i])), math.IsNaN(float64(in.Rating[i]))
		if gn != wn || (!wn && got.Rating[i] != in.Rating[i]) {
			t.Errorf("row %d rating: got %v, want %v", i, got.Rating[i], in.Rating[i])
		}
	}
}

func TestSplitRoundTripAndValidation(t *testing.T) {
	s := &Split{Name: "loo"}
	s.AppendRow(0, 1, 5, 10, PartTrain)
	s.AppendRow(0, 2, 4, 11, PartValid)
	s.AppendRow(0, 3, 3, 12, PartTest)
	s.AppendRow(1, 1, float32(math.NaN()), 1, PartTrain)
	dir := t.TempDir()
	p := SplitPath(dir, "loo")
	if err := WriteSplit(p, s, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSplit(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "loo" || !slices.Equal(got.Part, s.Part) || !slices.Equal(got.Item, s.Item) {
		t.Fatalf("got %+v", got)
	}
	tr, va, te := got.Counts()
	if tr != 2 || va != 1 || te != 1 {
		t.Errorf("counts %d %d %d", tr, va, te)
	}
	s.Part[0] = 7
	if err := WriteSplit(p, s, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSplit(context.Background(), p); err == nil {
		t.Error("a split with part 7 was accepted")
	}
	bad := &Split{Name: "x"}
	bad.Append(0, 0, 1, 1)
	if err := WriteSplit(filepath.Join(dir, "bad.parquet"), bad, nil); err == nil {
		t.Error("a split without part labels was written")
	}
}

func TestWriteFailureLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.parquet")
	calls := 0
	err := writeParquet(p, interSchema, nil, func() (arrow.RecordBatch, error) {
		calls++
		return nil, errors.New("disk on fire")
	})
	if err == nil {
		t.Fatal("no error")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left files behind: %v", ents)
	}
}

func TestReadRejectsWrongFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "users.parquet")
	if err := os.WriteFile(p, []byte("not parquet at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUsers(context.Background(), p); err == nil {
		t.Error("garbage accepted as users.parquet")
	}
	// An items file read as interactions names the missing column.
	ip := filepath.Join(dir, "items.parquet")
	if err := WriteItems(ip, []Item{NewItem(0, "a")}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ReadInteractions(context.Background(), ip)
	if err == nil || !contains(err.Error(), "user_idx") {
		t.Errorf("err = %v, want one naming user_idx", err)
	}
}

func TestUsersOrderChecked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users.parquet")
	if err := WriteUsers(p, []User{{0, "a"}, {2, "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUsers(context.Background(), p); err == nil {
		t.Error("users with a gap in user_idx accepted")
	}
}

func TestIDMapSHA256(t *testing.T) {
	a := IDMapSHA256([]Item{NewItem(0, "x"), NewItem(1, "y")})
	b := IDMapSHA256([]Item{NewItem(0, "y"), NewItem(1, "x")})
	if a == b || len(a) != 64 {
		t.Errorf("id map hashes %s %s", a, b)
	}
	if a != IDMapSHA256([]Item{NewItem(0, "x"), NewItem(1, "y")}) {
		t.Error("not deterministic")
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestUnrecorded(t *testing.T) {
	cases := map[string]bool{
		"manifest.json":                            true,
		"images.lmdb":                              true,
		"images.lmdb/data.mdb":                     false, // never reached: the directory is skipped
		"parts":                                    true,
		"features/parts":                           true,
		"crawl_stats.json":                         true,
		"failed.parquet":                           true,
		"features/.image.x.arrow.tmp-1":            true,
		"items.parquet":                            false,
		"splits/loo.parquet":                       false,
		"features/image.image-stats.arrow":         false,
		"out/pmmrec_items_images.lmdb":             true,
		"features/image.clip-vit-b32.tokens.arrow": false,
	}
	for rel, want := range cases {
		if got := Unrecorded(rel); got != want {
			t.Errorf("Unrecorded(%q) = %v, want %v", rel, got, want)
		}
	}
}

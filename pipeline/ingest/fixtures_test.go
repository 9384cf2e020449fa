package ingest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
)

// Test helpers for the fixture-based format tests (Amazon, Netflix,
// bilibili, MovieLens) and the checks every one of those formats shares:
// gzip and plain inputs give the same tables, a truncated .gz fails naming
// the file, malformed lines fail with file:line or are skipped and counted
// under --max-bad-lines, and unknown files are rejected.

// fxDir is a fixture folder under testdata/ingest.
func fxDir(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata", "ingest"}, parts...)...)
}

// fxRun ingests inputs and fails the test on error.
func fxRun(t *testing.T, format string, opts Options, inputs ...string) (*Tables, *Report) {
	t.Helper()
	tab, rep, err := Run(context.Background(), format, inputs, opts)
	if err != nil {
		t.Fatalf("Run(%s, %v): %v", format, inputs, err)
	}
	return tab, rep
}

// fxItem returns the item with raw id raw.
func fxItem(t *testing.T, tab *Tables, raw string) store.Item {
	t.Helper()
	for _, it := range tab.Items {
		if it.ID == raw {
			return it
		}
	}
	t.Fatalf("no item %q", raw)
	return store.Item{}
}

// fxItemIDs lists the raw item ids in index order.
func fxItemIDs(tab *Tables) []string {
	var ids []string
	for i, it := range tab.Items {
		if int(it.Idx) != i {
			ids = append(ids, fmt.Sprintf("BAD-IDX(%d)", it.Idx))
			continue
		}
		ids = append(ids, it.ID)
	}
	return ids
}

// fxUserIDs lists the raw user ids in index order.
func fxUserIDs(tab *Tables) []string {
	var ids []string
	for _, u := range tab.Users {
		ids = append(ids, u.ID)
	}
	return ids
}

// fxRows renders the interactions as "user item rating time" by raw ids.
func fxRows(tab *Tables) []string {
	var rows []string
	in := &tab.Inter
	for k := range in.Len() {
		r := "NaN"
		if !math.IsNaN(float64(in.Rating[k])) {
			r = fmt.Sprint(in.Rating[k])
		}
		rows = append(rows, fmt.Sprintf("%s %s %s %d", tab.Users[in.User[k]].ID, tab.Items[in.Item[k]].ID, r, in.Timestamp[k]))
	}
	return rows
}

// fxSame fails when got != want, listing both.
func fxSame[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// fxItemText renders an item's metadata for comparisons (NaN-safe; file://
// URLs reduced to the file name, so copies of a fixture compare equal).
func fxItemText(it store.Item) string {
	var urls []string
	for _, u := range it.ImageURLs {
		if strings.HasPrefix(u, "file://") {
			u = "file://…/" + filepath.Base(u)
		}
		urls = append(urls, u)
	}
	return fmt.Sprintf("%d|%s|%q|%q|%q|%q|%q|%q|%v|%v", it.Idx, it.ID, it.Title, it.Description, it.Categories,
		it.Brand, urls, it.Text, fmtPrice(it.Price), it.HasMeta)
}

func fmtPrice(p float64) string {
	if math.IsNaN(p) {
		return "NaN"
	}
	return fmt.Sprint(p)
}

// fxCopyTree copies src into a new temporary folder; with gz, every file
// except images is gzip-compressed (name + ".gz").
func fxCopyTree(t *testing.T, src string, gz bool) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if gz && !isImageName(p) {
			return fxWriteGzip(out+".gz", data, 0)
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// fxWriteGzip writes data gzip-compressed, dropping the last cut bytes of the
// compressed stream.
func fxWriteGzip(path string, data []byte, cut int) error {
	var sb strings.Builder
	zw := gzip.NewWriter(&sb)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	z := sb.String()
	return os.WriteFile(path, []byte(z[:len(z)-cut]), 0o644)
}

// fxTables renders tables for comparison.
func fxTables(tab *Tables) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "users %q\n", fxUserIDs(tab))
	for _, it := range tab.Items {
		sb.WriteString(fxItemText(it) + "\n")
	}
	for _, r := range fxRows(tab) {
		sb.WriteString(r + "\n")
	}
	return sb.String()
}

// fxFormats are the fixture folders of every format, for the shared checks.
var fxFormats = []struct {
	format, dir string
	// interactions is one interaction file of the folder.
	interactions string
}{
	{"amazon2014", "amazon2014/good", "reviews_Toys_5.json"},
	{"amazon2018", "amazon2018/good", "Toys_5.json"},
	{"amazon2018", "amazon2018/csv", "Toys.csv"},
	{"netflix", "netflix/good", "combined_data_1.txt"},
	{"netflix", "netflix/training_set", "training_set/mv_0000002.txt"},
	{"bilibili", "bilibili/pmmrec", "bili_food_users.tsv"},
	{"bilibili", "bilibili/ninerec", "Bili_Food_behaviour.tsv"},
	{"movielens", "movielens/ml-100k", "u.data"},
	{"movielens", "movielens/ml-1m", "ratings.dat"},
	{"movielens", "movielens/ml-10m", "ratings.dat"},
	{"movielens", "movielens/ml-latest-small", "ratings.csv"},
}

func TestFixturesGzipMatchesPlain(t *testing.T) {
	for _, f := range fxFormats {
		t.Run(f.dir, func(t *testing.T) {
			plain, _ := fxRun(t, f.format, Options{}, fxDir(f.dir))
			gz, rep := fxRun(t, f.format, Options{}, fxCopyTree(t, fxDir(f.dir), true))
			if a, b := fxTables(plain), fxTables(gz); a != b {
				t.Errorf("gzip input gives other tables:\nplain:\n%s\ngzip:\n%s", a, b)
			}
			if plain.Inter.Len() == 0 || len(plain.Items) == 0 {
				t.Error("empty tables")
			}
			for _, fs := range rep.Files {
				if fs.Role != "cover images" && !strings.HasSuffix(fs.Path, ".gz") {
					t.Errorf("report lists %s, want only .gz files", fs.Path)
				}
			}
		})
	}
}

func TestFixturesTruncatedGzip(t *testing.T) {
	for _, f := range fxFormats {
		for _, cut := range []int{6, 0} { // 0: half the stream
			t.Run(fmt.Sprintf("%s/cut%d", f.dir, cut), func(t *testing.T) {
				dir := fxCopyTree(t, fxDir(f.dir), false)
				victim := filepath.Join(dir, f.interactions)
				data, err := os.ReadFile(victim)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(victim); err != nil {
					t.Fatal(err)
				}
				c := cut
				if c == 0 {
					var sb strings.Builder
					zw := gzip.NewWriter(&sb)
					zw.Write(data)
					zw.Close()
					c = sb.Len() / 2
				}
				if err := fxWriteGzip(victim+".gz", data, c); err != nil {
					t.Fatal(err)
				}
				_, _, err = Run(context.Background(), f.format, []string{dir}, Options{MaxBadLines: 1000})
				var bad *BadInputError
				if !errors.As(err, &bad) {
					t.Fatalf("truncated %s: error %v, want a BadInputError", f.interactions, err)
				}
				if !strings.Contains(err.Error(), filepath.Base(victim)+".gz") || !strings.Contains(err.Error(), "truncated") {
					t.Errorf("error %q does not name the truncated file", err)
				}
			})
		}
	}
}

func TestFixturesCommittedTruncatedGzip(t *testing.T) {
	_, _, err := Run(context.Background(), "amazon2018", []string{fxDir("amazon2018", "truncated")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "Toys_5.json.gz") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("error = %v, want one naming Toys_5.json.gz as truncated", err)
	}
}

func TestFixturesBadLines(t *testing.T) {
	tests := []struct {
		format, dir string
		// where is the file:line the first bad line is reported at.
		where string
		// maxBad lets the ingest pass; then it has these counts.
		maxBad             int64
		users, items       int
		interactions, bads int64
	}{
		{"amazon2014", "amazon2014/badline", "reviews_Toys_5.json:3", 1, 3, 2, 3, 1},
		{"amazon2014", "amazon2014/badmeta", "meta_Toys.json:2", 1, 1, 1, 1, 1},
		{"amazon2018", "amazon2018/badcsv", "Toys.csv:4", 2, 3, 4, 4, 2},
		{"amazon2018", "amazon2018/latin1", "Toys_5.json:2", 1, 1, 1, 1, 1},
		{"netflix", "netflix/badline", "combined_data_1.txt:4", 1, 3, 2, 3, 1},
		{"bilibili", "bilibili/badline", "bili_food_users.tsv:2", 1, 2, 3, 3, 1},
		{"movielens", "movielens/badline", "ratings.dat:2", 1, 2, 1, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			_, _, err := Run(context.Background(), tt.format, []string{fxDir(tt.dir)}, Options{})
			var bad *BadInputError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), tt.where+":") {
				t.Fatalf("error = %v, want a BadInputError at %s", err, tt.where)
			}
			if !strings.Contains(err.Error(), "expect") {
				t.Errorf("error %q does not say what was expected", err)
			}
			tab, rep := fxRun(t, tt.format, Options{MaxBadLines: tt.maxBad}, fxDir(tt.dir))
			if len(tab.Users) != tt.users || len(tab.Items) != tt.items || int64(tab.Inter.Len()) != tt.interactions || rep.BadLines != tt.bads {
				t.Errorf("with --max-bad-lines %d: %d users, %d items, %d interactions, %d bad lines; want %d, %d, %d, %d",
					tt.maxBad, len(tab.Users), len(tab.Items), tab.Inter.Len(), rep.BadLines, tt.users, tt.items, tt.interactions, tt.bads)
			}
			if len(rep.FirstBad) == 0 || !strings.Contains(rep.FirstBad[0], tt.where+":") {
				t.Errorf("report's first bad line = %q, want %s", rep.FirstBad, tt.where)
			}
			if tt.maxBad > 1 {
				_, _, err := Run(context.Background(), tt.format, []string{fxDir(tt.dir)}, Options{MaxBadLines: tt.maxBad - 1})
				if err == nil || !strings.Contains(err.Error(), "max-bad-lines") {
					t.Errorf("one bad line over the budget: error = %v, want a --max-bad-lines error", err)
				}
			}
		})
	}
}

func TestFixturesUnknownFileRejected(t *testing.T) {
	for _, f := range fxFormats {
		t.Run(f.dir, func(t *testing.T) {
			dir := fxCopyTree(t, fxDir(f.dir), false)
			odd := filepath.Join(dir, "notes.xyz")
			if err := os.WriteFile(odd, []byte("hello\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := Run(context.Background(), f.format, []string{dir}, Options{})
			var bad *BadInputError
			if !errors.As(err, &bad) || bad.File != odd || !strings.Contains(err.Error(), "expected") {
				t.Fatalf("error = %v, want a BadInputError naming %s and the expected names", err, odd)
			}
		})
	}
}

func TestFormatsDescribed(t *testing.T) {
	for _, name := range []string{"amazon2014", "amazon2018", "netflix", "bilibili", "movielens"} {
		f, ok := Formats()[name]
		if !ok {
			t.Fatalf("format %s not registered", name)
		}
		if f.Name() != name || f.Describe() == "" {
			t.Errorf("%s: Name %q, Describe %q", name, f.Name(), f.Describe())
		}
		b := f.NewBuilder()
		if b.Users.Dense() || b.Items.Dense() {
			t.Errorf("%s: want first-appearance indices", name)
		}
	}
}

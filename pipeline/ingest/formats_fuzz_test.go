package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mmpipe/mmpipe/store"
)

// Fuzz targets for every ingest format except MMRec (mmrec_fuzz_test.go).
// Each target fuzzes one file of a format at a time: kind picks the file's
// role (its name, which decides how it is read) from the format's table, and
// the role's companion files are fixed valid inputs, so that the fuzzed file
// meets the tables the others build (metadata that names known items, a
// split that extends given sequences). The properties, checked by
// checkIngest for every input:
//
//   - an error is a *BadInputError (so it matches store.ErrBadInput and the
//     CLI exits 2) naming a file, unless it is a cancellation;
//   - an accepted input gives tables whose columns have equal lengths, whose
//     interactions name existing users and items, whose indices equal their
//     positions, whose raw ids are unique, non-empty valid UTF-8, whose texts
//     are valid UTF-8, whose prices are NaN or non-negative and finite, whose
//     imported features are row-aligned with the items, and whose report
//     counts what the tables hold;
//   - ingesting the same files again gives the same tables and report (the
//     dataset layout is reproducible).
//
// Run one with, e.g., go test ./pipeline/ingest -run '^$' -fuzz FuzzIngestAmazon2014 -fuzztime 30s.

// fuzzRole is one file of a format as the fuzzer sees it.
type fuzzRole struct {
	name  string            // file name, which decides how the format reads it
	seeds [][]byte          // valid and invalid samples of the file
	with  map[string][]byte // fixed companion files
	opts  Options
}

// fixture reads a file under testdata/ingest; a missing fixture fails the
// fuzz target's setup.
func fixture(f *testing.F, parts ...string) []byte {
	f.Helper()
	b, err := os.ReadFile(fxDir(parts...))
	if err != nil {
		f.Fatalf("fixture: %v", err)
	}
	return b
}

// denseNumber finds digit runs long enough to allocate large dense id maps
// (ids are indices, so tables grow to the largest one): such inputs are
// skipped by the dense formats' targets to keep each run fast. The index
// caps are tested by TestDenseIndexCap.
var denseNumber = regexp.MustCompile(`[0-9]{5,}`)

// fuzzFormat registers the seeds of roles and fuzzes format with them.
func fuzzFormat(f *testing.F, format string, dense bool, roles []fuzzRole) {
	for k, r := range roles {
		for _, s := range r.seeds {
			f.Add(uint8(k), s, int8(0))
			f.Add(uint8(k), s, int8(2))
		}
		// Cut inside the last line, and an empty file.
		if len(r.seeds) > 0 && len(r.seeds[0]) > 2 {
			f.Add(uint8(k), r.seeds[0][:len(r.seeds[0])*2/3], int8(0))
		}
		f.Add(uint8(k), []byte{}, int8(0))
	}
	dir := f.TempDir()
	// The first seed of every role is valid: a role whose file name or
	// companions its format rejects would fuzz nothing but that check.
	for _, r := range roles {
		files, err := writeRole(dir, r, r.seeds[0])
		if err != nil {
			f.Fatal(err)
		}
		if _, _, err := Run(context.Background(), format, files, r.opts); err != nil {
			f.Fatalf("role %s: first seed rejected: %v", r.name, err)
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte, maxBad int8) {
		r := roles[int(kind)%len(roles)]
		if dense && denseNumber.Match(b) {
			t.Skip("index too large for a fuzz run (dense ids allocate up to the largest one)")
		}
		files, err := writeRole(dir, r, b)
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Dir(files[0]))
		opts := r.opts
		opts.MaxBadLines = int64(maxBad)
		checkIngest(t, format, files, opts)
	})
}

// writeRole writes b as r's file, and r's companions, into a new folder
// under dir (the previous input's files must not leak into this one) and
// returns their paths, the fuzzed file first.
func writeRole(dir string, r fuzzRole, b []byte) ([]string, error) {
	sub, err := os.MkdirTemp(dir, "in")
	if err != nil {
		return nil, err
	}
	files := []string{filepath.Join(sub, r.name)}
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		return nil, err
	}
	for name, body := range r.with {
		p := filepath.Join(sub, name)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return nil, err
		}
		files = append(files, p)
	}
	return files, nil
}

// checkIngest ingests files twice and checks the properties listed above.
func checkIngest(t *testing.T, format string, files []string, opts Options) {
	t.Helper()
	tb, rep, err := Run(context.Background(), format, files, opts)
	if err != nil {
		var bad *BadInputError
		if !errors.As(err, &bad) || !errors.Is(err, store.ErrBadInput) {
			t.Fatalf("error of another kind than BadInputError: %T %v", err, err)
		}
		if bad.File == "" || bad.Err == nil {
			t.Fatalf("bad-input error names no file or cause: %#v", bad)
		}
		_, _, err2 := Run(context.Background(), format, files, opts)
		if err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("second run: error %v, first run: %v", err2, err)
		}
		return
	}
	if tb == nil || rep == nil {
		t.Fatalf("no error and no tables (%v) or report (%v)", tb, rep)
	}
	if err := tablesInvariants(tb, rep, opts); err != nil {
		t.Fatal(err)
	}
	tb2, rep2, err := Run(context.Background(), format, files, opts)
	if err != nil {
		t.Fatalf("second run of the same input failed: %v", err)
	}
	if a, b := renderTables(tb, rep), renderTables(tb2, rep2); a != b {
		t.Fatalf("same input, different tables:\nfirst  %s\nsecond %s", a, b)
	}
}

// renderTables prints tables and report for comparison (NaN prints alike).
func renderTables(tb *Tables, rep *Report) string {
	var given store.Split
	if tb.Given != nil {
		given = *tb.Given
	}
	return fmt.Sprintf("%+v %+v %+v %+v %+v\n%+v", tb.Items, tb.Users, tb.Inter, given, tb.Features, *rep)
}

// tablesInvariants checks the tables of an accepted ingest.
func tablesInvariants(tb *Tables, rep *Report, opts Options) error {
	n := tb.Inter.Len()
	if len(tb.Inter.Item) != n || len(tb.Inter.Rating) != n || len(tb.Inter.Timestamp) != n {
		return fmt.Errorf("interaction columns of different lengths: %d %d %d %d",
			n, len(tb.Inter.Item), len(tb.Inter.Rating), len(tb.Inter.Timestamp))
	}
	for r := range n {
		if u := tb.Inter.User[r]; u < 0 || int(u) >= len(tb.Users) {
			return fmt.Errorf("row %d: user %d of %d", r, u, len(tb.Users))
		}
		if i := tb.Inter.Item[r]; i < 0 || int(i) >= len(tb.Items) {
			return fmt.Errorf("row %d: item %d of %d", r, i, len(tb.Items))
		}
	}
	if g := tb.Given; g != nil {
		if g.Len() != len(g.Part) || len(g.Item) != g.Len() || len(g.Rating) != g.Len() || len(g.Timestamp) != g.Len() {
			return fmt.Errorf("given split: %d rows, %d parts", g.Len(), len(g.Part))
		}
		for r := range g.Len() {
			if u, i := g.User[r], g.Item[r]; u < 0 || int(u) >= len(tb.Users) || i < 0 || int(i) >= len(tb.Items) {
				return fmt.Errorf("given split row %d: user %d of %d, item %d of %d", r, u, len(tb.Users), i, len(tb.Items))
			}
			if p := g.Part[r]; p != store.PartTrain && p != store.PartValid && p != store.PartTest {
				return fmt.Errorf("given split row %d: part %d", r, p)
			}
		}
	}
	seen := make(map[string]int, len(tb.Items))
	for i, it := range tb.Items {
		if int(it.Idx) != i {
			return fmt.Errorf("item %d has index %d", i, it.Idx)
		}
		if it.ID == "" || !utf8.ValidString(it.ID) {
			return fmt.Errorf("item %d: raw id %q empty or not UTF-8", i, it.ID)
		}
		if j, dup := seen[it.ID]; dup {
			return fmt.Errorf("items %d and %d have the same raw id %q", j, i, it.ID)
		}
		seen[it.ID] = i
		texts := append([]string{it.Title, it.Description, it.Brand, it.Text}, it.Categories...)
		for _, s := range append(texts, it.ImageURLs...) {
			if !utf8.ValidString(s) {
				return fmt.Errorf("item %q: text %q is not valid UTF-8", it.ID, s)
			}
		}
		if !math.IsNaN(it.Price) && (it.Price < 0 || math.IsInf(it.Price, 0)) {
			return fmt.Errorf("item %q: price %v", it.ID, it.Price)
		}
	}
	seenU := make(map[string]int, len(tb.Users))
	for i, u := range tb.Users {
		if int(u.Idx) != i {
			return fmt.Errorf("user %d has index %d", i, u.Idx)
		}
		if u.ID == "" || !utf8.ValidString(u.ID) {
			return fmt.Errorf("user %d: raw id %q empty or not UTF-8", i, u.ID)
		}
		if j, dup := seenU[u.ID]; dup {
			return fmt.Errorf("users %d and %d have the same raw id %q", j, i, u.ID)
		}
		seenU[u.ID] = i
	}
	for _, ft := range tb.Features {
		if ft.Rows != len(tb.Items) {
			return fmt.Errorf("feature %s: %d rows for %d items", ft.Modality, ft.Rows, len(tb.Items))
		}
		if ft.Dim <= 0 || len(ft.Data) != ft.Rows*ft.Dim {
			return fmt.Errorf("feature %s: %d values for %d rows of %d", ft.Modality, len(ft.Data), ft.Rows, ft.Dim)
		}
		if ft.Valid != nil && len(ft.Valid) != ft.Rows {
			return fmt.Errorf("feature %s: %d validity flags for %d rows", ft.Modality, len(ft.Valid), ft.Rows)
		}
	}
	if rep.Users != len(tb.Users) || rep.Items != len(tb.Items) || rep.Interactions != int64(n) {
		return fmt.Errorf("report counts %d users, %d items, %d interactions; tables hold %d, %d, %d",
			rep.Users, rep.Items, rep.Interactions, len(tb.Users), len(tb.Items), n)
	}
	if rep.BadLines > max(opts.MaxBadLines, 0) {
		return fmt.Errorf("%d bad lines skipped, --max-bad-lines %d", rep.BadLines, opts.MaxBadLines)
	}
	return nil
}

func FuzzIngestAmazon2014(f *testing.F) {
	reviews := fixture(f, "amazon2014", "good", "reviews_Toys_5.json")
	meta := fixture(f, "amazon2014", "good", "meta_Toys.json")
	fuzzFormat(f, "amazon2014", false, []fuzzRole{
		{name: "reviews_Toys_5.json", seeds: [][]byte{reviews,
			fixture(f, "amazon2014", "badline", "reviews_Toys_5.json"),
			[]byte(`{"reviewerID": "A1", "asin": "B1", "overall": null, "reviewTime": "02 29, 2012"}` + "\n\n" +
				`{"reviewerID": "A2", "asin": "B1", "overall": 4.0, "unixReviewTime": 1.5e9}`)}},
		{name: "ratings_Toys.csv", seeds: [][]byte{
			[]byte("user,item,rating,timestamp\nA1,B1,5.0,1389052800\nA2,\"B,2\",4,1389052801\r\nA1,B1,5.0,1389052800\n"),
			[]byte("A1,B1,x,1\n"), []byte("A1,B1,5,1e3\n\n")}},
		{name: "meta_Toys.json", seeds: [][]byte{meta, fixture(f, "amazon2014", "badmeta", "meta_Toys.json"),
			[]byte(`{'asin': 'B1', 'title': 'T\xe9 "q"', 'price': '$1,299.00', 'categories': [['A', 'B'], ['C']], 'imUrl': ' http://x/y.jpg '}`)},
			with: map[string][]byte{"reviews_Toys_5.json": reviews}},
	})
}

func FuzzIngestAmazon2018(f *testing.F) {
	reviews := fixture(f, "amazon2018", "good", "Toys_5.json")
	fuzzFormat(f, "amazon2018", false, []fuzzRole{
		{name: "Toys_5.json", seeds: [][]byte{reviews, fixture(f, "amazon2018", "latin1", "Toys_5.json"),
			fixture(f, "amazon2018", "truncated", "Toys_5.json.gz")}},
		{name: "Toys.csv", seeds: [][]byte{fixture(f, "amazon2018", "csv", "Toys.csv"), fixture(f, "amazon2018", "badcsv", "Toys.csv")}},
		{name: "meta_Toys.json", seeds: [][]byte{fixture(f, "amazon2018", "good", "meta_Toys.json"),
			[]byte(`{"asin": "B1", "title": "<b>T</b> &amp; \u00e9", "description": ["a", ["b"]], "category": [], "price": "$10.99 - $15.99", "imageURL": ["u1"], "imageURLHighRes": ["u1", "u2"]}`)},
			with: map[string][]byte{"Toys_5.json": reviews}},
	})
}

func FuzzIngestNetflix(f *testing.F) {
	ratings := fixture(f, "netflix", "good", "combined_data_1.txt")
	fuzzFormat(f, "netflix", false, []fuzzRole{
		{name: "combined_data_1.txt", seeds: [][]byte{ratings, fixture(f, "netflix", "badline", "combined_data_1.txt")}},
		{name: "mv_0000001.txt", seeds: [][]byte{fixture(f, "netflix", "training_set", "training_set", "mv_0000001.txt")}},
		{name: "movie_titles.csv", seeds: [][]byte{fixture(f, "netflix", "good", "movie_titles.csv"),
			[]byte("1,NULL,Caf\xe9, the \"Movie\"\r\n2,2003,\n")},
			with: map[string][]byte{"combined_data_1.txt": ratings}},
		{name: "item_attribute.csv", seeds: [][]byte{fixture(f, "netflix", "llmrec", "item_attribute.csv")}},
	})
}

func FuzzIngestBilibili(f *testing.F) {
	users := fixture(f, "bilibili", "pmmrec", "bili_food_users.tsv")
	behaviour := fixture(f, "bilibili", "ninerec", "Bili_Food_behaviour.tsv")
	fuzzFormat(f, "bilibili", false, []fuzzRole{
		{name: "bili_food_users.tsv", seeds: [][]byte{users, fixture(f, "bilibili", "badline", "bili_food_users.tsv")}},
		{name: "bili_food_items_texts.tsv", seeds: [][]byte{fixture(f, "bilibili", "pmmrec", "bili_food_items_texts.tsv")},
			with: map[string][]byte{"bili_food_users.tsv": users}},
		{name: "Bili_Food_item.csv", seeds: [][]byte{fixture(f, "bilibili", "ninerec", "Bili_Food_item.csv")},
			with: map[string][]byte{"Bili_Food_behaviour.tsv": behaviour}},
		{name: "Bili_Food_behaviour.tsv", seeds: [][]byte{behaviour}},
	})
}

func FuzzIngestMovieLens(f *testing.F) {
	udata := fixture(f, "movielens", "ml-100k", "u.data")
	uitem := fixture(f, "movielens", "ml-100k", "u.item")
	dat := fixture(f, "movielens", "ml-1m", "ratings.dat")
	csv := fixture(f, "movielens", "ml-latest-small", "ratings.csv")
	fuzzFormat(f, "movielens", false, []fuzzRole{
		{name: "u.data", seeds: [][]byte{udata}},
		{name: "ratings.dat", seeds: [][]byte{dat, fixture(f, "movielens", "ml-10m", "ratings.dat"),
			fixture(f, "movielens", "badline", "ratings.dat")}},
		{name: "ratings.csv", seeds: [][]byte{csv}},
		{name: "u.item", seeds: [][]byte{uitem}, with: map[string][]byte{"u.data": udata}},
		{name: "u.genre", seeds: [][]byte{fixture(f, "movielens", "ml-100k", "u.genre")},
			with: map[string][]byte{"u.data": udata, "u.item": uitem}},
		{name: "movies.dat", seeds: [][]byte{fixture(f, "movielens", "ml-1m", "movies.dat"), fixture(f, "movielens", "ml-10m", "movies.dat")},
			with: map[string][]byte{"ratings.dat": dat}},
		{name: "movies.csv", seeds: [][]byte{fixture(f, "movielens", "ml-latest-small", "movies.csv")},
			with: map[string][]byte{"ratings.csv": csv}},
		{name: "u1.base", seeds: [][]byte{fixture(f, "movielens", "ml-100k", "u1.base")}},
	})
}

// npyBytes encodes a float32 matrix as .npy.
func npyBytes(f *testing.F, rows, dim int) []byte {
	var b bytes.Buffer
	data := make([]float32, rows*dim)
	for i := range data {
		data[i] = float32(i) / 8
	}
	if err := store.EncodeNPY(&b, []int{rows, dim}, data); err != nil {
		f.Fatal(err)
	}
	return b.Bytes()
}

func FuzzIngestMMSSL(f *testing.F) {
	train := []byte(`{"0": [0, 1, 2], "1": [2, 3], "2": [1]}`)
	fuzzFormat(f, "mmssl", true, []fuzzRole{
		{name: "train.json", seeds: [][]byte{train, []byte(`{"0": [], "3": [4, 4, 1]}`), []byte(`{"0": [-1]}`), []byte(`[1, 2]`)}},
		{name: "val.json", seeds: [][]byte{[]byte(`{"0": [3], "1": [0]}`), []byte(`{"7": [9]}`)},
			with: map[string][]byte{"train.json": train}},
		{name: "test.json", seeds: [][]byte{[]byte(`{"2": [0, 3]}`)}, with: map[string][]byte{"train.json": train}},
		{name: "item2id.json", seeds: [][]byte{[]byte(`{"B001": 0, "B002": 1, "B003": 2, "B004": 3}`), []byte(`{"B001": 0, "B002": 0}`)},
			with: map[string][]byte{"train.json": train}},
		{name: "user2id.json", seeds: [][]byte{[]byte(`{"A1": 0, "A2": 1, "A3": 2}`), []byte(`{"A1": 5}`)},
			with: map[string][]byte{"train.json": train}},
		{name: "image_feat.npy", seeds: [][]byte{npyBytes(f, 4, 3), npyBytes(f, 6, 2), npyBytes(f, 3, 3)},
			with: map[string][]byte{"train.json": train}},
	})
}

func FuzzIngestRecBole(f *testing.F) {
	head := "user_id:token\titem_id_list:token_seq\titem_id:token\n"
	train := []byte(head + "0\t1 2\t3\n0\t1\t2\n1\t4\t5\n")
	valid := []byte(head + "0\t1 2 3\t4\n1\t4 5\t6\n")
	test := []byte(head + "0\t1 2 3 4\t5\n1\t4 5 6\t7\n")
	seq := map[string][]byte{"X.train.inter": train, "X.valid.inter": valid, "X.test.inter": test}
	without := func(name string) map[string][]byte {
		m := map[string][]byte{}
		for k, v := range seq {
			if k != name {
				m[k] = v
			}
		}
		return m
	}
	feat := make([]byte, 0, 8*2*4)
	for i := range 8 * 2 {
		v := math.Float32bits(float32(i % 3))
		feat = append(feat, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	fuzzFormat(f, "recbole", true, []fuzzRole{
		{name: "X.inter", seeds: [][]byte{
			[]byte("user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t4\t881250949\nu2\ti1\t3.5\t881250950\r\n"),
			[]byte("user_id:token\titem_id:token\nu1\ti2\n"), []byte("item_id:token\nx\n")}},
		{name: "X.train.inter", seeds: [][]byte{train, []byte(head + "0\t2\t3\n")}, with: without("X.train.inter")},
		{name: "X.valid.inter", seeds: [][]byte{valid, []byte(head + "0\t1 2 9\t4\n")}, with: without("X.valid.inter")},
		{name: "X.test.inter", seeds: [][]byte{test}, with: without("X.test.inter")},
		{name: "X.item2index", seeds: [][]byte{[]byte("B1\t1\nB2\t2\nB3\t3\n"), []byte("B1\t1\nB1\t2\n")}, with: seq},
		{name: "X.user2index", seeds: [][]byte{[]byte("A0\t0\nA1\t1\n")}, with: seq},
		{name: "X.text", seeds: [][]byte{[]byte("item_id:token\ttext:token_seq\n1\ta b c\n7\tlast\n")}, with: seq},
		{name: "X.item", seeds: [][]byte{[]byte("item_id:token\ttitle:token_seq\tcategories:token_seq\tprice:float\n1\tT\tA B\t3.5\n")}, with: seq},
		{name: "X.item.json", seeds: [][]byte{[]byte(`{"1": {"title": "T", "description": "D", "brand": "B", "categories": "A, B"}}`)}, with: seq},
		{name: "X.feat1CLS", seeds: [][]byte{feat, feat[:len(feat)-4]}, with: seq, opts: Options{FeatDim: 2}},
		// Metadata of a general .inter: raw tokens, not indices.
		{name: "X.item", seeds: [][]byte{[]byte("item_id:token\ttitle:token_seq\tprice:float\ni1\tT\t2\ni9\tmeta only\t\n")},
			with: map[string][]byte{"X.inter": []byte("user_id:token\titem_id:token\nu1\ti1\nu2\ti2\n")}},
	})
}

// TestImportNPYShapeChecked: a feature matrix of width 0 holds no data
// whatever its row count; it was accepted and made every row an item (a
// 100-byte file of shape (67108864, 0) took 14 GB and a minute to ingest).
func TestImportNPYShapeChecked(t *testing.T) {
	for _, shape := range [][]int{{1 << 26, 0}, {4, 0}, {1 << 27, 0}} {
		dir := t.TempDir()
		var b bytes.Buffer
		if err := store.EncodeNPY(&b, shape, nil); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string][]byte{"train.json": []byte(`{"0": [0]}`), "image_feat.npy": b.Bytes()} {
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := Run(context.Background(), "mmssl", []string{dir}, Options{})
		var bad *BadInputError
		if !errors.As(err, &bad) || filepath.Base(bad.File) != "image_feat.npy" {
			t.Errorf("shape %v: err = %v, want a bad-input error naming image_feat.npy", shape, err)
		}
	}
}

// TestMMSSLUserKeys: bad user keys are reported in key order (the fuzzer
// found the first error depending on map iteration), and two spellings of
// one user id are refused rather than merged in an order the map decides.
func TestMMSSLUserKeys(t *testing.T) {
	for _, c := range []struct {
		train, want string
	}{
		{`{"0\u00d2": [2], "c": [1]}`, `user key "0Ò" is not a non-negative integer`},
		{`{"7": [1], "07": [2]}`, `user 7 appears twice, as "07" and "7"`},
		{`{"-1": [1], "x": [2]}`, `user key "-1" is not a non-negative integer`},
	} {
		for range 5 {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "train.json"), []byte(c.train), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := Run(context.Background(), "mmssl", []string{dir}, Options{})
			var bad *BadInputError
			if !errors.As(err, &bad) || filepath.Base(bad.File) != "train.json" || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: err = %v, want a bad-input error on train.json with %q", c.train, err, c.want)
			}
		}
	}
}

package ingest

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/store"
)

func TestAmazon2014Fixture(t *testing.T) {
	tab, rep := fxRun(t, "amazon2014", Options{}, fxDir("amazon2014", "good"))
	fxSame(t, "users", fxUserIDs(tab), []string{"A1VXOAVRGKGEAK", "A8R62G708TSCM", "A21KH420DK0ICA", "AE3GUIWZUVLKO"})
	// First appearance in the reviews, then the metadata-only items by ASIN.
	fxSame(t, "items", fxItemIDs(tab), []string{"0439893577", "B00000DMCE", "B00000IGNA", "B00005BHJM", "0000031852", "B0000ZZZZZ"})
	fxSame(t, "interactions", fxRows(tab), []string{
		"A1VXOAVRGKGEAK 0439893577 5 1390953600",
		"A8R62G708TSCM 0439893577 4 1395964800",
		"A21KH420DK0ICA B00000DMCE 5 1359331200",
		"A1VXOAVRGKGEAK B00000IGNA 3 1339372800", // from reviewTime "06 11, 2012"
		"A8R62G708TSCM B00005BHJM 2 1356998400",
		"AE3GUIWZUVLKO B00000DMCE 1 1262304000",
	})
	if rep.DuplicateRows != 1 || rep.ItemsWithoutMeta != 1 || rep.MetaOnlyItems != 2 || rep.Interactions != 6 {
		t.Errorf("report: duplicates %d, without meta %d, meta-only %d, interactions %d; want 1, 1, 2, 6",
			rep.DuplicateRows, rep.ItemsWithoutMeta, rep.MetaOnlyItems, rep.Interactions)
	}
	tutu := fxItem(t, tab, "B00000DMCE")
	checks := []struct{ field, got, want string }{
		// \xe2\x80\x93 are the UTF-8 bytes of an en dash (Python 2 repr).
		{"title", tutu.Title, "Girls' Ballet Tutu – Zebra"},
		// \xe9 alone is not UTF-8, so it is the code point é (Python 3 repr).
		{"description", tutu.Description, `It's a tutu: café élève, a \ backslash`},
		{"brand", tutu.Brand, "Coxlists"},
		{"categories", strings.Join(tutu.Categories, "|"), "Clothing, Shoes & Jewelry|Girls|Sports & Outdoors|Other Sports|Dance"},
		{"images", strings.Join(tutu.ImageURLs, " "), "http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg"},
		{"price", fmtPrice(tutu.Price), "3.17"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("B00000DMCE %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	easel := fxItem(t, tab, "0439893577")
	if easel.Description != "Conquer the alphabet with this colorful magnetic board. Includes 26 letters." ||
		strings.Join(easel.Categories, "|") != "Toys & Games|Learning & Education|Arts & Crafts" || easel.Price != 7.99 {
		t.Errorf("0439893577 = %s", fxItemText(easel))
	}
	puzzle := fxItem(t, tab, "B00005BHJM")
	if puzzle.Title != "Melissa & Doug Deluxe Puzzle" || len(puzzle.Categories) != 0 || puzzle.Brand != "" || !math.IsNaN(puzzle.Price) {
		t.Errorf("B00005BHJM = %s", fxItemText(puzzle))
	}
	if it := fxItem(t, tab, "0000031852"); it.Price != 12 || it.Idx != 4 || !it.HasMeta {
		t.Errorf("meta-only 0000031852 = %s", fxItemText(it))
	}
	if it := fxItem(t, tab, "B00000IGNA"); it.HasMeta || it.HasText() {
		t.Errorf("B00000IGNA has no metadata but = %s", fxItemText(it))
	}
	if len(rep.Files) != 2 || rep.Files[0].Role != "interactions" || rep.Files[1].Role != "item metadata" || rep.Files[0].Lines != 7 {
		t.Errorf("report files = %+v, want the reviews (7 lines) before the metadata", rep.Files)
	}
}

func TestAmazon2018Fixture(t *testing.T) {
	tab, rep := fxRun(t, "amazon2018", Options{}, fxDir("amazon2018", "good"))
	fxSame(t, "users", fxUserIDs(tab), []string{"A2HD75EMZR8QLN", "A3UH4UZ4RSVO82", "AXSH5OOCYVSGK", "A1IDMI31WEANAF"})
	fxSame(t, "items", fxItemIDs(tab), []string{"0000191639", "B00004TZY8", "0004950763", "B00006I5Q0", "B0METAONLY"})
	if tab.Inter.Len() != 5 || rep.ItemsWithoutMeta != 1 || rep.MetaOnlyItems != 1 {
		t.Errorf("%d interactions, %d without meta, %d meta-only; want 5, 1, 1", tab.Inter.Len(), rep.ItemsWithoutMeta, rep.MetaOnlyItems)
	}
	puzzle := fxItem(t, tab, "0000191639")
	want := `0|0000191639|"Dr. Seuss Jigsaw Puzzle"|"Dr. Seuss 100-piece puzzle. Ages 3+"|["Toys & Games" "Puzzles" "Jigsaw Puzzles"]|"Dr. Seuss"|` +
		`["https://images-na.ssl-images-amazon.com/images/I/51x%2B-9SRXrL.jpg" "https://images-na.ssl-images-amazon.com/images/I/41b%2BQ2XzNlL.jpg" ` +
		`"https://images-na.ssl-images-amazon.com/images/I/51x%2B-9SRXrL._SS40_.jpg" "https://images-na.ssl-images-amazon.com/images/I/41b%2BQ2XzNlL._SS40_.jpg"]|""|12.99|true`
	if got := fxItemText(puzzle); got != want {
		t.Errorf("0000191639:\n got %s\nwant %s", got, want)
	}
	prices := map[string]string{"B00004TZY8": "NaN", "B00006I5Q0": "1299", "B0METAONLY": "NaN"}
	for id, p := range prices {
		if got := fmtPrice(fxItem(t, tab, id).Price); got != p {
			t.Errorf("%s price = %s, want %s", id, got, p)
		}
	}
	cafe := fxItem(t, tab, "B00006I5Q0")
	if cafe.Title != "Kitchen Café Play Set" || cafe.Description != "A café set — élève edition" {
		t.Errorf("B00006I5Q0 = %s", fxItemText(cafe))
	}
}

func TestAmazon2018RatingsCSV(t *testing.T) {
	tab, rep := fxRun(t, "amazon2018", Options{}, fxDir("amazon2018", "csv"))
	// item,user,rating,timestamp; CRLF line ends; one quoted line.
	fxSame(t, "interactions", fxRows(tab), []string{
		"A2HD75EMZR8QLN 0000191639 5 1473724800",
		"A3UH4UZ4RSVO82 B00004TZY8 4 1448496000",
		"A2HD75EMZR8QLN 0004950763 1 1485993600",
		"AXSH5OOCYVSGK B00004TZY8 3 1404432000",
		"A1IDMI31WEANAF B00006I5Q0 5 1387929600",
		"A2HD75EMZR8QLN B00004TZY8 2.5 1500000000",
	})
	if rep.DuplicateRows != 1 || rep.ItemsWithoutMeta != 4 {
		t.Errorf("duplicates %d, without meta %d; want 1, 4", rep.DuplicateRows, rep.ItemsWithoutMeta)
	}
	// The 2014 ratings CSV has user and item the other way round.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ratings_Toys.csv"), []byte("A2HD75EMZR8QLN,0000191639,5.0,1473724800\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tab14, _ := fxRun(t, "amazon2014", Options{}, dir)
	fxSame(t, "2014 ratings", fxRows(tab14), []string{"A2HD75EMZR8QLN 0000191639 5 1473724800"})
}

func TestAmazonFileNames(t *testing.T) {
	tests := []struct {
		format, file string
		ok           bool
	}{
		{"amazon2014", "reviews_Baby_5.json.gz", true},
		{"amazon2014", "meta_Baby.json.gz", true},
		{"amazon2014", "Baby_5.json", false},
		{"amazon2014", "meta_Baby.csv", false},
		{"amazon2018", "Baby_5.json", true},
		{"amazon2018", "Baby.csv", true},
		{"amazon2018", "Baby.tsv", false},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.file, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, tt.file)
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := Run(context.Background(), tt.format, []string{p}, Options{})
			if tt.ok && err != nil {
				t.Errorf("%s: %v", tt.file, err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), tt.file)) {
				t.Errorf("%s: error %v, want one naming the file", tt.file, err)
			}
		})
	}
}

func TestParsePrice(t *testing.T) {
	for in, want := range map[any]string{"$12.99": "12.99", "$1,299.00": "1299", " $5 ": "5", "": "NaN",
		"$10.99 - $15.99": "NaN", ".a-box-inner{background-color:#fff}": "NaN", 3.17: "3.17", int64(12): "12", nil: "NaN"} {
		if got := fmtPrice(parsePrice(in)); got != want {
			t.Errorf("parsePrice(%#v) = %s, want %s", in, got, want)
		}
	}
}

func TestParseFloatFast(t *testing.T) {
	for _, s := range []string{"5", "5.0", "4.5", "0.5", "-3.25", "4.", "1e3", "3.14159265358979", "0.1", "2.2", "12345678901234567890"} {
		got, ok := parseFloatFast([]byte(s))
		if !ok || fmt.Sprint(got) != fmt.Sprint(mustFloat(t, s)) {
			t.Errorf("parseFloatFast(%q) = %v %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "-", ".", "5a", "a5", "1.2.3"} {
		if _, ok := parseFloatFast([]byte(s)); ok {
			t.Errorf("parseFloatFast(%q) ok, want failure", s)
		}
	}
	for _, d := range []string{"2000-02-29", "1999-12-31", "1970-01-01", "2005-09-06"} {
		got, ok := parseDateUnix([]byte(d))
		want, _ := time.Parse("2006-01-02", d)
		if !ok || got != want.Unix() {
			t.Errorf("parseDateUnix(%s) = %d %v, want %d", d, got, ok, want.Unix())
		}
	}
	for _, d := range []string{"2001-02-29", "2005-13-01", "2005-1-01", "05-01-2005"} {
		if _, ok := parseDateUnix([]byte(d)); ok {
			t.Errorf("parseDateUnix(%s) ok, want failure", d)
		}
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeRatingsCSV writes n synthetic Amazon 2018 ratings (item,user,rating,
// time): n/3 users, n/20 items with a skewed popularity. grouped writes the
// rows item by item, as the real files are ordered; otherwise rows come in
// random order (the worst case for the id tables' caches).
func writeRatingsCSV(tb testing.TB, path string, n int, grouped bool) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	users, items := n/3, n/20
	x := uint64(88172645463325252)
	next := func() uint64 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	item := 0
	for k := range n {
		r := next()
		u := int(r % uint64(users))
		it := int((r >> 20) % uint64(items))
		if k%2 == 0 {
			it %= items/50 + 1 // popular items
		}
		if grouped {
			if next()%uint64(20) == 0 && item < items-1 {
				item++
			}
			it = item
		}
		line := fmt.Appendf(nil, "B%09d,A%013X,%d.0,%d\n", it, u*2654435761, 1+int(r>>40)%5, 1300000000+int(r>>30)%300000000)
		if _, err := w.Write(line); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkAmazon2018CSV ingests a ratings CSV end to end: read, index,
// deduplicate (Run) and write items, users and interactions as Parquet. The
// rows/s metric is the figure to compare with the 1 M rows/s target; set
// MMPIPE_BENCH_ROWS for the size (default 1,000,000; the target is stated
// for 10,000,000).
func BenchmarkAmazon2018CSV(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("MMPIPE_BENCH_ROWS"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	for _, grouped := range []bool{true, false} {
		name := "shuffled"
		if grouped {
			name = "item-ordered"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			p := filepath.Join(dir, "Books.csv")
			writeRatingsCSV(b, p, n, grouped)
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				tab, _, err := Run(context.Background(), "amazon2018", []string{p}, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if tab.Inter.Len() < n*99/100 {
					b.Fatalf("%d interactions", tab.Inter.Len())
				}
				if err := store.WriteInteractions(filepath.Join(out, "interactions.parquet"), &tab.Inter, nil); err != nil {
					b.Fatal(err)
				}
				if err := store.WriteItems(filepath.Join(out, "items.parquet"), tab.Items, nil); err != nil {
					b.Fatal(err)
				}
				if err := store.WriteUsers(filepath.Join(out, "users.parquet"), tab.Users, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkRatingsCSVParse measures the CSV path without the id tables:
// block reading on a second goroutine, line splitting and number parsing.
func BenchmarkRatingsCSVParse(b *testing.B) {
	const n = 2_000_000
	p := filepath.Join(b.TempDir(), "Books.csv")
	writeRatingsCSV(b, p, n, false)
	for _, gz := range []bool{false, true} {
		path := p
		name := "plain"
		if gz {
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			path += ".gz"
			if err := fxWriteGzip(path, data, 0); err != nil {
				b.Fatal(err)
			}
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var rep Report
				c := ratingsCSV{userCol: 1}
				rows := 0
				err := eachChunkLine(context.Background(), path, "interactions", &Options{}, &rep, func(lr *lineReader, line []byte) error {
					_, _, _, _, ok, err := c.parse(lr, line)
					if ok {
						rows++
					}
					return err
				}, nil)
				if err != nil || rows != n {
					b.Fatalf("%d rows, %v", rows, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkAmazonReviewsJSON ingests 2018-style review lines (about 600
// bytes each; the review text is skipped unparsed) and a 2014-style
// metadata file of Python literals.
func BenchmarkAmazonReviewsJSON(b *testing.B) {
	const n = 200_000
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "Books.json"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	text := strings.Repeat("A lovely book about \\\"things\\\" and more things. ", 9)
	for k := range n {
		fmt.Fprintf(w, `{"overall": %d.0, "verified": true, "reviewTime": "09 13, 2016", "reviewerID": "A%013X", "asin": "B%09d", "style": {"Format:": " Paperback"}, "reviewerName": "Reader %d", "reviewText": "%s", "summary": "Five Stars", "unixReviewTime": %d}`+"\n",
			1+k%5, k*7919%(n/3), k/20, k, text, 1400000000+k)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	size := fileSizeOf(b, f)
	b.Run("reviews", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, _, err := Run(context.Background(), "amazon2018", []string{f.Name()}, Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	m, err := os.Create(filepath.Join(b.TempDir(), "meta_Books.json"))
	if err != nil {
		b.Fatal(err)
	}
	w = bufio.NewWriter(m)
	for k := range n / 4 {
		fmt.Fprintf(w, `{'asin': 'B%09d', 'title': "Girls' Ballet Tutu %d", 'price': 3.17, 'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', 'related': {'also_bought': ['B00JHONN1S', 'B002BZX8Z6', 'B00D2K1M3O', '0000031909', 'B00613WDTQ', 'B00D0WDS9A'], 'also_viewed': ['B002BZX8Z6', 'B00JHONN1S']}, 'salesRank': {'Toys & Games': 211836}, 'categories': [['Clothing, Shoes & Jewelry', 'Girls', 'Clothing'], ['Sports & Outdoors', 'Other Sports', 'Dance']], 'description': 'This tutu is great for dress up play. It\'s made of soft tulle.'}`+"\n", k, k)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	msize := fileSizeOf(b, m)
	b.Run("meta2014", func(b *testing.B) {
		b.SetBytes(msize)
		for b.Loop() {
			if _, _, err := Run(context.Background(), "amazon2014", []string{m.Name()}, Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n/4)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})
}

func fileSizeOf(b *testing.B, f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

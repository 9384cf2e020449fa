package crawl

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// writeItems writes a dataset's items.parquet with the given image URLs.
func writeItems(t testing.TB, dir string, urls map[string][]string, order []string) {
	t.Helper()
	items := make([]store.Item, len(order))
	for i, id := range order {
		items[i] = store.NewItem(int32(i), id)
		items[i].ImageURLs = urls[id]
		items[i].HasMeta = true
	}
	if err := store.WriteItems(filepath.Join(dir, store.ItemsFile), items, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFromItems crawls a dataset's items.parquet: every item gets a ledger
// entry, items without a URL as skipped/no_url, and a second URL is a
// fallback.
func TestFromItems(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/B001.jpg", "image/jpeg", f.jpeg)
	s.file("/B002.png", "image/png", f.png)
	dir := t.TempDir()
	writeItems(t, dir, map[string][]string{
		"B001": {s.URL + "/B001.jpg"},
		"B002": {s.URL + "/missing2.jpg", s.URL + "/B002.png"},
		"B003": nil,
		"B004": {s.URL + "/missing.jpg"},
	}, []string{"B001", "B002", "B003", "B004"})
	o := testOptions(dir)
	st := run(t, o)
	if st.Items != 4 || st.NoURL != 1 || st.OK != 2 || st.Failed != 1 {
		t.Errorf("stats: %+v", st)
	}
	ledger, images := storeContents(t, filepath.Join(dir, store.ImagesDir))
	checkLedger(t, ledger, map[string]want{
		"B001": okImage(96, 64, "image/jpeg"),
		"B002": {status: imagestore.StatusOK, attempts: 2, w: 40, h: 30},
		"B004": failed("http_404", 1, 404),
	})
	if e := ledger["B003"]; e.Status != imagestore.StatusSkipped || e.ErrorClass != ClassNoURL {
		t.Errorf("B003 without URL: %+v", e)
	}
	checkConsistent(t, ledger, images)

	// failed.parquet lists exactly the entries that are not ok.
	rows := readFailed(t, filepath.Join(dir, FailedFileName))
	wantRows := map[string][2]string{"B003": {imagestore.StatusSkipped, ClassNoURL}, "B004": {imagestore.StatusFailed, "http_404"}}
	if len(rows) != len(wantRows) {
		t.Errorf("failed.parquet rows %v", rows)
	}
	for id, w := range wantRows {
		r, ok := rows[id]
		if !ok || r.status != w[0] || r.class != w[1] {
			t.Errorf("failed.parquet row of %s: %+v", id, r)
		}
	}
	if r := rows["B004"]; r.url != s.URL+"/missing.jpg" || r.httpStatus != 404 || r.attempts != 1 || r.err == "" {
		t.Errorf("failed.parquet row of B004: %+v", r)
	}
	// A re-run does not rewrite the no-URL entry or fetch anything.
	if st := run(t, o); !st.Skipped || st.AlreadyDone != 3 {
		t.Errorf("re-run: %+v", st)
	}
}

type failedRow struct {
	url, status, class, err string
	httpStatus, attempts    int32
}

func readFailed(t testing.TB, path string) map[string]failedRow {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	names := func(s *arrow.Schema) []string {
		var out []string
		for _, fl := range s.Fields() {
			out = append(out, fl.Name+":"+fl.Type.String())
		}
		return out
	}
	if got, want := names(tbl.Schema()), names(FailedSchema); !slices.Equal(got, want) {
		t.Fatalf("failed.parquet schema %v, want %v", got, want)
	}
	str := func(c int) []string {
		var out []string
		for _, ch := range tbl.Column(c).Data().Chunks() {
			a := ch.(*array.String)
			for i := 0; i < a.Len(); i++ {
				out = append(out, a.Value(i))
			}
		}
		return out
	}
	i32 := func(c int) []int32 {
		var out []int32
		for _, ch := range tbl.Column(c).Data().Chunks() {
			out = append(out, ch.(*array.Int32).Int32Values()...)
		}
		return out
	}
	ids, urls, sts, cls, errs, codes, atts := str(0), str(1), str(2), str(3), str(4), i32(5), i32(6)
	out := map[string]failedRow{}
	for i, id := range ids {
		out[id] = failedRow{urls[i], sts[i], cls[i], errs[i], codes[i], atts[i]}
	}
	return out
}

// TestFromDir builds the store from a folder of files named by item id.
func TestFromDir(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	dir := t.TempDir()
	imgs := filepath.Join(dir, "images")
	os.MkdirAll(imgs, 0o755)
	files := map[string][]byte{
		"v1.jpg": f.jpeg, "v2.PNG": f.png, "v3.gif": f.gif, "v4.webp": webpLossless, "v5.jpeg": f.truncated,
		"v1.png": f.png, "stray.jpg": f.big, "notes.txt": []byte("x"), ".hidden.jpg": f.jpeg, "v6.jpg": f.html,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(imgs, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeItems(t, dir, nil, []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7"})
	o := testOptions(dir)
	o.FromDir = imgs
	o.Validate = ValidateDecode
	st := run(t, o)
	if st.UnknownIDs != 1 || st.DuplicateFiles != 1 {
		t.Errorf("unknown ids %d (want 1: stray), duplicate files %d (want 1: v1.png)", st.UnknownIDs, st.DuplicateFiles)
	}
	ledger, images := storeContents(t, o.StoreDir())
	wantStatus := map[string][2]string{
		"v1": {"ok", ""}, "v2": {"ok", ""}, "v3": {"ok", ""}, "v4": {"ok", ""}, "stray": {"ok", ""},
		"v5": {"failed", ClassTruncated}, "v6": {"failed", ClassNotImage}, "v7": {"skipped", ClassNoFile},
	}
	got := map[string][2]string{}
	for k, e := range ledger {
		got[k] = [2]string{e.Status, e.ErrorClass}
	}
	if !reflect.DeepEqual(got, wantStatus) {
		t.Errorf("ledger %v\nwant   %v", got, wantStatus)
	}
	if e := ledger["v1"]; e.Source != filepath.Join(imgs, "v1.jpg") || string(images["v1"]) != string(f.jpeg) {
		t.Errorf("v1 came from %q", e.Source)
	}
	checkConsistent(t, ledger, images)
}

func TestURLFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	type tk struct {
		id   string
		urls []string
	}
	want := []tk{{"a", []string{"http://h/a.jpg", "http://h/a2.jpg"}}, {"b", []string{"http://h/b.jpg"}}, {"c", nil}}
	pq := filepath.Join(dir, "urls.parquet")
	writeURLParquet(t, pq, []string{"a", "b", "a", "c"}, []string{"http://h/a.jpg", "http://h/b.jpg", "http://h/a2.jpg", ""})
	for name, path := range map[string]string{
		"csv with header":        write("h.csv", "item_id,url\na,http://h/a.jpg\nb,http://h/b.jpg\na,http://h/a2.jpg\nc,\n"),
		"csv without header":     write("n.csv", "a,http://h/a.jpg\nb,http://h/b.jpg\n\na,http://h/a2.jpg\nc,\n"),
		"csv with other columns": write("o.csv", "\ufeffurl,title,asin\nhttp://h/a.jpg,x,a\nhttp://h/b.jpg,y,b\nhttp://h/a2.jpg,z,a\n,w,c\n"),
		"tsv":                    write("t.tsv", "item_id\turl\na\thttp://h/a.jpg\nb\thttp://h/b.jpg\na\thttp://h/a2.jpg\nc\t\n"),
		"parquet":                pq,
	} {
		tasks, err := tasksFromURLFile(context.Background(), path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var got []tk
		for _, x := range tasks {
			got = append(got, tk{x.id, x.urls})
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	for name, body := range map[string]string{"one column": "a\nb\n", "empty id": "item_id,url\n,http://h/x\n"} {
		if _, err := tasksFromURLFile(context.Background(), write("bad.csv", body)); err == nil {
			t.Errorf("%s: no error", name)
		} else if _, ok := err.(*BadInputError); !ok {
			t.Errorf("%s: %T, want *BadInputError", name, err)
		}
	}
	if _, err := tasksFromURLFile(context.Background(), filepath.Join(dir, "nope.csv")); err == nil {
		t.Error("missing file: no error")
	}
}

func writeURLParquet(t testing.TB, path string, ids, urls []string) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "item_id", Type: arrow.BinaryTypes.String}, {Name: "url", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range ids {
		b.Field(0).(*array.StringBuilder).Append(ids[i])
		if urls[i] == "" {
			b.Field(1).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(urls[i])
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestShardAssignment(t *testing.T) {
	// Deterministic and balanced: FNV-1a 64 of the id, modulo n.
	counts := make([]int, 4)
	for i := 0; i < 4000; i++ {
		id := "item" + string(rune('a'+i%26)) + itoa3(i)
		in := 0
		for s := 0; s < 4; s++ {
			if InShard(id, s, 4) {
				in++
				counts[s]++
			}
		}
		if in != 1 {
			t.Fatalf("%s is in %d shards", id, in)
		}
	}
	for s, c := range counts {
		if c < 900 || c > 1100 {
			t.Errorf("shard %d has %d of 4000", s, c)
		}
	}
	// The documented hash, written out independently: FNV-1a 64 (offset
	// basis 14695981039346656037, prime 1099511628211) of the id's bytes.
	// Changing it would scatter the items of existing parts.
	fnv1a := func(s string) uint64 {
		h := uint64(14695981039346656037)
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		return h
	}
	if fnv1a("a") != 0xaf63dc4c8601ec8c {
		t.Fatalf("test FNV-1a is wrong: %x", fnv1a("a"))
	}
	for _, id := range []string{"B00005N5PF", "17551", "v17551", "ünïcode", "a"} {
		for _, n := range []int{2, 7, 16, 1000} {
			if !InShard(id, int(fnv1a(id)%uint64(n)), n) {
				t.Errorf("%s is not in shard fnv1a %% %d", id, n)
			}
		}
	}
	if got := slices.Collect(func(yield func(int) bool) {
		for s := 0; s < 3; s++ {
			if InShard("x", s, 1) && !yield(s) {
				return
			}
		}
	}); len(got) != 3 {
		t.Errorf("n = 1 must take everything: %v", got)
	}
	for _, bad := range []string{"3/3", "-1/2", "1", "a/b", "0/0"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	if i, n, err := ParseShard("2/8"); err != nil || i != 2 || n != 8 {
		t.Errorf("ParseShard(2/8) = %d, %d, %v", i, n, err)
	}
}

// dataDir returns a folder of the shared real data ($MMPIPE_DATA, default
// ../shared/data from the module root); the test skips when it is absent,
// and fails instead when MMPIPE_REQUIRE_DATA=1.
func dataDir(t *testing.T, name string) string {
	t.Helper()
	root := os.Getenv("MMPIPE_DATA")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "data")
	}
	p := filepath.Join(root, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MMPIPE_REQUIRE_DATA") == "1" {
			t.Fatalf("shared data %s not present: %v", p, err)
		}
		t.Skipf("shared data %s not present (set MMPIPE_DATA): %v", p, err)
	}
	return p
}

// TestRealURLList reads LATTICE/MMSSL's baby_url.csv (itemID,asin,imUrl) as
// a --urls file: the ASIN is the raw item id, imUrl the URL.
func TestRealURLList(t *testing.T) {
	p := filepath.Join(dataDir(t, "amazon-baby"), "baby_url.csv")
	tasks, err := tasksFromURLFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 7050 {
		t.Fatalf("%d tasks, want 7050", len(tasks))
	}
	if tasks[0].id != "097293751X" || len(tasks[0].urls) != 1 || tasks[0].urls[0] != "http://ecx.images-amazon.com/images/I/41Bb6wf%2BqUL._SX300_.jpg" || tasks[0].host != "ecx.images-amazon.com" {
		t.Errorf("first task %+v", tasks[0])
	}
	noURL := 0
	for _, tk := range tasks {
		if err := imagestore.ValidKey(tk.id); err != nil || len(tk.urls) > 1 {
			t.Fatalf("task %+v: %v", tk, err)
		}
		if len(tk.urls) == 0 {
			noURL++ // rows like "284,B0000A1OEZ," become skipped/no_url entries
		}
	}
	if noURL != 13 {
		t.Errorf("%d items without a URL, want 13", noURL)
	}
}

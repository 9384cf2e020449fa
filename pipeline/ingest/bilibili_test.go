package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBilibiliPMMRecFixture(t *testing.T) {
	dir := fxDir("bilibili", "pmmrec")
	tab, rep := fxRun(t, "bilibili", Options{}, dir)
	fxSame(t, "users", fxUserIDs(tab), []string{"u1001", "u1002", "u1003"})
	fxSame(t, "items", fxItemIDs(tab), []string{"v17551", "v1650", "v2882", "v14633", "v3504", "v9999", "v8888"})
	// Positions within each user's line are the timestamps; u1002's second,
	// identical line only adds duplicates; a repeated item at another
	// position is a new event.
	fxSame(t, "interactions", fxRows(tab), []string{
		"u1001 v17551 NaN 0", "u1001 v1650 NaN 1", "u1001 v2882 NaN 2", "u1001 v14633 NaN 3",
		"u1002 v1650 NaN 0", "u1002 v3504 NaN 1", "u1002 v17551 NaN 2",
		"u1003 v2882 NaN 0", "u1003 v9999 NaN 1", "u1003 v2882 NaN 2",
	})
	if rep.DuplicateRows != 3 || rep.MetaOnlyItems != 1 {
		t.Errorf("duplicates %d, meta-only %d; want 3, 1", rep.DuplicateRows, rep.MetaOnlyItems)
	}
	// v9999 has neither text nor cover; v14633 has only a cover.
	if rep.ItemsWithoutMeta != 1 || rep.ItemsWithoutText != 2 || rep.ItemsWithoutImage != 4 {
		t.Errorf("without meta %d, text %d, image %d; want 1, 2, 4", rep.ItemsWithoutMeta, rep.ItemsWithoutText, rep.ItemsWithoutImage)
	}
	abs, err := filepath.Abs(filepath.Join(dir, "covers"))
	if err != nil {
		t.Fatal(err)
	}
	covers := map[string]string{
		"v17551": "file://" + filepath.ToSlash(filepath.Join(abs, "17551.jpg")), // PMMRec's v-stripped name
		"v1650":  "file://" + filepath.ToSlash(filepath.Join(abs, "v1650.png")),
		"v14633": "file://" + filepath.ToSlash(filepath.Join(abs, "v14633.jpg")),
	}
	for id, url := range covers {
		if it := fxItem(t, tab, id); len(it.ImageURLs) != 1 || it.ImageURLs[0] != url {
			t.Errorf("%s images = %q, want %s", id, it.ImageURLs, url)
		}
	}
	if it := fxItem(t, tab, "v17551"); it.Title != "韩国街头美食合集 korean street food compilation" {
		t.Errorf("v17551 title = %q", it.Title)
	}
	if it := fxItem(t, tab, "v9999"); it.HasMeta || len(it.ImageURLs) != 0 {
		t.Errorf("v9999 = %s, want no metadata", fxItemText(it))
	}
	found := false
	for _, w := range rep.Warnings {
		found = found || strings.Contains(w, "1 cover images") && strings.Contains(w, "123456.jpg")
	}
	if !found {
		t.Errorf("warnings = %q, want one counting the unknown cover 123456.jpg", rep.Warnings)
	}
	var coverStat *FileStat
	for i := range rep.Files {
		if rep.Files[i].Role == "cover images" {
			coverStat = &rep.Files[i]
		}
	}
	if coverStat == nil || coverStat.Lines != 4 || !strings.HasSuffix(coverStat.Path, "covers") {
		t.Errorf("report files = %+v, want the cover folder with 4 images", rep.Files)
	}
}

func TestBilibiliNineRecFixture(t *testing.T) {
	tab, rep := fxRun(t, "bilibili", Options{}, fxDir("bilibili", "ninerec"))
	fxSame(t, "users", fxUserIDs(tab), []string{"1", "2"})
	fxSame(t, "items", fxItemIDs(tab), []string{"3", "7", "12"})
	fxSame(t, "interactions", fxRows(tab), []string{"1 3 NaN 0", "1 7 NaN 1", "1 12 NaN 2", "2 7 NaN 0", "2 3 NaN 1"})
	want := []struct{ id, title, text string }{
		{"3", "红烧肉的做法，超简单", "How to cook braised pork, super easy"},
		{"7", "麻辣香锅", "Spicy \"mala\" pot\nin two lines"}, // a quoted field over two lines
		{"12", "凉面", "Cold noodles"},
	}
	for _, w := range want {
		if it := fxItem(t, tab, w.id); it.Title != w.title || it.Text != w.text {
			t.Errorf("item %s: %q / %q, want %q / %q", w.id, it.Title, it.Text, w.title, w.text)
		}
	}
	if it := fxItem(t, tab, "12"); len(it.ImageURLs) != 1 || !strings.HasSuffix(it.ImageURLs[0], "/Bili_Food_cover/12.jpg") {
		t.Errorf("item 12 images = %q", it.ImageURLs)
	}
	if it := fxItem(t, tab, "7"); len(it.ImageURLs) != 0 {
		t.Errorf("item 7 images = %q, want none", it.ImageURLs)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "Bili_Food_pair.csv") {
		t.Errorf("warnings = %q, want one about the pair file", rep.Warnings)
	}
}

func TestBilibiliTextsNeedTwoFields(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("x_users.tsv", "u1\tv1 v2\n")
	write("x_items_texts.tsv", "v1\tok title\nv2\ttitle\twith a third field\n")
	tab, rep := fxRun(t, "bilibili", Options{MaxBadLines: 5}, dir)
	if rep.BadLines != 1 || fxItem(t, tab, "v1").Title != "ok title" || fxItem(t, tab, "v2").HasMeta {
		t.Errorf("bad lines %d, items %s / %s", rep.BadLines, fxItemText(tab.Items[0]), fxItemText(tab.Items[1]))
	}
	if len(rep.FirstBad) != 1 || !strings.Contains(rep.FirstBad[0], "x_items_texts.tsv:2:") {
		t.Errorf("first bad = %q, want x_items_texts.tsv:2", rep.FirstBad)
	}
}

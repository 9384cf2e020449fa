package ingest

import (
	"strings"
	"testing"
)

func TestNetflixFixture(t *testing.T) {
	tab, rep := fxRun(t, "netflix", Options{}, fxDir("netflix", "good"))
	fxSame(t, "users", fxUserIDs(tab), []string{"1488844", "822109", "885013", "2059652", "30878"})
	// Movies 1, 2, 3, 6 from the ratings; 4 and 5 only have titles.
	fxSame(t, "items", fxItemIDs(tab), []string{"1", "2", "3", "6", "4", "5"})
	fxSame(t, "interactions", fxRows(tab), []string{
		"1488844 1 3 1125964800",
		"822109 1 5 1115942400",
		"885013 1 4 1129680000",
		"2059652 2 4 1125878400",
		"1488844 2 4 1115942400",
		"822109 3 2 1077148800",
		"30878 3 4 1135555200",
		"30878 6 1 951782400", // 2000-02-29
	})
	if rep.DuplicateRows != 1 || rep.ItemsWithoutMeta != 1 || rep.MetaOnlyItems != 2 {
		t.Errorf("duplicates %d, without meta %d, meta-only %d; want 1, 1, 2", rep.DuplicateRows, rep.ItemsWithoutMeta, rep.MetaOnlyItems)
	}
	titles := []struct{ id, title, text string }{
		{"1", "Dinosaur Planet", "year: 2003"},
		{"4", "Hello, Dolly!, the musical", "year: 1969"}, // commas after the second are the title's
		{"5", "Amélie", ""},                               // ISO-8859-1, year NULL
		{"6", "", ""},                                     // no title line
	}
	for _, tt := range titles {
		it := fxItem(t, tab, tt.id)
		if it.Title != tt.title || it.Text != tt.text {
			t.Errorf("movie %s: title %q text %q, want %q %q", tt.id, it.Title, it.Text, tt.title, tt.text)
		}
	}
}

func TestNetflixTrainingSetMatchesCombined(t *testing.T) {
	combined, _ := fxRun(t, "netflix", Options{}, fxDir("netflix", "good"))
	// The original release: one mv_<id>.txt per movie, movie_titles.txt,
	// probe.txt (not read).
	mv, rep := fxRun(t, "netflix", Options{}, fxDir("netflix", "training_set"))
	if a, b := fxTables(combined), fxTables(mv); a != b {
		t.Errorf("training_set/mv_*.txt gives other tables than combined_data:\n%s\nvs\n%s", b, a)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "probe.txt") {
		t.Errorf("warnings = %q, want one about probe.txt", rep.Warnings)
	}
}

func TestNetflixLLMRecAttributes(t *testing.T) {
	tab, rep := fxRun(t, "netflix", Options{}, fxDir("netflix", "llmrec"))
	// The ids are LLMRec's item indices: index = id, the gap (3) kept.
	fxSame(t, "items", fxItemIDs(tab), []string{"0", "1", "2", "3", "4"})
	want := []struct{ title, text string }{
		{"Dinosaur Planet", "year: 2003"},
		{"Isle of Man TT 2004 Review", "year: 2004"}, // pandas wrote 2004.0
		{"Hello, Dolly!", ""},                        // quoted title, NULL year
		{"", ""},
		{"Character", "year: 1997"},
	}
	for i, w := range want {
		if it := tab.Items[i]; it.Title != w.title || it.Text != w.text {
			t.Errorf("item %d: %q %q, want %q %q", i, it.Title, it.Text, w.title, w.text)
		}
	}
	if rep.ItemsWithoutMeta != 1 || tab.Inter.Len() != 0 {
		t.Errorf("without meta %d, interactions %d; want 1, 0", rep.ItemsWithoutMeta, tab.Inter.Len())
	}
	// Next to Netflix ratings its ids would name the wrong movies: ignored.
	tab2, rep2 := fxRun(t, "netflix", Options{}, fxDir("netflix", "good"), fxDir("netflix", "llmrec"))
	if len(tab2.Items) != 6 || fxItem(t, tab2, "1").Title != "Dinosaur Planet" {
		t.Errorf("with combined_data: items %v", fxItemIDs(tab2))
	}
	if len(rep2.Warnings) == 0 || !strings.Contains(rep2.Warnings[0], "item_attribute.csv") {
		t.Errorf("warnings = %q, want one about item_attribute.csv", rep2.Warnings)
	}
}

func TestYearText(t *testing.T) {
	for in, want := range map[string]string{"2003": "year: 2003", "2003.0": "year: 2003", "NULL": "", "": "", " 1999 ": "year: 1999"} {
		got, ok := yearText([]byte(in))
		if !ok || got != want {
			t.Errorf("yearText(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"abc", "20O3", "12", "2003.5"} {
		if _, ok := yearText([]byte(in)); ok {
			t.Errorf("yearText(%q) ok, want failure", in)
		}
	}
}

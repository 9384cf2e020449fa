package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMovieLens100k(t *testing.T) {
	tab, rep := fxRun(t, "movielens", Options{}, fxDir("movielens", "ml-100k"))
	fxSame(t, "users", fxUserIDs(tab), []string{"196", "186", "22", "244", "166", "298"})
	fxSame(t, "items", fxItemIDs(tab), []string{"242", "302", "377", "51", "346", "474", "267"})
	fxSame(t, "interactions", fxRows(tab), []string{
		"196 242 3 881250949", "186 302 3 891717742", "22 377 1 878887116", "244 51 2 880606923",
		"166 346 1 886397596", "298 474 4 884182806", "196 302 5 881251000",
	})
	if rep.DuplicateRows != 1 || rep.ItemsWithoutMeta != 1 || rep.MetaOnlyItems != 1 {
		t.Errorf("duplicates %d, without meta %d, meta-only %d; want 1, 1, 1", rep.DuplicateRows, rep.ItemsWithoutMeta, rep.MetaOnlyItems)
	}
	tests := []struct{ id, title, genres string }{
		{"51", "Misérables, Les (1995)", "Drama|Musical"}, // ISO-8859-1
		{"302", "L.A. Confidential (1997)", "Crime|Film-Noir|Mystery|Thriller"},
		{"267", "unknown", ""}, // only the "unknown" genre flag
	}
	for _, tt := range tests {
		it := fxItem(t, tab, tt.id)
		if it.Title != tt.title || strings.Join(it.Categories, "|") != tt.genres {
			t.Errorf("movie %s: %q %q, want %q %q", tt.id, it.Title, it.Categories, tt.title, tt.genres)
		}
	}
	var warned []string
	for _, w := range rep.Warnings {
		warned = append(warned, filepath.Base(strings.Fields(w)[0]))
	}
	fxSame(t, "files ignored with a warning", warned, []string{"u.user:", "u1.base:"})
}

func TestMovieLens100kGenreNames(t *testing.T) {
	// u.genre names the flag columns; without it the standard names apply.
	dir := fxCopyTree(t, fxDir("movielens", "ml-100k"), false)
	genres, err := os.ReadFile(filepath.Join(dir, "u.genre"))
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(genres), "Drama|8", "Drame|8", 1)
	if err := os.WriteFile(filepath.Join(dir, "u.genre"), []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, _ := fxRun(t, "movielens", Options{}, dir)
	if got := strings.Join(fxItem(t, tab, "51").Categories, "|"); got != "Drame|Musical" {
		t.Errorf("with a renamed u.genre: %q", got)
	}
	if err := os.Remove(filepath.Join(dir, "u.genre")); err != nil {
		t.Fatal(err)
	}
	tab, _ = fxRun(t, "movielens", Options{}, dir)
	if got := strings.Join(fxItem(t, tab, "51").Categories, "|"); got != "Drama|Musical" {
		t.Errorf("without u.genre: %q", got)
	}
}

func TestMovieLens1m10mLatest(t *testing.T) {
	const amelie = "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
	tests := []struct {
		dir          string
		users, items []string
		rows         []string
		id, title    string
		genres       string
		warned       string
	}{
		{"ml-1m", []string{"1", "2", "3"}, []string{"1193", "661", "2", "1"},
			[]string{"1 1193 5 978300760", "1 661 3 978302109", "2 1193 4 978298413", "1 2 4 978824291", "3 661 2 978297039"},
			"2", amelie, "Comedy|Romance", "users.dat"}, // ISO-8859-1
		{"ml-10m", []string{"1", "2"}, []string{"122", "2"},
			[]string{"1 122 5 838985046", "1 2 4.5 838983525", "2 122 0.5 868246450"},
			"2", amelie, "Comedy|Romance", "tags.dat"}, // UTF-8
		{"ml-latest-small", []string{"1", "2", "3"}, []string{"1", "3", "11", "176601", "4973"},
			[]string{"1 1 4 964982703", "1 3 4 964981247", "2 11 3.5 1445714835", "3 3 0.5 1306463578"},
			"11", "American President, The (1995)", "Comedy|Drama|Romance", "links.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			tab, rep := fxRun(t, "movielens", Options{}, fxDir("movielens", tt.dir))
			fxSame(t, "users", fxUserIDs(tab), tt.users)
			fxSame(t, "items", fxItemIDs(tab), tt.items)
			fxSame(t, "interactions", fxRows(tab), tt.rows)
			it := fxItem(t, tab, tt.id)
			if it.Title != tt.title || strings.Join(it.Categories, "|") != tt.genres {
				t.Errorf("movie %s: %q %q, want %q %q", tt.id, it.Title, it.Categories, tt.title, tt.genres)
			}
			if len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], tt.warned) {
				t.Errorf("warnings = %q, want one about %s", rep.Warnings, tt.warned)
			}
		})
	}
	tab, _ := fxRun(t, "movielens", Options{}, fxDir("movielens", "ml-latest-small"))
	if it := fxItem(t, tab, "176601"); len(it.Categories) != 0 || it.Idx != 3 {
		t.Errorf("176601 (no genres listed, metadata only) = %s", fxItemText(it))
	}
	if it := fxItem(t, tab, "4973"); it.Title != amelie {
		t.Errorf("4973 = %q", it.Title)
	}
}

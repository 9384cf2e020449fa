package ingest

import (
	"bytes"
	"context"
	"strconv"
	"strings"
)

// Netflix Prize data ("netflix").
//
// Interactions: combined_data_<n>.txt (the Kaggle release) and the original
// training_set/mv_<MovieID>.txt files, both blocks of a "MovieID:" line
// followed by "CustomerID,Rating,YYYY-MM-DD" lines; the date becomes Unix
// seconds at 00:00 UTC.
//
// Titles: movie_titles.csv (or the original movie_titles.txt), ISO-8859-1,
// "MovieID,YearOfRelease,Title", split on the first two commas only (titles
// contain commas); the year may be NULL. Title = title, Text = "year: 2003".
//
// LLMRec's item_attribute.csv ("id,year,title", no header, written by
// pandas) keys LLMRec's own dense item indices, not MovieIDs. It is read only
// when no Netflix interaction or title file is given: its ids then become the
// item indices (index = id), so the items line up with LLMRec's interaction
// files and feature rows. Next to Netflix interactions or titles it is
// ignored with a warning, since its ids would silently name the wrong movies.
//
// probe.txt, qualifying.txt, README and rmse.pl are ignored with a warning.

type netflixFormat struct{}

const (
	nfRatings = iota
	nfTitles
	nfLLMRec
)

// Name is the --format value.
func (netflixFormat) Name() string { return "netflix" }

// Describe says what files the format reads.
func (netflixFormat) Describe() string {
	return "Netflix Prize: combined_data_*.txt or mv_*.txt (MovieID: then CustomerID,Rating,Date), movie_titles.csv (ISO-8859-1); or LLMRec's item_attribute.csv alone"
}

// NewBuilder indexes users and items by first appearance.
func (netflixFormat) NewBuilder() *Builder { return NewBuilder(false, false) }

// Read ingests the Netflix files.
func (netflixFormat) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var in []inputFile
	var llmrec []string
	native := false
	for _, p := range files {
		name := strings.ToLower(baseName(p))
		switch {
		case strings.HasPrefix(name, "combined_data") && strings.HasSuffix(name, ".txt"),
			strings.HasPrefix(name, "mv_") && strings.HasSuffix(name, ".txt"):
			in = append(in, inputFile{path: p, kind: nfRatings})
			native = true
		case name == "movie_titles.csv" || name == "movie_titles.txt":
			in = append(in, inputFile{path: p, kind: nfTitles, stage: 1})
			native = true
		case name == "item_attribute.csv":
			llmrec = append(llmrec, p)
		case name == "probe.txt", name == "qualifying.txt", strings.HasPrefix(name, "readme"), name == "rmse.pl":
			b.Report.warnf("%s: not read (Netflix Prize probe/qualifying sets and documentation are not interactions)", p)
		default:
			return badf(p, 0, "not a Netflix file: expected combined_data_<n>.txt, mv_<MovieID>.txt, movie_titles.csv or LLMRec's item_attribute.csv")
		}
	}
	for _, p := range llmrec {
		if native {
			b.Report.warnf("%s: ignored: LLMRec's item_attribute.csv keys LLMRec's item indices, not the MovieIDs of the Netflix files given with it", p)
			continue
		}
		in = append(in, inputFile{path: p, kind: nfLLMRec, stage: 1})
	}
	for _, f := range byStage(in) {
		var err error
		switch f.kind {
		case nfRatings:
			err = readNetflixRatings(ctx, f.path, b, opts)
		case nfTitles:
			err = readNetflixTitles(ctx, f.path, b, opts)
		case nfLLMRec:
			err = readLLMRecAttributes(ctx, f.path, b, opts)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readNetflixRatings reads one combined_data or mv_ file.
func readNetflixRatings(ctx context.Context, path string, b *Builder, opts *Options) error {
	var movie []byte // a fresh copy per movie: queued rows keep pointing at it
	var f [4][]byte
	bt := newBatcher(b)
	first := true
	return eachChunkLine(ctx, path, "interactions", opts, b.Report, func(lr *lineReader, line []byte) error {
		if first {
			first = false
			b.Inter.Grow(estimateRows(path, 24))
		}
		if len(line) == 0 {
			return nil
		}
		if line[len(line)-1] == ':' {
			id := line[:len(line)-1]
			if _, ok := parseIntFast(id); !ok || len(id) == 0 {
				movie = nil
				return lr.Bad("expected a \"MovieID:\" line, found %.40q", line)
			}
			movie = bytes.Clone(id)
			return nil
		}
		if len(movie) == 0 {
			return lr.Bad("expected a \"MovieID:\" line before the ratings")
		}
		if splitFields(line, ',', f[:]) != 3 {
			return lr.Bad("expected CustomerID,Rating,YYYY-MM-DD")
		}
		if _, ok := parseIntFast(f[0]); !ok {
			return lr.Bad("expected a numeric CustomerID, found %.40q", f[0])
		}
		r, ok := parseFloatFast(f[1])
		if !ok {
			return lr.Bad("expected a numeric rating, found %.40q", f[1])
		}
		ts, ok := parseDateUnix(f[2])
		if !ok {
			return lr.Bad("expected a date YYYY-MM-DD, found %.40q", f[2])
		}
		bt.add(f[0], movie, float32(r), ts)
		return nil
	}, bt.flush)
}

// readNetflixTitles reads movie_titles.csv.
func readNetflixTitles(ctx context.Context, path string, b *Builder, opts *Options) error {
	return eachLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		id, year, title, ok := cut3(line)
		if !ok {
			return lr.Bad("expected MovieID,YearOfRelease,Title")
		}
		if _, ok := parseIntFast(id); !ok {
			if lr.Line() == 1 {
				return nil // a header
			}
			return lr.Bad("expected a numeric MovieID, found %.40q", id)
		}
		text, ok := yearText(year)
		if !ok {
			return lr.Bad("expected a year or NULL, found %.40q", year)
		}
		it := b.ItemMeta(string(id))
		setText(&it.Title, strings.TrimSpace(decodeText(title)))
		setText(&it.Text, text)
		return nil
	})
}

// cut3 splits "a,b,rest" on the first two commas.
func cut3(line []byte) (a, b, rest []byte, ok bool) {
	a, r, ok1 := bytes.Cut(line, []byte{','})
	b, rest, ok2 := bytes.Cut(r, []byte{','})
	return a, b, rest, ok1 && ok2
}

// yearText turns a release year ("2003", "2003.0", "NULL", "") into the Text
// field ("year: 2003", or "" when unknown).
func yearText(year []byte) (string, bool) {
	year = bytes.TrimSpace(year)
	switch string(year) {
	case "NULL", "", "nan", "NaN", "None":
		return "", true
	}
	f, ok := parseFloatFast(year)
	if !ok || f < 1000 || f > 9999 || f != float64(int(f)) {
		return "", false
	}
	return "year: " + strconv.Itoa(int(f)), true
}

// readLLMRecAttributes reads LLMRec's netflix item_attribute.csv: id = the
// dense item index, bound as the index.
func readLLMRecAttributes(ctx context.Context, path string, b *Builder, opts *Options) error {
	var scratch [][]byte
	return eachLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		id, year, rest, ok := cut3(line)
		if !ok {
			return lr.Bad("expected id,year,title")
		}
		n, ok := parseIntFast(id)
		if !ok || n < 0 || n > 1<<31-1 {
			if lr.Line() == 1 {
				return nil // a header
			}
			return lr.Bad("expected a non-negative item index, found %.40q", id)
		}
		title := rest
		if len(rest) > 0 && rest[0] == '"' {
			var ok bool
			scratch, ok = splitCSVQuoted(rest, scratch)
			if !ok || len(scratch) != 1 {
				return lr.Bad("malformed quoted title")
			}
			title = scratch[0]
		}
		text, ok := yearText(year)
		if !ok {
			return lr.Bad("expected a year or NULL, found %.40q", year)
		}
		raw := string(id)
		if _, err := b.Items.Set(int32(n), raw); err != nil {
			return lr.Bad("%v", err)
		}
		it := b.ItemMeta(raw)
		setText(&it.Title, strings.TrimSpace(decodeText(title)))
		setText(&it.Text, text)
		return nil
	})
}

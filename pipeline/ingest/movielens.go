package ingest

import (
	"bytes"
	"context"
	"strings"
	"unicode/utf8"
)

// MovieLens (GroupLens) releases ("movielens").
//
// ml-100k: u.data ("user<TAB>item<TAB>rating<TAB>time"), u.item
// ("id|title|release date|video release date|IMDb URL|19 genre flags",
// ISO-8859-1), u.genre ("name|index", optional: the standard 19 names
// otherwise). u.user, u.info, u.occupation and the split files u1.base …
// ub.test (subsets of u.data) are ignored with a warning.
//
// ml-1m, ml-10m: ratings.dat ("UserID::MovieID::Rating::Timestamp"),
// movies.dat ("MovieID::Title::Genres", genres split on '|'; ml-1m is
// ISO-8859-1 and ml-10m UTF-8: each line is taken as UTF-8 when valid, else
// decoded as ISO-8859-1). users.dat and tags.dat are ignored with a warning.
//
// ml-latest(-small), ml-20m, ml-25m: ratings.csv (header
// userId,movieId,rating,timestamp), movies.csv (header movieId,title,genres;
// quoted CSV). links.csv, tags.csv and the genome files are ignored with a
// warning.
//
// Title = title (with its year, as the source writes it), Categories = the
// genres ("(no genres listed)" and ml-100k's "unknown" flag give none).

type movielensFormat struct{}

const (
	mlUData = iota
	mlRatingsDat
	mlRatingsCSV
	mlGenre
	mlUItem
	mlMoviesDat
	mlMoviesCSV
)

// ml100kGenres are the genre columns of u.item, in order, when no u.genre is
// given.
var ml100kGenres = []string{"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
	"Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
	"Thriller", "War", "Western"}

// isML100kSplit reports whether name is an ml-100k split file (u1.base …
// ub.test).
func isML100kSplit(name string) bool {
	return len(name) == 7 && name[0] == 'u' && strings.IndexByte("12345ab", name[1]) >= 0 &&
		(name[2:] == ".base" || name[2:] == ".test")
}

// Name is the --format value.
func (movielensFormat) Name() string { return "movielens" }

// Describe says what files the format reads.
func (movielensFormat) Describe() string {
	return "MovieLens: ml-100k u.data/u.item/u.genre, ml-1m/10m ratings.dat/movies.dat, ml-latest/20m/25m ratings.csv/movies.csv"
}

// NewBuilder indexes users and items by first appearance.
func (movielensFormat) NewBuilder() *Builder { return NewBuilder(false, false) }

// Read ingests the MovieLens files.
func (movielensFormat) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var in []inputFile
	for _, p := range files {
		name := strings.ToLower(baseName(p))
		switch {
		case name == "u.data":
			in = append(in, inputFile{path: p, kind: mlUData})
		case name == "ratings.dat":
			in = append(in, inputFile{path: p, kind: mlRatingsDat})
		case name == "ratings.csv":
			in = append(in, inputFile{path: p, kind: mlRatingsCSV})
		case name == "u.genre":
			in = append(in, inputFile{path: p, kind: mlGenre})
		case name == "u.item":
			in = append(in, inputFile{path: p, kind: mlUItem, stage: 1})
		case name == "movies.dat":
			in = append(in, inputFile{path: p, kind: mlMoviesDat, stage: 1})
		case name == "movies.csv":
			in = append(in, inputFile{path: p, kind: mlMoviesCSV, stage: 1})
		case name == "tags.dat", name == "tags.csv":
			b.Report.warnf("%s: not read (tags are not imported)", p)
		case isML100kSplit(name):
			b.Report.warnf("%s: not read (an ml-100k split file; its rows are in u.data)", p)
		case name == "u.user", name == "users.dat", name == "u.info", name == "u.occupation", name == "links.csv",
			strings.HasPrefix(name, "genome-"), strings.HasPrefix(name, "readme"),
			strings.HasSuffix(name, ".pl"), strings.HasSuffix(name, ".sh"):
			b.Report.warnf("%s: not read (user demographics, links, genome scores and documentation are not imported)", p)
		default:
			return badf(p, 0, "not a MovieLens file: expected u.data/u.item/u.genre (ml-100k), ratings.dat/movies.dat (ml-1m, ml-10m) or ratings.csv/movies.csv (ml-latest, ml-20m, ml-25m)")
		}
	}
	genres := ml100kGenres
	for _, f := range byStage(in) {
		var err error
		switch f.kind {
		case mlUData:
			err = readMLRatings(ctx, f.path, b, opts, []byte{'\t'}, "user<TAB>item<TAB>rating<TAB>timestamp")
		case mlRatingsDat:
			err = readMLRatings(ctx, f.path, b, opts, []byte("::"), "UserID::MovieID::Rating::Timestamp")
		case mlRatingsCSV:
			err = readMLRatings(ctx, f.path, b, opts, []byte{','}, "userId,movieId,rating,timestamp")
		case mlGenre:
			genres, err = readMLGenres(ctx, f.path, b, opts)
		case mlUItem:
			err = readMLUItem(ctx, f.path, b, opts, genres)
		case mlMoviesDat:
			err = readMLMovies(ctx, f.path, b, opts, false)
		case mlMoviesCSV:
			err = readMLMovies(ctx, f.path, b, opts, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// splitSep splits line at sep into dst (reused), at most len(dst) fields.
func splitSep(line, sep []byte, dst [][]byte) int {
	if len(sep) == 1 {
		return splitFields(line, sep[0], dst)
	}
	n := 0
	for n < len(dst)-1 {
		k := bytes.Index(line, sep)
		if k < 0 {
			break
		}
		dst[n] = line[:k]
		line = line[k+len(sep):]
		n++
	}
	dst[n] = line
	return n + 1
}

// readMLRatings reads user, item, rating, timestamp lines; a header line is
// skipped.
func readMLRatings(ctx context.Context, path string, b *Builder, opts *Options, sep []byte, layout string) error {
	var f [5][]byte
	bt := newBatcher(b)
	first := true
	return eachChunkLine(ctx, path, "interactions", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(line) == 0 {
			return nil
		}
		if first {
			first = false
			b.Inter.Grow(estimateRows(path, len(line)+1))
		}
		if splitSep(line, sep, f[:]) != 4 {
			return lr.Bad("expected %s", layout)
		}
		r, ok := parseFloatFast(f[2])
		if !ok {
			if lr.Line() == 1 {
				return nil // header
			}
			return lr.Bad("expected a numeric rating, found %.40q", f[2])
		}
		ts, ok := parseIntFast(f[3])
		if !ok {
			return lr.Bad("expected a Unix timestamp, found %.40q", f[3])
		}
		if len(f[0]) == 0 || len(f[1]) == 0 || !utf8.Valid(f[0]) || !utf8.Valid(f[1]) {
			return lr.Bad("expected non-empty user and item ids")
		}
		bt.add(f[0], f[1], float32(r), ts)
		return nil
	}, bt.flush)
}

// readMLGenres reads u.genre ("name|index") into the genre column names.
func readMLGenres(ctx context.Context, path string, b *Builder, opts *Options) ([]string, error) {
	var genres []string
	err := eachLine(ctx, path, "genres", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		name, idx, ok := bytes.Cut(line, []byte{'|'})
		n, ok2 := parseIntFast(bytes.TrimSpace(idx))
		if !ok || !ok2 || n < 0 || n > 1000 {
			return lr.Bad("expected genre|index")
		}
		for int(n) >= len(genres) {
			genres = append(genres, "")
		}
		genres[n] = decodeText(bytes.TrimSpace(name))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(genres) == 0 {
		return ml100kGenres, nil
	}
	return genres, nil
}

// readMLUItem reads ml-100k's u.item.
func readMLUItem(ctx context.Context, path string, b *Builder, opts *Options, genres []string) error {
	fields := make([][]byte, 5+len(genres)+1)
	return eachLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		n := splitFields(line, '|', fields)
		if n != 5+len(genres) {
			return lr.Bad("expected id|title|release date|video release date|IMDb URL|%d genre flags, found %s fields", len(genres), fieldCount(n, len(fields)))
		}
		id := bytes.TrimSpace(fields[0])
		if len(id) == 0 {
			return lr.Bad("empty movie id")
		}
		it := b.ItemMeta(string(id))
		setText(&it.Title, strings.TrimSpace(decodeText(fields[1])))
		for g, flag := range fields[5 : 5+len(genres)] {
			switch string(bytes.TrimSpace(flag)) {
			case "1":
				if genres[g] != "unknown" {
					it.Categories = appendUnique(it.Categories, genres[g])
				}
			case "0":
			default:
				return lr.Bad("expected genre flags 0 or 1, found %.20q", flag)
			}
		}
		return nil
	})
}

// readMLMovies reads movies.dat ("::"-separated, UTF-8 or ISO-8859-1) or
// movies.csv (quoted CSV with a header).
func readMLMovies(ctx context.Context, path string, b *Builder, opts *Options, csv bool) error {
	var f [4][]byte
	var quoted [][]byte
	return eachLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var id, title, genres []byte
		if csv {
			var ok bool
			quoted, ok = splitCSVLine(line, quoted)
			if !ok || len(quoted) != 3 {
				return lr.Bad("expected movieId,title,genres")
			}
			id, title, genres = quoted[0], quoted[1], quoted[2]
			if lr.Line() == 1 && isHeaderName(id, "movieid", "movie_id", "id") {
				return nil
			}
		} else {
			if splitSep(line, []byte("::"), f[:]) != 3 {
				return lr.Bad("expected MovieID::Title::Genres")
			}
			id, title, genres = f[0], f[1], f[2]
		}
		id = bytes.TrimSpace(id)
		if len(id) == 0 || !utf8.Valid(id) {
			return lr.Bad("empty or malformed movie id")
		}
		if csv && !utf8.Valid(line) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		it := b.ItemMeta(string(id))
		setText(&it.Title, strings.TrimSpace(decodeText(title)))
		for g := range strings.SplitSeq(decodeText(genres), "|") {
			if g = strings.TrimSpace(g); g != "" && g != "(no genres listed)" {
				it.Categories = appendUnique(it.Categories, g)
			}
		}
		return nil
	})
}

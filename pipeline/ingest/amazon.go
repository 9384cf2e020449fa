package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Amazon review data (J. McAuley's releases).
//
// 2014 ("amazon2014"): reviews_<Cat>[_5].json[.gz] (also item_dedup.json,
// user_dedup.json, kcore_5.json) hold one JSON review per line (reviewerID,
// asin, overall, unixReviewTime, reviewTime, ...); ratings_<Cat>.csv holds
// user,item,rating,timestamp; meta_<Cat>.json[.gz] (or metadata.json) holds
// one Python dict literal per line (asin, title, price, imUrl, categories as
// a list of lists, brand, description, related, salesRank).
//
// 2018 ("amazon2018"): <Cat>[_5].json[.gz] JSON reviews with the same keys,
// <Cat>.csv ratings as item,user,rating,timestamp (no header), and
// meta_<Cat>.json[.gz] JSON lines (asin, title, description and category as
// lists, brand, imageURL, imageURLHighRes, price as "$12.99").
//
// Both read every interaction file before any metadata file, so indices
// follow first appearance in the interactions; items known only from
// metadata are appended by Builder.Finish, ordered by ASIN.

type amazon2014Format struct{}

type amazon2018Format struct{}

// File kinds of the Amazon readers.
const (
	amzReviews = iota
	amzRatingsUserItem
	amzRatingsItemUser
	amzMeta2014
	amzMeta2018
	amzIgnored
)

// Name is the --format value.
func (amazon2014Format) Name() string { return "amazon2014" }

// Describe says what files the format reads.
func (amazon2014Format) Describe() string {
	return "Amazon reviews 2014: reviews_<Cat>[_5].json[.gz] (JSON lines), ratings_<Cat>.csv (user,item,rating,time), meta_<Cat>.json[.gz] (Python dict literals)"
}

// NewBuilder indexes users and items by first appearance.
func (amazon2014Format) NewBuilder() *Builder { return NewBuilder(false, false) }

// Read ingests the 2014 files.
func (amazon2014Format) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var in []inputFile
	for _, p := range files {
		name := baseName(p)
		lower := strings.ToLower(name)
		switch {
		case strings.HasPrefix(lower, "meta_") && strings.HasSuffix(lower, ".json"), lower == "metadata.json":
			in = append(in, inputFile{path: p, kind: amzMeta2014, stage: 1})
		case strings.HasPrefix(lower, "reviews_") && strings.HasSuffix(lower, ".json"),
			lower == "item_dedup.json", lower == "user_dedup.json", lower == "aggressive_dedup.json", lower == "kcore_5.json":
			in = append(in, inputFile{path: p, kind: amzReviews})
		case strings.HasPrefix(lower, "ratings_") && strings.HasSuffix(lower, ".csv"):
			in = append(in, inputFile{path: p, kind: amzRatingsUserItem})
		case strings.HasPrefix(lower, "image_features_"), strings.HasPrefix(lower, "qa_"):
			b.Report.warnf("%s: not read (image features and Q&A files are not imported)", p)
		default:
			return badf(p, 0, "not an Amazon 2014 file: expected reviews_<Cat>[_5].json[.gz], ratings_<Cat>.csv or meta_<Cat>.json[.gz]")
		}
	}
	return readAmazon(ctx, byStage(in), b, opts)
}

// Name is the --format value.
func (amazon2018Format) Name() string { return "amazon2018" }

// Describe says what files the format reads.
func (amazon2018Format) Describe() string {
	return "Amazon reviews 2018: <Cat>[_5].json[.gz] (JSON lines), <Cat>.csv (item,user,rating,time), meta_<Cat>.json[.gz] (JSON lines)"
}

// NewBuilder indexes users and items by first appearance.
func (amazon2018Format) NewBuilder() *Builder { return NewBuilder(false, false) }

// Read ingests the 2018 files.
func (amazon2018Format) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var in []inputFile
	for _, p := range files {
		name := baseName(p)
		lower := strings.ToLower(name)
		switch {
		case strings.HasPrefix(lower, "qa_"):
			b.Report.warnf("%s: not read (Q&A files are not imported)", p)
		case strings.HasPrefix(lower, "meta_") && strings.HasSuffix(lower, ".json"):
			in = append(in, inputFile{path: p, kind: amzMeta2018, stage: 1})
		case strings.HasSuffix(lower, ".json"):
			in = append(in, inputFile{path: p, kind: amzReviews})
		case strings.HasSuffix(lower, ".csv"):
			in = append(in, inputFile{path: p, kind: amzRatingsItemUser})
		default:
			return badf(p, 0, "not an Amazon 2018 file: expected <Cat>[_5].json[.gz] (reviews), <Cat>.csv (ratings) or meta_<Cat>.json[.gz]")
		}
	}
	return readAmazon(ctx, byStage(in), b, opts)
}

func readAmazon(ctx context.Context, in []inputFile, b *Builder, opts *Options) error {
	for _, f := range in {
		var err error
		switch f.kind {
		case amzReviews:
			err = readAmazonReviews(ctx, f.path, b, opts)
		case amzRatingsUserItem:
			err = readRatingsCSV(ctx, f.path, b, opts, 0, 1)
		case amzRatingsItemUser:
			err = readRatingsCSV(ctx, f.path, b, opts, 1, 0)
		case amzMeta2014:
			err = readAmazonMeta(ctx, f.path, b, opts, false)
		case amzMeta2018:
			err = readAmazonMeta(ctx, f.path, b, opts, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// reviewKeys are the review fields read; the others are skipped unparsed.
var reviewKeys = []string{"reviewerID", "asin", "overall", "unixReviewTime", "reviewTime"}

// readAmazonReviews reads JSON-lines reviews (both releases).
func readAmazonReviews(ctx context.Context, path string, b *Builder, opts *Options) error {
	var p pyParser
	spans := make([][]byte, len(reviewKeys))
	bt := newBatcher(b)
	return eachChunkLine(ctx, path, "interactions", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		if !utf8.Valid(line) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		if err := p.spans(line, reviewKeys, spans); err != nil {
			return lr.Bad("expected one JSON review object per line: %v", err)
		}
		user, err1 := spanBytes(spans[0])
		item, err2 := spanBytes(spans[1])
		if err1 != nil || err2 != nil || len(user) == 0 || len(item) == 0 {
			return lr.Bad("expected string fields reviewerID and asin")
		}
		rating := nan32
		if spans[2] != nil && string(spans[2]) != "null" {
			f, ok := spanFloat(spans[2])
			if !ok {
				return lr.Bad("expected a number for overall, found %.40s", spans[2])
			}
			rating = float32(f)
		}
		var ts int64
		switch {
		case spans[3] != nil:
			f, ok := spanFloat(spans[3])
			if !ok {
				return lr.Bad("expected a number for unixReviewTime, found %.40s", spans[3])
			}
			ts = int64(f)
		case spans[4] != nil:
			s, _ := spanBytes(spans[4])
			t, ok := parseReviewTime(s)
			if !ok {
				return lr.Bad("expected reviewTime as \"MM DD, YYYY\", found %.40q", s)
			}
			ts = t
		}
		bt.add(user, item, rating, ts)
		return nil
	}, bt.flush)
}

// parseReviewTime parses Amazon's "09 13, 2009" (month day, year) into Unix
// seconds UTC.
func parseReviewTime(s []byte) (int64, bool) {
	s = bytes.TrimSpace(s)
	sp := bytes.IndexByte(s, ' ')
	cm := bytes.IndexByte(s, ',')
	if sp < 0 || cm < sp {
		return 0, false
	}
	m, ok1 := parseIntFast(s[:sp])
	d, ok2 := parseIntFast(bytes.TrimSpace(s[sp+1 : cm]))
	y, ok3 := parseIntFast(bytes.TrimSpace(s[cm+1:]))
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d) * 86400, true
}

// readRatingsCSV reads a headerless ratings CSV (user/item in the given
// columns, then rating and Unix time) on the fast path: fields are split on
// the raw line, numbers parsed without allocation, and each block of rows
// indexed with Builder.AddBatch (users and items on two goroutines). A
// header line (non-numeric rating on line 1) is skipped.
func readRatingsCSV(ctx context.Context, path string, b *Builder, opts *Options, userCol, itemCol int) error {
	c := ratingsCSV{userCol: userCol, itemCol: itemCol}
	first := true
	bt := newBatcher(b)
	return eachChunkLine(ctx, path, "interactions", opts, b.Report, func(lr *lineReader, line []byte) error {
		if first {
			first = false
			b.Inter.Grow(estimateRows(path, len(line)+1))
		}
		user, item, rating, ts, ok, err := c.parse(lr, line)
		if !ok {
			return err
		}
		bt.add(user, item, rating, ts)
		return nil
	}, bt.flush)
}

// ratingsCSV parses the lines of a ratings CSV.
type ratingsCSV struct {
	userCol, itemCol int
	fields           [5][]byte
	quoted           [][]byte
}

// parse splits one line. ok is false for a line to skip (blank, a header,
// or a bad line within the --max-bad-lines budget; err is set when the
// budget is exhausted).
func (c *ratingsCSV) parse(lr *lineReader, line []byte) (user, item []byte, rating float32, ts int64, ok bool, err error) {
	f := c.fields[:]
	n := 0
	if bytes.IndexByte(line, '"') < 0 {
		n = splitFields(line, ',', f)
	} else {
		var ok bool
		c.quoted, ok = splitCSVQuoted(line, c.quoted)
		if !ok {
			return nil, nil, 0, 0, false, lr.Bad("unterminated quoted field")
		}
		n = min(copy(f, c.quoted), len(f))
	}
	if n != 4 {
		if n == 1 && len(bytes.TrimSpace(line)) == 0 {
			return nil, nil, 0, 0, false, nil
		}
		return nil, nil, 0, 0, false, lr.Bad("expected 4 comma-separated fields (%s), found %s", ratingsLayout(c.userCol), fieldCount(n, len(f)))
	}
	r, ok := parseFloatFast(f[2])
	if !ok {
		if lr.Line() == 1 {
			return nil, nil, 0, 0, false, nil // a header
		}
		return nil, nil, 0, 0, false, lr.Bad("expected a numeric rating in field 3, found %.40q", f[2])
	}
	ts, ok = parseIntFast(f[3])
	if !ok {
		fl, ok2 := parseFloatFast(f[3])
		if !ok2 {
			return nil, nil, 0, 0, false, lr.Bad("expected a Unix timestamp in field 4, found %.40q", f[3])
		}
		ts = int64(fl)
	}
	user, item = f[c.userCol], f[c.itemCol]
	if len(user) == 0 || len(item) == 0 {
		return nil, nil, 0, 0, false, lr.Bad("empty user or item id")
	}
	if !utf8.Valid(user) || !utf8.Valid(item) {
		return nil, nil, 0, 0, false, lr.Bad("expected UTF-8 text (wrong encoding?)")
	}
	return user, item, float32(r), ts, true, nil
}

func ratingsLayout(userCol int) string {
	if userCol == 0 {
		return "user,item,rating,timestamp"
	}
	return "item,user,rating,timestamp"
}

func fieldCount(n, max int) string {
	if n >= max {
		return fmt.Sprintf("%d or more", n)
	}
	return strconv.Itoa(n)
}

// Metadata keys read by readAmazonMeta.
var (
	meta2014Keys = []string{"asin", "title", "description", "categories", "brand", "imUrl", "price"}
	meta2018Keys = []string{"asin", "title", "description", "category", "brand", "imageURL", "imageURLHighRes", "price"}
)

// readAmazonMeta reads metadata lines: Python dict literals (2014) or JSON
// (2018); the parser takes both.
func readAmazonMeta(ctx context.Context, path string, b *Builder, opts *Options, v2018 bool) error {
	var p pyParser
	keys, want := meta2014Keys, "a Python dict literal"
	if v2018 {
		keys, want = meta2018Keys, "a JSON object"
	}
	return eachChunkLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		if !utf8.Valid(line) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		m, err := p.topDict(line, keys)
		if err != nil {
			return lr.Bad("expected %s per line: %v", want, err)
		}
		asin := pyText(m["asin"])
		if asin == "" {
			return lr.Bad("expected an 'asin' key")
		}
		it := b.ItemMeta(asin)
		setText(&it.Title, cleanHTML(pyText(m["title"])))
		setText(&it.Brand, cleanHTML(pyText(m["brand"])))
		if v2018 {
			setText(&it.Description, cleanHTML(strings.Join(pyStrings(m["description"], nil), " ")))
			for _, c := range pyStrings(m["category"], nil) {
				it.Categories = appendUnique(it.Categories, cleanHTML(c))
			}
			it.ImageURLs = appendUnique(it.ImageURLs, pyStrings(m["imageURLHighRes"], nil)...)
			it.ImageURLs = appendUnique(it.ImageURLs, pyStrings(m["imageURL"], nil)...)
		} else {
			setText(&it.Description, cleanHTML(pyText(m["description"])))
			it.Categories = appendUnique(it.Categories, pyStrings(m["categories"], nil)...)
			it.ImageURLs = appendUnique(it.ImageURLs, strings.TrimSpace(pyText(m["imUrl"])))
		}
		if pr := parsePrice(m["price"]); !math.IsNaN(pr) {
			it.Price = pr
		}
		return nil
	}, nil)
}

// setText sets *dst to s unless s is empty (a later record fills gaps and
// overrides with non-empty values).
func setText(dst *string, s string) {
	if s != "" {
		*dst = s
	}
}

// pyText returns a parsed scalar as text ("" for None, lists and dicts).
func pyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return ""
}

// pyStrings flattens nested lists of strings into dst, in order.
func pyStrings(v any, dst []string) []string {
	switch x := v.(type) {
	case string:
		if s := strings.TrimSpace(x); s != "" {
			dst = append(dst, s)
		}
	case []any:
		for _, e := range x {
			dst = pyStrings(e, dst)
		}
	}
	return dst
}

// parsePrice reads a price: a number, or a string such as "$1,299.00".
// Ranges ("$10.99 - $15.99"), empty strings and other text give NaN.
func parsePrice(v any) float64 {
	switch x := v.(type) {
	case float64:
		if x >= 0 && !math.IsInf(x, 0) {
			return x
		}
	case int64:
		if x >= 0 {
			return float64(x)
		}
	case string:
		s := strings.TrimSpace(x)
		s = strings.TrimPrefix(s, "$")
		s = strings.ReplaceAll(s, ",", "")
		if s == "" || len(s) > 20 {
			return math.NaN()
		}
		f, err := strconv.ParseFloat(s, 64)
		if err == nil && f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return math.NaN()
}

package ingest

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// bilibili / NineRec data as used by PMMRec ("bilibili").
//
// Behaviours: <DS>_users.tsv (PMMRec) or <DS>_behaviour.tsv (NineRec), one
// user per line, "user<TAB>item item item ...", oldest first. There are no
// times: the timestamp is the item's position in the user's line (0, 1, 2,
// ...), and the rating is NaN (implicit feedback).
//
// Texts: <DS>_items_texts.tsv, "item<TAB>title" (exactly two fields), and
// NineRec's <DS>_item.csv, "item,Chinese text,English text" (quoted CSV, an
// optional header): Title = the Chinese text, Text = the English text.
//
// Covers: any .jpg/.jpeg/.png file whose name without extension is an item id
// (NineRec's <DS>_cover/<id>.jpg; PMMRec's "v"-stripped numeric names are
// matched to "v<id>" items too) sets that item's ImageURLs to file://<absolute
// path>. A cover is used for an item of the behaviour or text files; covers of
// other items are ignored and counted in a warning. The report lists each
// cover folder once, with the number of images.
//
// NineRec's <DS>_pair.csv and PMMRec's pickled-image LMDB (data.mdb,
// lock.mdb) are ignored with a warning.

type bilibiliFormat struct{}

const (
	biBehaviour = iota
	biTexts
	biItemCSV
	biCover
)

// Name is the --format value.
func (bilibiliFormat) Name() string { return "bilibili" }

// Describe says what files the format reads.
func (bilibiliFormat) Describe() string {
	return "PMMRec/NineRec bilibili: *_users.tsv or *_behaviour.tsv (user<TAB>items), *_items_texts.tsv (item<TAB>title), *_item.csv (id,zh,en), cover images <id>.jpg"
}

// NewBuilder indexes users and items by first appearance.
func (bilibiliFormat) NewBuilder() *Builder { return NewBuilder(false, false) }

// nameIs reports whether name is want or ends in "_"+want.
func nameIs(name string, want ...string) bool {
	for _, w := range want {
		if name == w || strings.HasSuffix(name, "_"+w) {
			return true
		}
	}
	return false
}

// Read ingests the bilibili files.
func (bilibiliFormat) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var in []inputFile
	var covers []string
	for _, p := range files {
		name := strings.ToLower(baseName(p))
		switch {
		case nameIs(name, "users.tsv", "behaviour.tsv", "behaviours.tsv", "behavior.tsv", "behaviors.tsv"):
			in = append(in, inputFile{path: p, kind: biBehaviour})
		case nameIs(name, "texts.tsv"):
			in = append(in, inputFile{path: p, kind: biTexts, stage: 1})
		case nameIs(name, "item.csv", "items.csv"):
			in = append(in, inputFile{path: p, kind: biItemCSV, stage: 1})
		case isImageName(name):
			covers = append(covers, p)
		case nameIs(name, "pair.csv", "pairs.csv"), strings.HasSuffix(name, ".mdb"), strings.HasSuffix(name, ".lmdb"):
			b.Report.warnf("%s: not read (NineRec pair files and PMMRec's pickled-image LMDB are not imported; give the cover folder instead)", p)
		default:
			return badf(p, 0, "not a bilibili/NineRec file: expected <DS>_users.tsv or <DS>_behaviour.tsv, <DS>_items_texts.tsv, <DS>_item.csv or <id>.jpg/.png covers")
		}
	}
	for _, f := range byStage(in) {
		var err error
		switch f.kind {
		case biBehaviour:
			err = readBehaviours(ctx, f.path, b, opts)
		case biTexts:
			err = readItemTexts(ctx, f.path, b, opts)
		case biItemCSV:
			err = readNineRecItems(ctx, f.path, b, opts)
		}
		if err != nil {
			return err
		}
	}
	return attachCovers(ctx, covers, b)
}

// readBehaviours reads user<TAB>item item ... lines.
func readBehaviours(ctx context.Context, path string, b *Builder, opts *Options) error {
	bt := newBatcher(b)
	return eachChunkLine(ctx, path, "interactions", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		user, items, ok := bytes.Cut(line, []byte{'\t'})
		if !ok || bytes.IndexByte(items, '\t') >= 0 || len(bytes.TrimSpace(user)) == 0 {
			return lr.Bad("expected user<TAB>space-separated items")
		}
		if lr.Line() == 1 && isHeaderName(user, "user", "user_id", "userid", "uid", "user_name", "username") {
			return nil
		}
		if !utf8.Valid(line) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		user = bytes.TrimSpace(user)
		var pos int64
		for len(items) > 0 {
			var it []byte
			it, items, _ = bytes.Cut(items, []byte{' '})
			if len(it) == 0 {
				continue
			}
			bt.add(user, it, nan32, pos)
			pos++
		}
		if pos == 0 {
			return lr.Bad("expected at least one item after the user")
		}
		return nil
	}, bt.flush)
}

// isHeaderName reports whether a first field is a column name.
func isHeaderName(field []byte, names ...string) bool {
	f := strings.ToLower(strings.TrimSpace(string(field)))
	for _, n := range names {
		if f == n {
			return true
		}
	}
	return false
}

// readItemTexts reads item<TAB>title lines.
func readItemTexts(ctx context.Context, path string, b *Builder, opts *Options) error {
	return eachLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		id, title, ok := bytes.Cut(line, []byte{'\t'})
		if !ok || bytes.IndexByte(title, '\t') >= 0 || len(bytes.TrimSpace(id)) == 0 {
			return lr.Bad("expected item<TAB>title (exactly two fields)")
		}
		if !utf8.Valid(line) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		it := b.ItemMeta(string(bytes.TrimSpace(id)))
		setText(&it.Title, strings.TrimSpace(string(title)))
		return nil
	})
}

// readNineRecItems reads NineRec's item CSV: id, Chinese text, English text.
// Quoted fields may span lines.
func readNineRecItems(ctx context.Context, path string, b *Builder, opts *Options) error {
	var rec []byte
	var fields [][]byte
	first := true
	return eachLine(ctx, path, "item metadata", opts, b.Report, func(lr *lineReader, line []byte) error {
		if len(rec) > 0 {
			rec = append(rec, '\n')
		} else if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		rec = append(rec, line...)
		if bytes.Count(rec, []byte{'"'})%2 == 1 { // a quoted field goes on
			if len(rec) > 1<<20 {
				rec = rec[:0]
				return lr.Bad("unterminated quoted field")
			}
			return nil
		}
		defer func() { rec = rec[:0] }()
		if !utf8.Valid(rec) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		var ok bool
		fields, ok = splitCSVLine(rec, fields)
		if !ok || len(fields) < 2 || len(fields) > 3 {
			return lr.Bad("expected item id,Chinese text,English text")
		}
		id := strings.TrimSpace(string(fields[0]))
		if first {
			first = false
			if isHeaderName(fields[0], "id", "item", "item_id", "itemid", "iid", "video_id", "videoid") {
				return nil
			}
		}
		if id == "" {
			return lr.Bad("empty item id")
		}
		it := b.ItemMeta(id)
		setText(&it.Title, strings.TrimSpace(string(fields[1])))
		if len(fields) == 3 {
			setText(&it.Text, strings.TrimSpace(string(fields[2])))
		}
		return nil
	})
}

// attachCovers points items at their cover images.
func attachCovers(ctx context.Context, covers []string, b *Builder) error {
	perDir := map[string]int{}
	var dirs []string
	unknown := 0
	var example string
	for k, p := range covers {
		if k&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		dir := filepath.Dir(p)
		if _, ok := perDir[dir]; !ok {
			dirs = append(dirs, dir)
		}
		perDir[dir]++
		raw, ok := coverItem(stripExt(filepath.Base(p)), b)
		if !ok {
			unknown++
			if example == "" {
				example = p
			}
			continue
		}
		it, ok := b.Meta[raw]
		if !ok {
			it = b.ItemMeta(raw)
		}
		it.ImageURLs = appendUnique(it.ImageURLs, "file://"+filepath.ToSlash(absPath(p)))
	}
	for _, d := range dirs {
		b.Report.Files = append(b.Report.Files, FileStat{Path: d, Role: "cover images", Lines: int64(perDir[d])})
	}
	if unknown > 0 {
		b.Report.warnf("%d cover images name no item of the behaviour or text files (first: %s); ignored", unknown, example)
	}
	return nil
}

// coverItem finds the item a cover's base name names: the id itself, or
// the PMMRec forms "v"+id and id without its "v".
func coverItem(name string, b *Builder) (string, bool) {
	for _, c := range []string{name, "v" + name, strings.TrimPrefix(name, "v")} {
		if c == "" {
			continue
		}
		if _, ok := b.Items.Lookup(c); ok {
			return c, true
		}
		if _, ok := b.Meta[c]; ok {
			return c, true
		}
	}
	return "", false
}

package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mmpipe/mmpipe/store"
)

// recboleFormat reads RecBole atomic files, including the UniSRec/MISSRec
// sequence layout:
//   - <ds>.train.inter / .valid.inter / .test.inter (user_id:token,
//     item_id_list:token_seq, item_id:token; tokens are dense indices; one
//     train row per prefix): the full sequences are rebuilt and the
//     leave-one-out split kept as the given split;
//   - or a general <ds>.inter (user_id, item_id, [rating], [timestamp]) with
//     raw tokens;
//   - <ds>.item2index / <ds>.user2index (raw id TAB index, no header);
//   - <ds>.text (item_id:token text:token_seq), <ds>.item (atomic item
//     features), <ds>.item.json ({"index": {title, description, brand,
//     categories}});
//   - <ds>.feat1CLS (text), .feat2CLS (word-dropped text), .feat3CLS
//     (image): headerless float32, --feat-dim wide.
type recboleFormat struct{}

func (recboleFormat) Name() string { return "recbole" }
func (recboleFormat) Describe() string {
	return "RecBole/UniSRec/MISSRec atomic files: .{train,valid,test}.inter or .inter, .item, .text, .item2index, .user2index, .feat1CLS/.feat2CLS/.feat3CLS (--feat-dim)"
}
func (recboleFormat) NewBuilder() *Builder { return NewBuilder(true, true) }

// featModality names the .feat*CLS files as MISSRec uses them.
var featModalities = map[string]string{".feat1CLS": "text", ".feat2CLS": "text_worddrop", ".feat3CLS": "image"}

func (recboleFormat) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var seq [3]string
	var general, idxMaps, texts, itemFiles, itemJSON, feats []string
	for _, f := range files {
		base := filepath.Base(f)
		switch {
		case strings.HasSuffix(base, ".train.inter"):
			seq[store.PartTrain] = f
		case strings.HasSuffix(base, ".valid.inter"):
			seq[store.PartValid] = f
		case strings.HasSuffix(base, ".test.inter"):
			seq[store.PartTest] = f
		case strings.HasSuffix(base, ".inter"):
			general = append(general, f)
		case strings.HasSuffix(base, ".item2index") || strings.HasSuffix(base, ".user2index"):
			idxMaps = append(idxMaps, f)
		case strings.HasSuffix(base, ".text"):
			texts = append(texts, f)
		case strings.HasSuffix(base, ".item"):
			itemFiles = append(itemFiles, f)
		case strings.HasSuffix(base, ".item.json"):
			itemJSON = append(itemJSON, f)
		case featModalities[filepath.Ext(base)] != "":
			feats = append(feats, f)
		case strings.HasSuffix(base, ".pt_datasets") || strings.HasSuffix(base, ".user") || strings.HasSuffix(base, ".yaml"):
			b.Report.warnf("%s: not read", f)
		default:
			return badf(f, 0, "unexpected file for --format recbole (want .inter, .{train,valid,test}.inter, .item, .text, .item2index, .user2index, .feat1CLS/.feat2CLS/.feat3CLS)")
		}
	}
	hasSeq := seq[0] != "" || seq[1] != "" || seq[2] != ""
	switch {
	case hasSeq && len(general) > 0:
		return badf(general[0], 0, "mixing a general .inter with .train/.valid/.test.inter sequence files")
	case hasSeq:
		if seq[store.PartTrain] == "" || seq[store.PartTest] == "" {
			return badf("--input", 0, "sequence layout needs at least <ds>.train.inter and <ds>.test.inter")
		}
		b.GivenSplit = "leave-one-out sequences (.train/.valid/.test.inter)"
		if err := readRecboleSeq(ctx, seq, b, opts); err != nil {
			return err
		}
	case len(general) == 1:
		b.Users, b.Items = NewIDMap(false), NewIDMap(false)
		if err := readRecboleGeneral(ctx, general[0], b, opts); err != nil {
			return err
		}
	case len(general) > 1:
		return badf(general[1], 0, "more than one general .inter file (first: %s)", general[0])
	default:
		return badf("--input", 0, "no .inter file among the inputs")
	}
	itemRaw := map[string]int32{} // from .item2index: raw id → index
	for _, f := range idxMaps {
		m, err := readIndexMap(ctx, f, b, opts)
		if err != nil {
			return err
		}
		if strings.HasSuffix(f, ".item2index") {
			itemRaw = m
		}
	}
	// Resolves an item token of a metadata file: a raw id through
	// .item2index, else an index (dense) or a raw token (general).
	resolve := func(tok string) (string, bool) {
		if i, ok := itemRaw[tok]; ok {
			return b.Items.ID(i), true
		}
		if b.Items.Dense() {
			n, err := strconv.ParseInt(tok, 10, 32)
			if err != nil || n < 0 || int(n) >= b.Items.Len() {
				return "", false
			}
			if id := b.Items.ID(int32(n)); id != "" {
				return id, true
			}
			return strconv.Itoa(int(n)), true // named by its number (Finish does the same)
		}
		return tok, true
	}
	for _, f := range texts {
		if err := readRecboleText(ctx, f, b, opts, resolve); err != nil {
			return err
		}
	}
	for _, f := range itemFiles {
		if err := readRecboleItem(ctx, f, b, opts, resolve); err != nil {
			return err
		}
	}
	for _, f := range itemJSON {
		if err := readItemJSON(f, b, resolve); err != nil {
			return err
		}
	}
	for _, f := range feats {
		if err := importFeatCLS(f, b, opts); err != nil {
			return err
		}
	}
	return nil
}

// recboleHeader parses a `name:type` header into name → column.
func recboleHeader(file string, line []byte) (map[string]int, error) {
	cols := map[string]int{}
	for i, f := range strings.Split(string(line), "\t") {
		name, typ, ok := strings.Cut(f, ":")
		if !ok {
			return nil, badf(file, 1, "header field %q is not name:type", f)
		}
		switch typ {
		case "token", "token_seq", "float", "float_seq":
		default:
			return nil, badf(file, 1, "header field %q has unknown type %q (want token, token_seq, float, float_seq)", f, typ)
		}
		cols[name] = i
	}
	return cols, nil
}

// openAtomic opens a RecBole atomic file and parses its header.
func openAtomic(ctx context.Context, f, role string, b *Builder, opts *Options) (*lineReader, map[string]int, error) {
	lr, err := openLines(ctx, f, role, opts, b.Report)
	if err != nil {
		return nil, nil, err
	}
	head, err := lr.Next()
	if err != nil {
		lr.Close()
		return nil, nil, badf(f, 1, "expected a name:type header: %v", err)
	}
	cols, err := recboleHeader(f, head)
	if err != nil {
		lr.Close()
		return nil, nil, err
	}
	return lr, cols, nil
}

type seqRow struct {
	hist   []int32
	target int32
	line   int64
}

func parseSeqRow(fields [][]byte, cu, ch, ct int) (u int32, r seqRow, err error) {
	if u, err = parseIdx(fields[cu]); err != nil {
		return
	}
	if r.target, err = parseIdx(fields[ct]); err != nil {
		return
	}
	for _, tok := range strings.Fields(string(fields[ch])) {
		v, e := parseIdx([]byte(tok))
		if e != nil {
			return 0, r, e
		}
		r.hist = append(r.hist, v)
	}
	return
}

// readRecboleSeq rebuilds each user's chronological sequence from the
// prefix rows. Train rows are ordered by history length (rows with the
// capped maximal length keep their position by file order, which lists
// longer prefixes first); each row's history must be the suffix of the
// sequence built so far, which the reader checks.
func readRecboleSeq(ctx context.Context, seq [3]string, b *Builder, opts *Options) error {
	var rows [3]map[int32][]seqRow
	for p, f := range seq {
		if f == "" {
			continue
		}
		rows[p] = map[int32][]seqRow{}
		lr, cols, err := openAtomic(ctx, f, store.PartName(int8(p)), b, opts)
		if err != nil {
			return err
		}
		cu, ok1 := cols["user_id"]
		ch, ok2 := cols["item_id_list"]
		ct, ok3 := cols["item_id"]
		if !ok1 || !ok2 || !ok3 {
			lr.Close()
			return badf(f, 1, "header must have user_id:token, item_id_list:token_seq and item_id:token")
		}
		err = lr.eachTabRow(len(cols), func(line []byte, fields [][]byte) error {
			u, r, err := parseSeqRow(fields, cu, ch, ct)
			if err != nil {
				return lr.Bad("expected integer user, item indices: %v", err)
			}
			r.line = lr.Line()
			rows[p][u] = append(rows[p][u], r)
			return nil
		})
		lr.Close()
		if err != nil {
			return err
		}
	}
	users := map[int32]bool{}
	for _, m := range rows {
		for u := range m {
			users[u] = true
		}
	}
	order := make([]int32, 0, len(users))
	for u := range users {
		order = append(order, u)
	}
	slices.Sort(order)
	nan := float32(math.NaN())
	suffixOK := func(s, h []int32) bool {
		return len(h) <= len(s) && slices.Equal(s[len(s)-len(h):], h)
	}
	for _, u := range order {
		tr := rows[store.PartTrain][u]
		slices.SortFunc(tr, func(a, c seqRow) int {
			if d := cmp.Compare(len(a.hist), len(c.hist)); d != 0 {
				return d
			}
			return cmp.Compare(c.line, a.line)
		})
		var s []int32
		switch {
		case len(tr) > 0:
			s = append(s, tr[0].hist...)
		case len(rows[store.PartValid][u]) > 0:
			s = append(s, rows[store.PartValid][u][0].hist...)
		case len(rows[store.PartTest][u]) > 0:
			s = append(s, rows[store.PartTest][u][0].hist...)
		}
		for _, r := range tr {
			if !suffixOK(s, r.hist) {
				return badf(seq[store.PartTrain], r.line, "user %d: history is not a prefix of the user's sequence (rows must be every prefix of one chronological sequence)", u)
			}
			s = append(s, r.target)
		}
		nTrain := len(s)
		for _, p := range []int8{store.PartValid, store.PartTest} {
			if rows[p] == nil {
				continue
			}
			rs := rows[p][u]
			if len(rs) > 1 {
				return badf(seq[p], rs[1].line, "user %d has %d rows in a leave-one-out %s file (want 1)", u, len(rs), store.PartName(p))
			}
			if len(rs) == 1 {
				if !suffixOK(s, rs[0].hist) {
					return badf(seq[p], rs[0].line, "user %d: history does not end the user's earlier sequence", u)
				}
				s = append(s, rs[0].target)
			}
		}
		b.Users.Grow(int(u) + 1)
		nValid := 0
		if rows[store.PartValid] != nil && len(rows[store.PartValid][u]) == 1 {
			nValid = 1
		}
		for k, it := range s {
			b.Items.Grow(int(it) + 1)
			part := store.PartTrain
			switch {
			case k >= nTrain+nValid:
				part = store.PartTest
			case k >= nTrain:
				part = store.PartValid
			}
			b.AddGiven(u, it, nan, int64(k), part)
		}
	}
	return nil
}

// readRecboleGeneral reads a general atomic .inter with raw tokens.
func readRecboleGeneral(ctx context.Context, f string, b *Builder, opts *Options) error {
	lr, cols, err := openAtomic(ctx, f, "interactions", b, opts)
	if err != nil {
		return err
	}
	defer lr.Close()
	cu, ok1 := cols["user_id"]
	ci, ok2 := cols["item_id"]
	if !ok1 || !ok2 {
		return badf(f, 1, "header must have user_id:token and item_id:token")
	}
	cr, hasR := cols["rating"]
	ct, hasT := cols["timestamp"]
	nan := float32(math.NaN())
	return lr.eachTabRow(len(cols), func(line []byte, fields [][]byte) error {
		r := nan
		if hasR {
			v, err := strconv.ParseFloat(string(fields[cr]), 32)
			if err != nil {
				return lr.Bad("rating %q is not a number", fields[cr])
			}
			r = float32(v)
		}
		var ts int64
		if hasT {
			v, err := strconv.ParseFloat(string(fields[ct]), 64)
			if err != nil {
				return lr.Bad("timestamp %q is not a number", fields[ct])
			}
			ts = int64(v)
		} else {
			ts = lr.Line()
		}
		if len(fields[cu]) == 0 || len(fields[ci]) == 0 {
			return lr.Bad("empty user or item id")
		}
		if !utf8.Valid(fields[cu]) || !utf8.Valid(fields[ci]) {
			return lr.Bad("expected UTF-8 text (wrong encoding?)")
		}
		if err := b.Add(fields[cu], fields[ci], r, ts); err != nil {
			return lr.Bad("%v", err)
		}
		return nil
	})
}

// readIndexMap reads `raw<TAB>index` lines and names the indices.
func readIndexMap(ctx context.Context, f string, b *Builder, opts *Options) (map[string]int32, error) {
	idm := b.Items
	if strings.HasSuffix(f, ".user2index") {
		idm = b.Users
	}
	lr, err := openLines(ctx, f, "idmap", opts, b.Report)
	if err != nil {
		return nil, err
	}
	defer lr.Close()
	m := map[string]int32{}
	for {
		line, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		raw, idx, ok := strings.Cut(string(line), "\t")
		n, perr := parseIdx([]byte(idx))
		if !ok || perr != nil {
			if lr.Line() == 1 && strings.Contains(string(line), ":") {
				continue // a header line
			}
			if err := lr.Bad("expected `raw id<TAB>index`"); err != nil {
				return nil, err
			}
			continue
		}
		if !idm.Dense() {
			b.Report.warnf("%s: index maps apply to the sequence layout only; ignored", f)
			return m, nil
		}
		if raw == "" || !utf8.ValidString(raw) {
			if err := lr.Bad("expected a non-empty UTF-8 raw id"); err != nil {
				return nil, err
			}
			continue
		}
		if _, err := idm.Set(n, raw); err != nil {
			return nil, badf(f, lr.Line(), "%v", err)
		}
		m[raw] = n
	}
}

// readRecboleText reads item_id:token text:token_seq.
func readRecboleText(ctx context.Context, f string, b *Builder, opts *Options, resolve func(string) (string, bool)) error {
	return readAtomicItems(ctx, f, "text", b, opts, resolve, func(it *store.Item, cols map[string]int, fields [][]byte) error {
		c, ok := cols["text"]
		if !ok {
			return fmt.Errorf("no text column")
		}
		s, err := checkUTF8(fields[c])
		if err != nil {
			return err
		}
		it.Text = s
		return nil
	})
}

// readRecboleItem reads a RecBole .item file: title, categories, brand,
// description, price map to their fields; other columns go to Text.
func readRecboleItem(ctx context.Context, f string, b *Builder, opts *Options, resolve func(string) (string, bool)) error {
	return readAtomicItems(ctx, f, "items", b, opts, resolve, func(it *store.Item, cols map[string]int, fields [][]byte) error {
		var extra []string
		for name, c := range cols {
			v, err := checkUTF8(fields[c])
			if err != nil {
				return err
			}
			switch name {
			case "item_id":
			case "title", "movie_title":
				it.Title = v
			case "categories", "genre", "category":
				it.Categories = strings.Fields(v)
			case "brand":
				it.Brand = v
			case "description":
				it.Description = v
			case "price":
				if p, err := strconv.ParseFloat(v, 64); err == nil {
					it.Price = p
				}
			default:
				if v != "" {
					extra = append(extra, name+": "+v)
				}
			}
		}
		slices.Sort(extra)
		it.Text = strings.Join(extra, ". ")
		return nil
	})
}

func readAtomicItems(ctx context.Context, f, role string, b *Builder, opts *Options, resolve func(string) (string, bool),
	fill func(*store.Item, map[string]int, [][]byte) error) error {
	lr, cols, err := openAtomic(ctx, f, role, b, opts)
	if err != nil {
		return err
	}
	defer lr.Close()
	ci, ok := cols["item_id"]
	if !ok {
		return badf(f, 1, "header must have item_id:token")
	}
	return lr.eachTabRow(len(cols), func(line []byte, fields [][]byte) error {
		raw, ok := resolve(string(fields[ci]))
		if !ok {
			b.Report.MetaUnmatched++
			return nil
		}
		if err := fill(b.ItemMeta(raw), cols, fields); err != nil {
			return lr.Bad("%v", err)
		}
		return nil
	})
}

// readItemJSON reads {"index": {"title", "description", "brand",
// "categories"}} (the Office.item.json of the UniSRec Office data).
func readItemJSON(f string, b *Builder, resolve func(string) (string, bool)) error {
	data, err := os.ReadFile(f)
	if err != nil {
		return &BadInputError{File: f, Err: err}
	}
	var m map[string]struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Brand       string `json:"brand"`
		Categories  string `json:"categories"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return badf(f, 0, "expected a JSON object of item → {title, description, brand, categories}: %v", err)
	}
	b.Report.Files = append(b.Report.Files, FileStat{Path: f, Role: "items", Lines: int64(len(m))})
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw, ok := resolve(k)
		if !ok {
			b.Report.MetaUnmatched++
			continue
		}
		v := m[k]
		it := b.ItemMeta(raw)
		it.Title, it.Description, it.Brand = v.Title, v.Description, v.Brand
		for _, c := range strings.Split(v.Categories, ",") {
			if c = strings.TrimSpace(c); c != "" {
				it.Categories = append(it.Categories, c)
			}
		}
	}
	return nil
}

// importFeatCLS reads a headerless float32 matrix; all-zero rows are the
// reference's marker of a missing input and become invalid rows.
func importFeatCLS(f string, b *Builder, opts *Options) error {
	if opts.FeatDim <= 0 {
		return badf(f, 0, "headerless feature file: pass --feat-dim (MISSRec's CLIP features are 512)")
	}
	rows, data, err := store.ReadFeatCLS(f, opts.FeatDim)
	if err != nil {
		return &BadInputError{File: f, Err: err}
	}
	if rows < b.Items.Len() {
		return badf(f, 0, "has %d rows of %d floats but the interactions use %d items: row r must be item r (wrong --feat-dim?)", rows, opts.FeatDim, b.Items.Len())
	}
	b.Items.Grow(rows)
	valid := make([]bool, rows)
	for r := range rows {
		for _, v := range data[r*opts.FeatDim : (r+1)*opts.FeatDim] {
			if v != 0 {
				valid[r] = true
				break
			}
		}
	}
	mod := featModalities[filepath.Ext(f)]
	b.Report.Files = append(b.Report.Files, FileStat{Path: f, Role: "feature:" + mod, Lines: int64(rows)})
	b.Features = append(b.Features, ImportedFeature{Modality: mod, Source: filepath.Base(f), Rows: rows, Dim: opts.FeatDim, Data: data, Valid: valid})
	return nil
}

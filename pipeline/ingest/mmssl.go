package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mmpipe/mmpipe/store"
)

// mmsslFormat reads MMSSL / LATTICE / MICRO data: train.json, val.json,
// test.json ({"user": [items]}), every *_feat.npy as a modality, and the
// optional item2id.json / user2id.json maps (raw id → index) of the LATTICE
// Amazon releases. Indices are the source's own.
type mmsslFormat struct{}

func (mmsslFormat) Name() string { return "mmssl" }
func (mmsslFormat) Describe() string {
	return "MMSSL/LATTICE/MICRO: train.json, val.json, test.json ({\"user\": [items]}), *_feat.npy, optional item2id.json, user2id.json"
}
func (mmsslFormat) NewBuilder() *Builder { return NewBuilder(true, true) }

func (mmsslFormat) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	parts := map[string]int8{"train.json": store.PartTrain, "val.json": store.PartValid, "valid.json": store.PartValid, "test.json": store.PartTest}
	var lists [3]string
	var npys, maps []string
	for _, f := range files {
		base := filepath.Base(f)
		switch {
		case strings.HasSuffix(base, "_feat.npy"):
			npys = append(npys, f)
		case base == "item2id.json" || base == "user2id.json":
			maps = append(maps, f)
		default:
			p, ok := parts[base]
			if !ok {
				if base == "train_mat" || strings.HasSuffix(base, ".pt") || strings.HasSuffix(base, ".csv") || strings.HasPrefix(base, "README") {
					b.Report.warnf("%s: not read (train_mat is rebuilt from train.json; URL lists and caches are not inputs)", f)
					continue
				}
				return badf(f, 0, "unexpected file for --format mmssl (want train.json, val.json, test.json, *_feat.npy, item2id.json, user2id.json)")
			}
			if lists[p] != "" {
				return badf(f, 0, "second %s (first: %s)", base, lists[p])
			}
			lists[p] = f
		}
	}
	if lists[store.PartTrain] == "" {
		return badf("--input", 0, "no train.json among the inputs")
	}
	b.GivenSplit = "source split (train.json / val.json / test.json)"
	for p, f := range lists {
		if f == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := readUserLists(f, int8(p), b); err != nil {
			return err
		}
	}
	for _, f := range maps {
		if err := readIDMap(f, b); err != nil {
			return err
		}
	}
	for _, f := range npys {
		modality := strings.TrimSuffix(filepath.Base(f), "_feat.npy")
		if err := importNPY(f, modality, b); err != nil {
			return err
		}
	}
	return nil
}

// readUserLists reads {"user": [item, ...]} in key order. Within a user, the
// timestamp is an ordinal continuing across train, val and test, so the given
// split keeps the source's order.
func readUserLists(path string, part int8, b *Builder) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &BadInputError{File: path, Err: err}
	}
	var m map[string][]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return badf(path, 0, "expected a JSON object of user id → list of item ids: %v", err)
	}
	b.Report.Files = append(b.Report.Files, FileStat{Path: path, Role: store.PartName(part), Lines: int64(len(m))})
	type kv struct {
		u     int32
		items []int64
	}
	// In key order, so the first error found is the same on every run.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rows := make([]kv, 0, len(m))
	named := make(map[int32]string, len(m))
	for _, k := range keys {
		u, err := strconv.ParseInt(k, 10, 32)
		if err != nil || u < 0 {
			return badf(path, 0, "user key %q is not a non-negative integer", k)
		}
		// "7" and "07" would both be user 7, in an order the map decides.
		if other, dup := named[int32(u)]; dup {
			return badf(path, 0, "user %d appears twice, as %q and %q", u, other, k)
		}
		named[int32(u)] = k
		rows = append(rows, kv{int32(u), m[k]})
	}
	slices.SortFunc(rows, func(a, c kv) int { return int(a.u) - int(c.u) })
	nan := float32(math.NaN())
	for _, r := range rows {
		if len(r.items) == 0 {
			continue // MMSSL skips users with an empty list
		}
		b.Users.Grow(int(r.u) + 1)
		ts := b.nextOrdinal(r.u)
		for _, it := range r.items {
			if it < 0 || it > MaxDenseIndex {
				return badf(path, 0, "user %d: item id %d out of range (dense ids go up to %d)", r.u, it, MaxDenseIndex)
			}
			b.Items.Grow(int(it) + 1)
			b.AddGiven(r.u, int32(it), nan, ts, part)
			ts++
		}
		b.setOrdinal(r.u, ts)
	}
	return nil
}

// readIDMap reads item2id.json / user2id.json ({"raw id": index}).
func readIDMap(path string, b *Builder) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &BadInputError{File: path, Err: err}
	}
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return badf(path, 0, "expected a JSON object of raw id → index: %v", err)
	}
	idm := b.Items
	if filepath.Base(path) == "user2id.json" {
		idm = b.Users
	}
	b.Report.Files = append(b.Report.Files, FileStat{Path: path, Role: "idmap", Lines: int64(len(m))})
	// In key order, so the first error found is the same on every run.
	raws := make([]string, 0, len(m))
	for raw := range m {
		raws = append(raws, raw)
	}
	slices.Sort(raws)
	named := make(map[int64]string, len(m))
	for _, raw := range raws {
		idx := m[raw]
		if idx < 0 || idx > MaxDenseIndex {
			return badf(path, 0, "index %d of %q out of range", idx, raw)
		}
		// Two names for one index would leave the index named by whichever
		// the map iteration met last.
		if other, dup := named[idx]; dup {
			return badf(path, 0, "index %d is named twice, %q and %q", idx, other, raw)
		}
		named[idx] = raw
		if _, err := idm.Set(int32(idx), raw); err != nil {
			return badf(path, 0, "%v", err)
		}
	}
	return nil
}

// importNPY reads an item feature matrix whose row r is item index r.
func importNPY(path, modality string, b *Builder) error {
	a, err := store.ReadNPY(path)
	if err != nil {
		return &BadInputError{File: path, Err: err}
	}
	if len(a.Shape) != 2 {
		return badf(path, 0, "expected a 2-d array (items × dim), got shape %v", a.Shape)
	}
	rows, dim := a.Shape[0], a.Shape[1]
	// A zero-width matrix holds no data whatever its row count, so without
	// this check a 100-byte file would make every row an item.
	if dim <= 0 {
		return badf(path, 0, "expected a 2-d array (items × dim) with dim > 0, got shape %v", a.Shape)
	}
	if rows > MaxDenseIndex+1 {
		return badf(path, 0, "has %d rows: row r is item r, and dense item ids go up to %d", rows, MaxDenseIndex)
	}
	if rows < b.Items.Len() {
		return badf(path, 0, "has %d rows but the interactions use %d items: row r must be item r", rows, b.Items.Len())
	}
	b.Items.Grow(rows)
	b.Report.Files = append(b.Report.Files, FileStat{Path: path, Role: "feature:" + modality, Lines: int64(rows)})
	b.Features = append(b.Features, ImportedFeature{
		Modality: modality, Source: filepath.Base(path) + " (" + a.DType + ")", Rows: rows, Dim: dim, Data: a.Data,
	})
	return nil
}

// nextOrdinal and setOrdinal keep a per-user event counter for sources
// without timestamps.
func (b *Builder) nextOrdinal(u int32) int64 {
	if b.ordinal == nil {
		b.ordinal = make(map[int32]int64)
	}
	return b.ordinal[u]
}

func (b *Builder) setOrdinal(u int32, next int64) { b.ordinal[u] = next }

// mmrecFormat reads MMRec data: <name>.inter (tab-separated, header with
// userID, itemID, x_label and optional rating / timestamp columns; CRLF
// tolerated) plus every *_feat.npy as a modality. Indices are the source's.
type mmrecFormat struct{}

func (mmrecFormat) Name() string { return "mmrec" }
func (mmrecFormat) Describe() string {
	return "MMRec: <name>.inter (userID itemID x_label [rating] [timestamp], tab-separated) and *_feat.npy"
}
func (mmrecFormat) NewBuilder() *Builder { return NewBuilder(true, true) }

func (mmrecFormat) Read(ctx context.Context, files []string, b *Builder, opts *Options) error {
	var inters, npys []string
	for _, f := range files {
		base := filepath.Base(f)
		switch {
		case strings.HasSuffix(base, ".inter"):
			inters = append(inters, f)
		case strings.HasSuffix(base, "_feat.npy"):
			npys = append(npys, f)
		case strings.HasSuffix(base, ".npy"):
			b.Report.warnf("%s: not read (only *_feat.npy files are modalities)", f)
		default:
			return badf(f, 0, "unexpected file for --format mmrec (want <name>.inter and *_feat.npy)")
		}
	}
	if len(inters) != 1 {
		return badf("--input", 0, "want exactly one .inter file for --format mmrec, got %d", len(inters))
	}
	b.GivenSplit = "source split (x_label 0/1/2)"
	lr, err := openLines(ctx, inters[0], "interactions", opts, b.Report)
	if err != nil {
		return err
	}
	defer lr.Close()
	head, err := lr.Next()
	if err != nil {
		return badf(inters[0], 1, "expected a header line: %v", err)
	}
	cols := strings.Split(string(head), "\t")
	col := func(names ...string) int {
		for i, c := range cols {
			c = strings.SplitN(c, ":", 2)[0] // tolerate RecBole-style name:type
			for _, n := range names {
				if strings.EqualFold(c, n) {
					return i
				}
			}
		}
		return -1
	}
	cu, ci, cx := col("userID", "user_id"), col("itemID", "item_id"), col("x_label")
	cr, ct := col("rating"), col("timestamp")
	if cu < 0 || ci < 0 || cx < 0 {
		return badf(inters[0], 1, "header %q must name userID, itemID and x_label columns", head)
	}
	nan := float32(math.NaN())
	if err := lr.eachTabRow(len(cols), func(line []byte, fields [][]byte) error {
		u, e1 := parseIdx(fields[cu])
		i, e2 := parseIdx(fields[ci])
		x, e3 := parseIdx(fields[cx])
		if e1 != nil || e2 != nil || e3 != nil || x > 2 {
			return lr.Bad("expected integer userID, itemID and x_label in 0..2, got %q", line)
		}
		r := nan
		if cr >= 0 {
			v, err := strconv.ParseFloat(string(fields[cr]), 32)
			if err != nil {
				return lr.Bad("rating %q is not a number", fields[cr])
			}
			r = float32(v)
		}
		var ts int64
		if ct >= 0 {
			v, err := strconv.ParseFloat(string(fields[ct]), 64)
			if err != nil {
				return lr.Bad("timestamp %q is not a number", fields[ct])
			}
			ts = int64(v)
		} else {
			ts = b.nextOrdinal(u)
			b.setOrdinal(u, ts+1)
		}
		b.Users.Grow(int(u) + 1)
		b.Items.Grow(int(i) + 1)
		b.AddGiven(u, i, r, ts, int8(x))
		return nil
	}); err != nil {
		return err
	}
	for _, f := range npys {
		modality := strings.TrimSuffix(filepath.Base(f), "_feat.npy")
		if err := importNPY(f, modality, b); err != nil {
			return err
		}
	}
	return nil
}

func splitTab(dst [][]byte, line []byte) [][]byte {
	start := 0
	for i, c := range line {
		if c == '\t' {
			dst = append(dst, line[start:i])
			start = i + 1
		}
	}
	return append(dst, line[start:])
}

// MaxDenseIndex bounds the ids of sources whose ids are dense indices:
// tables grow to the largest id seen, so one stray huge id must be an error,
// not a multi-gigabyte allocation.
const MaxDenseIndex = 1<<26 - 1

func parseIdx(b []byte) (int32, error) {
	if len(b) == 0 || len(b) > 10 {
		return 0, fmt.Errorf("bad index %q", b)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad index %q", b)
		}
		n = n*10 + int64(c-'0')
	}
	if n > MaxDenseIndex {
		return 0, fmt.Errorf("index %q out of range (dense ids go up to %d; is this column really a dense index?)", b, MaxDenseIndex)
	}
	return int32(n), nil
}

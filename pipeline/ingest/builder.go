// Package ingest turns raw dataset dumps (Amazon 2014/2018, Netflix Prize,
// bilibili/NineRec, MovieLens, MMSSL/LATTICE json, MMRec .inter, RecBole
// atomic files) into the dataset tables of package store.
//
// Every source format is a Format whose reader streams its files into a
// Builder. The Builder assigns dense indices, keeps item metadata, counts what
// it saw and skipped, and produces the tables.
//
// Index rule. Where the source already uses dense integer ids (MMSSL json,
// MMRec .inter, RecBole indices, TikTok feature rows) the index is the source
// id, so feature rows stay aligned. Otherwise users and items are indexed in
// order of first appearance in the interaction files, read in the order the
// format defines (files sorted by path, lines in file order); items that occur
// only in metadata come after all of them, ordered by raw id.
package ingest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/mmpipe/mmpipe/pipeline/prep"
	"github.com/mmpipe/mmpipe/store"
)

// IDMap assigns dense int32 indices to raw ids.
type IDMap struct {
	dense bool
	idx   *idTable
	ids   []string
}

// NewIDMap returns an empty map. A dense map takes the raw id as the index
// (the raw id must be a non-negative decimal integer).
func NewIDMap(dense bool) *IDMap {
	return &IDMap{dense: dense, idx: newIDTable()}
}

// Dense reports whether indices are the source's own integer ids.
func (m *IDMap) Dense() bool { return m.dense }

// Len returns the number of indices (for a dense map: max index + 1).
func (m *IDMap) Len() int { return len(m.ids) }

// Lookup returns the index of raw without assigning one.
func (m *IDMap) Lookup(raw string) (int32, bool) {
	return m.idx.get([]byte(raw))
}

// Index returns raw's index, assigning the next one on first sight. For a
// dense map raw must parse as a non-negative integer.
func (m *IDMap) Index(raw []byte) (int32, error) {
	if i, ok := m.idx.get(raw); ok {
		return i, nil
	}
	if m.dense {
		n, err := strconv.ParseInt(string(raw), 10, 32)
		if err != nil || n < 0 || n > MaxDenseIndex {
			return 0, fmt.Errorf("id %q is not an integer index in 0..%d", raw, MaxDenseIndex)
		}
		return m.Set(int32(n), string(raw))
	}
	i := int32(len(m.ids))
	m.idx.put(raw, i)
	m.ids = append(m.ids, string(raw))
	return i, nil
}

// IndexString is Index for a string.
func (m *IDMap) IndexString(raw string) (int32, error) {
	return m.Index([]byte(raw))
}

// Set binds raw to idx (dense maps, and sources that ship their own id maps
// such as item2id.json). Indices between the old length and idx get an empty
// raw id until they are set.
func (m *IDMap) Set(idx int32, raw string) (int32, error) {
	if idx < 0 {
		return 0, fmt.Errorf("negative index %d for id %q", idx, raw)
	}
	if old, ok := m.idx.get([]byte(raw)); ok && old != idx {
		return 0, fmt.Errorf("id %q has two indices, %d and %d", raw, old, idx)
	}
	for int(idx) >= len(m.ids) {
		m.ids = append(m.ids, "")
	}
	// A dense source (user "7" in train.json) later named by an id map
	// (user2id.json): the name wins, the number stays an alias.
	m.ids[idx] = raw
	m.idx.set([]byte(raw), idx)
	return idx, nil
}

// ID returns the raw id of idx ("" if unnamed).
func (m *IDMap) ID(idx int32) string {
	if int(idx) < len(m.ids) {
		return m.ids[idx]
	}
	return ""
}

// Grow makes the map at least n long (dense sources whose last ids have no
// interactions, such as feature rows past the last interacted item).
func (m *IDMap) Grow(n int) {
	for len(m.ids) < n {
		m.ids = append(m.ids, "")
	}
}

// ImportedFeature is a feature matrix shipped with the source (MMSSL's
// image_feat.npy, a RecBole .feat1CLS) to be written as
// features/<Modality>.imported.arrow.
type ImportedFeature struct {
	Modality string
	Source   string // file name
	Rows     int
	Dim      int
	Data     []float32
	// Valid marks rows that carry a vector (nil: all rows; all-zero rows of
	// .feat*CLS files are the reference's "missing" marker).
	Valid []bool
}

// Builder accumulates one dataset during ingest.
type Builder struct {
	Users *IDMap
	Items *IDMap
	// Inter holds the interactions in input order.
	Inter store.Interactions
	// Part holds the source's own split label per interaction, when the
	// source has one (Given); nil otherwise.
	Part []int8
	// Meta holds item metadata by raw id, until Finish attaches it.
	Meta map[string]*store.Item
	// UserNames optionally names dense user indices (user2id.json).
	Features []ImportedFeature
	Report   *Report
	// SplitParams records how the source's own split was made, for the
	// manifest (e.g. "leave-one-out, history <= 50").
	GivenSplit string

	ordinal map[int32]int64
}

// NewBuilder returns an empty builder.
func NewBuilder(denseUsers, denseItems bool) *Builder {
	return &Builder{
		Users:  NewIDMap(denseUsers),
		Items:  NewIDMap(denseItems),
		Meta:   make(map[string]*store.Item),
		Report: &Report{},
	}
}

// Add records one interaction by raw ids.
func (b *Builder) Add(user, item []byte, rating float32, ts int64) error {
	u, err := b.Users.Index(user)
	if err != nil {
		return fmt.Errorf("user: %w", err)
	}
	i, err := b.Items.Index(item)
	if err != nil {
		return fmt.Errorf("item: %w", err)
	}
	b.Inter.Append(u, i, rating, ts)
	return nil
}

// AddIdx records one interaction by index.
func (b *Builder) AddIdx(u, i int32, rating float32, ts int64) {
	b.Inter.Append(u, i, rating, ts)
}

// AddGiven records one interaction with the source's split label.
func (b *Builder) AddGiven(u, i int32, rating float32, ts int64, part int8) {
	if b.Part == nil {
		b.Part = make([]int8, b.Inter.Len(), max(16, cap(b.Inter.User)))
	}
	b.Inter.Append(u, i, rating, ts)
	b.Part = append(b.Part, part)
}

// ItemMeta returns the metadata record for raw id, creating it. Readers fill
// its fields; a second record for the same id merges into the first (later
// non-empty fields win) and is counted as a duplicate.
func (b *Builder) ItemMeta(raw string) *store.Item {
	if it, ok := b.Meta[raw]; ok {
		b.Report.DuplicateMeta++
		return it
	}
	it := store.NewItem(-1, raw)
	it.HasMeta = true
	b.Meta[raw] = &it
	return &it
}

// Tables is what a finished ingest produces.
type Tables struct {
	Items    []store.Item
	Users    []store.User
	Inter    store.Interactions
	Given    *store.Split // the source's split, if any
	Features []ImportedFeature
}

// unnamedIndex reports whether raw is the decimal index of an item of a
// dense source that has no raw id of its own (RecBole files without an
// .item2index: the metadata names items by their numbers).
func (b *Builder) unnamedIndex(raw string) bool {
	if !b.Items.Dense() {
		return false
	}
	n, err := strconv.ParseInt(raw, 10, 32)
	return err == nil && n >= 0 && int(n) < b.Items.Len() && b.Items.ID(int32(n)) == "" && strconv.Itoa(int(n)) == raw
}

// Finish attaches metadata to items, appends metadata-only items (ordered by
// raw id), removes exact duplicate rows (same user, item, timestamp and
// rating; the first is kept) and returns the tables.
func (b *Builder) Finish() (*Tables, error) {
	// Metadata-only items.
	var extra []string
	for raw := range b.Meta {
		if _, ok := b.Items.Lookup(raw); ok || b.unnamedIndex(raw) {
			continue
		}
		extra = append(extra, raw)
	}
	if b.Items.Dense() && len(extra) > 0 {
		// A dense source's metadata must name indexed items.
		slices.Sort(extra)
		b.Report.MetaUnmatched = len(extra)
		b.Report.warnf("%d metadata records name items that are not in the dense id map (first: %q); ignored", len(extra), extra[0])
		extra = nil
	}
	slices.Sort(extra)
	for _, raw := range extra {
		if _, err := b.Items.IndexString(raw); err != nil {
			return nil, err
		}
	}
	b.Report.MetaOnlyItems = len(extra)

	t := &Tables{Features: b.Features}
	t.Items = make([]store.Item, b.Items.Len())
	for i := range t.Items {
		raw := b.Items.ID(int32(i))
		key := raw
		if raw == "" {
			key = strconv.Itoa(i) // a dense source names its items by their numbers
		}
		if m, ok := b.Meta[key]; ok {
			t.Items[i] = *m
		} else {
			t.Items[i] = store.NewItem(int32(i), raw)
			b.Report.ItemsWithoutMeta++
		}
		t.Items[i].Idx = int32(i)
		t.Items[i].ID = raw
		if raw == "" {
			t.Items[i].ID = strconv.Itoa(i)
			if err := numberFree(b.Items, i, "item"); err != nil {
				return nil, err
			}
		}
		if !t.Items[i].HasText() {
			b.Report.ItemsWithoutText++
		}
		if len(t.Items[i].ImageURLs) == 0 {
			b.Report.ItemsWithoutImage++
		}
	}
	t.Users = make([]store.User, b.Users.Len())
	for i := range t.Users {
		raw := b.Users.ID(int32(i))
		if raw == "" {
			raw = strconv.Itoa(i)
			if err := numberFree(b.Users, i, "user"); err != nil {
				return nil, err
			}
		}
		t.Users[i] = store.User{Idx: int32(i), ID: raw}
	}
	keep := dedupe(&b.Inter)
	b.Report.DuplicateRows = int64(b.Inter.Len() - len(keep))
	if len(keep) == b.Inter.Len() {
		t.Inter = b.Inter
	} else {
		t.Inter = gather(&b.Inter, keep)
		if b.Part != nil {
			p := make([]int8, len(keep))
			for k, r := range keep {
				p[k] = b.Part[r]
			}
			b.Part = p
		}
	}
	if b.Part != nil {
		t.Given = buildGiven(&t.Inter, b.Part)
	}
	b.Report.Users = len(t.Users)
	b.Report.Items = len(t.Items)
	b.Report.Interactions = int64(t.Inter.Len())
	return t, nil
}

// numberFree checks that an unnamed index i, which is named by its number,
// does not take a name an id map gave another index (item2id.json naming
// item 1 "0" while item 0 has no name): raw ids must stay unique, they key
// the image store and the exports.
func numberFree(m *IDMap, i int, what string) error {
	if j, ok := m.Lookup(strconv.Itoa(i)); ok && int(j) != i {
		n := strconv.Itoa(i)
		return badf("--input", 0, "%s %d has no raw id of its own, and its number %q is the raw id of %s %d: an id map (item2id.json, user2id.json, .item2index) gives %q to another index", what, i, n, what, j, n)
	}
	return nil
}

// dedupe returns the row numbers to keep: the first of each group of rows
// with the same user, item, timestamp and rating. Rows are grouped by user
// (a counting sort), and each user's rows are copied into a small local
// buffer before sorting, so the sort touches cache-resident memory only.
func dedupe(t *store.Interactions) []int32 {
	n := t.Len()
	rows := make([]int32, n)
	for i := range rows {
		rows[i] = int32(i)
	}
	order := prep.GroupByUser(t, rows)
	drop := make([]bool, n)
	// Two halves split at a user boundary run on two goroutines; each row
	// belongs to one user, so the halves write disjoint parts of drop.
	mid := n / 2
	for mid > 0 && mid < n && t.User[order[mid]] == t.User[order[mid-1]] {
		mid++
	}
	var dupsA, dupsB int
	done := make(chan struct{})
	go func() {
		dupsB = dedupeRuns(t, order[mid:], drop)
		close(done)
	}()
	dupsA = dedupeRuns(t, order[:mid], drop)
	<-done
	dups := dupsA + dupsB
	if dups == 0 {
		return rows
	}
	keep := rows[:0]
	for i := range n {
		if !drop[i] {
			keep = append(keep, int32(i))
		}
	}
	return keep
}

// dedupeRuns marks in drop the repeated rows of the user runs in order (rows
// grouped by user) and returns how many it marked.
func dedupeRuns(t *store.Interactions, order []int32, drop []bool) int {
	type key struct {
		item int32
		row  int32
		ts   int64
		r    float32
	}
	var buf []key
	dups := 0
	n := len(order)
	for s := 0; s < n; {
		e := s + 1
		for e < n && t.User[order[e]] == t.User[order[s]] {
			e++
		}
		if e-s > 1 {
			buf = buf[:0]
			for _, r := range order[s:e] {
				buf = append(buf, key{t.Item[r], r, t.Timestamp[r], t.Rating[r]})
			}
			slices.SortFunc(buf, func(a, b key) int {
				if c := cmp.Compare(a.item, b.item); c != 0 {
					return c
				}
				if c := cmp.Compare(a.ts, b.ts); c != 0 {
					return c
				}
				if c := cmp.Compare(a.r, b.r); c != 0 {
					return c
				}
				return cmp.Compare(a.row, b.row)
			})
			for k := 1; k < len(buf); k++ {
				a, b := buf[k-1], buf[k]
				if a.item == b.item && a.ts == b.ts && sameRating(a.r, b.r) {
					drop[b.row] = true
					dups++
				}
			}
		}
		s = e
	}
	return dups
}

func sameRating(a, b float32) bool {
	return a == b || (math.IsNaN(float64(a)) && math.IsNaN(float64(b)))
}

func gather(t *store.Interactions, rows []int32) store.Interactions {
	var out store.Interactions
	out.Grow(len(rows))
	for _, r := range rows {
		out.Append(t.User[r], t.Item[r], t.Rating[r], t.Timestamp[r])
	}
	return out
}

// buildGiven orders the labelled rows by user, then timestamp, then input
// order.
func buildGiven(t *store.Interactions, part []int8) *store.Split {
	order := make([]int32, t.Len())
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		if c := cmp.Compare(t.User[a], t.User[b]); c != 0 {
			return c
		}
		return cmp.Compare(t.Timestamp[a], t.Timestamp[b])
	})
	s := &store.Split{Name: "given"}
	s.Grow(len(order))
	s.Part = make([]int8, 0, len(order))
	for _, r := range order {
		s.AppendRow(t.User[r], t.Item[r], t.Rating[r], t.Timestamp[r], part[r])
	}
	return s
}

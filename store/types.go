// Package store holds mmpipe's on-disk formats and nothing else: the dataset
// directory (Parquet tables and manifest), Arrow IPC feature files, NumPy .npy
// arrays, headerless .feat*CLS blobs and RecBole atomic files. It imports no
// other package of the project.
package store

import "math"

// Split parts, as stored in the `part` column of a split file. The values
// follow MMRec's x_label convention (0 train, 1 valid, 2 test).
const (
	PartTrain int8 = 0
	PartValid int8 = 1
	PartTest  int8 = 2
)

// PartName returns "train", "valid" or "test".
func PartName(p int8) string {
	switch p {
	case PartTrain:
		return "train"
	case PartValid:
		return "valid"
	case PartTest:
		return "test"
	}
	return "unknown"
}

// Item is one row of items.parquet. Idx is the dense item index used by every
// other file; ID is the source's own id (an ASIN, a MovieID, a bilibili id...).
type Item struct {
	Idx         int32
	ID          string
	Title       string
	Description string
	Categories  []string
	Brand       string
	ImageURLs   []string
	// Text is free text that does not fit the fields above (RecBole .text
	// lines, NineRec English titles, LLMRec attributes).
	Text string
	// Price is NaN when unknown.
	Price float64
	// HasMeta is false for items known only from interactions: they are kept
	// and counted, never dropped.
	HasMeta bool
}

// NewItem returns an Item with an unknown price.
func NewItem(idx int32, id string) Item {
	return Item{Idx: idx, ID: id, Price: math.NaN()}
}

// HasText reports whether the item has any text to encode.
func (it *Item) HasText() bool {
	return it.Title != "" || it.Description != "" || it.Text != "" || len(it.Categories) > 0 || it.Brand != ""
}

// User is one row of users.parquet.
type User struct {
	Idx int32
	ID  string
}

// Interactions is a column-oriented table of user–item events. All slices
// have the same length. Timestamp is Unix seconds, or an ordinal position
// where the source has no time (RecBole sequences, bilibili behaviour lines).
// Rating is NaN where the source has none (implicit feedback).
type Interactions struct {
	User      []int32
	Item      []int32
	Rating    []float32
	Timestamp []int64
}

// Len returns the number of rows.
func (t *Interactions) Len() int { return len(t.User) }

// Append adds one row.
func (t *Interactions) Append(u, i int32, r float32, ts int64) {
	t.User = append(t.User, u)
	t.Item = append(t.Item, i)
	t.Rating = append(t.Rating, r)
	t.Timestamp = append(t.Timestamp, ts)
}

// Grow reserves room for n more rows.
func (t *Interactions) Grow(n int) {
	grow := func(l int) int { return l + n }
	if cap(t.User)-len(t.User) >= n {
		return
	}
	u := make([]int32, len(t.User), grow(len(t.User)))
	copy(u, t.User)
	t.User = u
	it := make([]int32, len(t.Item), grow(len(t.Item)))
	copy(it, t.Item)
	t.Item = it
	r := make([]float32, len(t.Rating), grow(len(t.Rating)))
	copy(r, t.Rating)
	t.Rating = r
	ts := make([]int64, len(t.Timestamp), grow(len(t.Timestamp)))
	copy(ts, t.Timestamp)
	t.Timestamp = ts
}

// Split is one named split of a dataset: every interaction it uses, each
// labelled with its part. Rows are ordered by user, then chronologically.
type Split struct {
	Name string
	Interactions
	Part []int8
}

// Counts returns the number of train, valid and test rows.
func (s *Split) Counts() (train, valid, test int) {
	for _, p := range s.Part {
		switch p {
		case PartTrain:
			train++
		case PartValid:
			valid++
		case PartTest:
			test++
		}
	}
	return
}

// AppendRow adds one labelled row.
func (s *Split) AppendRow(u, i int32, r float32, ts int64, part int8) {
	s.Interactions.Append(u, i, r, ts)
	s.Part = append(s.Part, part)
}

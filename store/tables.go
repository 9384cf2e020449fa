package store

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// RowGroupRows is the number of rows per Parquet row group of the
// interaction and split tables.
const RowGroupRows = 1 << 20

// Table schemas. Column names are part of the dataset contract.
var (
	itemsSchema = arrow.NewSchema([]arrow.Field{
		{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32},
		{Name: "item_id", Type: arrow.BinaryTypes.String},
		{Name: "title", Type: arrow.BinaryTypes.String},
		{Name: "description", Type: arrow.BinaryTypes.String},
		{Name: "categories", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "brand", Type: arrow.BinaryTypes.String},
		{Name: "image_urls", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "text", Type: arrow.BinaryTypes.String},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "has_meta", Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	usersSchema = arrow.NewSchema([]arrow.Field{
		{Name: "user_idx", Type: arrow.PrimitiveTypes.Int32},
		{Name: "user_id", Type: arrow.BinaryTypes.String},
	}, nil)
	interFields = []arrow.Field{
		{Name: "user_idx", Type: arrow.PrimitiveTypes.Int32},
		{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32},
		{Name: "rating", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "timestamp", Type: arrow.PrimitiveTypes.Int64},
	}
	interSchema = arrow.NewSchema(interFields, nil)
	splitSchema = arrow.NewSchema(append(append([]arrow.Field{}, interFields...),
		arrow.Field{Name: "part", Type: arrow.PrimitiveTypes.Int8}), nil)
)

// writerProps are the Parquet settings: zstd level 1, row groups of
// RowGroupRows, statistics on; dictionary encoding only for tables of
// strings (dense integer columns of millions of distinct ids gain nothing
// from it and cost a failed dictionary attempt per page).
func writerProps(dict bool) *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithDictionaryDefault(dict),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(1),
		parquet.WithMaxRowGroupLength(RowGroupRows),
		parquet.WithStats(true),
	)
}

// AtomicFile is a file written under a temporary name in its final
// directory and renamed into place by Commit, so that a crash never leaves
// a half-written file under the final name.
type AtomicFile struct {
	*os.File
	path string
	done bool
}

// OpenAtomicFile opens a temporary file next to path.
func OpenAtomicFile(path string) (*AtomicFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern(path))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &AtomicFile{File: f, path: path}, nil
}

// Commit syncs, closes and renames the file into place.
func (a *AtomicFile) Commit() error {
	if a.done {
		return nil
	}
	a.done = true
	if err := a.File.Sync(); err != nil {
		a.File.Close()
		os.Remove(a.File.Name())
		return fmt.Errorf("sync %s: %w", a.path, err)
	}
	if err := a.File.Close(); err != nil {
		os.Remove(a.File.Name())
		return fmt.Errorf("close %s: %w", a.path, err)
	}
	if err := os.Rename(a.File.Name(), a.path); err != nil {
		os.Remove(a.File.Name())
		return fmt.Errorf("rename into %s: %w", a.path, err)
	}
	RemoveStaleTemps(a.path)
	return nil
}

// Abort removes the temporary file (no-op after Commit).
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}

// WriteParquet writes the records produced by next (a nil record ends) to
// path atomically (temporary file, then rename), with schema metadata md, in
// the project's Parquet settings. Every record must be unsliced (arrow-go
// v18 mis-writes sliced records across row groups). The caller keeps
// ownership of nothing: WriteParquet releases each record.
func WriteParquet(path string, schema *arrow.Schema, md map[string]string, next func() (arrow.RecordBatch, error)) error {
	return writeParquet(path, schema, md, next)
}

// writeParquet is WriteParquet.
func writeParquet(path string, schema *arrow.Schema, md map[string]string, next func() (arrow.RecordBatch, error)) error {
	af, err := OpenAtomicFile(path)
	if err != nil {
		return err
	}
	defer af.Abort()
	if len(md) > 0 {
		keys, vals := make([]string, 0, len(md)), make([]string, 0, len(md))
		for k, v := range md {
			keys, vals = append(keys, k), append(vals, v)
		}
		m := arrow.NewMetadata(keys, vals)
		schema = arrow.NewSchema(schema.Fields(), &m)
	}
	// pqarrow closes a sink that is an io.Closer; hide Close so that
	// Commit can sync and rename.
	fw, err := pqarrow.NewFileWriter(schema, struct{ io.Writer }{af}, writerProps(schema.Field(0).Type.ID() != arrow.INT32 || schema.NumFields() < 4), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	for {
		rec, err := next()
		if err != nil {
			fw.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		if rec == nil {
			break
		}
		if rec.NumRows() > 0 {
			err = fw.Write(rec)
		}
		rec.Release()
		if err != nil {
			fw.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return af.Commit()
}

// readParquet reads a whole Parquet file as a table.
func readParquet(ctx context.Context, path string) (arrow.Table, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: not a Parquet file: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: true, BatchSize: RowGroupRows}, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	md := map[string]string{}
	kv := pf.MetaData().KeyValueMetadata()
	for i, k := range kv.Keys() {
		md[k] = kv.Values()[i]
	}
	if smd := tbl.Schema().Metadata(); smd.Len() > 0 {
		for i, k := range smd.Keys() {
			md[k] = smd.Values()[i]
		}
	}
	return tbl, md, nil
}

// column returns the chunks of the named column, checking its type.
func column(tbl arrow.Table, path, name string, typ arrow.DataType) ([]arrow.Array, error) {
	idx := tbl.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil, fmt.Errorf("read %s: no column %q", path, name)
	}
	col := tbl.Column(idx[0])
	if !arrow.TypeEqual(col.DataType(), typ) {
		return nil, fmt.Errorf("read %s: column %q is %s, want %s", path, name, col.DataType(), typ)
	}
	return col.Data().Chunks(), nil
}

// primitiveArray wraps a Go slice as an Arrow array without copying.
func primitiveArray[T int8 | int32 | int64 | float32 | float64](typ arrow.DataType, vals []T, valid []byte, nulls int) arrow.Array {
	var data []byte
	switch v := any(vals).(type) {
	case []int8:
		data = arrow.Int8Traits.CastToBytes(v)
	case []int32:
		data = arrow.Int32Traits.CastToBytes(v)
	case []int64:
		data = arrow.Int64Traits.CastToBytes(v)
	case []float32:
		data = arrow.Float32Traits.CastToBytes(v)
	case []float64:
		data = arrow.Float64Traits.CastToBytes(v)
	}
	var vb *memory.Buffer
	if nulls > 0 {
		vb = memory.NewBufferBytes(valid)
	}
	d := array.NewData(typ, len(vals), []*memory.Buffer{vb, memory.NewBufferBytes(data)}, nil, nulls, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// nanValidity returns a validity bitmap that marks NaN ratings as null.
func nanValidity(v []float32) ([]byte, int) {
	nulls := 0
	for _, x := range v {
		if x != x {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	bm := make([]byte, (len(v)+7)/8)
	for i, x := range v {
		if x == x {
			bm[i/8] |= 1 << (i % 8)
		}
	}
	return bm, nulls
}

// interRecords yields one unsliced record per row group (arrow-go v18
// mis-writes sliced records across row groups; see research/deps.md §6).
func interRecords(t *Interactions, part []int8) func() (arrow.RecordBatch, error) {
	off := 0
	schema := interSchema
	if part != nil {
		schema = splitSchema
	}
	return func() (arrow.RecordBatch, error) {
		if off >= t.Len() && !(off == 0 && t.Len() == 0) {
			return nil, nil
		}
		end := min(off+RowGroupRows, t.Len())
		r := t.Rating[off:end]
		valid, nulls := nanValidity(r)
		cols := []arrow.Array{
			primitiveArray(arrow.PrimitiveTypes.Int32, t.User[off:end], nil, 0),
			primitiveArray(arrow.PrimitiveTypes.Int32, t.Item[off:end], nil, 0),
			primitiveArray(arrow.PrimitiveTypes.Float32, r, valid, nulls),
			primitiveArray(arrow.PrimitiveTypes.Int64, t.Timestamp[off:end], nil, 0),
		}
		if part != nil {
			cols = append(cols, primitiveArray(arrow.PrimitiveTypes.Int8, part[off:end], nil, 0))
		}
		rec := array.NewRecordBatch(schema, cols, int64(end-off))
		for _, c := range cols {
			c.Release()
		}
		if end == off { // empty table: one empty record, then stop
			off = 1
		} else {
			off = end
		}
		return rec, nil
	}
}

// WriteInteractions writes interactions.parquet (user_idx, item_idx,
// rating (null where unknown), timestamp) atomically.
func WriteInteractions(path string, t *Interactions, md map[string]string) error {
	return writeParquet(path, interSchema, md, interRecords(t, nil))
}

// WriteSplit writes splits/<name>.parquet: the interaction columns plus
// part (0 train, 1 valid, 2 test), with the split name in the metadata.
func WriteSplit(path string, s *Split, md map[string]string) error {
	m := map[string]string{"split": s.Name}
	for k, v := range md {
		m[k] = v
	}
	if len(s.Part) != s.Len() {
		return fmt.Errorf("write %s: %d part labels for %d rows", path, len(s.Part), s.Len())
	}
	return writeParquet(path, splitSchema, m, interRecords(&s.Interactions, s.Part))
}

func readInterColumns(path string, tbl arrow.Table, t *Interactions) error {
	n := int(tbl.NumRows())
	t.User, t.Item = make([]int32, 0, n), make([]int32, 0, n)
	t.Rating, t.Timestamp = make([]float32, 0, n), make([]int64, 0, n)
	uc, err := column(tbl, path, "user_idx", arrow.PrimitiveTypes.Int32)
	if err != nil {
		return err
	}
	ic, err := column(tbl, path, "item_idx", arrow.PrimitiveTypes.Int32)
	if err != nil {
		return err
	}
	rc, err := column(tbl, path, "rating", arrow.PrimitiveTypes.Float32)
	if err != nil {
		return err
	}
	tc, err := column(tbl, path, "timestamp", arrow.PrimitiveTypes.Int64)
	if err != nil {
		return err
	}
	for _, c := range uc {
		t.User = append(t.User, c.(*array.Int32).Int32Values()...)
	}
	for _, c := range ic {
		t.Item = append(t.Item, c.(*array.Int32).Int32Values()...)
	}
	nan := float32(math.NaN())
	for _, c := range rc {
		a := c.(*array.Float32)
		vals := a.Float32Values()
		if a.NullN() == 0 {
			t.Rating = append(t.Rating, vals...)
			continue
		}
		for i, v := range vals {
			if a.IsNull(i) {
				v = nan
			}
			t.Rating = append(t.Rating, v)
		}
	}
	for _, c := range tc {
		t.Timestamp = append(t.Timestamp, c.(*array.Int64).Int64Values()...)
	}
	return nil
}

// ReadInteractions reads interactions.parquet.
func ReadInteractions(ctx context.Context, path string) (*Interactions, error) {
	tbl, _, err := readParquet(ctx, path)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	t := &Interactions{}
	if err := readInterColumns(path, tbl, t); err != nil {
		return nil, err
	}
	return t, nil
}

// ReadSplit reads splits/<name>.parquet.
func ReadSplit(ctx context.Context, path string) (*Split, error) {
	tbl, md, err := readParquet(ctx, path)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	s := &Split{Name: md["split"]}
	if err := readInterColumns(path, tbl, &s.Interactions); err != nil {
		return nil, err
	}
	pc, err := column(tbl, path, "part", arrow.PrimitiveTypes.Int8)
	if err != nil {
		return nil, err
	}
	for _, c := range pc {
		s.Part = append(s.Part, c.(*array.Int8).Int8Values()...)
	}
	for i, p := range s.Part {
		if p < PartTrain || p > PartTest {
			return nil, fmt.Errorf("read %s: row %d has part %d (want 0 train, 1 valid, 2 test)", path, i, p)
		}
	}
	return s, nil
}

// WriteItems writes items.parquet atomically.
func WriteItems(path string, items []Item, md map[string]string) error {
	mem := memory.DefaultAllocator
	const batch = 1 << 16
	off := 0
	return writeParquet(path, itemsSchema, md, func() (arrow.RecordBatch, error) {
		if off >= len(items) && !(off == 0 && len(items) == 0) {
			return nil, nil
		}
		end := min(off+batch, len(items))
		b := array.NewRecordBuilder(mem, itemsSchema)
		defer b.Release()
		idx := b.Field(0).(*array.Int32Builder)
		id := b.Field(1).(*array.StringBuilder)
		title := b.Field(2).(*array.StringBuilder)
		desc := b.Field(3).(*array.StringBuilder)
		cats := b.Field(4).(*array.ListBuilder)
		catv := cats.ValueBuilder().(*array.StringBuilder)
		brand := b.Field(5).(*array.StringBuilder)
		urls := b.Field(6).(*array.ListBuilder)
		urlv := urls.ValueBuilder().(*array.StringBuilder)
		text := b.Field(7).(*array.StringBuilder)
		price := b.Field(8).(*array.Float64Builder)
		hasMeta := b.Field(9).(*array.BooleanBuilder)
		for _, it := range items[off:end] {
			idx.Append(it.Idx)
			id.Append(it.ID)
			title.Append(it.Title)
			desc.Append(it.Description)
			cats.Append(true)
			for _, c := range it.Categories {
				catv.Append(c)
			}
			brand.Append(it.Brand)
			urls.Append(true)
			for _, u := range it.ImageURLs {
				urlv.Append(u)
			}
			text.Append(it.Text)
			if math.IsNaN(it.Price) {
				price.AppendNull()
			} else {
				price.Append(it.Price)
			}
			hasMeta.Append(it.HasMeta)
		}
		if end == off {
			off = 1
		} else {
			off = end
		}
		return b.NewRecordBatch(), nil
	})
}

// ReadItems reads items.parquet; row r must have item_idx r.
func ReadItems(ctx context.Context, path string) ([]Item, error) {
	tbl, _, err := readParquet(ctx, path)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	n := int(tbl.NumRows())
	items := make([]Item, 0, n)
	strCol := func(name string) ([]string, error) {
		chunks, err := column(tbl, path, name, arrow.BinaryTypes.String)
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, n)
		for _, c := range chunks {
			a := c.(*array.String)
			for i := range a.Len() {
				out = append(out, a.Value(i))
			}
		}
		return out, nil
	}
	listCol := func(name string) ([][]string, error) {
		chunks, err := column(tbl, path, name, arrow.ListOf(arrow.BinaryTypes.String))
		if err != nil {
			return nil, err
		}
		out := make([][]string, 0, n)
		for _, c := range chunks {
			a := c.(*array.List)
			vals := a.ListValues().(*array.String)
			offs := a.Offsets()
			for i := range a.Len() {
				var l []string
				for j := offs[i]; j < offs[i+1]; j++ {
					l = append(l, vals.Value(int(j)))
				}
				out = append(out, l)
			}
		}
		return out, nil
	}
	ids, err := strCol("item_id")
	if err != nil {
		return nil, err
	}
	titles, err := strCol("title")
	if err != nil {
		return nil, err
	}
	descs, err := strCol("description")
	if err != nil {
		return nil, err
	}
	brands, err := strCol("brand")
	if err != nil {
		return nil, err
	}
	texts, err := strCol("text")
	if err != nil {
		return nil, err
	}
	cats, err := listCol("categories")
	if err != nil {
		return nil, err
	}
	urls, err := listCol("image_urls")
	if err != nil {
		return nil, err
	}
	idxc, err := column(tbl, path, "item_idx", arrow.PrimitiveTypes.Int32)
	if err != nil {
		return nil, err
	}
	pc, err := column(tbl, path, "price", arrow.PrimitiveTypes.Float64)
	if err != nil {
		return nil, err
	}
	hc, err := column(tbl, path, "has_meta", arrow.FixedWidthTypes.Boolean)
	if err != nil {
		return nil, err
	}
	var idx []int32
	for _, c := range idxc {
		idx = append(idx, c.(*array.Int32).Int32Values()...)
	}
	var prices []float64
	for _, c := range pc {
		a := c.(*array.Float64)
		for i := range a.Len() {
			if a.IsNull(i) {
				prices = append(prices, math.NaN())
			} else {
				prices = append(prices, a.Value(i))
			}
		}
	}
	var hasMeta []bool
	for _, c := range hc {
		a := c.(*array.Boolean)
		for i := range a.Len() {
			hasMeta = append(hasMeta, a.Value(i))
		}
	}
	for r := range n {
		if idx[r] != int32(r) {
			return nil, fmt.Errorf("read %s: row %d has item_idx %d (rows must be ordered by index)", path, r, idx[r])
		}
		items = append(items, Item{Idx: idx[r], ID: ids[r], Title: titles[r], Description: descs[r], Categories: cats[r],
			Brand: brands[r], ImageURLs: urls[r], Text: texts[r], Price: prices[r], HasMeta: hasMeta[r]})
	}
	return items, nil
}

// WriteUsers writes users.parquet atomically.
func WriteUsers(path string, users []User, md map[string]string) error {
	const batch = 1 << 20
	off := 0
	return writeParquet(path, usersSchema, md, func() (arrow.RecordBatch, error) {
		if off >= len(users) && !(off == 0 && len(users) == 0) {
			return nil, nil
		}
		end := min(off+batch, len(users))
		b := array.NewRecordBuilder(memory.DefaultAllocator, usersSchema)
		defer b.Release()
		idx := b.Field(0).(*array.Int32Builder)
		id := b.Field(1).(*array.StringBuilder)
		for _, u := range users[off:end] {
			idx.Append(u.Idx)
			id.Append(u.ID)
		}
		if end == off {
			off = 1
		} else {
			off = end
		}
		return b.NewRecordBatch(), nil
	})
}

// ReadUsers reads users.parquet; row r must have user_idx r.
func ReadUsers(ctx context.Context, path string) ([]User, error) {
	tbl, _, err := readParquet(ctx, path)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	idxc, err := column(tbl, path, "user_idx", arrow.PrimitiveTypes.Int32)
	if err != nil {
		return nil, err
	}
	idc, err := column(tbl, path, "user_id", arrow.BinaryTypes.String)
	if err != nil {
		return nil, err
	}
	users := make([]User, 0, tbl.NumRows())
	for k, c := range idxc {
		a, ids := c.(*array.Int32), idc[k].(*array.String)
		for i := range a.Len() {
			users = append(users, User{Idx: a.Value(i), ID: ids.Value(i)})
		}
	}
	for r, u := range users {
		if u.Idx != int32(r) {
			return nil, fmt.Errorf("read %s: row %d has user_idx %d (rows must be ordered by index)", path, r, u.Idx)
		}
	}
	return users, nil
}

var labeledSchema = arrow.NewSchema([]arrow.Field{
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "item_id", Type: arrow.BinaryTypes.String},
	{Name: "user_idx", Type: arrow.PrimitiveTypes.Int32},
	{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32},
	{Name: "rating", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "timestamp", Type: arrow.PrimitiveTypes.Int64},
	{Name: "part", Type: arrow.BinaryTypes.String},
}, nil)

// WriteLabeledSplit writes a split joined with raw user and item ids and
// the part as a string ("train", "valid", "test"): the self-describing
// table of `mmpipe export --format parquet`, for DuckDB, Polars or pandas.
func WriteLabeledSplit(path string, s *Split, users []User, items []Item) error {
	const batch = 1 << 18
	off := 0
	return writeParquet(path, labeledSchema, map[string]string{"split": s.Name}, func() (arrow.RecordBatch, error) {
		if off >= s.Len() && !(off == 0 && s.Len() == 0) {
			return nil, nil
		}
		end := min(off+batch, s.Len())
		b := array.NewRecordBuilder(memory.DefaultAllocator, labeledSchema)
		defer b.Release()
		uid := b.Field(0).(*array.StringBuilder)
		iid := b.Field(1).(*array.StringBuilder)
		ui := b.Field(2).(*array.Int32Builder)
		ii := b.Field(3).(*array.Int32Builder)
		rt := b.Field(4).(*array.Float32Builder)
		ts := b.Field(5).(*array.Int64Builder)
		pt := b.Field(6).(*array.StringBuilder)
		for k := off; k < end; k++ {
			u, i := s.User[k], s.Item[k]
			if int(u) >= len(users) || int(i) >= len(items) {
				return nil, fmt.Errorf("row %d: user %d / item %d outside the id maps", k, u, i)
			}
			uid.Append(users[u].ID)
			iid.Append(items[i].ID)
			ui.Append(u)
			ii.Append(i)
			if r := s.Rating[k]; r != r {
				rt.AppendNull()
			} else {
				rt.Append(r)
			}
			ts.Append(s.Timestamp[k])
			pt.Append(PartName(s.Part[k]))
		}
		if end == off {
			off = 1
		} else {
			off = end
		}
		return b.NewRecordBatch(), nil
	})
}

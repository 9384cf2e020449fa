package store

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column names and schema metadata keys of mmpipe feature files (see the
// Contracts section of DESIGN.md).
const (
	FeatureColVector  = "vector"
	FeatureColItemIdx = "item_idx"
	FeatureColNTokens = "n_tokens"

	MetaModality    = "modality"
	MetaEncoder     = "encoder"
	MetaModelSHA256 = "model_sha256"
	MetaPreprocess  = "preprocess"
	MetaPooling     = "pooling"
	MetaNormalized  = "normalized"
	MetaIDMapSHA256 = "idmap_sha256"
	MetaVersion     = "mmpipe_version"
	MetaTokens      = "tokens" // token files only
	MetaDim         = "dim"    // token files only
)

// reservedFeatureMeta reports whether key is one of the metadata keys that
// FeatureMeta's named fields (or the token layout) own.
func reservedFeatureMeta(key string) bool {
	switch key {
	case MetaModality, MetaEncoder, MetaModelSHA256, MetaPreprocess, MetaPooling,
		MetaNormalized, MetaIDMapSHA256, MetaVersion, MetaTokens, MetaDim:
		return true
	}
	return false
}

// featureBatchBytes bounds the vector bytes of one record batch, so that
// readers with body-size limits (arrow-go's default is 256 MiB) can read
// the files; featureBatchMaxRows bounds its rows.
const (
	featureBatchBytes   = 64 << 20
	featureBatchMaxRows = 1 << 20
)

// FeatureMeta is the provenance stored in a feature file's schema metadata.
type FeatureMeta struct {
	Modality    string // "image", "text", ...
	Encoder     string // encoder name, or "imported:<file name>"
	ModelSHA256 string // sha256 of the model file
	Preprocess  string // preprocessing recipe (resize, crop, mean/std, max tokens)
	Pooling     string // "cls", "mean", ...
	Normalized  bool   // vectors are L2-normalised
	IDMapSHA256 string // id map of the dataset the rows belong to
	Version     string // mmpipe version that wrote the file
	// Extra holds any other metadata keys; they must not reuse the names
	// above (nor "tokens" and "dim").
	Extra map[string]string
}

// FeatureMatrix is a whole feature file in memory: row r holds the vector of
// item_idx r. A pooled file has Tokens == 0 and Dim values per row; a token
// file has Tokens*Dim values per row (Tokens token slots of Dim values each)
// and the number of used slots per row in NTokens.
type FeatureMatrix struct {
	Meta   FeatureMeta
	Rows   int
	Dim    int
	Tokens int       // 0 = pooled file
	Data   []float32 // Rows*Dim, or Rows*Tokens*Dim for a token file
	// Valid marks rows that have a vector; nil means all rows do. Rows that
	// are not valid (items without input) are stored as nulls with zero
	// values.
	Valid []bool
	// NTokens is the number of used token slots per row (token files only).
	// When nil in a token file, WriteFeatures stores Tokens for valid rows
	// and 0 for the others.
	NTokens []int32
}

// width returns the number of float32 values per row.
func (m *FeatureMatrix) width() int {
	if m.Tokens > 0 {
		return m.Tokens * m.Dim
	}
	return m.Dim
}

// validate checks that the matrix is self-consistent.
func (m *FeatureMatrix) validate() error {
	if m.Rows < 0 {
		return fmt.Errorf("negative row count %d", m.Rows)
	}
	if m.Dim <= 0 {
		return fmt.Errorf("dim must be positive, got %d", m.Dim)
	}
	if m.Tokens < 0 {
		return fmt.Errorf("negative token count %d", m.Tokens)
	}
	w := int64(m.Dim)
	if m.Tokens > 0 {
		w *= int64(m.Tokens)
	}
	if w > 1<<31-1 {
		return fmt.Errorf("row width %d (tokens %d × dim %d) exceeds Arrow's FixedSizeList limit", w, m.Tokens, m.Dim)
	}
	if want := int64(m.Rows) * w; int64(len(m.Data)) != want {
		return fmt.Errorf("data has %d values, want rows %d × width %d = %d", len(m.Data), m.Rows, w, want)
	}
	if m.Valid != nil && len(m.Valid) != m.Rows {
		return fmt.Errorf("valid has %d entries, want %d rows", len(m.Valid), m.Rows)
	}
	if m.Tokens == 0 && m.NTokens != nil {
		return fmt.Errorf("n_tokens given for a pooled file (tokens = 0)")
	}
	if m.NTokens != nil {
		if len(m.NTokens) != m.Rows {
			return fmt.Errorf("n_tokens has %d entries, want %d rows", len(m.NTokens), m.Rows)
		}
		for r, n := range m.NTokens {
			if n < 0 || int(n) > m.Tokens {
				return fmt.Errorf("n_tokens[%d] = %d is outside [0, %d]", r, n, m.Tokens)
			}
		}
	}
	for k := range m.Meta.Extra {
		if k == "" {
			return fmt.Errorf("empty metadata key in Extra")
		}
		if reservedFeatureMeta(k) {
			return fmt.Errorf("Extra metadata key %q is reserved", k)
		}
	}
	return nil
}

// metadata returns the schema metadata for m, named keys first, then the
// Extra keys in sorted order.
func (m *FeatureMatrix) metadata() arrow.Metadata {
	md := m.Meta
	keys := []string{MetaModality, MetaEncoder, MetaModelSHA256, MetaPreprocess, MetaPooling, MetaNormalized, MetaIDMapSHA256, MetaVersion}
	vals := []string{md.Modality, md.Encoder, md.ModelSHA256, md.Preprocess, md.Pooling, strconv.FormatBool(md.Normalized), md.IDMapSHA256, md.Version}
	if m.Tokens > 0 {
		keys = append(keys, MetaTokens, MetaDim)
		vals = append(vals, strconv.Itoa(m.Tokens), strconv.Itoa(m.Dim))
	}
	for _, k := range slices.Sorted(maps.Keys(md.Extra)) {
		keys = append(keys, k)
		vals = append(vals, md.Extra[k])
	}
	return arrow.NewMetadata(keys, vals)
}

// featureSchema returns the Arrow schema of a feature file.
func featureSchema(width int, tokenFile bool, md arrow.Metadata) *arrow.Schema {
	fields := []arrow.Field{
		{Name: FeatureColItemIdx, Type: arrow.PrimitiveTypes.Int32},
		{Name: FeatureColVector, Type: arrow.FixedSizeListOfNonNullable(int32(width), arrow.PrimitiveTypes.Float32), Nullable: true},
	}
	if tokenFile {
		fields = append(fields, arrow.Field{Name: FeatureColNTokens, Type: arrow.PrimitiveTypes.Int32})
	}
	return arrow.NewSchema(fields, &md)
}

// WriteFeatures writes m as an mmpipe feature file: an uncompressed Arrow IPC
// file with the columns item_idx (int32, = row number), vector
// (FixedSizeList<float32>[width], null where m.Valid is false) and, for
// token files, n_tokens (int32), and m.Meta in the schema metadata. The
// vectors are written straight from m.Data, without copying, in record
// batches of at most 64 MiB of vectors (and 1<<20 rows); only a batch whose
// invalid rows hold non-zero values is copied, to store zeros there. m is not
// modified. The file is written to a temporary file in the same directory,
// synced and renamed into place.
func WriteFeatures(path string, m *FeatureMatrix) error {
	if m == nil {
		return fmt.Errorf("features: %s: nil matrix", path)
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("features: %s: %w", path, err)
	}
	width := m.width()
	return writeFeaturesBatched(path, m, min(featureBatchMaxRows, max(1, featureBatchBytes/(4*width))))
}

// writeFeaturesBatched is WriteFeatures with batchRows rows per record
// batch; m must be valid.
func writeFeaturesBatched(path string, m *FeatureMatrix, batchRows int) error {
	width := m.width()
	schema := featureSchema(width, m.Tokens > 0, m.metadata())
	err := writeFileAtomicFunc(path, func(w io.Writer) error {
		fw, err := ipc.NewFileWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return err
		}
		for start := 0; start < m.Rows; start += batchRows {
			end := min(m.Rows, start+batchRows)
			rec := buildFeatureBatch(schema, m, width, start, end)
			err := fw.Write(rec)
			rec.Release()
			if err != nil {
				return fmt.Errorf("write rows %d..%d: %w", start, end, err)
			}
		}
		return fw.Close()
	})
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	return nil
}

// buildFeatureBatch builds the record batch of rows [start, end) of m, with
// offset 0 and buffers that alias m's slices where possible.
func buildFeatureBatch(schema *arrow.Schema, m *FeatureMatrix, width, start, end int) arrow.RecordBatch {
	n := end - start
	vals := m.Data[start*width : end*width]

	var validity *memory.Buffer
	nulls := 0
	if m.Valid != nil {
		bits := make([]byte, bitutil.BytesForBits(int64(n)))
		copied := false
		for i, ok := range m.Valid[start:end] {
			if ok {
				bitutil.SetBit(bits, i)
				continue
			}
			nulls++
			row := vals[i*width : (i+1)*width]
			if !copied && slices.ContainsFunc(row, func(v float32) bool { return v != 0 }) {
				vals = slices.Clone(vals)
				copied = true
				row = vals[i*width : (i+1)*width]
			}
			if copied {
				clear(row)
			}
		}
		if nulls > 0 {
			validity = memory.NewBufferBytes(bits)
		}
	}

	childData := array.NewData(arrow.PrimitiveTypes.Float32, n*width,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(vals))}, nil, 0, 0)
	vecData := array.NewData(schema.Field(1).Type, n, []*memory.Buffer{validity}, []arrow.ArrayData{childData}, nulls, 0)
	childData.Release()
	vec := array.MakeFromData(vecData)
	vecData.Release()

	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(start + i)
	}
	idxData := array.NewData(arrow.PrimitiveTypes.Int32, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(idx))}, nil, 0, 0)
	idxArr := array.MakeFromData(idxData)
	idxData.Release()

	cols := []arrow.Array{idxArr, vec}
	if m.Tokens > 0 {
		var nt []int32
		if m.NTokens != nil {
			nt = m.NTokens[start:end]
		} else {
			nt = make([]int32, n)
			for i := range nt {
				if m.Valid == nil || m.Valid[start+i] {
					nt[i] = int32(m.Tokens)
				}
			}
		}
		ntData := array.NewData(arrow.PrimitiveTypes.Int32, n,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(nt))}, nil, 0, 0)
		cols = append(cols, array.MakeFromData(ntData))
		ntData.Release()
	}
	rec := array.NewRecordBatch(schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// featureBatch is one record batch of an open feature file.
type featureBatch struct {
	start   int // first row
	rec     arrow.RecordBatch
	vec     *array.FixedSizeList
	vals    []float32 // the batch's vectors, row i at vals[i*width:]
	nTokens []int32   // token files only
}

// FeatureFile is an open, memory-mapped feature file. Its vectors are read
// in place from the mapping; slices returned by Vector stay valid until
// Close. The methods are safe for concurrent use, except Close.
type FeatureFile struct {
	path    string
	data    []byte // the mapping
	reader  *ipc.FileReader
	meta    FeatureMeta
	rows    int
	dim     int
	tokens  int
	width   int
	present int
	batches []featureBatch
}

// OpenFeatures memory-maps an mmpipe feature file (read-only) and checks its
// schema: a "vector" column of FixedSizeList<float32>, an int32 "item_idx"
// column equal to the row number, a consistent "dim"/"tokens" layout and, for
// token files, an int32 "n_tokens" column. Vectors are not copied.
func OpenFeatures(path string) (_ *FeatureFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("features: %w", err)
	}
	size := st.Size()
	if size < 8 || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("features: %s: not an Arrow IPC file (%d bytes)", path, size)
	}
	if int64(int(size)) != size {
		f.Close()
		return nil, fmt.Errorf("features: %s: file too large to map (%d bytes)", path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("features: %s: mmap %d bytes: %w", path, size, err)
	}
	ff := &FeatureFile{path: path, data: data}
	defer func() {
		// The IPC reader trusts offsets in the file; turn a panic on a
		// corrupt file into an error.
		if p := recover(); p != nil {
			err = fmt.Errorf("features: %s: corrupt Arrow IPC file: %v", path, p)
		}
		if err != nil {
			ff.Close()
		}
	}()
	if !bytes.HasPrefix(data, []byte("ARROW1")) {
		return nil, fmt.Errorf("features: %s: not an Arrow IPC file: no ARROW1 magic at offset 0 (an IPC stream or another format?)", path)
	}
	if err := checkIPCFooter(data); err != nil {
		return nil, fmt.Errorf("features: %s: truncated or not an Arrow IPC file: %w", path, err)
	}
	rd, err := ipc.NewMappedFileReader(data, ipc.WithBodySizeLimit(size), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, fmt.Errorf("features: %s: truncated or not an Arrow IPC file: %w", path, err)
	}
	ff.reader = rd
	if err := ff.load(); err != nil {
		return nil, fmt.Errorf("features: %s: %w", path, err)
	}
	return ff, nil
}

// load checks the schema and collects the record batches.
func (ff *FeatureFile) load() error {
	schema := ff.reader.Schema()
	vecIdx := schema.FieldIndices(FeatureColVector)
	if len(vecIdx) != 1 {
		names := make([]string, 0, schema.NumFields())
		for _, fd := range schema.Fields() {
			names = append(names, fd.Name)
		}
		return fmt.Errorf("not an mmpipe feature file: want one column %q, columns are [%s]", FeatureColVector, strings.Join(names, ", "))
	}
	vt, ok := schema.Field(vecIdx[0]).Type.(*arrow.FixedSizeListType)
	if !ok || vt.Elem().ID() != arrow.FLOAT32 {
		return fmt.Errorf("column %q is %s, want fixed_size_list<float32>[d]", FeatureColVector, schema.Field(vecIdx[0]).Type)
	}
	ff.width = int(vt.Len())
	idxIdx := schema.FieldIndices(FeatureColItemIdx)
	if len(idxIdx) != 1 || schema.Field(idxIdx[0]).Type.ID() != arrow.INT32 {
		return fmt.Errorf("not an mmpipe feature file: want one int32 column %q", FeatureColItemIdx)
	}

	md := schema.Metadata()
	meta := FeatureMeta{
		Modality:    metaValue(md, MetaModality),
		Encoder:     metaValue(md, MetaEncoder),
		ModelSHA256: metaValue(md, MetaModelSHA256),
		Preprocess:  metaValue(md, MetaPreprocess),
		Pooling:     metaValue(md, MetaPooling),
		IDMapSHA256: metaValue(md, MetaIDMapSHA256),
		Version:     metaValue(md, MetaVersion),
	}
	switch v := metaValue(md, MetaNormalized); v {
	case "true":
		meta.Normalized = true
	case "false", "":
	default:
		return fmt.Errorf("metadata %s = %q, want \"true\" or \"false\"", MetaNormalized, v)
	}
	for i, k := range md.Keys() {
		if k == "" {
			// WriteFeatures refuses it too: a file read must write back.
			return fmt.Errorf("schema metadata has an empty key")
		}
		if !reservedFeatureMeta(k) {
			if meta.Extra == nil {
				meta.Extra = map[string]string{}
			}
			meta.Extra[k] = md.Values()[i]
		}
	}
	ff.meta = meta

	ntIdx := -1
	tokStr, dimStr := metaValue(md, MetaTokens), metaValue(md, MetaDim)
	ff.dim = ff.width
	if tokStr != "" {
		tokens, err := strconv.Atoi(tokStr)
		if err != nil || tokens <= 0 {
			return fmt.Errorf("metadata %s = %q, want a positive integer", MetaTokens, tokStr)
		}
		dim, err := strconv.Atoi(dimStr)
		if err != nil || dim <= 0 {
			return fmt.Errorf("token file: metadata %s = %q, want a positive integer", MetaDim, dimStr)
		}
		if tokens*dim != ff.width {
			return fmt.Errorf("dim mismatch: metadata says %d tokens × dim %d = %d values per row, column %q has %d", tokens, dim, tokens*dim, FeatureColVector, ff.width)
		}
		ff.tokens, ff.dim = tokens, dim
		idx := schema.FieldIndices(FeatureColNTokens)
		if len(idx) != 1 || schema.Field(idx[0]).Type.ID() != arrow.INT32 {
			return fmt.Errorf("token file lacks an int32 column %q", FeatureColNTokens)
		}
		ntIdx = idx[0]
	} else if dimStr != "" {
		dim, err := strconv.Atoi(dimStr)
		if err != nil || dim != ff.width {
			return fmt.Errorf("dim mismatch: metadata %s = %q, column %q has %d values per row", MetaDim, dimStr, FeatureColVector, ff.width)
		}
	}

	for i := 0; i < ff.reader.NumRecords(); i++ {
		rec, err := ff.reader.RecordBatchAt(i)
		if err != nil {
			return fmt.Errorf("record batch %d: %w", i, err)
		}
		b := featureBatch{start: ff.rows, rec: rec}
		ff.batches = append(ff.batches, b) // so Close releases it
		n := int(rec.NumRows())
		vec, ok := rec.Column(vecIdx[0]).(*array.FixedSizeList)
		if !ok {
			return fmt.Errorf("record batch %d: column %q is %T", i, FeatureColVector, rec.Column(vecIdx[0]))
		}
		if vec.Len() != n {
			return fmt.Errorf("record batch %d: column %q has %d rows, the batch %d", i, FeatureColVector, vec.Len(), n)
		}
		child, ok := vec.ListValues().(*array.Float32)
		if !ok {
			return fmt.Errorf("record batch %d: column %q holds %T, want float32", i, FeatureColVector, vec.ListValues())
		}
		if child.NullN() != 0 {
			return fmt.Errorf("record batch %d: column %q has %d null elements inside its vectors", i, FeatureColVector, child.NullN())
		}
		all := child.Float32Values()
		lo, hi := vec.Offset()*ff.width, (vec.Offset()+n)*ff.width
		if hi > len(all) {
			return fmt.Errorf("record batch %d: column %q has %d values, %d rows of %d need %d", i, FeatureColVector, len(all), n, ff.width, hi)
		}
		b.vec = vec
		b.vals = all[lo:hi:hi]
		idxCol, ok := rec.Column(idxIdx[0]).(*array.Int32)
		if !ok || idxCol.NullN() != 0 {
			return fmt.Errorf("record batch %d: column %q is not a null-free int32 column", i, FeatureColItemIdx)
		}
		for j, v := range idxCol.Int32Values() {
			if int(v) != ff.rows+j {
				return fmt.Errorf("record batch %d: row %d has %s %d: rows must be ordered by item index from 0", i, ff.rows+j, FeatureColItemIdx, v)
			}
		}
		if ntIdx >= 0 {
			nt, ok := rec.Column(ntIdx).(*array.Int32)
			if !ok || nt.NullN() != 0 {
				return fmt.Errorf("record batch %d: column %q is not a null-free int32 column", i, FeatureColNTokens)
			}
			b.nTokens = nt.Int32Values()
			for j, v := range b.nTokens {
				if v < 0 || int(v) > ff.tokens {
					return fmt.Errorf("record batch %d: row %d has %s %d, outside [0, %d]", i, ff.rows+j, FeatureColNTokens, v, ff.tokens)
				}
			}
		}
		// Count the valid rows from the bitmap IsValid reads: the null count
		// in the file is not checked against it by the IPC reader.
		valid := n
		if bm := vec.NullBitmapBytes(); len(bm) > 0 {
			off := vec.Data().Offset()
			if len(bm)*8 < off+n {
				return fmt.Errorf("record batch %d: column %q has a validity bitmap of %d bytes for %d rows", i, FeatureColVector, len(bm), n)
			}
			valid = bitutil.CountSetBits(bm, off, n)
		}
		ff.batches[len(ff.batches)-1] = b
		ff.rows += n
		ff.present += valid
	}
	return nil
}

// metaValue returns the value of key in md, or "".
func metaValue(md arrow.Metadata, key string) string {
	if i := md.FindKey(key); i >= 0 {
		return md.Values()[i]
	}
	return ""
}

// Path returns the file's path.
func (ff *FeatureFile) Path() string { return ff.path }

// Meta returns the file's provenance metadata (a copy).
func (ff *FeatureFile) Meta() FeatureMeta {
	m := ff.meta
	m.Extra = maps.Clone(ff.meta.Extra)
	return m
}

// Rows returns the number of rows (= items).
func (ff *FeatureFile) Rows() int { return ff.rows }

// Dim returns the vector dimension (per token, in a token file).
func (ff *FeatureFile) Dim() int { return ff.dim }

// Tokens returns the number of token slots per row, or 0 for a pooled file.
func (ff *FeatureFile) Tokens() int { return ff.tokens }

// Present returns the number of rows with a vector (non-null rows).
func (ff *FeatureFile) Present() int { return ff.present }

// batch returns the batch holding row r and r's position in it. It panics,
// like a slice index, when r is out of range.
func (ff *FeatureFile) batch(r int) (*featureBatch, int) {
	if r < 0 || r >= ff.rows {
		panic(fmt.Sprintf("features: %s: row %d out of range [0, %d)", ff.path, r, ff.rows))
	}
	i := sort.Search(len(ff.batches), func(i int) bool { return ff.batches[i].start > r }) - 1
	b := &ff.batches[i]
	return b, r - b.start
}

// Valid reports whether row r has a vector.
func (ff *FeatureFile) Valid(r int) bool {
	b, j := ff.batch(r)
	return b.vec.IsValid(j)
}

// Vector returns row r's values (Dim of them, or Tokens*Dim in a token file)
// as a slice into the mapped file: no copy is made, the slice must not be
// written to, and it is valid only until Close. Rows that are not valid hold
// zeros.
func (ff *FeatureFile) Vector(r int) []float32 {
	b, j := ff.batch(r)
	return b.vals[j*ff.width : (j+1)*ff.width : (j+1)*ff.width]
}

// NTokens returns the number of used token slots of row r (0 in a pooled
// file).
func (ff *FeatureFile) NTokens(r int) int {
	b, j := ff.batch(r)
	if b.nTokens == nil {
		return 0
	}
	return int(b.nTokens[j])
}

// Matrix copies the whole file into memory. Valid is nil when every row is
// present.
func (ff *FeatureFile) Matrix() *FeatureMatrix {
	m := &FeatureMatrix{
		Meta:   ff.Meta(),
		Rows:   ff.rows,
		Dim:    ff.dim,
		Tokens: ff.tokens,
		Data:   make([]float32, 0, ff.rows*ff.width),
	}
	if ff.present != ff.rows {
		m.Valid = make([]bool, 0, ff.rows)
	}
	if ff.tokens > 0 {
		m.NTokens = make([]int32, 0, ff.rows)
	}
	for i := range ff.batches {
		b := &ff.batches[i]
		m.Data = append(m.Data, b.vals...)
		if m.Valid != nil {
			for j := 0; j < b.vec.Len(); j++ {
				m.Valid = append(m.Valid, b.vec.IsValid(j))
			}
		}
		if m.NTokens != nil {
			m.NTokens = append(m.NTokens, b.nTokens...)
		}
	}
	return m
}

// Close releases the record batches and unmaps the file. Slices returned by
// Vector must not be used afterwards.
func (ff *FeatureFile) Close() error {
	for i := range ff.batches {
		ff.batches[i].rec.Release()
	}
	ff.batches = nil
	if ff.reader != nil {
		ff.reader.Close()
		ff.reader = nil
	}
	if ff.data != nil {
		err := syscall.Munmap(ff.data)
		ff.data = nil
		if err != nil {
			return fmt.Errorf("features: %s: munmap: %w", ff.path, err)
		}
	}
	return nil
}

// ReadFeatureMeta returns a feature file's metadata, row count and dimension
// (per token, in a token file) without copying its vectors.
func ReadFeatureMeta(path string) (meta FeatureMeta, rows, dim int, err error) {
	ff, err := OpenFeatures(path)
	if err != nil {
		return FeatureMeta{}, 0, 0, err
	}
	defer ff.Close()
	return ff.Meta(), ff.Rows(), ff.Dim(), nil
}

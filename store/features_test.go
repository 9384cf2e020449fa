package store

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func testMeta() FeatureMeta {
	return FeatureMeta{
		Modality:    "image",
		Encoder:     "clip-vit-b32",
		ModelSHA256: strings.Repeat("ab", 32),
		Preprocess:  "resize=224,bicubic,center-crop,mean=0.481,0.458,0.408",
		Pooling:     "cls",
		Normalized:  true,
		IDMapSHA256: strings.Repeat("cd", 32),
		Version:     "0.1.0-test",
		Extra:       map[string]string{"source": "unit test", "x.y": ""},
	}
}

// randomMatrix returns a rows×width matrix with every third row invalid
// (zero values) when withInvalid is set.
func randomMatrix(rows, dim, tokens int, withInvalid bool, seed uint64) *FeatureMatrix {
	r := rand.New(rand.NewPCG(seed, 1))
	m := &FeatureMatrix{Meta: testMeta(), Rows: rows, Dim: dim, Tokens: tokens}
	w := m.width()
	m.Data = make([]float32, rows*w)
	for i := range m.Data {
		m.Data[i] = float32(r.NormFloat64())
	}
	if withInvalid {
		m.Valid = make([]bool, rows)
		for i := range m.Valid {
			m.Valid[i] = i%3 != 1
			if !m.Valid[i] {
				clear(m.Data[i*w : (i+1)*w])
			}
		}
	}
	if tokens > 0 {
		m.NTokens = make([]int32, rows)
		for i := range m.NTokens {
			if m.Valid == nil || m.Valid[i] {
				m.NTokens[i] = int32(1 + r.IntN(tokens))
			}
		}
	}
	return m
}

// checkMatrix compares an open file with the matrix it was written from.
func checkMatrix(t *testing.T, ff *FeatureFile, m *FeatureMatrix) {
	t.Helper()
	if ff.Rows() != m.Rows || ff.Dim() != m.Dim || ff.Tokens() != m.Tokens {
		t.Fatalf("rows/dim/tokens %d/%d/%d, want %d/%d/%d", ff.Rows(), ff.Dim(), ff.Tokens(), m.Rows, m.Dim, m.Tokens)
	}
	if !reflect.DeepEqual(ff.Meta(), m.Meta) {
		t.Errorf("meta %+v, want %+v", ff.Meta(), m.Meta)
	}
	w := m.width()
	present := 0
	for r := 0; r < m.Rows; r++ {
		valid := m.Valid == nil || m.Valid[r]
		if valid {
			present++
		}
		if ff.Valid(r) != valid {
			t.Fatalf("row %d: valid %v, want %v", r, ff.Valid(r), valid)
		}
		want := m.Data[r*w : (r+1)*w]
		if !valid {
			want = make([]float32, w)
		}
		if got := ff.Vector(r); !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d: vector differs (len %d, want %d)", r, len(got), len(want))
		}
		wantNT := 0
		if m.NTokens != nil {
			wantNT = int(m.NTokens[r])
		}
		if ff.NTokens(r) != wantNT {
			t.Fatalf("row %d: n_tokens %d, want %d", r, ff.NTokens(r), wantNT)
		}
	}
	if ff.Present() != present {
		t.Errorf("Present = %d, want %d", ff.Present(), present)
	}
}

func TestFeaturesRoundTrip(t *testing.T) {
	cases := []struct {
		name                 string
		rows, dim, tokens    int
		invalid              bool
		batchRows, wantBatch int
	}{
		{"pooled all valid", 10, 8, 0, false, 1 << 20, 1},
		{"pooled with nulls", 25, 3, 0, true, 1 << 20, 1},
		{"pooled several batches", 25, 4, 0, true, 7, 4},
		{"tokens", 9, 4, 5, true, 1 << 20, 1},
		{"tokens several batches", 9, 2, 3, false, 4, 3},
		{"empty", 0, 16, 0, false, 1 << 20, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := randomMatrix(c.rows, c.dim, c.tokens, c.invalid, uint64(i))
			p := filepath.Join(t.TempDir(), "f.arrow")
			if err := writeFeaturesBatched(p, m, c.batchRows); err != nil {
				t.Fatal(err)
			}
			ff, err := OpenFeatures(p)
			if err != nil {
				t.Fatal(err)
			}
			defer ff.Close()
			if len(ff.batches) != c.wantBatch {
				t.Errorf("%d record batches, want %d", len(ff.batches), c.wantBatch)
			}
			checkMatrix(t, ff, m)
			got := ff.Matrix()
			if !reflect.DeepEqual(got, m) {
				t.Errorf("Matrix() = %+v, want %+v", got, m)
			}
			meta, rows, dim, err := ReadFeatureMeta(p)
			if err != nil || rows != c.rows || dim != c.dim || !reflect.DeepEqual(meta, m.Meta) {
				t.Errorf("ReadFeatureMeta = %+v %d %d %v", meta, rows, dim, err)
			}
		})
	}
}

func TestFeaturesWriteDetails(t *testing.T) {
	dir := t.TempDir()
	// Invalid rows with non-zero values are stored as zeros; the input is
	// left alone. Missing NTokens default to Tokens for valid rows.
	m := &FeatureMatrix{Rows: 3, Dim: 2, Tokens: 2,
		Data:  []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Valid: []bool{true, false, true}}
	p := filepath.Join(dir, "t.tokens.arrow")
	if err := WriteFeatures(p, m); err != nil {
		t.Fatal(err)
	}
	if m.Data[4] != 5 {
		t.Error("WriteFeatures modified the input")
	}
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	if v := ff.Vector(1); !reflect.DeepEqual(v, []float32{0, 0, 0, 0}) {
		t.Errorf("invalid row stored as %v", v)
	}
	if ff.NTokens(0) != 2 || ff.NTokens(1) != 0 || ff.NTokens(2) != 2 {
		t.Errorf("default n_tokens %d %d %d", ff.NTokens(0), ff.NTokens(1), ff.NTokens(2))
	}
	md := ff.reader.Schema().Metadata()
	for k, want := range map[string]string{"tokens": "2", "dim": "2", "normalized": "false", "modality": ""} {
		if got := metaValue(md, k); got != want || md.FindKey(k) < 0 {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	if ff.Meta().Extra != nil {
		t.Errorf("Extra = %v, want nil", ff.Meta().Extra)
	}
	// A pooled file has no tokens/dim keys and no n_tokens column.
	p2 := filepath.Join(dir, "p.arrow")
	if err := WriteFeatures(p2, &FeatureMatrix{Rows: 1, Dim: 3, Data: []float32{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	ff2, err := OpenFeatures(p2)
	if err != nil {
		t.Fatal(err)
	}
	defer ff2.Close()
	sc := ff2.reader.Schema()
	if sc.Metadata().FindKey("tokens") >= 0 || sc.Metadata().FindKey("dim") >= 0 || sc.HasField(FeatureColNTokens) {
		t.Errorf("pooled schema %v", sc)
	}
	want := "fixed_size_list<item: float32>[3]"
	if got := sc.Field(sc.FieldIndices("vector")[0]).Type.String(); got != want {
		t.Errorf("vector type %s, want %s", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestFeaturesWriteErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		m    *FeatureMatrix
		want string
	}{
		{"nil", nil, "nil matrix"},
		{"short data", &FeatureMatrix{Rows: 2, Dim: 3, Data: make([]float32, 5)}, "data has 5 values, want rows 2 × width 3 = 6"},
		{"zero dim", &FeatureMatrix{Rows: 0, Dim: 0}, "dim must be positive"},
		{"valid length", &FeatureMatrix{Rows: 2, Dim: 1, Data: make([]float32, 2), Valid: []bool{true}}, "valid has 1 entries"},
		{"reserved extra", &FeatureMatrix{Rows: 1, Dim: 1, Data: make([]float32, 1), Meta: FeatureMeta{Extra: map[string]string{"encoder": "x"}}}, `"encoder" is reserved`},
		{"n_tokens pooled", &FeatureMatrix{Rows: 1, Dim: 1, Data: make([]float32, 1), NTokens: []int32{1}}, "pooled"},
		{"n_tokens range", &FeatureMatrix{Rows: 1, Dim: 1, Tokens: 2, Data: make([]float32, 2), NTokens: []int32{3}}, "outside [0, 2]"},
		{"token data", &FeatureMatrix{Rows: 1, Dim: 2, Tokens: 2, Data: make([]float32, 2)}, "want rows 1 × width 4 = 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "x.arrow")
			err := WriteFeatures(p, c.m)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %v, want one naming the file and containing %q", err, c.want)
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("file created: %v", err)
			}
		})
	}
}

// TestFeaturesZeroCopy checks that vectors point into the mapping.
func TestFeaturesZeroCopy(t *testing.T) {
	m := randomMatrix(100, 16, 0, true, 7)
	p := filepath.Join(t.TempDir(), "z.arrow")
	if err := writeFeaturesBatched(p, m, 30); err != nil {
		t.Fatal(err)
	}
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(ff.data)))
	hi := lo + uintptr(len(ff.data))
	for _, r := range []int{0, 1, 29, 30, 31, 99} {
		v := ff.Vector(r)
		start := uintptr(unsafe.Pointer(&v[0]))
		end := start + uintptr(4*len(v))
		if start < lo || end > hi {
			t.Errorf("row %d: vector at %#x..%#x is outside the mapping %#x..%#x", r, start, end, lo, hi)
		}
		if cap(v) != len(v) {
			t.Errorf("row %d: cap %d > len %d lets appends overwrite the next row", r, cap(v), len(v))
		}
	}
}

// writeRawArrow writes an Arrow IPC file with the given schema and columns.
func writeRawArrow(t *testing.T, path string, schema *arrow.Schema, cols []arrow.Array) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	rec := array.NewRecordBatch(schema, cols, int64(cols[0].Len()))
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFeaturesSchemaErrors(t *testing.T) {
	dir := t.TempDir()
	mem := memory.NewGoAllocator()
	int32s := func(v ...int32) arrow.Array {
		b := array.NewInt32Builder(mem)
		b.AppendValues(v, nil)
		return b.NewArray()
	}
	fsl := func(n int32, elem arrow.DataType, rows int) arrow.Array {
		b := array.NewFixedSizeListBuilder(mem, n, elem)
		for r := 0; r < rows; r++ {
			b.Append(true)
			for j := 0; j < int(n); j++ {
				switch vb := b.ValueBuilder().(type) {
				case *array.Float32Builder:
					vb.Append(float32(j))
				case *array.Float64Builder:
					vb.Append(float64(j))
				}
			}
		}
		return b.NewArray()
	}
	md := func(kv ...string) *arrow.Metadata {
		var k, v []string
		for i := 0; i < len(kv); i += 2 {
			k, v = append(k, kv[i]), append(v, kv[i+1])
		}
		m := arrow.NewMetadata(k, v)
		return &m
	}
	f32List := func(n int32) arrow.DataType { return arrow.FixedSizeListOf(n, arrow.PrimitiveTypes.Float32) }
	cases := []struct {
		name   string
		fields []arrow.Field
		md     *arrow.Metadata
		cols   []arrow.Array
		want   string
	}{
		{"no vector column",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "emb", Type: f32List(2)}}, nil,
			[]arrow.Array{int32s(0, 1), fsl(2, arrow.PrimitiveTypes.Float32, 2)},
			`not an mmpipe feature file: want one column "vector", columns are [item_idx, emb]`},
		{"float64 vectors",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64)}}, nil,
			[]arrow.Array{int32s(0, 1), fsl(2, arrow.PrimitiveTypes.Float64, 2)},
			`column "vector" is fixed_size_list<item: float64, nullable>[2], want fixed_size_list<float32>[d]`},
		{"vector not a list",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: arrow.PrimitiveTypes.Int32}}, nil,
			[]arrow.Array{int32s(0, 1), int32s(5, 6)},
			`column "vector" is int32`},
		{"no item_idx",
			[]arrow.Field{{Name: "vector", Type: f32List(2)}}, nil,
			[]arrow.Array{fsl(2, arrow.PrimitiveTypes.Float32, 2)},
			`want one int32 column "item_idx"`},
		{"item_idx out of order",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: f32List(2)}}, nil,
			[]arrow.Array{int32s(0, 2), fsl(2, arrow.PrimitiveTypes.Float32, 2)},
			"row 1 has item_idx 2"},
		{"pooled dim mismatch",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: f32List(2)}}, md("dim", "3"),
			[]arrow.Array{int32s(0), fsl(2, arrow.PrimitiveTypes.Float32, 1)},
			`dim mismatch: metadata dim = "3", column "vector" has 2 values per row`},
		{"token dim mismatch",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: f32List(6)}, {Name: "n_tokens", Type: arrow.PrimitiveTypes.Int32}}, md("tokens", "2", "dim", "4"),
			[]arrow.Array{int32s(0), fsl(6, arrow.PrimitiveTypes.Float32, 1), int32s(1)},
			"dim mismatch: metadata says 2 tokens × dim 4 = 8 values per row"},
		{"token file without n_tokens",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: f32List(6)}}, md("tokens", "2", "dim", "3"),
			[]arrow.Array{int32s(0), fsl(6, arrow.PrimitiveTypes.Float32, 1)},
			`token file lacks an int32 column "n_tokens"`},
		{"bad normalized",
			[]arrow.Field{{Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}, {Name: "vector", Type: f32List(2)}}, md("normalized", "yes"),
			[]arrow.Array{int32s(0), fsl(2, arrow.PrimitiveTypes.Float32, 1)},
			`normalized = "yes"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".arrow")
			writeRawArrow(t, p, arrow.NewSchema(c.fields, c.md), c.cols)
			ff, err := OpenFeatures(p)
			if err == nil {
				ff.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %v, want one naming the file and containing %q", err, c.want)
			}
		})
	}

	// A foreign but conforming file (nullable child, default builder types)
	// opens fine.
	p := filepath.Join(dir, "foreign.arrow")
	writeRawArrow(t, p, arrow.NewSchema([]arrow.Field{{Name: "vector", Type: f32List(3), Nullable: true}, {Name: "item_idx", Type: arrow.PrimitiveTypes.Int32}}, md("encoder", "e", "note", "hi")),
		[]arrow.Array{fsl(3, arrow.PrimitiveTypes.Float32, 2), int32s(0, 1)})
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatal(err)
	}
	if ff.Rows() != 2 || ff.Dim() != 3 || ff.Present() != 2 || !reflect.DeepEqual(ff.Vector(1), []float32{0, 1, 2}) || ff.Meta().Encoder != "e" || ff.Meta().Extra["note"] != "hi" {
		t.Errorf("foreign file: rows %d dim %d meta %+v", ff.Rows(), ff.Dim(), ff.Meta())
	}
	ff.Close()
}

func TestFeaturesNotArrow(t *testing.T) {
	dir := t.TempDir()
	npy := filepath.Join(dir, "x.npy")
	if err := WriteNPY(npy, []int{2}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.arrow")
	os.WriteFile(empty, nil, 0o644)
	trunc := filepath.Join(dir, "trunc.arrow")
	good := filepath.Join(dir, "good.arrow")
	if err := WriteFeatures(good, randomMatrix(50, 8, 0, false, 1)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	os.WriteFile(trunc, raw[:len(raw)-100], 0o644)
	for path, want := range map[string]string{
		npy:                           "not an Arrow IPC file",
		empty:                         "not an Arrow IPC file (0 bytes)",
		trunc:                         "truncated or not an Arrow IPC file",
		filepath.Join(dir, "missing"): "no such file",
		dir:                           "not an Arrow IPC file",
	} {
		ff, err := OpenFeatures(path)
		if err == nil {
			ff.Close()
			t.Errorf("%s: opened", path)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
}

func TestFeaturesVectorOutOfRange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.arrow")
	if err := WriteFeatures(p, randomMatrix(3, 2, 0, false, 1)); err != nil {
		t.Fatal(err)
	}
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "row 3 out of range [0, 3)") {
			t.Errorf("panic %v", p)
		}
	}()
	ff.Vector(3)
}

func TestFeaturesSpecialValues(t *testing.T) {
	m := &FeatureMatrix{Rows: 2, Dim: 3, Data: []float32{float32(math.Inf(1)), float32(math.NaN()), -0.0, 1e-45, math.MaxFloat32, -1}}
	p := filepath.Join(t.TempDir(), "s.arrow")
	if err := WriteFeatures(p, m); err != nil {
		t.Fatal(err)
	}
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	for r := 0; r < 2; r++ {
		for j, v := range ff.Vector(r) {
			if math.Float32bits(v) != math.Float32bits(m.Data[r*3+j]) {
				t.Errorf("row %d col %d: %v, want %v", r, j, v, m.Data[r*3+j])
			}
		}
	}
}

// BenchmarkOpenFeatures opens (and closes) a 100k × 512 feature file and
// touches one value per row.
func BenchmarkOpenFeatures(b *testing.B) {
	const rows, dim = 100_000, 512
	m := &FeatureMatrix{Meta: testMeta(), Rows: rows, Dim: dim, Data: make([]float32, rows*dim), Valid: make([]bool, rows)}
	for i := range m.Data {
		m.Data[i] = float32(i % 1000)
	}
	for i := range m.Valid {
		m.Valid[i] = i%10 != 0
		if !m.Valid[i] {
			clear(m.Data[i*dim : (i+1)*dim])
		}
	}
	p := filepath.Join(b.TempDir(), "bench.arrow")
	if err := WriteFeatures(p, m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * rows * dim))
	b.ResetTimer()
	for b.Loop() {
		ff, err := OpenFeatures(p)
		if err != nil {
			b.Fatal(err)
		}
		var s float32
		for r := 0; r < ff.Rows(); r++ {
			s += ff.Vector(r)[r%dim]
		}
		if ff.Present() != rows-rows/10 || s == 0 {
			b.Fatalf("present %d, sum %v", ff.Present(), s)
		}
		ff.Close()
	}
}

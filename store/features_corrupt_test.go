package store

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/endian"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Corrupt feature files found by FuzzOpenFeatures: each must be an error of
// OpenFeatures, never a crash, nor a file that reads but cannot be written
// back or counts its rows wrong.

var corruptSeed = &FeatureMatrix{Meta: FeatureMeta{Modality: "image"}, Rows: 3, Dim: 2,
	Data: []float32{1, 2, 0, 0, 5, -1}, Valid: []bool{true, false, true}}

// writeRaw writes m with schema metadata md and endianness e through the IPC
// writer directly, bypassing WriteFeatures' checks.
func writeRaw(t *testing.T, m *FeatureMatrix, md arrow.Metadata, e endian.Endianness) string {
	t.Helper()
	schema := featureSchema(m.width(), false, md).WithEndianness(e)
	var buf bytes.Buffer
	fw, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	rec := buildFeatureBatch(schema, m, m.width(), 0, m.Rows)
	defer rec.Release()
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "f.arrow")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustFail(t *testing.T, p, want string) {
	t.Helper()
	ff, err := OpenFeatures(p)
	if err == nil {
		ff.Close()
		t.Fatalf("corrupt file opened")
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// A footer whose field vector claims 2^30 fields made arrow-go allocate
// 2^30 fields: a fatal out-of-memory error no recover catches.
func TestOpenFeaturesHugeFieldCount(t *testing.T) {
	p := writeRaw(t, corruptSeed, corruptSeed.metadata(), endian.LittleEndian)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b) - 10
	n := int(binary.LittleEndian.Uint32(b[end:]))
	fb := flatbuf(b[end-n : end])
	root, _ := fb.root()
	schema, _, err := fb.table(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	v, ok, err := fb.ref(schema, 1)
	if err != nil || !ok {
		t.Fatalf("no field vector: %v", err)
	}
	binary.LittleEndian.PutUint32(fb[v:], 1<<30)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail(t, p, "does not fit")
}

// A big-endian schema made the IPC reader byte-swap the buffers in place,
// in the read-only mapping: a fault that kills the process.
func TestOpenFeaturesBigEndian(t *testing.T) {
	mustFail(t, writeRaw(t, corruptSeed, corruptSeed.metadata(), endian.BigEndian), "big-endian")
}

// An empty metadata key was read into Meta.Extra, which WriteFeatures then
// refused: a file that reads must write back.
func TestOpenFeaturesEmptyMetadataKey(t *testing.T) {
	mustFail(t, writeRaw(t, corruptSeed, arrow.NewMetadata([]string{"modality", ""}, []string{"image", "x"}), endian.LittleEndian), "empty key")
}

// The null count in the file is not trusted: Present counts the rows the
// validity bitmap marks, as Valid reads them.
func TestOpenFeaturesNullCountFromBitmap(t *testing.T) {
	p := writeRaw(t, corruptSeed, corruptSeed.metadata(), endian.LittleEndian)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The vector column's FieldNode {length 3, null_count 1}, in the record
	// batch message and nowhere else.
	node := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 3), 1)
	if bytes.Count(b, node) != 1 {
		t.Skipf("field node found %d times", bytes.Count(b, node))
	}
	i := bytes.Index(b, node)
	binary.LittleEndian.PutUint64(b[i+8:], 1<<62)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ff, err := OpenFeatures(p)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer ff.Close()
	if ff.Present() != 2 {
		t.Fatalf("present %d, want 2 (the bitmap's count)", ff.Present())
	}
}

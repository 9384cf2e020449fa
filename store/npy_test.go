package store

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// mkNPY assembles a .npy byte stream by hand: magic, version major.0, the
// header length (2 bytes for 1.0, 4 for 2.0 and 3.0), the header and body.
func mkNPY(major byte, header string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x93NUMPY")
	b.WriteByte(major)
	b.WriteByte(0)
	if major == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(header)))
	}
	b.WriteString(header)
	b.Write(body)
	return b.Bytes()
}

// encodeValues encodes vals with the given element size and byte order;
// size 2 takes the values as raw float16 bits.
func encodeValues(t *testing.T, vals []float64, size int, bo binary.ByteOrder) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, v := range vals {
		switch size {
		case 2:
			binary.Write(&b, bo, uint16(v))
		case 4:
			binary.Write(&b, bo, float32(v))
		case 8:
			binary.Write(&b, bo, v)
		}
	}
	return b.Bytes()
}

func sameFloat32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

func TestFloat16ToFloat32Known(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3C00, 1},
		{0xC000, -2},
		{0x7BFF, 65504},
		{0x0001, float32(math.Ldexp(1, -24))},
		{0x03FF, float32(math.Ldexp(1023, -24))}, // largest subnormal
		{0x0400, float32(math.Ldexp(1, -14))},    // smallest normal
		{0x3555, 0.333251953125},
		{0x7C00, float32(math.Inf(1))},
		{0xFC00, float32(math.Inf(-1))},
		{0x0000, 0},
		{0x8000, float32(math.Copysign(0, -1))},
	}
	for _, c := range cases {
		got := Float16ToFloat32(c.bits)
		if math.Float32bits(got) != math.Float32bits(c.want) {
			t.Errorf("Float16ToFloat32(%#04x) = %v (%#08x), want %v (%#08x)", c.bits, got, math.Float32bits(got), c.want, math.Float32bits(c.want))
		}
	}
	if nan := Float16ToFloat32(0x7E00); nan == nan {
		t.Errorf("Float16ToFloat32(0x7E00) = %v, want NaN", nan)
	}
	if bits := math.Float32bits(Float16ToFloat32(0xFE01)); bits != 0xFFC02000 {
		t.Errorf("NaN payload/sign not kept: %#08x, want 0xffc02000", bits)
	}
}

// TestFloat16ToFloat32All checks all 65536 inputs against an independent
// float64 computation.
func TestFloat16ToFloat32All(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, mant := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case exp == 0:
			want = sign * math.Ldexp(float64(mant), -24)
		case exp == 31 && mant == 0:
			want = math.Inf(int(sign))
		case exp == 31:
			if got := Float16ToFloat32(uint16(h)); got == got {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
			continue
		default:
			want = sign * math.Ldexp(1+float64(mant)/1024, exp-15)
		}
		if got := Float16ToFloat32(uint16(h)); !sameFloat32(got, float32(want)) || float64(got) != want {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		shape []int
		data  []float32
		dict  string
	}{
		{"scalar", []int{}, []float32{3.5}, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"},
		{"vector", []int{5}, []float32{1, -2, 3.25, float32(math.Inf(1)), 1e-40}, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"},
		{"matrix", []int{3, 4}, []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"},
		{"empty", []int{0, 7}, []float32{}, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7), }"},
		{"3d", []int{2, 1, 2}, []float32{1, 2, 3, 4}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2), }"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".npy")
			if err := WriteNPY(path, c.shape, c.data); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			hlen := int(binary.LittleEndian.Uint16(raw[8:10]))
			if (10+hlen)%64 != 0 || raw[10+hlen-1] != '\n' {
				t.Errorf("header: total %d not a multiple of 64 or not ending in newline", 10+hlen)
			}
			if !bytes.Equal(raw[:8], []byte("\x93NUMPY\x01\x00")) {
				t.Errorf("preamble %q", raw[:8])
			}
			if got := strings.TrimRight(string(raw[10:10+hlen]), " \n"); got != c.dict {
				t.Errorf("header dict %q, want %q", got, c.dict)
			}
			if len(raw) != 10+hlen+4*len(c.data) {
				t.Errorf("file is %d bytes, want %d", len(raw), 10+hlen+4*len(c.data))
			}
			a, err := ReadNPY(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Shape, c.shape) || a.DType != "<f4" || !reflect.DeepEqual(a.Data, c.data) {
				t.Errorf("read back %+v, want shape %v data %v", a, c.shape, c.data)
			}
			a2, err := DecodeNPY(bytes.NewReader(raw), "mem")
			if err != nil || !reflect.DeepEqual(a2, a) {
				t.Errorf("DecodeNPY = %+v, %v", a2, err)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(cases) {
		t.Errorf("%d files in the directory, want %d (temporary files left?)", len(entries), len(cases))
	}
}

func TestNPYWriteErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteNPY(filepath.Join(dir, "x.npy"), []int{2, 3}, make([]float32, 5)); err == nil || !strings.Contains(err.Error(), "6 elements but data has 5") {
		t.Errorf("shape mismatch: %v", err)
	}
	if err := EncodeNPY(&bytes.Buffer{}, []int{-1}, nil); err == nil {
		t.Error("negative shape accepted")
	}
	if err := EncodeNPY(&bytes.Buffer{}, make([]int, 30000), nil); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge header: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.npy")); !os.IsNotExist(err) {
		t.Errorf("failed write left a file: %v", err)
	}
	// Overwrite keeps the new contents only.
	p := filepath.Join(dir, "y.npy")
	if err := WriteNPY(p, []int{3}, []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := WriteNPY(p, []int{1}, []float32{9}); err != nil {
		t.Fatal(err)
	}
	if a, err := ReadNPY(p); err != nil || !reflect.DeepEqual(a.Data, []float32{9}) {
		t.Errorf("after overwrite: %+v, %v", a, err)
	}
}

func TestDecodeNPYVersionsAndDtypes(t *testing.T) {
	vals := []float64{1.5, -2, 0.1, 1e30, -1e-3, 7}
	f16 := []float64{0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3555}
	f16want := []float32{1, -2, 65504, float32(math.Ldexp(1, -24)), float32(math.Inf(1)), 0.333251953125}
	f32want := make([]float32, len(vals))
	for i, v := range vals {
		f32want[i] = float32(v)
	}
	le, be := binary.ByteOrder(binary.LittleEndian), binary.ByteOrder(binary.BigEndian)
	cases := []struct {
		name   string
		major  byte
		header string
		size   int
		bo     binary.ByteOrder
		in     []float64
		want   []float32
		shape  []int
	}{
		{"v1 f2", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", 2, le, f16, f16want, []int{2, 3}},
		{"v2 f4", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 4, le, vals, f32want, []int{6}},
		{"v3 f8", 3, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", 8, le, vals, f32want, []int{3, 2}},
		{"v1 >f4", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", 4, be, vals, f32want, []int{6}},
		{"v2 >f8", 2, "{'descr': '>f8', 'fortran_order': False, 'shape': (6,), }", 8, be, vals, f32want, []int{6}},
		{"v1 >f2", 1, "{'descr': '>f2', 'fortran_order': False, 'shape': (6,), }", 2, be, f16, f16want, []int{6}},
		{"key order, spaces, no trailing comma", 1, "{ 'shape' : ( 2 , 3 ) ,'fortran_order':False,  'descr':'<f4'}   \n", 4, le, vals, f32want, []int{2, 3}},
		{"double quotes, py2 long", 1, `{"descr": "<f4", "fortran_order": False, "shape": (6L,)}` + "\n", 4, le, vals, f32want, []int{6}},
		{"1-d fortran order", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (6,), }\n", 4, le, vals, f32want, []int{6}},
		{"0-d", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", 8, le, vals[:1], f32want[:1], []int{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := mkNPY(c.major, c.header, encodeValues(t, c.in, c.size, c.bo))
			a, err := DecodeNPY(bytes.NewReader(raw), c.name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Shape, c.shape) {
				t.Errorf("shape %v, want %v", a.Shape, c.shape)
			}
			if len(a.Data) != len(c.want) {
				t.Fatalf("%d values, want %d", len(a.Data), len(c.want))
			}
			for i := range c.want {
				if !sameFloat32(a.Data[i], c.want[i]) {
					t.Errorf("value %d = %v, want %v", i, a.Data[i], c.want[i])
				}
			}
			// The same bytes from a file.
			p := filepath.Join(t.TempDir(), "a.npy")
			os.WriteFile(p, raw, 0o644)
			b, err := ReadNPY(p)
			if err != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("ReadNPY = %+v, %v; DecodeNPY = %+v", b, err, a)
			}
		})
	}
}

func TestDecodeNPYMalformed(t *testing.T) {
	body := make([]byte, 24)
	good := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n"
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"short", []byte("\x93NUM"), "too short"},
		{"bad magic", append([]byte("\x93NUMPZ\x01\x00"), 0, 0), "bad magic"},
		{"version 4", mkNPY(4, good, body), "unsupported format version 4.0"},
		{"version 1.1", append([]byte("\x93NUMPY\x01\x01"), mkNPY(1, good, body)[8:]...), "version 1.1"},
		{"truncated header", mkNPY(1, good, nil)[:30], "truncated header: expected"},
		{"missing shape", mkNPY(1, "{'descr': '<f4', 'fortran_order': False}", body), `lacks the key "shape"`},
		{"extra key", mkNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", body), `unexpected key "x"`},
		{"int dtype", mkNPY(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", body), `unsupported dtype "<i4"`},
		{"u1 dtype", mkNPY(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (24,), }", body), `unsupported dtype "|u1"`},
		{"structured dtype", mkNPY(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", body), `unsupported dtype (("a", "<f4"))`},
		{"fortran 2-d", mkNPY(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", body), "fortran_order is True"},
		{"shape not tuple", mkNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': 6, }", body), "want a tuple"},
		{"negative dim", mkNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", body), "negative"},
		{"huge shape", mkNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", body), "too many elements"},
		{"unterminated", mkNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", body), "unterminated"},
		{"trailing garbage", mkNPY(1, good[:len(good)-1]+" x", body), "after the header dict"},
		{"not a dict", mkNPY(1, "('<f4', False)", body), "not a dict"},
		{"fortran not bool", mkNPY(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", body), "want True or False"},
		{"non-ascii v1", mkNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\xc3\xa9\n", body), "non-ASCII"},
		{"bad utf-8 v3", mkNPY(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\xff\n", body), "not valid UTF-8"},
		{"truncated data", mkNPY(1, good, body[:20]), "needs 24 bytes at offset 70, got 20"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeNPY(bytes.NewReader(c.raw), "x.npy")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.npy") {
				t.Errorf("error %v, want one naming x.npy and containing %q", err, c.want)
			}
		})
	}
	// A version 3.0 header may hold UTF-8: it gets as far as the dtype check.
	_, err := DecodeNPY(bytes.NewReader(mkNPY(3, "{'descr': 'é', 'fortran_order': False, 'shape': (6,), }\n", body)), "v3")
	if err == nil || !strings.Contains(err.Error(), `unsupported dtype "é"`) {
		t.Errorf("v3 UTF-8 header: %v", err)
	}
}

func TestReadNPYSizeChecks(t *testing.T) {
	dir := t.TempDir()
	good := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n"
	p := filepath.Join(dir, "short.npy")
	os.WriteFile(p, mkNPY(1, good, make([]byte, 20)), 0o644)
	_, err := ReadNPY(p)
	if err == nil || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), "needs 24 bytes") || !strings.Contains(err.Error(), "file has 20") || !strings.Contains(err.Error(), p) {
		t.Errorf("truncated file: %v", err)
	}
	p = filepath.Join(dir, "long.npy")
	os.WriteFile(p, mkNPY(1, good, make([]byte, 28)), 0o644)
	if _, err := ReadNPY(p); err == nil || !strings.Contains(err.Error(), "4 trailing bytes") {
		t.Errorf("trailing bytes: %v", err)
	}
	if _, err := ReadNPY(filepath.Join(dir, "missing.npy")); err == nil || !strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("missing file: %v", err)
	}
}

// TestNPYLarge exercises the chunked body reader across chunk boundaries.
func TestNPYLarge(t *testing.T) {
	n := npyChunk/4*2 + 123
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(i) * 0.5
	}
	var buf bytes.Buffer
	if err := EncodeNPY(&buf, []int{n}, data); err != nil {
		t.Fatal(err)
	}
	a, err := DecodeNPY(&buf, "big")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Data, data) {
		t.Error("large round trip differs")
	}
}

// BenchmarkReadNPY reads a 20k × 512 float32 file.
func BenchmarkReadNPY(b *testing.B) {
	const rows, dim = 20_000, 512
	data := make([]float32, rows*dim)
	for i := range data {
		data[i] = float32(i)
	}
	p := filepath.Join(b.TempDir(), "bench.npy")
	if err := WriteNPY(p, []int{rows, dim}, data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		a, err := ReadNPY(p)
		if err != nil || len(a.Data) != len(data) {
			b.Fatal(err)
		}
	}
}

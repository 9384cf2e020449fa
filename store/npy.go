package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NPYArray is a NumPy array read from a .npy file, converted to float32.
// Shape is empty for a 0-d (scalar) array; Data holds the elements in C
// (row-major) order. DType is the descriptor found in the file ("<f4",
// "<f2", "<f8", ">f4", ...), before conversion.
type NPYArray struct {
	Shape []int
	DType string
	Data  []float32
}

// Len returns the number of elements, the product of Shape (1 for a 0-d
// array).
func (a *NPYArray) Len() int { return len(a.Data) }

// npyMagic opens every .npy file.
const npyMagic = "\x93NUMPY"

// npyChunk is how many body bytes are read and converted at a time. It is a
// multiple of 8 so that no element straddles two chunks.
const npyChunk = 4 << 20

// npyMaxHeader bounds the header length we accept; NumPy itself refuses
// headers over 10 KiB unless told otherwise.
const npyMaxHeader = 1 << 20

// ReadNPY reads a .npy file holding float16, float32 or float64 values (either
// byte order) in C order and returns them as float32. The file size must match
// the header exactly: a truncated file, or one with trailing bytes, is an
// error.
func ReadNPY(path string) (*NPYArray, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	h, err := readNPYHeader(br, path)
	if err != nil {
		return nil, err
	}
	want := int64(h.count) * int64(h.itemSize)
	if got := st.Size() - h.dataOffset; got != want {
		if got < want {
			return nil, fmt.Errorf("npy: %s: truncated: shape %v of %s needs %d bytes of data at offset %d, file has %d",
				path, h.shape, h.descr, want, h.dataOffset, got)
		}
		return nil, fmt.Errorf("npy: %s: %d trailing bytes after the %d bytes of data (shape %v of %s)",
			path, got-want, want, h.shape, h.descr)
	}
	return readNPYBody(br, path, h, true)
}

// DecodeNPY decodes a .npy stream from r; name is used in error messages. It
// reads exactly the header and the data the header announces, so r may hold
// more after it.
func DecodeNPY(r io.Reader, name string) (*NPYArray, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	h, err := readNPYHeader(br, name)
	if err != nil {
		return nil, err
	}
	return readNPYBody(br, name, h, false)
}

// npyHeader is the parsed header of a .npy file.
type npyHeader struct {
	descr      string
	shape      []int
	count      int // product of shape
	itemSize   int
	bigEndian  bool
	dataOffset int64
}

// readNPYHeader reads the magic, the version, the header length and the
// header dictionary, and validates them.
func readNPYHeader(br *bufio.Reader, name string) (*npyHeader, error) {
	var pre [8]byte
	if n, err := io.ReadFull(br, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: %s: not a .npy file: %d bytes, too short for the magic and version", name, n)
	}
	if string(pre[:6]) != npyMagic {
		return nil, fmt.Errorf("npy: %s: not a .npy file: bad magic %q at offset 0", name, pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen int
	var lenSize int
	switch major {
	case 1:
		lenSize = 2
	case 2, 3:
		lenSize = 4
	default:
		return nil, fmt.Errorf("npy: %s: unsupported format version %d.%d (want 1.0, 2.0 or 3.0)", name, major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("npy: %s: unsupported format version %d.%d (want 1.0, 2.0 or 3.0)", name, major, minor)
	}
	var lb [4]byte
	if _, err := io.ReadFull(br, lb[:lenSize]); err != nil {
		return nil, fmt.Errorf("npy: %s: truncated header length at offset 8: %w", name, err)
	}
	if lenSize == 2 {
		hlen = int(binary.LittleEndian.Uint16(lb[:2]))
	} else {
		v := binary.LittleEndian.Uint32(lb[:4])
		if v > npyMaxHeader {
			return nil, fmt.Errorf("npy: %s: header length %d at offset 8 exceeds the limit of %d bytes", name, v, npyMaxHeader)
		}
		hlen = int(v)
	}
	hdrStart := int64(8 + lenSize)
	raw := make([]byte, hlen)
	if n, err := io.ReadFull(br, raw); err != nil {
		return nil, fmt.Errorf("npy: %s: truncated header: expected %d bytes at offset %d, got %d", name, hlen, hdrStart, n)
	}
	if major < 3 {
		for i, c := range raw {
			if c >= 0x80 {
				return nil, fmt.Errorf("npy: %s: non-ASCII byte 0x%02x in a version %d.0 header at offset %d", name, c, major, hdrStart+int64(i))
			}
		}
	} else if !utf8.Valid(raw) {
		return nil, fmt.Errorf("npy: %s: header at offset %d is not valid UTF-8", name, hdrStart)
	}
	h, err := parseNPYHeaderDict(string(raw))
	if err != nil {
		return nil, fmt.Errorf("npy: %s: header at offset %d: %w", name, hdrStart, err)
	}
	h.dataOffset = hdrStart + int64(hlen)
	return h, nil
}

// parseNPYHeaderDict interprets the Python dict literal of a .npy header.
func parseNPYHeaderDict(s string) (*npyHeader, error) {
	p := &pyParser{s: s}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at byte %d after the header dict", p.rest(), p.pos)
	}
	d, ok := v.(pyDict)
	if !ok {
		return nil, fmt.Errorf("header is not a dict: %q", strings.TrimSpace(s))
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := d[k]; !ok {
			return nil, fmt.Errorf("header dict lacks the key %q: %q", k, strings.TrimSpace(s))
		}
	}
	if len(d) != 3 {
		for k := range d {
			if k != "descr" && k != "fortran_order" && k != "shape" {
				return nil, fmt.Errorf("header dict has an unexpected key %q", k)
			}
		}
	}
	h := &npyHeader{}
	descr, ok := d["descr"].(string)
	if !ok {
		return nil, fmt.Errorf("unsupported dtype %s: only float16, float32 and float64 ('<f2', '<f4', '<f8' and big-endian '>') are supported", pyRepr(d["descr"]))
	}
	h.descr = descr
	switch descr {
	case "<f2", ">f2":
		h.itemSize = 2
	case "<f4", ">f4":
		h.itemSize = 4
	case "<f8", ">f8":
		h.itemSize = 8
	default:
		return nil, fmt.Errorf("unsupported dtype %q: only float16, float32 and float64 ('<f2', '<f4', '<f8' and big-endian '>') are supported", descr)
	}
	h.bigEndian = descr[0] == '>'
	fo, ok := d["fortran_order"].(bool)
	if !ok {
		return nil, fmt.Errorf("fortran_order is %s, want True or False", pyRepr(d["fortran_order"]))
	}
	tup, ok := d["shape"].(pyTuple)
	if !ok {
		return nil, fmt.Errorf("shape is %s, want a tuple of integers", pyRepr(d["shape"]))
	}
	h.count = 1
	// Bound the element count so count*itemSize fits an int64 and an int.
	maxCount := int64(math.MaxInt64 / 8)
	if int64(math.MaxInt) < maxCount {
		maxCount = int64(math.MaxInt) / 8
	}
	for i, e := range tup {
		n, ok := e.(int64)
		if !ok {
			return nil, fmt.Errorf("shape[%d] is %s, want an integer", i, pyRepr(e))
		}
		if n < 0 {
			return nil, fmt.Errorf("shape[%d] is negative (%d)", i, n)
		}
		if n > 0 && int64(h.count) > maxCount/n {
			return nil, fmt.Errorf("shape %s has too many elements", pyRepr(tup))
		}
		h.shape = append(h.shape, int(n))
		h.count *= int(n)
	}
	if h.shape == nil {
		h.shape = []int{}
	}
	// For 0-d and 1-d arrays Fortran and C order are the same bytes.
	if fo && len(h.shape) > 1 {
		return nil, fmt.Errorf("fortran_order is True for shape %v: Fortran-ordered arrays are not supported; save a C-ordered array (numpy.ascontiguousarray)", h.shape)
	}
	return h, nil
}

// readNPYBody reads h.count elements from br and converts them to float32.
// exact says the caller has checked that the data is all there, so the output
// can be allocated up front; otherwise it grows as data arrives, so a lying
// header cannot force a huge allocation.
func readNPYBody(br *bufio.Reader, name string, h *npyHeader, exact bool) (*NPYArray, error) {
	total := int64(h.count) * int64(h.itemSize)
	var out []float32
	if exact || total <= npyChunk {
		out = make([]float32, 0, h.count)
	}
	bufLen := int64(npyChunk)
	if total < bufLen {
		bufLen = total
	}
	buf := make([]byte, bufLen)
	var done int64
	for done < total {
		n := total - done
		if n > int64(len(buf)) {
			n = int64(len(buf))
		}
		got, err := io.ReadFull(br, buf[:n])
		if err != nil {
			return nil, fmt.Errorf("npy: %s: truncated data: shape %v of %s needs %d bytes at offset %d, got %d",
				name, h.shape, h.descr, total, h.dataOffset, done+int64(got))
		}
		out = appendDecoded(out, buf[:n], h.itemSize, h.bigEndian)
		done += n
	}
	if out == nil {
		out = []float32{}
	}
	return &NPYArray{Shape: h.shape, DType: h.descr, Data: out}, nil
}

// appendDecoded converts raw float16/32/64 values to float32 and appends them.
func appendDecoded(out []float32, b []byte, itemSize int, bigEndian bool) []float32 {
	var bo binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		bo = binary.BigEndian
	}
	n := len(b) / itemSize
	start := len(out)
	out = slices.Grow(out, n)[:start+n]
	dst := out[start:]
	switch itemSize {
	case 2:
		for i := range dst {
			dst[i] = Float16ToFloat32(bo.Uint16(b[2*i:]))
		}
	case 4:
		if !bigEndian {
			decodeLEFloat32(dst, b)
		} else {
			for i := range dst {
				dst[i] = math.Float32frombits(bo.Uint32(b[4*i:]))
			}
		}
	case 8:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(bo.Uint64(b[8*i:])))
		}
	}
	return out
}

// decodeLEFloat32 fills dst with the little-endian float32 values in b, which
// must hold at least 4*len(dst) bytes.
func decodeLEFloat32(dst []float32, b []byte) {
	b = b[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// encodeLEFloat32 writes src as little-endian float32 into b, which must hold
// at least 4*len(src) bytes.
func encodeLEFloat32(b []byte, src []float32) {
	b = b[:4*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
}

// writeLEFloat32 writes data to w as little-endian float32, a chunk at a time.
func writeLEFloat32(w io.Writer, data []float32) error {
	const chunk = 64 << 10 // values per write
	n := len(data)
	if n > chunk {
		n = chunk
	}
	buf := make([]byte, 4*n)
	for len(data) > 0 {
		k := min(len(data), chunk)
		encodeLEFloat32(buf, data[:k])
		if _, err := w.Write(buf[:4*k]); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}

// Float16ToFloat32 converts an IEEE 754 half-precision value (given by its
// bits) to float32. The conversion is exact for every input: subnormals,
// signed zeros and infinities map to their float32 values, and NaNs keep
// their sign and payload.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// WriteNPY writes data as a version 1.0, little-endian float32, C-ordered
// .npy file. The product of shape must equal len(data); an empty shape writes
// a 0-d array of one element. The file is written to a temporary file in the
// same directory, synced and renamed into place.
func WriteNPY(path string, shape []int, data []float32) error {
	if err := checkNPYShape(shape, len(data)); err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	err := writeFileAtomicFunc(path, func(w io.Writer) error {
		return EncodeNPY(w, shape, data)
	})
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

// EncodeNPY writes data to w in the .npy format (version 1.0, '<f4', C
// order, header padded with spaces to a multiple of 64 bytes and ended by a
// newline).
func EncodeNPY(w io.Writer, shape []int, data []float32) error {
	if err := checkNPYShape(shape, len(data)); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	hdr, err := npyHeaderBytes(shape)
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("npy: write header: %w", err)
	}
	if err := writeLEFloat32(w, data); err != nil {
		return fmt.Errorf("npy: write data: %w", err)
	}
	return nil
}

// checkNPYShape checks that shape describes n elements.
func checkNPYShape(shape []int, n int) error {
	count := 1
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("shape[%d] is negative (%d)", i, d)
		}
		if d > 0 && count > math.MaxInt/d {
			return fmt.Errorf("shape %v overflows", shape)
		}
		count *= d
	}
	if count != n {
		return fmt.Errorf("shape %v holds %d elements but data has %d", shape, count, n)
	}
	return nil
}

// npyHeaderBytes returns magic, version, length and the padded header dict
// for a version 1.0 '<f4' file.
func npyHeaderBytes(shape []int) ([]byte, error) {
	var sb strings.Builder
	sb.WriteString("(")
	for i, d := range shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString(")")
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': " + sb.String() + ", }"
	// 10 bytes of preamble + dict + padding + '\n' must be a multiple of 64.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	var b bytes.Buffer
	b.Grow(total + pad)
	b.WriteString(npyMagic)
	b.WriteByte(1)
	b.WriteByte(0)
	hlen := len(dict) + pad + 1
	if hlen > math.MaxUint16 {
		return nil, fmt.Errorf("shape with %d dimensions needs a header of %d bytes, over version 1.0's limit", len(shape), hlen)
	}
	b.WriteByte(byte(hlen))
	b.WriteByte(byte(hlen >> 8))
	b.WriteString(dict)
	b.WriteString(strings.Repeat(" ", pad))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// pyDict, pyTuple and the Go types string, bool, int64 and nil are the values
// a .npy header dict may hold.
type (
	pyDict  map[string]any
	pyTuple []any
)

// pyParser parses the small subset of Python literals used in .npy headers:
// dicts, tuples, lists, strings, integers, True, False and None.
type pyParser struct {
	s   string
	pos int
}

func (p *pyParser) rest() string {
	r := p.s[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *pyParser) skipSpace() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

// value parses one literal.
func (p *pyParser) value() (any, error) {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return nil, p.errorf("unexpected end of header")
	}
	switch c := p.s[p.pos]; {
	case c == '{':
		return p.dict()
	case c == '(':
		p.pos++
		items, err := p.seq(')')
		return pyTuple(items), err
	case c == '[':
		p.pos++
		items, err := p.seq(']')
		return pyTuple(items), err
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.integer()
	default:
		for _, kw := range []struct {
			word string
			val  any
		}{{"True", true}, {"False", false}, {"None", nil}} {
			if strings.HasPrefix(p.s[p.pos:], kw.word) {
				p.pos += len(kw.word)
				return kw.val, nil
			}
		}
		return nil, p.errorf("unexpected %q", p.rest())
	}
}

func (p *pyParser) dict() (any, error) {
	p.pos++ // '{'
	d := pyDict{}
	for {
		p.skipSpace()
		if p.pos >= len(p.s) {
			return nil, p.errorf("unterminated dict")
		}
		if p.s[p.pos] == '}' {
			p.pos++
			return d, nil
		}
		if c := p.s[p.pos]; c != '\'' && c != '"' {
			return nil, p.errorf("dict key is not a string: %q", p.rest())
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.s) || p.s[p.pos] != ':' {
			return nil, p.errorf("expected ':' after key %q", k)
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if _, dup := d[k.(string)]; dup {
			return nil, p.errorf("duplicate key %q", k)
		}
		d[k.(string)] = v
		p.skipSpace()
		if p.pos >= len(p.s) {
			return nil, p.errorf("unterminated dict")
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
		case '}':
		default:
			return nil, p.errorf("expected ',' or '}' in dict, found %q", p.rest())
		}
	}
}

// seq parses the items of a tuple or list up to the closing byte.
func (p *pyParser) seq(end byte) ([]any, error) {
	items := []any{}
	for {
		p.skipSpace()
		if p.pos >= len(p.s) {
			return nil, p.errorf("unterminated tuple or list")
		}
		if p.s[p.pos] == end {
			p.pos++
			return items, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.skipSpace()
		if p.pos >= len(p.s) {
			return nil, p.errorf("unterminated tuple or list")
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
		case end:
		default:
			return nil, p.errorf("expected ',' or %q, found %q", end, p.rest())
		}
	}
}

// str parses a quoted string with simple backslash escapes.
func (p *pyParser) str() (any, error) {
	q := p.s[p.pos]
	p.pos++
	var sb strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == q:
			p.pos++
			return sb.String(), nil
		case c == '\\' && p.pos+1 < len(p.s):
			sb.WriteByte(p.s[p.pos+1])
			p.pos += 2
		default:
			sb.WriteByte(c)
			p.pos++
		}
	}
	return nil, p.errorf("unterminated string")
}

// integer parses a decimal integer, with Python 2's optional 'L' suffix.
func (p *pyParser) integer() (any, error) {
	start := p.pos
	if c := p.s[p.pos]; c == '-' || c == '+' {
		p.pos++
	}
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	lit := p.s[start:p.pos]
	if p.pos < len(p.s) && (p.s[p.pos] == 'L' || p.s[p.pos] == 'l') {
		p.pos++
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("byte %d: bad integer %q", start, lit)
	}
	return n, nil
}

// pyRepr renders a parsed literal for error messages.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case pyTuple:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case pyDict:
		return "a dict"
	}
	return fmt.Sprint(v)
}

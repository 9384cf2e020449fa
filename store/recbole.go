package store

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// RecBole atomic-file field types.
const (
	AtomicToken    = "token"
	AtomicTokenSeq = "token_seq"
	AtomicFloat    = "float"
	AtomicFloatSeq = "float_seq"
)

// AtomicField is one column of a RecBole atomic file (.inter, .item, .user,
// ...), written in the header line as "name:type".
type AtomicField struct {
	Name string
	Type string
}

// String returns the header form "name:type".
func (f AtomicField) String() string { return f.Name + ":" + f.Type }

// validAtomicType reports whether t is one of RecBole's four field types.
func validAtomicType(t string) bool {
	switch t {
	case AtomicToken, AtomicTokenSeq, AtomicFloat, AtomicFloatSeq:
		return true
	}
	return false
}

// AtomicReader streams the rows of a RecBole atomic file: a header line of
// TAB-separated "name:type" fields, then one TAB-separated row per line. A
// UTF-8 byte-order mark before the header and CRLF line ends are tolerated;
// blank lines are skipped (as pandas, which RecBole uses, does).
type AtomicReader struct {
	path   string
	f      *os.File
	br     *bufio.Reader
	fields []AtomicField
	line   int64 // physical lines consumed so far
	last   int64 // line number of the last row returned
	buf    []byte
}

// OpenAtomic opens a RecBole atomic file and reads its header.
func OpenAtomic(path string) (*AtomicReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recbole: %w", err)
	}
	r := &AtomicReader{path: path, f: f, br: bufio.NewReaderSize(f, 1<<20)}
	if err := r.readHeader(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// readHeader parses the first line.
func (r *AtomicReader) readHeader() error {
	line, err := r.readLine()
	if err == io.EOF {
		return fmt.Errorf("recbole: %s: empty file, no header line", r.path)
	}
	if err != nil {
		return err
	}
	line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(line)) == 0 {
		return fmt.Errorf("recbole: %s:1: empty header line", r.path)
	}
	seen := map[string]bool{}
	for i, col := range strings.Split(string(line), "\t") {
		name, typ, ok := strings.Cut(col, ":")
		name, typ = strings.TrimSpace(name), strings.TrimSpace(typ)
		if !ok || name == "" {
			return fmt.Errorf("recbole: %s:1: header field %d %q is not of the form name:type", r.path, i+1, col)
		}
		if !validAtomicType(typ) {
			return fmt.Errorf("recbole: %s:1: header field %q has unknown type %q (want token, token_seq, float or float_seq)", r.path, col, typ)
		}
		if seen[name] {
			return fmt.Errorf("recbole: %s:1: duplicate header field %q", r.path, name)
		}
		seen[name] = true
		r.fields = append(r.fields, AtomicField{Name: name, Type: typ})
	}
	r.last = 1
	return nil
}

// readLine returns the next physical line without its "\n" or "\r\n". The
// slice is valid until the next call.
func (r *AtomicReader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("recbole: %s:%d: %w", r.path, r.line+1, err)
		}
		break
	}
	r.line++
	b := bytes.TrimSuffix(r.buf, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, nil
}

// Fields returns the columns named in the header.
func (r *AtomicReader) Fields() []AtomicField { return r.fields }

// FieldIndex returns the position of the column called name, or -1.
func (r *AtomicReader) FieldIndex(name string) int {
	for i, f := range r.fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Next returns the values of the next row, one per field, or io.EOF after
// the last row. The returned slice and strings are the caller's to keep. A
// row whose number of values differs from the header is an error naming
// file:line.
func (r *AtomicReader) Next() ([]string, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			continue
		}
		r.last = r.line
		n := bytes.Count(line, []byte{'\t'}) + 1
		if n != len(r.fields) {
			return nil, fmt.Errorf("recbole: %s:%d: expected %d fields, got %d", r.path, r.line, len(r.fields), n)
		}
		s := string(line)
		out := make([]string, 0, n)
		for {
			i := strings.IndexByte(s, '\t')
			if i < 0 {
				out = append(out, s)
				break
			}
			out = append(out, s[:i])
			s = s[i+1:]
		}
		return out, nil
	}
}

// Line returns the 1-based line number of the row Next returned last (1, the
// header, before the first row).
func (r *AtomicReader) Line() int64 { return r.last }

// Path returns the file's path.
func (r *AtomicReader) Path() string { return r.path }

// Close closes the file.
func (r *AtomicReader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("recbole: %s: %w", r.path, err)
	}
	return nil
}

// SplitSeq splits a token_seq or float_seq value on single spaces, ignoring
// empty pieces; an empty string gives an empty (nil) slice.
func SplitSeq(s string) []string {
	return strings.Fields(s)
}

// CleanField makes s safe as an atomic-file value by replacing TAB, CR and
// LF with a space. Use it for free text (titles, descriptions) before
// AtomicWriter.Write, which rejects those characters.
func CleanField(s string) string {
	if !strings.ContainsAny(s, "\t\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\r', '\n':
			return ' '
		}
		return r
	}, s)
}

// AtomicWriter writes a RecBole atomic file through a temporary file that
// Commit renames into place; until then the destination is untouched.
type AtomicWriter struct {
	pf     *pendingFile
	fields []AtomicField
	rows   int64
	err    error
}

// CreateAtomic starts writing a RecBole atomic file with the given columns
// and writes its header. Field names must be non-empty and free of TAB, ':',
// CR and LF; types must be token, token_seq, float or float_seq.
func CreateAtomic(path string, fields []AtomicField) (*AtomicWriter, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("recbole: %s: no fields", path)
	}
	seen := map[string]bool{}
	hdr := make([]string, len(fields))
	for i, f := range fields {
		if f.Name == "" || strings.ContainsAny(f.Name, "\t:\r\n") {
			return nil, fmt.Errorf("recbole: %s: bad field name %q", path, f.Name)
		}
		if !validAtomicType(f.Type) {
			return nil, fmt.Errorf("recbole: %s: field %q has unknown type %q (want token, token_seq, float or float_seq)", path, f.Name, f.Type)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("recbole: %s: duplicate field %q", path, f.Name)
		}
		seen[f.Name] = true
		hdr[i] = f.String()
	}
	pf, err := newPendingFile(path)
	if err != nil {
		return nil, fmt.Errorf("recbole: %w", err)
	}
	w := &AtomicWriter{pf: pf, fields: append([]AtomicField(nil), fields...)}
	if _, err := pf.w.WriteString(strings.Join(hdr, "\t") + "\n"); err != nil {
		pf.abort()
		return nil, fmt.Errorf("recbole: %s: write header: %w", path, err)
	}
	return w, nil
}

// Write appends one row. It needs exactly one value per field, and rejects
// values holding TAB, CR or LF (clean free text with CleanField first).
func (w *AtomicWriter) Write(values ...string) error {
	if w.err != nil {
		return w.err
	}
	if w.pf.done {
		return fmt.Errorf("recbole: %s: write after Commit or Abort", w.pf.path)
	}
	row := w.rows + 1
	if len(values) != len(w.fields) {
		return fmt.Errorf("recbole: %s: row %d: expected %d fields, got %d", w.pf.path, row, len(w.fields), len(values))
	}
	for i, v := range values {
		if strings.ContainsAny(v, "\t\r\n") {
			return fmt.Errorf("recbole: %s: row %d: field %q holds a TAB or line break (use CleanField): %q", w.pf.path, row, w.fields[i].Name, v)
		}
	}
	bw := w.pf.w
	for i, v := range values {
		if i > 0 {
			bw.WriteByte('\t')
		}
		bw.WriteString(v)
	}
	if err := bw.WriteByte('\n'); err != nil {
		w.err = fmt.Errorf("recbole: %s: row %d: %w", w.pf.path, row, err)
		return w.err
	}
	w.rows++
	return nil
}

// Rows returns the number of rows written so far.
func (w *AtomicWriter) Rows() int64 { return w.rows }

// Commit flushes and syncs the file and renames it into place. After a
// failed Write it discards the file and returns that error.
func (w *AtomicWriter) Commit() error {
	if w.err != nil {
		w.pf.abort()
		return w.err
	}
	if err := w.pf.commit(); err != nil {
		return fmt.Errorf("recbole: %w", err)
	}
	return nil
}

// Abort discards the file; the destination is left as it was. It is a no-op
// after Commit.
func (w *AtomicWriter) Abort() { w.pf.abort() }

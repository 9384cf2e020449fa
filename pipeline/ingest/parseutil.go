package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Helpers shared by the Amazon, Netflix, bilibili and MovieLens readers:
// allocation-free field and number parsing for the hot loops, input-file
// classification, and small text clean-ups.

// pow10f holds the exact powers of ten a float64 represents.
var pow10f = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloatFast parses a plain decimal number ("5", "5.0", "-3.25", "4.")
// without allocating. Anything else (exponents, inf, long mantissas) falls
// back to strconv. The result equals strconv.ParseFloat(s, 64): the mantissa
// is an exact integer below 2^53 divided by an exact power of ten, one
// correctly rounded operation.
func parseFloatFast(b []byte) (float64, bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	var m uint64
	digits, frac := 0, -1
	for ; i < len(b); i++ {
		c := b[i]
		if c >= '0' && c <= '9' {
			m = m*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
			continue
		}
		if c == '.' && frac < 0 {
			frac = 0
			continue
		}
		break
	}
	if i != len(b) || digits == 0 || digits > 15 {
		f, err := strconv.ParseFloat(string(b), 64)
		return f, err == nil
	}
	f := float64(m)
	if frac > 0 {
		f /= pow10f[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}

// parseIntFast parses a decimal integer without allocating.
func parseIntFast(b []byte) (int64, bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	if i == len(b) || len(b)-i > 18 {
		n, err := strconv.ParseInt(string(b), 10, 64)
		return n, err == nil
	}
	var n int64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// parseDateUnix parses YYYY-MM-DD into Unix seconds at 00:00 UTC without
// allocating.
func parseDateUnix(b []byte) (int64, bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y, ok1 := parseIntFast(b[0:4])
	m, ok2 := parseIntFast(b[5:7])
	d, ok3 := parseIntFast(b[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d) * 86400, true
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// splitFields splits line at sep into dst (reused) without allocating and
// reports the number of fields; it stops after len(dst) fields, the last one
// keeping the rest of the line.
func splitFields(line []byte, sep byte, dst [][]byte) int {
	n := 0
	for n < len(dst)-1 {
		k := bytes.IndexByte(line, sep)
		if k < 0 {
			break
		}
		dst[n] = line[:k]
		line = line[k+1:]
		n++
	}
	dst[n] = line
	return n + 1
}

// splitCSVQuoted splits one CSV line that contains double quotes (RFC 4180
// quoting within one line). The fields are appended to dst; quoted fields are
// unquoted into fresh slices. ok is false for an unterminated quote.
func splitCSVQuoted(line []byte, dst [][]byte) (out [][]byte, ok bool) {
	out = dst[:0]
	for {
		if len(line) > 0 && line[0] == '"' {
			var f []byte
			i := 1
			for {
				k := bytes.IndexByte(line[i:], '"')
				if k < 0 {
					return out, false
				}
				f = append(f, line[i:i+k]...)
				i += k + 1
				if i < len(line) && line[i] == '"' { // "" is a quote
					f = append(f, '"')
					i++
					continue
				}
				break
			}
			if f == nil {
				f = []byte{}
			}
			out = append(out, f)
			line = line[i:]
			if len(line) == 0 {
				return out, true
			}
			if line[0] != ',' {
				return out, false
			}
			line = line[1:]
			continue
		}
		k := bytes.IndexByte(line, ',')
		if k < 0 {
			return append(out, line), true
		}
		out = append(out, line[:k])
		line = line[k+1:]
	}
}

// splitCSVLine splits a comma-separated line, taking the allocation-free path
// when it has no quotes.
func splitCSVLine(line []byte, dst [][]byte) ([][]byte, bool) {
	if bytes.IndexByte(line, '"') < 0 {
		dst = dst[:0]
		for {
			k := bytes.IndexByte(line, ',')
			if k < 0 {
				return append(dst, line), true
			}
			dst = append(dst, line[:k])
			line = line[k+1:]
		}
	}
	return splitCSVQuoted(line, dst)
}

// decodeText returns b as UTF-8: unchanged when it is valid UTF-8, else
// decoded as ISO-8859-1 (MovieLens 1M and 100k, the Netflix titles).
func decodeText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return latin1(b)
}

// cleanHTML strips tags and entities from short metadata text and collapses
// white space ("<span>Foo &amp; Bar</span>" → "Foo & Bar"). Text without '<'
// or '&' is only trimmed.
func cleanHTML(s string) string {
	if strings.IndexByte(s, '<') < 0 && strings.IndexByte(s, '&') < 0 {
		if strings.ContainsAny(s, "\n\t\r") || strings.Contains(s, "  ") {
			return strings.Join(strings.Fields(s), " ")
		}
		return strings.TrimSpace(s)
	}
	var sb strings.Builder
	for {
		k := strings.IndexByte(s, '<')
		if k < 0 {
			sb.WriteString(s)
			break
		}
		sb.WriteString(s[:k])
		e := strings.IndexByte(s[k:], '>')
		if e < 0 { // a lone '<' is text
			sb.WriteString(s[k:])
			break
		}
		sb.WriteByte(' ')
		s = s[k+e+1:]
	}
	return strings.Join(strings.Fields(html.UnescapeString(sb.String())), " ")
}

// appendUnique appends the non-empty strings of add to list, skipping those
// already present.
func appendUnique(list []string, add ...string) []string {
	for _, s := range add {
		if s != "" && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// eachLine opens path with openLines and calls fn for every line. fn handles
// malformed lines with lr.Bad and returns only fatal errors.
func eachLine(ctx context.Context, path, role string, opts *Options, r *Report, fn func(lr *lineReader, line []byte) error) error {
	lr, err := openLines(ctx, path, role, opts, r)
	if err != nil {
		return err
	}
	defer lr.Close()
	for {
		line, err := lr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(lr, line); err != nil {
			return err
		}
	}
}

// inputFile is one classified input file.
type inputFile struct {
	path string
	kind int // format-specific file kind
	// stage orders the reading: interactions (0) before metadata (1) before
	// images (2), so indices follow first appearance in the interactions.
	stage int
}

// byStage returns files ordered by stage, keeping path order within one.
func byStage(files []inputFile) []inputFile {
	slices.SortStableFunc(files, func(a, b inputFile) int { return a.stage - b.stage })
	return files
}

// stripExt removes the extension from a file name ("17551.jpg" → "17551").
func stripExt(name string) string {
	return strings.TrimSuffix(name, filepath.Ext(name))
}

// isImageName reports whether a file name is a JPEG or PNG cover image.
func isImageName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// absPath returns the absolute form of p (p itself when that fails).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// nan32 is the rating of an implicit interaction.
var nan32 = float32(math.NaN())

// chunkSize is the block size of eachChunkLine.
const chunkSize = 1 << 20

type lineBlock struct {
	buf  []byte // whole lines (the last one may lack its newline at EOF)
	back []byte // the buffer to recycle
	err  error  // a read error after buf
}

// eachChunkLine is eachLine for large interaction files: a second goroutine
// reads (and decompresses) the file in blocks of whole lines while the
// calling goroutine splits and parses them, so two cores are busy. Line
// numbers, counts and errors are the same as with lineReader.Next.
//
// The line slices stay valid until flush (if not nil) returns: flush is
// called after each block's lines, so fn may collect slices into a batch.
func eachChunkLine(ctx context.Context, path, role string, opts *Options, r *Report, fn func(lr *lineReader, line []byte) error, flush func() error) error {
	lr, err := openLines(ctx, path, role, opts, r)
	if err != nil {
		return err
	}
	defer lr.Close()
	free := make(chan []byte, 3)
	for range cap(free) {
		free <- make([]byte, chunkSize)
	}
	full := make(chan lineBlock, 2)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(full)
		var carry []byte
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			if len(carry) > cap(buf)/2 {
				buf = make([]byte, 2*len(carry)+chunkSize)
			}
			buf = buf[:cap(buf)]
			n := copy(buf, carry)
			carry = nil
			var err error
			for n < len(buf) && err == nil {
				var m int
				m, err = lr.sc.Read(buf[n:])
				n += m
			}
			data := buf[:n]
			blk := lineBlock{back: buf}
			switch {
			case err == nil: // buffer full: keep the partial last line
				k := bytes.LastIndexByte(data, '\n')
				if k < 0 { // a line longer than the buffer: grow and read on
					carry = data
					free <- make([]byte, 0, 2*len(data))
					continue
				}
				blk.buf, carry = data[:k+1], data[k+1:]
			case err == io.EOF:
				blk.buf = data
			default: // complete lines, then the error
				blk.buf = data[:bytes.LastIndexByte(data, '\n')+1]
				blk.err = err
			}
			select {
			case full <- blk:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(done)
		<-exited
	}()
	for blk := range full {
		if err := ctx.Err(); err != nil {
			return err
		}
		data := blk.buf
		for len(data) > 0 {
			var line []byte
			if k := bytes.IndexByte(data, '\n'); k >= 0 {
				line, data = data[:k], data[k+1:]
			} else {
				line, data = data, nil
			}
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			lr.line++
			lr.stat.Lines++
			lr.report.Lines++
			if lr.line == 1 {
				line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
			}
			if err := fn(lr, line); err != nil {
				return err
			}
		}
		if flush != nil {
			if err := flush(); err != nil {
				return err
			}
		}
		if blk.err != nil {
			return readError(lr, blk.err)
		}
		free <- blk.back[:0]
	}
	return nil
}

// readError describes a read error of lr's file: a truncated or corrupt
// compressed stream (including corrupt deflate data) is bad input naming
// the file and line, anything else an I/O error.
func readError(lr *lineReader, err error) error {
	var corrupt flate.CorruptInputError
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.As(err, &corrupt) {
		return badf(lr.path, lr.line+1, "compressed stream is truncated or corrupt after %d complete lines: %v", lr.line, err)
	}
	return fmt.Errorf("%s:%d: read: %w", lr.path, lr.line+1, err)
}

// estimateRows guesses the number of lines of path from its size and the
// length of its first line, so the interaction columns are allocated once
// instead of grown by doubling. For a gzip file the uncompressed size comes
// from the gzip trailer (exact below 4 GiB); a trailer that does not look
// like one (a truncated file) is ignored.
func estimateRows(path string, lineLen int) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || lineLen <= 0 {
		return 0
	}
	size := st.Size()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		var trailer [4]byte
		if size < 20 {
			return 0
		}
		if _, err := f.ReadAt(trailer[:], size-4); err != nil {
			return 0
		}
		isize := int64(trailer[0]) | int64(trailer[1])<<8 | int64(trailer[2])<<16 | int64(trailer[3])<<24
		if isize < size || isize > 20*size { // wrapped past 4 GiB, several members, or a truncated file
			return 0
		}
		size = isize
	}
	n := size / int64(max(lineLen, 16)) * 11 / 10
	if n > 1<<31-1 {
		return 0
	}
	return int(n)
}

// batcher collects the rows of one block for Builder.AddBatch, which is
// Builder.Add for each row in order with users and items indexed on two
// goroutines at once.
type batcher struct {
	b  *Builder
	bt Batch
}

func newBatcher(b *Builder) *batcher { return &batcher{b: b} }

// add queues one row; user and item must stay valid until flush.
func (c *batcher) add(user, item []byte, rating float32, ts int64) {
	c.bt.Users = append(c.bt.Users, user)
	c.bt.Items = append(c.bt.Items, item)
	c.bt.Rating = append(c.bt.Rating, rating)
	c.bt.Timestamp = append(c.bt.Timestamp, ts)
}

// flush indexes and appends the queued rows.
func (c *batcher) flush() error {
	if len(c.bt.Users) == 0 {
		return nil
	}
	err := c.b.AddBatch(&c.bt)
	c.bt.Reset()
	return err
}

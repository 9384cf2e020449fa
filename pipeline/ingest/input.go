package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mmpipe/mmpipe/store"
)

// Report counts what an ingest read, kept and skipped. It is written into the
// manifest and printed by the CLI.
type Report struct {
	Files         []FileStat `json:"files"`
	Lines         int64      `json:"lines"`
	BadLines      int64      `json:"bad_lines"`
	DuplicateRows int64      `json:"duplicate_rows"`
	DuplicateMeta int64      `json:"duplicate_meta"`
	// ItemsWithoutMeta are items seen in interactions that no metadata
	// record describes: kept, and marked as missing text and image.
	ItemsWithoutMeta  int      `json:"items_without_meta"`
	ItemsWithoutText  int      `json:"items_without_text"`
	ItemsWithoutImage int      `json:"items_without_image"`
	MetaOnlyItems     int      `json:"meta_only_items"`
	MetaUnmatched     int      `json:"meta_unmatched"`
	Users             int      `json:"users"`
	Items             int      `json:"items"`
	Interactions      int64    `json:"interactions"`
	Warnings          []string `json:"warnings,omitempty"`
	// FirstBad holds the first few skipped lines' errors.
	FirstBad []string `json:"first_bad,omitempty"`
}

// FileStat is one input file as read.
type FileStat struct {
	Path  string `json:"path"`
	Role  string `json:"role"`
	Lines int64  `json:"lines"`
}

func (r *Report) warnf(format string, args ...any) {
	if len(r.Warnings) < 50 {
		r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
	}
}

// Options control one ingest.
type Options struct {
	// MaxBadLines is how many malformed lines may be skipped (and counted)
	// before the ingest fails. 0 means the first bad line is an error.
	MaxBadLines int64
	// FeatDim is the width of headerless .feat*CLS files (RecBole format).
	FeatDim int
}

// BadInputError is bad input: it names the file and line and says what was
// expected. The CLI maps it to exit code 2.
type BadInputError struct {
	File string
	Line int64
	Err  error
}

func (e *BadInputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *BadInputError) Unwrap() error { return e.Err }

// Is makes a BadInputError match store.ErrBadInput.
func (e *BadInputError) Is(target error) bool { return target == store.ErrBadInput }

// badf builds a BadInputError.
func badf(file string, line int64, format string, args ...any) error {
	return &BadInputError{File: file, Line: line, Err: fmt.Errorf(format, args...)}
}

// lineReader reads a possibly gzip-compressed text file line by line,
// counting lines and applying the bad-line policy.
type lineReader struct {
	path   string
	f      *os.File
	gz     *gzip.Reader
	sc     *bufio.Reader
	line   int64
	opts   *Options
	report *Report
	stat   *FileStat
	ctx    context.Context
	buf    []byte
}

// openLines opens path for line reading; a .gz name (or gzip magic) is
// decompressed transparently.
func openLines(ctx context.Context, path, role string, opts *Options, report *Report) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &BadInputError{File: path, Err: err}
	}
	lr := &lineReader{path: path, f: f, opts: opts, report: report, ctx: ctx}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, badf(path, 0, "not a readable gzip file: %v", err)
		}
		lr.gz = gz
		lr.sc = bufio.NewReaderSize(gz, 1<<20)
	} else {
		lr.sc = br
	}
	report.Files = append(report.Files, FileStat{Path: path, Role: role})
	lr.stat = &report.Files[len(report.Files)-1]
	return lr, nil
}

// Next returns the next line without its line end (LF or CRLF), or io.EOF.
// The slice is valid until the next call. A truncated gzip stream is an
// error naming the file and the last line read.
func (lr *lineReader) Next() ([]byte, error) {
	if lr.line&0x3fff == 0 {
		if err := lr.ctx.Err(); err != nil {
			return nil, err
		}
	}
	line, err := lr.sc.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		lr.buf = append(lr.buf[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = lr.sc.ReadSlice('\n')
			lr.buf = append(lr.buf, line...)
		}
		line = lr.buf
	}
	if err != nil && err != io.EOF {
		return nil, readError(lr, err)
	}
	if len(line) == 0 && err == io.EOF {
		return nil, io.EOF
	}
	lr.line++
	lr.stat.Lines++
	lr.report.Lines++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if lr.line == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	return line, nil
}

// eachTabRow calls fn with the tab-separated fields of every non-empty
// remaining line, applying the bad-line policy to lines with another number
// of fields than ncols. fn's arguments are valid during the call only; an
// error from fn stops the loop (fn returns lr.Bad(...) for a bad value).
func (lr *lineReader) eachTabRow(ncols int, fn func(line []byte, fields [][]byte) error) error {
	var fields [][]byte
	for {
		line, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(line) == 0 {
			continue
		}
		fields = splitTab(fields[:0], line)
		if len(fields) != ncols {
			if err := lr.Bad("expected %d tab-separated fields, got %d", ncols, len(fields)); err != nil {
				return err
			}
			continue
		}
		if err := fn(line, fields); err != nil {
			return err
		}
	}
}

// Line is the 1-based number of the last line returned.
func (lr *lineReader) Line() int64 { return lr.line }

// Bad applies the bad-line policy to a malformed line: it returns an error
// naming file and line when the budget is exhausted, nil after counting it
// otherwise.
func (lr *lineReader) Bad(format string, args ...any) error {
	err := badf(lr.path, lr.line, format, args...)
	lr.report.BadLines++
	if lr.report.BadLines > lr.opts.MaxBadLines {
		if lr.opts.MaxBadLines > 0 {
			return fmt.Errorf("more than %d bad lines (--max-bad-lines): %w", lr.opts.MaxBadLines, err)
		}
		return err
	}
	if len(lr.report.FirstBad) < 20 {
		lr.report.FirstBad = append(lr.report.FirstBad, err.Error())
	}
	return nil
}

// Close releases the file.
func (lr *lineReader) Close() error {
	if lr.gz != nil {
		lr.gz.Close()
	}
	return lr.f.Close()
}

// expandInputs turns files and folders into a sorted list of files. Folders
// are walked recursively; hidden files are skipped.
func expandInputs(inputs []string) ([]string, error) {
	var out []string
	for _, in := range inputs {
		st, err := os.Stat(in)
		if err != nil {
			return nil, &BadInputError{File: in, Err: err}
		}
		if !st.IsDir() {
			out = append(out, in)
			continue
		}
		err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && p != in {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", in, err)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// baseName strips directories and compression suffixes: ".../meta_Baby.json.gz"
// → "meta_Baby.json".
func baseName(p string) string {
	b := filepath.Base(p)
	return strings.TrimSuffix(b, ".gz")
}

// latin1 converts ISO-8859-1 bytes to UTF-8 (every byte is one code point).
func latin1(b []byte) string {
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return string(out)
}

// checkUTF8 returns s, or an error when it is not valid UTF-8.
func checkUTF8(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errors.New("text is not valid UTF-8 (wrong encoding?)")
	}
	return string(b), nil
}

package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEachChunkLineMatchesNext checks the block reader against
// lineReader.Next: same lines, line numbers and counts, for plain and gzip
// files, with CRLF, a BOM, no final newline, and lines longer than a block.
func TestEachChunkLineMatchesNext(t *testing.T) {
	long := strings.Repeat("x", chunkSize*5/2)
	inputs := map[string]string{
		"empty":         "",
		"one line":      "a,b,1,2",
		"crlf and bom":  "\xef\xbb\xbfa\r\nb\r\n\r\nc",
		"long lines":    "first\n" + long + "\nmid\n" + long + long + "\nlast\n",
		"many lines":    strings.Repeat("A1,B2,5.0,123456789\n", 200_000),
		"block edge":    strings.Repeat("y", chunkSize-1) + "\n" + strings.Repeat("z", chunkSize) + "\nend",
		"only newlines": "\n\n\n",
	}
	for name, text := range inputs {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gz=%v", name, gz), func(t *testing.T) {
				p := filepath.Join(t.TempDir(), "f.txt")
				if gz {
					p += ".gz"
					if err := fxWriteGzip(p, []byte(text), 0); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				var want, got []string
				var r1, r2 Report
				err := eachLine(context.Background(), p, "x", &Options{}, &r1, func(lr *lineReader, line []byte) error {
					want = append(want, fmt.Sprintf("%d:%s", lr.Line(), line))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				flushes := 0
				err = eachChunkLine(context.Background(), p, "x", &Options{}, &r2, func(lr *lineReader, line []byte) error {
					got = append(got, fmt.Sprintf("%d:%s", lr.Line(), line))
					return nil
				}, func() error { flushes++; return nil })
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("eachChunkLine: %d lines, Next: %d lines", len(got), len(want))
					for i := range min(len(got), len(want)) {
						if got[i] != want[i] {
							t.Errorf("first difference at %d: %.40q vs %.40q", i, got[i], want[i])
							break
						}
					}
				}
				if r1.Lines != r2.Lines || r2.Files[0].Lines != r1.Files[0].Lines {
					t.Errorf("line counts %d/%d, want %d", r2.Lines, r2.Files[0].Lines, r1.Lines)
				}
				if len(text) > 0 && flushes == 0 {
					t.Error("flush never called")
				}
			})
		}
	}
}

func TestEachChunkLineStops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(p, []byte(strings.Repeat("line\n", 1_000_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	// An error from fn ends the read at once (the reader goroutine exits).
	n := 0
	stop := fmt.Errorf("stop")
	err := eachChunkLine(context.Background(), p, "x", &Options{}, &Report{}, func(lr *lineReader, line []byte) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	}, nil)
	if err != stop || n != 10 {
		t.Errorf("err %v after %d lines, want stop after 10", err, n)
	}
	// A cancelled context ends it too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = eachChunkLine(ctx, p, "x", &Options{}, &Report{}, func(lr *lineReader, line []byte) error { return nil }, nil)
	if err != context.Canceled {
		t.Errorf("cancelled: err %v", err)
	}
}

func TestSplitCSV(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{`a,b,c`, []string{"a", "b", "c"}, true},
		{`"a,1",b,"c ""q"""`, []string{"a,1", "b", `c "q"`}, true},
		{`"",x,`, []string{"", "x", ""}, true},
		{`"open,b`, nil, false},
		{`"a"x,b`, nil, false},
	}
	for _, tt := range tests {
		got, ok := splitCSVLine([]byte(tt.in), nil)
		var s []string
		for _, g := range got {
			s = append(s, string(g))
		}
		if ok != tt.ok || (ok && !slices.Equal(s, tt.want)) {
			t.Errorf("splitCSVLine(%s) = %q %v, want %q %v", tt.in, s, ok, tt.want, tt.ok)
		}
	}
}

func TestCleanHTML(t *testing.T) {
	for in, want := range map[string]string{
		`<span class="a-size-medium">Foo &amp; Bar</span>`: "Foo & Bar",
		"plain  text\n with\tspace ":                       "plain text with space",
		"a < b and c > d":                                  "a d", // tags are stripped minimally
		"5 < 6":                                            "5 < 6",
		"Tom &#39;n&#39; Jerry":                            "Tom 'n' Jerry",
	} {
		if got := cleanHTML(in); got != want {
			t.Errorf("cleanHTML(%q) = %q, want %q", in, got, want)
		}
	}
}

package store

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readAllAtomic reads every row of path, returning rows and their lines.
func readAllAtomic(t *testing.T, path string) ([]AtomicField, [][]string, []int64, error) {
	t.Helper()
	r, err := OpenAtomic(path)
	if err != nil {
		return nil, nil, nil, err
	}
	defer r.Close()
	var rows [][]string
	var lines []int64
	for {
		row, err := r.Next()
		if err == io.EOF {
			return r.Fields(), rows, lines, nil
		}
		if err != nil {
			return r.Fields(), rows, lines, err
		}
		rows = append(rows, row)
		lines = append(lines, r.Line())
	}
}

func TestAtomicReadVariants(t *testing.T) {
	wantFields := []AtomicField{{"user_id", "token"}, {"item_id_list", "token_seq"}, {"rating", "float"}}
	wantRows := [][]string{{"u1", "i1 i2 i3", "4.5"}, {"u2", "", "1"}, {"u3", "i9", ""}}
	body := "u1\ti1 i2 i3\t4.5\nu2\t\t1\n\nu3\ti9\t\n"
	cases := []struct {
		name      string
		content   string
		wantLines []int64
	}{
		{"LF", "user_id:token\titem_id_list:token_seq\trating:float\n" + body, []int64{2, 3, 5}},
		{"CRLF+BOM", "\xef\xbb\xbfuser_id:token\titem_id_list:token_seq\trating:float\r\n" + strings.ReplaceAll(body, "\n", "\r\n"), []int64{2, 3, 5}},
		{"no final newline", "user_id:token\titem_id_list:token_seq\trating:float\n" + strings.TrimSuffix(body, "\n"), []int64{2, 3, 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.inter")
			os.WriteFile(p, []byte(c.content), 0o644)
			fields, rows, lines, err := readAllAtomic(t, p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fields, wantFields) || !reflect.DeepEqual(rows, wantRows) || !reflect.DeepEqual(lines, c.wantLines) {
				t.Errorf("got %v %q %v, want %v %q %v", fields, rows, lines, wantFields, wantRows, c.wantLines)
			}
		})
	}
}

func TestAtomicReaderAPI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.item")
	os.WriteFile(p, []byte("item_id:token\ttitle:token_seq\nA\ta b\n"), 0o644)
	r, err := OpenAtomic(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.FieldIndex("title") != 1 || r.FieldIndex("item_id") != 0 || r.FieldIndex("nope") != -1 {
		t.Error("FieldIndex")
	}
	if r.Line() != 1 {
		t.Errorf("Line before the first row = %d, want 1", r.Line())
	}
	row, err := r.Next()
	if err != nil || row[0] != "A" || !reflect.DeepEqual(SplitSeq(row[1]), []string{"a", "b"}) {
		t.Errorf("row %q, %v", row, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("want io.EOF, got %v", err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("want io.EOF again, got %v", err)
	}
}

func TestAtomicReadErrors(t *testing.T) {
	cases := []struct {
		name, content, want string
	}{
		{"too few", "a:token\tb:token\tc:float\nx\ty\t1\nx\ty\n", "x.inter:3: expected 3 fields, got 2"},
		{"too many after blank", "a:token\tb:token\n1\t2\n\n1\t2\t3\n", "x.inter:4: expected 2 fields, got 3"},
		{"CRLF line numbers", "a:token\r\n1\r\n2\t3\r\n", "x.inter:3: expected 1 fields, got 2"},
		{"empty file", "", "empty file"},
		{"no colon", "a:token\tb\n", `x.inter:1: header field 2 "b" is not of the form name:type`},
		{"unknown type", "a:token\tb:int\n", `unknown type "int"`},
		{"duplicate", "a:token\ta:float\n", `duplicate header field "a"`},
		{"empty header", "\n1\n", "x.inter:1: empty header line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.inter")
			os.WriteFile(p, []byte(c.content), 0o644)
			_, _, _, err := readAllAtomic(t, p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestAtomicLongLine(t *testing.T) {
	long := strings.Repeat("tok ", 600_000) // 2.4 MB, more than the read buffer
	p := filepath.Join(t.TempDir(), "long.item")
	os.WriteFile(p, []byte("id:token\ttext:token_seq\n1\t"+long+"\n2\tx\n"), 0o644)
	_, rows, _, err := readAllAtomic(t, p)
	if err != nil || len(rows) != 2 || rows[0][1] != long || rows[1][1] != "x" {
		t.Errorf("long line: %d rows, %v", len(rows), err)
	}
}

func TestAtomicWriter(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "out.inter")
	fields := []AtomicField{{"user_id", AtomicToken}, {"item_id", AtomicToken}, {"title", AtomicTokenSeq}, {"timestamp", AtomicFloat}}
	w, err := CreateAtomic(p, fields)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write("u1", "i1", CleanField("a\tb\r\nc"), "12"); err != nil {
		t.Fatal(err)
	}
	if err := w.Write("u1", "i2", "bad\ttext", "13"); err == nil || !strings.Contains(err.Error(), `field "title"`) || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("tab in value: %v", err)
	}
	if err := w.Write("u1", "i2"); err == nil || !strings.Contains(err.Error(), "expected 4 fields, got 2") {
		t.Errorf("short row: %v", err)
	}
	if err := w.Write("u2", "i3", "", "14"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("file visible before Commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if w.Rows() != 2 {
		t.Errorf("Rows = %d", w.Rows())
	}
	if err := w.Write("a", "b", "c", "d"); err == nil {
		t.Error("Write after Commit accepted")
	}
	raw, _ := os.ReadFile(p)
	want := "user_id:token\titem_id:token\ttitle:token_seq\ttimestamp:float\nu1\ti1\ta b  c\t12\nu2\ti3\t\t14\n"
	if string(raw) != want {
		t.Errorf("file %q, want %q", raw, want)
	}
	got, rows, _, err := readAllAtomic(t, p)
	if err != nil || !reflect.DeepEqual(got, fields) || len(rows) != 2 {
		t.Errorf("read back %v %q %v", got, rows, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("%d entries in the directory, want 1", len(entries))
	}

	// Abort leaves nothing.
	p2 := filepath.Join(dir, "aborted.inter")
	w2, err := CreateAtomic(p2, fields[:1])
	if err != nil {
		t.Fatal(err)
	}
	w2.Write("x")
	w2.Abort()
	w2.Abort()
	if _, err := os.Stat(p2); !os.IsNotExist(err) {
		t.Errorf("aborted file exists: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}

	for _, bad := range [][]AtomicField{nil, {{"a:b", "token"}}, {{"a", "int"}}, {{"a", "token"}, {"a", "float"}}, {{"", "token"}}} {
		if _, err := CreateAtomic(filepath.Join(dir, "bad"), bad); err == nil {
			t.Errorf("CreateAtomic accepted %v", bad)
		}
	}
}

func TestSplitSeqCleanField(t *testing.T) {
	if got := SplitSeq(" a  b c "); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("SplitSeq = %q", got)
	}
	if got := SplitSeq(""); len(got) != 0 {
		t.Errorf("SplitSeq(\"\") = %q", got)
	}
	if got := CleanField("x\ty\nz\r"); got != "x y z " {
		t.Errorf("CleanField = %q", got)
	}
	if got := CleanField("plain"); got != "plain" {
		t.Errorf("CleanField = %q", got)
	}
}

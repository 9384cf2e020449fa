package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenAtomic writes the input to a RecBole atomic file and reads it: no
// panic, and every row that reads without error has one value per field.
func FuzzOpenAtomic(f *testing.F) {
	for _, s := range []string{
		"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4.0\t881250949\n2\t11\t3\t881250950\n",
		"\xef\xbb\xbfitem_id:token\ttitle:token_seq\r\n10\ta b c\r\n\r\n11\t\r\n",
		"user_id:token\titem_id_list:token_seq\n1\t1 2 3\n2\n",
		"a:weird\tb:token\n",
		"",
		"user_id:token\n\n\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.inter")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := OpenAtomic(p)
		if err != nil {
			if r != nil {
				t.Errorf("error %v with a non-nil reader", err)
			}
			return
		}
		defer r.Close()
		nf := len(r.Fields())
		if nf == 0 {
			t.Fatalf("header of %q read with no fields", b)
		}
		for _, fl := range r.Fields() {
			if !validAtomicType(fl.Type) {
				t.Errorf("field %s accepted with an invalid type", fl)
			}
		}
		for range len(b) + 1 {
			row, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				return
			}
			if len(row) != nf {
				t.Fatalf("row %q has %d values, header %d fields", row, len(row), nf)
			}
		}
		t.Fatalf("more rows than bytes in %q", b)
	})
}

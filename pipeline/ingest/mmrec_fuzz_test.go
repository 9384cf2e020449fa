package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// longNumber finds digit runs of 7 or more: MMRec ids are dense indices, so
// the tables grow to the largest id by design (up to MaxDenseIndex, about a
// gigabyte of id slots), which is too slow for a fuzz iteration; ids past
// the cap are rejected (TestDenseIndexCap). The fuzzer explores everything
// else.
var longNumber = regexp.MustCompile(`[0-9]{7,}`)

// FuzzRunMMRec writes the input as an MMRec .inter file and ingests it: no
// panic; either an error or tables whose interactions reference existing
// users and items.
func FuzzRunMMRec(f *testing.F) {
	for _, s := range []string{
		"userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n0\t2\t1\n1\t1\t2\n",
		"userID\titemID\tx_label\trating\ttimestamp\n0\t3\t0\t4.5\t881250949\n2\t0\t1\t1\t1e9\n",
		"user_id:token\titem_id:token\tx_label:float\r\n0\t0\t0\r\n\r\n",
		"userID\titemID\tx_label\n0\tX\t0\n",
		"userID\titemID\n0\t0\n",
		"",
	} {
		f.Add([]byte(s), int8(0))
		f.Add([]byte(s), int8(3))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, maxBad int8) {
		if longNumber.Match(b) {
			t.Skip("index too large for a fuzz run (dense ids allocate up to the largest one)")
		}
		p := filepath.Join(dir, "fuzz.inter")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tb, rep, err := Run(context.Background(), "mmrec", []string{p}, Options{MaxBadLines: int64(maxBad)})
		if err != nil {
			var bad *BadInputError
			if !errors.As(err, &bad) {
				t.Errorf("error of another kind than BadInputError: %v", err)
			}
			return
		}
		if tb == nil || rep == nil {
			t.Fatalf("no error and no tables (%v) or report (%v)", tb, rep)
		}
		n := tb.Inter.Len()
		if len(tb.Inter.Item) != n || len(tb.Inter.Rating) != n || len(tb.Inter.Timestamp) != n {
			t.Fatalf("interaction columns of different lengths")
		}
		for r := range n {
			if u := tb.Inter.User[r]; u < 0 || int(u) >= len(tb.Users) {
				t.Fatalf("row %d: user %d of %d", r, u, len(tb.Users))
			}
			if i := tb.Inter.Item[r]; i < 0 || int(i) >= len(tb.Items) {
				t.Fatalf("row %d: item %d of %d", r, i, len(tb.Items))
			}
		}
		if tb.Given != nil && tb.Given.Len() != len(tb.Given.Part) {
			t.Fatalf("given split: %d rows, %d parts", tb.Given.Len(), len(tb.Given.Part))
		}
	})
}

func TestDenseIndexCap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.inter")
	if err := os.WriteFile(p, []byte("userID\titemID\tx_label\n0\t2147483647\t0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Run(context.Background(), "mmrec", []string{p}, Options{})
	var bad *BadInputError
	if !errors.As(err, &bad) || bad.Line != 2 {
		t.Fatalf("err = %v, want a bad-input error at line 2", err)
	}
}

// Package cycledata writes the small "cycle" datasets the sequence models'
// tests train on: every user walks a cycle of items (a random start, then
// item+1, item+2, ... mod items), so the next item is a function of the last
// one and a sequence model can reach hit@10 ≈ 1 where popularity stays near
// 10/items. It is test support, imported only by _test files.
package cycledata

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
)

// Options choose the pooled feature files written beside the sequences.
type Options struct {
	// FeatDim is the width of the random .feat1CLS (text) and .feat3CLS
	// (image) vectors; 0 writes none.
	FeatDim int
	// WordDrop adds a .feat2CLS (word-dropped text) file.
	WordDrop bool
	// NoImageItem, when ≥ 0, gives that item an all-zero image vector.
	NoImageItem int
}

// RecBole writes UniSRec/MISSRec-style sequence files (every prefix of each
// user's sequence a train row, histories of at most 50, leave-one-out valid
// and test rows) for users walking cycles of 6–13 items, plus the feature
// files of o, ingests them with --format recbole and returns the dataset
// directory. Every random draw comes from r, in a fixed order, so a caller
// can go on drawing from it.
func RecBole(t testing.TB, r *rand.Rand, users, items int, o Options) string {
	t.Helper()
	src := t.TempDir()
	head := "user_id:token\titem_id_list:token_seq\titem_id:token\n"
	var tr, va, te strings.Builder
	tr.WriteString(head)
	va.WriteString(head)
	te.WriteString(head)
	hist := func(s []int, end int) string {
		parts := make([]string, 0, end)
		for _, v := range s[max(0, end-50):end] {
			parts = append(parts, fmt.Sprint(v))
		}
		return strings.Join(parts, " ")
	}
	for u := range users {
		start, n := r.IntN(items), 6+r.IntN(8)
		s := make([]int, n)
		for k := range s {
			s[k] = (start + k) % items
		}
		for j := n - 3; j >= 1; j-- {
			fmt.Fprintf(&tr, "%d\t%s\t%d\n", u, hist(s, j), s[j])
		}
		fmt.Fprintf(&va, "%d\t%s\t%d\n", u, hist(s, n-2), s[n-2])
		fmt.Fprintf(&te, "%d\t%s\t%d\n", u, hist(s, n-1), s[n-1])
	}
	files := map[string][]byte{"Cyc.train.inter": []byte(tr.String()), "Cyc.valid.inter": []byte(va.String()), "Cyc.test.inter": []byte(te.String())}
	if dim := o.FeatDim; dim > 0 {
		names := []string{"Cyc.feat1CLS"}
		if o.WordDrop {
			names = append(names, "Cyc.feat2CLS")
		}
		for _, name := range append(names, "Cyc.feat3CLS") {
			b := make([]byte, items*dim*4)
			for i := range items * dim {
				v := float32(r.NormFloat64())
				if name == "Cyc.feat3CLS" && i/dim == o.NoImageItem {
					v = 0
				}
				binary.LittleEndian.PutUint32(b[i*4:], math.Float32bits(v))
			}
			files[name] = b
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "ds")
	do := dataset.Options{Format: "recbole", Inputs: []string{src}, Out: out, Version: "test", MinRating: math.NaN()}
	do.Ingest.FeatDim = o.FeatDim
	if _, err := dataset.Ingest(context.Background(), do); err != nil {
		t.Fatal(err)
	}
	return out
}

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

// writeSeqFiles writes UniSRec-style sequence files for the given
// sequences with histories capped at maxHist, train rows longest first.
func writeSeqFiles(t *testing.T, dir string, seqs [][]int, maxHist int) {
	t.Helper()
	head := "user_id:token\titem_id_list:token_seq\titem_id:token\n"
	hist := func(s []int, end int) string {
		var parts []string
		for _, v := range s[max(0, end-maxHist):end] {
			parts = append(parts, fmt.Sprint(v))
		}
		return strings.Join(parts, " ")
	}
	var tr, va, te strings.Builder
	tr.WriteString(head)
	va.WriteString(head)
	te.WriteString(head)
	for u, s := range seqs {
		n := len(s)
		for j := n - 3; j >= 1; j-- {
			fmt.Fprintf(&tr, "%d\t%s\t%d\n", u, hist(s, j), s[j])
		}
		fmt.Fprintf(&va, "%d\t%s\t%d\n", u, hist(s, n-2), s[n-2])
		fmt.Fprintf(&te, "%d\t%s\t%d\n", u, hist(s, n-1), s[n-1])
	}
	for name, body := range map[string]string{"X.train.inter": tr.String(), "X.valid.inter": va.String(), "X.test.inter": te.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecBoleSequencesRebuilt(t *testing.T) {
	// User 0's sequence is longer than the history cap (and repeats an
	// item), so rows at the cap are ordered by file order and checked by
	// chaining; user 1 has exactly 3 items (no train rows).
	long := []int{}
	for k := range 12 {
		long = append(long, (k*7)%9)
	}
	seqs := [][]int{long, {4, 5, 6}, {1, 2, 3, 4}}
	dir := t.TempDir()
	writeSeqFiles(t, dir, seqs, 4)
	tb, _, err := Run(context.Background(), "recbole", []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32][]int{}
	parts := map[int32][]int8{}
	for k := range tb.Given.Len() {
		u := tb.Given.User[k]
		got[u] = append(got[u], int(tb.Given.Item[k]))
		parts[u] = append(parts[u], tb.Given.Part[k])
	}
	for u, s := range seqs {
		if !slices.Equal(got[int32(u)], s) {
			t.Errorf("user %d: rebuilt %v, want %v", u, got[int32(u)], s)
		}
		p := parts[int32(u)]
		if p[len(p)-1] != 2 || p[len(p)-2] != 1 || slices.Contains(p[:len(p)-2], 1) {
			t.Errorf("user %d parts %v", u, p)
		}
	}
	if tb.Inter.Len() != 12+3+4 {
		t.Errorf("interactions %d", tb.Inter.Len())
	}
}

func TestRecBoleBadPrefixNamesLine(t *testing.T) {
	dir := t.TempDir()
	writeSeqFiles(t, dir, [][]int{{1, 2, 3, 4, 5}}, 50)
	// Corrupt the first (longest) train row's history.
	p := filepath.Join(dir, "X.train.inter")
	data, _ := os.ReadFile(p)
	lines := strings.Split(string(data), "\n")
	lines[1] = "0\t1 9\t3"
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Run(context.Background(), "recbole", []string{dir}, Options{})
	if err == nil || !strings.Contains(err.Error(), "X.train.inter:2") {
		t.Fatalf("err = %v, want one naming X.train.inter:2", err)
	}
}

func TestRecBoleFeatCLSNeedsDim(t *testing.T) {
	dir := t.TempDir()
	writeSeqFiles(t, dir, [][]int{{0, 1, 2}}, 50)
	if err := os.WriteFile(filepath.Join(dir, "X.feat1CLS"), make([]byte, 3*4*2), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Run(context.Background(), "recbole", []string{dir}, Options{}); err == nil || !strings.Contains(err.Error(), "--feat-dim") {
		t.Errorf("err = %v, want a hint about --feat-dim", err)
	}
	tb, _, err := Run(context.Background(), "recbole", []string{dir}, Options{FeatDim: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := tb.Features[0]
	if f.Modality != "text" || f.Rows != 3 || f.Dim != 2 || slices.Contains(f.Valid, true) {
		t.Errorf("feature %+v: all-zero rows must be invalid", f)
	}
	if _, _, err := Run(context.Background(), "recbole", []string{dir}, Options{FeatDim: 5}); err == nil {
		t.Error("a width that does not divide the file was accepted")
	}
}

// TestRecBoleTextByNumber: without an .item2index, .text and .item.json
// name items by their numbers (amazon-office); the text must reach those
// items, and a number past the last item is reported, not attached.
func TestRecBoleTextByNumber(t *testing.T) {
	dir := t.TempDir()
	writeSeqFiles(t, dir, [][]int{{0, 1, 2, 3}, {2, 3, 1}}, 10)
	text := "item_id:token\ttext:token_seq\n0\tred stapler\n2\tblue pen\n9\tno such item\n"
	js := `{"1": {"title": "paper clips", "brand": "Acme", "categories": "Office"}}`
	for name, body := range map[string]string{"X.text": text, "X.item.json": js} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tb, rep, err := Run(context.Background(), "recbole", []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Items) != 4 {
		t.Fatalf("%d items, want 4", len(tb.Items))
	}
	cases := []struct {
		idx  int
		want string
	}{{0, "red stapler"}, {1, "paper clips"}, {2, "blue pen"}, {3, ""}}
	for _, c := range cases {
		it := tb.Items[c.idx]
		got := it.Title + it.Text
		if it.ID != fmt.Sprint(c.idx) || !strings.Contains(got, c.want) || (c.want == "") != !it.HasText() {
			t.Errorf("item %d: id %q, title %q text %q; want %q", c.idx, it.ID, it.Title, it.Text, c.want)
		}
	}
	if rep.MetaUnmatched != 1 {
		t.Errorf("unmatched metadata %d, want 1 (item 9)", rep.MetaUnmatched)
	}
}

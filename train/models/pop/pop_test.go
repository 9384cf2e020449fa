package pop

import (
	"context"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
)

func TestPopularityRanking(t *testing.T) {
	s := &store.Split{}
	// item 2 ×3, items 0 and 3 ×2 (tie), item 1 ×1 in train; item 1 ×5 in test (not counted).
	for _, r := range []struct {
		u, i int32
		p    int8
	}{{0, 2, 0}, {1, 2, 0}, {2, 2, 0}, {0, 3, 0}, {1, 3, 0}, {1, 0, 0}, {2, 0, 0}, {2, 1, 0},
		{0, 1, 2}, {1, 1, 2}, {3, 1, 2}, {3, 1, 2}, {3, 1, 2}} {
		s.AppendRow(r.u, r.i, 1, 0, r.p)
	}
	d := &train.Data{NumUsers: 4, NumItems: 5, Split: s}
	m, err := New(&train.Env{Data: d})
	if err != nil {
		t.Fatal(err)
	}
	score, _ := m.Scorer(context.Background(), store.PartTest)
	items, _, n, err := eval.TopK(context.Background(), []int32{3}, 5, 5, nil, score, eval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Ties (0 and 3; 4 unseen vs nothing) broken by lower index.
	if want := []int32{2, 0, 3, 1, 4}; !slices.Equal(items[:n[0]], want) {
		t.Errorf("ranking %v, want %v", items[:n[0]], want)
	}
	if m.BatchesPerEpoch() != 0 || len(m.State()) != 1 {
		t.Error("popularity has something to train")
	}
}

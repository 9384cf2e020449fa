package seqdata

import (
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
)

func TestHistories(t *testing.T) {
	var s store.Split
	// user 0: train items at ts 30, 10, 20; valid item at ts 5 (still after
	// the training items); test item. User 1: only a test row.
	s.AppendRow(0, 7, 1, 30, store.PartTrain)
	s.AppendRow(0, 8, 1, 10, store.PartTrain)
	s.AppendRow(0, 9, 1, 20, store.PartTrain)
	s.AppendRow(0, 4, 1, 5, store.PartValid)
	s.AppendRow(0, 3, 1, 50, store.PartTest)
	s.AppendRow(1, 2, 1, 1, store.PartTest)
	tests := []struct {
		upTo int8
		want [][]int32
	}{
		{store.PartTrain, [][]int32{{8, 9, 7}, {}}},
		{store.PartValid, [][]int32{{8, 9, 7, 4}, {}}},
		{store.PartTest, [][]int32{{8, 9, 7, 4, 3}, {2}}},
	}
	for _, tc := range tests {
		got, err := Histories(&s, 2, tc.upTo)
		if err != nil {
			t.Fatal(err)
		}
		for u := range tc.want {
			if !slices.Equal(got[u], tc.want[u]) {
				t.Errorf("up to part %d, user %d: %v, want %v", tc.upTo, u, got[u], tc.want[u])
			}
		}
	}
	if _, err := Histories(&s, 1, store.PartTest); err == nil {
		t.Error("a user outside [0, numUsers) was accepted")
	}
}

// TestCursor walks two epochs of a plan: one seed (and one epochStart) per
// epoch, every batch once per epoch, and a cursor restored from another's
// State mid-epoch continues with the same batches.
func TestCursor(t *testing.T) {
	members := [][]int{{0, 1, 2, 3, 4}, {5, 6, 7}}
	build := func(seed uint64) *Plan { return NewPlan(members, func(int) int { return 2 }, seed, 7) }
	rng := train.NewRNG(1, train.StreamTrain)
	var c Cursor
	starts := 0
	start := func() error { starts++; return nil }
	n := CountBatches(members, func(int) int { return 2 })
	for e := range 2 {
		seen := map[BatchRef]bool{}
		for range n {
			ref, _, err := c.Next(rng, start, build)
			if err != nil {
				t.Fatal(err)
			}
			seen[ref] = true
		}
		if len(seen) != n || starts != e+1 {
			t.Fatalf("epoch %d: %d distinct batches of %d, %d epoch starts", e, len(seen), n, starts)
		}
	}
	// Restore mid-epoch: copy the state after two batches into a new cursor.
	var a, b Cursor
	r1 := train.NewRNG(5, train.StreamTrain)
	for range 2 {
		if _, _, err := a.Next(r1, nil, build); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb := a.State(), b.State()
	for k := range sa {
		copy(sb[k].I64, sa[k].I64)
	}
	for range n - 2 {
		ra, _, _ := a.Next(r1, nil, build)
		rb, _, _ := b.Next(nil, nil, build) // mid-epoch: no draw
		if ra != rb {
			t.Fatalf("restored cursor gives %v, original %v", rb, ra)
		}
	}
	// A saved position beyond the plan (another dataset's checkpoint) is an
	// error, not a panic.
	var bad Cursor
	bad.State()[1].I64[0] = int64(n + 3)
	bad.State()[0].I64[0] = 1
	if _, _, err := bad.Next(nil, nil, build); err == nil {
		t.Error("position beyond the plan accepted")
	}
}

package seqdata

import (
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/store"
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

package prep

import (
	"math"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/store"
)

func table(rows ...[3]int64) *store.Interactions {
	var t store.Interactions
	for _, r := range rows {
		t.Append(int32(r[0]), int32(r[1]), float32(math.NaN()), r[2])
	}
	return &t
}

func TestChronoOrderStableTieBreak(t *testing.T) {
	// user, item, time; rows 1 and 2 tie on user 0 time 5: input order kept.
	tb := table([3]int64{1, 9, 3}, [3]int64{0, 7, 5}, [3]int64{0, 8, 5}, [3]int64{0, 6, 1}, [3]int64{1, 5, 2})
	got := ChronoOrder(tb, nil)
	want := []int32{3, 1, 2, 4, 0}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if g := ChronoOrder(tb, []int32{0, 2, 4}); !slices.Equal(g, []int32{2, 4, 0}) {
		t.Errorf("subset order %v", g)
	}
}

func TestKCore(t *testing.T) {
	// u0: i0 i1 i2; u1: i0 i1; u2: i0 (x2, a duplicate pair); u3: i3.
	tb := table([3]int64{0, 0, 1}, [3]int64{0, 1, 2}, [3]int64{0, 2, 3}, [3]int64{1, 0, 1}, [3]int64{1, 1, 2},
		[3]int64{2, 0, 1}, [3]int64{2, 0, 9}, [3]int64{3, 3, 1})
	// 2-core: u2 has one distinct item, u3 one: gone; then i2 (only u0) gone,
	// i3 gone; u0 keeps i0 i1 (2), u1 keeps i0 i1 (2): stable.
	got := KCore(tb, nil, 2, 2)
	if want := []int32{0, 1, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("2-core rows %v, want %v", got, want)
	}
	// 3-core empties the table: iterative removal cascades.
	if got := KCore(tb, nil, 3, 3); len(got) != 0 {
		t.Errorf("3-core rows %v, want none", got)
	}
	// No bounds: everything.
	if got := KCore(tb, nil, 0, 0); len(got) != tb.Len() {
		t.Errorf("0-core kept %d", len(got))
	}
}

func TestThreshold(t *testing.T) {
	var tb store.Interactions
	tb.Append(0, 0, 5, 1)
	tb.Append(0, 1, 3, 2)
	tb.Append(0, 2, float32(math.NaN()), 3)
	tb.Append(0, 3, 4, 4)
	if got := Threshold(&tb, 4); !slices.Equal(got, []int32{0, 2, 3}) {
		t.Errorf("kept %v", got)
	}
}

func parts(s *store.Split, user int32) []int8 {
	var out []int8
	for k := range s.Len() {
		if s.User[k] == user {
			out = append(out, s.Part[k])
		}
	}
	return out
}

func TestLOO(t *testing.T) {
	tb := table([3]int64{0, 10, 3}, [3]int64{0, 11, 1}, [3]int64{0, 12, 2}, [3]int64{0, 13, 4},
		[3]int64{1, 20, 1}, [3]int64{1, 21, 2})
	s := LOO(tb, nil, 0)
	// user 0 chronological: 11 12 10 13 → train train valid test.
	if !slices.Equal(s.Item[:4], []int32{11, 12, 10, 13}) || !slices.Equal(parts(s, 0), []int8{0, 0, 1, 2}) {
		t.Errorf("user 0: items %v parts %v", s.Item[:4], parts(s, 0))
	}
	// user 1 has 2 interactions: all train.
	if !slices.Equal(parts(s, 1), []int8{0, 0}) {
		t.Errorf("user 1 parts %v", parts(s, 1))
	}
	// max length 3 drops user 0's oldest.
	s3 := LOO(tb, nil, 3)
	if !slices.Equal(s3.Item[:3], []int32{12, 10, 13}) || !slices.Equal(parts(s3, 0), []int8{0, 1, 2}) {
		t.Errorf("max-len 3: %v %v", s3.Item[:3], parts(s3, 0))
	}
}

func TestRandomRule(t *testing.T) {
	var rows [][3]int64
	sizes := map[int64]int{0: 1, 1: 2, 2: 5, 3: 10, 4: 23}
	for u, n := range sizes {
		for i := range n {
			rows = append(rows, [3]int64{u, int64(i), int64(i)})
		}
	}
	tb := table(rows...)
	s := Random(tb, nil, 7)
	// (train, valid, test) per user by the LATTICE rule.
	want := map[int32][3]int{0: {1, 0, 0}, 1: {1, 0, 1}, 2: {3, 1, 1}, 3: {8, 1, 1}, 4: {19, 2, 2}}
	for u, w := range want {
		var c [3]int
		for _, p := range parts(s, u) {
			c[p]++
		}
		if c != w {
			t.Errorf("user %d: train/valid/test %v, want %v", u, c, w)
		}
	}
	// 23 items: floor(4.6)=4 held out, test = first half = 2. Same seed, same split; another seed differs somewhere.
	again := Random(tb, nil, 7)
	if !slices.Equal(again.Part, s.Part) {
		t.Error("same seed gave a different split")
	}
	differ := false
	for seed := uint64(8); seed < 20 && !differ; seed++ {
		differ = !slices.Equal(Random(tb, nil, seed).Part, s.Part)
	}
	if !differ {
		t.Error("the seed has no effect")
	}
	// Rows are ordered by user then time.
	for k := 1; k < s.Len(); k++ {
		if s.User[k] < s.User[k-1] || (s.User[k] == s.User[k-1] && s.Timestamp[k] < s.Timestamp[k-1]) {
			t.Fatalf("row %d out of order", k)
		}
	}
}

func TestTemporal(t *testing.T) {
	tb := table([3]int64{0, 1, 10}, [3]int64{0, 2, 20}, [3]int64{1, 3, 30}, [3]int64{1, 4, 40}, [3]int64{2, 5, 50})
	s, err := Temporal(tb, nil, 30, 50)
	if err != nil {
		t.Fatal(err)
	}
	tr, va, te := s.Counts()
	if tr != 2 || va != 2 || te != 1 {
		t.Errorf("counts %d %d %d, want 2 2 1", tr, va, te)
	}
	if _, err := Temporal(tb, nil, 50, 30); err == nil {
		t.Error("valid cut after test cut accepted")
	}
	q := TimeQuantiles(tb, nil, 0.8, 0.9)
	if q[0] != 50 || q[1] != 50 {
		t.Errorf("quantiles %v", q)
	}
	if q := TimeQuantiles(tb, nil, 0.4); q[0] != 30 {
		t.Errorf("0.4 quantile %v, want 30", q)
	}
}

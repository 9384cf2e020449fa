package eval

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
)

// fixedScores returns a ScoreFunc that serves rows of a table.
func fixedScores(rows map[int32][]float32) ScoreFunc {
	return func(users []int32, scores []float32) error {
		n := len(scores) / len(users)
		for b, u := range users {
			copy(scores[b*n:(b+1)*n], rows[u])
		}
		return nil
	}
}

const tol = 1e-9

func TestHandComputedMetrics(t *testing.T) {
	l3, l5, l6 := 1/math.Log2(3), 1/math.Log2(5), 1/math.Log2(6)
	cases := []struct {
		name     string
		scores   []float32
		pos, exc []int32
		want     map[string]float64
	}{
		{
			// Ranking without item 4: 1 (.9), 3 (.9, tie → after 1), 2, 5, 0.
			// Hits at ranks 2, 4, 5.
			name:   "ties and mask",
			scores: []float32{0.1, 0.9, 0.3, 0.9, 0.5, 0.2},
			pos:    []int32{0, 3, 5}, exc: []int32{4},
			want: map[string]float64{
				"recall@2": 1.0 / 3, "precision@2": 0.5, "ndcg@2": l3 / (1 + l3), "hit@2": 1, "mrr@2": 0.5, "map@2": 0.5 / 2,
				"recall@5": 1, "precision@5": 0.6, "ndcg@5": (l3 + l5 + l6) / (1 + l3 + 0.5), "hit@5": 1, "mrr@5": 0.5,
				"map@5":       (1.0/2 + 2.0/4 + 3.0/5) / 3,
				"ndcg_ngcf@2": l3 / (1 + l3), "ndcg_ngcf@5": (l3 + l5 + l6) / (1 + l3 + 0.5),
			},
		},
		{
			// All scores equal: ranking 0,1,2,3,4,5; hits at ranks 2 and 5
			// of 3 positives (item 5 is ranked 6th).
			name:   "all tied, ngcf differs",
			scores: []float32{0, 0, 0, 0, 0, 0},
			pos:    []int32{1, 4, 5},
			want: map[string]float64{
				"recall@2": 1.0 / 3, "precision@2": 0.5, "ndcg@2": l3 / (1 + l3), "hit@2": 1, "mrr@2": 0.5, "map@2": 0.25,
				"recall@5": 2.0 / 3, "precision@5": 0.4, "ndcg@5": (l3 + l6) / (1 + l3 + 0.5), "hit@5": 1, "mrr@5": 0.5,
				"map@5":       (0.5 + 0.4) / 3,
				"ndcg_ngcf@2": l3 / (1 + l3), "ndcg_ngcf@5": (l3 + l6) / (1 + l3),
			},
		},
		{
			// The only positive is masked: never hit.
			name:   "masked positive",
			scores: []float32{0, 0, 5, 0, 0, 0},
			pos:    []int32{2}, exc: []int32{2},
			want: map[string]float64{"recall@2": 0, "hit@5": 0, "ndcg@5": 0, "ndcg_ngcf@5": 0, "mrr@5": 0, "map@5": 0},
		},
		{
			// Four of six items masked: two candidates for K = 5.
			// Ranking 5 (.7), 0 (.1); hit at rank 2.
			name:   "fewer candidates than K",
			scores: []float32{0.1, 1, 1, 1, 1, 0.7},
			pos:    []int32{0}, exc: []int32{1, 2, 3, 4},
			want: map[string]float64{
				"recall@5": 1, "precision@5": 0.2, "ndcg@5": l3, "hit@5": 1, "mrr@5": 0.5, "map@5": 0.5,
				"recall@2": 1, "precision@2": 0.5, "ndcg_ngcf@2": l3,
			},
		},
		{
			// NaN ranks last: ranking 1, 2, 0 (NaN), 3 (NaN); hit at rank 4.
			name:   "NaN last",
			scores: []float32{float32(math.NaN()), -1, float32(math.Inf(-1)), float32(math.NaN())},
			pos:    []int32{3},
			want:   map[string]float64{"hit@2": 0, "hit@5": 1, "mrr@5": 0.25, "ndcg@5": 1 / math.Log2(5)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task, err := NewTask(Graph, len(c.scores), [][]int32{c.pos}, [][]int32{c.exc})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Evaluate(context.Background(), task, fixedScores(map[int32][]float32{0: c.scores}), Options{Ks: []int{2, 5}, NGCF: true})
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range c.want {
				got, ok := res.Metrics[name]
				if !ok {
					t.Fatalf("no metric %s in %v", name, res.Metrics)
				}
				if math.Abs(got-want) > tol {
					t.Errorf("%s = %.6f, want %.6f", name, got, want)
				}
			}
			if c.name == "NaN last" && res.NaNScores != 2 {
				t.Errorf("NaN scores %d, want 2", res.NaNScores)
			}
		})
	}
}

func TestEmptyUsersSkippedAndMean(t *testing.T) {
	// User 0: hit at rank 1; user 1: no positives (skipped); user 2: miss.
	scores := map[int32][]float32{0: {3, 2, 1}, 1: {1, 2, 3}, 2: {3, 2, 1}}
	task, err := NewTask(Graph, 3, [][]int32{{0}, nil, {2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(context.Background(), task, fixedScores(scores), Options{Ks: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Users != 2 || res.Skipped != 1 {
		t.Errorf("users %d skipped %d, want 2 and 1", res.Users, res.Skipped)
	}
	if got := res.Metrics["recall@1"]; got != 0.5 {
		t.Errorf("recall@1 = %v, want 0.5 (mean over evaluated users only)", got)
	}
	if want := MetricNames([]int{1}, false); len(res.Metrics) != len(want) {
		t.Errorf("metrics %v, want exactly %v", res.Metrics, want)
	}
	empty, err := NewTask(Graph, 3, [][]int32{nil, nil}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err = Evaluate(context.Background(), empty, fixedScores(scores), Options{Ks: []int{1}})
	if err != nil || res.Users != 0 || res.Skipped != 2 || res.Metrics["recall@1"] != 0 {
		t.Errorf("all-empty task: %+v, %v", res, err)
	}
}

// naiveTop ranks with a full stable sort, the definition of the tie rule.
func naiveTop(scores []float32, exclude []int32, k int) []int32 {
	var items []int32
	for j := range scores {
		if !slices.Contains(exclude, int32(j)) {
			items = append(items, int32(j))
		}
	}
	key := func(j int32) float64 {
		s := float64(scores[j])
		if math.IsNaN(s) {
			return math.Inf(-1)
		}
		return s
	}
	sort.SliceStable(items, func(a, b int) bool {
		ka, kb := key(items[a]), key(items[b])
		if ka != kb {
			return ka > kb
		}
		na, nb := math.IsNaN(float64(scores[items[a]])), math.IsNaN(float64(scores[items[b]]))
		return !na && nb
	})
	return items[:min(k, len(items))]
}

func TestTopKAgainstStableSortAndBlocking(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const nu, ni = 97, 53
	rows := map[int32][]float32{}
	var users []int32
	var pos, exc [][]int32
	for u := range int32(nu) {
		row := make([]float32, ni)
		for j := range row {
			// Few distinct values: many ties.
			row[j] = float32(rng.IntN(5))
			if rng.IntN(50) == 0 {
				row[j] = float32(math.NaN())
			}
		}
		rows[u] = row
		users = append(users, u)
		var p, e []int32
		for j := range int32(ni) {
			switch rng.IntN(10) {
			case 0:
				p = append(p, j)
			case 1, 2:
				e = append(e, j)
			}
		}
		pos, exc = append(pos, p), append(exc, e)
	}
	const k = 20
	items, scores, n, err := TopK(context.Background(), users, ni, k, func(p int) []int32 { return exc[p] }, fixedScores(rows), Options{BlockUsers: 5, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	for p, u := range users {
		want := naiveTop(rows[u], exc[p], k)
		got := items[p*k : p*k+n[p]]
		if !slices.Equal(got, want) {
			t.Fatalf("user %d: top %v, want %v", u, got, want)
		}
		for r, it := range got {
			if s := scores[p*k+r]; s != rows[u][it] && !(s != s && rows[u][it] != rows[u][it]) {
				t.Fatalf("user %d rank %d: score %v, want %v", u, r, s, rows[u][it])
			}
		}
	}
	// Metrics do not depend on blocks or workers.
	task, err := NewTask(Graph, ni, pos, exc)
	if err != nil {
		t.Fatal(err)
	}
	var first map[string]float64
	for _, o := range []Options{{BlockUsers: 1, Workers: 1}, {BlockUsers: 7, Workers: 3}, {}} {
		o.Ks, o.NGCF = []int{1, 5, 20}, true
		res, err := Evaluate(context.Background(), task, fixedScores(rows), o)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res.Metrics
		} else if !equalMaps(first, res.Metrics) {
			t.Errorf("options %+v changed the metrics", o)
		}
	}
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func testSplit() *store.Split {
	s := &store.Split{Name: "t"}
	// user 0: train 0 1, valid 2, test 3
	// user 1: train 1, valid 3 and 4 (two), test 0
	// user 2: train 4 only
	rows := []struct {
		u, i int32
		p    int8
	}{{0, 0, 0}, {0, 1, 0}, {0, 2, 1}, {0, 3, 2}, {1, 1, 0}, {1, 3, 1}, {1, 4, 1}, {1, 0, 2}, {2, 4, 0}}
	for _, r := range rows {
		s.AppendRow(r.u, r.i, float32(math.NaN()), 0, r.p)
	}
	return s
}

func lists(l Lists) [][]int32 {
	var out [][]int32
	for k := range l.Len() {
		out = append(out, slices.Clone(l.At(k)))
	}
	return out
}

func TestSplitTask(t *testing.T) {
	s := testSplit()
	cases := []struct {
		p        Protocol
		part     int8
		users    []int32
		pos, exc [][]int32
		skipped  int
		err      string
	}{
		{Graph, store.PartValid, []int32{0, 1}, [][]int32{{2}, {3, 4}}, [][]int32{{0, 1}, {1}}, 1, ""},
		{Graph, store.PartTest, []int32{0, 1}, [][]int32{{3}, {0}}, [][]int32{{0, 1}, {1}}, 1, ""},
		{SeqLOO, store.PartTest, []int32{0, 1}, [][]int32{{3}, {0}}, [][]int32{{}, {}}, 1, ""},
		{SeqLOOMasked, store.PartTest, []int32{0, 1}, [][]int32{{3}, {0}}, [][]int32{{0, 1, 2}, {1, 3, 4}}, 1, ""},
		{SeqLOO, store.PartValid, nil, nil, nil, 0, "user 1 has 2"},
		{Graph, store.PartTrain, nil, nil, nil, 0, "not valid"},
	}
	for _, c := range cases {
		task, err := SplitTask(c.p, s, c.part, 3, 5)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s part %d: error %v, want %q", c.p, c.part, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		gotExc := lists(task.Exclude)
		for k := range gotExc {
			if gotExc[k] == nil {
				gotExc[k] = []int32{}
			}
		}
		if !slices.Equal(task.Users, c.users) || !slices.EqualFunc(lists(task.Positives), c.pos, slices.Equal) ||
			!slices.EqualFunc(gotExc, c.exc, slices.Equal) || task.Skipped != c.skipped {
			t.Errorf("%s part %d: users %v pos %v exc %v skipped %d; want %v %v %v %d", c.p, c.part,
				task.Users, lists(task.Positives), gotExc, task.Skipped, c.users, c.pos, c.exc, c.skipped)
		}
	}
	if _, err := SplitTask(Graph, s, store.PartTest, 2, 5); err == nil {
		t.Error("user outside numUsers accepted")
	}
	if _, err := NewTask(Graph, 3, [][]int32{{3}}, nil); err == nil {
		t.Error("item outside numItems accepted")
	}
}

func TestErrorsAndCancel(t *testing.T) {
	task, _ := NewTask(Graph, 4, [][]int32{{1}, {2}}, nil)
	boom := errors.New("boom")
	_, err := Evaluate(context.Background(), task, func([]int32, []float32) error { return boom }, Options{})
	if !errors.Is(err, boom) {
		t.Errorf("score error not returned: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Evaluate(ctx, task, fixedScores(nil), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := Evaluate(context.Background(), task, fixedScores(nil), Options{Ks: []int{0}}); err == nil {
		t.Error("K = 0 accepted")
	}
}

func TestParseMetricAndProtocol(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{{"recall@20", true}, {"ndcg_ngcf@50", true}, {"recall", false}, {"auc@10", false}, {"hit@0", false}, {"hit@x", false}} {
		if _, _, err := ParseMetric(c.in); (err == nil) != c.ok {
			t.Errorf("ParseMetric(%q): %v", c.in, err)
		}
	}
	if _, err := ParseProtocol("graph"); err != nil {
		t.Error(err)
	}
	if _, err := ParseProtocol("sequential"); err == nil {
		t.Error("unknown protocol accepted")
	}
	if Graph.SelectMetric() != "recall@20" || SeqLOO.SelectMetric() != "ndcg@10" || SeqLOOMasked.SelectMetric() != "hit@10" {
		t.Error("selection metrics differ from DESIGN.md")
	}
}

func TestBlockUsersCapped(t *testing.T) {
	tests := []struct {
		set, items, want int
	}{
		{0, 1000, 256},
		{100, 1000, 100},
		{256, 507_000, 33}, // 64 MiB / (4 × 507k)
		{0, 507_000, 33},
		{256, 100 << 20, 1},
	}
	for _, tc := range tests {
		if got := (Options{BlockUsers: tc.set}).blockUsers(tc.items); got != tc.want {
			t.Errorf("BlockUsers %d, %d items: %d users per block, want %d", tc.set, tc.items, got, tc.want)
		}
	}
}

// Package prep cleans interaction tables and makes splits: implicit-feedback
// threshold, iterative k-core, chronological order with a stable tie-break,
// and the named splits given, random (LATTICE's per-user hold-out), loo
// (chronological leave-one-out) and temporal (a global time cut).
package prep

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/mmpipe/mmpipe/store"
)

// Threshold keeps rows whose rating is at least min (rows without a rating,
// implicit feedback already, are kept). It returns the kept row numbers.
func Threshold(t *store.Interactions, min float32) []int32 {
	keep := make([]int32, 0, t.Len())
	for i, r := range t.Rating {
		if math.IsNaN(float64(r)) || r >= min {
			keep = append(keep, int32(i))
		}
	}
	return keep
}

// KCore iteratively removes users with fewer than userK distinct items and
// items with fewer than itemK distinct users until every remaining user and
// item meets its bound. Only rows listed in rows are considered (nil: all).
// Degrees count distinct user–item pairs, as the 5-core releases do.
func KCore(t *store.Interactions, rows []int32, userK, itemK int) []int32 {
	if rows == nil {
		rows = make([]int32, t.Len())
		for i := range rows {
			rows[i] = int32(i)
		}
	}
	if userK <= 1 && itemK <= 1 {
		return rows
	}
	// Distinct pairs: the first row of each pair carries it.
	type pair struct{ u, i int32 }
	first := make(map[pair]bool, len(rows))
	distinct := make([]bool, len(rows))
	for k, r := range rows {
		p := pair{t.User[r], t.Item[r]}
		if !first[p] {
			first[p] = true
			distinct[k] = true
		}
	}
	nu, ni := maxIdx(t.User)+1, maxIdx(t.Item)+1
	alive := slices.Clone(rows)
	dist := slices.Clone(distinct)
	for {
		du, di := make([]int32, nu), make([]int32, ni)
		for k, r := range alive {
			if dist[k] {
				du[t.User[r]]++
				di[t.Item[r]]++
			}
		}
		next, nd := alive[:0:0], dist[:0:0]
		for k, r := range alive {
			if int(du[t.User[r]]) >= userK && int(di[t.Item[r]]) >= itemK {
				next = append(next, r)
				nd = append(nd, dist[k])
			}
		}
		if len(next) == len(alive) {
			return next
		}
		alive, dist = next, nd
	}
}

func maxIdx(v []int32) int {
	m := int32(-1)
	for _, x := range v {
		m = max(m, x)
	}
	return int(m)
}

// ChronoOrder returns row numbers ordered by user, then timestamp, with
// ties kept in input order (a stable, documented tie-break). It is a stable
// counting sort by user followed by a stable sort of each user's run, so it
// stays linear in the number of rows for the usual short histories.
func ChronoOrder(t *store.Interactions, rows []int32) []int32 {
	if rows == nil {
		rows = make([]int32, t.Len())
		for i := range rows {
			rows[i] = int32(i)
		}
	}
	order := GroupByUser(t, rows)
	byTime := func(a, b int32) int { return cmp.Compare(t.Timestamp[a], t.Timestamp[b]) }
	for s := 0; s < len(order); {
		e := s + 1
		for e < len(order) && t.User[order[e]] == t.User[order[s]] {
			e++
		}
		run := order[s:e]
		if !slices.IsSortedFunc(run, byTime) {
			slices.SortStableFunc(run, byTime)
		}
		s = e
	}
	return order
}

// GroupByUser returns rows reordered by user index, keeping the input order
// within a user (a stable counting sort).
func GroupByUser(t *store.Interactions, rows []int32) []int32 {
	nu := 0
	for _, r := range rows {
		nu = max(nu, int(t.User[r])+1)
	}
	start := make([]int32, nu+1)
	for _, r := range rows {
		start[t.User[r]+1]++
	}
	for u := 1; u <= nu; u++ {
		start[u] += start[u-1]
	}
	out := make([]int32, len(rows))
	for _, r := range rows {
		u := t.User[r]
		out[start[u]] = r
		start[u]++
	}
	return out
}

// userRuns calls fn for each user's run of rows in an order sorted by user.
func userRuns(t *store.Interactions, order []int32, fn func(run []int32)) {
	for s := 0; s < len(order); {
		e := s + 1
		for e < len(order) && t.User[order[e]] == t.User[order[s]] {
			e++
		}
		fn(order[s:e])
		s = e
	}
}

func newSplit(name string, t *store.Interactions, n int) *store.Split {
	s := &store.Split{Name: name}
	s.Grow(n)
	s.Part = make([]int8, 0, n)
	return s
}

func appendRow(s *store.Split, t *store.Interactions, r int32, part int8) {
	s.AppendRow(t.User[r], t.Item[r], t.Rating[r], t.Timestamp[r], part)
}

// LOO is the chronological leave-one-out split: each user's last
// interaction is test, the one before valid, the rest train. Users with
// fewer than 3 interactions keep all of them in train. maxLen > 0 keeps only
// each user's last maxLen interactions (PMMRec keeps the last 23); 0 keeps
// all.
func LOO(t *store.Interactions, rows []int32, maxLen int) *store.Split {
	order := ChronoOrder(t, rows)
	s := newSplit("loo", t, len(order))
	userRuns(t, order, func(run []int32) {
		if maxLen > 0 && len(run) > maxLen {
			run = run[len(run)-maxLen:]
		}
		n := len(run)
		for k, r := range run {
			part := store.PartTrain
			if n >= 3 {
				switch k {
				case n - 1:
					part = store.PartTest
				case n - 2:
					part = store.PartValid
				}
			}
			appendRow(s, t, r, part)
		}
	})
	return s
}

// Random is LATTICE's per-user random hold-out: a user with fewer than 10
// interactions holds out 2 (1 test, 1 valid); otherwise floor(20 %) are held
// out, the first half (rounded down) test and the rest valid. Users with 2
// interactions hold out 1 test; users with 1 keep it in train. Seeded with a
// PCG generator: the same seed gives the same split (not the same draw as
// Python's random module).
func Random(t *store.Interactions, rows []int32, seed uint64) *store.Split {
	order := ChronoOrder(t, rows)
	s := newSplit("random", t, len(order))
	rng := rand.New(rand.NewPCG(seed, 0x6d6d70697065))
	var perm []int
	var part []int8
	userRuns(t, order, func(run []int32) {
		n := len(run)
		var k int
		switch {
		case n >= 10:
			k = n * 2 / 10
		case n >= 3:
			k = 2
		case n == 2:
			k = 1
		}
		// A partial Fisher–Yates shuffle draws the k held-out positions.
		perm = perm[:0]
		for j := range n {
			perm = append(perm, j)
		}
		for j := range k {
			x := j + rng.IntN(n-j)
			perm[j], perm[x] = perm[x], perm[j]
		}
		part = append(part[:0], make([]int8, n)...)
		nTest := k / 2
		if k == 1 {
			nTest = 1
		}
		for j := range k {
			if j < nTest {
				part[perm[j]] = store.PartTest
			} else {
				part[perm[j]] = store.PartValid
			}
		}
		for j, r := range run {
			appendRow(s, t, r, part[j])
		}
	})
	return s
}

// Temporal is a global time cut: rows at or after testCut are test, at or
// after validCut valid, the rest train.
func Temporal(t *store.Interactions, rows []int32, validCut, testCut int64) (*store.Split, error) {
	if validCut > testCut {
		return nil, fmt.Errorf("temporal split: valid cut %d is after test cut %d", validCut, testCut)
	}
	order := ChronoOrder(t, rows)
	s := newSplit("temporal", t, len(order))
	for _, r := range order {
		part := store.PartTrain
		switch ts := t.Timestamp[r]; {
		case ts >= testCut:
			part = store.PartTest
		case ts >= validCut:
			part = store.PartValid
		}
		appendRow(s, t, r, part)
	}
	return s, nil
}

// TimeQuantiles returns the timestamps below which fractions q of the rows
// fall (for choosing temporal cuts such as 0.8 / 0.9).
func TimeQuantiles(t *store.Interactions, rows []int32, q ...float64) []int64 {
	ts := make([]int64, 0, len(rows))
	if rows == nil {
		ts = append(ts, t.Timestamp...)
	} else {
		for _, r := range rows {
			ts = append(ts, t.Timestamp[r])
		}
	}
	slices.Sort(ts)
	out := make([]int64, len(q))
	if len(ts) == 0 {
		return out
	}
	for k, f := range q {
		i := min(len(ts)-1, max(0, int(f*float64(len(ts)))))
		out[k] = ts[i]
	}
	return out
}

// Package eval is mmpipe's full-ranking evaluation: the three named
// protocols of DESIGN.md, computed in parallel blocks of users from a
// scoring callback, without ever holding a users × items matrix.
//
// # Protocols
//
//   - graph (MMSSL, LATTICE, LightGCN, MF-BPR): candidates are all items
//     minus the user's training items; positives are the user's items in the
//     evaluated part (valid or test). Valid and test items are not removed
//     from each other's candidates (as in MMSSL's code).
//   - seq-loo (MISSRec, SASRec; RecBole full sort): candidates are all
//     items, the history is not masked; one positive (the user's valid or
//     test item).
//   - seq-loo-masked (PMMRec): candidates are all items minus the history
//     (the training items when scoring valid; training plus valid items when
//     scoring test); one positive. A positive that is also in the history is
//     masked and can never be hit (PMMRec's behaviour).
//
// # Ranking and ties
//
// Items are ranked by score, highest first; equal scores are ordered by
// lower item index first, as a stable sort of the items by descending score
// would order them. NaN scores rank below every other score (like -Inf, and
// after -Inf) and are counted in [Result.NaNScores]. Masked items never
// appear in a ranking, even when fewer than K candidates remain.
//
// # Metrics
//
// For a user with positives P (distinct items) and the top-K list
// r_1..r_K of the ranking, hit_j = 1 when r_j ∈ P:
//
//   - recall@K = Σ hit_j / |P|
//   - precision@K = Σ hit_j / K
//   - hit@K = 1 when any hit_j = 1
//   - ndcg@K = DCG/IDCG with DCG = Σ hit_j / log2(j+1) and the standard
//     IDCG = Σ_{j=1..min(|P|,K)} 1/log2(j+1)
//   - mrr@K = 1/j for the first hit j ≤ K, else 0
//   - map@K = Σ_j hit_j · precision@j / min(|P|, K)
//   - ndcg_ngcf@K (option): the NGCF-lineage variant of MMSSL's code, whose
//     IDCG is computed from the retrieved hit list itself: the hit list of the
//     top L = max(Ks) items is sorted and cut at K, i.e. IDCG =
//     Σ_{j=1..min(h_L, K)} 1/log2(j+1) with h_L the hits among the top L
//     (0 when there is none). It over-estimates NDCG whenever a user has more
//     positives than hits. (research/models.md §2.8 describes h as the hits
//     in the top K; MMSSL's get_performance passes the whole top-max(Ks) list
//     to ndcg_at_k, which sorts it before cutting, so with Ks = {10, 20, 50}
//     the hits among the top 50 count. The two agree for K = max(Ks).)
//
// Positives that are masked (a test item that is also a training item under
// graph) still count in |P|. Metrics are averaged over the evaluated users:
// users without any positive in the evaluated part are skipped and counted
// in [Result.Skipped].
package eval

import (
	"fmt"
	"slices"

	"github.com/mmpipe/mmpipe/store"
)

// Protocol names an evaluation protocol.
type Protocol string

// The protocols of DESIGN.md.
const (
	Graph        Protocol = "graph"
	SeqLOO       Protocol = "seq-loo"
	SeqLOOMasked Protocol = "seq-loo-masked"
)

// Protocols lists the protocol names.
func Protocols() []Protocol { return []Protocol{Graph, SeqLOO, SeqLOOMasked} }

// ParseProtocol checks a protocol name.
func ParseProtocol(s string) (Protocol, error) {
	for _, p := range Protocols() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown protocol %q (want graph, seq-loo or seq-loo-masked)", s)
}

// SelectMetric returns the validation metric that selects the model under
// p (DESIGN.md): recall@20, ndcg@10 and hit@10.
func (p Protocol) SelectMetric() string {
	switch p {
	case SeqLOO:
		return "ndcg@10"
	case SeqLOOMasked:
		return "hit@10"
	}
	return "recall@20"
}

// DefaultKs returns the cut-offs reported under p: {10, 20, 50}.
func (p Protocol) DefaultKs() []int { return []int{10, 20, 50} }

// Lists is a compact list of int32 lists: list k is
// Items[Offsets[k]:Offsets[k+1]].
type Lists struct {
	Offsets []int64
	Items   []int32
}

// Len returns the number of lists.
func (l *Lists) Len() int { return max(0, len(l.Offsets)-1) }

// At returns list k.
func (l *Lists) At(k int) []int32 {
	lo, hi := l.Offsets[k], l.Offsets[k+1]
	return l.Items[lo:hi:hi]
}

// appendList appends a list (sorted, deduplicated).
func (l *Lists) appendList(items []int32) {
	if len(l.Offsets) == 0 {
		l.Offsets = append(l.Offsets, 0)
	}
	start := len(l.Items)
	l.Items = append(l.Items, items...)
	s := l.Items[start:]
	slices.Sort(s)
	s = slices.Compact(s)
	l.Items = l.Items[:start+len(s)]
	l.Offsets = append(l.Offsets, int64(len(l.Items)))
}

// Task is one evaluation: the users to rank, with their positives and
// masked items, over NumItems items.
type Task struct {
	Protocol Protocol
	NumItems int
	// Users are the evaluated users, ascending.
	Users []int32
	// Positives and Exclude hold, for Users[k], the sorted distinct
	// positives and masked items.
	Positives, Exclude Lists
	// Skipped counts the users without any positive (not evaluated).
	Skipped int
}

// NewTask builds a task from per-user lists: positives[u] and exclude[u]
// for users 0..len(positives)-1 (exclude may be nil or shorter: no mask).
// Users with no positives are skipped and counted. Items must lie in
// [0, numItems).
func NewTask(p Protocol, numItems int, positives, exclude [][]int32) (*Task, error) {
	t := &Task{Protocol: p, NumItems: numItems}
	for u, pos := range positives {
		if len(pos) == 0 {
			t.Skipped++
			continue
		}
		var ex []int32
		if u < len(exclude) {
			ex = exclude[u]
		}
		for _, lst := range [][]int32{pos, ex} {
			for _, i := range lst {
				if i < 0 || int(i) >= numItems {
					return nil, fmt.Errorf("eval: user %d: item %d outside [0, %d)", u, i, numItems)
				}
			}
		}
		t.Users = append(t.Users, int32(u))
		t.Positives.appendList(pos)
		t.Exclude.appendList(ex)
	}
	if len(t.Users) == 0 {
		t.Positives.Offsets = []int64{0}
		t.Exclude.Offsets = []int64{0}
	}
	return t, nil
}

// SplitTask builds the task of protocol p for part (store.PartValid or
// store.PartTest) of a split over numUsers users and numItems items:
//
//   - graph: positives = the user's items in part, masked = training items;
//   - seq-loo: positive = the user's item in part, nothing masked;
//   - seq-loo-masked: positive = the user's item in part, masked = training
//     items (part valid) or training and valid items (part test).
//
// The sequential protocols require at most one item per user in part.
func SplitTask(p Protocol, s *store.Split, part int8, numUsers, numItems int) (*Task, error) {
	if part != store.PartValid && part != store.PartTest {
		return nil, fmt.Errorf("eval: part %d is not valid (1) or test (2)", part)
	}
	pos := make([][]int32, numUsers)
	var train, valid [][]int32
	if p != SeqLOO {
		train = make([][]int32, numUsers)
	}
	if p == SeqLOOMasked && part == store.PartTest {
		valid = make([][]int32, numUsers)
	}
	for k, u := range s.User {
		if u < 0 || int(u) >= numUsers {
			return nil, fmt.Errorf("eval: split %s row %d: user %d outside [0, %d)", s.Name, k, u, numUsers)
		}
		i := s.Item[k]
		switch pt := s.Part[k]; {
		case pt == part:
			pos[u] = append(pos[u], i)
		case pt == store.PartTrain && train != nil:
			train[u] = append(train[u], i)
		case pt == store.PartValid && valid != nil:
			valid[u] = append(valid[u], i)
		}
	}
	if p == SeqLOO || p == SeqLOOMasked {
		for u, l := range pos {
			if len(l) > 1 {
				return nil, fmt.Errorf("eval: protocol %s expects one %s item per user; user %d has %d in split %s (use a leave-one-out split)",
					p, store.PartName(part), u, len(l), s.Name)
			}
		}
	}
	var exclude [][]int32
	switch p {
	case Graph:
		exclude = train
	case SeqLOOMasked:
		exclude = train
		if valid != nil {
			for u := range exclude {
				exclude[u] = append(exclude[u], valid[u]...)
			}
		}
	case SeqLOO:
	default:
		return nil, fmt.Errorf("eval: unknown protocol %q", p)
	}
	return NewTask(p, numItems, pos, exclude)
}

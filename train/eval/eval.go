package eval

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ScoreFunc fills scores, a row-major len(users) × numItems block, with
// every item's score for each of users. Evaluation calls it from several
// goroutines at once, each with its own users and scores, so it must be
// safe for concurrent use (a model that cannot score concurrently serialises
// with a mutex, or uses Workers = 1).
type ScoreFunc func(users []int32, scores []float32) error

// Options tune an evaluation.
type Options struct {
	// Ks are the cut-offs (default {10, 20, 50}).
	Ks []int
	// NGCF adds ndcg_ngcf@K, MMSSL's NDCG variant (see the package doc).
	NGCF bool
	// BlockUsers is the number of users scored per call of the ScoreFunc
	// (default 256). Either way it is lowered so that a block's scores take
	// at most 64 MiB: workers × 64 MiB bounds the evaluation's buffers
	// whatever the catalogue size.
	BlockUsers int
	// Workers is the number of blocks in flight (default GOMAXPROCS).
	Workers int
}

// maxBlockBytes bounds one block's score buffer.
const maxBlockBytes = 64 << 20

func (o Options) blockUsers(numItems int) int {
	b := o.BlockUsers
	if b <= 0 {
		b = 256
	}
	if numItems > 0 {
		b = max(1, min(b, maxBlockBytes/(4*numItems)))
	}
	return b
}

func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// Metric families, in the order of MetricNames.
const (
	famRecall = iota
	famPrecision
	famNDCG
	famHit
	famMRR
	famMAP
	famNDCGNGCF
	numFamilies
)

var familyNames = [numFamilies]string{"recall", "precision", "ndcg", "hit", "mrr", "map", "ndcg_ngcf"}

// MetricNames returns the names Evaluate reports for ks: recall@K,
// precision@K, ndcg@K, hit@K, mrr@K, map@K for every K (and ndcg_ngcf@K
// when ngcf is set).
func MetricNames(ks []int, ngcf bool) []string {
	var out []string
	for f := range numFamilies {
		if f == famNDCGNGCF && !ngcf {
			continue
		}
		for _, k := range ks {
			out = append(out, familyNames[f]+"@"+strconv.Itoa(k))
		}
	}
	return out
}

// ParseMetric splits a metric name such as "recall@20" and checks it.
func ParseMetric(name string) (family string, k int, err error) {
	f, ks, ok := strings.Cut(name, "@")
	if !ok || !slices.Contains(familyNames[:], f) {
		return "", 0, fmt.Errorf("metric %q: want one of %s followed by @K", name, strings.Join(familyNames[:], ", "))
	}
	k, err = strconv.Atoi(ks)
	if err != nil || k <= 0 {
		return "", 0, fmt.Errorf("metric %q: K must be a positive integer", name)
	}
	return f, k, nil
}

// Result is the outcome of one evaluation.
type Result struct {
	// Metrics maps each name of MetricNames to its mean over Users.
	Metrics map[string]float64
	// Users is the number of evaluated users, Skipped the number of users
	// without positives.
	Users, Skipped int
	// NaNScores counts NaN scores among the candidates.
	NaNScores int64
	// Seconds is the wall time.
	Seconds float64
}

// checkKs validates cut-offs.
func checkKs(ks []int) error {
	if len(ks) == 0 {
		return fmt.Errorf("eval: no cut-offs")
	}
	for _, k := range ks {
		if k <= 0 {
			return fmt.Errorf("eval: cut-off %d must be positive", k)
		}
	}
	return nil
}

// Evaluate ranks all candidates of every user of t with score and averages
// the metrics. Users are scored in blocks of Options.BlockUsers on
// Options.Workers goroutines; the result does not depend on either.
func Evaluate(ctx context.Context, t *Task, score ScoreFunc, o Options) (*Result, error) {
	start := time.Now()
	if len(o.Ks) == 0 {
		o.Ks = t.Protocol.DefaultKs()
	}
	if err := checkKs(o.Ks); err != nil {
		return nil, err
	}
	ks := slices.Clone(o.Ks)
	L := slices.Max(ks)
	names := MetricNames(ks, o.NGCF)
	nm := len(names)
	per := make([]float64, len(t.Users)*nm)
	disc := make([]float64, L+1) // disc[j] = 1/log2(j+2), rank j+1
	idcg := make([]float64, L+1) // idcg[n] = Σ_{j<n} disc[j]
	for j := range L + 1 {
		disc[j] = 1 / math.Log2(float64(j+2))
		if j > 0 {
			idcg[j] = idcg[j-1] + disc[j-1]
		}
	}
	var nan atomic.Int64
	visit := func(k int, items []int32, _ []float32, nanCount int) {
		nan.Add(int64(nanCount))
		userMetrics(per[k*nm:(k+1)*nm], t.Positives.At(k), items, ks, o.NGCF, disc, idcg)
	}
	err := rank(ctx, t.Users, t.NumItems, func(k int) []int32 { return t.Exclude.At(k) }, L, score, o, visit)
	if err != nil {
		return nil, err
	}
	res := &Result{Metrics: make(map[string]float64, nm), Users: len(t.Users), Skipped: t.Skipped, NaNScores: nan.Load()}
	sums := make([]float64, nm)
	for k := range t.Users {
		for m := range nm {
			sums[m] += per[k*nm+m]
		}
	}
	for m, n := range names {
		if len(t.Users) > 0 {
			res.Metrics[n] = sums[m] / float64(len(t.Users))
		} else {
			res.Metrics[n] = 0
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// userMetrics writes one user's metrics in MetricNames order. top is the
// user's ranking (at most max(ks) items).
func userMetrics(out []float64, pos, top []int32, ks []int, ngcf bool, disc, idcg []float64) {
	L := len(disc) - 1
	var hit [64]bool
	hits := hit[:0]
	if L > len(hit) {
		hits = make([]bool, 0, L)
	}
	for _, it := range top {
		_, ok := slices.BinarySearch(pos, it)
		hits = append(hits, ok)
	}
	for len(hits) < L {
		hits = append(hits, false)
	}
	np := len(pos)
	hitsL := 0
	for _, h := range hits {
		if h {
			hitsL++
		}
	}
	m := 0
	for f := range numFamilies {
		if f == famNDCGNGCF && !ngcf {
			continue
		}
		for _, K := range ks {
			var v float64
			n, dcg, rr, ap := 0, 0.0, 0.0, 0.0
			for j := range K {
				if hits[j] {
					n++
					dcg += disc[j]
					if rr == 0 {
						rr = 1 / float64(j+1)
					}
					ap += float64(n) / float64(j+1)
				}
			}
			switch f {
			case famRecall:
				v = float64(n) / float64(np)
			case famPrecision:
				v = float64(n) / float64(K)
			case famNDCG:
				v = dcg / idcg[min(np, K)]
			case famHit:
				if n > 0 {
					v = 1
				}
			case famMRR:
				v = rr
			case famMAP:
				v = ap / float64(min(np, K))
			case famNDCGNGCF:
				if ideal := idcg[min(hitsL, K)]; ideal > 0 {
					v = dcg / ideal
				}
			}
			out[m] = v
			m++
		}
	}
}

// TopK returns the best k items of every user in users (masked items
// excluded: exclude(p) lists the sorted masked items of users[p], or nil),
// in ranking order: items and scores hold k slots per user, n[p] of them
// used (fewer than k when the user has fewer candidates).
func TopK(ctx context.Context, users []int32, numItems, k int, exclude func(p int) []int32, score ScoreFunc, o Options) (items []int32, scores []float32, n []int, err error) {
	if k <= 0 {
		return nil, nil, nil, fmt.Errorf("eval: k = %d must be positive", k)
	}
	items = make([]int32, len(users)*k)
	scores = make([]float32, len(users)*k)
	n = make([]int, len(users))
	if exclude == nil {
		exclude = func(int) []int32 { return nil }
	}
	err = rank(ctx, users, numItems, exclude, k, score, o, func(p int, it []int32, sc []float32, _ int) {
		copy(items[p*k:], it)
		copy(scores[p*k:], sc)
		n[p] = len(it)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return items, scores, n, nil
}

// rank scores users in blocks on parallel workers and calls visit(p, top
// items, their scores, NaN count) for every users[p]. visit is called
// concurrently for distinct p; its slices are valid only during the call.
func rank(ctx context.Context, users []int32, numItems int, exclude func(p int) []int32, k int, score ScoreFunc,
	o Options, visit func(p int, items []int32, scores []float32, nan int)) error {
	if numItems <= 0 {
		return fmt.Errorf("eval: %d items", numItems)
	}
	bs := o.blockUsers(numItems)
	nblocks := (len(users) + bs - 1) / bs
	workers := max(1, min(o.workers(), nblocks))
	var next atomic.Int64
	var once sync.Once
	var firstErr error
	var failed atomic.Bool
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		failed.Store(true)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]float32, bs*numItems)
			h := newTopHeap(k)
			for !failed.Load() {
				b := int(next.Add(1) - 1)
				if b >= nblocks {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(fmt.Errorf("eval: %w", err))
					return
				}
				lo, hi := b*bs, min((b+1)*bs, len(users))
				blk := buf[:(hi-lo)*numItems]
				if err := score(users[lo:hi], blk); err != nil {
					fail(fmt.Errorf("eval: scoring users %d..%d: %w", users[lo], users[hi-1], err))
					return
				}
				for p := lo; p < hi; p++ {
					row := blk[(p-lo)*numItems : (p-lo+1)*numItems]
					nan := h.selectTop(row, exclude(p))
					visit(p, h.items, h.scores, nan)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// better reports whether item a with score sa ranks before item b with
// score sb: higher score first, NaN last, ties by lower item index.
func better(sa float32, ia int32, sb float32, ib int32) bool {
	na, nb := sa != sa, sb != sb
	if na || nb {
		if na && nb {
			return ia < ib
		}
		return nb
	}
	if sa != sb {
		return sa > sb
	}
	return ia < ib
}

// topHeap selects the best k items of a score row: a bounded heap whose
// root is the worst item kept.
type topHeap struct {
	k      int
	items  []int32
	scores []float32
}

func newTopHeap(k int) *topHeap {
	return &topHeap{k: k, items: make([]int32, 0, k), scores: make([]float32, 0, k)}
}

// worse is the heap order: the root is the item that ranks last.
func (h *topHeap) worse(i, j int) bool {
	return better(h.scores[j], h.items[j], h.scores[i], h.items[i])
}

func (h *topHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h.worse(r, l) {
			c = r
		}
		if !h.worse(c, i) {
			return
		}
		h.items[i], h.items[c] = h.items[c], h.items[i]
		h.scores[i], h.scores[c] = h.scores[c], h.scores[i]
		i = c
	}
}

func (h *topHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.worse(i, p) {
			return
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		h.scores[i], h.scores[p] = h.scores[p], h.scores[i]
		i = p
	}
}

// offer considers item i with score s; items arrive in ascending index.
func (h *topHeap) offer(s float32, i int32) {
	if len(h.items) < h.k {
		h.items = append(h.items, i)
		h.scores = append(h.scores, s)
		h.up(len(h.items) - 1)
		return
	}
	// Items arrive in ascending index order, so an equal score never
	// displaces a kept item; s <= root also rules out NaN roots wrongly
	// kept (comparison is false, falling through to better).
	if s <= h.scores[0] || !better(s, i, h.scores[0], h.items[0]) {
		return
	}
	h.items[0], h.scores[0] = i, s
	h.down(0)
}

// selectTop fills the heap with the best k candidates of row (items not
// in the sorted exclude list) and sorts them in ranking order. It returns
// the number of NaN scores among the candidates.
func (h *topHeap) selectTop(row []float32, exclude []int32) int {
	h.items, h.scores = h.items[:0], h.scores[:0]
	nan := 0
	thr := float32(math.Inf(-1))
	full := false
	scan := func(lo, hi int) {
		for j := lo; j < hi; j++ {
			s := row[j]
			// Fast path: once the heap is full, a score not above the
			// worst kept one cannot enter (equal scores lose on index).
			// NaN fails every comparison and takes the slow path.
			if full && s <= thr {
				continue
			}
			if s != s {
				nan++
			}
			h.offer(s, int32(j))
			if len(h.items) == h.k {
				full, thr = true, h.scores[0]
			}
		}
	}
	prev := 0
	for _, e := range exclude {
		if int(e) >= prev {
			scan(prev, int(e))
			prev = int(e) + 1
		}
	}
	scan(prev, len(row))
	sort.Sort(byRank{h})
	return nan
}

// byRank sorts a heap's contents into ranking order.
type byRank struct{ h *topHeap }

func (b byRank) Len() int { return len(b.h.items) }
func (b byRank) Less(i, j int) bool {
	return better(b.h.scores[i], b.h.items[i], b.h.scores[j], b.h.items[j])
}
func (b byRank) Swap(i, j int) {
	b.h.items[i], b.h.items[j] = b.h.items[j], b.h.items[i]
	b.h.scores[i], b.h.scores[j] = b.h.scores[j], b.h.scores[i]
}

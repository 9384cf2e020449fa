package synth

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
)

// Defaults of [RatingsConfig].
const (
	DefaultRatingsRows     = 10_000_000
	DefaultRatingsUsers    = 1_000_000
	DefaultRatingsItems    = 200_000
	DefaultRatingsZipfS    = 1.1
	DefaultRatingsZipfV    = 20.0
	DefaultRatingsUserSkew = 1.5
)

// Timestamps of RatingsCSV fall on UTC midnights of 2010-01-01 … 2018-12-31.
const (
	ratingsStartUnix = 1262304000 // 2010-01-01T00:00:00Z
	ratingsDays      = 3287
)

// ratingsBlockRows is the number of rows generated from one random stream.
// Blocks are generated in parallel and written in order, so the output does
// not depend on the number of workers.
const ratingsBlockRows = 1 << 15

// The cumulative distribution of 1–4 stars scaled to 2^32, shaped like
// Amazon's (mostly 5 stars): 8 %, 5 %, 9 %, 20 % and 58 % for 5 stars.
const (
	ratingCum1 = 343597384  // 0.08 · 2^32
	ratingCum2 = 558345748  // 0.13 · 2^32
	ratingCum3 = 944892805  // 0.22 · 2^32
	ratingCum4 = 1803886264 // 0.42 · 2^32
)

// RatingsConfig configures [RatingsCSV]. Zero fields take the defaults.
type RatingsConfig struct {
	// Seed selects the data; the same config always gives the same bytes.
	Seed uint64
	// Rows is the number of lines (default 10,000,000).
	Rows int64
	// Users is the number of distinct user ids to draw from (default 1,000,000).
	Users int
	// Items is the number of distinct item ids to draw from (default 200,000).
	Items int
	// ZipfS and ZipfV shape item popularity: the item of popularity rank
	// k (from 0) is drawn with probability ∝ (ZipfV + k)^-ZipfS, as in
	// math/rand/v2's Zipf (defaults 1.1 and 20; ZipfS > 1, ZipfV ≥ 1).
	// A larger ZipfV flattens the head.
	ZipfS, ZipfV float64
	// UserSkew skews user activity: a user index is drawn as
	// ⌊Users·u^UserSkew⌋ for uniform u, so 1 is uniform and larger values
	// make low indices more active (default 1.5).
	UserSkew float64
	// Workers bounds the generating goroutines (default GOMAXPROCS). The
	// output does not depend on it.
	Workers int
}

// withDefaults fills zero fields and validates the result.
func (c RatingsConfig) withDefaults() (RatingsConfig, error) {
	if c.Rows == 0 {
		c.Rows = DefaultRatingsRows
	}
	if c.Users == 0 {
		c.Users = DefaultRatingsUsers
	}
	if c.Items == 0 {
		c.Items = DefaultRatingsItems
	}
	if c.ZipfS == 0 {
		c.ZipfS = DefaultRatingsZipfS
	}
	if c.ZipfV == 0 {
		c.ZipfV = DefaultRatingsZipfV
	}
	if c.UserSkew == 0 {
		c.UserSkew = DefaultRatingsUserSkew
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case c.Rows < 0:
		return c, fmt.Errorf("%w: ratings rows = %d, want > 0", ErrInvalidConfig, c.Rows)
	case c.Users < 0 || c.Users > maxIndexedID:
		return c, fmt.Errorf("%w: ratings users = %d, want in [1, %d]", ErrInvalidConfig, c.Users, maxIndexedID)
	case c.Items < 0 || c.Items > maxIndexedID:
		return c, fmt.Errorf("%w: ratings items = %d, want in [1, %d]", ErrInvalidConfig, c.Items, maxIndexedID)
	case !(c.ZipfS > 1) || math.IsInf(c.ZipfS, 0):
		return c, fmt.Errorf("%w: ratings zipf exponent = %v, want > 1", ErrInvalidConfig, c.ZipfS)
	case !(c.ZipfV >= 1) || math.IsInf(c.ZipfV, 0):
		return c, fmt.Errorf("%w: ratings zipf offset = %v, want >= 1", ErrInvalidConfig, c.ZipfV)
	case !(c.UserSkew > 0) || math.IsInf(c.UserSkew, 0):
		return c, fmt.Errorf("%w: ratings user skew = %v, want > 0", ErrInvalidConfig, c.UserSkew)
	}
	return c, nil
}

// ItemID returns the 10-character item id RatingsCSV uses for item index
// idx: "B" followed by 9 base-36 digits. Distinct indices below 10^9 give
// distinct ids.
func ItemID(idx int) string { return string(appendIndexID(nil, 'B', uint64(idx))) }

// UserID returns the 10-character user id RatingsCSV uses for user index
// idx: "A" followed by 9 base-36 digits. Distinct indices below 10^9 give
// distinct ids.
func UserID(idx int) string { return string(appendIndexID(nil, 'A', uint64(idx))) }

// RatingsCSV streams cfg.Rows lines of an Amazon 2018 ratings-only CSV to w:
// no header, "item,user,rating,timestamp", e.g.
// "B3KD0Q7ZP1,A0Z8M2LQ5C,5.0,1380326400". Items follow a Zipf popularity
// over a random permutation of the item indices, users are mildly skewed
// (see [RatingsConfig.UserSkew]), ratings are 1.0–5.0 skewed towards 5, and
// timestamps are UTC midnights in 2010–2018. The same user–item pair may
// occur more than once, as in the published files.
//
// Rows are generated in blocks by cfg.Workers goroutines and written in
// order with one Write per block (about 1.2 MB), so w needs no buffering.
// The output depends only on cfg. It stops early with ctx's error when ctx
// is cancelled.
func RatingsCSV(ctx context.Context, w io.Writer, cfg RatingsConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("synth: ratings: %w", err)
	}
	g := newRatingsGen(cfg)
	nBlocks := (cfg.Rows + ratingsBlockRows - 1) / ratingsBlockRows
	workers := int(min(int64(cfg.Workers), nBlocks))
	if workers == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Worker k generates blocks k, k+workers, ... and hands them over on
	// outs[k]; the writer reads the channels round-robin, which restores
	// block order. Written buffers go back to their worker through free[k].
	outs := make([]chan []byte, workers)
	free := make([]chan []byte, workers)
	done := make(chan struct{})
	for k := range workers {
		outs[k] = make(chan []byte, 2)
		free[k] = make(chan []byte, 4)
	}
	running := workers
	for k := range workers {
		go func() {
			defer func() {
				close(outs[k])
				done <- struct{}{}
			}()
			for b := int64(k); b < nBlocks; b += int64(workers) {
				if ctx.Err() != nil {
					return
				}
				var buf []byte
				select {
				case buf = <-free[k]:
				default:
					buf = make([]byte, 0, ratingsBlockRows*40)
				}
				rows := min(int64(ratingsBlockRows), cfg.Rows-b*ratingsBlockRows)
				buf = ratingsBlock(buf[:0], g, uint64(b), int(rows))
				select {
				case outs[k] <- buf:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wait := func() {
		cancel()
		for ; running > 0; running-- {
			<-done
		}
	}
	defer wait()

	for b := range nBlocks {
		k := int(b % int64(workers))
		var buf []byte
		ok := ctx.Err() == nil
		if ok {
			select {
			case buf, ok = <-outs[k]:
			case <-ctx.Done():
				ok = false
			}
		}
		if !ok || ctx.Err() != nil {
			return fmt.Errorf("synth: ratings: %w", context.Cause(ctx))
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("synth: ratings: write block %d: %w", b, err)
		}
		select {
		case free[k] <- buf:
		default:
		}
	}
	return nil
}

// ratingsBlock appends block b of the ratings CSV, rows lines long, to dst.
func ratingsBlock(dst []byte, g *ratingsGen, b uint64, rows int) []byte {
	cfg := &g.cfg
	r := newRand(cfg.Seed, streamRatingsBlock, b)
	var zipf *rand.Zipf
	if g.alias == nil {
		zipf = rand.NewZipf(r, cfg.ZipfS, cfg.ZipfV, uint64(cfg.Items-1))
	}
	users := float64(cfg.Users)
	maxUser := uint64(cfg.Users - 1)
	for range rows {
		// Item: popularity rank k, whose id is at itemIDs[10k:].
		var k uint64
		if g.alias != nil {
			k = g.alias.sample(r.Uint64())
		} else {
			k = zipf.Uint64()
		}
		dst = append(dst, g.itemIDs[10*k:10*k+10]...)
		dst = append(dst, ',')

		// User: index ⌊Users·u^skew⌋.
		u := float64(r.Uint64()>>11) * 0x1p-53
		switch cfg.UserSkew {
		case 1:
		case 1.5:
			u *= math.Sqrt(u)
		case 2:
			u *= u
		default:
			u = math.Pow(u, cfg.UserSkew)
		}
		dst = appendIndexID(dst, 'A', min(uint64(u*users), maxUser))

		// Rating from the low 32 bits, day from the high 32 bits.
		y := r.Uint64()
		lo := y & 0xFFFFFFFF
		stars := byte('5')
		switch {
		case lo < ratingCum1:
			stars = '1'
		case lo < ratingCum2:
			stars = '2'
		case lo < ratingCum3:
			stars = '3'
		case lo < ratingCum4:
			stars = '4'
		}
		dst = append(dst, ',', stars, '.', '0', ',')
		day := ((y >> 32) * ratingsDays) >> 32
		dst = append(dst, g.days[10*day:10*day+10]...)
		dst = append(dst, '\n')
	}
	return dst
}

// ratingsGen holds the tables shared by the block generators.
type ratingsGen struct {
	cfg     RatingsConfig
	itemIDs []byte     // 10-byte item ids by popularity rank
	days    []byte     // 10-digit Unix times of the days, by day
	alias   *aliasZipf // nil: sample with math/rand/v2's Zipf
}

// maxAliasItems bounds the item count for which item popularity is sampled
// from an alias table (8 bytes per item) rather than by rejection-inversion.
const maxAliasItems = 1 << 22

func newRatingsGen(cfg RatingsConfig) *ratingsGen {
	g := &ratingsGen{cfg: cfg}
	// Item ids ordered by popularity rank: rank k is item perm[k].
	perm := newRand(cfg.Seed, streamRatingsPerm, 0).Perm(cfg.Items)
	g.itemIDs = make([]byte, 0, 10*cfg.Items)
	for _, idx := range perm {
		g.itemIDs = appendIndexID(g.itemIDs, 'B', uint64(idx))
	}
	g.days = make([]byte, 0, 10*ratingsDays)
	for d := range int64(ratingsDays) {
		g.days = strconv.AppendInt(g.days, ratingsStartUnix+d*secondsPerDay, 10)
	}
	if cfg.Items <= maxAliasItems {
		w := make([]float64, cfg.Items)
		for k := range w {
			w[k] = math.Pow(cfg.ZipfV+float64(k), -cfg.ZipfS)
		}
		g.alias = newAliasZipf(w)
	}
	return g
}

// aliasZipf samples indices with given weights in O(1) by Walker's alias
// method (Vose's construction).
type aliasZipf struct {
	n uint64
	// cols[i] packs column i: the low 32 bits are its threshold (keep i
	// when the coin is below it), the high 32 bits its alias (returned
	// otherwise). One slice keeps both in one cache line.
	cols []uint64
}

// newAliasZipf builds the alias table of the (unnormalised) weights w.
func newAliasZipf(w []float64) *aliasZipf {
	n := len(w)
	a := &aliasZipf{n: uint64(n), cols: make([]uint64, n)}
	total := 0.0
	for _, x := range w {
		total += x
	}
	p := make([]float64, n)
	small := make([]int, 0, n)
	large := make([]int, 0, n)
	for i, x := range w {
		p[i] = x * float64(n) / total
		if p[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	set := func(i int, q float64, alias int) {
		a.cols[i] = uint64(alias)<<32 | uint64(min(q*(1<<32), math.MaxUint32))
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		set(s, p[s], l)
		p[l] -= 1 - p[s]
		if p[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left has probability 1 up to rounding: always keep it.
	for _, i := range append(small, large...) {
		set(i, 2, i)
	}
	return a
}

// sample maps 64 random bits to an index: the high 32 bits choose a column,
// the low 32 bits toss its coin.
func (a *aliasZipf) sample(bits uint64) uint64 {
	col := ((bits >> 32) * a.n) >> 32
	c := a.cols[col]
	if uint32(bits) < uint32(c) {
		return col
	}
	return c >> 32
}

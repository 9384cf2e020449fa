package missrec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mmpipe/mmpipe/train/gx"
	"github.com/mmpipe/mmpipe/train/seqdata"
)

// TestAugment checks both augmentations by hand. Items 0..5; lookT/lookV
// give ids text 1+i%3, image 4+i%2.
func TestAugment(t *testing.T) {
	lookT := []int64{1, 2, 3, 1, 2, 3}
	lookV := []int64{4, 5, 4, 5, 4, 5}
	h := []int32{5, 2, 0, 1}
	keep := []bool{false, false, true, false}
	// Item drop: position 0 always kept, then position 2: items 5, 0. Text
	// rows 6, 1; image rows of the un-dropped sequence's first two
	// positions 6, 3; text ids {3, 1} of the kept items, image ids {5, 4}
	// of all four, 0 since 2 < max_len 4.
	got := augment(h, keep, true, lookT, lookV, 4, 7)
	if !slices.Equal(got.t, []int32{6, 1}) || !slices.Equal(got.v, []int32{6, 3}) || !slices.Equal(got.set, []int32{0, 1, 3, 4, 5}) {
		t.Errorf("item drop: t %v v %v set %v, want [6 1] [6 3] [0 1 3 4 5]", got.t, got.v, got.set)
	}
	// Word drop: same items; dropped positions 0, 1, 3 read the word-dropped
	// table at offset 7; the set is the sequence's (full length: no 0).
	got = augment(h, keep, false, lookT, lookV, 4, 7)
	if !slices.Equal(got.t, []int32{13, 10, 1, 9}) || !slices.Equal(got.v, []int32{6, 3, 1, 2}) || !slices.Equal(got.set, []int32{1, 2, 3, 4, 5}) {
		t.Errorf("word drop: t %v v %v set %v, want [13 10 1 9] [6 3 1 2] [1 2 3 4 5]", got.t, got.v, got.set)
	}
	// Without a word-dropped table the dropped text is row 0 (no text).
	got = augment(h, keep, false, lookT, lookV, 4, -1)
	if !slices.Equal(got.t, []int32{0, 0, 1, 0}) {
		t.Errorf("word drop without table: t %v, want [0 0 1 0]", got.t)
	}
}

// TestPretrainGraphMatchesReference checks the pre-training graph's loss
// terms (in-batch sequence–item and sequence–sequence contrast,
// regulariser) against the float64 reference on a hand-built batch of
// three rows and a padding row — two rows share their positive item (a
// false negative the reference does not mask), the augmented views mix
// item drop and word drop — and its gradient against central finite
// differences of the reference.
func TestPretrainGraphMatchesReference(t *testing.T) {
	c := DefaultConfig()
	c.Stage, c.Dim, c.Heads, c.Inner, c.MaxLen, c.Dropout = StagePretrain, 4, 2, 3, 4, 0
	c.Gamma, c.Lambda, c.Temperature = 0.3, 0.7, 0.5
	const items, dT, dV, B, L = 6, 3, 2, 4, 4
	lay := paramLayout(c, items, dT, dV)
	if lay.item >= 0 {
		t.Fatal("pre-training layout has item-ID embeddings")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	p32 := make([][]float32, len(lay.specs))
	p64 := make([][]float64, len(lay.specs))
	for k, s := range lay.specs {
		n := prod(s.shape)
		p32[k], p64[k] = make([]float32, n), make([]float64, n)
		for j := range n {
			v := float32(rng.NormFloat64() * 0.6)
			p32[k][j], p64[k][j] = v, float64(v)
		}
	}
	feat := func(dim int) ([]float32, []float64) {
		a, b := make([]float32, (items+1)*dim), make([]float64, (items+1)*dim)
		for j := dim; j < len(a); j++ {
			v := float32(rng.NormFloat64())
			a[j], b[j] = v, float64(v)
		}
		return a, b
	}
	fT32, fT64 := feat(dT)
	fV32, fV64 := feat(dV)
	fT232, fT264 := feat(dT)
	lookT, lookV := []int64{1, 2, 1, 3, 2, 3}, []int64{4, 3, 4, 1, 2, 2}
	const K = 4
	inter := make([]float32, (K+1)*c.Dim)
	for j := c.Dim; j < len(inter); j++ {
		inter[j] = float32(rng.NormFloat64())
	}
	hs := [][]int32{{4, 0}, {1, 3, 2}, {5, 2, 0, 1}}
	keeps := [][]bool{{true, false}, {false, true, false}, {true, false, true, true}}
	drops := []bool{true, false, true}
	var r1, r2 []viewRow
	nq := 0
	for r, h := range hs {
		t := make([]int32, len(h))
		for k, it := range h {
			t[k] = it + 1
		}
		r1 = append(r1, viewRow{t: t, v: t, set: interestSet(h, lookT, lookV, c.MaxLen, nil)})
		r2 = append(r2, augment(h, keeps[r], drops[r], lookT, lookV, c.MaxLen, items+1))
		nq = max(nq, len(r1[r].set), len(r2[r].set))
	}
	Q := qPad(nq, 2)
	v1, v2 := fillBatch(r1, B, L, Q), fillBatch(r2, B, L, Q)
	target := []int32{3, 1, 3, 0}
	rowW := []float32{1, 1, 1, 0}
	colBias := []float32{0, 0, 0, maskBias}
	m := &Model{cfg: c, interest: inter}
	e1, e2 := m.interestEmb(v1.ids), m.interestEmb(v2.ids)
	ref := &refModel{c: c, lay: lay, items: items, dT: dT, dV: dV, featT: fT64, featV: fV64, featT2: fT264,
		view: newRefView(v1, e1), aug: newRefView(v2, e2), target: target, rowW: rowW, B: B, L: L}

	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := gx.NewProgram(b, "test", 0, pretrainGraph(c, lay, true))
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for k, s := range lay.specs {
		args = append(args, gx.F32(p32[k], s.shape...))
	}
	args = append(args, gx.F32(fT32, items+1, dT), gx.F32(fV32, items+1, dV), gx.F32(fT232, items+1, dT))
	for _, v := range []struct {
		in  *batchInputs
		emb []float32
	}{{v1, e1}, {v2, e2}} {
		args = append(args, gx.I32(v.in.seq, B, L), gx.I32(v.in.seqV, B, L), gx.F32(v.in.selfBias, B, L),
			gx.F32(v.emb, B, Q, c.Dim), gx.F32(v.in.memBias, B, Q), gx.I32(v.in.last, B), gx.F32(v.in.regW, B, Q))
	}
	args = append(args, gx.I32(target, B), gx.F32(rowW, B), gx.F32(colBias, B))
	for range 2 {
		for _, dims := range maskDims(c, B, L, Q) {
			args = append(args, gx.F32(seqdata.DropMask(nil, prod(dims), 0), dims...))
		}
	}
	outs, err := prog.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	var got [4]float64
	for k := range got {
		if got[k], err = gx.Scalar(outs[k]); err != nil {
			t.Fatal(err)
		}
	}
	wl, wsi, wss, wreg := ref.pretrainLoss(p64)
	for k, want := range []float64{wl, wsi, wss, wreg} {
		if !near(got[k], want, 1e-4) {
			t.Errorf("output %d (loss, seq_item, seq_seq, reg): %v, reference %v", k, got[k], want)
		}
	}
	if wss < 0.1 || wreg < 1e-3 {
		t.Errorf("degenerate check: seq_seq %v reg %v", wss, wreg)
	}
	lossOf := func() float64 { l, _, _, _ := ref.pretrainLoss(p64); return l }
	for k, s := range lay.specs {
		g := make([]float32, len(p32[k]))
		if err := gx.CopyF32(g, outs[k+4]); err != nil {
			t.Fatal(err)
		}
		for _, j := range []int{0, len(g) / 2, len(g) - 1} {
			const h = 1e-5
			orig := p64[k][j]
			p64[k][j] = orig + h
			lp := lossOf()
			p64[k][j] = orig - h
			lm := lossOf()
			p64[k][j] = orig
			fd := (lp - lm) / (2 * h)
			if math.Abs(float64(g[j])-fd) > 2e-3*(1+math.Abs(fd)) {
				t.Errorf("param %s %v [%d]: gradient %v, finite difference %v", s.name, s.shape, j, g[j], fd)
			}
		}
	}
}

package train

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/train/sparse"
)

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.ckpt")
	emb := []float32{1, -2.5, float32(math.Inf(1)), 0, 3e-38, 7}
	step := int64(12345678901)
	st := TrainState{Epoch: 3, Batch: 2, RNG: []byte{1, 2, 3}, BestEpoch: 2, BestScore: 0.25,
		History: []EpochRecord{{Epoch: 1, Seconds: 0.5, Losses: map[string]float64{"loss": 0.7}}}}
	in := []Tensor{F32Tensor("emb", emb, 3, 2), ScalarI64("step", &step), F32Tensor("empty", []float32{}, 0, 4)}
	if err := WriteCheckpoint(p, CheckpointHeader{Model: "m", State: st}, in); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Header.Model != "m" || ck.Header.State.Epoch != 3 || ck.Header.State.Batch != 2 ||
		!slices.Equal(ck.Header.State.RNG, []byte{1, 2, 3}) || ck.Header.State.History[0].Losses["loss"] != 0.7 {
		t.Errorf("header %+v", ck.Header)
	}
	emb2 := make([]float32, 6)
	var step2 int64
	out := []Tensor{F32Tensor("emb", emb2, 3, 2), ScalarI64("step", &step2), F32Tensor("empty", []float32{}, 0, 4)}
	if err := ck.LoadInto(out); err != nil {
		t.Fatal(err)
	}
	for k := range emb {
		if math.Float32bits(emb[k]) != math.Float32bits(emb2[k]) {
			t.Errorf("value %d: %v != %v", k, emb2[k], emb[k])
		}
	}
	if step2 != step {
		t.Errorf("step %d, want %d", step2, step)
	}
	// Shape and name mismatches are refused.
	if err := ck.LoadInto([]Tensor{F32Tensor("emb", make([]float32, 6), 2, 3)}); err == nil || !strings.Contains(err.Error(), "model wants") {
		t.Errorf("shape mismatch: %v", err)
	}
	if err := ck.LoadInto([]Tensor{F32Tensor("other", make([]float32, 6), 3, 2)}); err == nil {
		t.Error("missing tensor accepted")
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the checkpoint", len(ents))
	}
	// Corruption and truncation are detected.
	data, _ := os.ReadFile(p)
	for name, mutate := range map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b = slices.Clone(b); b[len(b)-40] ^= 1; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-10] },
		"not a ckpt":   func(b []byte) []byte { return []byte("hello world, this is not a checkpoint file at all.......") },
	} {
		q := filepath.Join(dir, "bad.ckpt")
		if err := os.WriteFile(q, mutate(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadCheckpoint(q); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := WriteCheckpoint(p, CheckpointHeader{}, []Tensor{F32Tensor("a", []float32{1}, 2)}); err == nil {
		t.Error("tensor with wrong shape written")
	}
}

func TestRNGStateRestores(t *testing.T) {
	a := NewRNG(5, StreamTrain)
	for range 10 {
		a.Uint64()
	}
	st, err := a.State()
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{a.Uint64(), a.Uint64(), a.Uint64()}
	b := NewRNG(99, StreamInit)
	if err := b.Restore(st); err != nil {
		t.Fatal(err)
	}
	got := []uint64{b.Uint64(), b.Uint64(), b.Uint64()}
	if !slices.Equal(got, want) {
		t.Errorf("restored stream %v, want %v", got, want)
	}
	if NewRNG(5, StreamTrain).Uint64() == NewRNG(5, StreamInit).Uint64() {
		t.Error("init and train streams coincide")
	}
}

func TestBPRGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const b, d = 5, 4
	mats := make([]sparse.Mat, 3)
	for k := range mats {
		mats[k] = sparse.NewMat(b, d)
		sparse.InitNormal(mats[k], 1, rng)
	}
	grads := []sparse.Mat{sparse.NewMat(b, d), sparse.NewMat(b, d), sparse.NewMat(b, d)}
	loss, err := BPR(mats[0], mats[1], mats[2], grads[0], grads[1], grads[2])
	if err != nil {
		t.Fatal(err)
	}
	// Hand check of one row: -log σ(x) averaged.
	want := 0.0
	for r := range b {
		x := 0.0
		for k := range d {
			x += float64(mats[0].Row(r)[k]) * float64(mats[1].Row(r)[k]-mats[2].Row(r)[k])
		}
		want += -math.Log(1 / (1 + math.Exp(-x)))
	}
	want /= b
	if math.Abs(loss-want) > 1e-6 {
		t.Errorf("loss %v, want %v", loss, want)
	}
	scratch := []sparse.Mat{sparse.NewMat(b, d), sparse.NewMat(b, d), sparse.NewMat(b, d)}
	const eps = 1e-3
	for m := range mats {
		for e := range mats[m].Data {
			old := mats[m].Data[e]
			mats[m].Data[e] = old + eps
			lp, _ := BPR(mats[0], mats[1], mats[2], scratch[0], scratch[1], scratch[2])
			mats[m].Data[e] = old - eps
			lm, _ := BPR(mats[0], mats[1], mats[2], scratch[0], scratch[1], scratch[2])
			mats[m].Data[e] = old
			num := (lp - lm) / (2 * eps)
			if d := math.Abs(num - float64(grads[m].Data[e])); d > 1e-4 {
				t.Errorf("input %d elem %d: analytic %v, numeric %v", m, e, grads[m].Data[e], num)
			}
		}
	}
	// Extreme margins stay finite.
	big := sparse.Mat{Rows: 1, Cols: 1, Data: []float32{1e4}}
	l, _ := BPR(big, sparse.Mat{Rows: 1, Cols: 1, Data: []float32{-1e4}}, sparse.Mat{Rows: 1, Cols: 1, Data: []float32{1e4}},
		sparse.NewMat(1, 1), sparse.NewMat(1, 1), sparse.NewMat(1, 1))
	if math.IsInf(l, 0) || math.IsNaN(l) || l < 1e8 {
		t.Errorf("loss at margin -2e8 = %v", l)
	}
}

func TestL2(t *testing.T) {
	table := sparse.Mat{Rows: 3, Cols: 2, Data: []float32{1, 2, 3, 4, 5, 6}}
	g := sparse.NewRowGrad(3, 2)
	// rows 0, 2, 0: ½ (5 + 61 + 5) · 0.1 / 2
	got := L2(table, []int32{0, 2, 0}, 0.1, 2, g.Add)
	if want := 0.1 * 0.5 * 71 / 2; math.Abs(got-want) > 1e-12 {
		t.Errorf("L2 = %v, want %v", got, want)
	}
	if want := []float32{0.1, 0.2, 0.25, 0.3}; !closeSlices(g.Vals, want) {
		t.Errorf("L2 grad %v, want %v", g.Vals, want)
	}
}

func closeSlices(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if math.Abs(float64(a[k]-b[k])) > 1e-6 {
			return false
		}
	}
	return true
}

// TestRestoreCheckpointStreams checks the streaming restore against the
// in-memory reader: the same values (a tensor over several 1 MiB chunks
// included), the same refusals, and dst untouched when the file is bad.
func TestRestoreCheckpointStreams(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.ckpt")
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]float32, 700_001) // 2.8 MB: three chunks, the last partial
	for i := range big {
		big[i] = rng.Float32()*2 - 1
	}
	ids := []int64{-1, 1 << 40, 7}
	step := int64(99)
	in := []Tensor{F32Tensor("big", big, 700_001), I64Tensor("ids", ids, 3), ScalarI64("step", &step), F32Tensor("empty", []float32{}, 0)}
	if err := WriteCheckpoint(p, CheckpointHeader{Model: "m", State: TrainState{Epoch: 4}}, in); err != nil {
		t.Fatal(err)
	}
	fresh := func() ([]Tensor, []float32, []int64, *int64) {
		b, i := make([]float32, len(big)), make([]int64, 3)
		s := new(int64)
		return []Tensor{F32Tensor("big", b, len(big)), I64Tensor("ids", i, 3), ScalarI64("step", s), F32Tensor("empty", []float32{}, 0)}, b, i, s
	}
	dst, b, i, s := fresh()
	h, err := RestoreCheckpoint(p, "m", dst)
	if err != nil {
		t.Fatal(err)
	}
	if h.State.Epoch != 4 || !slices.Equal(b, big) || !slices.Equal(i, ids) || *s != 99 {
		t.Fatalf("restored epoch %d, big equal %v, ids %v, step %d", h.State.Epoch, slices.Equal(b, big), i, *s)
	}
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		model  string
		dst    func([]Tensor) []Tensor
		want   string
	}{
		{"flipped data byte", func(d []byte) []byte { d = slices.Clone(d); d[len(d)/2] ^= 1; return d }, "m", nil, "checksum mismatch"},
		{"truncated", func(d []byte) []byte { return d[:len(d)-100] }, "m", nil, "checksum mismatch"},
		{"not a checkpoint", func([]byte) []byte { return []byte("no magic here, just some text to make it long enough....") }, "m", nil, "not an mmpipe checkpoint"},
		{"other model", nil, "sasrec", nil, "a m checkpoint, not sasrec"},
		{"shape", nil, "m", func(d []Tensor) []Tensor { d[1].Shape = []int{1, 3}; return d }, "model wants"},
		{"missing tensor", nil, "m", func(d []Tensor) []Tensor { d[1].Name = "other"; return d }, "no tensor \"other\""},
		{"extra tensor", nil, "m", func(d []Tensor) []Tensor { return d[:3] }, "4 tensors, the model 3"},
	}
	data, _ := os.ReadFile(p)
	for _, c := range cases {
		q := p
		if c.mutate != nil {
			q = filepath.Join(dir, "bad.ckpt")
			if err := os.WriteFile(q, c.mutate(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dst, b, _, s := fresh()
		if c.dst != nil {
			dst = c.dst(dst)
		}
		_, err := RestoreCheckpoint(q, c.model, dst)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if b[0] != 0 || *s != 0 {
			t.Errorf("%s: dst was written before the error", c.name)
		}
	}
}

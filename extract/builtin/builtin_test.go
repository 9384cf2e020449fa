package builtin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/pipeline/synth"
)

func newEnc(t testing.TB, name string, o extract.Options) extract.Encoder {
	t.Helper()
	f, ok := Factories()[name]
	if !ok {
		t.Fatalf("no factory %q", name)
	}
	e, err := f(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// encodeAll prepares the inputs on several goroutines and runs them in
// batches of 3, returning the output rows.
func encodeAll(t testing.TB, e extract.Encoder, ins []extract.Input) (pooled [][]float32, out *extract.Output) {
	t.Helper()
	prep := make([]any, len(ins))
	var wg sync.WaitGroup
	errs := make([]error, len(ins))
	for i := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prep[i], errs[i] = e.Prepare(ins[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("prepare %s: %v", ins[i].ID, err)
		}
	}
	info := e.Info()
	all := &extract.Output{}
	var o extract.Output
	for start := 0; start < len(prep); start += 3 {
		end := min(len(prep), start+3)
		if err := e.Run(context.Background(), prep[start:end], &o); err != nil {
			t.Fatal(err)
		}
		if len(o.Pooled) != (end-start)*info.Dim {
			t.Fatalf("batch output has %d values, want %d", len(o.Pooled), (end-start)*info.Dim)
		}
		all.Pooled = append(all.Pooled, o.Pooled...)
		all.TokenStates = append(all.TokenStates, o.TokenStates...)
		all.NTokens = append(all.NTokens, o.NTokens...)
	}
	for i := range ins {
		pooled = append(pooled, all.Pooled[i*info.Dim:(i+1)*info.Dim])
	}
	return pooled, all
}

func cos(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func norm2(v []float32) float64 { return math.Sqrt(cos(v, v)) }

func digest(vs ...[]float32) string {
	h := sha256.New()
	for _, v := range vs {
		for _, x := range v {
			h.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(x)))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func TestWords(t *testing.T) {
	got := Words("Ｆｕｌｌ-Width ÉCOLE café, ﬁne 4.5mm 中文字 naïve… don't")
	want := []string{"full", "width", "école", "café", "fine", "4", "5mm", "中", "文", "字", "naïve", "don", "t"}
	if !slices.Equal(got, want) {
		t.Errorf("Words = %q\nwant    %q", got, want)
	}
	// NFKC: a decomposed é (e + combining acute) is the same word.
	if w := Words("cafe\u0301"); !slices.Equal(w, []string{"café"}) {
		t.Errorf("decomposed: %q", w)
	}
}

var texts = []extract.Input{
	{ID: "a", Text: "Soft red cotton baby blanket, machine washable"},
	{ID: "b", Text: "Machine washable soft cotton blanket for babies, red"},
	{ID: "c", Text: "Stainless steel chef knife set with wooden block"},
	{ID: "d", Text: "Wooden knife block with stainless chef knives"},
	{ID: "e", Text: "Gaming mouse with RGB lighting and 16000 DPI sensor"},
}

func TestTextHashSimilarity(t *testing.T) {
	for _, fit := range []bool{false, true} {
		e := newEnc(t, TextHashName, extract.Options{})
		if fit {
			if err := e.(extract.Fitter).Fit(context.Background(), slices.Values(texts)); err != nil {
				t.Fatal(err)
			}
		}
		v, _ := encodeAll(t, e, texts)
		for i, x := range v {
			if math.Abs(norm2(x)-1) > 1e-5 || len(x) != TextHashDim {
				t.Fatalf("fit=%v: vector %d has norm %v, dim %d", fit, i, norm2(x), len(x))
			}
		}
		ab, cd := cos(v[0], v[1]), cos(v[2], v[3])
		for _, far := range []float64{cos(v[0], v[2]), cos(v[0], v[4]), cos(v[1], v[3]), cos(v[2], v[4])} {
			if ab < far+0.3 || cd < far+0.3 {
				t.Errorf("fit=%v: similar pairs %.3f, %.3f not clearly above a dissimilar pair %.3f", fit, ab, cd, far)
			}
		}
		t.Logf("fit=%v: cos(blanket, blanket) %.3f, cos(knife, knife) %.3f, cos(blanket, knife) %.3f", fit, ab, cd, cos(v[0], v[2]))
	}
}

func TestTextHashIDF(t *testing.T) {
	// "demo" is in every text: after Fit it weighs less, so two texts that
	// share only it move apart.
	corpus := []extract.Input{
		{ID: "1", Text: "demo alpha beta"}, {ID: "2", Text: "demo gamma delta"},
		{ID: "3", Text: "demo epsilon"}, {ID: "4", Text: "demo zeta eta theta"},
	}
	plain := newEnc(t, TextHashName, extract.Options{})
	fitted := newEnc(t, TextHashName, extract.Options{})
	before := fitted.Info().Meta.ModelSHA256
	if err := fitted.(extract.Fitter).Fit(context.Background(), slices.Values(corpus)); err != nil {
		t.Fatal(err)
	}
	if fitted.Info().Meta.ModelSHA256 == before || !strings.Contains(fitted.Info().Meta.Preprocess, "n=4") {
		t.Errorf("fit did not change the provenance: %+v", fitted.Info().Meta)
	}
	p, _ := encodeAll(t, plain, corpus[:2])
	f, _ := encodeAll(t, fitted, corpus[:2])
	if cos(f[0], f[1]) >= cos(p[0], p[1])-0.05 {
		t.Errorf("idf did not down-weight the shared word: cos %.3f fitted vs %.3f plain", cos(f[0], f[1]), cos(p[0], p[1]))
	}
	// Fitting again on the same corpus gives the same model hash.
	again := newEnc(t, TextHashName, extract.Options{})
	again.(extract.Fitter).Fit(context.Background(), slices.Values(corpus))
	if again.Info().Meta.ModelSHA256 != fitted.Info().Meta.ModelSHA256 {
		t.Error("fit is not deterministic")
	}
	// A cancelled context stops the fit.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := again.(extract.Fitter).Fit(ctx, slices.Values(corpus)); err == nil {
		t.Error("fit ignored a cancelled context")
	}
}

func TestTextHashTokens(t *testing.T) {
	e := newEnc(t, TextHashName, extract.Options{TokenOutput: true, MaxTokens: 6, Dim: 32})
	info := e.Info()
	if info.Tokens != 6 || info.TokenDim != 32 || info.Dim != 32 {
		t.Fatalf("info %+v", info)
	}
	ins := []extract.Input{
		{ID: "short", Text: "red blanket"},
		{ID: "long", Text: "one two three four five six seven eight"},
	}
	_, out := encodeAll(t, e, ins)
	if !slices.Equal(out.NTokens, []int32{2, 6}) {
		t.Fatalf("n_tokens %v, want [2 6]", out.NTokens)
	}
	if len(out.TokenStates) != 2*6*32 {
		t.Fatalf("token states %d values", len(out.TokenStates))
	}
	for r, n := range out.NTokens {
		for k := range 6 {
			tok := out.TokenStates[(r*6+k)*32 : (r*6+k+1)*32]
			nn := norm2(tok)
			if k < int(n) && math.Abs(nn-1) > 1e-5 {
				t.Errorf("row %d token %d norm %v", r, k, nn)
			}
			if k >= int(n) && nn != 0 {
				t.Errorf("row %d padding token %d is not zero", r, k)
			}
		}
	}
	// The same word in different texts gives similar tokens (context only
	// adds the bigrams).
	_, o2 := encodeAll(t, e, []extract.Input{{ID: "x", Text: "blue blanket"}})
	if c := cos(out.TokenStates[32:64], o2.TokenStates[32:64]); c < 0.5 {
		t.Errorf("token of 'blanket' in two texts: cos %.3f", c)
	}
	// A text without words is an error (an invalid row), not a zero vector.
	if _, err := e.Prepare(extract.Input{ID: "p", Text: "!!! ---"}); err == nil || !strings.Contains(err.Error(), "item p") {
		t.Errorf("no words: %v", err)
	}
}

// TestDeterminism encodes fixed inputs twice with separate encoders, in
// parallel, and compares with digests recorded from an earlier run: the
// vectors must be the same bit for bit across runs.
func TestDeterminism(t *testing.T) {
	var imgs []extract.Input
	for k := range 4 {
		imgs = append(imgs, extract.Input{ID: fmt.Sprint(k), Image: drawPNG(t, 90+7*k, 60+5*k, k)})
	}
	cases := []struct {
		name string
		ins  []extract.Input
		want string
	}{
		{TextHashName, texts, "e759253377f619ac"},
		{ImageStatsName, imgs, "84e1c424711df863"},
	}
	for _, c := range cases {
		o := extract.Options{TokenOutput: true, Seed: 42}
		a, outA := encodeAll(t, newEnc(t, c.name, o), c.ins)
		b, outB := encodeAll(t, newEnc(t, c.name, o), c.ins)
		da, db := digest(append(a, outA.TokenStates)...), digest(append(b, outB.TokenStates)...)
		if da != db {
			t.Fatalf("%s: two encoders differ: %s vs %s", c.name, da, db)
		}
		if runtime.GOARCH == "amd64" && da != c.want {
			t.Errorf("%s: digest %s, recorded %s: the vectors changed (bump the encoder version if on purpose)", c.name, da, c.want)
		}
		// Another seed gives other vectors.
		s, _ := encodeAll(t, newEnc(t, c.name, extract.Options{Seed: 43}), c.ins[:1])
		if digest(s[0]) == digest(a[0]) {
			t.Errorf("%s: seed does not change the projection", c.name)
		}
	}
}

type demoSet struct {
	inputs []extract.Input
	cat    []int
}

// demoImages generates the synth demo and returns its images with their
// hidden categories.
func demoImages(t testing.TB, n int) demoSet {
	t.Helper()
	info, err := synth.Amazon2018Demo(context.Background(), t.TempDir(), synth.DemoConfig{Seed: 3, Users: 40, Items: n, Categories: 6})
	if err != nil {
		t.Fatal(err)
	}
	var ds demoSet
	for _, p := range info.ImageFiles {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		ds.inputs = append(ds.inputs, extract.Input{ID: id, Image: data})
		ds.cat = append(ds.cat, info.HiddenCategory[id])
	}
	return ds
}

func TestImageStatsClustersByCategory(t *testing.T) {
	ds := demoImages(t, 90)
	e := newEnc(t, ImageStatsName, extract.Options{})
	v, _ := encodeAll(t, e, ds.inputs)
	var within, across float64
	var nw, na int
	correct := 0
	for i := range v {
		if math.Abs(norm2(v[i])-1) > 1e-5 {
			t.Fatalf("image %d norm %v", i, norm2(v[i]))
		}
		best, bestJ := -2.0, -1
		for j := range v {
			if i == j {
				continue
			}
			c := cos(v[i], v[j])
			if ds.cat[i] == ds.cat[j] {
				within += c
				nw++
			} else {
				across += c
				na++
			}
			if c > best {
				best, bestJ = c, j
			}
		}
		if ds.cat[bestJ] == ds.cat[i] {
			correct++
		}
	}
	within /= float64(nw)
	across /= float64(na)
	acc := float64(correct) / float64(len(v))
	t.Logf("%d images: mean cosine within categories %.3f, across %.3f; nearest neighbour in the same category %.0f%%", len(v), within, across, 100*acc)
	if within < across+0.15 || acc < 0.9 {
		t.Errorf("images do not cluster by hidden category: within %.3f, across %.3f, 1-NN accuracy %.2f", within, across, acc)
	}
}

func TestImageStatsTokens(t *testing.T) {
	ds := demoImages(t, 6)
	e := newEnc(t, ImageStatsName, extract.Options{TokenOutput: true, Dim: 64})
	info := e.Info()
	if info.Tokens != 49 || info.TokenDim != 64 {
		t.Fatalf("info %+v", info)
	}
	_, out := encodeAll(t, e, ds.inputs)
	if len(out.TokenStates) != len(ds.inputs)*49*64 || len(out.NTokens) != len(ds.inputs) {
		t.Fatalf("token output %d values, %d counts", len(out.TokenStates), len(out.NTokens))
	}
	for r, n := range out.NTokens {
		if n != 49 {
			t.Errorf("row %d: %d tokens", r, n)
		}
		for k := range 49 {
			if nn := norm2(out.TokenStates[(r*49+k)*64 : (r*49+k+1)*64]); math.Abs(nn-1) > 1e-5 {
				t.Errorf("row %d token %d norm %v", r, k, nn)
			}
		}
	}
	if _, err := e.Prepare(extract.Input{ID: "bad", Image: []byte("GIF89a broken")}); err == nil || !strings.Contains(err.Error(), "item bad") {
		t.Errorf("broken image: %v", err)
	}
}

func TestOptionsAndRunErrors(t *testing.T) {
	for _, name := range []string{TextHashName, ImageStatsName} {
		f := Factories()[name]
		if _, err := f(extract.Options{Device: "cuda"}); err == nil || !strings.Contains(err.Error(), "CPU") {
			t.Errorf("%s on cuda: %v", name, err)
		}
		if _, err := f(extract.Options{Dim: -1}); err == nil {
			t.Errorf("%s: negative dim accepted", name)
		}
		e, err := f(extract.Options{Dim: 16})
		if err != nil {
			t.Fatal(err)
		}
		info := e.Info()
		if info.Dim != 16 || info.Tokens != 0 || !info.Meta.Normalized || info.Meta.ModelSHA256 == "" || info.Meta.Encoder != name {
			t.Errorf("%s info %+v", name, info)
		}
		var out extract.Output
		if err := e.Run(context.Background(), []any{"not prepared"}, &out); err == nil {
			t.Errorf("%s: Run accepted a foreign value", name)
		}
		other, _ := f(extract.Options{Dim: 17})
		if other.Info().Meta.ModelSHA256 == info.Meta.ModelSHA256 {
			t.Errorf("%s: dim not in model_sha256", name)
		}
	}
}

func BenchmarkTextHash(b *testing.B) {
	e, _ := NewTextHash(extract.Options{})
	in := extract.Input{ID: "x", Text: strings.Repeat("Soft red cotton baby blanket, machine washable, 100% organic. ", 3)}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Prepare(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkImageStats(b *testing.B) {
	ds := demoImages(b, 16)
	e, _ := NewImageStats(extract.Options{})
	var i int64
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			in := ds.inputs[i%int64(len(ds.inputs))]
			i++
			mu.Unlock()
			if _, err := e.Prepare(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// drawPNG draws a deterministic w×h picture (gradients, a disc, stripes
// whose direction depends on k) as PNG.
func drawPNG(t testing.TB, w, h, k int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(40 * k), 255}
			if ((x+k*y)/6)%2 == 0 {
				c.B = 255 - c.B
			}
			if dx, dy := x-w/2, y-h/2; dx*dx+dy*dy < (h/4)*(h/4) {
				c = color.NRGBA{200, uint8(50 * k), 30, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

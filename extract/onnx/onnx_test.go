package onnx

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/onnx/internal/modelgen"
	"github.com/mmpipe/mmpipe/extract/text"
	"github.com/mmpipe/mmpipe/extract/vision"
)

// requireORT loads ONNX Runtime, skipping the test when the library is
// absent unless MMPIPE_REQUIRE_ORT=1 (set by .ci/run after `make ort`).
func requireORT(tb testing.TB) {
	tb.Helper()
	if _, err := InitRuntime(""); err != nil {
		if os.Getenv("MMPIPE_REQUIRE_ORT") == "1" {
			tb.Fatalf("ONNX Runtime is required (MMPIPE_REQUIRE_ORT=1): %v", err)
		}
		tb.Skipf("ONNX Runtime not available, skipping (run `make ort`): %v", err)
	}
}

// tol is the agreement asked of ONNX Runtime and the Go computation.
const tol = 1e-4

func near(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, 0
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > tol {
		t.Errorf("%s: max |diff| %.3g at %d (got %g, want %g), tolerance %g", what, worst, at, got[at], want[at], tol)
	}
}

func flat(m mat) []float64 {
	var out []float64
	for _, r := range m {
		out = append(out, r...)
	}
	return out
}

// presetFor returns a preset with the widths of a tiny test model.
func presetFor(t *testing.T, name string, dim, tokenDim int64) preset {
	t.Helper()
	for _, p := range presets() {
		if p.name == name {
			p.dim, p.tokenDim = dim, tokenDim
			return p
		}
	}
	t.Fatalf("no preset %s", name)
	return preset{}
}

// modelDir writes a model and copies tokenizer fixture files next to it.
func modelDir(t *testing.T, file string, model []byte, tokenizer string, tokFiles ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, file)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), model, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range tokFiles {
		data, err := os.ReadFile(filepath.Join("../../testdata/tokenizers", tokenizer, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var tinyViT = modelgen.ViTConfig{Image: 224, Patch: 32, Width: 32, Layers: 2, Heads: 4, MLP: 64, Proj: 16, Seed: 7}

func randomPixels(n int, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, 3*224*224)
		for j := range out[i] {
			out[i][j] = float32(r.NormFloat64())
		}
	}
	return out
}

func run(t *testing.T, e *Encoder, prepared []any) extract.Output {
	t.Helper()
	var out extract.Output
	if err := e.Run(context.Background(), prepared, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTinyViTMatchesGo runs a generated CLIP-shaped vision model in ONNX
// Runtime, raw and through the clip-vit-b32 preset, and checks it against
// the Go computation.
func TestTinyViTMatchesGo(t *testing.T) {
	requireORT(t)
	v := modelgen.NewViT(tinyViT)
	model := v.Model()
	imgs := randomPixels(3, 1)

	// Raw ONNX Runtime outputs (image_embeds is not normalised here).
	px := make([]float32, 0, 3*len(imgs[0]))
	for _, im := range imgs {
		px = append(px, im...)
	}
	in, err := ort.NewTensor(ort.NewShape(3, 3, 224, 224), px)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"pixel_values"}, []string{"image_embeds", "last_hidden_state"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	outs := []ort.Value{nil, nil}
	if err := sess.Run([]ort.Value{in}, outs); err != nil {
		t.Fatal(err)
	}
	emb := outs[0].(*ort.Tensor[float32]).GetData()
	hid := outs[1].(*ort.Tensor[float32]).GetData()
	defer outs[0].Destroy()
	defer outs[1].Destroy()

	// Through the encoder, with token output.
	dir := modelDir(t, "vision_model.onnx", model, "")
	e, err := newEncoder(presetFor(t, CLIPImage, 16, 32), extract.Options{ModelDir: dir, TokenOutput: true, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	info := e.Info()
	if info.Dim != 16 || info.Tokens != 50 || info.TokenDim != 32 || !info.Meta.Normalized || !strings.HasPrefix(info.Meta.Preprocess, "clip:") {
		t.Fatalf("info %+v", info)
	}
	out := run(t, e, []any{imgs[0], imgs[1], imgs[2]})
	for i, im := range imgs {
		wantEmb, wantHid := refViT(v, im)
		near(t, "raw image_embeds", emb[i*16:(i+1)*16], wantEmb)
		near(t, "raw last_hidden_state", hid[i*50*32:(i+1)*50*32], flat(wantHid))
		near(t, "encoder pooled", out.Pooled[i*16:(i+1)*16], normalized(wantEmb))
		near(t, "encoder token states", out.TokenStates[i*50*32:(i+1)*50*32], flat(wantHid))
		if out.NTokens[i] != 50 {
			t.Errorf("n tokens %d", out.NTokens[i])
		}
	}
}

// TestPMMRecImage checks the pmmrec recipe end to end: Prepare decodes
// and squashes a PNG with PMMRec's preprocessing, and the pooled vector is
// the mean of the 50 token states.
func TestPMMRecImage(t *testing.T) {
	requireORT(t)
	v := modelgen.NewViT(tinyViT)
	dir := modelDir(t, "onnx/vision_model.onnx", v.Model(), "")
	e, err := newEncoder(presetFor(t, PMMRec, 32, 32), extract.Options{ModelDir: dir, TokenOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	img := image.NewRGBA(image.Rect(0, 0, 90, 60))
	for y := range 60 {
		for x := range 90 {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 4), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	prep, err := e.Prepare(extract.Input{ID: "a", Image: buf.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	want, err := vision.PMMRec().Preprocess(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !equalFloats(prep.([]float32), want) {
		t.Fatal("Prepare differs from vision.PMMRec().Preprocess")
	}
	if _, err := e.Prepare(extract.Input{ID: "b", Image: []byte("not an image")}); err == nil {
		t.Error("Prepare of a broken image: no error")
	}
	out := run(t, e, []any{prep})
	_, hid := refViT(v, want)
	near(t, "pmmrec pooled", out.Pooled, meanRows(hid))
	near(t, "pmmrec tokens", out.TokenStates, flat(hid))
	if e.Info().Meta.Normalized || e.Info().Meta.Pooling != poolMean {
		t.Errorf("meta %+v", e.Info().Meta)
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var tinyBERT = modelgen.BERTConfig{Vocab: 30, MaxPos: 64, TypeVocab: 2, Width: 32, Layers: 2, Heads: 4, FFN: 64, Seed: 11}

var sentences = []string{"Hello, World!", "unaffable café", "the", "don't stop running the hello world"}

// TestTinyBERTMatchesGo runs a generated BERT through the sbert-minilm
// preset (WordPiece tokenizer from vocab.txt, masked mean pooling, L2) on
// a batch of texts of different lengths.
func TestTinyBERTMatchesGo(t *testing.T) {
	requireORT(t)
	m := modelgen.NewBERT(tinyBERT)
	dir := modelDir(t, "model.onnx", m.Model(), "wordpiece", "vocab.txt")
	e, err := newEncoder(presetFor(t, SBERT, 32, 32), extract.Options{ModelDir: dir, TokenOutput: true, MaxTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Info().Tokens != 12 || e.Tokenizer().Kind() != text.KindWordPiece {
		t.Fatalf("info %+v", e.Info())
	}
	if pre := e.Info().Meta.Preprocess; !strings.Contains(pre, "wordpiece tokenizer vocab.txt sha256 ") || !strings.Contains(pre, "[CLS] ? [SEP]; max 12 tokens") {
		t.Errorf("preprocess %q", pre)
	}
	var prepared []any
	for _, s := range sentences {
		p, err := e.Prepare(extract.Input{Text: s})
		if err != nil {
			t.Fatal(err)
		}
		prepared = append(prepared, p)
	}
	out := run(t, e, prepared)
	for i, p := range prepared {
		ids := p.(text.Encoding).IDs
		hid := refBERT(m, ids)
		near(t, "sbert pooled "+sentences[i], out.Pooled[i*32:(i+1)*32], normalized(meanRows(hid)))
		n := int(out.NTokens[i])
		if n != len(ids) {
			t.Errorf("%q: %d tokens, want %d", sentences[i], n, len(ids))
		}
		states := out.TokenStates[i*12*32 : (i+1)*12*32]
		near(t, "sbert tokens "+sentences[i], states[:n*32], flat(hid))
		for _, v := range states[n*32:] {
			if v != 0 {
				t.Fatalf("%q: token states not zero past %d", sentences[i], n)
			}
		}
	}
	// The last text has 9 tokens incl. [CLS]/[SEP] of 12 max; a longer one is cut.
	long, _ := e.Prepare(extract.Input{Text: strings.Repeat("hello ", 30)})
	if got := len(long.(text.Encoding).IDs); got != 12 {
		t.Errorf("long text: %d tokens, want 12", got)
	}
}

// TestStaticBatchAndXLMR runs an XLM-R style export (no token_type_ids)
// with a static batch of 2 and sequence of 10 through the
// xlm-roberta-base preset: 5 texts run as 3 padded chunks; the pooled
// vector is the masked mean, not normalised.
func TestStaticBatchAndXLMR(t *testing.T) {
	requireORT(t)
	cfg := tinyBERT
	cfg.Vocab = 28
	m := modelgen.NewBERT(cfg)
	m.WithTokenTypeIDs = false
	m.Batch, m.Seq = 2, 10
	dir := modelDir(t, "model.onnx", m.Model(), "xlmr", "tokenizer.json")
	e, err := newEncoder(presetFor(t, XLMR, 32, 32), extract.Options{ModelDir: dir, TokenOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.maxBatch != 2 || e.seqLen != 10 || e.Info().Tokens != 10 {
		t.Fatalf("batch %d seq %d tokens %d", e.maxBatch, e.seqLen, e.Info().Tokens)
	}
	texts := []string{"hello world!", "ﬁne…", "xyz", "a\u3000\u3000b hello hello hello hello hello", ""}
	var prepared []any
	for _, s := range texts {
		p, _ := e.Prepare(extract.Input{Text: s})
		prepared = append(prepared, p)
	}
	out := run(t, e, prepared)
	for i, p := range prepared {
		ids := p.(text.Encoding).IDs
		hid := refBERT(m, ids)
		near(t, "xlmr pooled "+texts[i], out.Pooled[i*32:(i+1)*32], meanRows(hid))
		near(t, "xlmr tokens "+texts[i], out.TokenStates[i*10*32:i*10*32+len(ids)*32], flat(hid))
	}
	if out.NTokens[3] != 10 {
		t.Errorf("truncated text: %d tokens", out.NTokens[3])
	}
}

var tinyCLIPText = modelgen.CLIPTextConfig{Vocab: 529, Context: 77, Width: 32, Layers: 2, Heads: 4, MLP: 64, Proj: 16, Seed: 5}

var captions = []string{"A photo of a cat.", "hello world's!", "héllo 12 😀"}

// TestTinyCLIPTextMatchesGo runs a generated CLIP text tower through the
// clip-vit-b32-text preset (CLIP BPE from vocab.json + merges.txt, 77
// tokens, end-of-text pooling).
func TestTinyCLIPTextMatchesGo(t *testing.T) {
	requireORT(t)
	m := modelgen.NewCLIPText(tinyCLIPText)
	dir := modelDir(t, "text_model.onnx", m.Model(), "clip", "vocab.json", "merges.txt")
	e, err := newEncoder(presetFor(t, CLIPText, 16, 32), extract.Options{ModelDir: dir, TokenOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.seqLen != 77 || e.Info().Tokens != 77 {
		t.Fatalf("seq %d tokens %d", e.seqLen, e.Info().Tokens)
	}
	var prepared []any
	for _, s := range captions {
		p, _ := e.Prepare(extract.Input{Text: s})
		prepared = append(prepared, p)
	}
	out := run(t, e, prepared)
	for i, p := range prepared {
		ids := p.(text.Encoding).IDs
		emb, hid := refCLIPText(m, ids)
		near(t, "clip text pooled "+captions[i], out.Pooled[i*16:(i+1)*16], normalized(emb))
		near(t, "clip text tokens "+captions[i], out.TokenStates[i*77*32:i*77*32+len(ids)*32], flat(hid))
	}
}

// TestCombinedCLIP loads one CLIPModel-style export with both towers
// through both CLIP presets: each feeds a dummy input to the other tower
// and gives the same vectors as the separate towers.
func TestCombinedCLIP(t *testing.T) {
	requireORT(t)
	v := modelgen.NewViT(tinyViT)
	m := modelgen.NewCLIPText(tinyCLIPText)
	dir := modelDir(t, "model.onnx", modelgen.CombinedCLIP(v, m, 100), "clip", "tokenizer.json")

	img, err := newEncoder(presetFor(t, CLIPImage, 16, 32), extract.Options{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Info().Tokens != 0 {
		t.Errorf("combined export has no token states, info says %d", img.Info().Tokens)
	}
	imgs := randomPixels(2, 3)
	out := run(t, img, []any{imgs[0], imgs[1]})
	for i, im := range imgs {
		emb, _ := refViT(v, im)
		near(t, "combined image_embeds", out.Pooled[i*16:(i+1)*16], normalized(emb))
	}
	if _, err := newEncoder(presetFor(t, CLIPImage, 16, 32), extract.Options{ModelDir: dir, TokenOutput: true}); err == nil ||
		!strings.Contains(err.Error(), "no token states") {
		t.Errorf("token output on a combined export: %v", err)
	}

	txt, err := newEncoder(presetFor(t, CLIPText, 16, 32), extract.Options{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer txt.Close()
	var prepared []any
	for _, s := range captions {
		p, _ := txt.Prepare(extract.Input{Text: s})
		prepared = append(prepared, p)
	}
	out = run(t, txt, prepared)
	for i, p := range prepared {
		emb, _ := refCLIPText(m, p.(text.Encoding).IDs)
		near(t, "combined text_embeds", out.Pooled[i*16:(i+1)*16], normalized(emb))
	}
}

// TestPresetMismatch loads models that do not fit a preset and checks
// that the error says what was found and what was expected.
func TestPresetMismatch(t *testing.T) {
	requireORT(t)
	vit := modelDir(t, "model.onnx", modelgen.NewViT(tinyViT).Model(), "")
	bert := modelDir(t, "model.onnx", modelgen.NewBERT(tinyBERT).Model(), "wordpiece", "vocab.txt")
	cases := []struct {
		name string
		p    preset
		dir  string
		want []string
	}{
		{"real width", presetFor(t, CLIPImage, 512, 768), vit,
			[]string{`output "image_embeds": found image_embeds float32 [? 16], expected image_embeds float32 [N 512]`,
				`found last_hidden_state float32 [? 50 32], expected last_hidden_state float32 [N 50 768]`}},
		{"text model for images", presetFor(t, CLIPImage, 16, 32), bert,
			[]string{`no input "pixel_values": expected pixel_values float32 [N 3 224 224]`, `input "token_type_ids" is not one the preset feeds`,
				`no output "image_embeds": expected image_embeds float32 [N 16]`}},
		{"image model for text", presetFor(t, SBERT, 32, 32), vit,
			[]string{`no input "input_ids": expected input_ids int64|int32 [N N]`, "the model has inputs pixel_values float32 [? 3 224 224]"}},
		{"sbert width", presetFor(t, SBERT, 384, 384), bert,
			[]string{`output "last_hidden_state": found last_hidden_state float32 [? ? 32], expected last_hidden_state float32 [N N 384]`}},
	}
	for _, c := range cases {
		e, err := newEncoder(c.p, extract.Options{ModelDir: c.dir})
		if err == nil {
			e.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	// The real presets by registry name reject the tiny models too.
	if _, err := Factories()[CLIPImage](extract.Options{ModelDir: vit}); err == nil || !strings.Contains(err.Error(), "expected image_embeds float32 [N 512]") {
		t.Errorf("factory: %v", err)
	}
	// A WordPiece tokenizer next to a CLIP text model.
	clipDir := modelDir(t, "model.onnx", modelgen.NewCLIPText(tinyCLIPText).Model(), "wordpiece", "vocab.txt")
	if _, err := newEncoder(presetFor(t, CLIPText, 16, 32), extract.Options{ModelDir: clipDir}); err == nil || !strings.Contains(err.Error(), "expects bpe") {
		t.Errorf("wrong tokenizer: %v", err)
	}
	if _, err := newEncoder(presetFor(t, CLIPText, 16, 32), extract.Options{ModelDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no model in") {
		t.Errorf("empty folder: %v", err)
	}
}

// TestDeviceCUDA checks that --device cuda fails with a clear message on
// the CPU build of ONNX Runtime (and runs where a CUDA build is present).
func TestDeviceCUDA(t *testing.T) {
	requireORT(t)
	dir := modelDir(t, "model.onnx", modelgen.NewViT(tinyViT).Model(), "")
	e, err := newEncoder(presetFor(t, CLIPImage, 16, 32), extract.Options{ModelDir: dir, Device: DeviceCUDA})
	if err == nil {
		defer e.Close()
		t.Logf("CUDA execution provider available")
		run(t, e, []any{randomPixels(1, 9)[0]})
		return
	}
	t.Logf("cuda: %v", err)
	if !strings.Contains(err.Error(), "CUDA execution provider is not available") || !strings.Contains(err.Error(), "libonnxruntime_providers_cuda.so") {
		t.Errorf("error %q does not explain the missing CUDA provider", err)
	}
	if _, err := newEncoder(presetFor(t, CLIPImage, 16, 32), extract.Options{ModelDir: dir, Device: "tpu"}); err == nil {
		t.Error("device tpu: no error")
	}
}

func TestRunCancelled(t *testing.T) {
	requireORT(t)
	dir := modelDir(t, "model.onnx", modelgen.NewViT(tinyViT).Model(), "")
	e, err := newEncoder(presetFor(t, CLIPImage, 16, 32), extract.Options{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out extract.Output
	if err := e.Run(ctx, []any{randomPixels(1, 2)[0]}, &out); err != context.Canceled {
		t.Errorf("cancelled run: %v", err)
	}
	if err := e.Run(context.Background(), []any{"nope"}, &out); err == nil {
		t.Error("bad prepared value: no error")
	}
}

func TestLibraryPath(t *testing.T) {
	if _, err := LibraryPath("/nonexistent/libonnxruntime.so.1"); err == nil {
		t.Error("missing explicit library: no error")
	}
	t.Setenv(LibraryEnv, "/nonexistent/lib.so")
	if _, err := LibraryPath(""); err == nil || !strings.Contains(err.Error(), LibraryEnv) {
		t.Errorf("missing env library: %v", err)
	}
	t.Setenv(LibraryEnv, "")
	p, err := LibraryPath("")
	if err != nil {
		if !strings.Contains(err.Error(), "make ort") {
			t.Errorf("error does not say how to install: %v", err)
		}
		return
	}
	if !strings.HasSuffix(p, LibraryRelPath) {
		t.Errorf("found %s", p)
	}
}

func TestFactories(t *testing.T) {
	f := Factories()
	for _, n := range []string{CLIPImage, CLIPText, SBERT, XLMR, PMMRec} {
		if f[n] == nil {
			t.Errorf("no factory %s", n)
		}
	}
}

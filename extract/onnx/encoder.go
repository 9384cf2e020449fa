package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/text"
	"github.com/mmpipe/mmpipe/extract/vision"
	"github.com/mmpipe/mmpipe/store"
)

// feedKind says what is fed to a model input.
type feedKind int

const (
	feedPixels      feedKind = iota // the batch's preprocessed images
	feedIDs                         // token ids
	feedMask                        // attention mask
	feedTypes                       // token type ids (zeros)
	feedDummyPixels                 // a zero image for the other tower of a combined CLIP model
	feedDummyIDs                    // a one-token text for the other tower
	feedDummyMask
)

// feed is one model input and what goes into it.
type feed struct {
	name  string
	kind  feedKind
	elem  ort.TensorElementDataType
	dims  []int64
	value ort.Value // constant dummy inputs, made once
}

// Encoder is an ONNX Runtime encoder built from a preset. Prepare is safe
// for concurrent use; Run is called by one goroutine at a time.
type Encoder struct {
	p    preset
	info extract.Info
	opts extract.Options
	path string // the model file

	sess    *ort.DynamicAdvancedSession
	feeds   []feed
	outputs []string
	pooled  int  // index in outputs of the pooled output, -1 if not fetched
	hidden  int  // index in outputs of the token states, -1 if not fetched
	tokens  bool // the model has token states (fetched or not)

	maxBatch  int // the model's fixed batch size, 0 if dynamic
	seqLen    int // text: the fixed padded length, 0 to pad to the longest of the batch
	maxTokens int
	recipe    vision.Recipe
	tok       *text.Tokenizer
	tokSHA    string // sha256 of the tokenizer files

	mu     sync.Mutex // guards the buffers below (Run is single-caller, but be safe)
	pixels []float32
	ints64 [3][]int64
	ints32 [3][]int32
}

// Info describes the encoder's output.
func (e *Encoder) Info() extract.Info { return e.info }

// ModelPath is the model file the encoder runs.
func (e *Encoder) ModelPath() string { return e.path }

// Tokenizer is the text encoder's tokenizer (nil for images).
func (e *Encoder) Tokenizer() *text.Tokenizer { return e.tok }

// newEncoder loads a preset's model and checks it.
func newEncoder(p preset, o extract.Options) (enc *Encoder, err error) {
	if o.MaxTokens < 0 {
		return nil, fmt.Errorf("%s: max tokens %d is negative", p.name, o.MaxTokens)
	}
	if o.Threads < 0 {
		return nil, fmt.Errorf("%s: threads %d is negative", p.name, o.Threads)
	}
	if o.Dim != 0 && int64(o.Dim) != p.dim {
		return nil, fmt.Errorf("%s: the model gives %d-d vectors; dim %d cannot change that", p.name, p.dim, o.Dim)
	}
	if _, err := InitRuntime(o.ORTLib); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	path, err := findModel(o.ModelDir, p.files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	mio, err := readModelIO(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	e := &Encoder{p: p, opts: o, path: path, pooled: -1, hidden: -1}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	mm := &mismatch{preset: p.name, path: path, found: "inputs " + listString(mio.inputs) + "; outputs " + listString(mio.outputs)}
	e.planInputs(mm, mio)
	e.planOutputs(mm, mio)
	if err := mm.err(); err != nil {
		return nil, err
	}
	if o.TokenOutput && !e.tokens {
		return nil, fmt.Errorf("%s: token output asked for, but model %s has no token states (outputs %s); a combined CLIP export has none: use the separate vision/text export",
			p.name, path, listString(mio.outputs))
	}
	if p.modality == "text" {
		if err := e.loadTokenizer(o.ModelDir); err != nil {
			return nil, err
		}
	} else {
		e.recipe = p.recipe()
	}
	sha, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("%s: hash model: %w", p.name, err)
	}
	e.info = e.describe(sha)

	sopts, err := sessionOptions(o.Device, o.Threads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	defer sopts.Destroy()
	names := make([]string, len(e.feeds))
	for i, f := range e.feeds {
		names[i] = f.name
	}
	e.sess, err = ort.NewDynamicAdvancedSession(path, names, e.outputs, sopts)
	if err != nil {
		return nil, fmt.Errorf("%s: open ONNX Runtime session on %s: %w", p.name, path, err)
	}
	for i := range e.feeds {
		if err := e.feeds[i].makeDummy(); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return e, nil
}

// intTypes are the element types accepted for token ids and masks.
func intTypes() []ort.TensorElementDataType {
	return []ort.TensorElementDataType{ort.TensorElementDataTypeInt64, ort.TensorElementDataTypeInt32}
}

// floatTypes are the element types accepted for pixels and outputs.
func floatTypes() []ort.TensorElementDataType {
	return []ort.TensorElementDataType{ort.TensorElementDataTypeFloat}
}

// planInputs checks the model's inputs and decides what feeds each.
func (e *Encoder) planInputs(mm *mismatch, mio *modelIO) {
	p := e.p
	size := int64(0)
	if p.recipe != nil {
		size = int64(p.recipe().Size)
	}
	pixels := tensorSpec{"pixel_values", floatTypes(), []int64{-1, 3, size, size}}
	ids := tensorSpec{"input_ids", intTypes(), []int64{-1, -1}}
	mask := tensorSpec{"attention_mask", intTypes(), []int64{-1, -1}}
	types := tensorSpec{"token_type_ids", intTypes(), []int64{-1, -1}}
	add := func(io ort.InputOutputInfo, kind feedKind) {
		e.feeds = append(e.feeds, feed{name: io.Name, kind: kind, elem: io.DataType, dims: io.Dimensions})
	}
	var main ort.InputOutputInfo
	if p.modality == "image" {
		io, ok := mm.check("input", mio.inputs, pixels)
		if ok {
			main = io
		}
		for _, in := range mio.inputs {
			switch in.Name {
			case pixels.name:
				if ok {
					add(in, feedPixels)
				}
			case ids.name: // combined CLIP: a dummy text for the text tower
				if sp := (tensorSpec{ids.name, intTypes(), []int64{-1, -1}}); sp.match(in) {
					add(in, feedDummyIDs)
				} else {
					mm.add("input %q: found %s, expected %s", in.Name, infoString(in), sp)
				}
			case mask.name:
				if mask.match(in) {
					add(in, feedDummyMask)
				} else {
					mm.add("input %q: found %s, expected %s", in.Name, infoString(in), mask)
				}
			default:
				mm.add("input %q is not one the preset feeds (pixel_values; input_ids and attention_mask of a combined CLIP model)", in.Name)
			}
		}
	} else {
		io, ok := mm.check("input", mio.inputs, ids)
		if ok {
			main = io
		}
		for _, in := range mio.inputs {
			switch in.Name {
			case ids.name:
				if ok {
					add(in, feedIDs)
				}
			case mask.name:
				if _, ok := mm.check("input", mio.inputs, mask); ok {
					add(in, feedMask)
				}
			case types.name:
				if _, ok := mm.check("input", mio.inputs, types); ok {
					add(in, feedTypes)
				}
			case pixels.name: // combined CLIP: a dummy image for the vision tower
				sp := tensorSpec{pixels.name, floatTypes(), []int64{-1, 3, -1, -1}}
				if sp.match(in) {
					add(in, feedDummyPixels)
				} else {
					mm.add("input %q: found %s, expected %s", in.Name, infoString(in), sp)
				}
			default:
				mm.add("input %q is not one the preset feeds (input_ids, attention_mask, token_type_ids; pixel_values of a combined CLIP model)", in.Name)
			}
		}
		if len(main.Dimensions) == 2 && main.Dimensions[1] > 0 {
			e.seqLen = int(main.Dimensions[1]) // a static export: always pad to its length
		}
	}
	if len(main.Dimensions) > 0 && main.Dimensions[0] > 0 {
		e.maxBatch = int(main.Dimensions[0])
	}
}

// planOutputs checks the model's outputs and picks the ones to fetch.
func (e *Encoder) planOutputs(mm *mismatch, mio *modelIO) {
	p := e.p
	if p.pooling == poolOutput {
		if _, ok := mm.check("output", mio.outputs, tensorSpec{p.pooledOutput, floatTypes(), []int64{-1, p.dim}}); ok {
			e.pooled = len(e.outputs)
			e.outputs = append(e.outputs, p.pooledOutput)
		}
	}
	hiddenNeeded := p.pooling != poolOutput
	var name string
	for _, n := range p.hiddenOutputs {
		if _, ok := find(mio.outputs, n); ok {
			name = n
			break
		}
	}
	if name == "" {
		if hiddenNeeded {
			mm.add("no token-state output: expected one of %s", strings.Join(p.hiddenOutputs, ", "))
		}
		return
	}
	tokens := int64(-1)
	if p.modality == "image" {
		tokens = p.imageTokens
	}
	spec := tensorSpec{name, floatTypes(), []int64{-1, tokens, p.tokenDim}}
	if _, ok := mm.check("output", mio.outputs, spec); !ok {
		return
	}
	e.tokens = true
	if hiddenNeeded || e.opts.TokenOutput {
		e.hidden = len(e.outputs)
		e.outputs = append(e.outputs, name)
	}
}

// loadTokenizer finds the text model's tokenizer and the token budget.
func (e *Encoder) loadTokenizer(modelDir string) error {
	p := e.p
	var errs []string
	for _, dir := range tokenizerDirs(modelDir, e.path) {
		tok, err := text.Load(dir)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if tok.Kind() != p.tokenizer {
			return fmt.Errorf("%s: the tokenizer in %s is %s; the preset expects %s", p.name, dir, tok.Kind(), p.tokenizer)
		}
		e.tok = tok
		break
	}
	if e.tok != nil {
		h := sha256.New()
		for _, f := range e.tok.Files() {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("%s: hash tokenizer: %w", p.name, err)
			}
			h.Write(data)
		}
		e.tokSHA = hex.EncodeToString(h.Sum(nil))
	}
	if e.tok == nil {
		return fmt.Errorf("%s: no tokenizer: %s", p.name, strings.Join(errs, "; "))
	}
	mt := e.opts.MaxTokens
	if mt == 0 {
		mt = p.maxTokens
		if e.opts.TokenOutput && p.tokenDefault > 0 {
			mt = p.tokenDefault
		}
		if l := e.tok.MaxLength(); l > 0 && l < mt {
			mt = l
		}
	}
	if mt > p.tokenMaxLimit {
		return fmt.Errorf("%s: max tokens %d is over the model's limit %d", p.name, mt, p.tokenMaxLimit)
	}
	if mt <= e.tok.SpecialCount() {
		return fmt.Errorf("%s: max tokens %d leaves no room for text", p.name, mt)
	}
	if e.seqLen > 0 {
		mt = min(mt, e.seqLen)
	} else if p.fixedLength {
		e.seqLen = mt
	}
	e.maxTokens = mt
	return nil
}

// describe fills Info.
func (e *Encoder) describe(sha string) extract.Info {
	p := e.p
	info := extract.Info{Name: p.name, Modality: p.modality, Dim: int(p.dim)}
	if e.tokens {
		info.TokenDim = int(p.tokenDim)
		if p.modality == "image" {
			info.Tokens = int(p.imageTokens)
		} else {
			info.Tokens = e.maxTokens
		}
	}
	meta := store.FeatureMeta{Modality: p.modality, Encoder: p.name, ModelSHA256: sha, Pooling: p.pooling, Normalized: p.normalize}
	if p.modality == "image" {
		meta.Preprocess = e.recipe.String()
	} else {
		pad := "the longest text of the batch"
		if e.seqLen > 0 {
			pad = fmt.Sprintf("%d tokens", e.seqLen)
		}
		var names []string
		for _, f := range e.tok.Files() {
			names = append(names, filepath.Base(f))
		}
		meta.Preprocess = fmt.Sprintf("%s tokenizer %s sha256 %s, %d ids; %s; max %d tokens incl. special; padded with id %d to %s",
			e.tok.Kind(), strings.Join(names, "+"), e.tokSHA, e.tok.VocabSize(), e.tok.Specials(), e.maxTokens, e.tok.PadID(), pad)
	}
	info.Meta = meta
	return info
}

// makeDummy builds the constant input of a combined model's other tower:
// a zero image, or a one-token text.
func (f *feed) makeDummy() error {
	size := func(i int, def int64) int64 {
		if i < len(f.dims) && f.dims[i] > 0 {
			return f.dims[i]
		}
		return def
	}
	var err error
	switch f.kind {
	case feedDummyPixels:
		shape := ort.NewShape(size(0, 1), size(1, 3), size(2, 224), size(3, 224))
		f.value, err = ort.NewEmptyTensor[float32](shape)
	case feedDummyIDs, feedDummyMask:
		shape := ort.NewShape(size(0, 1), size(1, 1))
		fill := int64(0)
		if f.kind == feedDummyMask {
			fill = 1
		}
		f.value, err = intTensor(f.elem, shape, fill)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("dummy input %s: %w", f.name, err)
	}
	return nil
}

func intTensor(elem ort.TensorElementDataType, shape ort.Shape, fill int64) (ort.Value, error) {
	n := shape.FlattenedSize()
	if elem == ort.TensorElementDataTypeInt32 {
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(fill)
		}
		return ort.NewTensor(shape, d)
	}
	d := make([]int64, n)
	for i := range d {
		d[i] = fill
	}
	return ort.NewTensor(shape, d)
}

// Prepare preprocesses one input: an image becomes 3×224×224 float32
// values, a text its token ids.
func (e *Encoder) Prepare(in extract.Input) (any, error) {
	if e.p.modality == "image" {
		if len(in.Image) == 0 {
			return nil, fmt.Errorf("%s: item %s has no image", e.p.name, in.ID)
		}
		px, err := e.recipe.Preprocess(in.Image)
		if err != nil {
			return nil, fmt.Errorf("%s: item %s: %w", e.p.name, in.ID, err)
		}
		return px, nil
	}
	enc := e.tok.Encode(in.Text, e.maxTokens)
	return enc, nil
}

// Run encodes a batch of prepared values.
func (e *Encoder) Run(ctx context.Context, prepared []any, out *extract.Output) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess == nil {
		return fmt.Errorf("%s: encoder is closed", e.p.name)
	}
	n := len(prepared)
	out.Pooled = resize(out.Pooled, n*e.info.Dim)
	if e.opts.TokenOutput {
		out.TokenStates = resize(out.TokenStates, n*e.info.Tokens*e.info.TokenDim)
		clear(out.TokenStates)
		out.NTokens = resize(out.NTokens, n)
	} else {
		out.TokenStates, out.NTokens = out.TokenStates[:0], out.NTokens[:0]
	}
	step := n
	if e.maxBatch > 0 {
		step = e.maxBatch
	}
	for lo := 0; lo < n; lo += step {
		hi := min(n, lo+step)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.runChunk(ctx, prepared[lo:hi], lo, out); err != nil {
			return err
		}
	}
	return nil
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// runChunk runs the model on items (at most maxBatch of them) and writes
// rows off.. of out.
func (e *Encoder) runChunk(ctx context.Context, items []any, off int, out *extract.Output) error {
	b := len(items)
	rows := b
	if e.maxBatch > 0 {
		rows = e.maxBatch // a static batch axis: pad the chunk
	}
	var encs []text.Encoding
	seq := 0
	if e.p.modality == "text" {
		encs = make([]text.Encoding, b)
		for i, it := range items {
			enc, ok := it.(text.Encoding)
			if !ok {
				return fmt.Errorf("%s: prepared value %d is %T, not a text encoding", e.p.name, off+i, it)
			}
			encs[i] = enc
			seq = max(seq, len(enc.IDs))
		}
		if e.seqLen > 0 {
			seq = e.seqLen
		}
		seq = max(seq, 1)
	}

	inputs := make([]ort.Value, len(e.feeds))
	var made []ort.Value
	defer func() {
		for _, v := range made {
			v.Destroy()
		}
	}()
	for i, f := range e.feeds {
		var v ort.Value
		var err error
		switch f.kind {
		case feedPixels:
			v, err = e.pixelTensor(items, rows, off)
		case feedIDs, feedMask, feedTypes:
			v, err = e.textTensor(f, encs, rows, seq)
		default:
			inputs[i] = f.value
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: input %s: %w", e.p.name, f.name, err)
		}
		inputs[i] = v
		made = append(made, v)
	}

	outputs := make([]ort.Value, len(e.outputs))
	ro, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("%s: run options: %w", e.p.name, err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { ro.Terminate() })
	err = e.sess.RunWithOptions(inputs, outputs, ro)
	stop()
	defer func() {
		for _, v := range outputs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s: run %s on %d items: %w", e.p.name, e.path, b, err)
	}

	var hidden []float32
	var hiddenShape ort.Shape
	if e.hidden >= 0 {
		hidden, hiddenShape, err = floatOutput(outputs[e.hidden])
		if err != nil {
			return fmt.Errorf("%s: output %s: %w", e.p.name, e.outputs[e.hidden], err)
		}
		wantT := int64(seq)
		if e.p.modality == "image" {
			wantT = int64(e.info.Tokens)
		}
		if len(hiddenShape) != 3 || hiddenShape[0] != int64(rows) || hiddenShape[1] != wantT || hiddenShape[2] != int64(e.info.TokenDim) {
			return fmt.Errorf("%s: output %s has shape %v, want [%d %d %d]", e.p.name, e.outputs[e.hidden], hiddenShape, rows, wantT, e.info.TokenDim)
		}
	}
	dim := e.info.Dim
	pooled := out.Pooled[off*dim : (off+b)*dim]
	switch e.p.pooling {
	case poolOutput:
		data, shape, err := floatOutput(outputs[e.pooled])
		if err != nil {
			return fmt.Errorf("%s: output %s: %w", e.p.name, e.outputs[e.pooled], err)
		}
		if len(shape) != 2 || shape[0] != int64(rows) || shape[1] != int64(dim) {
			return fmt.Errorf("%s: output %s has shape %v, want [%d %d]", e.p.name, e.outputs[e.pooled], shape, rows, dim)
		}
		copy(pooled, data[:b*dim])
	case poolMaskedMean, poolMean:
		t := int(hiddenShape[1])
		for r := range b {
			dst := pooled[r*dim : (r+1)*dim]
			clear(dst)
			count := 0
			for j := range t {
				if e.p.pooling == poolMaskedMean && j >= len(encs[r].IDs) {
					break // padding (always at the end)
				}
				src := hidden[(r*t+j)*dim : (r*t+j+1)*dim]
				for k, v := range src {
					dst[k] += v
				}
				count++
			}
			inv := 1 / float32(max(count, 1))
			for k := range dst {
				dst[k] *= inv
			}
		}
	}
	if e.p.normalize {
		for r := range b {
			l2normalize(pooled[r*dim : (r+1)*dim])
		}
	}
	if e.opts.TokenOutput {
		tokens, tdim := e.info.Tokens, e.info.TokenDim
		t := int(hiddenShape[1])
		for r := range b {
			used := min(t, tokens)
			if encs != nil {
				used = min(used, len(encs[r].IDs))
			}
			dst := out.TokenStates[(off+r)*tokens*tdim : (off+r+1)*tokens*tdim]
			copy(dst[:used*tdim], hidden[r*t*tdim:(r*t+used)*tdim])
			clear(dst[used*tdim:])
			out.NTokens[off+r] = int32(used)
		}
	}
	return nil
}

// pixelTensor stacks the prepared images into [rows, 3, S, S].
func (e *Encoder) pixelTensor(items []any, rows, off int) (ort.Value, error) {
	per := e.recipe.Len()
	e.pixels = resize(e.pixels, rows*per)
	for i, it := range items {
		px, ok := it.([]float32)
		if !ok || len(px) != per {
			return nil, fmt.Errorf("prepared value %d is not a preprocessed image (%T)", off+i, it)
		}
		copy(e.pixels[i*per:], px)
	}
	clear(e.pixels[len(items)*per:])
	s := int64(e.recipe.Size)
	return ort.NewTensor(ort.NewShape(int64(rows), 3, s, s), e.pixels)
}

// textTensor builds the ids, mask or type ids of a text batch [rows, seq].
func (e *Encoder) textTensor(f feed, encs []text.Encoding, rows, seq int) (ort.Value, error) {
	slot := map[feedKind]int{feedIDs: 0, feedMask: 1, feedTypes: 2}[f.kind]
	n := rows * seq
	shape := ort.NewShape(int64(rows), int64(seq))
	get := func(r, j int) int64 {
		if r >= len(encs) || j >= len(encs[r].IDs) {
			if f.kind == feedIDs {
				return int64(e.tok.PadID())
			}
			return 0
		}
		switch f.kind {
		case feedIDs:
			return int64(encs[r].IDs[j])
		case feedMask:
			return 1
		default:
			return int64(encs[r].TypeIDs[j])
		}
	}
	if f.elem == ort.TensorElementDataTypeInt32 {
		buf := resize(e.ints32[slot], n)
		e.ints32[slot] = buf
		for r := range rows {
			for j := range seq {
				buf[r*seq+j] = int32(get(r, j))
			}
		}
		return ort.NewTensor(shape, buf)
	}
	buf := resize(e.ints64[slot], n)
	e.ints64[slot] = buf
	for r := range rows {
		for j := range seq {
			buf[r*seq+j] = get(r, j)
		}
	}
	return ort.NewTensor(shape, buf)
}

// floatOutput reads a float32 output tensor.
func floatOutput(v ort.Value) ([]float32, ort.Shape, error) {
	t, ok := v.(*ort.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("got %T, want a float32 tensor", v)
	}
	return t.GetData(), t.GetShape(), nil
}

// l2normalize divides v by its L2 norm (PyTorch's F.normalize, eps 1e-12).
func l2normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := math.Max(math.Sqrt(s), 1e-12)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
}

// Close releases the ONNX Runtime session and the dummy inputs.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for i := range e.feeds {
		if e.feeds[i].value != nil {
			if err := e.feeds[i].value.Destroy(); err != nil {
				errs = append(errs, err)
			}
			e.feeds[i].value = nil
		}
	}
	if e.sess != nil {
		if err := e.sess.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close session: %w", e.p.name, err))
		}
		e.sess = nil
	}
	return errors.Join(errs...)
}

// Package extract defines the item encoders of mmpipe: the Encoder
// interface, the options that build one, and the shape of their outputs.
// The encoders themselves live in sub-packages: builtin (weight-free
// text-hash and image-stats), onnx (ONNX Runtime presets such as
// clip-vit-b32 and sbert-minilm), with vision (image decoding and
// preprocessing) and text (tokenizers) as their helpers.
package extract

import (
	"context"
	"iter"

	"github.com/mmpipe/mmpipe/store"
)

// Input is one item to encode: its text, or its encoded image bytes.
type Input struct {
	Item  int32  // item_idx in the dataset
	ID    string // raw item id, for error messages
	Text  string
	Image []byte // encoded JPEG/PNG/GIF/WebP bytes
}

// Info describes an encoder's output.
type Info struct {
	Name     string // registry name, e.g. "text-hash", "clip-vit-b32"
	Modality string // "image" or "text" (the feature file is <modality>.<name>.arrow)
	Dim      int    // pooled vector width
	// Tokens is the number of token vectors per item in the optional
	// token-level output (0: the encoder gives pooled vectors only). Token
	// vectors are TokenDim wide.
	Tokens   int
	TokenDim int
	// Meta is the provenance written into the feature file (modality,
	// encoder, model_sha256, preprocess, pooling, normalized); the encode
	// stage fills idmap_sha256 and mmpipe_version.
	Meta store.FeatureMeta
}

// Output receives the results of one Run: row k of each slice belongs to
// the k-th prepared input.
type Output struct {
	// Pooled holds len(batch) × Dim values.
	Pooled []float32
	// TokenStates holds len(batch) × Tokens × TokenDim values when token
	// output was requested (Options.TokenOutput), zero-padded past NTokens.
	TokenStates []float32
	NTokens     []int32
}

// Encoder turns prepared inputs into vectors. Prepare is called from many
// goroutines at once (decoding, resizing, tokenising); Run is called from
// one goroutine at a time with a batch of prepared values, so the next
// batch can be prepared while the current one runs.
type Encoder interface {
	Info() Info
	// Prepare does the per-item CPU work. An error marks the item as
	// failed (for instance an undecodable image); it does not stop the
	// stage.
	Prepare(in Input) (any, error)
	// Run encodes a batch of prepared values into out, which it resizes.
	Run(ctx context.Context, prepared []any, out *Output) error
	Close() error
}

// Fitter is implemented by encoders whose parameters depend on the corpus
// they encode (the text-hash encoder's IDF weights). The encode stage calls
// Fit once, before the first Prepare, with the input of every dataset item
// that has one (all shards see the whole corpus, so they fit the same
// parameters); Info's Meta.ModelSHA256 covers the fitted parameters.
type Fitter interface {
	Fit(ctx context.Context, inputs iter.Seq[Input]) error
}

// Options build an encoder.
type Options struct {
	// ModelDir holds model.onnx (or the vision/text files) and the
	// tokenizer, for ONNX encoders.
	ModelDir string
	// Device is "cpu" (default) or "cuda".
	Device string
	// ORTLib is the ONNX Runtime shared library path ("" = default
	// search: $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the Makefile's
	// install location).
	ORTLib string
	// Dim overrides the output width where the encoder allows it (the
	// built-in encoders' projection width).
	Dim int
	// TokenOutput asks for token-level outputs as well (PMMRec).
	TokenOutput bool
	// MaxTokens caps the token count (text) where the encoder allows it.
	MaxTokens int
	// Threads is the number of intra-op threads (0: the number of cores).
	Threads int
	// Seed fixes any random projection of the built-in encoders.
	Seed uint64
}

// Factory builds an encoder from options.
type Factory func(opts Options) (Encoder, error)

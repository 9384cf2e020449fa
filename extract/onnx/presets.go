package onnx

import (
	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/text"
	"github.com/mmpipe/mmpipe/extract/vision"
)

// Preset names.
const (
	CLIPImage = "clip-vit-b32"
	CLIPText  = "clip-vit-b32-text"
	SBERT     = "sbert-minilm"
	XLMR      = "xlm-roberta-base"
	PMMRec    = "pmmrec"
)

// Pooling methods.
const (
	// poolOutput takes the model's own pooled output (CLIP's
	// image_embeds / text_embeds: the projected class or end-of-text token).
	poolOutput = "projection"
	// poolMaskedMean averages the token states of the real tokens
	// (Sentence-BERT's mean pooling).
	poolMaskedMean = "mean"
	// poolMean averages all token states (PMMRec's image tokens).
	poolMean = "mean-all"
)

// preset describes one encoder: the model files and tensors it expects,
// its preprocessing and its pooling.
type preset struct {
	name     string
	modality string // "image" or "text"

	// files are the model file names tried in ModelDir, in order.
	files []string

	// image: the preprocessing recipe; the model input is
	// pixel_values [batch, 3, size, size] float32.
	recipe func() vision.Recipe

	// text: the tokenizer kind expected, the default and the largest
	// token count, and whether every text is padded to maxTokens (CLIP's
	// 77) rather than to the longest text of its batch.
	tokenizer     string
	maxTokens     int
	tokenMaxLimit int
	tokenDefault  int // default max tokens when token output is asked for (0: maxTokens)
	fixedLength   bool

	// outputs: the pooled output name (poolOutput) and the token-state
	// outputs accepted (the first found is used).
	pooledOutput  string
	hiddenOutputs []string
	pooling       string
	normalize     bool

	// The widths the preset expects: pooled vector, token states, and the
	// token count of image models (-1: any).
	dim, tokenDim int64
	imageTokens   int64
}

// presets are the ONNX Runtime encoders mmpipe knows.
func presets() []preset {
	// Model file names tried in the model folder, and the token-state outputs.
	visionFiles := []string{"vision_model.onnx", "model.onnx", "onnx/vision_model.onnx", "onnx/model.onnx"}
	textFiles := []string{"text_model.onnx", "model.onnx", "onnx/text_model.onnx", "onnx/model.onnx"}
	modelFiles := []string{"model.onnx", "onnx/model.onnx"}
	hiddenNames := []string{"last_hidden_state", "token_embeddings"}
	return []preset{
		{
			// openai/clip-vit-base-patch32's image tower: separate vision
			// export (image_embeds + last_hidden_state) or the combined
			// CLIPModel export.
			name: CLIPImage, modality: "image", files: visionFiles, recipe: vision.CLIP,
			pooledOutput: "image_embeds", hiddenOutputs: hiddenNames, pooling: poolOutput, normalize: true,
			dim: 512, tokenDim: 768, imageTokens: 50,
		},
		{
			name: CLIPText, modality: "text", files: textFiles,
			tokenizer: text.KindBPE, maxTokens: 77, tokenMaxLimit: 77, fixedLength: true,
			pooledOutput: "text_embeds", hiddenOutputs: hiddenNames, pooling: poolOutput, normalize: true,
			dim: 512, tokenDim: 512,
		},
		{
			// sentence-transformers/all-MiniLM-L6-v2.
			name: SBERT, modality: "text", files: modelFiles,
			tokenizer: text.KindWordPiece, maxTokens: 256, tokenMaxLimit: 512,
			hiddenOutputs: hiddenNames, pooling: poolMaskedMean, normalize: true,
			dim: 384, tokenDim: 384,
		},
		{
			// FacebookAI/xlm-roberta-base (and XLM-R based multilingual
			// Sentence-BERT models); PMMRec's text encoder takes 50 tokens.
			name: XLMR, modality: "text", files: modelFiles,
			tokenizer: text.KindUnigram, maxTokens: 512, tokenMaxLimit: 512, tokenDefault: 50,
			hiddenOutputs: hiddenNames, pooling: poolMaskedMean,
			dim: 768, tokenDim: 768,
		},
		{
			// PMMRec's image encoder: CLIP ViT-B/32's vision transformer
			// (last_hidden_state, 50 × 768, before the post-LayerNorm) on
			// PMMRec's preprocessing (squash to 224, mean = std = 0.5).
			name: PMMRec, modality: "image", files: visionFiles, recipe: vision.PMMRec,
			hiddenOutputs: hiddenNames, pooling: poolMean,
			dim: 768, tokenDim: 768, imageTokens: 50,
		},
	}
}

// Factories returns the ONNX Runtime encoders by registry name.
func Factories() map[string]extract.Factory {
	out := map[string]extract.Factory{}
	for _, p := range presets() {
		out[p.name] = func(o extract.Options) (extract.Encoder, error) { return newEncoder(p, o) }
	}
	return out
}

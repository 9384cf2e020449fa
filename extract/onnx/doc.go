// Package onnx runs mmpipe's pre-trained encoders with ONNX Runtime
// (github.com/yalue/onnxruntime_go v1.30.0, ONNX Runtime 1.30.0, C API
// 25). Factories returns the presets by registry name:
//
//   - clip-vit-b32: CLIP ViT-B/32 image tower. pixel_values [B,3,224,224]
//     (vision.CLIP: bicubic resize of the short side to 224, centre crop,
//     CLIP mean/std) → image_embeds [B,512], L2-normalised; with token
//     output also last_hidden_state (50 × 768).
//   - clip-vit-b32-text: CLIP text tower. CLIP BPE, padded to 77 tokens
//     with <|endoftext|> → text_embeds [B,512], L2-normalised.
//   - sbert-minilm: all-MiniLM-L6-v2. BERT WordPiece; input_ids,
//     attention_mask, token_type_ids → last_hidden_state, masked mean
//     pooling, L2 normalisation (384-d). Up to 256 tokens.
//   - xlm-roberta-base: XLM-R (and XLM-R based multilingual Sentence-BERT
//     exports). SentencePiece Unigram with fairseq ids → last_hidden_state,
//     masked mean pooling, not normalised (768-d); token output gives the
//     token states (50 tokens by default, PMMRec's length; --max-tokens
//     changes it). Up to 512 tokens otherwise.
//   - pmmrec: PMMRec's image encoder. CLIP's vision transformer on
//     vision.PMMRec (squash to 224×224, mean = std = 0.5) →
//     last_hidden_state (50 × 768, before the post-LayerNorm); the pooled
//     vector is the mean of the 50 token states, not normalised.
//
// # Model folders
//
// Options.ModelDir holds the model as the common Hugging Face ONNX exports
// lay it out: vision_model.onnx / text_model.onnx (separate towers, as
// Xenova's CLIP exports have them) or model.onnx (optimum's export; for
// CLIP the combined CLIPModel with both towers), also under onnx/; the
// tokenizer (tokenizer.json, vocab.txt, vocab.json + merges.txt, or
// sentencepiece.bpe.model) next to the model or in the folder above onnx/.
// ModelDir may also name the .onnx file itself. A combined CLIP export
// works for both CLIP presets: the other tower gets a constant dummy input
// (a one-token text, or one zero image per text batch, a few per cent of
// the text batch's cost) and only the asked-for embeddings are fetched. Its
// image_embeds and text_embeds come normalised from CLIPModel; the
// separate towers' do not, so the presets L2-normalise both, and the two
// layouts give the same vectors. A combined export has no token states.
//
// At load the model's inputs and outputs (names, element types, shapes,
// from ONNX Runtime) are checked against the preset; a mismatch is an
// error that lists what was expected and what the model has. Dynamic axes
// match any size; a static batch axis makes Run cut batches to it, and a
// static sequence axis fixes the padded text length. Token id inputs may
// be int64 or int32.
//
// # The ONNX Runtime library
//
// The shared library is Options.ORTLib (--ort-lib), else
// $ONNXRUNTIME_SHARED_LIBRARY_PATH, else .ort/libonnxruntime.so.1 found
// by walking up from the executable's folder (bin/mmpipe finds the module
// root's .ort/) and then from the working directory. `make ort` installs
// it there from npm onnxruntime-node@1.30.0 (npm pack, no install
// scripts). It is loaded once per process (see InitRuntime).
//
// Sessions use Options.Threads intra-op threads (default: all cores), one
// inter-op thread, sequential execution and all graph optimisations.
// --device cuda appends the CUDA execution provider; the npm library is a
// CPU build, so that fails with an error saying what CUDA needs.
package onnx

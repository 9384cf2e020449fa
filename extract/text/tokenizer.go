// Package text holds mmpipe's tokenizers, written in pure Go: BERT
// WordPiece, CLIP's byte-level BPE and SentencePiece Unigram (XLM-R). They
// load the files that the common Hugging Face exports ship: tokenizer.json
// (all three kinds), vocab.txt (WordPiece), vocab.json + merges.txt (CLIP
// BPE) and sentencepiece.bpe.model (a SentencePiece protobuf; XLM-R's
// fairseq id layout). Load picks the right one from a model folder.
//
// A Tokenizer runs the Hugging Face pipeline: added (special) tokens are
// split off the raw text, the rest is normalised, pre-tokenised into words
// and each word is split by the model; the post-processor then adds the
// special tokens of a single sequence ([CLS] … [SEP], <s> … </s>,
// <|startoftext|> … <|endoftext|>). research/deps.md §4 explains why no
// existing Go library was used: none handles all three kinds.
//
// Known differences from Hugging Face tokenizers, all in rare inputs:
// lowercasing uses Go's simple case mapping (Rust's full mapping turns "İ"
// into two runes); added tokens are matched on the raw text even when
// their "normalized" flag is set; the SentencePiece precompiled
// normaliser takes the longest rule at each position, as SentencePiece's
// C++ does, where Hugging Face looks rules up grapheme by grapheme.
package text

import (
	"fmt"
	"strings"
)

// Kinds of tokenizer model.
const (
	KindWordPiece = "wordpiece"
	KindBPE       = "bpe"
	KindUnigram   = "unigram"
)

// Encoding is one tokenised text, special tokens included.
type Encoding struct {
	IDs     []int32
	TypeIDs []int32
	// Tokens are the token strings, parallel to IDs (byte-level BPE
	// tokens are in the byte-to-unicode alphabet, as in the vocabulary).
	Tokens []string
}

// model splits one pre-tokenised word into tokens.
type model interface {
	// tokenize appends the tokens of word to dst.
	tokenize(word string, dst []token) []token
}

// token is a vocabulary entry.
type token struct {
	id  int32
	str string
}

// Tokenizer turns text into token ids. It is safe for concurrent use.
type Tokenizer struct {
	kind      string
	normalize normalizer
	pretok    preTokenizer
	model     model
	added     *addedVocab
	vocab     map[string]int32
	vocabSize int

	// post-processing of a single sequence: prefix and suffix specials
	prefix, suffix []token
	typeID         int32

	padID       int32
	padToken    string
	padExplicit bool // the padding came from tokenizer.json's padding section
	unkToken    string
	maxLength   int      // truncation length from the tokenizer files; 0 if none
	files       []string // the files it was loaded from
}

// Files are the files the tokenizer was loaded from (none when it was
// parsed from bytes).
func (t *Tokenizer) Files() []string { return append([]string(nil), t.files...) }

// Specials returns the special tokens added around a single text, in
// order, with ? for the text: "[CLS] ? [SEP]".
func (t *Tokenizer) Specials() string {
	var parts []string
	for _, s := range t.prefix {
		parts = append(parts, s.str)
	}
	parts = append(parts, "?")
	for _, s := range t.suffix {
		parts = append(parts, s.str)
	}
	return strings.Join(parts, " ")
}

// Kind is "wordpiece", "bpe" or "unigram".
func (t *Tokenizer) Kind() string { return t.kind }

// PadID is the id used to pad a batch.
func (t *Tokenizer) PadID() int32 { return t.padID }

// MaxLength is the truncation length the tokenizer files ask for (0: none).
func (t *Tokenizer) MaxLength() int { return t.maxLength }

// VocabSize is the number of ids (the largest id plus one).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// SpecialCount is the number of special tokens added around a single text.
func (t *Tokenizer) SpecialCount() int { return len(t.prefix) + len(t.suffix) }

// TokenID returns the id of a token string.
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	if id, ok := t.vocab[s]; ok {
		return id, true
	}
	if t.added != nil {
		for _, a := range t.added.tokens {
			if a.content == s {
				return a.id, true
			}
		}
	}
	return 0, false
}

// Tokens splits text into token strings, without the post-processor's
// special tokens and without truncation.
func (t *Tokenizer) Tokens(text string) []string {
	toks := t.tokenize(text)
	out := make([]string, len(toks))
	for i, tk := range toks {
		out[i] = tk.str
	}
	return out
}

// tokenize splits text into tokens, without the post-processor's special
// tokens and without truncation.
func (t *Tokenizer) tokenize(text string) []token {
	var out []token
	for i, seg := range t.added.split(text) {
		if seg.added != nil {
			out = append(out, token{seg.added.id, seg.added.content})
			continue
		}
		norm := seg.text
		if t.normalize != nil {
			norm = t.normalize(norm)
		}
		for _, w := range t.pretok(norm, i == 0) {
			out = t.model.tokenize(w, out)
		}
	}
	return out
}

// Encode tokenises text and adds the special tokens of a single sequence.
// With maxLen > 0 the text's tokens are cut (from the right) so that the
// whole encoding, special tokens included, has at most maxLen tokens.
func (t *Tokenizer) Encode(text string, maxLen int) Encoding {
	toks := t.tokenize(text)
	if maxLen > 0 {
		room := maxLen - len(t.prefix) - len(t.suffix)
		if room < 0 {
			room = 0
		}
		if len(toks) > room {
			toks = toks[:room]
		}
	}
	n := len(t.prefix) + len(toks) + len(t.suffix)
	e := Encoding{IDs: make([]int32, 0, n), TypeIDs: make([]int32, n), Tokens: make([]string, 0, n)}
	for _, part := range [][]token{t.prefix, toks, t.suffix} {
		for _, tk := range part {
			e.IDs = append(e.IDs, tk.id)
			e.Tokens = append(e.Tokens, tk.str)
		}
	}
	for i := range e.TypeIDs {
		e.TypeIDs[i] = t.typeID
	}
	return e
}

// EncodeIDs is Encode returning only the ids.
func (t *Tokenizer) EncodeIDs(text string, maxLen int) []int32 {
	return t.Encode(text, maxLen).IDs
}

// Pad writes the encodings as a padded [len(encs), length] batch into ids
// and mask (attention mask: 1 for tokens, 0 for padding); typeIDs may be
// nil. Encodings longer than length are cut. The slices must hold
// len(encs)*length values.
func (t *Tokenizer) Pad(encs []Encoding, length int, ids, mask, typeIDs []int64) {
	for r, e := range encs {
		row := r * length
		for j := 0; j < length; j++ {
			if j < len(e.IDs) {
				ids[row+j] = int64(e.IDs[j])
				mask[row+j] = 1
				if typeIDs != nil {
					typeIDs[row+j] = int64(e.TypeIDs[j])
				}
			} else {
				ids[row+j] = int64(t.padID)
				mask[row+j] = 0
				if typeIDs != nil {
					typeIDs[row+j] = 0
				}
			}
		}
	}
}

// String describes the tokenizer.
func (t *Tokenizer) String() string {
	var specials []string
	for _, s := range append(append([]token{}, t.prefix...), t.suffix...) {
		specials = append(specials, s.str)
	}
	return fmt.Sprintf("%s tokenizer, %d ids, specials [%s], pad %d", t.kind, t.vocabSize, strings.Join(specials, " "), t.padID)
}

// addedToken is a token matched in the raw text before normalisation.
type addedToken struct {
	id             int32
	content        string
	lstrip, rstrip bool
}

// addedVocab finds added tokens in raw text (leftmost, then longest match).
type addedVocab struct {
	tokens []addedToken
}

// segment is a piece of the raw text: an added token or text to tokenise.
type segment struct {
	text  string
	added *addedToken
}

// split cuts text at the added tokens it contains.
func (a *addedVocab) split(text string) []segment {
	if a == nil || len(a.tokens) == 0 {
		return []segment{{text: text}}
	}
	var out []segment
	start := 0 // start of pending plain text
	for i := 0; i < len(text); {
		best := -1
		for k := range a.tokens {
			c := a.tokens[k].content
			if c != "" && strings.HasPrefix(text[i:], c) && (best < 0 || len(c) > len(a.tokens[best].content)) {
				best = k
			}
		}
		if best < 0 {
			i++
			continue
		}
		tk := &a.tokens[best]
		plain := text[start:i]
		if tk.lstrip {
			plain = strings.TrimRightFunc(plain, isSpace)
		}
		if plain != "" {
			out = append(out, segment{text: plain})
		}
		out = append(out, segment{added: tk})
		i += len(tk.content)
		if tk.rstrip {
			rest := strings.TrimLeftFunc(text[i:], isSpace)
			i = len(text) - len(rest)
		}
		start = i
	}
	if start < len(text) {
		out = append(out, segment{text: text[start:]})
	}
	return out
}

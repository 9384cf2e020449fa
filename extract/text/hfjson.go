package text

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// hfFile is the part of a Hugging Face tokenizer.json that is used.
type hfFile struct {
	Truncation *struct {
		MaxLength int `json:"max_length"`
	} `json:"truncation"`
	Padding *struct {
		PadID    *int32 `json:"pad_id"`
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
		Lstrip  bool   `json:"lstrip"`
		Rstrip  bool   `json:"rstrip"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         json.RawMessage `json:"model"`
}

// hfModel is tokenizer.json's "model" object, for all three kinds.
type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	UnkID                   *int32          `json:"unk_id"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
	FuseUnk                 *bool           `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
}

// LoadTokenizerJSON reads a Hugging Face tokenizer.json file.
func LoadTokenizerJSON(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	t, err := ParseTokenizerJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.files = []string{path}
	return t, nil
}

// ParseTokenizerJSON builds a tokenizer from tokenizer.json contents
// (WordPiece, BPE or Unigram models; the model type is inferred where the
// file leaves it out, as bert-base-uncased's does).
func ParseTokenizerJSON(data []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if isNull(f.Model) {
		return nil, fmt.Errorf("tokenizer.json has no model")
	}
	var m hfModel
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json model: %w", err)
	}
	t := &Tokenizer{}
	var err error
	if t.normalize, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	byteLevel := false
	if t.pretok, err = parsePreTokenizer(f.PreTokenizer, &byteLevel); err != nil {
		return nil, err
	}
	added := &addedVocab{}
	for _, a := range f.AddedTokens {
		added.tokens = append(added.tokens, addedToken{id: a.ID, content: a.Content, lstrip: a.Lstrip, rstrip: a.Rstrip})
	}
	t.added = added

	kind := strings.ToLower(m.Type)
	if kind == "" {
		switch {
		case bytes.HasPrefix(bytes.TrimSpace(m.Vocab), []byte("[")):
			kind = "unigram"
		case !isNull(m.Merges):
			kind = "bpe"
		default:
			kind = "wordpiece"
		}
	}
	switch kind {
	case "wordpiece":
		err = t.buildWordPiece(&m)
	case "bpe":
		err = t.buildBPE(&m, byteLevel)
	case "unigram":
		err = t.buildUnigram(&m)
	default:
		return nil, fmt.Errorf("tokenizer.json: model type %q is not supported (WordPiece, BPE, Unigram are)", m.Type)
	}
	if err != nil {
		return nil, err
	}
	for _, a := range added.tokens {
		t.vocabSize = max(t.vocabSize, int(a.id)+1)
	}
	if err := t.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if f.Truncation != nil {
		t.maxLength = f.Truncation.MaxLength
	}
	t.setPad("")
	if f.Padding != nil {
		if f.Padding.PadID != nil {
			t.padID = *f.Padding.PadID
		}
		t.padToken = f.Padding.PadToken
		t.padExplicit = true
	}
	return t, nil
}

// setPad picks the padding id: the named token, else [PAD] / <pad>, else
// CLIP's <|endoftext|>, else 0.
func (t *Tokenizer) setPad(name string) {
	for _, cand := range []string{name, "[PAD]", "<pad>", "<|endoftext|>"} {
		if cand == "" {
			continue
		}
		if id, ok := t.TokenID(cand); ok {
			t.padID, t.padToken = id, cand
			return
		}
	}
	t.padID, t.padToken = 0, ""
}

func isNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || bytes.Equal(r, []byte("null"))
}

func (t *Tokenizer) buildWordPiece(m *hfModel) error {
	vocab := map[string]int32{}
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return fmt.Errorf("tokenizer.json WordPiece vocab: %w", err)
	}
	wp := &wordPiece{vocab: vocab, prefix: "##", maxChars: 100}
	if m.ContinuingSubwordPrefix != nil {
		wp.prefix = *m.ContinuingSubwordPrefix
	}
	if m.MaxInputCharsPerWord != nil {
		wp.maxChars = *m.MaxInputCharsPerWord
	}
	unk := "[UNK]"
	if m.UnkToken != nil {
		unk = *m.UnkToken
	}
	id, ok := vocab[unk]
	if !ok {
		return fmt.Errorf("tokenizer.json WordPiece: unknown token %q is not in the vocabulary", unk)
	}
	wp.unk = token{id, unk}
	t.kind, t.model, t.vocab, t.unkToken = KindWordPiece, wp, vocab, unk
	t.vocabSize = maxID(vocab) + 1
	return nil
}

func (t *Tokenizer) buildBPE(m *hfModel, byteLevel bool) error {
	vocab := map[string]int32{}
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return fmt.Errorf("tokenizer.json BPE vocab: %w", err)
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return err
	}
	var unk *token
	if m.UnkToken != nil {
		if id, ok := vocab[*m.UnkToken]; ok {
			unk = &token{id, *m.UnkToken}
			t.unkToken = *m.UnkToken
		}
	}
	if m.ByteFallback {
		return fmt.Errorf("tokenizer.json BPE: byte_fallback is not supported")
	}
	suffix, prefix := "", ""
	if m.EndOfWordSuffix != nil {
		suffix = *m.EndOfWordSuffix
	}
	if m.ContinuingSubwordPrefix != nil {
		prefix = *m.ContinuingSubwordPrefix
	}
	fuse := m.FuseUnk != nil && *m.FuseUnk
	t.kind, t.vocab = KindBPE, vocab
	t.model = newBPE(vocab, merges, suffix, prefix, byteLevel, unk, fuse)
	t.vocabSize = maxID(vocab) + 1
	return nil
}

// parseMerges reads merges as "a b" strings or as [a, b] pairs.
func parseMerges(raw json.RawMessage) ([]pair, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([]pair, 0, len(strs))
		for _, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer.json BPE merge %q has no space", s)
			}
			out = append(out, pair{a, b})
		}
		return out, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("tokenizer.json BPE merges: %w", err)
	}
	out := make([]pair, len(pairs))
	for i, p := range pairs {
		out[i] = pair{p[0], p[1]}
	}
	return out, nil
}

func (t *Tokenizer) buildUnigram(m *hfModel) error {
	var entries [][2]json.RawMessage
	if err := json.Unmarshal(m.Vocab, &entries); err != nil {
		return fmt.Errorf("tokenizer.json Unigram vocab: %w", err)
	}
	strs := make([]string, len(entries))
	scores := make([]float64, len(entries))
	usable := make([]bool, len(entries))
	vocab := make(map[string]int32, len(entries))
	for i, e := range entries {
		if err := json.Unmarshal(e[0], &strs[i]); err != nil {
			return fmt.Errorf("tokenizer.json Unigram vocab entry %d: %w", i, err)
		}
		if err := json.Unmarshal(e[1], &scores[i]); err != nil {
			return fmt.Errorf("tokenizer.json Unigram vocab entry %d: %w", i, err)
		}
		usable[i] = true
		if _, dup := vocab[strs[i]]; !dup {
			vocab[strs[i]] = int32(i)
		}
	}
	if m.UnkID == nil || int(*m.UnkID) >= len(strs) || *m.UnkID < 0 {
		return fmt.Errorf("tokenizer.json Unigram: missing or invalid unk_id")
	}
	if m.ByteFallback {
		return fmt.Errorf("tokenizer.json Unigram: byte_fallback is not supported")
	}
	fuse := m.FuseUnk == nil || *m.FuseUnk
	u := newUnigram(strs, scores, usable, *m.UnkID, fuse)
	t.kind, t.model, t.vocab, t.unkToken = KindUnigram, u, vocab, strs[*m.UnkID]
	t.vocabSize = len(strs)
	return nil
}

func maxID(v map[string]int32) int {
	m := -1
	for _, id := range v {
		m = max(m, int(id))
	}
	return m
}

// typed reads a component's "type".
func typed(raw json.RawMessage) (string, error) {
	var h struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", err
	}
	return h.Type, nil
}

// hfPattern is a Replace/Split pattern: a literal string or a regex.
type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typed(raw)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json normalizer: %w", err)
	}
	switch typ {
	case "Sequence":
		var s struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("tokenizer.json normalizer Sequence: %w", err)
		}
		var ns []normalizer
		for _, r := range s.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, err
			}
			ns = append(ns, n)
		}
		return chain(ns...), nil
	case "BertNormalizer":
		c := struct {
			CleanText          *bool `json:"clean_text"`
			HandleChineseChars *bool `json:"handle_chinese_chars"`
			StripAccents       *bool `json:"strip_accents"`
			Lowercase          *bool `json:"lowercase"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json BertNormalizer: %w", err)
		}
		lower := c.Lowercase == nil || *c.Lowercase
		strip := lower
		if c.StripAccents != nil {
			strip = *c.StripAccents
		}
		return bertNormalizer(c.CleanText == nil || *c.CleanText, c.HandleChineseChars == nil || *c.HandleChineseChars, strip, lower), nil
	case "NFC":
		return unicodeNormalizer(norm.NFC), nil
	case "NFD":
		return unicodeNormalizer(norm.NFD), nil
	case "NFKC":
		return unicodeNormalizer(norm.NFKC), nil
	case "NFKD":
		return unicodeNormalizer(norm.NFKD), nil
	case "Lowercase":
		return lowercase, nil
	case "StripAccents":
		return stripAccentsNormalizer, nil
	case "Strip":
		c := struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Strip: %w", err)
		}
		return stripNormalizer(c.Left, c.Right), nil
	case "Prepend":
		c := struct {
			Prepend string `json:"prepend"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Prepend: %w", err)
		}
		return func(s string) string {
			if s == "" {
				return s
			}
			return c.Prepend + s
		}, nil
	case "Replace":
		c := struct {
			Pattern hfPattern `json:"pattern"`
			Content string    `json:"content"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Replace: %w", err)
		}
		switch {
		case c.Pattern.Regex != nil:
			return replaceNormalizer(*c.Pattern.Regex, true, c.Content)
		case c.Pattern.String != nil:
			return replaceNormalizer(*c.Pattern.String, false, c.Content)
		}
		return nil, fmt.Errorf("tokenizer.json Replace: no pattern")
	case "Precompiled":
		c := struct {
			Charsmap *string `json:"precompiled_charsmap"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Precompiled: %w", err)
		}
		return precompiledNormalizer(c.Charsmap)
	default:
		return nil, fmt.Errorf("tokenizer.json: normalizer %q is not supported", typ)
	}
}

// precompiledNormalizer decodes a base64 charsmap. A missing or empty one
// falls back to NFKC, which is what SentencePiece's default nmt_nfkc
// rules are built from (they add whitespace and control-character rules).
func precompiledNormalizer(b64 *string) (normalizer, error) {
	if b64 == nil || *b64 == "" {
		return unicodeNormalizer(norm.NFKC), nil
	}
	blob, err := base64.StdEncoding.DecodeString(*b64)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json Precompiled charsmap: %w", err)
	}
	if len(blob) <= 4 {
		return unicodeNormalizer(norm.NFKC), nil
	}
	cm, err := parseCharsMap(blob)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return cm.normalize, nil
}

func parsePreTokenizer(raw json.RawMessage, byteLevel *bool) (preTokenizer, error) {
	if isNull(raw) {
		return noSplit, nil
	}
	typ, err := typed(raw)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json pre_tokenizer: %w", err)
	}
	behavior := func(def string) (string, error) {
		c := struct {
			Behavior string `json:"behavior"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return "", err
		}
		if c.Behavior == "" {
			return def, nil
		}
		return c.Behavior, nil
	}
	switch typ {
	case "Sequence":
		var s struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("tokenizer.json pre_tokenizer Sequence: %w", err)
		}
		var ps []preTokenizer
		for _, r := range s.PreTokenizers {
			p, err := parsePreTokenizer(r, byteLevel)
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
		if len(ps) == 0 {
			return noSplit, nil
		}
		return seqPreTokenizer(ps...), nil
	case "BertPreTokenizer":
		return bertPreTokenize, nil
	case "Whitespace":
		return whitespacePreTokenize, nil
	case "WhitespaceSplit":
		return whitespaceSplit, nil
	case "Metaspace":
		c := struct {
			Replacement    string  `json:"replacement"`
			AddPrefixSpace *bool   `json:"add_prefix_space"`
			PrependScheme  *string `json:"prepend_scheme"`
			Split          *bool   `json:"split"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Metaspace: %w", err)
		}
		repl := '▁'
		if c.Replacement != "" {
			repl = []rune(c.Replacement)[0]
		}
		scheme := prependAlways
		switch {
		case c.PrependScheme != nil:
			scheme = *c.PrependScheme
		case c.AddPrefixSpace != nil && !*c.AddPrefixSpace:
			scheme = prependNever
		}
		if scheme != prependAlways && scheme != prependFirst && scheme != prependNever {
			return nil, fmt.Errorf("tokenizer.json Metaspace: unknown prepend_scheme %q", scheme)
		}
		return metaspace(repl, scheme, c.Split == nil || *c.Split), nil
	case "Split":
		c := struct {
			Pattern hfPattern `json:"pattern"`
			Invert  bool      `json:"invert"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Split: %w", err)
		}
		b, err := behavior(behaviorIsolated)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json Split: %w", err)
		}
		switch {
		case c.Pattern.Regex != nil:
			return regexSplit(*c.Pattern.Regex, b, c.Invert)
		case c.Pattern.String != nil:
			return stringSplit(*c.Pattern.String, b, c.Invert)
		}
		return nil, fmt.Errorf("tokenizer.json Split: no pattern")
	case "Punctuation":
		b, err := behavior(behaviorIsolated)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json Punctuation: %w", err)
		}
		return runeSplit(isBertPunct, b), nil
	case "Digits":
		c := struct {
			Individual bool `json:"individual_digits"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json Digits: %w", err)
		}
		b := behaviorContiguous
		if c.Individual {
			b = behaviorIsolated
		}
		return runeSplit(func(r rune) bool { return r >= '0' && r <= '9' }, b), nil
	case "ByteLevel":
		c := struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("tokenizer.json ByteLevel: %w", err)
		}
		if c.UseRegex == nil || *c.UseRegex {
			return nil, fmt.Errorf("tokenizer.json: ByteLevel pre-tokenizer with use_regex (GPT-2's pattern) is not supported; CLIP's Split + ByteLevel(use_regex=false) is")
		}
		*byteLevel = true
		if c.AddPrefixSpace {
			return func(s string, _ bool) []string {
				if !strings.HasPrefix(s, " ") {
					s = " " + s
				}
				return []string{s}
			}, nil
		}
		return noSplit, nil
	default:
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer %q is not supported", typ)
	}
}

// parsePostProcessor reads the special tokens around a single sequence.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	typ, err := typed(raw)
	if err != nil {
		return fmt.Errorf("tokenizer.json post_processor: %w", err)
	}
	special := func(name string, id int32) token { return token{id, name} }
	switch typ {
	case "Sequence":
		var s struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("tokenizer.json post_processor Sequence: %w", err)
		}
		for _, p := range s.Processors {
			if err := t.parsePostProcessor(p); err != nil {
				return err
			}
		}
		return nil
	case "ByteLevel":
		return nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("tokenizer.json %s: %w", typ, err)
		}
		var sepName, clsName string
		var sepID, clsID int32
		for _, x := range []struct {
			raw  [2]json.RawMessage
			name *string
			id   *int32
		}{{c.Sep, &sepName, &sepID}, {c.Cls, &clsName, &clsID}} {
			if err := json.Unmarshal(x.raw[0], x.name); err != nil {
				return fmt.Errorf("tokenizer.json %s: %w", typ, err)
			}
			if err := json.Unmarshal(x.raw[1], x.id); err != nil {
				return fmt.Errorf("tokenizer.json %s: %w", typ, err)
			}
		}
		t.prefix = []token{special(clsName, clsID)}
		t.suffix = []token{special(sepName, sepID)}
		return nil
	case "TemplateProcessing":
		var c struct {
			Single []struct {
				SpecialToken *struct {
					ID     string `json:"id"`
					TypeID int32  `json:"type_id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID     string `json:"id"`
					TypeID int32  `json:"type_id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				ID     string   `json:"id"`
				IDs    []int32  `json:"ids"`
				Tokens []string `json:"tokens"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("tokenizer.json TemplateProcessing: %w", err)
		}
		t.prefix, t.suffix = nil, nil
		seen := false
		for _, piece := range c.Single {
			switch {
			case piece.Sequence != nil:
				seen = true
				t.typeID = piece.Sequence.TypeID
			case piece.SpecialToken != nil:
				st, ok := c.SpecialTokens[piece.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("tokenizer.json TemplateProcessing: special token %q is not defined", piece.SpecialToken.ID)
				}
				for i, id := range st.IDs {
					name := piece.SpecialToken.ID
					if i < len(st.Tokens) {
						name = st.Tokens[i]
					}
					if seen {
						t.suffix = append(t.suffix, special(name, id))
					} else {
						t.prefix = append(t.prefix, special(name, id))
					}
				}
			}
		}
		return nil
	default:
		return fmt.Errorf("tokenizer.json: post_processor %q is not supported", typ)
	}
}

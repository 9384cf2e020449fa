package text

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Load reads the tokenizer of a model folder, trying in order:
// tokenizer.json; vocab.txt (BERT WordPiece); vocab.json with merges.txt
// (CLIP BPE); sentencepiece.bpe.model (XLM-R, fairseq ids). A
// tokenizer_config.json next to vocab.txt or vocab.json supplies
// do_lower_case, strip_accents, tokenize_chinese_chars, pad_token and
// model_max_length where present.
func Load(dir string) (*Tokenizer, error) {
	has := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && !st.IsDir()
	}
	cfg, err := readTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	var t *Tokenizer
	switch {
	case has("tokenizer.json"):
		t, err = LoadTokenizerJSON(filepath.Join(dir, "tokenizer.json"))
		if err == nil && cfg.PadToken != "" && !t.padExplicit {
			// tokenizer.json's own padding section wins; otherwise the config's pad token.
			if id, ok := t.TokenID(cfg.PadToken); ok {
				t.padID, t.padToken = id, cfg.PadToken
			}
		}
	case has("vocab.txt"):
		opts := WordPieceOptions{Lowercase: true, ChineseChars: true}
		if cfg.DoLowerCase != nil {
			opts.Lowercase = *cfg.DoLowerCase
		}
		opts.StripAccents = cfg.StripAccents
		if cfg.TokenizeChineseChars != nil {
			opts.ChineseChars = *cfg.TokenizeChineseChars
		}
		t, err = LoadWordPieceVocab(filepath.Join(dir, "vocab.txt"), opts)
		if err == nil && cfg.PadToken != "" {
			t.setPad(cfg.PadToken)
		}
	case has("vocab.json") && has("merges.txt"):
		t, err = LoadCLIPBPE(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
		if err == nil && cfg.PadToken != "" {
			t.setPad(cfg.PadToken)
		}
	case has("sentencepiece.bpe.model"):
		t, err = LoadSentencePiece(filepath.Join(dir, "sentencepiece.bpe.model"), true)
	default:
		return nil, fmt.Errorf("no tokenizer in %s: want tokenizer.json, vocab.txt, vocab.json + merges.txt or sentencepiece.bpe.model", dir)
	}
	if err != nil {
		return nil, err
	}
	if t.maxLength == 0 && cfg.ModelMaxLength > 0 && cfg.ModelMaxLength < 1e6 {
		t.maxLength = int(cfg.ModelMaxLength)
	}
	return t, nil
}

// tokenizerConfig is the part of tokenizer_config.json that is used.
type tokenizerConfig struct {
	DoLowerCase          *bool           `json:"do_lower_case"`
	StripAccents         *bool           `json:"strip_accents"`
	TokenizeChineseChars *bool           `json:"tokenize_chinese_chars"`
	ModelMaxLength       float64         `json:"model_max_length"`
	PadToken             string          `json:"-"`
	RawPad               json.RawMessage `json:"pad_token"`
}

func readTokenizerConfig(path string) (tokenizerConfig, error) {
	var c tokenizerConfig
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read tokenizer config: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("parse %s: %w", path, err)
	}
	// pad_token is a string or an AddedToken object {"content": ...}.
	if !isNull(c.RawPad) {
		var s string
		if json.Unmarshal(c.RawPad, &s) == nil {
			c.PadToken = s
		} else {
			var o struct {
				Content string `json:"content"`
			}
			if json.Unmarshal(c.RawPad, &o) == nil {
				c.PadToken = o.Content
			}
		}
	}
	return c, nil
}

// WordPieceOptions configure a BERT tokenizer read from vocab.txt.
type WordPieceOptions struct {
	Lowercase bool
	// StripAccents nil follows Lowercase (BERT's default).
	StripAccents *bool
	ChineseChars bool
}

// LoadWordPieceVocab reads a BERT vocab.txt (one token per line, the line
// number is the id) and builds BERT's tokenizer: BasicTokenizer cleaning
// and splitting, WordPiece with "##", [CLS] … [SEP].
func LoadWordPieceVocab(path string, opts WordPieceOptions) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read vocab: %w", err)
	}
	defer f.Close()
	vocab := map[string]int32{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var id int32
	for sc.Scan() {
		tok := strings.TrimRight(sc.Text(), "\r")
		if _, dup := vocab[tok]; !dup {
			vocab[tok] = id
		}
		id++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read vocab %s: %w", path, err)
	}
	t, err := newBERT(vocab, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.files = []string{path}
	return t, nil
}

// newBERT builds BERT's tokenizer from a vocabulary map.
func newBERT(vocab map[string]int32, opts WordPieceOptions) (*Tokenizer, error) {
	need := func(s string) (token, error) {
		id, ok := vocab[s]
		if !ok {
			return token{}, fmt.Errorf("WordPiece vocabulary has no %s token", s)
		}
		return token{id, s}, nil
	}
	unk, err := need("[UNK]")
	if err != nil {
		return nil, err
	}
	cls, err := need("[CLS]")
	if err != nil {
		return nil, err
	}
	sep, err := need("[SEP]")
	if err != nil {
		return nil, err
	}
	strip := opts.Lowercase
	if opts.StripAccents != nil {
		strip = *opts.StripAccents
	}
	added := &addedVocab{}
	for _, s := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} {
		if id, ok := vocab[s]; ok {
			added.tokens = append(added.tokens, addedToken{id: id, content: s})
		}
	}
	t := &Tokenizer{
		kind:      KindWordPiece,
		normalize: bertNormalizer(true, opts.ChineseChars, strip, opts.Lowercase),
		pretok:    bertPreTokenize,
		model:     &wordPiece{vocab: vocab, unk: unk, prefix: "##", maxChars: 100},
		added:     added,
		vocab:     vocab,
		vocabSize: maxID(vocab) + 1,
		prefix:    []token{cls},
		suffix:    []token{sep},
		unkToken:  unk.str,
	}
	t.setPad("")
	return t, nil
}

// CLIP's special tokens.
const (
	clipStart = "<|startoftext|>"
	clipEnd   = "<|endoftext|>"
)

// LoadCLIPBPE reads CLIP's vocab.json and merges.txt (first line
// "#version: …" skipped) and builds CLIP's tokenizer: NFC, whitespace runs
// to one space, lowercase; CLIP's regex pre-tokenizer; byte-level BPE
// with "</w>" on the last symbol of each word; <|startoftext|> …
// <|endoftext|>; padding with <|endoftext|>.
func LoadCLIPBPE(vocabPath, mergesPath string) (*Tokenizer, error) {
	data, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("read vocab: %w", err)
	}
	vocab := map[string]int32{}
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("parse %s: %w", vocabPath, err)
	}
	mf, err := os.Open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("read merges: %w", err)
	}
	defer mf.Close()
	var merges []pair
	sc := bufio.NewScanner(mf)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for line := 0; sc.Scan(); line++ {
		s := strings.TrimRight(sc.Text(), "\r")
		if line == 0 && strings.HasPrefix(s, "#version") || s == "" {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("%s line %d: merge %q has no space", mergesPath, line+1, s)
		}
		merges = append(merges, pair{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read merges %s: %w", mergesPath, err)
	}
	start, ok1 := vocab[clipStart]
	end, ok2 := vocab[clipEnd]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s lacks %s or %s", vocabPath, clipStart, clipEnd)
	}
	ws, err := replaceNormalizer(`\s+`, true, " ")
	if err != nil {
		return nil, err
	}
	unk := &token{end, clipEnd}
	t := &Tokenizer{
		kind:      KindBPE,
		normalize: chain(unicodeNormalizer(norm.NFC), ws, lowercase),
		pretok:    clipSplit,
		model:     newBPE(vocab, merges, "</w>", "", true, unk, false),
		added:     &addedVocab{tokens: []addedToken{{id: start, content: clipStart}, {id: end, content: clipEnd}}},
		vocab:     vocab,
		vocabSize: maxID(vocab) + 1,
		prefix:    []token{{start, clipStart}},
		suffix:    []token{{end, clipEnd}},
		unkToken:  clipEnd,
		maxLength: 77,
		files:     []string{vocabPath, mergesPath},
	}
	t.padID, t.padToken = end, clipEnd
	return t, nil
}

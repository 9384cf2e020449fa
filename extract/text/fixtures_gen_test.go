package text

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The tokenizer fixtures in testdata/tokenizers are written by
// TestRegenerateFixtures from the small vocabularies below:
//
//	go test ./extract/text -run TestRegenerateFixtures -regen-fixtures
//
// Regenerating needs Debian's sentencepiece package (spm_train), which
// compiles rules.tsv into a precompiled charsmap; the tests themselves
// need nothing but the committed files.
var regenFixtures = flag.Bool("regen-fixtures", false, "rewrite testdata/tokenizers (needs spm_train)")

// fixtureDir is where the tokenizer fixtures live.
const fixtureDir = "../../testdata/tokenizers"

// wpVocab is the WordPiece fixture's vocabulary; the id is the index.
var wpVocab = []string{
	"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", // 0-4
	"the", "cafe", "un", "##aff", "##able", "##s", // 5-10
	"!", ",", ".", "hello", "world", // 11-15
	"中", "国", "a", "##b", "##c", // 16-20
	"run", "##ning", "'", "t", "don", "##n", "hell", "##o", // 21-28
	"The", // 29: only reachable when not lowercasing
}

// clipMerges are the CLIP fixture's merges, in rank order. The
// vocabulary follows CLIP's layout: the 256 byte symbols in
// bytes_to_unicode order (ids 0-255), the same with "</w>" (256-511), one
// id per merge result (512 + rank), then <|startoftext|> and
// <|endoftext|>.
var clipMerges = []string{
	"h e", "l l", "ll o</w>", "he llo</w>", // 512-515
	"p h", "o t", "ot o</w>", "ph oto</w>", // 516-519
	"a t</w>", "c at</w>", "' s</w>", // 520-522
	"w o", "wo r", "l d</w>", "wor ld</w>", // 523-526
}

// unigramPieces are the XLM-R-style fixture's pieces after the four
// fairseq specials (ids 4...), with their log-probabilities; <mask> comes
// last (id 27). "▁hello" scores below "▁hel" + "lo", so Viterbi and a
// greedy longest match disagree.
var unigramPieces = []struct {
	piece string
	score float64
}{
	{"▁", -3}, {"▁hel", -2}, {"lo", -2}, {"▁hello", -5}, // 4-7
	{"▁world", -2.5}, {"▁wor", -3}, {"ld", -3}, {",", -2}, {"!", -2}, // 8-12
	{"▁h", -4}, {"e", -3}, {"l", -3}, {"o", -3}, {"▁a", -2}, {"b", -3}, {"c", -3}, {"1", -3}, // 13-20
	{"fi", -2.5}, {"▁fi", -2}, {"ne", -2.5}, {"▁café", -3}, {"...", -2}, {"▁...", -2.5}, // 21-26
}

// unigramRules are the normalisation rules compiled into the fixture's
// precompiled charsmap (SentencePiece's TSV: source code points, target
// code points, in hex).
const unigramRules = "FB01\t66 69\n" + // ﬁ → fi
	"FF48\t68\nFF45\t65\nFF4C\t6C\nFF4F\t6F\n" + // fullwidth h e l o
	"2026\t2E 2E 2E\n" + // … → ...
	"3000\t20\nA0\t20\n9\t20\n" + // ideographic space, NBSP, tab → space
	"65 301\tE9\n" + // e + combining acute → é (a two-code-point rule)
	"200B\t\n" // zero-width space removed

func TestRegenerateFixtures(t *testing.T) {
	if !*regenFixtures {
		t.Skip("fixtures are committed; pass -regen-fixtures to rewrite them")
	}
	if err := writeWordPieceFixture(filepath.Join(fixtureDir, "wordpiece")); err != nil {
		t.Fatal(err)
	}
	if err := writeCLIPFixture(filepath.Join(fixtureDir, "clip")); err != nil {
		t.Fatal(err)
	}
	charsmap, err := compileRules(t.TempDir(), unigramRules)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeUnigramFixture(filepath.Join(fixtureDir, "xlmr"), charsmap); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func addedJSON(id int, content string, lstrip bool) map[string]any {
	return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": lstrip,
		"rstrip": false, "normalized": false, "special": true}
}

func writeWordPieceFixture(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(wpVocab, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	vocab := map[string]int{}
	for i, s := range wpVocab {
		vocab[s] = i
	}
	var added []any
	for i := 0; i < 5; i++ {
		added = append(added, addedJSON(i, wpVocab[i], false))
	}
	// Like bert-base-uncased's tokenizer.json: no model "type" key.
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer":    map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": nil, "lowercase": true},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}}},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{2}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{3}, "tokens": []string{"[SEP]"}}}},
		"decoder": map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model":   map[string]any{"unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
	}
	return writeJSON(filepath.Join(dir, "tokenizer.json"), tj)
}

func writeCLIPFixture(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b2r := byteToRune()
	vocab := map[string]int{}
	for i, b := range byteOrder() {
		vocab[string(b2r[b])] = i
		vocab[string(b2r[b])+"</w>"] = 256 + i
	}
	for i, m := range clipMerges {
		a, b, _ := strings.Cut(m, " ")
		vocab[a+b] = 512 + i
	}
	start, end := 512+len(clipMerges), 513+len(clipMerges)
	vocab[clipStart], vocab[clipEnd] = start, end
	if err := writeJSON(filepath.Join(dir, "vocab.json"), vocab); err != nil {
		return err
	}
	merges := "#version: 0.2\n" + strings.Join(clipMerges, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(merges), 0o644); err != nil {
		return err
	}
	// The structure of openai/clip-vit-base-patch32's tokenizer.json.
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []any{addedJSON(start, clipStart, false), addedJSON(end, clipEnd, false)},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFC"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": `\s+`}, "content": " "},
			map[string]any{"type": "Lowercase"}}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": clipPatternWithSpecials}, "behavior": "Removed", "invert": true},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}}},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{clipEnd, end}, "cls": []any{clipStart, start},
			"trim_offsets": false, "add_prefix_space": false},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": clipEnd, "continuing_subword_prefix": "",
			"end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": clipMerges},
	}
	return writeJSON(filepath.Join(dir, "tokenizer.json"), tj)
}

// compileRules runs spm_train on a throw-away corpus to have
// SentencePiece compile the rules into a precompiled charsmap.
func compileRules(tmp, rules string) ([]byte, error) {
	if _, err := exec.LookPath("spm_train"); err != nil {
		return nil, fmt.Errorf("spm_train not found (apt-get install sentencepiece): %w", err)
	}
	tsv := filepath.Join(tmp, "rules.tsv")
	corpus := filepath.Join(tmp, "corpus.txt")
	if err := os.WriteFile(tsv, []byte(rules), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(corpus, []byte(strings.Repeat("hello world fine cafe abc\n", 50)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("spm_train", "--input="+corpus, "--model_prefix="+filepath.Join(tmp, "rules"),
		"--vocab_size=20", "--hard_vocab_limit=false", "--model_type=unigram", "--normalization_rule_tsv="+tsv)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("spm_train: %w\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(tmp, "rules.model"))
	if err != nil {
		return nil, err
	}
	m, err := parseSPModel(data)
	if err != nil {
		return nil, err
	}
	if len(m.charsmap) == 0 {
		return nil, fmt.Errorf("spm_train wrote no charsmap")
	}
	return m.charsmap, nil
}

func writeUnigramFixture(dir string, charsmap []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.tsv"), []byte(unigramRules), 0o644); err != nil {
		return err
	}
	// sentencepiece.bpe.model: SentencePiece ids <unk>=0 <s>=1 </s>=2, then the pieces.
	var pieces []byte
	piece := func(s string, score float64, typ int) {
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.BytesType)
		p = protowire.AppendString(p, s)
		p = protowire.AppendTag(p, 2, protowire.Fixed32Type)
		p = protowire.AppendFixed32(p, math.Float32bits(float32(score)))
		p = protowire.AppendTag(p, 3, protowire.VarintType)
		p = protowire.AppendVarint(p, uint64(typ))
		pieces = protowire.AppendTag(pieces, 1, protowire.BytesType)
		pieces = protowire.AppendBytes(pieces, p)
	}
	piece("<unk>", 0, spUnknown)
	piece("<s>", 0, spControl)
	piece("</s>", 0, spControl)
	for _, p := range unigramPieces {
		piece(p.piece, p.score, spNormal)
	}
	var trainer []byte
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{3, 1}, {40, 0}, {41, 1}, {42, 2}, {43, -1}} {
		trainer = protowire.AppendTag(trainer, f.num, protowire.VarintType)
		trainer = protowire.AppendVarint(trainer, uint64(f.v))
	}
	var normSpec []byte
	normSpec = protowire.AppendTag(normSpec, 1, protowire.BytesType)
	normSpec = protowire.AppendString(normSpec, "user_defined")
	normSpec = protowire.AppendTag(normSpec, 2, protowire.BytesType)
	normSpec = protowire.AppendBytes(normSpec, charsmap)
	for _, num := range []protowire.Number{3, 4, 5} {
		normSpec = protowire.AppendTag(normSpec, num, protowire.VarintType)
		normSpec = protowire.AppendVarint(normSpec, 1)
	}
	model := append([]byte(nil), pieces...)
	model = protowire.AppendTag(model, 2, protowire.BytesType)
	model = protowire.AppendBytes(model, trainer)
	model = protowire.AppendTag(model, 3, protowire.BytesType)
	model = protowire.AppendBytes(model, normSpec)
	if err := os.WriteFile(filepath.Join(dir, "sentencepiece.bpe.model"), model, 0o644); err != nil {
		return err
	}

	// tokenizer.json with FacebookAI/xlm-roberta-base's structure.
	vocab := []any{[]any{"<s>", 0.0}, []any{"<pad>", 0.0}, []any{"</s>", 0.0}, []any{"<unk>", 0.0}}
	for _, p := range unigramPieces {
		vocab = append(vocab, []any{p.piece, p.score})
	}
	mask := len(vocab)
	vocab = append(vocab, []any{"<mask>", 0.0})
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []any{addedJSON(0, "<s>", false), addedJSON(1, "<pad>", false), addedJSON(2, "</s>", false),
			addedJSON(3, "<unk>", false), addedJSON(mask, "<mask>", true)},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString(charsmap)},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " {2,}"}, "content": " "}}},
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true, "prepend_scheme": "always"},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"special_tokens": map[string]any{
				"<s>":  map[string]any{"id": "<s>", "ids": []int{0}, "tokens": []string{"<s>"}},
				"</s>": map[string]any{"id": "</s>", "ids": []int{2}, "tokens": []string{"</s>"}}}},
		"decoder": map[string]any{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true, "prepend_scheme": "always"},
		"model":   map[string]any{"type": "Unigram", "unk_id": 3, "vocab": vocab},
	}
	return writeJSON(filepath.Join(dir, "tokenizer.json"), tj)
}

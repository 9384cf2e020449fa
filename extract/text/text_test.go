package text

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The expected ids below were worked out by hand from the fixture
// vocabularies in fixtures_gen_test.go; the comments show the steps.

type idCase struct {
	name string
	text string
	max  int
	want []int32
}

func checkIDs(t *testing.T, tk *Tokenizer, cases []idCase) {
	t.Helper()
	for _, c := range cases {
		e := tk.Encode(c.text, c.max)
		if !reflect.DeepEqual(e.IDs, c.want) {
			t.Errorf("%s: Encode(%q) = %v %q, want %v", c.name, c.text, e.IDs, e.Tokens, c.want)
		}
		if len(e.TypeIDs) != len(e.IDs) || len(e.Tokens) != len(e.IDs) {
			t.Errorf("%s: %d ids, %d type ids, %d tokens", c.name, len(e.IDs), len(e.TypeIDs), len(e.Tokens))
		}
	}
}

func fixture(parts ...string) string {
	return filepath.Join(append([]string{fixtureDir}, parts...)...)
}

var wordPieceCases = []idCase{
	// lowercase; "," and "!" are words of their own: [CLS] hello , world ! [SEP]
	{"punctuation", "Hello, World!", 0, []int32{2, 14, 12, 15, 11, 3}},
	// un ##aff ##able; "café" loses its accent: cafe
	{"wordpiece+accents", "unaffable café", 0, []int32{2, 7, 8, 9, 6, 3}},
	// CJK characters are split one by one; 人 is not in the vocabulary
	{"cjk", "中国人", 0, []int32{2, 16, 17, 1, 3}},
	// don ' t
	{"apostrophe", "don't", 0, []int32{2, 25, 23, 24, 3}},
	{"continuation", "running", 0, []int32{2, 21, 22, 3}},
	// longest match first: hello, not hell ##o; then ##o
	{"longest", "hello helloo", 0, []int32{2, 14, 14, 28, 3}},
	// a ##b ##c then x matches nothing: the whole word is [UNK]
	{"unknown piece", "abcx abc", 0, []int32{2, 1, 18, 19, 20, 3}},
	// NUL and U+200B (format) are dropped, tab and NBSP are spaces
	{"cleanup", "ab\x00c\u200b\tthe\u00a0the", 0, []int32{2, 18, 19, 20, 5, 5, 3}},
	{"too long", strings.Repeat("a", 101), 0, []int32{2, 1, 3}},
	{"special tokens in text", "[CLS] the [MASK]", 0, []int32{2, 2, 5, 4, 3}},
	{"truncation", "the the the the", 4, []int32{2, 5, 5, 3}},
	{"empty", "", 0, []int32{2, 3}},
	// invalid UTF-8 decodes to U+FFFD, which cleaning drops
	{"invalid utf8", "\x91the", 0, []int32{2, 5, 3}},
}

func TestWordPieceVocabTxt(t *testing.T) {
	tk, err := Load(fixture("wordpiece-vocab"))
	if err == nil {
		t.Fatalf("Load of a missing folder: %v", tk)
	}
	tk, err = LoadWordPieceVocab(fixture("wordpiece", "vocab.txt"), WordPieceOptions{Lowercase: true, ChineseChars: true})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Kind() != KindWordPiece || tk.PadID() != 0 || tk.VocabSize() != len(wpVocab) {
		t.Fatalf("got %v", tk)
	}
	checkIDs(t, tk, wordPieceCases)
}

func TestWordPieceTokenizerJSON(t *testing.T) {
	tk, err := Load(fixture("wordpiece"))
	if err != nil {
		t.Fatal(err)
	}
	checkIDs(t, tk, wordPieceCases)
	if got := tk.Tokens("unaffable"); !reflect.DeepEqual(got, []string{"un", "##aff", "##able"}) {
		t.Errorf("tokens %q", got)
	}
}

func TestWordPieceCased(t *testing.T) {
	keep := false
	tk, err := LoadWordPieceVocab(fixture("wordpiece", "vocab.txt"), WordPieceOptions{Lowercase: false, StripAccents: &keep, ChineseChars: true})
	if err != nil {
		t.Fatal(err)
	}
	checkIDs(t, tk, []idCase{
		{"cased", "The the", 0, []int32{2, 29, 5, 3}},
		{"accent kept", "café", 0, []int32{2, 1, 3}},
	})
}

var clipCases = []idCase{
	// "a photo of a cat ." ; a</w>=64+256; photo: p h → ph, o t → ot, ot o</w>, ph oto</w> = 519;
	// of: o (78) f</w> (69+256); cat: a t</w> → at</w>, c at</w> = 521; .</w> = 13+256
	{"photo", "A  Photo of a CAT.", 0, []int32{527, 320, 519, 78, 325, 320, 521, 269, 528}},
	// hello</w> = 515, world</w> = 526, 's</w> = 522, !</w> = 256
	{"contraction", "Hello World's!", 0, []int32{527, 515, 526, 522, 256, 528}},
	// é is bytes C3 A9 → Ã (127) © (102); l l → ll, ll o</w> = 514; digits one by one
	{"bytes+digits", "héllo 12", 0, []int32{527, 71, 127, 102, 514, 272, 273, 528}},
	{"nfc", "he\u0301llo 12", 0, []int32{527, 71, 127, 102, 514, 272, 273, 528}},
	{"special in text", "<|startoftext|>hello", 0, []int32{527, 527, 515, 528}},
	// U+3000 is whitespace: "a b"
	{"unicode space", "a\u3000b", 0, []int32{527, 320, 321, 528}},
	// 😀 = F0 9F 98 80 → ð (172), then the remapped bytes 253, 246 and 222+256
	{"emoji", "😀", 0, []int32{527, 172, 253, 246, 478, 528}},
	{"empty", "", 0, []int32{527, 528}},
}

func TestCLIPVocabMerges(t *testing.T) {
	tk, err := LoadCLIPBPE(fixture("clip", "vocab.json"), fixture("clip", "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.PadID() != 528 || tk.MaxLength() != 77 {
		t.Fatalf("pad %d max %d", tk.PadID(), tk.MaxLength())
	}
	checkIDs(t, tk, clipCases)
	long := tk.Encode(strings.Repeat("a ", 100), 77)
	if len(long.IDs) != 77 || long.IDs[0] != 527 || long.IDs[76] != 528 || long.IDs[75] != 320 {
		t.Errorf("truncated: %d ids, ends %v", len(long.IDs), long.IDs[74:])
	}
}

func TestCLIPTokenizerJSON(t *testing.T) {
	tk, err := Load(fixture("clip"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.PadID() != 528 {
		t.Errorf("pad id %d", tk.PadID())
	}
	checkIDs(t, tk, clipCases)
}

// TestCLIPScannerMatchesRegexp checks the hand-written CLIP pre-tokenizer
// against Go's regexp running CLIP's pattern, on random strings.
func TestCLIPScannerMatchesRegexp(t *testing.T) {
	re, err := compileHFRegex(clipPattern)
	if err != nil {
		t.Fatal(err)
	}
	alphabet := []rune("ab Z9'sltredvm.!,-_ \t\n\u3000é中٣😀'")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		n := rng.IntN(16)
		var b strings.Builder
		for j := 0; j < n; j++ {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		got := clipSplit(s, true)
		want := re.FindAllString(s, -1)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanner %q, regexp %q", s, got, want)
		}
	}
}

var unigramCases = []idCase{
	// "▁hello" scores -5; "▁hel" + "lo" score -4, so Viterbi takes them (5 6);
	// "▁world!" = ▁world (8) + ! (12)
	{"viterbi", "hello world!", 0, []int32{0, 5, 6, 8, 12, 2}},
	// charsmap: ﬁ → fi, … → ...: "▁fine..." = ▁fi (22) ne (23) ... (25)
	{"charsmap", "ﬁne…", 0, []int32{0, 22, 23, 25, 2}},
	// the two-code-point rule e + U+0301 → é: ▁café (24)
	{"multi-codepoint rule", "cafe\u0301", 0, []int32{0, 24, 2}},
	// fullwidth letters
	{"fullwidth", "ｈｅｌｌｏ", 0, []int32{0, 5, 6, 2}},
	// two ideographic spaces → two spaces → one: "▁a▁b" = ▁a (17), ▁ (4) b (18)
	{"spaces", "a\u3000\u3000b", 0, []int32{0, 17, 4, 18, 2}},
	// x, y, z are unknown: one fused <unk> after ▁
	{"unknown", "xyz", 0, []int32{0, 4, 3, 2}},
	{"dots", "hello ...", 0, []int32{0, 5, 6, 26, 2}},
	// U+200B is removed by the charsmap
	{"removed", "x\u200by", 0, []int32{0, 4, 3, 2}},
	{"truncate", "hello world!", 4, []int32{0, 5, 6, 2}},
	{"empty", "", 0, []int32{0, 2}},
}

func TestUnigramTokenizerJSON(t *testing.T) {
	tk, err := Load(fixture("xlmr"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Kind() != KindUnigram || tk.PadID() != 1 || tk.VocabSize() != 28 {
		t.Fatalf("got %v", tk)
	}
	checkIDs(t, tk, append(unigramCases,
		// <mask> strips the space on its left
		idCase{"mask", "hello <mask>", 0, []int32{0, 5, 6, 27, 2}}))
}

func TestUnigramSentencePieceModel(t *testing.T) {
	tk, err := LoadSentencePiece(fixture("xlmr", "sentencepiece.bpe.model"), true)
	if err != nil {
		t.Fatal(err)
	}
	if tk.PadID() != 1 || tk.VocabSize() != 28 {
		t.Fatalf("got %v", tk)
	}
	checkIDs(t, tk, append(unigramCases,
		// SentencePiece trims and collapses whitespace itself
		idCase{"outer spaces", "  hello   world  ", 0, []int32{0, 5, 6, 8, 2}},
		idCase{"mask", "hello <mask>", 0, []int32{0, 5, 6, 27, 2}}))
	plain, err := LoadSentencePiece(fixture("xlmr", "sentencepiece.bpe.model"), false)
	if err != nil {
		t.Fatal(err)
	}
	// SentencePiece's own ids (spm_encode --output_format=id): fairseq id − 1
	checkIDs(t, plain, []idCase{{"plain ids", "hello world!", 0, []int32{4, 5, 7, 11}}})
}

// TestUnigramAgainstSentencePiece compares the .model tokenizer with
// Debian's spm_encode on the fixture, where it is installed.
func TestUnigramAgainstSentencePiece(t *testing.T) {
	if _, err := exec.LookPath("spm_encode"); err != nil {
		t.Skip("spm_encode not installed (apt-get install sentencepiece)")
	}
	model := fixture("xlmr", "sentencepiece.bpe.model")
	plain, err := LoadSentencePiece(model, false)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"hello world!", "ﬁne… hello", "cafe\u0301 ｈｅｌｌｏ", "a\u3000\u3000b xyz", "  hello   world  ",
		"x\u200by", "\thello ... ,,!", "hel lo wor ld", "ab c1 fi fine"}
	// and random strings over the pieces' characters and the charsmap's sources
	alphabet := []rune("helowrdabcfin1.,! \t\u3000ﬁ…ｈｅｌｏé\u0301xz")
	rng := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		var b strings.Builder
		for range 1 + rng.IntN(20) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		if s := strings.TrimSpace(b.String()); s != "" {
			lines = append(lines, b.String())
		}
	}
	compareSPM(t, model, plain, lines)
}

func compareSPM(t *testing.T, model string, tk *Tokenizer, lines []string) {
	t.Helper()
	cmd := exec.Command("spm_encode", "--model="+model, "--output_format=id")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spm_encode: %v", err)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("spm_encode gave %d lines for %d", len(got), len(lines))
	}
	for i, line := range lines {
		var ours []string
		for _, id := range tk.Encode(line, 0).IDs {
			ours = append(ours, strconv.Itoa(int(id)))
		}
		if strings.Join(ours, " ") != got[i] {
			t.Errorf("%q: ours %v, spm_encode %s", line, ours, got[i])
		}
	}
}

// TestNmtNFKCCharsmap builds SentencePiece's default nmt_nfkc charsmap
// (the normaliser XLM-R's tokenizer.json carries) with spm_train and
// checks our lookup against spm_normalize, where sentencepiece is
// installed.
func TestNmtNFKCCharsmap(t *testing.T) {
	if _, err := exec.LookPath("spm_train"); err != nil {
		t.Skip("spm_train not installed (apt-get install sentencepiece)")
	}
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Repeat("hello world fine cafe abc\n", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("spm_train", "--input="+corpus, "--model_prefix="+filepath.Join(dir, "m"),
		"--vocab_size=20", "--hard_vocab_limit=false", "--model_type=unigram").CombinedOutput()
	if err != nil {
		t.Fatalf("spm_train: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "m.model"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseSPModel(data)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := parseCharsMap(m.charsmap)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"ﬁne… Ｈｅｌｌｏ ①②③ ㍿ ｶﾀｶﾅ", "café cafe\u0301 Å Å ﬀ ½ ™", "x\u200by\u00a0z\u3000w", "한국어 テスト ＡＢＣ１２３",
		"ǅ ǆ Ǆ ﹏ ︵ ㈱ ℌ ℍ", "e\u0301\u0302 o\u0308\u0301", "Ⅻ ⅻ ⁵ ₅ ㎏ ㎞", "\u2028\u2029\u0085tab\tend"}
	cmd := exec.Command("spm_normalize", "--model="+filepath.Join(dir, "m.model"))
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	norm, err := cmd.Output()
	if err != nil {
		t.Fatalf("spm_normalize: %v", err)
	}
	want := strings.Split(strings.TrimRight(string(norm), "\n"), "\n")
	if len(want) != len(lines) {
		t.Fatalf("spm_normalize gave %d lines for %d", len(want), len(lines))
	}
	for i, line := range lines {
		// spm_normalize also trims and collapses spaces and shows them as
		// spaces (no ▁); do the same on our side.
		got := collapseSpaces(strings.TrimLeft(cm.normalize(line), " "))
		if got != want[i] {
			t.Errorf("%q: ours %q, spm_normalize %q", line, got, want[i])
		}
	}
}

// modCacheFile finds a file of github.com/daulet/tokenizers@v1.27.0 in
// the module cache (go mod download -json github.com/daulet/tokenizers@v1.27.0).
func modCacheFile(t *testing.T, name string) string {
	t.Helper()
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err == nil {
			cache = strings.TrimSpace(string(out))
		}
	}
	p := filepath.Join(cache, "github.com", "daulet", "tokenizers@v1.27.0", "test", "data", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not in the module cache (go mod download github.com/daulet/tokenizers@v1.27.0): %v", name, err)
	}
	return p
}

// TestRealBERTTokenizers runs the real bert-base-uncased and
// all-MiniLM-L6-v2 tokenizer.json files; the expected ids are those the
// Rust tokenizers library gives (its own tests and research/deps.md §4).
func TestRealBERTTokenizers(t *testing.T) {
	for _, name := range []string{"bert-base-uncased.json", "all-minilm-l6-v2.json"} {
		t.Run(name, func(t *testing.T) {
			tk, err := LoadTokenizerJSON(modCacheFile(t, name))
			if err != nil {
				t.Fatal(err)
			}
			checkIDs(t, tk, []idCase{
				{"fox", "brown fox jumps over the lazy dog", 0, []int32{101, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 102}},
				{"hello", "Hello, world! Tokenization", 0, []int32{101, 7592, 1010, 2088, 999, 19204, 3989, 102}},
				{"short", "this short sentence", 0, []int32{101, 2023, 2460, 6251, 102}},
				{"empty", "", 0, []int32{101, 102}},
				{"invalid utf8", "\x91D", 0, []int32{101, 1040, 102}},
				{"special", "[CLS]fox[SEP]", 0, []int32{101, 101, 4419, 102, 102}},
				{"truncate", "brown fox jumps over the lazy dog", 7, []int32{101, 2829, 4419, 14523, 2058, 1996, 102}},
			})
		})
	}
	tk, err := LoadTokenizerJSON(modCacheFile(t, "all-minilm-l6-v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.MaxLength() != 256 || tk.PadID() != 0 {
		t.Errorf("max length %d pad %d", tk.MaxLength(), tk.PadID())
	}
}

func TestPad(t *testing.T) {
	tk, err := Load(fixture("clip"))
	if err != nil {
		t.Fatal(err)
	}
	encs := []Encoding{tk.Encode("a", 0), tk.Encode("hello world's", 0)}
	ids, mask, types := make([]int64, 10), make([]int64, 10), make([]int64, 10)
	tk.Pad(encs, 5, ids, mask, types)
	want := []int64{527, 320, 528, 528, 528, 527, 515, 526, 522, 528}
	wantMask := []int64{1, 1, 1, 0, 0, 1, 1, 1, 1, 1}
	if !reflect.DeepEqual(ids, want) || !reflect.DeepEqual(mask, wantMask) {
		t.Errorf("ids %v mask %v", ids, mask)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, json string }{
		{"no model", `{"model": null}`},
		{"bad type", `{"model": {"type": "WordLevel", "vocab": {}}}`},
		{"gpt2 regex", `{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`},
		{"lookahead", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+(?!\\S)"}, "behavior": "Removed", "invert": false}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`},
		{"no unk", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`},
		{"bad charsmap", `{"normalizer": {"type": "Precompiled", "precompiled_charsmap": "AQAAAAA="}, "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0]]}}`},
	} {
		if _, err := ParseTokenizerJSON([]byte(c.json)); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

// TestConcurrentEncode runs every fixture tokenizer from many goroutines
// (Prepare is concurrent; the BPE word cache is shared).
func TestConcurrentEncode(t *testing.T) {
	var toks []*Tokenizer
	for _, d := range []string{"wordpiece", "clip", "xlmr"} {
		tk, err := Load(fixture(d))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tk)
	}
	texts := []string{"Hello World's!", "A  Photo of a CAT.", "hello world!", "unaffable café", "ﬁne…"}
	want := make([][][]int32, len(toks))
	for i, tk := range toks {
		for _, s := range texts {
			want[i] = append(want[i], tk.EncodeIDs(s, 0))
		}
	}
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for k := range 200 {
				i, j := (g+k)%len(toks), k%len(texts)
				if got := toks[i].EncodeIDs(texts[j], 0); !reflect.DeepEqual(got, want[i][j]) {
					done <- fmt.Errorf("tokenizer %d text %q: %v, want %v", i, texts[j], got, want[i][j])
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

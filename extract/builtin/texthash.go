package builtin

import (
	"context"
	"fmt"
	"iter"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/store"
)

// Defaults and constants of the text-hash encoder.
const (
	TextHashDim       = 384     // default projection width
	TextHashMaxTokens = 50      // default token count of the token output
	TextHashBuckets   = 1 << 18 // hashing space of words and bigrams
	textHashVersion   = "text-hash/1"
	bigramTokenWeight = 0.5
)

// TextHash is the text-hash encoder. For each item text it
//
//  1. normalises: Unicode NFKC, then lower case;
//  2. splits into words: maximal runs of letters, digits and combining
//     marks; every Han, Hiragana and Katakana character is a word of its
//     own (so Chinese and Japanese text gives character unigrams and
//     bigrams); everything else separates words;
//  3. hashes each word and each pair of adjacent words (bigram) with 64-bit
//     FNV-1a (distinct prefixes for words and bigrams), mixed with
//     SplitMix64, into 2^18 buckets;
//  4. weights bucket b by sublinear term frequency times inverse document
//     frequency, (1 + ln tf_b) · idf_b, with the smoothed
//     idf_b = ln((1 + N) / (1 + df_b)) + 1 over the N dataset texts that
//     Fit saw (the encode stage fits on every item text of the dataset
//     first; without Fit, idf_b = 1 and the weights are sublinear TF alone);
//  5. projects the weighted buckets to Dim values with a fixed signed random
//     projection: bucket b adds ±weight to each output coordinate, the
//     signs drawn from SplitMix64 keyed by the seed and b (never stored, so
//     the 2^18 × Dim matrix costs no memory);
//  6. L2-normalises the result.
//
// The token output (Options.TokenOutput) has one vector per word for the
// first MaxTokens words: the projection of the word's bucket (weight idf)
// plus half the projections of the bigrams it forms with its neighbours,
// L2-normalised; slots past the text's words are zero. A text without any
// word cannot be encoded and gives an invalid row.
//
// model_sha256 is the sha256 of the parameters (version, buckets, Dim,
// seed) and of the fitted IDF table.
type TextHash struct {
	dim, maxTokens int
	tokens         bool
	seed           uint64
	key            uint64    // projection key derived from seed
	idf            []float32 // nil until Fit: all weights 1
	nDocs          int
	info           extract.Info
}

// NewTextHash builds a text-hash encoder (Dim default 384, MaxTokens
// default 50).
func NewTextHash(o extract.Options) (*TextHash, error) {
	if err := checkCommon(TextHashName, o); err != nil {
		return nil, err
	}
	e := &TextHash{dim: o.Dim, maxTokens: o.MaxTokens, tokens: o.TokenOutput, seed: o.Seed}
	if e.dim == 0 {
		e.dim = TextHashDim
	}
	if e.maxTokens == 0 {
		e.maxTokens = TextHashMaxTokens
	}
	e.key = splitmix64(e.seed ^ 0x7465787468617368)
	e.setInfo()
	return e, nil
}

// setInfo computes the provenance after construction and after Fit.
func (e *TextHash) setInfo() {
	idf := "none (sublinear tf only)"
	var tables [][]float32
	if e.idf != nil {
		idf = fmt.Sprintf("ln((1+n)/(1+df))+1 over n=%d dataset texts", e.nDocs)
		tables = append(tables, e.idf)
	}
	params := fmt.Sprintf("%s buckets=%d dim=%d seed=%d idf=%t", textHashVersion, TextHashBuckets, e.dim, e.seed, e.idf != nil)
	pre := fmt.Sprintf("nfkc; lowercase; words = runs of letters/digits/marks, han/kana characters single; "+
		"unigrams + bigrams hashed (fnv-1a 64, splitmix64) into %d buckets; weight (1+ln tf)·idf, idf %s", TextHashBuckets, idf)
	// The token layout is described whether or not tokens are asked for, so
	// that asking for them does not make the pooled file look built
	// differently.
	pre += fmt.Sprintf("; tokens: first %d words, word + %.1f·adjacent bigrams", e.maxTokens, bigramTokenWeight)
	e.info = extract.Info{
		Name: TextHashName, Modality: "text", Dim: e.dim,
		Meta: store.FeatureMeta{
			Modality: "text", Encoder: TextHashName, ModelSHA256: paramsHash(params, tables...),
			Preprocess: pre, Pooling: fmt.Sprintf("tf-idf sum, signed random projection to %d, l2", e.dim), Normalized: true,
		},
	}
	if e.tokens {
		e.info.Tokens, e.info.TokenDim = e.maxTokens, e.dim
	}
}

// Info implements extract.Encoder.
func (e *TextHash) Info() extract.Info { return e.info }

// Close implements extract.Encoder.
func (e *TextHash) Close() error { return nil }

// isSingle reports characters that form a word on their own.
func isSingle(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r)
}

// Words returns the normalised words of text (steps 1 and 2 of TextHash).
func Words(text string) []string {
	s := strings.ToLower(norm.NFKC.String(text))
	var out []string
	start := -1
	for i, r := range s {
		switch {
		case isSingle(r):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			out = append(out, string(r))
		case unicode.IsLetter(r) || unicode.IsNumber(r) || (start >= 0 && unicode.IsMark(r)):
			if start < 0 {
				start = i
			}
		default:
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// unigram and bigram return the bucket of a word and of a word pair.
func unigram(w string) uint32 {
	return uint32(splitmix64(fnv(fnv(fnvOffset, "w\x00"), w)) & (TextHashBuckets - 1))
}

func bigram(a, b string) uint32 {
	return uint32(splitmix64(fnv(fnv(fnv(fnvOffset, "b\x00"), a), "\x00"+b)) & (TextHashBuckets - 1))
}

// buckets returns the buckets of words' unigrams and bigrams, sorted (with
// repeats: tf is the run length).
func buckets(words []string) []uint32 {
	if len(words) == 0 {
		return nil
	}
	out := make([]uint32, 0, 2*len(words)-1)
	for i, w := range words {
		out = append(out, unigram(w))
		if i > 0 {
			out = append(out, bigram(words[i-1], w))
		}
	}
	slices.Sort(out)
	return out
}

// Fit implements extract.Fitter: it counts document frequencies over the
// texts (in parallel) and sets the IDF weights.
func (e *TextHash) Fit(ctx context.Context, inputs iter.Seq[extract.Input]) error {
	const chunk = 256
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan []string, workers)
	dfs := make([][]int32, workers)
	docs := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		dfs[w] = make([]int32, TextHashBuckets)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for texts := range jobs {
				for _, t := range texts {
					bs := slices.Compact(buckets(Words(t)))
					if len(bs) == 0 {
						continue
					}
					docs[w]++
					for _, b := range bs {
						dfs[w][b]++
					}
				}
			}
		}()
	}
	var err error
	batch := make([]string, 0, chunk)
	for in := range inputs {
		if err = ctx.Err(); err != nil {
			break
		}
		if in.Text == "" {
			continue
		}
		batch = append(batch, in.Text)
		if len(batch) == chunk {
			jobs <- batch
			batch = make([]string, 0, chunk)
		}
	}
	if len(batch) > 0 && err == nil {
		jobs <- batch
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("%s: fit idf: %w", TextHashName, err)
	}
	n := 0
	for _, d := range docs {
		n += d
	}
	idf := make([]float32, TextHashBuckets)
	for b := range idf {
		df := 0
		for w := range workers {
			df += int(dfs[w][b])
		}
		idf[b] = float32(math.Log(float64(1+n)/float64(1+df)) + 1)
	}
	e.idf, e.nDocs = idf, n
	e.setInfo()
	return nil
}

// weight returns the IDF of bucket b.
func (e *TextHash) weight(b uint32) float32 {
	if e.idf == nil {
		return 1
	}
	return e.idf[b]
}

// bucketKey is the projection key of bucket b.
func (e *TextHash) bucketKey(b uint32) uint64 {
	return splitmix64(e.key ^ uint64(b)*0xd1b54a32d192ed03)
}

// Prepare implements extract.Encoder: the whole encoding happens here.
func (e *TextHash) Prepare(in extract.Input) (any, error) {
	words := Words(in.Text)
	if len(words) == 0 {
		return nil, fmt.Errorf("%s: item %s: %w (no words in the text)", TextHashName, in.ID, errNoInput)
	}
	p := &prepared{pooled: make([]float32, e.dim)}
	bs := buckets(words)
	for i := 0; i < len(bs); {
		j := i + 1
		for j < len(bs) && bs[j] == bs[i] {
			j++
		}
		w := float32(1+math.Log(float64(j-i))) * e.weight(bs[i])
		addSigned(p.pooled, e.bucketKey(bs[i]), w)
		i = j
	}
	if !normalize(p.pooled) {
		return nil, fmt.Errorf("%s: item %s: the projection is zero", TextHashName, in.ID)
	}
	if e.tokens {
		n := min(len(words), e.maxTokens)
		p.tokens = make([]float32, e.maxTokens*e.dim)
		p.n = int32(n)
		for k := range n {
			t := p.tokens[k*e.dim : (k+1)*e.dim]
			b := unigram(words[k])
			addSigned(t, e.bucketKey(b), e.weight(b))
			if k > 0 {
				b := bigram(words[k-1], words[k])
				addSigned(t, e.bucketKey(b), bigramTokenWeight*e.weight(b))
			}
			if k+1 < len(words) {
				b := bigram(words[k], words[k+1])
				addSigned(t, e.bucketKey(b), bigramTokenWeight*e.weight(b))
			}
			normalize(t)
		}
	}
	return p, nil
}

// Run implements extract.Encoder.
func (e *TextHash) Run(ctx context.Context, batch []any, out *extract.Output) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return copyOut(e.info, batch, out, e.tokens)
}

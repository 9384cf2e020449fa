package text

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// byteToRune is GPT-2/CLIP's bytes_to_unicode table: printable Latin-1
// bytes map to themselves, the other 68 bytes to U+0100 and up, in byte
// order.
func byteToRune() [256]rune {
	var t [256]rune
	used := [256]bool{}
	for b := '!'; b <= '~'; b++ {
		used[b] = true
	}
	for b := '¡'; b <= '¬'; b++ {
		used[b] = true
	}
	for b := '®'; b <= 'ÿ'; b++ {
		used[b] = true
	}
	n := rune(0)
	for b := 0; b < 256; b++ {
		if used[b] {
			t[b] = rune(b)
		} else {
			t[b] = 256 + n
			n++
		}
	}
	return t
}

// byteOrder lists the bytes in the order bytes_to_unicode enumerates them
// (the order of the first 256 entries of CLIP's vocabulary).
func byteOrder() []byte {
	var out []byte
	for b := '!'; b <= '~'; b++ {
		out = append(out, byte(b))
	}
	for b := '¡'; b <= '¬'; b++ {
		out = append(out, byte(b))
	}
	for b := '®'; b <= 'ÿ'; b++ {
		out = append(out, byte(b))
	}
	seen := map[byte]bool{}
	for _, b := range out {
		seen[b] = true
	}
	for b := 0; b < 256; b++ {
		if !seen[byte(b)] {
			out = append(out, byte(b))
		}
	}
	return out
}

// pair is two adjacent symbols.
type pair struct{ a, b string }

// bpe is a BPE model as CLIP uses it: words are mapped to the byte-level
// alphabet, split into characters with the end-of-word suffix ("</w>") on
// the last one, and merged pair by pair in merge-rank order.
type bpe struct {
	vocab     map[string]int32
	ranks     map[pair]int
	suffix    string // end_of_word_suffix
	prefix    string // continuing_subword_prefix
	byteLevel bool
	bytes     [256]rune
	unk       *token
	fuseUnk   bool

	mu    sync.Mutex
	cache map[string][]token
}

// maxBPECache bounds the word cache; it is emptied when full.
const maxBPECache = 1 << 16

func newBPE(vocab map[string]int32, merges []pair, suffix, prefix string, byteLevel bool, unk *token, fuseUnk bool) *bpe {
	ranks := make(map[pair]int, len(merges))
	for i, p := range merges {
		if _, dup := ranks[p]; !dup {
			ranks[p] = i
		}
	}
	return &bpe{vocab: vocab, ranks: ranks, suffix: suffix, prefix: prefix, byteLevel: byteLevel,
		bytes: byteToRune(), unk: unk, fuseUnk: fuseUnk, cache: map[string][]token{}}
}

func (m *bpe) tokenize(word string, dst []token) []token {
	if word == "" {
		return dst
	}
	m.mu.Lock()
	cached, ok := m.cache[word]
	m.mu.Unlock()
	if ok {
		return append(dst, cached...)
	}
	toks := m.merge(word)
	m.mu.Lock()
	if len(m.cache) >= maxBPECache {
		clear(m.cache)
	}
	m.cache[word] = toks
	m.mu.Unlock()
	return append(dst, toks...)
}

// merge runs the merges on one word.
func (m *bpe) merge(word string) []token {
	if m.byteLevel {
		var b strings.Builder
		for i := 0; i < len(word); i++ {
			b.WriteRune(m.bytes[word[i]])
		}
		word = b.String()
	}
	n := utf8.RuneCountInString(word)
	syms := make([]string, 0, n)
	k := 0
	for i, r := range word {
		s := word[i : i+utf8.RuneLen(r)]
		if k > 0 {
			s = m.prefix + s
		}
		if k == n-1 {
			s += m.suffix
		}
		syms = append(syms, s)
		k++
	}
	for len(syms) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := m.ranks[pair{syms[i], syms[i+1]}]; ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		a, b := syms[best], syms[best+1]
		merged := a + strings.TrimPrefix(b, m.prefix)
		out := syms[:0:0]
		for i := 0; i < len(syms); {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				out = append(out, merged)
				i += 2
				continue
			}
			out = append(out, syms[i])
			i++
		}
		syms = out
	}
	toks := make([]token, 0, len(syms))
	for _, s := range syms {
		if id, ok := m.vocab[s]; ok {
			toks = append(toks, token{id, s})
			continue
		}
		if m.unk == nil {
			continue // no unknown token: the symbol is dropped, as Hugging Face does
		}
		if m.fuseUnk && len(toks) > 0 && toks[len(toks)-1].id == m.unk.id {
			continue
		}
		toks = append(toks, *m.unk)
	}
	return toks
}

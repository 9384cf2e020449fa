package text

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits normalised text into words. first is true for the
// first text segment of the input (added tokens split the input into
// segments), which Metaspace's prepend_scheme "first" looks at.
type preTokenizer func(s string, first bool) []string

// seqPreTokenizer runs pre-tokenizers one after the other on every piece.
func seqPreTokenizer(ps ...preTokenizer) preTokenizer {
	if len(ps) == 1 {
		return ps[0]
	}
	return func(s string, first bool) []string {
		words := []string{s}
		for _, p := range ps {
			var next []string
			for i, w := range words {
				next = append(next, p(w, first && i == 0)...)
			}
			words = next
		}
		return words
	}
}

// noSplit keeps the text as one word (an empty text gives no word).
func noSplit(s string, _ bool) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// bertPreTokenize is BERT's whitespace split followed by its punctuation
// split: every punctuation character is a word of its own.
func bertPreTokenize(s string, _ bool) []string {
	var out []string
	start := -1
	for i, r := range s {
		switch {
		case isSpace(r):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		case isBertPunct(r):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			out = append(out, s[i:i+utf8.RuneLen(r)])
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// whitespaceSplit splits on whitespace.
func whitespaceSplit(s string, _ bool) []string { return strings.FieldsFunc(s, isSpace) }

// whitespacePreTokenize is Hugging Face's Whitespace: \w+|[^\w\s]+.
func whitespacePreTokenize(s string, _ bool) []string {
	isWord := func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) || unicode.Is(unicode.Pc, r)
	}
	var out []string
	start, kind := -1, 0 // kind 1 word, 2 other
	for i, r := range s {
		k := 2
		if isSpace(r) {
			k = 0
		} else if isWord(r) {
			k = 1
		}
		if k != kind && start >= 0 {
			out = append(out, s[start:i])
			start = -1
		}
		if k != 0 && start < 0 {
			start = i
		}
		kind = k
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// Prepend schemes of the Metaspace pre-tokenizer.
const (
	prependAlways = "always"
	prependFirst  = "first"
	prependNever  = "never"
)

// metaspace replaces spaces with the replacement character (▁ for
// SentencePiece), prepends one per the scheme, and (split) starts a new
// word at every replacement character.
func metaspace(repl rune, scheme string, split bool) preTokenizer {
	rs := string(repl)
	return func(s string, first bool) []string {
		if s == "" {
			return nil
		}
		s = strings.ReplaceAll(s, " ", rs)
		if (scheme == prependAlways || (scheme == prependFirst && first)) && !strings.HasPrefix(s, rs) {
			s = rs + s
		}
		if !split {
			return noSplit(s, first)
		}
		var out []string
		start := 0
		for i, r := range s {
			if r == repl && i > start {
				out = append(out, s[start:i])
				start = i
			}
		}
		if start < len(s) {
			out = append(out, s[start:])
		}
		return out
	}
}

// Split behaviours of Hugging Face's Split and Punctuation pre-tokenizers.
const (
	behaviorRemoved            = "Removed"
	behaviorIsolated           = "Isolated"
	behaviorMergedWithPrevious = "MergedWithPrevious"
	behaviorMergedWithNext     = "MergedWithNext"
	behaviorContiguous         = "Contiguous"
)

// span is a piece of a string; delim marks a delimiter.
type span struct {
	lo, hi int
	delim  bool
}

// splitSpans applies a split behaviour to the pieces of a string.
func splitSpans(s string, spans []span, behavior string) ([]string, error) {
	var out []string
	switch behavior {
	case behaviorRemoved:
		for _, sp := range spans {
			if !sp.delim {
				out = append(out, s[sp.lo:sp.hi])
			}
		}
	case behaviorIsolated:
		for _, sp := range spans {
			out = append(out, s[sp.lo:sp.hi])
		}
	case behaviorMergedWithPrevious:
		lo := 0
		for _, sp := range spans {
			if sp.delim {
				out = append(out, s[lo:sp.hi])
				lo = sp.hi
			}
		}
		if lo < len(s) {
			out = append(out, s[lo:])
		}
	case behaviorMergedWithNext:
		lo := 0
		for _, sp := range spans {
			if sp.delim && sp.lo > lo {
				out = append(out, s[lo:sp.lo])
				lo = sp.lo
			}
		}
		if lo < len(s) {
			out = append(out, s[lo:])
		}
	case behaviorContiguous:
		for i := 0; i < len(spans); {
			j := i + 1
			for j < len(spans) && spans[j].delim == spans[i].delim {
				j++
			}
			out = append(out, s[spans[i].lo:spans[j-1].hi])
			i = j
		}
	default:
		return nil, fmt.Errorf("unknown split behaviour %q", behavior)
	}
	kept := out[:0]
	for _, w := range out {
		if w != "" {
			kept = append(kept, w)
		}
	}
	return kept, nil
}

// matchSpans covers s with the regexp's matches (delimiters) and the text
// between them; invert swaps which is which.
func matchSpans(re *regexp.Regexp, s string, invert bool) []span {
	var spans []span
	last := 0
	for _, m := range re.FindAllStringIndex(s, -1) {
		if m[0] == m[1] {
			continue
		}
		if m[0] > last {
			spans = append(spans, span{last, m[0], invert})
		}
		spans = append(spans, span{m[0], m[1], !invert})
		last = m[1]
	}
	if last < len(s) {
		spans = append(spans, span{last, len(s), invert})
	}
	return spans
}

// clipPattern is CLIP's pre-tokenizer pattern; tokenizer.json holds it
// with the two special tokens in front (clipPatternWithSpecials), which
// the added-token split has already taken out of the text.
const (
	clipPattern             = `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
	clipPatternWithSpecials = `<\|startoftext\|>|<\|endoftext\|>|` + clipPattern
)

// regexSplit is Hugging Face's Split pre-tokenizer with a regex pattern.
// CLIP's pattern is served by the hand-written clipSplit scanner.
func regexSplit(pattern, behavior string, invert bool) (preTokenizer, error) {
	if (pattern == clipPattern || pattern == clipPatternWithSpecials) && invert && behavior == behaviorRemoved {
		return clipSplit, nil
	}
	re, err := compileHFRegex(pattern)
	if err != nil {
		return nil, fmt.Errorf("split pre-tokenizer: %w", err)
	}
	if _, err := splitSpans("", nil, behavior); err != nil {
		return nil, fmt.Errorf("split pre-tokenizer: %w", err)
	}
	return func(s string, _ bool) []string {
		out, _ := splitSpans(s, matchSpans(re, s, invert), behavior)
		return out
	}, nil
}

// stringSplit is Split with a literal pattern.
func stringSplit(pattern, behavior string, invert bool) (preTokenizer, error) {
	return regexSplit(regexp.QuoteMeta(pattern), behavior, invert)
}

// runeSplit splits around runes for which isDelim holds (Punctuation and
// Digits pre-tokenizers); each delimiter rune is its own span unless
// contiguous runs are asked for.
func runeSplit(isDelim func(rune) bool, behavior string) preTokenizer {
	return func(s string, _ bool) []string {
		var spans []span
		lo := 0
		for i, r := range s {
			if isDelim(r) {
				if i > lo {
					spans = append(spans, span{lo, i, false})
				}
				spans = append(spans, span{i, i + utf8.RuneLen(r), true})
				lo = i + utf8.RuneLen(r)
			}
		}
		if lo < len(s) {
			spans = append(spans, span{lo, len(s), false})
		}
		out, _ := splitSpans(s, spans, behavior)
		return out
	}
}

// clipSplit is CLIP's pre-tokenizer regex
//
//	's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// written as a scanner (leftmost-first alternation, as in the regex
// engines CLIP and Hugging Face use); whitespace between matches is
// dropped.
func clipSplit(s string, _ bool) []string {
	var out []string
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\'':
			if n := contraction(s[i+1:]); n > 0 {
				out = append(out, s[i:i+1+n])
				i += 1 + n
				continue
			}
			j := scanWhile(s, i, isCLIPOther)
			out = append(out, s[i:j])
			i = j
		case unicode.IsLetter(r):
			j := scanWhile(s, i, unicode.IsLetter)
			out = append(out, s[i:j])
			i = j
		case unicode.IsNumber(r):
			out = append(out, s[i:i+size])
			i += size
		case isSpace(r):
			i += size
		default:
			j := scanWhile(s, i, isCLIPOther)
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}

// contraction returns the length of a contraction suffix ('s 't 're 've
// 'm 'll 'd) at the start of s (after the apostrophe), or 0.
func contraction(s string) int {
	for _, c := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if strings.HasPrefix(s, c) {
			return len(c)
		}
	}
	return 0
}

// isCLIPOther is [^\s\p{L}\p{N}].
func isCLIPOther(r rune) bool {
	return !isSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r)
}

// scanWhile returns the end of the run of runes from i for which f holds.
func scanWhile(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !f(r) {
			break
		}
		i += size
	}
	return i
}

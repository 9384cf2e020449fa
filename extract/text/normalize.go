package text

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenisation.
type normalizer func(string) string

// chain runs normalizers one after the other; nil ones are skipped.
func chain(ns ...normalizer) normalizer {
	var live []normalizer
	for _, n := range ns {
		if n != nil {
			live = append(live, n)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return func(s string) string {
		for _, n := range live {
			s = n(s)
		}
		return s
	}
}

// isSpace is Unicode's White_Space property plus the ASCII controls that
// tokenizers treat as whitespace (it is Rust's char::is_whitespace).
func isSpace(r rune) bool { return unicode.IsSpace(r) }

// isOther is the "C*" general category: control, format, private use,
// surrogate and unassigned code points.
func isOther(r rune) bool {
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isBertControl is BERT's _is_control: C* except tab, newline and CR.
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return isOther(r)
}

// isBertPunct is BERT's punctuation: all ASCII non-alphanumeric printable
// characters plus Unicode P*.
func isBertPunct(r rune) bool {
	if (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) {
		return true
	}
	return unicode.IsPunct(r)
}

// isCJK is BERT's _is_chinese_char: the CJK Unified Ideographs blocks.
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// bertNormalizer is Hugging Face's BertNormalizer (BERT's BasicTokenizer
// cleaning): drop NUL, U+FFFD and control characters, map whitespace to a
// space, put spaces around CJK ideographs, strip accents (NFD, then drop
// non-spacing marks) and lowercase.
func bertNormalizer(cleanText, chineseChars, stripAccents, lowercase bool) normalizer {
	return func(s string) string {
		var b strings.Builder
		b.Grow(len(s) + 8)
		for _, r := range s {
			if cleanText {
				if r == 0 || r == unicode.ReplacementChar || isBertControl(r) {
					continue
				}
				if isSpace(r) {
					b.WriteByte(' ')
					continue
				}
			}
			if chineseChars && isCJK(r) {
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
		out := b.String()
		if stripAccents {
			out = stripMarks(out)
		}
		if lowercase {
			out = strings.ToLower(out)
		}
		return out
	}
}

// stripMarks decomposes to NFD and removes non-spacing marks (Mn).
func stripMarks(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// replaceNormalizer replaces a literal string or a regular expression.
func replaceNormalizer(pattern string, isRegex bool, content string) (normalizer, error) {
	if !isRegex {
		if pattern == "" {
			return nil, fmt.Errorf("replace normalizer: empty pattern")
		}
		return func(s string) string { return strings.ReplaceAll(s, pattern, content) }, nil
	}
	re, err := compileHFRegex(pattern)
	if err != nil {
		return nil, fmt.Errorf("replace normalizer: %w", err)
	}
	return func(s string) string { return re.ReplaceAllLiteralString(s, content) }, nil
}

// unicodeSpaceClass lists the White_Space code points, for \s.
const unicodeSpaceClass = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`

// compileHFRegex compiles a tokenizer.json (Oniguruma) pattern with Go's
// regexp. Oniguruma's \s, \d and \w are Unicode-aware where RE2's are
// ASCII, so they are rewritten into Unicode classes. Patterns RE2 cannot
// express (lookaround, backreferences) are reported as errors.
func compileHFRegex(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+1 < len(p) {
			n := p[i+1]
			i++
			switch n {
			case 's', 'd', 'w', 'S', 'D', 'W':
				var members string
				switch n {
				case 's', 'S':
					members = unicodeSpaceClass
				case 'd', 'D':
					members = `\p{Nd}`
				default:
					members = `\p{L}\p{M}\p{Nd}\p{Pc}`
				}
				neg := n == 'S' || n == 'D' || n == 'W'
				switch {
				case inClass && neg:
					return nil, fmt.Errorf("pattern %q: negated class shorthand inside a class is not supported", p)
				case inClass:
					b.WriteString(members)
				case neg:
					b.WriteString("[^" + members + "]")
				default:
					b.WriteString("[" + members + "]")
				}
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			continue
		}
		switch c {
		case '[':
			if !inClass {
				inClass = true
			}
		case ']':
			inClass = false
		}
		b.WriteByte(c)
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q is not supported by Go's regexp (RE2): %w", p, err)
	}
	return re, nil
}

// stripNormalizer trims whitespace on either side.
func stripNormalizer(left, right bool) normalizer {
	return func(s string) string {
		if left {
			s = strings.TrimLeftFunc(s, isSpace)
		}
		if right {
			s = strings.TrimRightFunc(s, isSpace)
		}
		return s
	}
}

// unicodeNormalizer applies a Unicode normal form.
func unicodeNormalizer(f norm.Form) normalizer {
	return func(s string) string { return f.String(s) }
}

// lowercase lowercases (simple case mapping).
func lowercase(s string) string { return strings.ToLower(s) }

// stripAccents removes combining marks (Hugging Face's StripAccents, which
// expects NFD input).
func stripAccentsNormalizer(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// collapseSpaces is SentencePiece's remove_extra_whitespaces: trim, and
// collapse runs of spaces into one.
func collapseSpaces(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	prevSpace := true
	for _, r := range s {
		if r == ' ' {
			if !prevSpace {
				b.WriteByte(' ')
			}
			prevSpace = true
			continue
		}
		prevSpace = false
		b.WriteRune(r)
	}
	return strings.TrimRight(b.String(), " ")
}

package text

import "unicode/utf8"

// wordPiece is BERT's WordPiece: greedy longest-match-first over the
// vocabulary, pieces after the first carrying the continuing-subword
// prefix ("##"); a word with a piece that matches nothing, or longer than
// maxChars runes, becomes the unknown token.
type wordPiece struct {
	vocab    map[string]int32
	unk      token
	prefix   string
	maxChars int
}

func (m *wordPiece) tokenize(word string, dst []token) []token {
	if utf8.RuneCountInString(word) > m.maxChars {
		return append(dst, m.unk)
	}
	mark := len(dst)
	for start := 0; start < len(word); {
		end := len(word)
		found := false
		for end > start {
			sub := word[start:end]
			if start > 0 {
				sub = m.prefix + sub
			}
			if id, ok := m.vocab[sub]; ok {
				dst = append(dst, token{id, sub})
				found = true
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if !found {
			return append(dst[:mark], m.unk)
		}
		start = end
	}
	return dst
}

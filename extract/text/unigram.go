package text

import (
	"math"
	"unicode/utf8"
)

// unkPenalty is subtracted from the lowest piece score to score an
// unknown character (SentencePiece's kUnkPenalty).
const unkPenalty = 10.0

// unigram is SentencePiece's Unigram model: the segmentation of a word
// into vocabulary pieces with the highest total log-probability (Viterbi);
// a character that no piece covers becomes the unknown piece with score
// min_score − 10, and runs of unknown characters are fused into one
// unknown token (Hugging Face's fuse_unk, on for Unigram).
type unigram struct {
	pieces   map[string]int32
	scores   []float64 // by id
	strs     []string  // by id
	unk      token
	unkScore float64
	maxLen   int // longest piece in bytes
	fuseUnk  bool
}

// newUnigram builds the model from pieces by id; usable[id] says whether a
// piece may be matched in text (control and unused pieces may not).
func newUnigram(strs []string, scores []float64, usable []bool, unkID int32, fuseUnk bool) *unigram {
	m := &unigram{pieces: make(map[string]int32, len(strs)), scores: scores, strs: strs, fuseUnk: fuseUnk}
	minScore := math.Inf(1)
	for id, s := range strs {
		if !usable[id] || s == "" {
			continue
		}
		if _, dup := m.pieces[s]; !dup {
			m.pieces[s] = int32(id)
		}
		if scores[id] < minScore {
			minScore = scores[id]
		}
		if len(s) > m.maxLen {
			m.maxLen = len(s)
		}
	}
	if math.IsInf(minScore, 1) {
		minScore = 0
	}
	m.unkScore = minScore - unkPenalty
	m.unk = token{unkID, strs[unkID]}
	return m
}

// node is the best path ending at a byte position.
type node struct {
	score float64
	start int // -1: unreached
	id    int32
}

func (m *unigram) tokenize(word string, dst []token) []token {
	n := len(word)
	if n == 0 {
		return dst
	}
	best := make([]node, n+1)
	for i := 1; i <= n; i++ {
		best[i].start = -1
	}
	for start := 0; start < n; {
		_, mblen := utf8.DecodeRuneInString(word[start:])
		base := best[start].score
		single := false
		limit := min(n, start+m.maxLen)
		for end := start + mblen; end <= limit; {
			if id, ok := m.pieces[word[start:end]]; ok {
				cand := base + m.scores[id]
				if t := &best[end]; t.start < 0 || cand > t.score {
					*t = node{cand, start, id}
				}
				if end-start == mblen {
					single = true
				}
			}
			if end == n {
				break
			}
			_, size := utf8.DecodeRuneInString(word[end:])
			end += size
		}
		if !single {
			cand := base + m.unkScore
			if t := &best[start+mblen]; t.start < 0 || cand > t.score {
				*t = node{cand, start, m.unk.id}
			}
		}
		start += mblen
	}
	// Walk back from the end; the path is reversed at the end.
	mark := len(dst)
	unkEnd := -1 // end of a pending run of unknown pieces
	for end := n; end > 0; {
		nd := best[end]
		if m.fuseUnk && nd.id == m.unk.id {
			if unkEnd < 0 {
				unkEnd = end
			}
			end = nd.start
			continue
		}
		if unkEnd >= 0 {
			dst = append(dst, m.unk)
			unkEnd = -1
		}
		dst = append(dst, token{nd.id, word[nd.start:end]})
		end = nd.start
	}
	if unkEnd >= 0 {
		dst = append(dst, m.unk)
	}
	for i, j := mark, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

package text

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/encoding/protowire"
)

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spNormal      = 1
	spUnknown     = 2
	spControl     = 3
	spUserDefined = 4
	spUnused      = 5
	spByte        = 6
)

// spModel is the part of a SentencePiece ModelProto that is used.
type spModel struct {
	pieces    []string
	scores    []float64
	types     []int
	modelType int // 1 unigram, 2 bpe, 3 word, 4 char
	unkID     int
	// normalizer_spec
	normName       string
	charsmap       []byte
	addDummyPrefix bool
	removeExtraWS  bool
}

// parseSPModel decodes a SentencePiece .model protobuf.
func parseSPModel(b []byte) (*spModel, error) {
	m := &spModel{modelType: 1, addDummyPrefix: true, removeExtraWS: true}
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType: // pieces
			piece, score, ptype := "", 0.0, spNormal
			if err := walkFields(v, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
				switch {
				case n == 1 && t == protowire.BytesType:
					piece = string(v)
				case n == 2 && t == protowire.Fixed32Type:
					score = float64(math.Float32frombits(uint32(x)))
				case n == 3 && t == protowire.VarintType:
					ptype = int(x)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, piece)
			m.scores = append(m.scores, score)
			m.types = append(m.types, ptype)
		case num == 2 && typ == protowire.BytesType: // trainer_spec
			return walkFields(v, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
				switch {
				case n == 3 && t == protowire.VarintType:
					m.modelType = int(x)
				case n == 40 && t == protowire.VarintType:
					m.unkID = int(int32(x))
				}
				return nil
			})
		case num == 3 && typ == protowire.BytesType: // normalizer_spec
			return walkFields(v, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
				switch {
				case n == 1 && t == protowire.BytesType:
					m.normName = string(v)
				case n == 2 && t == protowire.BytesType:
					m.charsmap = append([]byte(nil), v...)
				case n == 3 && t == protowire.VarintType:
					m.addDummyPrefix = x != 0
				case n == 4 && t == protowire.VarintType:
					m.removeExtraWS = x != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// walkFields calls f for every field of a protobuf message: v holds the
// bytes of length-delimited fields, x the value of varint and fixed ones.
func walkFields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad protobuf tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("bad protobuf field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// LoadSentencePiece reads a SentencePiece Unigram .model file. With
// fairseq set the ids follow fairseq's dictionary as XLM-R uses it:
// <s>=0 <pad>=1 </s>=2 <unk>=3, SentencePiece piece i (i ≥ 3) at id i+1,
// <mask> after the last piece, and a text is encoded as <s> … </s>.
// Without it the ids are SentencePiece's own and no special tokens are
// added.
//
// The normaliser is the model's precompiled charsmap, then SentencePiece's
// whitespace handling (trim, collapse runs of spaces, the ▁ dummy prefix);
// a model without a charsmap gets NFKC unless its normaliser is
// "identity".
func LoadSentencePiece(path string, fairseq bool) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sentencepiece model: %w", err)
	}
	m, err := parseSPModel(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if m.modelType != 1 {
		return nil, fmt.Errorf("%s: SentencePiece model type %d is not supported (only Unigram, 1)", path, m.modelType)
	}
	if len(m.pieces) < 3 || m.unkID < 0 || m.unkID >= len(m.pieces) {
		return nil, fmt.Errorf("%s: %d pieces, unk id %d: not a usable model", path, len(m.pieces), m.unkID)
	}
	var strs []string
	var scores []float64
	var usable []bool
	add := func(s string, score float64, ok bool) {
		strs, scores, usable = append(strs, s), append(scores, score), append(usable, ok)
	}
	isUsable := func(t int) bool { return t == spNormal || t == spUserDefined }
	added := &addedVocab{}
	t := &Tokenizer{kind: KindUnigram}
	unkID := int32(m.unkID)
	if fairseq {
		for _, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
			add(s, 0, false)
		}
		for i := 3; i < len(m.pieces); i++ {
			add(m.pieces[i], m.scores[i], isUsable(m.types[i]))
		}
		add("<mask>", 0, false)
		unkID = 3
		for id, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
			added.tokens = append(added.tokens, addedToken{id: int32(id), content: s})
		}
		added.tokens = append(added.tokens, addedToken{id: int32(len(strs) - 1), content: "<mask>", lstrip: true})
		t.prefix = []token{{0, "<s>"}}
		t.suffix = []token{{2, "</s>"}}
	} else {
		for i := range m.pieces {
			add(m.pieces[i], m.scores[i], isUsable(m.types[i]))
			if m.types[i] == spControl && m.pieces[i] != "" {
				added.tokens = append(added.tokens, addedToken{id: int32(i), content: m.pieces[i]})
			}
		}
	}
	var charNorm normalizer
	switch {
	case len(m.charsmap) > 4:
		cm, err := parseCharsMap(m.charsmap)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		charNorm = cm.normalize
	case m.normName == "identity":
	default:
		charNorm = unicodeNormalizer(norm.NFKC)
	}
	var ws normalizer
	if m.removeExtraWS {
		ws = collapseSpaces
	}
	scheme := prependNever
	if m.addDummyPrefix {
		scheme = prependAlways
	}
	vocab := make(map[string]int32, len(strs))
	for id, s := range strs {
		if _, dup := vocab[s]; !dup {
			vocab[s] = int32(id)
		}
	}
	t.normalize = chain(charNorm, ws)
	t.pretok = metaspace('▁', scheme, true)
	t.model = newUnigram(strs, scores, usable, unkID, true)
	t.added = added
	t.vocab = vocab
	t.vocabSize = len(strs)
	t.unkToken = strs[unkID]
	t.files = []string{path}
	t.setPad("")
	return t, nil
}

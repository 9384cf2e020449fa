package text

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// charsMap is SentencePiece's precompiled normaliser (the
// precompiled_charsmap of a .model file, or of the "Precompiled"
// normalizer in tokenizer.json, base64-encoded there). The blob is
//
//	uint32 little-endian: size in bytes of the trie
//	trie: darts-clone double array of uint32 units (little-endian)
//	normalized: NUL-terminated replacement strings
//
// The trie maps a UTF-8 byte sequence of the input to the offset of its
// replacement in normalized.
type charsMap struct {
	units      []uint32
	normalized string
}

// parseCharsMap decodes a precompiled charsmap blob.
func parseCharsMap(blob []byte) (*charsMap, error) {
	if len(blob) < 4 {
		return nil, fmt.Errorf("precompiled charsmap: %d bytes, want at least 4", len(blob))
	}
	size := binary.LittleEndian.Uint32(blob)
	if size%4 != 0 || uint64(size) > uint64(len(blob)-4) {
		return nil, fmt.Errorf("precompiled charsmap: trie size %d does not fit in %d bytes", size, len(blob)-4)
	}
	n := int(size / 4)
	units := make([]uint32, n)
	for i := range units {
		units[i] = binary.LittleEndian.Uint32(blob[4+4*i:])
	}
	if n == 0 {
		return nil, fmt.Errorf("precompiled charsmap: empty trie")
	}
	return &charsMap{units: units, normalized: string(blob[4+size:])}, nil
}

// Darts-clone unit fields.
func unitHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func unitValue(u uint32) uint32  { return u & (1<<31 - 1) }
func unitLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func unitOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// longestPrefix returns the replacement offset and byte length of the
// longest rule matching a prefix of key, or length 0.
func (c *charsMap) longestPrefix(key string) (value uint32, length int) {
	pos := unitOffset(c.units[0])
	for i := 0; i < len(key); i++ {
		b := key[i]
		if b == 0 {
			break
		}
		pos ^= uint32(b)
		if int(pos) >= len(c.units) {
			break
		}
		u := c.units[pos]
		if unitLabel(u) != uint32(b) {
			break
		}
		pos ^= unitOffset(u)
		if int(pos) >= len(c.units) {
			break
		}
		if unitHasLeaf(u) {
			value, length = unitValue(c.units[pos]), i+1
		}
	}
	return value, length
}

// replacement returns the NUL-terminated string at offset v.
func (c *charsMap) replacement(v uint32) string {
	if int(v) >= len(c.normalized) {
		return ""
	}
	s := c.normalized[v:]
	if j := strings.IndexByte(s, 0); j >= 0 {
		s = s[:j]
	}
	return s
}

// normalize rewrites s rule by rule: at each position the longest
// matching rule is applied; bytes no rule covers are copied one UTF-8
// character at a time, and an invalid byte becomes U+FFFD (as
// SentencePiece's Normalizer::NormalizePrefix does).
func (c *charsMap) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if v, n := c.longestPrefix(s[i:]); n > 0 {
			b.WriteString(c.replacement(v))
			i += n
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			b.WriteRune(utf8.RuneError)
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

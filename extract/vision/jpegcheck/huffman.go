package jpegcheck

// lutBits is the lookahead of the fast Huffman table: a code of up to
// lutBits bits is found with one lookup of the next lutBits bits.
const lutBits = 10

// table is a Huffman table (T.81 annex C) ready for decoding.
//
// lut maps the next lutBits bits of the stream to symbol<<8 | code length
// for the codes of up to lutBits bits; 0 sends the decoder to slow, which
// handles the longer codes, the invalid ones and tables that are not
// defined or are over-subscribed.
type table struct {
	defined bool
	// overfull is set when the code lengths describe more codes than fit
	// (the Kraft sum exceeds 1): canonical code assignment then runs past
	// the all-ones code of some length. libjpeg rejects such tables;
	// image/jpeg decodes them, with results that depend on its 8-bit
	// lookup table, which jlut reproduces so that Check agrees with it.
	overfull bool
	lut      [1 << lutBits]uint16
	maxCode  [17]int32 // largest code of each length, -1 when none
	valPtr   [17]int32 // index in vals of the code 0 of each length
	vals     [256]uint8
	jlut     [256]uint16 // only for overfull tables: image/jpeg's 8-bit table
}

// build makes the decoding tables from the 16 counts of codes per length
// and the symbols in code order (T.81 C.2, canonical code assignment).
func (t *table) build(counts *[16]uint8, vals []byte) {
	t.defined = true
	t.overfull = false
	copy(t.vals[:], vals)
	clear(t.lut[:])
	code, k := int32(0), int32(0)
	for l := int32(1); l <= 16; l++ {
		cnt := int32(counts[l-1])
		if cnt == 0 {
			t.maxCode[l] = -1
		} else {
			t.valPtr[l] = k - code
			t.maxCode[l] = code + cnt - 1
			if code+cnt > 1<<l {
				t.overfull = true
			}
		}
		if l <= lutBits && !t.overfull {
			for i := int32(0); i < cnt; i++ {
				entry := uint16(vals[k+i])<<8 | uint16(l)
				first := (code + i) << (lutBits - l)
				fill := t.lut[first : first+1<<(lutBits-l)]
				for j := range fill {
					fill[j] = entry
				}
			}
		}
		code += cnt
		k += cnt
		code <<= 1
	}
	if t.overfull {
		clear(t.lut[:])
		t.buildJLUT(counts)
	}
}

// buildJLUT builds, for an over-subscribed table, the 8-bit lookup table
// that image/jpeg consults when at least 8 bits are buffered: each code of
// up to 8 bits fills the entries that start with it, in code order, the
// entry index being taken modulo 256 (so that codes which overflow their
// length wrap around and overwrite earlier entries).
func (t *table) buildJLUT(counts *[16]uint8) {
	clear(t.jlut[:])
	code, k := uint32(0), 0
	for l := uint32(1); l <= 8; l++ {
		for i := 0; i < int(counts[l-1]); i++ {
			base := uint8(code << (8 - l))
			entry := uint16(t.vals[k])<<8 | uint16(l)
			for j := uint32(0); j < 1<<(8-l); j++ {
				t.jlut[base|uint8(j)] = entry
			}
			code++
			k++
		}
		code <<= 1
	}
}

// slow decodes the symbol at the top of acc when the fast table has no
// entry for it; n is the number of real bits in acc (when fewer than 32,
// they are all that is left before a marker or the end of the file). It
// returns the symbol and the code length, which may exceed n (the caller
// then reports the truncation).
func (t *table) slow(acc uint64, n int) (uint8, int, error) {
	if !t.defined {
		return 0, 0, errNoTable
	}
	if t.overfull && n >= 8 {
		if e := t.jlut[acc>>56]; e != 0 {
			return uint8(e >> 8), int(e & 0xFF), nil
		}
	}
	code := int32(0)
	for l := 1; l <= 16; l++ {
		code = code<<1 | int32(acc>>(64-l)&1)
		if code <= t.maxCode[l] {
			return t.vals[t.valPtr[l]+code], l, nil
		}
	}
	return 0, 0, errBadCode
}

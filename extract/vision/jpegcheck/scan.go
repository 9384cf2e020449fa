package jpegcheck

import (
	"encoding/binary"
	"math/bits"
)

// bitReader reads the entropy-coded data of a scan (T.81 B.1.1.5 and F.1.2.3):
// the bytes after the scan header up to the next marker, with each stuffed
// 0xFF00 read as 0xFF. The caller keeps the bit buffer in locals (acc holds
// the next bits MSB first, n how many of them are real) and calls fill when
// fewer than 32 are left. When fill meets a marker or the end of the file it
// stops adding bytes; acc then shifts in zeros and n goes negative when a
// decode uses bits that are not there, which the caller reports as
// truncated data.
type bitReader struct {
	data    []byte
	pos     int  // next byte to load
	start   int  // where the entropy-coded segment began
	stopped bool // a marker or the end of the file was reached
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// refill is called with fewer than 32 bits left; in the common case, when
// the next 4 bytes hold no 0xFF, it loads them at once, else it calls fill.
func (r *bitReader) refill(acc uint64, n int) (uint64, int) {
	if p := r.pos; p+4 <= len(r.data) {
		w := binary.BigEndian.Uint32(r.data[p:])
		if x := ^w; (x-0x01010101)&^x&0x80808080 == 0 {
			r.pos = p + 4
			return acc | uint64(w)<<uint(32-n), n + 32
		}
	}
	return r.fill(acc, n)
}

// fill tops acc up to at least 57 real bits, or as many as there are.
func (r *bitReader) fill(acc uint64, n int) (uint64, int) {
	if r.stopped {
		return acc, n
	}
	data := r.data
	for n <= 56 {
		pos := r.pos
		if pos+8 <= len(data) {
			w := binary.BigEndian.Uint64(data[pos:])
			if x := ^w; (x-ones)&^x&highs == 0 { // no 0xFF among the 8 bytes
				k := uint(64-n) >> 3
				acc |= w >> (64 - 8*k) << (uint(64-n) - 8*k)
				r.pos = pos + int(k)
				return acc, n + int(8*k)
			}
		}
		if pos >= len(data) {
			r.stopped = true
			return acc, n
		}
		c := data[pos]
		if c == 0xFF {
			if pos+1 >= len(data) || data[pos+1] != 0 {
				r.stopped = true // a marker (or a lone 0xFF at the end)
				return acc, n
			}
			pos++
		}
		r.pos = pos + 1
		acc |= uint64(c) << uint(56-n)
		n += 8
	}
	return acc, n
}

// position returns where image/jpeg's reader would be after consuming all
// but the n bits left in the buffer: it reads whole bytes and gives back a
// byte that it has not used at all, so the n/8 unused whole bytes return to
// the stream (a stuffed 0xFF00 counting as one).
func (r *bitReader) position(n int) int {
	p := r.pos
	for i := 0; i < n/8; i++ {
		if p-2 >= r.start && r.data[p-1] == 0 && r.data[p-2] == 0xFF {
			p -= 2
		} else {
			p--
		}
	}
	return p
}

// scanComp is a component of a scan.
type scanComp struct {
	ci     int // index in the frame
	dc, ac *table
}

// sos parses a scan header (T.81 B.2.3) and decodes the scan's entropy-coded
// data, which starts at offset data in c.data. It returns the offset where
// image/jpeg would resume looking for markers.
func (c *checker) sos(s []byte, data int) (int, error) {
	if c.nComp == 0 {
		return 0, errMissingSOF
	}
	n := len(s)
	if n < 6 || 4+2*c.nComp < n || n%2 != 0 {
		return 0, errSOSLength
	}
	ns := int(s[0])
	if n != 4+2*ns {
		return 0, errSOSNComp
	}
	var sc [4]scanComp
	totalHV := 0
	for i := 0; i < ns; i++ {
		id, tables := s[1+2*i], s[2+2*i]
		ci := -1
		for j := 0; j < c.nComp; j++ {
			if c.comp[j].id == id {
				ci = j
			}
		}
		if ci < 0 {
			return 0, errSelector
		}
		for j := 0; j < i; j++ {
			if sc[j].ci == ci {
				return 0, errRepeatedSel
			}
		}
		sc[i].ci = ci
		totalHV += c.comp[ci].h * c.comp[ci].v
		td, ta := tables>>4, tables&0x0F
		if td > 3 || (c.baseline && td > 1) {
			return 0, errTd
		}
		if ta > 3 || (c.baseline && ta > 1) {
			return 0, errTa
		}
		sc[i].dc, sc[i].ac = &c.huff[0][td], &c.huff[1][ta]
	}
	if c.nComp > 1 && totalHV > 10 {
		return 0, errTotalHV
	}
	zs, ze, ah, al := 0, 63, 0, 0
	if c.progressive {
		zs, ze = int(s[1+2*ns]), int(s[2+2*ns])
		ah, al = int(s[3+2*ns]>>4), int(s[3+2*ns]&0x0F)
		if (zs == 0 && ze != 0) || zs > ze || ze >= 64 {
			return 0, errSpectral
		}
		if zs != 0 && ns != 1 {
			return 0, errACComponents
		}
		if ah != 0 && ah != al+1 {
			return 0, errApprox
		}
	}
	c.sawScan = true

	// The MCU grid is that of the first component, whose sampling factors
	// are the largest under image/jpeg's rules.
	h0, v0 := c.comp[0].h, c.comp[0].v
	mxx := (c.width + 8*h0 - 1) / (8 * h0)
	myy := (c.height + 8*v0 - 1) / (8 * v0)
	// Progressive scans that add AC coefficients record which are non-zero
	// for the refinement scans; the masks cover the blocks of whole MCUs.
	needMask := c.progressive && zs > 0
	if needMask {
		for i := 0; i < ns; i++ {
			ci := sc[i].ci
			if len(c.nz[ci]) == 0 {
				size := mxx * myy * c.comp[ci].h * c.comp[ci].v
				if cap(c.nz[ci]) >= size {
					c.nz[ci] = c.nz[ci][:size]
					clear(c.nz[ci])
				} else {
					c.nz[ci] = make([]uint64, size)
				}
			}
		}
	}

	r := bitReader{data: c.data, pos: data, start: data}
	var acc uint64
	bn := 0
	mcu, expected := 0, byte(rst0)
	blockCount := 0
	var mask *uint64
	var scratch uint64
	for my := 0; my < myy; my++ {
		for mx := 0; mx < mxx; mx++ {
			for i := 0; i < ns; i++ {
				ci := sc[i].ci
				hi, vi := c.comp[ci].h, c.comp[ci].v
				for j := 0; j < hi*vi; j++ {
					var bx, by int
					if ns != 1 {
						bx, by = hi*mx+j%hi, vi*my+j/hi
					} else {
						// A scan of one component is not interleaved: its
						// blocks go in raster order (A.2.2). image/jpeg
						// walks the MCU grid's blocks and skips those
						// outside the image.
						q := mxx * hi
						bx, by = blockCount%q, blockCount/q
						blockCount++
						if bx*8 >= c.width || by*8 >= c.height {
							continue
						}
					}
					mask = &scratch
					if needMask {
						mask = &c.nz[ci][by*mxx*hi+bx]
					}
					var err error
					switch {
					case ah == 0:
						acc, bn, err = c.block(&r, acc, bn, sc[i].dc, sc[i].ac, zs, ze, mask)
					case zs == 0:
						// DC refinement: one bit per block (G.1.2.1).
						if bn < 32 {
							acc, bn = r.refill(acc, bn)
						}
						acc <<= 1
						bn--
					default:
						acc, bn, err = c.refine(&r, acc, bn, sc[i].ac, zs, ze, mask)
					}
					if err != nil {
						return 0, err
					}
					if bn < 0 {
						return 0, errShortData
					}
				}
			}
			mcu++
			if c.ri > 0 && mcu%c.ri == 0 && mcu < mxx*myy {
				p, err := c.restart(r.position(bn), expected)
				if err != nil {
					return 0, err
				}
				expected++
				if expected == rst7+1 {
					expected = rst0
				}
				r = bitReader{data: c.data, pos: p, start: p}
				acc, bn = 0, 0
				c.eobRun = 0
			}
		}
	}
	return r.position(bn), nil
}

// restart reads the restart marker expected at p, skipping what image/jpeg
// skips on the way (bytes other than 0xFF, 0xFF00 and fill bytes), and
// returns the offset after it.
func (c *checker) restart(p int, expected byte) (int, error) {
	b := c.data
	if p+2 > len(b) {
		return 0, errEOF
	}
	t0, t1 := b[p], b[p+1]
	p += 2
	for {
		if t0 == 0xFF {
			if t1 == expected {
				return p, nil
			}
			if t1 == 0xFF {
				if p >= len(b) {
					return 0, errEOF
				}
				t1 = b[p]
				p++
				continue
			}
			if t1 != 0 {
				return 0, errBadRST
			}
		} else if t1 == 0xFF {
			if p >= len(b) {
				return 0, errEOF
			}
			t0, t1 = 0xFF, b[p]
			p++
			continue
		}
		if p+2 > len(b) {
			return 0, errEOF
		}
		t0, t1 = b[p], b[p+1]
		p += 2
	}
}

// block decodes one block of a sequential scan or of a progressive first
// scan (F.2.2, G.1.2.1 and G.1.2.2): the DC difference when the band starts
// at 0, then the AC coefficients zs..ze, or nothing when an end-of-band run
// is pending. Only the code lengths and the numbers of extra bits matter:
// the coefficients' values are skipped, not computed.
func (c *checker) block(r *bitReader, acc uint64, n int, dc, ac *table, zs, ze int, mask *uint64) (uint64, int, error) {
	zig := zs
	if zig == 0 {
		zig = 1
		if n < 32 {
			acc, n = r.refill(acc, n)
		}
		e := dc.lut[acc>>(64-lutBits)]
		var sym uint8
		var l int
		if e != 0 {
			sym, l = uint8(e>>8), int(e&0xFF)
		} else {
			var err error
			if sym, l, err = dc.slow(acc, n); err != nil {
				return acc, n, err
			}
		}
		if sym > 16 {
			if l > n {
				return acc, n, errShortData
			}
			return acc, n, errExcessiveDC
		}
		l += int(sym) // the code and the difference's bits
		acc <<= uint(l)
		n -= l
	}
	if zig > ze {
		return acc, n, nil
	}
	if c.eobRun > 0 {
		c.eobRun--
		return acc, n, nil
	}
	m := *mask
	lut := &ac.lut
	for zig <= ze {
		if n < 32 {
			acc, n = r.refill(acc, n)
		}
		e := lut[acc>>(64-lutBits)]
		var sym uint8
		var l int
		if e != 0 {
			sym, l = uint8(e>>8), int(e&0xFF)
		} else {
			var err error
			if sym, l, err = ac.slow(acc, n); err != nil {
				return acc, n, err
			}
		}
		run, size := int(sym>>4), int(sym&0x0F)
		if size != 0 {
			zig += run
			if zig > ze {
				// image/jpeg ends the block here without reading the
				// coefficient's bits.
				acc <<= uint(l)
				n -= l
				break
			}
			l += size
			acc <<= uint(l)
			n -= l
			m |= 1 << uint(zig)
			zig++
			continue
		}
		acc <<= uint(l)
		n -= l
		if run == 15 { // ZRL: sixteen zeros
			zig += 16
			continue
		}
		// EOBn: this block and 2^run-1+bits more end here (G.1.2.2).
		eob := 1 << uint(run)
		if run != 0 {
			eob |= int(acc >> (64 - uint(run)))
			acc <<= uint(run)
			n -= run
		}
		c.eobRun = eob - 1
		break
	}
	*mask = m
	return acc, n, nil
}

// refine decodes one block of a progressive AC refinement scan (G.1.2.3):
// new coefficients of magnitude 1 with a sign bit, and one correction bit
// for each coefficient that is already non-zero, whose positions mask
// holds.
func (c *checker) refine(r *bitReader, acc uint64, n int, ac *table, zs, ze int, mask *uint64) (uint64, int, error) {
	m := *mask
	zig := zs
	if c.eobRun == 0 {
		for zig <= ze {
			if n < 32 {
				acc, n = r.refill(acc, n)
			}
			e := ac.lut[acc>>(64-lutBits)]
			var sym uint8
			var l int
			if e != 0 {
				sym, l = uint8(e>>8), int(e&0xFF)
			} else {
				var err error
				if sym, l, err = ac.slow(acc, n); err != nil {
					return acc, n, err
				}
			}
			acc <<= uint(l)
			n -= l
			run, size := int(sym>>4), int(sym&0x0F)
			newCoef := false
			switch size {
			case 0:
				if run != 15 {
					eob := 1 << uint(run)
					if run != 0 {
						if n < 32 {
							acc, n = r.refill(acc, n)
						}
						eob |= int(acc >> (64 - uint(run)))
						acc <<= uint(run)
						n -= run
					}
					c.eobRun = eob
					goto eob
				}
			case 1:
				newCoef = true
				if n < 32 {
					acc, n = r.refill(acc, n)
				}
				acc <<= 1 // the sign
				n--
			default:
				if n < 0 {
					return acc, n, errShortData
				}
				return acc, n, errUnexpectedCode
			}
			// Skip run zero coefficients, reading a correction bit for each
			// non-zero one on the way; the new coefficient (if any) goes to
			// the next zero one.
			// With masks: the target is the (run+1)-th zero coefficient
			// from zig on; the non-zero ones before it each take a bit.
			band := ^uint64(0) >> uint(63-ze) &^ (1<<uint(zig) - 1)
			zeros := ^m & band
			for i := 0; i < run && zeros != 0; i++ {
				zeros &= zeros - 1
			}
			end := ze + 1 // past the band: no such zero coefficient
			if zeros != 0 {
				end = bits.TrailingZeros64(zeros)
			}
			k := bits.OnesCount64(m & band & (1<<uint(end) - 1))
			for k > 0 {
				if n < 32 {
					acc, n = r.refill(acc, n)
				}
				t := min(k, 32)
				acc <<= uint(t)
				n -= t
				k -= t
			}
			zig = end
			if zig > ze {
				if n < 0 {
					return acc, n, errShortData
				}
				return acc, n, errTooMany
			}
			if newCoef {
				m |= 1 << uint(zig)
			}
			zig++
		}
	}
eob:
	if c.eobRun > 0 {
		c.eobRun--
		// A correction bit for each non-zero coefficient left in the band.
		if zig <= ze {
			band := (^uint64(0) >> uint(63-ze)) &^ (1<<uint(zig) - 1)
			k := bits.OnesCount64(m & band)
			for k > 0 {
				if n < 32 {
					acc, n = r.refill(acc, n)
				}
				t := min(k, 32)
				acc <<= uint(t)
				n -= t
				k -= t
			}
		}
	}
	*mask = m
	return acc, n, nil
}

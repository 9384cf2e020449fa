// Package jpegcheck tells whether a JPEG file decodes, without decoding its
// pixels.
//
// Everything that can make a JPEG decode fail is in the marker segments and
// in the entropy-coded data: the dequantisation, the inverse DCT, the
// upsampling and the colour conversion cannot fail. Check therefore parses
// every marker segment (SOI, DQT, DHT, SOF0/1/2, DRI, SOS, RSTn, EOI, APPn
// and COM) and Huffman-decodes every block of every scan, baseline
// sequential and progressive (DC first and refinement, AC first and
// refinement with end-of-band runs and successive approximation), without
// reconstructing a pixel. It needs no memory per block for sequential files;
// for progressive files it keeps one 64-bit mask of the non-zero
// coefficients per 8×8 block, which is all that the refinement scans need to
// find their way through the bits.
//
// The rules are those of the standard library's image/jpeg decoder (which
// the package's tests compare it with on valid, truncated and corrupted
// files): Check accepts a file exactly when image/jpeg.Decode would return
// an image, including image/jpeg's leniencies (bytes between segments are
// skipped, data after the end-of-image marker is ignored, an AC
// coefficient run past the end of the spectral band ends the block) and its
// limits (8-bit precision only, 1, 3 or 4 components, the sampling factors
// it can upsample, 4-component files need an Adobe APP14 segment) and
// quirks: in a non-interleaved scan of a component sampled h×v it counts
// the restart interval in groups of h×v blocks rather than in blocks, and
// walks the MCU grid's blocks skipping those outside the image, so valid
// progressive 4:2:0 files with restart markers fail in both.
// Arithmetic coding, lossless and hierarchical JPEG are reported as
// unsupported, as image/jpeg does.
//
// The reference for the format is ITU-T T.81 (ISO/IEC 10918-1).
package jpegcheck

import "sync"

// Info describes a JPEG file that Check accepted.
type Info struct {
	Width, Height int  // from the frame header
	Components    int  // 1 (grey), 3 (YCbCr or RGB) or 4 (CMYK or YCCK)
	Progressive   bool // SOF2
}

// Error is the error Check returns for a file that would not decode.
// Unsupported is set when the file may be a valid JPEG that uses a feature
// image/jpeg does not implement (arithmetic coding, 12-bit precision, an
// unusual sampling factor, ...); otherwise the file is malformed or
// truncated.
type Error struct {
	Msg         string
	Unsupported bool
}

func (e *Error) Error() string {
	if e.Unsupported {
		return "unsupported JPEG feature: " + e.Msg
	}
	return "invalid JPEG format: " + e.Msg
}

func formatErr(msg string) *Error      { return &Error{Msg: msg} }
func unsupportedErr(msg string) *Error { return &Error{Msg: msg, Unsupported: true} }

// The errors are values so that a rejection does not allocate.
var (
	errEOF            = formatErr("unexpected end of file")
	errShortData      = formatErr("short Huffman data (truncated or interrupted scan)")
	errMissingSOI     = formatErr("missing SOI marker")
	errMissingSOF     = formatErr("missing SOF marker")
	errMissingSOS     = formatErr("missing SOS marker")
	errShortSegment   = formatErr("short segment length")
	errUnknownMarker  = formatErr("unknown marker")
	errUnknownMarkerU = unsupportedErr("unknown marker")
	errMultipleSOF    = formatErr("multiple SOF markers")
	errNComp          = unsupportedErr("number of components")
	errPrecision      = unsupportedErr("precision")
	errSOFLength      = formatErr("SOF has wrong length")
	errRepeatedID     = formatErr("repeated component identifier")
	errTq             = formatErr("bad Tq value")
	errSampling       = formatErr("luma/chroma subsampling ratio")
	errSamplingU      = unsupportedErr("luma/chroma subsampling ratio")
	errPq             = formatErr("bad Pq value")
	errDQTLength      = formatErr("DQT has wrong length")
	errDHTLength      = formatErr("DHT has wrong length")
	errTc             = formatErr("bad Tc value")
	errTh             = formatErr("bad Th value")
	errHuffZero       = formatErr("Huffman table has zero length")
	errHuffTooLong    = formatErr("Huffman table has excessive length")
	errDRILength      = formatErr("DRI has wrong length")
	errSOSLength      = formatErr("SOS has wrong length")
	errSOSNComp       = formatErr("SOS length inconsistent with number of components")
	errSelector       = formatErr("unknown component selector")
	errRepeatedSel    = formatErr("repeated component selector")
	errTd             = formatErr("bad Td value")
	errTa             = formatErr("bad Ta value")
	errTotalHV        = formatErr("total sampling factors too large")
	errSpectral       = formatErr("bad spectral selection bounds")
	errACComponents   = formatErr("progressive AC coefficients for more than one component")
	errApprox         = formatErr("bad successive approximation values")
	errNoTable        = formatErr("uninitialized Huffman table")
	errBadCode        = formatErr("bad Huffman code")
	errExcessiveDC    = unsupportedErr("excessive DC component")
	errUnexpectedCode = formatErr("unexpected Huffman code")
	errTooMany        = formatErr("too many coefficients")
	errBadRST         = formatErr("bad RST marker")
	errNoAdobe        = unsupportedErr("unknown color model: 4-component JPEG doesn't have Adobe APP14 metadata")
)

// Marker codes (T.81 table B.1).
const (
	sof0  = 0xC0 // baseline sequential, Huffman
	sof1  = 0xC1 // extended sequential, Huffman
	sof2  = 0xC2 // progressive, Huffman
	dht   = 0xC4
	rst0  = 0xD0
	rst7  = 0xD7
	soi   = 0xD8
	eoi   = 0xD9
	sos   = 0xDA
	dqt   = 0xDB
	dri   = 0xDD
	app0  = 0xE0
	app14 = 0xEE
	app15 = 0xEF
	com   = 0xFE
)

// Check reports whether b is a JPEG file that decodes: nil when it does, an
// *Error saying why not otherwise.
//
// For progressive files Check allocates 8 bytes per 8×8 block of each
// component (about 12 bytes per pixel ÷ 64 for 4:2:0); callers that accept
// files from the network should bound the dimensions first (the crawl's
// structural check does, against its pixel limit).
func Check(b []byte) error {
	_, err := CheckInfo(b)
	return err
}

// CheckInfo is Check that also returns the frame's dimensions and layout.
func CheckInfo(b []byte) (Info, error) {
	c := pool.Get().(*checker)
	info, err := c.run(b)
	c.release()
	pool.Put(c)
	if err != nil {
		return Info{}, err
	}
	return info, nil
}

var pool = sync.Pool{New: func() any { return new(checker) }}

// component is a frame component.
type component struct {
	id   uint8
	h, v int // sampling factors as image/jpeg uses them (1×1 for grey)
}

// checker holds the state of one file: the frame, the Huffman tables, the
// restart interval and, for progressive files, the non-zero masks.
type checker struct {
	data        []byte
	nComp       int
	comp        [4]component
	width       int
	height      int
	baseline    bool
	progressive bool
	adobe       bool
	sawScan     bool
	ri          int
	eobRun      int // pending end-of-band run, kept across scans like image/jpeg
	huff        [2][4]table
	nz          [4][]uint64 // progressive: bit z set when zig-zag coefficient z is non-zero
}

// release drops what refers to the caller's data and resets the state for
// the next file (the slices' memory is kept for reuse).
func (c *checker) release() {
	c.data = nil
	c.nComp, c.width, c.height, c.ri, c.eobRun = 0, 0, 0, 0, 0
	c.baseline, c.progressive, c.adobe, c.sawScan = false, false, false, false
	for i := range c.huff {
		for j := range c.huff[i] {
			if t := &c.huff[i][j]; t.defined {
				// An undefined table must send every lookup to slow,
				// which reports it.
				t.defined = false
				clear(t.lut[:])
			}
		}
	}
	for i := range c.nz {
		if cap(c.nz[i]) > 1<<20 {
			c.nz[i] = nil // do not keep a huge image's masks in the pool
		} else {
			c.nz[i] = c.nz[i][:0]
		}
	}
}

// run walks the marker segments of b from SOI to EOI, decoding each scan as
// it comes.
func (c *checker) run(b []byte) (Info, error) {
	c.data = b
	if len(b) < 2 {
		return Info{}, errEOF
	}
	if b[0] != 0xFF || b[1] != soi {
		return Info{}, errMissingSOI
	}
	pos := 2
	for {
		// Like image/jpeg: read two bytes, then slide one byte at a time
		// until the first is 0xFF; 0xFF00 is skipped, fill bytes (0xFF) are
		// skipped, RSTn outside a scan is ignored.
		if pos+2 > len(b) {
			return Info{}, errEOF
		}
		t0, t1 := b[pos], b[pos+1]
		pos += 2
		for t0 != 0xFF {
			if pos >= len(b) {
				return Info{}, errEOF
			}
			t0, t1 = t1, b[pos]
			pos++
		}
		marker := t1
		if marker == 0 {
			continue
		}
		for marker == 0xFF {
			if pos >= len(b) {
				return Info{}, errEOF
			}
			marker = b[pos]
			pos++
		}
		if marker == eoi {
			break
		}
		if rst0 <= marker && marker <= rst7 {
			continue
		}
		if pos+2 > len(b) {
			return Info{}, errEOF
		}
		n := int(b[pos])<<8 | int(b[pos+1]) - 2
		pos += 2
		if n < 0 {
			return Info{}, errShortSegment
		}
		// Every segment that image/jpeg accepts is read to its end, so one
		// that runs past the end of the file fails.
		if pos+n > len(b) {
			return Info{}, errEOF
		}
		var err error
		switch marker {
		case sof0, sof1, sof2:
			c.baseline = marker == sof0
			c.progressive = marker == sof2
			err = c.sof(b[pos : pos+n])
		case dht:
			err = c.dht(b[pos : pos+n])
		case dqt:
			err = dqtCheck(b[pos : pos+n])
		case dri:
			if n != 2 {
				err = errDRILength
			} else {
				c.ri = int(b[pos])<<8 | int(b[pos+1])
			}
		case sos:
			var end int
			end, err = c.sos(b[pos:pos+n], pos+n)
			if err == nil {
				pos = end
				continue
			}
		case app14:
			if n >= 12 && string(b[pos:pos+5]) == "Adobe" {
				c.adobe = true
			}
		default:
			if app0 <= marker && marker <= app15 || marker == com {
				break
			}
			if marker < 0xC0 {
				err = errUnknownMarker
			} else {
				err = errUnknownMarkerU
			}
		}
		if err != nil {
			return Info{}, err
		}
		pos += n
	}
	if !c.sawScan {
		return Info{}, errMissingSOS
	}
	if c.nComp == 4 && !c.adobe {
		return Info{}, errNoAdobe
	}
	return Info{Width: c.width, Height: c.height, Components: c.nComp, Progressive: c.progressive}, nil
}

// sof parses a frame header (T.81 B.2.2) with image/jpeg's limits.
func (c *checker) sof(s []byte) error {
	if c.nComp != 0 {
		return errMultipleSOF
	}
	var nc int
	switch len(s) {
	case 6 + 3*1:
		nc = 1
	case 6 + 3*3:
		nc = 3
	case 6 + 3*4:
		nc = 4
	default:
		return errNComp
	}
	c.nComp = nc
	if s[0] != 8 {
		return errPrecision
	}
	c.height = int(s[1])<<8 | int(s[2])
	c.width = int(s[3])<<8 | int(s[4])
	if int(s[5]) != nc {
		return errSOFLength
	}
	for i := 0; i < nc; i++ {
		p := s[6+3*i:]
		id, hv, tq := p[0], p[1], p[2]
		for j := 0; j < i; j++ {
			if c.comp[j].id == id {
				return errRepeatedID
			}
		}
		c.comp[i].id = id
		if tq > 3 {
			return errTq
		}
		h, v := int(hv>>4), int(hv&0x0F)
		if h < 1 || h > 4 || v < 1 || v > 4 {
			return errSampling
		}
		if h == 3 || v == 3 {
			return errSamplingU
		}
		switch nc {
		case 1:
			h, v = 1, 1 // a single component's factors do not matter
		case 3:
			switch i {
			case 0:
				if v == 4 {
					return errSamplingU
				}
			case 1:
				if c.comp[0].h%h != 0 || c.comp[0].v%v != 0 {
					return errSamplingU
				}
			case 2:
				if c.comp[1].h != h || c.comp[1].v != v {
					return errSamplingU
				}
			}
		case 4:
			switch i {
			case 0:
				if hv != 0x11 && hv != 0x22 {
					return errSamplingU
				}
			case 1, 2:
				if hv != 0x11 {
					return errSamplingU
				}
			case 3:
				if c.comp[0].h != h || c.comp[0].v != v {
					return errSamplingU
				}
			}
		}
		c.comp[i].h, c.comp[i].v = h, v
	}
	return nil
}

// dqtCheck checks the structure of a quantisation table segment (B.2.4.1);
// the values themselves cannot make a decode fail.
func dqtCheck(s []byte) error {
	n := len(s)
	for n > 0 {
		x := s[len(s)-n]
		n--
		if x&0x0F > 3 {
			return errTq
		}
		// Like image/jpeg, a table whose values do not fit ends the
		// segment, which is then an error unless nothing is left: a
		// lone precision/destination byte at the end is accepted.
		switch x >> 4 {
		case 0:
			if n < 64 {
				return dqtRest(n)
			}
			n -= 64
		case 1:
			if n < 128 {
				return dqtRest(n)
			}
			n -= 128
		default:
			return errPq
		}
	}
	return nil
}

func dqtRest(n int) error {
	if n != 0 {
		return errDQTLength
	}
	return nil
}

// dht parses a Huffman table segment (B.2.4.2) and builds its tables.
func (c *checker) dht(s []byte) error {
	for len(s) > 0 {
		if len(s) < 17 {
			return errDHTLength
		}
		tc, th := s[0]>>4, s[0]&0x0F
		if tc > 1 {
			return errTc
		}
		if th > 3 || (c.baseline && th > 1) {
			return errTh
		}
		var counts [16]uint8
		copy(counts[:], s[1:17])
		total := 0
		for _, k := range counts {
			total += int(k)
		}
		if total == 0 {
			return errHuffZero
		}
		if total > 256 {
			return errHuffTooLong
		}
		if len(s) < 17+total {
			return errDHTLength
		}
		c.huff[tc][th].build(&counts, s[17:17+total])
		s = s[17+total:]
	}
	return nil
}

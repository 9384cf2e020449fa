package crawl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Image formats the crawler stores.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatGIF  = "gif"
	FormatWebP = "webp"
)

// contentTypes maps a stored format to its MIME type.
var contentTypes = map[string]string{
	FormatJPEG: "image/jpeg",
	FormatPNG:  "image/png",
	FormatGIF:  "image/gif",
	FormatWebP: "image/webp",
}

// ContentType returns the MIME type of a format name ("" if unknown).
func ContentType(format string) string { return contentTypes[format] }

// ImageInfo is what structural validation learns from an image's bytes.
type ImageInfo struct {
	Format string // FormatJPEG, ...
	Width  int
	Height int
	// Frames counts GIF images (1 for the other formats).
	Frames int
}

// ContentType is the MIME type of the format.
func (i ImageInfo) ContentType() string { return contentTypes[i.Format] }

// Validation error classes (also ledger error_class values).
const (
	ClassNotImage    = "not_image"          // no image signature (HTML, text, JSON...)
	ClassUnsupported = "unsupported_format" // an image format mmpipe does not store (BMP, TIFF, AVIF, SVG...)
	ClassTruncated   = "truncated"          // the image ends before its end marker
	ClassCorrupt     = "corrupt"            // broken structure, bad CRC, zero size
	ClassPixelLimit  = "pixel_limit"        // more pixels than allowed (decompression bomb)
	ClassDecode      = "decode"             // structurally sound, but the full decode failed
)

// ImageError is a validation failure with its ledger class.
type ImageError struct {
	Class string
	Msg   string
}

func (e *ImageError) Error() string { return e.Class + ": " + e.Msg }

func imgErr(class, format string, args ...any) *ImageError {
	return &ImageError{Class: class, Msg: fmt.Sprintf(format, args...)}
}

// Sniff names the image format of b from its signature: one of the Format
// constants, or "" when b does not start like a JPEG, PNG, GIF or WebP file.
func Sniff(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(b, pngSig):
		return FormatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return FormatGIF
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return FormatWebP
	}
	return ""
}

// otherFormat names image formats that are recognised but not stored.
func otherFormat(b []byte) string {
	trim := bytes.TrimLeft(b[:min(len(b), 512)], " \t\r\n\ufeff")
	switch {
	case bytes.HasPrefix(b, []byte("BM")) && len(b) > 26:
		return "BMP"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "TIFF"
	case bytes.HasPrefix(b, []byte{0, 0, 1, 0}):
		return "ICO"
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		switch string(b[8:12]) {
		case "avif", "avis":
			return "AVIF"
		case "heic", "heix", "hevc", "heim", "heis", "mif1", "msf1":
			return "HEIF"
		}
	case bytes.HasPrefix(b, []byte{0xFF, 0x0A}), bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cJXL \r\n\x87\n")):
		return "JPEG XL"
	case bytes.HasPrefix(trim, []byte("<svg")),
		bytes.HasPrefix(trim, []byte("<?xml")) && bytes.Contains(b[:min(len(b), 4096)], []byte("<svg")):
		return "SVG"
	}
	return ""
}

// Structural validates b without decoding pixels: the format signature, the
// dimensions from the header, the container structure (JPEG segments and
// the entropy-coded data up to the end-of-image marker; PNG chunks with
// their CRCs up to IEND; GIF blocks up to the trailer; the WebP RIFF
// chunks and the VP8/VP8L/VP8X headers) and the pixel limit (maxPixels <= 0:
// none). Its cost is a few passes over the bytes. Errors are *ImageError.
func Structural(b []byte, maxPixels int64) (ImageInfo, error) {
	f := Sniff(b)
	var (
		info ImageInfo
		err  *ImageError
	)
	switch f {
	case FormatJPEG:
		info, err = walkJPEG(b, maxPixels)
	case FormatPNG:
		info, err = walkPNG(b, maxPixels)
	case FormatGIF:
		info, err = walkGIF(b, maxPixels)
	case FormatWebP:
		info, err = walkWebP(b, maxPixels)
	default:
		if o := otherFormat(b); o != "" {
			return ImageInfo{}, imgErr(ClassUnsupported, "%s image (mmpipe stores JPEG, PNG, GIF and WebP)", o)
		}
		return ImageInfo{}, imgErr(ClassNotImage, "no image signature (starts with %q)", preview(b))
	}
	info.Format = f
	if err != nil {
		return info, err
	}
	return info, nil
}

// preview is the start of b for error messages.
func preview(b []byte) string {
	b = b[:min(len(b), 24)]
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// checkPixels enforces the pixel limit on a width × height.
func checkPixels(format string, w, h int, maxPixels int64) *ImageError {
	if w <= 0 || h <= 0 {
		return imgErr(ClassCorrupt, "%s header gives size %d×%d", format, w, h)
	}
	if maxPixels > 0 && int64(w)*int64(h) > maxPixels {
		return imgErr(ClassPixelLimit, "%s of %d×%d = %d pixels exceeds the limit of %d", format, w, h, int64(w)*int64(h), maxPixels)
	}
	return nil
}

// JPEG markers.
const (
	mSOI = 0xD8
	mEOI = 0xD9
	mSOS = 0xDA
	mTEM = 0x01
)

func isSOF(m byte) bool {
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC
}

// walkJPEG follows the marker segments from SOI to EOI, scanning the
// entropy-coded data after each SOS for the next marker (stuffed 0xFF00 and
// RSTn do not end it). The first SOF gives the size; bytes after EOI are
// allowed (cameras and CDNs append padding).
func walkJPEG(b []byte, maxPixels int64) (ImageInfo, *ImageError) {
	info := ImageInfo{Frames: 1}
	pos := 2
	sawSOF, sawSOS := false, false
	for {
		// Find the next marker; libjpeg skips stray bytes between segments
		// with a warning, and so do we.
		for pos < len(b) && b[pos] != 0xFF {
			pos++
		}
		for pos < len(b) && b[pos] == 0xFF { // fill bytes
			pos++
		}
		if pos >= len(b) {
			return info, imgErr(ClassTruncated, "JPEG ends after %d bytes without an end-of-image marker", len(b))
		}
		m := b[pos]
		pos++
		switch {
		case m == mEOI:
			if !sawSOF || !sawSOS {
				return info, imgErr(ClassCorrupt, "JPEG end-of-image marker before any frame or scan")
			}
			return info, nil
		case m == mSOI || m == 0x00:
			return info, imgErr(ClassCorrupt, "JPEG marker 0x%02X at offset %d", m, pos-2)
		case m >= 0xD0 && m <= 0xD7, m == mTEM:
			continue
		}
		if pos+2 > len(b) {
			return info, imgErr(ClassTruncated, "JPEG ends inside the header of marker 0x%02X", m)
		}
		l := int(binary.BigEndian.Uint16(b[pos:]))
		if l < 2 {
			return info, imgErr(ClassCorrupt, "JPEG segment 0x%02X has length %d", m, l)
		}
		end := pos + l
		if end > len(b) {
			return info, imgErr(ClassTruncated, "JPEG ends inside segment 0x%02X (needs %d bytes, has %d)", m, end, len(b))
		}
		seg := b[pos+2 : end]
		if isSOF(m) && !sawSOF {
			if len(seg) < 6 {
				return info, imgErr(ClassCorrupt, "JPEG frame header of %d bytes", len(seg))
			}
			info.Height = int(binary.BigEndian.Uint16(seg[1:]))
			info.Width = int(binary.BigEndian.Uint16(seg[3:]))
			if info.Height == 0 {
				return info, imgErr(ClassUnsupported, "JPEG with the height in a DNL marker")
			}
			if err := checkPixels("JPEG", info.Width, info.Height, maxPixels); err != nil {
				return info, err
			}
			sawSOF = true
		}
		pos = end
		if m != mSOS {
			continue
		}
		if !sawSOF {
			return info, imgErr(ClassCorrupt, "JPEG scan before the frame header")
		}
		sawSOS = true
		// Entropy-coded data: runs until a 0xFF that is followed by neither
		// 0x00 (stuffing), 0xFF (fill) nor RSTn.
		for {
			i := bytes.IndexByte(b[pos:], 0xFF)
			if i < 0 || pos+i+1 >= len(b) {
				return info, imgErr(ClassTruncated, "JPEG ends inside the scan data after %d bytes (no end-of-image marker)", len(b))
			}
			pos += i
			n := b[pos+1]
			if n == 0x00 || n == 0xFF || (n >= 0xD0 && n <= 0xD7) {
				pos++
				continue
			}
			break // pos is at the 0xFF of the next marker
		}
	}
}

var pngSig = []byte("\x89PNG\r\n\x1a\n")

// walkPNG checks IHDR, every chunk's length and CRC, at least one IDAT and
// the final IEND.
func walkPNG(b []byte, maxPixels int64) (ImageInfo, *ImageError) {
	info := ImageInfo{Frames: 1}
	pos := len(pngSig)
	first, idat := true, false
	for {
		if pos+8 > len(b) {
			return info, imgErr(ClassTruncated, "PNG ends after %d bytes without an IEND chunk", len(b))
		}
		l := binary.BigEndian.Uint32(b[pos:])
		typ := b[pos+4 : pos+8]
		if l > 1<<31-1 {
			return info, imgErr(ClassCorrupt, "PNG chunk %q has length %d", typ, l)
		}
		for _, c := range typ {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return info, imgErr(ClassCorrupt, "PNG chunk type %q at offset %d", typ, pos+4)
			}
		}
		end := pos + 12 + int(l)
		if end > len(b) {
			return info, imgErr(ClassTruncated, "PNG ends inside chunk %q (needs %d bytes, has %d)", typ, end, len(b))
		}
		data := b[pos+8 : pos+8+int(l)]
		if crc32.ChecksumIEEE(b[pos+4:pos+8+int(l)]) != binary.BigEndian.Uint32(b[end-4:]) {
			return info, imgErr(ClassCorrupt, "PNG chunk %q at offset %d fails its CRC", typ, pos)
		}
		name := string(typ)
		if first {
			if name != "IHDR" || l != 13 {
				return info, imgErr(ClassCorrupt, "PNG starts with chunk %q of %d bytes, want IHDR of 13", name, l)
			}
			w, h := binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:])
			if w > 1<<31-1 || h > 1<<31-1 {
				return info, imgErr(ClassCorrupt, "PNG size %d×%d", w, h)
			}
			info.Width, info.Height = int(w), int(h)
			if err := checkPixels("PNG", info.Width, info.Height, maxPixels); err != nil {
				return info, err
			}
			first = false
		}
		switch name {
		case "IDAT":
			idat = true
		case "IEND":
			if !idat {
				return info, imgErr(ClassCorrupt, "PNG without image data (no IDAT chunk)")
			}
			return info, nil
		}
		pos = end
	}
}

// walkGIF follows the GIF blocks (extensions, image descriptors with their
// LZW sub-blocks) to the trailer. Each frame must also respect the pixel
// limit.
func walkGIF(b []byte, maxPixels int64) (ImageInfo, *ImageError) {
	info := ImageInfo{}
	if len(b) < 13 {
		return info, imgErr(ClassTruncated, "GIF of %d bytes has no screen descriptor", len(b))
	}
	info.Width = int(binary.LittleEndian.Uint16(b[6:]))
	info.Height = int(binary.LittleEndian.Uint16(b[8:]))
	pos := 13
	if flags := b[10]; flags&0x80 != 0 {
		pos += 3 << ((flags & 7) + 1)
	}
	checkScreen := info.Width > 0 && info.Height > 0
	if checkScreen {
		if err := checkPixels("GIF", info.Width, info.Height, maxPixels); err != nil {
			return info, err
		}
	}
	subBlocks := func(what string) *ImageError {
		for {
			if pos >= len(b) {
				return imgErr(ClassTruncated, "GIF ends inside %s after %d bytes", what, len(b))
			}
			n := int(b[pos])
			pos++
			if n == 0 {
				return nil
			}
			pos += n
		}
	}
	for {
		if pos >= len(b) {
			return info, imgErr(ClassTruncated, "GIF ends after %d bytes without a trailer", len(b))
		}
		switch b[pos] {
		case 0x21: // extension
			pos += 2
			if err := subBlocks("an extension"); err != nil {
				return info, err
			}
		case 0x2C: // image descriptor
			if pos+10 > len(b) {
				return info, imgErr(ClassTruncated, "GIF ends inside an image descriptor")
			}
			left := int(binary.LittleEndian.Uint16(b[pos+1:]))
			top := int(binary.LittleEndian.Uint16(b[pos+3:]))
			w := int(binary.LittleEndian.Uint16(b[pos+5:]))
			h := int(binary.LittleEndian.Uint16(b[pos+7:]))
			flags := b[pos+9]
			if err := checkPixels("GIF frame", max(w, 1), max(h, 1), maxPixels); err != nil {
				return info, err
			}
			if !checkScreen {
				info.Width, info.Height = max(info.Width, left+w), max(info.Height, top+h)
			}
			pos += 10
			if flags&0x80 != 0 {
				pos += 3 << ((flags & 7) + 1)
			}
			pos++ // LZW minimum code size
			if err := subBlocks("image data"); err != nil {
				return info, err
			}
			info.Frames++
		case 0x3B: // trailer
			if info.Frames == 0 {
				return info, imgErr(ClassCorrupt, "GIF without any image")
			}
			if !checkScreen {
				if err := checkPixels("GIF", info.Width, info.Height, maxPixels); err != nil {
					return info, err
				}
			}
			return info, nil
		default:
			return info, imgErr(ClassCorrupt, "GIF block 0x%02X at offset %d", b[pos], pos)
		}
	}
}

// walkWebP checks the RIFF container (its size and every chunk) and reads
// the size from the VP8, VP8L or VP8X header.
func walkWebP(b []byte, maxPixels int64) (ImageInfo, *ImageError) {
	info := ImageInfo{Frames: 1}
	riffEnd := 8 + int(binary.LittleEndian.Uint32(b[4:]))
	if riffEnd > len(b) {
		return info, imgErr(ClassTruncated, "WebP RIFF size says %d bytes, has %d", riffEnd, len(b))
	}
	pos := 12
	first, image := true, false
	for pos < riffEnd {
		if pos+8 > riffEnd {
			return info, imgErr(ClassTruncated, "WebP ends inside a chunk header")
		}
		fourcc := string(b[pos : pos+4])
		l := int(binary.LittleEndian.Uint32(b[pos+4:]))
		data := pos + 8
		end := data + l
		if end > riffEnd || end < data {
			return info, imgErr(ClassTruncated, "WebP chunk %q needs %d bytes, RIFF has %d", fourcc, end, riffEnd)
		}
		d := b[data:end]
		if first {
			var err *ImageError
			switch fourcc {
			case "VP8 ":
				info.Width, info.Height, err = vp8Size(d)
			case "VP8L":
				info.Width, info.Height, err = vp8lSize(d)
			case "VP8X":
				if len(d) < 10 {
					return info, imgErr(ClassCorrupt, "WebP VP8X chunk of %d bytes", len(d))
				}
				info.Width = 1 + (int(d[4]) | int(d[5])<<8 | int(d[6])<<16)
				info.Height = 1 + (int(d[7]) | int(d[8])<<8 | int(d[9])<<16)
			default:
				return info, imgErr(ClassCorrupt, "WebP starts with chunk %q", fourcc)
			}
			if err != nil {
				return info, err
			}
			if err := checkPixels("WebP", info.Width, info.Height, maxPixels); err != nil {
				return info, err
			}
			first = false
		}
		switch fourcc {
		case "VP8 ", "VP8L", "ANMF":
			image = true
		}
		pos = end + l&1 // chunks are padded to even sizes
	}
	if first || !image {
		return info, imgErr(ClassCorrupt, "WebP without image data")
	}
	return info, nil
}

func vp8Size(d []byte) (int, int, *ImageError) {
	if len(d) < 10 {
		return 0, 0, imgErr(ClassTruncated, "WebP VP8 chunk of %d bytes", len(d))
	}
	if d[0]&1 != 0 {
		return 0, 0, imgErr(ClassCorrupt, "WebP VP8 data does not start with a key frame")
	}
	if d[3] != 0x9D || d[4] != 0x01 || d[5] != 0x2A {
		return 0, 0, imgErr(ClassCorrupt, "WebP VP8 start code missing")
	}
	w := int(binary.LittleEndian.Uint16(d[6:]) & 0x3FFF)
	h := int(binary.LittleEndian.Uint16(d[8:]) & 0x3FFF)
	return w, h, nil
}

func vp8lSize(d []byte) (int, int, *ImageError) {
	if len(d) < 5 {
		return 0, 0, imgErr(ClassTruncated, "WebP VP8L chunk of %d bytes", len(d))
	}
	if d[0] != 0x2F {
		return 0, 0, imgErr(ClassCorrupt, "WebP VP8L signature 0x%02X", d[0])
	}
	v := binary.LittleEndian.Uint32(d[1:])
	return int(v&0x3FFF) + 1, int(v>>14&0x3FFF) + 1, nil
}

// asImageError extracts an *ImageError from err.
func asImageError(err error) (*ImageError, bool) {
	var ie *ImageError
	ok := errors.As(err, &ie)
	return ie, ok
}

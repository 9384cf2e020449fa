// Package vision decodes item images and turns them into model inputs: the
// preprocessing recipes of CLIP (resize of the short side with bicubic
// filtering, centre crop, CLIP mean/std) and PMMRec (squash resize, mean =
// std = 0.5), as CHW float32 tensors.
//
// Resampling follows Pillow's Image.resize bit for bit on 8-bit RGB input
// (the same separable convolution with an antialiasing support that grows
// with the downscale factor, the same fixed-point coefficients and the same
// rounding after each pass), because the reference pipelines (Hugging Face
// CLIPImageProcessor, torchvision transforms on PIL images) resize with
// Pillow. Decoding uses Go's decoders, which differ from libjpeg-turbo's by
// a few levels at chroma edges (Go replicates subsampled chroma where
// libjpeg-turbo interpolates it); lossless formats decode identically.
//
// Everything here works on one image per call and uses one goroutine, so a
// worker pool gets its throughput from running one image per goroutine.
package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/webp"
)

// DefaultMaxPixels is the largest image (width × height) Decode accepts by
// default: 64 megapixels, well above any product photo, far below a
// decompression bomb.
const DefaultMaxPixels = 64 << 20

// ErrUnknownFormat is returned for bytes that are not JPEG, PNG, GIF or WebP.
var ErrUnknownFormat = errors.New("unknown image format (want JPEG, PNG, GIF or WebP)")

// RGB is an 8-bit RGB image: W×H pixels, row-major, 3 bytes per pixel
// (R, G, B), no padding between rows.
type RGB struct {
	W, H int
	Pix  []uint8
}

// NewRGB allocates a black w×h image.
func NewRGB(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

// RGBAt returns the pixel at (x, y).
func (m *RGB) RGBAt(x, y int) (r, g, b uint8) {
	i := 3 * (y*m.W + x)
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// ColorModel implements image.Image.
func (m *RGB) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image: (0, 0)–(W, H).
func (m *RGB) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image (opaque colours).
func (m *RGB) At(x, y int) color.Color {
	if !image.Pt(x, y).In(m.Bounds()) {
		return color.RGBA{}
	}
	r, g, b := m.RGBAt(x, y)
	return color.RGBA{r, g, b, 0xff}
}

// Format names an encoded image format by its magic bytes: "jpeg", "png",
// "gif", "webp", or "" when none matches.
func Format(data []byte) string {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return "jpeg"
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// Decode decodes a JPEG, PNG, GIF (first frame) or WebP image and converts
// it to 8-bit RGB the way Pillow's convert("RGB") does: alpha is dropped
// (colour values are kept un-premultiplied, not composited on a
// background), grey is replicated, palettes are looked up. Images with more
// than maxPixels pixels are refused before their pixels are decoded
// (maxPixels <= 0: DefaultMaxPixels).
func Decode(data []byte, maxPixels int) (*RGB, error) {
	img, err := DecodeImage(data, maxPixels)
	if err != nil {
		return nil, err
	}
	return ToRGB(img), nil
}

// DecodeImage is Decode without the conversion to RGB: it returns the
// decoder's image (*image.YCbCr for JPEG, ...), which ResizeImage reads
// row by row.
func DecodeImage(data []byte, maxPixels int) (image.Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	format := Format(data)
	var decode func([]byte) (image.Image, error)
	var config func([]byte) (image.Config, error)
	switch format {
	case "jpeg":
		decode = func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) }
	case "png":
		decode = func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }
	case "gif":
		decode = func(b []byte) (image.Image, error) { return gif.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return gif.DecodeConfig(bytes.NewReader(b)) }
	case "webp":
		decode = func(b []byte) (image.Image, error) { return webp.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return webp.DecodeConfig(bytes.NewReader(b)) }
	default:
		return nil, fmt.Errorf("decode image (%d bytes): %w", len(data), ErrUnknownFormat)
	}
	cfg, err := config(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s header: %w", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("decode %s: empty image (%d×%d)", format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, fmt.Errorf("decode %s: %d×%d pixels exceeds the limit of %d pixels", format, cfg.Width, cfg.Height, maxPixels)
	}
	img, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	return img, nil
}

// ToRGB converts any image to 8-bit RGB, dropping alpha as Pillow's
// convert("RGB") does. YCbCr (JPEG, lossy WebP), grey, RGBA, NRGBA and
// paletted images take fast paths; other types go through color.NRGBAModel.
func ToRGB(img image.Image) *RGB {
	if m, ok := img.(*RGB); ok {
		return m
	}
	rows := newRowReader(img)
	out := NewRGB(rows.w, rows.h)
	for y := range rows.h {
		rows.row(y, out.Pix[3*y*rows.w:3*(y+1)*rows.w])
	}
	return out
}

// rowReader converts an image to RGB one row at a time.
type rowReader struct {
	w, h int
	// row returns row y (0-based) as 3·w RGB bytes, written into buf or,
	// for an *RGB source, a slice of its pixels.
	row func(y int, buf []uint8) []uint8
}

// newRowReader returns the row converter of img.
func newRowReader(img image.Image) rowReader {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	rr := rowReader{w: w, h: h}
	switch m := img.(type) {
	case *RGB:
		rr.row = func(y int, _ []uint8) []uint8 { return m.Pix[3*y*w : 3*(y+1)*w] }
	case *image.YCbCr:
		rr.row = func(y int, o []uint8) []uint8 { ycbcrRow(m, y, o); return o }
	case *image.NYCbCrA:
		rr.row = func(y int, o []uint8) []uint8 { ycbcrRow(&m.YCbCr, y, o); return o }
	case *image.Gray:
		rr.row = func(y int, o []uint8) []uint8 {
			for x, v := range m.Pix[y*m.Stride : y*m.Stride+w] {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
			return o
		}
	case *image.NRGBA:
		rr.row = func(y int, o []uint8) []uint8 {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
			return o
		}
	case *image.RGBA:
		rr.row = func(y int, o []uint8) []uint8 {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 0xff && a != 0 {
					// Un-premultiply, as color.NRGBAModel does.
					r = uint8(uint32(r) * 0xffff / uint32(a) >> 8)
					g = uint8(uint32(g) * 0xffff / uint32(a) >> 8)
					bl = uint8(uint32(bl) * 0xffff / uint32(a) >> 8)
				}
				o[3*x], o[3*x+1], o[3*x+2] = r, g, bl
			}
			return o
		}
	case *image.Paletted:
		var pal [256][3]uint8
		for i, c := range m.Palette {
			if i >= 256 {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = [3]uint8{n.R, n.G, n.B}
		}
		rr.row = func(y int, o []uint8) []uint8 {
			for x, v := range m.Pix[y*m.Stride : y*m.Stride+w] {
				p := pal[v]
				o[3*x], o[3*x+1], o[3*x+2] = p[0], p[1], p[2]
			}
			return o
		}
	default:
		rr.row = func(y int, o []uint8) []uint8 {
			for x := range w {
				n := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				o[3*x], o[3*x+1], o[3*x+2] = n.R, n.G, n.B
			}
			return o
		}
	}
	return rr
}

// chromaShift returns the horizontal and vertical chroma subsampling
// shifts of a YCbCr subsample ratio.
func chromaShift(r image.YCbCrSubsampleRatio) (hs, vs uint) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 1, 0
	case image.YCbCrSubsampleRatio420:
		return 1, 1
	case image.YCbCrSubsampleRatio440:
		return 0, 1
	case image.YCbCrSubsampleRatio411:
		return 2, 0
	case image.YCbCrSubsampleRatio410:
		return 2, 1
	}
	return 0, 0
}

// ycbcrRow converts row yi (0-based) of m into o with the same integer
// arithmetic as color.YCbCrToRGB (the JFIF conversion), replicating
// subsampled chroma as image.YCbCr.At does. The chroma terms are computed
// once per chroma sample.
func ycbcrRow(m *image.YCbCr, yi int, o []uint8) {
	b := m.Rect
	hs, vs := chromaShift(m.SubsampleRatio)
	y := b.Min.Y + yi
	w := b.Dx()
	yrow := m.Y[yi*m.YStride : yi*m.YStride+w]
	crow := (y>>vs - b.Min.Y>>vs) * m.CStride
	cbrow, crrow := m.Cb[crow:], m.Cr[crow:]
	o = o[:3*w]
	for xi := 0; xi < w; {
		x := b.Min.X + xi
		ci := x>>hs - b.Min.X>>hs
		cb1 := int32(cbrow[ci]) - 128
		cr1 := int32(crrow[ci]) - 128
		rc, gc, bc := 91881*cr1, -22554*cb1-46802*cr1, 116130*cb1
		// The pixels up to the next multiple of 1<<hs share this sample.
		end := min(w, xi+(1<<hs)-(x&(1<<hs-1)))
		for ; xi < end; xi++ {
			yy1 := int32(yrow[xi]) * 0x10101
			r, g, bl := yy1+rc, yy1+gc, yy1+bc
			if uint32(r)&0xff000000 == 0 {
				r >>= 16
			} else {
				r = ^(r >> 31)
			}
			if uint32(g)&0xff000000 == 0 {
				g >>= 16
			} else {
				g = ^(g >> 31)
			}
			if uint32(bl)&0xff000000 == 0 {
				bl >>= 16
			} else {
				bl = ^(bl >> 31)
			}
			q := o[3*xi : 3*xi+3 : 3*xi+3]
			q[0], q[1], q[2] = uint8(r), uint8(g), uint8(bl)
		}
	}
}

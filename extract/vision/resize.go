package vision

import (
	"fmt"
	"image"
	"math"
)

// Filter is a resampling filter, with Pillow's definitions.
type Filter int

// The filters (Pillow's Image.Resampling names).
const (
	Box      Filter = iota + 1 // area average (support 0.5)
	Bilinear                   // triangle (support 1)
	Bicubic                    // Keys cubic with a = -0.5 (support 2)
	Lanczos                    // Lanczos-3 (support 3)
)

// String returns Pillow's name of the filter.
func (f Filter) String() string {
	switch f {
	case Box:
		return "box"
	case Bilinear:
		return "bilinear"
	case Bicubic:
		return "bicubic"
	case Lanczos:
		return "lanczos"
	}
	return fmt.Sprintf("filter(%d)", int(f))
}

// support returns the filter's half-width at scale 1.
func (f Filter) support() float64 {
	switch f {
	case Box:
		return 0.5
	case Bilinear:
		return 1
	case Bicubic:
		return 2
	case Lanczos:
		return 3
	}
	return 0
}

// eval evaluates the filter kernel at x, exactly as Pillow's filters do.
func (f Filter) eval(x float64) float64 {
	switch f {
	case Box:
		if x > -0.5 && x <= 0.5 {
			return 1
		}
		return 0
	case Bilinear:
		if x < 0 {
			x = -x
		}
		if x < 1 {
			return 1 - x
		}
		return 0
	case Bicubic:
		const a = -0.5
		if x < 0 {
			x = -x
		}
		if x < 1 {
			return ((a+2)*x-(a+3))*x*x + 1
		}
		if x < 2 {
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	case Lanczos:
		if x > -3 && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}
	return 0
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

// precisionBits is Pillow's fixed-point precision for 8-bit resampling.
const precisionBits = 32 - 8 - 2

// coeffs are the fixed-point weights of one resampling pass: output sample
// i reads n[i] input samples from min[i] with weights k[i*ksize:].
type coeffs struct {
	ksize int
	min   []int
	n     []int
	k     []int32
}

// precompute returns the weights for resampling inSize samples to outSize,
// following Pillow's precompute_coeffs and normalize_coeffs_8bpc.
func precompute(inSize, outSize int, f Filter) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := f.support() * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{ksize: ksize, min: make([]int, outSize), n: make([]int, outSize), k: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	ss := 1 / filterscale
	for xx := range outSize {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		ww := 0.0
		for x := range xmax {
			w[x] = f.eval((float64(x+xmin) - center + 0.5) * ss)
			ww += w[x]
		}
		k := c.k[xx*ksize : (xx+1)*ksize]
		for x := range xmax {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.min[xx], c.n[xx] = xmin, xmax
	}
	return c
}

// sub keeps the output samples [lo, hi).
func (c coeffs) sub(lo, hi int) coeffs {
	return coeffs{ksize: c.ksize, min: c.min[lo:hi], n: c.n[lo:hi], k: c.k[lo*c.ksize : hi*c.ksize]}
}

// clip8 turns a fixed-point sum into a byte as Pillow's clip8 does.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// Resize resamples src to w×h with filter f, bit for bit as Pillow's
// Image.resize((w, h), f) does on an RGB image.
func Resize(src *RGB, w, h int, f Filter) *RGB {
	return ResizeCrop(src, w, h, image.Rect(0, 0, w, h), f)
}

// ResizeCrop returns the part crop of src resized to w×h, computing only the
// pixels inside crop: the result equals Resize(src, w, h, f) cropped to
// crop (crop is clipped to the w×h frame).
func ResizeCrop(src *RGB, w, h int, crop image.Rectangle, f Filter) *RGB {
	return resizeCrop(newRowReader(src), w, h, crop, f)
}

// ResizeImage is ResizeCrop on any image, converted to RGB as ToRGB does
// but one row at a time, as the horizontal pass reads it: a decoded JPEG
// never exists as a whole RGB copy.
func ResizeImage(img image.Image, w, h int, crop image.Rectangle, f Filter) *RGB {
	return resizeCrop(newRowReader(img), w, h, crop, f)
}

// resizeCrop implements ResizeCrop over a row reader.
func resizeCrop(src rowReader, w, h int, crop image.Rectangle, f Filter) *RGB {
	crop = crop.Intersect(image.Rect(0, 0, w, h))
	cw, ch := crop.Dx(), crop.Dy()
	if cw <= 0 || ch <= 0 || src.w <= 0 || src.h <= 0 {
		return NewRGB(max(cw, 0), max(ch, 0))
	}
	needH, needV := w != src.w, h != src.h

	// Rows of src the vertical pass reads.
	var vc coeffs
	y0, y1 := crop.Min.Y, crop.Max.Y
	if needV {
		vc = precompute(src.h, h, f).sub(crop.Min.Y, crop.Max.Y)
		y0 = vc.min[0]
		y1 = vc.min[ch-1] + vc.n[ch-1]
	}

	// Horizontal pass (or a plain column crop) over rows [y0, y1).
	tmp := NewRGB(cw, y1-y0)
	buf := make([]uint8, 3*src.w)
	var hc coeffs
	if needH {
		hc = precompute(src.w, w, f).sub(crop.Min.X, crop.Max.X)
	}
	for y := y0; y < y1; y++ {
		in := src.row(y, buf)
		out := tmp.Pix[3*(y-y0)*cw : 3*(y-y0+1)*cw]
		if needH {
			horizontal(out, in, hc)
		} else {
			copy(out, in[3*crop.Min.X:])
		}
	}
	if !needV {
		return tmp
	}
	for i := range vc.min {
		vc.min[i] -= y0
	}
	out := NewRGB(cw, ch)
	vertical(out, tmp, vc)
	return out
}

// horizontal resamples one row of input pixels into out along x.
func horizontal(out, in []uint8, c coeffs) {
	for xx := range len(out) / 3 {
		k := c.k[xx*c.ksize : xx*c.ksize+c.n[xx]]
		p := in[3*c.min[xx] : 3*(c.min[xx]+len(k))]
		s0, s1, s2 := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
		for x, kv := range k {
			q := p[3*x : 3*x+3 : 3*x+3]
			s0 += int32(q[0]) * kv
			s1 += int32(q[1]) * kv
			s2 += int32(q[2]) * kv
		}
		out[3*xx], out[3*xx+1], out[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
	}
}

// vertical resamples src into dst along y; c.min is relative to src's
// first row.
func vertical(dst, src *RGB, c coeffs) {
	stride := 3 * src.W
	acc := make([]int32, stride)
	for yy := range dst.H {
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		k := c.k[yy*c.ksize : yy*c.ksize+c.n[yy]]
		for j, kv := range k {
			row := src.Pix[(c.min[yy]+j)*stride : (c.min[yy]+j+1)*stride]
			row = row[:len(acc)]
			for i, v := range row {
				acc[i] += int32(v) * kv
			}
		}
		out := dst.Pix[yy*stride : (yy+1)*stride]
		for i, s := range acc {
			out[i] = clip8(s)
		}
	}
}

package crawl

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/webp"

	"github.com/mmpipe/mmpipe/extract/vision/jpegcheck"
)

// checkImage tells whether b decodes in the format structural validation
// found, and returns the decoded size, without keeping the pixels when they
// are not needed: a JPEG is entropy-decoded block by block by jpegcheck
// (every check image/jpeg makes, none of the inverse DCT, upsampling or
// colour conversion, which cannot fail); PNG, GIF and WebP are decoded.
func checkImage(b []byte, format string) (w, h int, err error) {
	if format == FormatJPEG {
		info, err := jpegcheck.CheckInfo(b)
		if info.Width == 0 || info.Height == 0 {
			return 0, 0, err // image/jpeg's bounds of an empty image
		}
		return info.Width, info.Height, err
	}
	m, err := decodeImage(b, format)
	if err != nil {
		return 0, 0, err
	}
	r := m.Bounds()
	return r.Dx(), r.Dy(), nil
}

// decodeImage fully decodes b in the format structural validation found.
// GIFs decode their first frame (the others were walked structurally).
func decodeImage(b []byte, format string) (image.Image, error) {
	r := bytes.NewReader(b)
	switch format {
	case FormatJPEG:
		return jpeg.Decode(r)
	case FormatPNG:
		return png.Decode(r)
	case FormatGIF:
		return decodeGIF(b)
	case FormatWebP:
		return webp.Decode(r)
	}
	return nil, fmt.Errorf("no decoder for format %q", format)
}

// decodeGIF decodes a GIF's first frame onto its logical screen: a first
// frame smaller than the screen (legal, and what browsers and PIL draw on a
// transparent canvas) is placed at its offset, so the image has the
// screen's size that structural validation reports.
func decodeGIF(b []byte) (image.Image, error) {
	m, err := gif.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	cfg, err := gif.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	screen := image.Rect(0, 0, cfg.Width, cfg.Height)
	if m.Bounds() == screen || !m.Bounds().In(screen) {
		return m, nil
	}
	canvas := image.NewNRGBA(screen)
	draw.Draw(canvas, m.Bounds(), m, m.Bounds().Min, draw.Src)
	return canvas, nil
}

// fitSize returns the size of a w×h image scaled down so that its longer side
// is maxSide (aspect ratio kept, each side at least 1).
func fitSize(w, h, maxSide int) (int, int) {
	if w >= h {
		return maxSide, max(1, (h*maxSide+w/2)/w)
	}
	return max(1, (w*maxSide+h/2)/h), maxSide
}

// resizeJPEG scales img down to fit maxSide with an area (box) filter and
// encodes it as a JPEG of the given quality. Transparent pixels are composed
// over white. YCbCr and gray sources are resampled plane by plane without a
// colour conversion.
func resizeJPEG(img image.Image, maxSide, quality int) ([]byte, int, int, error) {
	b := img.Bounds()
	tw, th := fitSize(b.Dx(), b.Dy(), maxSide)
	var out image.Image
	switch m := img.(type) {
	case *image.YCbCr:
		if b.Min == (image.Point{}) {
			out = resizeYCbCr(m, tw, th)
		}
	case *image.Gray:
		if b.Min == (image.Point{}) {
			g := image.NewGray(image.Rect(0, 0, tw, th))
			resamplePlane(g.Pix, g.Stride, tw, th, m.Pix, m.Stride, b.Dx(), b.Dy(), 1)
			out = g
		}
	}
	if out == nil {
		src := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(src, src.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		draw.Draw(src, src.Bounds(), img, b.Min, draw.Over)
		dst := image.NewRGBA(image.Rect(0, 0, tw, th))
		resamplePlane(dst.Pix, dst.Stride, tw, th, src.Pix, src.Stride, b.Dx(), b.Dy(), 4)
		out = dst
	}
	var buf bytes.Buffer
	buf.Grow(tw * th / 2)
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: quality}); err != nil {
		return nil, 0, 0, fmt.Errorf("encode JPEG: %w", err)
	}
	return buf.Bytes(), tw, th, nil
}

// chromaSize returns the chroma plane size of a YCbCr image of w×h whose
// rectangle starts at the origin.
func chromaSize(w, h int, r image.YCbCrSubsampleRatio) (int, int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return (w + 1) / 2, h
	case image.YCbCrSubsampleRatio420:
		return (w + 1) / 2, (h + 1) / 2
	case image.YCbCrSubsampleRatio440:
		return w, (h + 1) / 2
	case image.YCbCrSubsampleRatio411:
		return (w + 3) / 4, h
	case image.YCbCrSubsampleRatio410:
		return (w + 3) / 4, (h + 1) / 2
	}
	return w, h
}

// resizeYCbCr resamples each plane of m into a 4:2:0 image of tw×th.
func resizeYCbCr(m *image.YCbCr, tw, th int) *image.YCbCr {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dst := image.NewYCbCr(image.Rect(0, 0, tw, th), image.YCbCrSubsampleRatio420)
	resamplePlane(dst.Y, dst.YStride, tw, th, m.Y, m.YStride, w, h, 1)
	cw, ch := chromaSize(w, h, m.SubsampleRatio)
	dcw, dch := chromaSize(tw, th, image.YCbCrSubsampleRatio420)
	resamplePlane(dst.Cb, dst.CStride, dcw, dch, m.Cb, m.CStride, cw, ch, 1)
	resamplePlane(dst.Cr, dst.CStride, dcw, dch, m.Cr, m.CStride, cw, ch, 1)
	return dst
}

// areaWeights is a separable area-average kernel from n source samples to m
// (m <= n): output i averages the source interval [i·n/m, (i+1)·n/m), each
// source sample weighted by its overlap. Weights are fixed point with
// weightBits bits and sum to exactly 1<<weightBits per output.
type areaWeights struct {
	start []int32  // first source index of each output
	off   []int32  // offset of each output's weights in w
	w     []uint16 // the weights
}

const weightBits = 14

func makeAreaWeights(n, m int) areaWeights {
	k := areaWeights{start: make([]int32, m), off: make([]int32, m+1)}
	scale := float64(n) / float64(m)
	for i := 0; i < m; i++ {
		lo, hi := float64(i)*scale, float64(i+1)*scale
		j0, j1 := int(lo), int(hi)
		if float64(j1) < hi {
			j1++
		}
		j1 = min(j1, n)
		if j1 <= j0 {
			j1 = j0 + 1
		}
		k.start[i] = int32(j0)
		k.off[i] = int32(len(k.w))
		sum, best, bestAt := 0, -1, 0
		for j := j0; j < j1; j++ {
			ov := min(hi, float64(j+1)) - max(lo, float64(j))
			wt := int(ov/scale*(1<<weightBits) + 0.5)
			k.w = append(k.w, uint16(wt))
			sum += wt
			if wt > best {
				best, bestAt = wt, len(k.w)-1
			}
		}
		k.w[bestAt] = uint16(int(k.w[bestAt]) + (1 << weightBits) - sum)
	}
	k.off[m] = int32(len(k.w))
	return k
}

// resamplePlane area-resamples an interleaved 8-bit plane of sw×sh pixels
// with ch channels into dst of dw×dh (dw <= sw, dh <= sh): a horizontal
// pass into 16-bit fixed point, then a vertical pass.
func resamplePlane(dst []byte, dstStride, dw, dh int, src []byte, srcStride, sw, sh, ch int) {
	hk := makeAreaWeights(sw, dw)
	vk := makeAreaWeights(sh, dh)
	rowLen := dw * ch
	tmp := make([]uint16, rowLen*sh)
	for y := 0; y < sh; y++ {
		s := src[y*srcStride : y*srcStride+sw*ch]
		t := tmp[y*rowLen : (y+1)*rowLen]
		if ch == 1 {
			hpass1(t, s, &hk)
		} else {
			hpassN(t, s, &hk, ch)
		}
	}
	acc := make([]uint32, rowLen)
	for y := 0; y < dh; y++ {
		clear(acc)
		ws := vk.w[vk.off[y]:vk.off[y+1]]
		sy := int(vk.start[y])
		for k, wt := range ws {
			row := tmp[(sy+k)*rowLen : (sy+k+1)*rowLen]
			row = row[:len(acc)]
			w32 := uint32(wt)
			for i, v := range row {
				acc[i] += w32 * uint32(v)
			}
		}
		d := dst[y*dstStride : y*dstStride+rowLen]
		d = d[:len(acc)]
		for i, v := range acc {
			d[i] = uint8((v + 1<<21) >> 22)
		}
	}
}

// hpass1 is the horizontal pass of a one-channel plane. The results are
// 255<<14 >> 6 = 255<<8 at most: they fit in 16 bits.
func hpass1(t []uint16, s []byte, k *areaWeights) {
	for x := range t {
		ws := k.w[k.off[x]:k.off[x+1]]
		ss := s[k.start[x]:]
		ss = ss[:len(ws)]
		acc := uint32(0)
		for i, w := range ws {
			acc += uint32(w) * uint32(ss[i])
		}
		t[x] = uint16((acc + 1<<5) >> 6)
	}
}

// hpassN is the horizontal pass of an interleaved plane of ch channels.
func hpassN(t []uint16, s []byte, k *areaWeights, ch int) {
	dw := len(t) / ch
	for x := 0; x < dw; x++ {
		ws := k.w[k.off[x]:k.off[x+1]]
		base := int(k.start[x]) * ch
		for c := 0; c < ch; c++ {
			acc := uint32(0)
			p := base + c
			for _, wt := range ws {
				acc += uint32(wt) * uint32(s[p])
				p += ch
			}
			t[x*ch+c] = uint16((acc + 1<<5) >> 6)
		}
	}
}

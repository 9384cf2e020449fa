package synth

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
)

// Image size bounds of the demo's drawn images (inclusive).
const (
	MinImageWidth  = 128
	MaxImageWidth  = 256
	MinImageHeight = 128
	MaxImageHeight = 192
)

// jpegQuality is the quality of the demo's JPEG images.
const jpegQuality = 85

// Shape families; hidden category c draws family c % numFamilies.
const (
	familyCircles = iota
	familyStripes
	familyChecker
	familyTriangles
	familyGradient
	familyDots
	numFamilies
)

// color3 is an RGB colour with components in [0, 255].
type color3 struct{ r, g, b float64 }

// hsv converts hue (degrees), saturation and value in [0, 1] to RGB.
func hsv(h, s, v float64) color3 {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	c := v * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	m := v - c
	var r, g, b float64
	switch {
	case h < 60:
		r, g, b = c, x, 0
	case h < 120:
		r, g, b = x, c, 0
	case h < 180:
		r, g, b = 0, c, x
	case h < 240:
		r, g, b = 0, x, c
	case h < 300:
		r, g, b = x, 0, c
	default:
		r, g, b = c, 0, x
	}
	return color3{(r + m) * 255, (g + m) * 255, (b + m) * 255}
}

// lerp mixes a and b: t = 0 gives a, t = 1 gives b.
func lerp(a, b color3, t float64) color3 {
	return color3{a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t}
}

// canvas is an RGBA image with helpers for procedural drawing.
type canvas struct {
	img  *image.RGBA
	w, h int
}

func newCanvas(w, h int) *canvas {
	return &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h)), w: w, h: h}
}

func clamp255(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	default:
		return uint8(v + 0.5)
	}
}

// set writes colour c at (x, y), which must lie inside the canvas.
func (cv *canvas) set(x, y int, c color3) {
	i := y*cv.img.Stride + 4*x
	p := cv.img.Pix[i : i+4 : i+4]
	p[0], p[1], p[2], p[3] = clamp255(c.r), clamp255(c.g), clamp255(c.b), 255
}

// fill paints every pixel with the colour returned by f.
func (cv *canvas) fill(f func(x, y int) color3) {
	for y := range cv.h {
		for x := range cv.w {
			cv.set(x, y, f(x, y))
		}
	}
}

// disc paints a filled circle clipped to the canvas.
func (cv *canvas) disc(cx, cy, rad float64, c color3) {
	x0, x1 := max(0, int(cx-rad)), min(cv.w-1, int(cx+rad)+1)
	y0, y1 := max(0, int(cy-rad)), min(cv.h-1, int(cy+rad)+1)
	r2 := rad * rad
	for y := y0; y <= y1; y++ {
		dy := float64(y) + 0.5 - cy
		for x := x0; x <= x1; x++ {
			dx := float64(x) + 0.5 - cx
			if dx*dx+dy*dy <= r2 {
				cv.set(x, y, c)
			}
		}
	}
}

// triangle paints a filled triangle clipped to the canvas.
func (cv *canvas) triangle(ax, ay, bx, by, cx, cy float64, c color3) {
	x0 := max(0, int(math.Floor(min(ax, bx, cx))))
	x1 := min(cv.w-1, int(math.Ceil(max(ax, bx, cx))))
	y0 := max(0, int(math.Floor(min(ay, by, cy))))
	y1 := min(cv.h-1, int(math.Ceil(max(ay, by, cy))))
	edge := func(px, py, qx, qy, x, y float64) float64 { return (qx-px)*(y-py) - (qy-py)*(x-px) }
	area := edge(ax, ay, bx, by, cx, cy)
	if area == 0 {
		return
	}
	for y := y0; y <= y1; y++ {
		fy := float64(y) + 0.5
		for x := x0; x <= x1; x++ {
			fx := float64(x) + 0.5
			w0 := edge(bx, by, cx, cy, fx, fy) * area
			w1 := edge(cx, cy, ax, ay, fx, fy) * area
			w2 := edge(ax, ay, bx, by, fx, fy) * area
			if w0 >= 0 && w1 >= 0 && w2 >= 0 {
				cv.set(x, y, c)
			}
		}
	}
}

// noise adds uniform per-channel noise of amplitude amp.
func (cv *canvas) noise(r *rand.Rand, amp float64) {
	pix := cv.img.Pix
	var bits uint64
	left := 0
	for i := 0; i < len(pix); i += 4 {
		for ch := range 3 {
			if left == 0 {
				bits, left = r.Uint64(), 8
			}
			n := (float64(uint8(bits))/127.5 - 1) * amp
			bits >>= 8
			left--
			pix[i+ch] = clamp255(float64(pix[i+ch]) + n)
		}
	}
}

// drawItemImage draws the image of an item of hidden category cat out of
// nCats. Each category has its own base hue (spread around the colour
// wheel) and shape family; r supplies the per-item jitter of size, position,
// hue and noise.
func drawItemImage(r *rand.Rand, cat, nCats int) *image.RGBA {
	w := MinImageWidth + r.IntN(MaxImageWidth-MinImageWidth+1)
	h := MinImageHeight + r.IntN(MaxImageHeight-MinImageHeight+1)
	cv := newCanvas(w, h)

	baseHue := 15 + 360*float64(cat)/float64(nCats)
	jit := func(a float64) float64 { return (r.Float64()*2 - 1) * a }
	hue := baseHue + jit(8)
	fg := hsv(hue, 0.75+0.2*r.Float64(), 0.55+0.3*r.Float64())
	accent := hsv(hue+20+jit(6), 0.55+0.3*r.Float64(), 0.75+0.2*r.Float64())
	bg := hsv(hue+jit(6), 0.15+0.15*r.Float64(), 0.85+0.12*r.Float64())
	side := float64(min(w, h))
	fw, fh := float64(w), float64(h)

	switch cat % numFamilies {
	case familyCircles:
		cv.fill(func(int, int) color3 { return bg })
		for i := range 2 + r.IntN(4) {
			c := fg
			if i%2 == 1 {
				c = accent
			}
			cv.disc(fw*(0.15+0.7*r.Float64()), fh*(0.15+0.7*r.Float64()), side*(0.1+0.2*r.Float64()), c)
		}
	case familyStripes:
		// Stripe orientation depends on the category round so that
		// categories sharing the family still differ in gradient direction.
		theta := (float64(cat/numFamilies)*55 + 20 + jit(8)) * math.Pi / 180
		period := 10 + 10*r.Float64()
		phase := r.Float64() * period
		cs, sn := math.Cos(theta), math.Sin(theta)
		cv.fill(func(x, y int) color3 {
			t := (float64(x)*cs + float64(y)*sn + phase) / period
			if t-math.Floor(t) < 0.5 {
				return fg
			}
			return bg
		})
	case familyChecker:
		cell := 10 + r.IntN(15)
		ox, oy := r.IntN(cell), r.IntN(cell)
		cv.fill(func(x, y int) color3 {
			if ((x+ox)/cell+(y+oy)/cell)%2 == 0 {
				return fg
			}
			return accent
		})
	case familyTriangles:
		cv.fill(func(int, int) color3 { return bg })
		for i := range 1 + r.IntN(3) {
			c := fg
			if i%2 == 1 {
				c = accent
			}
			cx, cy := fw*(0.3+0.4*r.Float64()), fh*(0.3+0.4*r.Float64())
			rad := side * (0.25 + 0.2*r.Float64())
			rot := r.Float64() * 2 * math.Pi
			var px, py [3]float64
			for k := range 3 {
				a := rot + float64(k)*2*math.Pi/3 + jit(0.3)
				px[k], py[k] = cx+rad*math.Cos(a), cy+rad*math.Sin(a)
			}
			cv.triangle(px[0], py[0], px[1], py[1], px[2], py[2], c)
		}
	case familyGradient:
		theta := r.Float64() * 2 * math.Pi
		cs, sn := math.Cos(theta), math.Sin(theta)
		diag := math.Hypot(fw, fh)
		far := hsv(hue+35+jit(8), 0.5+0.3*r.Float64(), 0.9)
		cv.fill(func(x, y int) color3 {
			t := ((float64(x)-fw/2)*cs+(float64(y)-fh/2)*sn)/diag + 0.5
			return lerp(fg, far, t)
		})
	case familyDots:
		cv.fill(func(int, int) color3 { return bg })
		spacing := 10 + 6*r.Float64()
		rad := 2 + 2*r.Float64()
		ox, oy := r.Float64()*spacing, r.Float64()*spacing
		for y := oy; y < fh+spacing; y += spacing {
			for x := ox; x < fw+spacing; x += spacing {
				cv.disc(x+jit(2), y+jit(2), rad, fg)
			}
		}
	}
	cv.noise(r, 4+8*r.Float64())
	return cv.img
}

// encodeImage encodes img as PNG when asPNG is set, JPEG otherwise.
func encodeImage(img image.Image, asPNG bool) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	if asPNG {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality})
	}
	if err != nil {
		return nil, fmt.Errorf("encode image: %w", err)
	}
	return buf.Bytes(), nil
}

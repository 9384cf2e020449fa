package vision

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// grey builds an RGB image from rows of values (R = v, G = v/2, B = 255−v).
func grey(rows ...[]uint8) *RGB {
	m := NewRGB(len(rows[0]), len(rows))
	for y, row := range rows {
		for x, v := range row {
			i := 3 * (y*m.W + x)
			m.Pix[i], m.Pix[i+1], m.Pix[i+2] = v, v/2, 255-v
		}
	}
	return m
}

// triangle and cubic are the filter kernels written out by hand.
func triangle(x float64) float64 { return math.Max(0, 1-math.Abs(x)) }

func cubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	switch {
	case x < 1:
		return (a+2)*x*x*x - (a+3)*x*x + 1
	case x < 2:
		return a*x*x*x - 5*a*x*x + 8*a*x - 4*a
	}
	return 0
}

// refWeights computes by formula the normalised weights output sample xx
// gives to the input samples when inSize samples become outSize: the
// kernel, stretched by the downscale factor, centred on (xx+0.5)·scale in
// pixel-centre coordinates and cut to the input.
func refWeights(kernel func(float64) float64, support float64, inSize, outSize, xx int) map[int]float64 {
	scale := float64(inSize) / float64(outSize)
	fs := math.Max(scale, 1)
	center := (float64(xx) + 0.5) * scale
	w := map[int]float64{}
	sum := 0.0
	for x := 0; x < inSize; x++ {
		d := (float64(x) + 0.5 - center) / fs
		if math.Abs(d) > support {
			continue
		}
		if v := kernel(d); v != 0 {
			w[x] = v
			sum += v
		}
	}
	for x := range w {
		w[x] /= sum
	}
	return w
}

// refResize resizes by formula, rounding to bytes after the horizontal pass
// and after the vertical pass (as Pillow does); it returns float values
// before the final rounding.
func refResize(src *RGB, w, h int, kernel func(float64) float64, support float64) (out []float64) {
	tmp := make([]float64, 3*w*src.H)
	for y := 0; y < src.H; y++ {
		for xx := 0; xx < w; xx++ {
			for x, wt := range refWeights(kernel, support, src.W, w, xx) {
				for c := range 3 {
					tmp[3*(y*w+xx)+c] += wt * float64(src.Pix[3*(y*src.W+x)+c])
				}
			}
		}
	}
	for i, v := range tmp {
		tmp[i] = math.Min(255, math.Max(0, math.Floor(v+0.5)))
	}
	out = make([]float64, 3*w*h)
	for yy := 0; yy < h; yy++ {
		for y, wt := range refWeights(kernel, support, src.H, h, yy) {
			for x := 0; x < w; x++ {
				for c := range 3 {
					out[3*(yy*w+x)+c] += wt * tmp[3*(y*w+x)+c]
				}
			}
		}
	}
	return out
}

func checkNear(t *testing.T, name string, got *RGB, want []float64) {
	t.Helper()
	if len(got.Pix) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got.Pix), len(want))
	}
	for i, v := range want {
		v = math.Min(255, math.Max(0, v))
		// Pillow's fixed-point weights may round a value within 1e-3 of a
		// half the other way; anything else must be the nearest byte.
		if d := math.Abs(float64(got.Pix[i]) - v); d > 0.5+1e-3 {
			t.Errorf("%s: value %d (pixel %d channel %d) = %d, want %.4f", name, i, i/3, i%3, got.Pix[i], v)
		}
	}
}

func TestBilinear4x4To2x2ByHand(t *testing.T) {
	src := grey(
		[]uint8{10, 20, 30, 40},
		[]uint8{50, 60, 70, 80},
		[]uint8{90, 100, 110, 120},
		[]uint8{130, 140, 150, 200},
	)
	// Downscale by 2 with a triangle stretched to support 2: output 0 sees
	// inputs 0, 1, 2 at distances 0.25, 0.25, 0.75 → weights 3/7, 3/7, 1/7;
	// output 1 sees inputs 1, 2, 3 → 1/7, 3/7, 3/7.
	w0 := []float64{3.0 / 7, 3.0 / 7, 1.0 / 7, 0}
	w1 := []float64{0, 1.0 / 7, 3.0 / 7, 3.0 / 7}
	ws := [][]float64{w0, w1}
	for xx, want := range ws {
		got := refWeights(triangle, 1, 4, 2, xx)
		for x, w := range want {
			if math.Abs(got[x]-w) > 1e-12 {
				t.Fatalf("reference weights of output %d: %v, want %v", xx, got, want)
			}
		}
	}
	want := make([]float64, 3*4)
	for c := range 3 {
		var tmp [4][2]float64 // rounded horizontal pass
		for y := range 4 {
			for xx := range 2 {
				s := 0.0
				for x := range 4 {
					s += ws[xx][x] * float64(src.Pix[3*(y*4+x)+c])
				}
				tmp[y][xx] = math.Floor(s + 0.5)
			}
		}
		for yy := range 2 {
			for xx := range 2 {
				s := 0.0
				for y := range 4 {
					s += ws[yy][y] * tmp[y][xx]
				}
				want[3*(yy*2+xx)+c] = s
			}
		}
	}
	checkNear(t, "bilinear 4x4→2x2", Resize(src, 2, 2, Bilinear), want)
	// Spot check one value fully by hand: red channel of output (0, 0).
	// Rows 0..2 horizontally: (3·10+3·20+30)/7 = 17.14 → 17, (3·50+3·60+70)/7
	// = 57.14 → 57, (3·90+3·100+110)/7 = 97.14 → 97; vertically
	// (3·17+3·57+97)/7 = 45.57 → 46.
	if r, _, _ := Resize(src, 2, 2, Bilinear).RGBAt(0, 0); r != 46 {
		t.Errorf("red of (0,0) = %d, want 46", r)
	}
}

func TestResizeMatchesFormula(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := NewRGB(13, 9)
	for i := range src.Pix {
		src.Pix[i] = uint8(r.IntN(256))
	}
	cases := []struct {
		w, h    int
		f       Filter
		kernel  func(float64) float64
		support float64
	}{
		{6, 4, Bilinear, triangle, 1},
		{5, 3, Bicubic, cubic, 2},
		{20, 17, Bicubic, cubic, 2}, // upscale: the kernel keeps its width
		{7, 9, Bicubic, cubic, 2},   // only one axis changes
		{3, 2, Box, func(x float64) float64 {
			if x > -0.5 && x <= 0.5 {
				return 1
			}
			return 0
		}, 0.5},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s 13x9→%dx%d", c.f, c.w, c.h)
		got := Resize(src, c.w, c.h, c.f)
		want := refResize(src, c.w, c.h, c.kernel, c.support)
		checkNear(t, name, got, want)
	}
}

func TestResizeCropEqualsResizeThenCrop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src := NewRGB(40, 31)
	for i := range src.Pix {
		src.Pix[i] = uint8(r.IntN(256))
	}
	for _, f := range []Filter{Bilinear, Bicubic, Lanczos} {
		full := Resize(src, 23, 17, f)
		crop := image.Rect(3, 2, 20, 15)
		got := ResizeCrop(src, 23, 17, crop, f)
		for y := crop.Min.Y; y < crop.Max.Y; y++ {
			for x := crop.Min.X; x < crop.Max.X; x++ {
				r1, g1, b1 := full.RGBAt(x, y)
				r2, g2, b2 := got.RGBAt(x-crop.Min.X, y-crop.Min.Y)
				if r1 != r2 || g1 != g2 || b1 != b2 {
					t.Fatalf("%s: crop pixel (%d,%d) = %d,%d,%d, full resize has %d,%d,%d", f, x, y, r2, g2, b2, r1, g1, b1)
				}
			}
		}
	}
	// Same size: a plain copy.
	same := Resize(src, 40, 31, Bicubic)
	if !bytes.Equal(same.Pix, src.Pix) {
		t.Error("resize to the same size changed pixels")
	}
}

func TestRecipeNormalisationAndLayout(t *testing.T) {
	// A 224×224 image needs no resize or crop under CLIP's recipe: each
	// output value is (v/255 − mean)/std, channel-major.
	src := NewRGB(224, 224)
	for y := range 224 {
		for x := range 224 {
			i := 3 * (y*224 + x)
			src.Pix[i], src.Pix[i+1], src.Pix[i+2] = uint8(x), uint8(y), uint8(x+y)
		}
	}
	rc := CLIP()
	out := make([]float32, rc.Len())
	rc.Normalize(rc.Resample(src), out)
	mean := []float64{0.48145466, 0.4578275, 0.40821073}
	std := []float64{0.26862954, 0.26130258, 0.27577711}
	for _, p := range [][2]int{{0, 0}, {5, 7}, {223, 1}, {100, 223}} {
		x, y := p[0], p[1]
		vals := []float64{float64(x), float64(y), float64(uint8(x + y))}
		for c := range 3 {
			want := (vals[c]/255 - mean[c]) / std[c]
			got := out[c*224*224+y*224+x]
			if math.Abs(float64(got)-want) > 1e-5 {
				t.Errorf("channel %d at (%d,%d) = %v, want %v", c, x, y, got, want)
			}
		}
	}
	// PMMRec: mean = std = 0.5 maps 0 → −1 and 255 → 1.
	pm := PMMRec()
	lut := pm.lut()
	if lut[0][0] != -1 || lut[2][255] != 1 {
		t.Errorf("pmmrec maps 0, 255 to %v, %v; want -1, 1", lut[0][0], lut[2][255])
	}
}

func TestRecipeGeometry(t *testing.T) {
	cases := []struct {
		r          Recipe
		w, h       int
		rw, rh     int
		cropX, cyY int
	}{
		{CLIP(), 640, 480, 298, 224, 37, 0}, // int(224·640/480) = 298
		{CLIP(), 480, 640, 224, 298, 0, 37},
		{CLIP(), 100, 100, 224, 224, 0, 0},
		{CLIP(), 225, 224, 225, 224, 0, 0},
		{PMMRec(), 640, 480, 224, 224, 0, 0},
	}
	for _, c := range cases {
		rw, rh, crop := c.r.Geometry(c.w, c.h)
		if rw != c.rw || rh != c.rh || crop.Min != image.Pt(c.cropX, c.cyY) || crop.Dx() != 224 || crop.Dy() != 224 {
			t.Errorf("%s %dx%d: resize %dx%d crop %v; want %dx%d from (%d,%d)", c.r.Name, c.w, c.h, rw, rh, crop, c.rw, c.rh, c.cropX, c.cyY)
		}
	}
}

// testImage draws a smooth picture with noise and sharp edges.
func testImage(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := 128 + 100*math.Sin(float64(x)/9+float64(seed))*math.Cos(float64(y)/7)
			c := color.RGBA{uint8(v), uint8(x * 255 / w), uint8(y * 255 / h), 255}
			if (x/16+y/16)%5 == 0 {
				c.R, c.B = 255-c.R, uint8(r.IntN(256))
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPreprocessShapes(t *testing.T) {
	for _, rc := range []Recipe{CLIP(), PMMRec()} {
		for _, sz := range [][2]int{{640, 480}, {97, 300}, {224, 224}, {10, 12}} {
			data := encodePNG(t, testImage(sz[0], sz[1], 1))
			out, err := rc.Preprocess(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 3*224*224 || rc.Len() != len(out) {
				t.Errorf("%s on %v: %d values, want 3×224×224", rc.Name, sz, len(out))
			}
			lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
			for _, v := range out {
				lo, hi = min(lo, v), max(hi, v)
			}
			if lo < -2.2 || hi > 2.7 || hi-lo < 0.5 {
				t.Errorf("%s on %v: values span [%v, %v]", rc.Name, sz, lo, hi)
			}
		}
		if s := rc.Shape(); len(s) != 3 || s[0] != 3 || s[1] != 224 || s[2] != 224 {
			t.Errorf("%s shape %v", rc.Name, s)
		}
	}
	if !strings.Contains(CLIP().String(), "bicubic") || !strings.Contains(PMMRec().String(), "ignoring aspect") {
		t.Errorf("recipe descriptions: %q / %q", CLIP(), PMMRec())
	}
}

func TestDecodeFormats(t *testing.T) {
	img := testImage(37, 23, 2)
	want := ToRGB(img)
	// PNG: lossless.
	got, err := Decode(encodePNG(t, img), 0)
	if err != nil || !bytes.Equal(got.Pix, want.Pix) {
		t.Fatalf("png round trip: err %v", err)
	}
	// GIF: paletted; compare with the palette lookup.
	pal := image.NewPaletted(img.Bounds(), palette.Plan9)
	draw.Draw(pal, pal.Rect, img, image.Point{}, draw.Src)
	var gb bytes.Buffer
	if err := gif.Encode(&gb, pal, nil); err != nil {
		t.Fatal(err)
	}
	got, err = Decode(gb.Bytes(), 0)
	if err != nil || !bytes.Equal(got.Pix, ToRGB(pal).Pix) {
		t.Fatalf("gif: err %v", err)
	}
	// JPEG: lossy, close to the source.
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	got, err = Decode(jb.Bytes(), 0)
	if err != nil {
		t.Fatal(err)
	}
	jimg, _ := jpeg.Decode(bytes.NewReader(jb.Bytes()))
	for y := range 23 {
		for x := range 37 {
			r, g, b, _ := jimg.At(x, y).RGBA()
			gr, gg, gbb := got.RGBAt(x, y)
			if uint8(r>>8) != gr || uint8(g>>8) != gg || uint8(b>>8) != gbb {
				t.Fatalf("jpeg pixel (%d,%d) = %d,%d,%d, image.YCbCr.At gives %d,%d,%d", x, y, gr, gg, gbb, r>>8, g>>8, b>>8)
			}
		}
	}
	// WebP: the lossless file holds the PNG's pixels.
	pngData, _ := os.ReadFile("testdata/blue-purple-pink.png")
	webpData, _ := os.ReadFile("testdata/blue-purple-pink.lossless.webp")
	a, err1 := Decode(pngData, 0)
	b, err2 := Decode(webpData, 0)
	if err1 != nil || err2 != nil || a.W != 150 || a.H != 100 || !bytes.Equal(a.Pix, b.Pix) {
		t.Fatalf("lossless webp differs from png: %v %v", err1, err2)
	}
	lossy, _ := os.ReadFile("testdata/video-001.lossy.webp")
	c, err := Decode(lossy, 0)
	if err != nil || c.W != 150 || c.H != 103 {
		t.Fatalf("lossy webp: %v", err)
	}
	// Refusals name what is wrong.
	if _, err := Decode([]byte("not an image at all"), 0); err == nil || !strings.Contains(err.Error(), "unknown image format") {
		t.Errorf("garbage: %v", err)
	}
	if _, err := Decode(encodePNG(t, testImage(100, 100, 1)), 5000); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("pixel limit: %v", err)
	}
	if _, err := Decode(jb.Bytes()[:len(jb.Bytes())/2], 0); err == nil {
		t.Error("truncated jpeg decoded")
	}
}

func TestToRGBDropsAlphaLikePillow(t *testing.T) {
	n := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	n.Pix = []uint8{200, 100, 50, 128}
	if r, g, b := ToRGB(n).RGBAt(0, 0); r != 200 || g != 100 || b != 50 {
		t.Errorf("nrgba → %d,%d,%d; want the colour without alpha", r, g, b)
	}
	m := image.NewRGBA(image.Rect(0, 0, 1, 1))
	m.Pix = []uint8{100, 50, 25, 128} // premultiplied 200,100,50 at alpha 128
	if r, g, b := ToRGB(m).RGBAt(0, 0); r < 198 || r > 200 || g < 99 || g > 100 || b < 49 || b > 50 {
		t.Errorf("rgba → %d,%d,%d; want about 199,99,49", r, g, b)
	}
}

// pythonPIL returns the interpreter of the Pillow comparison
// ($MMPIPE_PYTHON, else /usr/bin/python3) when it imports Pillow and numpy.
func pythonPIL() (string, string) {
	py := os.Getenv("MMPIPE_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	out, err := exec.Command(py, "-c", "import PIL, numpy").CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("%s cannot import PIL and numpy (%v: %s); install python3-pil and python3-numpy or set MMPIPE_PYTHON", py, err, out)
	}
	return py, ""
}

const pillowScript = `
import sys, numpy as np
from PIL import Image

def ref(src, dst, mode):
    im = Image.open(src).convert("RGB")
    w, h = im.size
    if mode == "clip":
        # Hugging Face CLIPImageProcessor: resize shortest edge, centre crop.
        short, long = (w, h) if w <= h else (h, w)
        ns, nl = 224, int(224 * long / short)
        size = (ns, nl) if w <= h else (nl, ns)
        im = im.resize(size, Image.BICUBIC)
        a = np.asarray(im)
        top, left = (a.shape[0] - 224) // 2, (a.shape[1] - 224) // 2
        a = a[top:top + 224, left:left + 224]
        mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
        std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    else:
        # torchvision Resize((224, 224)) on a PIL image, ToTensor, Normalize(0.5, 0.5).
        a = np.asarray(im.resize((224, 224), Image.BILINEAR))
        mean = np.full(3, 0.5, dtype=np.float32)
        std = np.full(3, 0.5, dtype=np.float32)
    x = (a.astype(np.float32) / np.float32(255) - mean) / std
    with open(dst, "wb") as f:
        f.write(np.ascontiguousarray(a).tobytes())
        f.write(np.ascontiguousarray(x.transpose(2, 0, 1)).astype("<f4").tobytes())

args = sys.argv[1:]
for i in range(0, len(args), 3):
    ref(args[i], args[i + 1], args[i + 2])
`

// TestMatchesPillow runs the reference pipelines (Pillow + numpy, as Hugging
// Face and torchvision do them) on the same lossless images and requires
// identical resized bytes and float values within 1e-6.
func TestMatchesPillow(t *testing.T) {
	py, why := pythonPIL()
	if py == "" {
		if os.Getenv("MMPIPE_REQUIRE_PYTHON") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "ref.py")
	if err := os.WriteFile(script, []byte(pillowScript), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{}
	for i, sz := range [][2]int{{640, 480}, {301, 517}, {225, 224}, {150, 90}, {1000, 230}} {
		inputs[fmt.Sprintf("img%d.png", i)] = encodePNG(t, testImage(sz[0], sz[1], uint64(i)))
	}
	inputs["webp.webp"], _ = os.ReadFile("testdata/blue-purple-pink.lossless.webp")
	type job struct {
		name string
		data []byte
		rc   Recipe
		ref  string
	}
	var jobs []job
	args := []string{script}
	for name, data := range inputs {
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, rc := range []Recipe{CLIP(), PMMRec()} {
			ref := filepath.Join(dir, name+"."+rc.Name+".bin")
			jobs = append(jobs, job{name, data, rc, ref})
			args = append(args, src, ref, rc.Name)
		}
	}
	if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("pillow reference: %v\n%s", err, out)
	}
	for _, j := range jobs {
		name, data, rc := j.name, j.data, j.rc
		raw, err := os.ReadFile(j.ref)
		if err != nil {
			t.Fatal(err)
		}
		n := 3 * 224 * 224
		if len(raw) != n+4*n {
			t.Fatalf("reference has %d bytes", len(raw))
		}
		img, err := Decode(data, 0)
		if err != nil {
			t.Fatal(err)
		}
		res := rc.Resample(img)
		diff := 0
		for i := range n {
			if res.Pix[i] != raw[i] {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s %s: %d of %d resized bytes differ from Pillow's", name, rc.Name, diff, n)
		}
		got, err := rc.Preprocess(data)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range n {
			want := math.Float32frombits(binary.LittleEndian.Uint32(raw[n+4*i:]))
			worst = math.Max(worst, math.Abs(float64(got[i]-want)))
		}
		if worst > 1e-6 {
			t.Errorf("%s %s: normalised values differ from numpy's by up to %g", name, rc.Name, worst)
		}
	}
}

// TestRowConversion checks the per-type RGB conversions against the
// generic color.NRGBAModel path, on sub-images with odd origins (chroma
// offsets), and that resizing the decoded image row by row equals
// resizing its full RGB copy.
func TestRowConversion(t *testing.T) {
	src := testImage(29, 19, 5)
	var imgs []image.Image
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		m := image.NewYCbCr(src.Rect, ratio)
		for y := range 19 {
			for x := range 29 {
				c := src.RGBAAt(x, y)
				yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
				m.Y[m.YOffset(x, y)] = yy
				m.Cb[m.COffset(x, y)] = cb
				m.Cr[m.COffset(x, y)] = cr
			}
		}
		imgs = append(imgs, m, m.SubImage(image.Rect(3, 1, 26, 18)))
	}
	gray := image.NewGray(src.Rect)
	draw.Draw(gray, gray.Rect, src, image.Point{}, draw.Src)
	nrgba := image.NewNRGBA(src.Rect)
	draw.Draw(nrgba, nrgba.Rect, src, image.Point{}, draw.Src)
	pal := image.NewPaletted(src.Rect, palette.WebSafe)
	draw.Draw(pal, pal.Rect, src, image.Point{}, draw.Src)
	cmyk := image.NewCMYK(src.Rect)
	draw.Draw(cmyk, cmyk.Rect, src, image.Point{}, draw.Src)
	imgs = append(imgs, src, src.SubImage(image.Rect(1, 2, 20, 15)), gray, nrgba, pal, cmyk)
	for k, img := range imgs {
		got := ToRGB(img)
		b := img.Bounds()
		if got.W != b.Dx() || got.H != b.Dy() {
			t.Fatalf("image %d (%T): %dx%d, want %v", k, img, got.W, got.H, b)
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				want := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				r, g, bl := got.RGBAt(x-b.Min.X, y-b.Min.Y)
				if r != want.R || g != want.G || bl != want.B {
					t.Fatalf("image %d (%T %v) pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", k, img, b, x, y, r, g, bl, want.R, want.G, want.B)
				}
			}
		}
		for _, rc := range []Recipe{CLIP(), PMMRec()} {
			if !bytes.Equal(rc.ResampleImage(img).Pix, rc.Resample(got).Pix) {
				t.Fatalf("image %d (%T): resizing row by row differs from resizing the RGB copy", k, img)
			}
		}
	}
}

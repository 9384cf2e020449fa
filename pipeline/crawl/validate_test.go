package crawl

import (
	"bytes"
	"image"
	"image/color"
	"os/exec"
	"testing"
)

func TestStructural(t *testing.T) {
	f := newFixtures(t)
	jpegTrailer := append(bytes.Clone(f.jpeg), make([]byte, 100)...) // zero padding after EOI
	cases := []struct {
		name   string
		data   []byte
		max    int64
		format string
		w, h   int
		class  string
	}{
		{"jpeg", f.jpeg, 0, FormatJPEG, 96, 64, ""},
		{"jpeg 640x480", f.big, 0, FormatJPEG, 640, 480, ""},
		{"jpeg with trailing bytes", jpegTrailer, 0, FormatJPEG, 96, 64, ""},
		{"png", f.png, 0, FormatPNG, 40, 30, ""},
		{"png alpha", f.alpha, 0, FormatPNG, 300, 100, ""},
		{"gif", f.gif, 0, FormatGIF, 33, 21, ""},
		{"animated gif", f.anim, 0, FormatGIF, 20, 10, ""},
		{"webp lossless", webpLossless, 0, FormatWebP, 1, 1, ""},
		{"webp lossy", webpLossy, 0, FormatWebP, 1, 1, ""},
		{"webp alpha (VP8X)", webpAlpha, 0, FormatWebP, 1, 1, ""},
		{"truncated jpeg", f.truncated, 0, FormatJPEG, 96, 64, ClassTruncated},
		{"jpeg without EOI", f.jpeg[:len(f.jpeg)-2], 0, FormatJPEG, 96, 64, ClassTruncated},
		{"png bomb", f.bombPNG, DefaultMaxPixels, FormatPNG, 100000, 100000, ClassPixelLimit},
		{"gif bomb", f.bombGIF, DefaultMaxPixels, FormatGIF, 65535, 65535, ClassPixelLimit},
		{"png bomb without limit", f.bombPNG, -1, FormatPNG, 100000, 100000, ""},
		{"jpeg over a small limit", f.big, 640*480 - 1, FormatJPEG, 640, 480, ClassPixelLimit},
		{"jpeg at the limit", f.big, 640 * 480, FormatJPEG, 640, 480, ""},
		{"png with a bad idat (structurally fine)", f.badIDAT, 0, FormatPNG, 40, 30, ""},
		{"png with a bad crc", flip(f.png, len(f.png)/2), 0, FormatPNG, 40, 30, ClassCorrupt},
		{"png truncated", f.png[:len(f.png)-5], 0, FormatPNG, 40, 30, ClassTruncated},
		{"gif truncated", f.gif[:len(f.gif)-1], 0, FormatGIF, 33, 21, ClassTruncated},
		{"webp truncated", webpLossy[:len(webpLossy)-4], 0, FormatWebP, 0, 0, ClassTruncated},
		{"html", f.html, 0, "", 0, 0, ClassNotImage},
		{"empty", nil, 0, "", 0, 0, ClassNotImage},
		{"json", []byte(`{"error":"forbidden"}`), 0, "", 0, 0, ClassNotImage},
		{"bmp", f.bmp, 0, "", 0, 0, ClassUnsupported},
		{"tiff", []byte("II*\x00\x08\x00\x00\x00"), 0, "", 0, 0, ClassUnsupported},
		{"avif", []byte("\x00\x00\x00\x20ftypavif\x00\x00\x00\x00"), 0, "", 0, 0, ClassUnsupported},
		{"svg", []byte("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), 0, "", 0, 0, ClassUnsupported},
		{"jpeg signature only", []byte{0xFF, 0xD8, 0xFF}, 0, FormatJPEG, 0, 0, ClassTruncated},
		{"jpeg EOI before frame", []byte{0xFF, 0xD8, 0xFF, 0xD9}, 0, FormatJPEG, 0, 0, ClassCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := Structural(c.data, c.max)
			if c.class == "" {
				if err != nil {
					t.Fatalf("Structural: %v", err)
				}
			} else {
				ie, ok := asImageError(err)
				if !ok || ie.Class != c.class {
					t.Fatalf("Structural error %v, want class %s", err, c.class)
				}
			}
			if info.Format != c.format {
				t.Errorf("format %q, want %q", info.Format, c.format)
			}
			if c.w != 0 && (info.Width != c.w || info.Height != c.h) {
				t.Errorf("size %d×%d, want %d×%d", info.Width, info.Height, c.w, c.h)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x55
	return out
}

// Every proper prefix of a valid image must fail structural validation:
// the walk must reach the end marker, so no truncation slips through.
func TestStructuralRejectsEveryTruncation(t *testing.T) {
	f := newFixtures(t)
	for _, c := range []struct {
		name string
		data []byte
	}{{"jpeg", f.jpeg}, {"png", f.png}, {"gif", f.gif}, {"animated gif", f.anim},
		{"webp lossless", webpLossless}, {"webp lossy", webpLossy}, {"webp alpha", webpAlpha}} {
		if _, err := Structural(c.data, 0); err != nil {
			t.Fatalf("%s: full file fails: %v", c.name, err)
		}
		fails := 0
		for n := 0; n < len(c.data); n++ {
			if _, err := Structural(c.data[:n], 0); err == nil {
				t.Errorf("%s: prefix of %d of %d bytes passes", c.name, n, len(c.data))
				if fails++; fails > 3 {
					break
				}
			}
		}
	}
}

// Structural validation agrees with the Go decoders on size, and (where
// the Debian python3-pil package exists) with PIL.
func TestFixtures(t *testing.T) {
	f := newFixtures(t)
	for name, b := range map[string][]byte{"jpeg": f.jpeg, "png": f.png, "gif": f.gif, "webp lossless": webpLossless,
		"webp lossy": webpLossy, "webp alpha": webpAlpha, "alpha png": f.alpha, "big": f.big} {
		info, err := Structural(b, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := decodeImage(b, info.Format)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if m.Bounds().Dx() != info.Width || m.Bounds().Dy() != info.Height {
			t.Errorf("%s: decoded %v, header %d×%d", name, m.Bounds(), info.Width, info.Height)
		}
	}
	if _, err := decodeImage(f.badIDAT, FormatPNG); err == nil {
		t.Error("the corrupt-IDAT PNG decodes; the decode-validation tests would prove nothing")
	}
	py := pythonPath()
	if exec.Command(py, "-c", "import PIL").Run() != nil {
		t.Skipf("PIL check skipped: %s cannot import PIL", py)
	}
	for name, b := range map[string][]byte{"webp lossless": webpLossless, "webp lossy": webpLossy, "webp alpha": webpAlpha} {
		cmd := exec.Command(py, "-c", "import io,sys; from PIL import Image; im=Image.open(io.BytesIO(sys.stdin.buffer.read())); im.load(); print(im.size)")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.CombinedOutput()
		if err != nil || string(bytes.TrimSpace(out)) != "(1, 1)" {
			t.Errorf("PIL on %s: %v %s", name, err, out)
		}
	}
}

func TestResize(t *testing.T) {
	f := newFixtures(t)
	cases := []struct {
		name     string
		data     []byte
		max      int
		w, h     int
		centerRG [2]uint8 // expected red, green at the centre (±12), when non-zero
	}{
		{"jpeg 640x480 to 224", f.big, 224, 224, 168, [2]uint8{}},
		{"png alpha 300x100 to 224 (over white)", f.alpha, 224, 224, 75, [2]uint8{}},
		{"gif 33x21 to 10", f.gif, 10, 10, 6, [2]uint8{}},
		{"portrait", encJPEG(t, photo(90, 300, 9), 90), 100, 30, 100, [2]uint8{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := Structural(c.data, 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := decodeImage(c.data, info.Format)
			if err != nil {
				t.Fatal(err)
			}
			out, w, h, err := resizeJPEG(m, c.max, 90)
			if err != nil {
				t.Fatal(err)
			}
			if w != c.w || h != c.h {
				t.Fatalf("size %d×%d, want %d×%d", w, h, c.w, c.h)
			}
			oi, err := Structural(out, 0)
			if err != nil || oi.Format != FormatJPEG || oi.Width != w || oi.Height != h {
				t.Fatalf("output %+v, %v", oi, err)
			}
		})
	}
	// The area filter preserves means: a flat colour stays that colour, and a
	// transparent half becomes white.
	flat := image.NewRGBA(image.Rect(0, 0, 500, 333))
	for i := 0; i < len(flat.Pix); i += 4 {
		flat.Pix[i], flat.Pix[i+1], flat.Pix[i+2], flat.Pix[i+3] = 200, 40, 90, 255
	}
	for name, src := range map[string][]byte{"ycbcr": encJPEG(t, flat, 95), "rgba": encPNG(t, flat)} {
		info, _ := Structural(src, 0)
		m, _ := decodeImage(src, info.Format)
		out, _, _, err := resizeJPEG(m, 64, 95)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := decodeImage(out, FormatJPEG)
		r, g, b, _ := d.At(32, 20).RGBA()
		if absDiff(r>>8, 200) > 6 || absDiff(g>>8, 40) > 6 || absDiff(b>>8, 90) > 6 {
			t.Errorf("%s: flat colour became %d,%d,%d", name, r>>8, g>>8, b>>8)
		}
	}
	m, _ := decodeImage(f.alpha, FormatPNG)
	out, _, _, _ := resizeJPEG(m, 100, 95)
	d, _ := decodeImage(out, FormatJPEG)
	if c := color.GrayModel.Convert(d.At(5, 15)).(color.Gray); c.Y < 240 {
		t.Errorf("transparent area became %v, want white", c)
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestAreaWeights(t *testing.T) {
	for _, nm := range [][2]int{{640, 224}, {480, 168}, {7, 3}, {100, 100}, {1000, 1}, {3, 2}} {
		k := makeAreaWeights(nm[0], nm[1])
		for i := 0; i < nm[1]; i++ {
			sum := 0
			for _, w := range k.w[k.off[i]:k.off[i+1]] {
				sum += int(w)
			}
			if sum != 1<<weightBits {
				t.Fatalf("%v output %d: weights sum to %d", nm, i, sum)
			}
			last := int(k.start[i]) + int(k.off[i+1]-k.off[i]) - 1
			if k.start[i] < 0 || last >= nm[0] {
				t.Fatalf("%v output %d: taps %d..%d out of range", nm, i, k.start[i], last)
			}
		}
	}
}

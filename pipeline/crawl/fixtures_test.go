package crawl

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"
)

// Known-good 1×1 WebP files (the feature-detection images Modernizr uses):
// lossless VP8L, lossy VP8, and VP8X with an alpha chunk. Both
// golang.org/x/image/webp and PIL decode them (checked in TestFixtures).
var (
	webpLossless = mustB64("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
	webpLossy    = mustB64("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA")
	webpAlpha    = mustB64("UklGRkoAAABXRUJQVlA4WAoAAAAQAAAAAAAAAAAAQUxQSAwAAAARBxAR/Q9ERP8DAABWUDggGAAAABQBAJ0BKgEAAQAAAP4AAA3AAP7mtQAAAA==")
)

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// photo draws a w×h image with smooth gradients, a few shapes and noise, so
// that it compresses like a photograph (tens of KB at 640×480). seed makes
// each image distinct.
func photo(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy := rng.Float64()*float64(w), rng.Float64()*float64(h)
	r0 := (0.2 + 0.3*rng.Float64()) * float64(min(w, h))
	base := [3]float64{rng.Float64() * 255, rng.Float64() * 255, rng.Float64() * 255}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			d := math.Hypot(float64(x)-cx, float64(y)-cy)
			in := 0.0
			if d < r0 {
				in = 1
			}
			var c [3]uint8
			for k := 0; k < 3; k++ {
				v := base[k]*(1-fx)*0.6 + 255*fy*0.3*float64(k+1)/3 + in*60*math.Sin(float64(x+y*k)/9) + rng.NormFloat64()*10
				c[k] = uint8(max(0, min(255, v)))
			}
			o := m.PixOffset(x, y)
			m.Pix[o], m.Pix[o+1], m.Pix[o+2], m.Pix[o+3] = c[0], c[1], c[2], 255
		}
	}
	return m
}

func encJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encGIF(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, m, &gif.Options{NumColors: 64}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// animatedGIF encodes a GIF of n frames of w×h.
func animatedGIF(t testing.TB, w, h, n int) []byte {
	t.Helper()
	g := &gif.GIF{}
	for i := 0; i < n; i++ {
		p := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		for j := range p.Pix {
			p.Pix[j] = uint8((j + i*7) % 200)
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// alphaPNG is a w×h NRGBA image with a transparent left half.
func alphaPNG(t testing.TB, w, h int) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			a := uint8(255)
			if x < w/2 {
				a = 0
			}
			m.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 200, a})
		}
	}
	return encPNG(t, m)
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

// bombPNG is a structurally valid PNG whose header claims w×h pixels; its
// IDAT is a few bytes of deflate data (decoding it would allocate w×h).
func bombPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.Write(pngSig)
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	b.Write(pngChunk("IHDR", ihdr))
	b.Write(pngChunk("IDAT", []byte{0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01}))
	b.Write(pngChunk("IEND", nil))
	return b.Bytes()
}

// bombGIF is a GIF whose screen and only frame claim w×h.
func bombGIF(w, h uint16) []byte {
	var b bytes.Buffer
	b.WriteString("GIF89a")
	binary.Write(&b, binary.LittleEndian, w)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write([]byte{0x80, 0, 0}) // global colour table of 2 entries
	b.Write([]byte{0, 0, 0, 255, 255, 255})
	b.WriteByte(0x2C)
	binary.Write(&b, binary.LittleEndian, [4]uint16{0, 0, w, h})
	b.WriteByte(0)
	b.Write([]byte{2, 2, 0x4C, 0x01, 0}) // LZW min size 2, one sub-block
	b.WriteByte(0x3B)
	return b.Bytes()
}

// corruptIDAT returns a copy of a PNG whose first IDAT payload is replaced
// by garbage with a correct CRC: structurally sound, undecodable.
func corruptIDAT(t testing.TB, p []byte) []byte {
	t.Helper()
	out := bytes.Clone(p)
	pos := 8
	for pos+12 <= len(out) {
		l := int(binary.BigEndian.Uint32(out[pos:]))
		if string(out[pos+4:pos+8]) == "IDAT" {
			data := out[pos+8 : pos+8+l]
			for i := range data {
				data[i] = byte(i*37 + 11)
			}
			binary.BigEndian.PutUint32(out[pos+8+l:], crc32.ChecksumIEEE(out[pos+4:pos+8+l]))
			return out
		}
		pos += 12 + l
	}
	t.Fatal("no IDAT")
	return nil
}

// fixtureSet holds one image of each kind the tests serve.
type fixtureSet struct {
	jpeg, png, gif, anim []byte
	jpegW, jpegH         int
	big                  []byte // 640×480 JPEG
	alpha                []byte // 300×100 PNG with transparency
	truncated            []byte // jpeg cut to 60 %
	bombPNG, bombGIF     []byte
	badIDAT              []byte
	bmp, html            []byte
}

func newFixtures(t testing.TB) *fixtureSet {
	t.Helper()
	f := &fixtureSet{jpegW: 96, jpegH: 64}
	f.jpeg = encJPEG(t, photo(96, 64, 1), 85)
	f.png = encPNG(t, photo(40, 30, 2))
	f.gif = encGIF(t, photo(33, 21, 3))
	f.anim = animatedGIF(t, 20, 10, 3)
	f.big = encJPEG(t, photo(640, 480, 4), 85)
	f.alpha = alphaPNG(t, 300, 100)
	f.truncated = f.jpeg[:len(f.jpeg)*6/10]
	f.bombPNG = bombPNG(100000, 100000)
	f.bombGIF = bombGIF(65535, 65535)
	f.badIDAT = corruptIDAT(t, f.png)
	f.bmp = append([]byte("BM"), make([]byte, 60)...)
	f.html = []byte("<!DOCTYPE html><html><body>Not found</body></html>")
	return f
}

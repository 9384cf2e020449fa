// The tests are differential: on the test files (testdata/README.md), on
// JPEGs from image/jpeg's encoder, and on truncated and corrupted versions
// of all of them, Check must accept exactly the inputs image/jpeg.Decode
// accepts, and report the size of the image it returns.
//
// Known differences, none of them about acceptance:
//   - an image with a zero width or height (image/jpeg accepts it when the
//     scans are well formed, having no block to decode): image/jpeg returns an
//     empty image, Info keeps the header's numbers;
//   - the error messages: Check's say the same things in other words and
//     are *Error values;
//   - image/jpeg panics on no input the tests have found; a panic would
//     count as a rejection.
//
// Inputs whose header asks for more than maxTestPixels are skipped, since
// image/jpeg would allocate their pixels.
package jpegcheck

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stdAccepts reports whether image/jpeg decodes b (a panic counts as a
// rejection), and the error it gave. Files whose header asks for more than
// maxTestPixels are not decoded (image/jpeg would allocate the pixels) and
// reported as skipped.
func stdAccepts(b []byte) (ok, skipped bool, err error) {
	if cfg, cerr := jpeg.DecodeConfig(bytes.NewReader(b)); cerr == nil && int64(cfg.Width)*int64(cfg.Height) > maxTestPixels {
		return false, true, nil
	}
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("panic: %v", r)
		}
	}()
	_, err = jpeg.Decode(bytes.NewReader(b))
	return err == nil, false, err
}

const maxTestPixels = 1 << 22

// agree checks that Check accepts b exactly when image/jpeg does.
func agree(t testing.TB, what string, b []byte) {
	t.Helper()
	ok, skipped, stdErr := stdAccepts(b)
	if skipped {
		return
	}
	info, err := CheckInfo(b)
	if ok != (err == nil) {
		t.Fatalf("%s: image/jpeg error %v, jpegcheck error %v", what, stdErr, err)
	}
	if ok {
		m, _ := jpeg.Decode(bytes.NewReader(b))
		// An image with a zero dimension is empty: image/jpeg's bounds are
		// then the zero rectangle, Info keeps the header's numbers.
		if r, w := m.Bounds(), image.Rect(0, 0, info.Width, info.Height); r != w && !(r.Empty() && w.Empty()) {
			t.Fatalf("%s: image/jpeg decodes %v, jpegcheck says %d×%d", what, r, info.Width, info.Height)
		}
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: error %v is not an *Error", what, err)
		}
	}
}

// testImage draws a w×h photo-like image (smooth gradients, a disc, noise)
// so that the encoder produces a mix of short and long Huffman codes.
func testImage(w, h int, seed uint64, gray bool) image.Image {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	var m draw
	if gray {
		m = image.NewGray(image.Rect(0, 0, w, h))
	} else {
		m = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	cx, cy, r := rng.Float64()*float64(w), rng.Float64()*float64(h), float64(min(w, h))/3
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := float64(x)-cx, float64(y)-cy
			v := 255 * float64(x+y) / float64(w+h+1)
			if dx*dx+dy*dy < r*r {
				v = 255 - v
			}
			n := rng.IntN(48) - 24
			c := func(k float64) uint8 { return uint8(max(0, min(255, int(v*k)+n))) }
			m.Set(x, y, color.RGBA{c(1), c(0.6), c(0.3), 255})
		}
	}
	return m
}

type draw interface {
	image.Image
	Set(x, y int, c color.Color)
}

func encode(t testing.TB, m image.Image, q int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type sample struct {
	name string
	b    []byte
}

// samples returns the test files and JPEGs made by image/jpeg's encoder
// (4:2:0 colour and grey, several sizes and qualities).
func samples(t testing.TB) []sample {
	var out []sample
	files, err := filepath.Glob("testdata/*.jpeg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sample{filepath.Base(f), b})
	}
	sizes := [][2]int{{1, 1}, {7, 9}, {17, 33}, {64, 48}, {161, 97}}
	quals := []int{1, 25, 50, 75, 90, 100}
	for i, sz := range sizes {
		for j, q := range quals {
			for g, gray := range []bool{false, true} {
				if (i+j+g)%3 != 0 {
					continue // two qualities per size and kind, all six over the set
				}
				m := testImage(sz[0], sz[1], uint64(100*i+j), gray)
				kind := "420"
				if gray {
					kind = "gray"
				}
				out = append(out, sample{fmt.Sprintf("gen-%dx%d-q%d-%s", sz[0], sz[1], q, kind), encode(t, m, q)})
			}
		}
	}
	return out
}

func TestValidFiles(t *testing.T) {
	for _, s := range samples(t) {
		ok, _, stdErr := stdAccepts(s.b)
		if !ok && !strings.Contains(s.name, "truncated") && !strings.Contains(s.name, "rejected") && !strings.Contains(s.name, "unsupported") {
			t.Fatalf("%s: image/jpeg rejects it: %v", s.name, stdErr)
		}
		agree(t, s.name, s.b)
	}
}

// headerEnd returns the offset of the first scan's entropy-coded data (the
// end of the first SOS segment), or len(b).
func headerEnd(b []byte) int {
	for i := 2; i+3 < len(b); i++ {
		if b[i] == 0xFF && b[i+1] == sos {
			return min(len(b), i+2+int(b[i+2])<<8|int(b[i+3]))
		}
	}
	return len(b)
}

// full is set by JPEGCHECK_FULL=1: every truncation point and thousands of
// corruptions per file (several minutes); the default run samples them.
var full = os.Getenv("JPEGCHECK_FULL") != ""

// TestTruncations cuts every file at every offset of its headers, at 40
// offsets spread over its entropy-coded data and at each of its last 16
// bytes (at every offset with JPEGCHECK_FULL=1, 10 data offsets with -short).
func TestTruncations(t *testing.T) {
	for _, s := range samples(t) {
		he := headerEnd(s.b)
		step := max(1, (len(s.b)-he)/40)
		if testing.Short() {
			step = max(1, (len(s.b)-he)/10)
		}
		for n := 0; n < len(s.b); n++ {
			if !full && n > he && n < len(s.b)-16 && (n-he)%step != 0 {
				continue
			}
			agree(t, fmt.Sprintf("%s cut at %d of %d", s.name, n, len(s.b)), s.b[:n])
		}
	}
}

// TestCorruptions changes single bytes: header bytes to values that break
// structure (0x00, 0xFF, a flipped bit, +1; every header byte with
// JPEGCHECK_FULL=1, one in five otherwise, one in 20 with -short), and
// random bytes anywhere (the entropy-coded data, restart markers, EOI) to
// random values, 0xFF a quarter of the time.
func TestCorruptions(t *testing.T) {
	random, every := 40, 5
	switch {
	case full:
		random, every = 1500, 1
	case testing.Short():
		random, every = 10, 20
	}
	for k, s := range samples(t) {
		mut := bytes.Clone(s.b)
		try := func(i int, v byte) {
			if v == s.b[i] {
				return
			}
			mut[i] = v
			agree(t, fmt.Sprintf("%s with byte %d 0x%02X→0x%02X", s.name, i, s.b[i], v), mut)
			mut[i] = s.b[i]
		}
		he := headerEnd(s.b)
		for i := k % every; i < he; i += every {
			o := s.b[i]
			for _, v := range []byte{0, 0xFF, o ^ 1, o ^ 0x80, o + 1, o ^ 0x10} {
				try(i, v)
			}
		}
		rng := rand.New(rand.NewPCG(uint64(k), 99))
		for range random {
			i := rng.IntN(len(s.b))
			v := byte(rng.IntN(256))
			if rng.IntN(4) == 0 {
				v = 0xFF // markers and stuffing are where the parsers differ most
			}
			try(i, v)
		}
	}
}

// TestMultiByteCorruptions changes a few bytes at once and splices a piece
// of one file into another, which reaches states single changes do not
// (two redefined tables, a scan of a component from another frame).
func TestMultiByteCorruptions(t *testing.T) {
	ss := samples(t)
	rng := rand.New(rand.NewPCG(5, 5))
	n := 300
	switch {
	case full:
		n = 5000
	case testing.Short():
		n = 60
	}
	for i := range n {
		s := ss[rng.IntN(len(ss))]
		mut := bytes.Clone(s.b)
		for range 1 + rng.IntN(4) {
			mut[rng.IntN(len(mut))] = byte(rng.IntN(256))
		}
		if i%3 == 0 {
			o := ss[rng.IntN(len(ss))].b
			a, b := rng.IntN(len(o)), rng.IntN(len(o))
			at := rng.IntN(len(mut))
			mut = append(mut[:at:at], append(o[min(a, b):max(a, b)], mut[at:]...)...)
		}
		agree(t, fmt.Sprintf("multi-byte corruption %d of %s", i, s.name), mut)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	err := Check([]byte("not a jpeg"))
	var e *Error
	if !errors.As(err, &e) || e.Unsupported {
		t.Fatalf("Check(garbage) = %v", err)
	}
	b, _ := os.ReadFile("testdata/video-001.q50.420.jpeg")
	b = bytes.Clone(b)
	// Turn SOF0 into SOF3 (lossless): unsupported.
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	b[i+1] = 0xC3
	if err := Check(b); !errors.As(err, &e) || !e.Unsupported {
		t.Fatalf("Check(lossless) = %v", err)
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	b, _ := os.ReadFile("testdata/video-001.q50.420.progressive.jpeg")
	Check(b) // warm the pool
	if n := testing.AllocsPerRun(50, func() { Check(b) }); n > 0 {
		t.Errorf("Check allocates %.1f times per call", n)
	}
}

// TestExternalFiles runs the differential checks on the JPEGs that
// JPEGCHECK_FILES (a glob pattern) names, e.g. a directory of crawled
// images: each file, 200 truncations and 200 single-byte corruptions.
func TestExternalFiles(t *testing.T) {
	pattern := os.Getenv("JPEGCHECK_FILES")
	if pattern == "" {
		t.Skip("set JPEGCHECK_FILES to a glob of JPEG files")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		agree(t, f, b)
		rng := rand.New(rand.NewPCG(uint64(k), 7))
		mut := bytes.Clone(b)
		for range 200 {
			agree(t, f+" truncated", b[:rng.IntN(len(b))])
			i, v := rng.IntN(len(b)), byte(rng.IntN(256))
			mut[i] = v
			agree(t, fmt.Sprintf("%s with byte %d 0x%02X→0x%02X", f, i, b[i], v), mut)
			mut[i] = b[i]
		}
	}
	t.Logf("%d files", len(files))
}

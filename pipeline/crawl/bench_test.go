package crawl

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// benchImage is a 640×480 photo-like JPEG (about the size of a product
// image on a CDN).
func benchImage(b *testing.B) []byte {
	return encJPEG(b, photo(640, 480, 42), 85)
}

func BenchmarkStructuralJPEG(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := Structural(img, DefaultMaxPixels); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJPEG(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := decodeImage(img, FormatJPEG); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckJPEG is --validate decode's work on a JPEG (jpegcheck: every
// block entropy-decoded, no pixels); BenchmarkDecodeJPEG is what it was.
func BenchmarkCheckJPEG(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, _, err := checkImage(img, FormatJPEG); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJPEGStdlib(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(img)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResample640to224(b *testing.B) {
	m, _ := decodeImage(benchImage(b), FormatJPEG)
	y := m.(*image.YCbCr)
	for b.Loop() {
		resizeYCbCr(y, 224, 168)
	}
}

func BenchmarkResizeJPEG(b *testing.B) {
	m, _ := decodeImage(benchImage(b), FormatJPEG)
	for b.Loop() {
		if _, _, _, err := resizeJPEG(m, 224, 90); err != nil {
			b.Fatal(err)
		}
	}
}

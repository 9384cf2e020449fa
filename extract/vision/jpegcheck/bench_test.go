package jpegcheck

import (
	"bytes"
	"image/jpeg"
	"os"
	"testing"
)

// benchFiles are the benchmark's inputs: a 640×480 photo-like 4:2:0 JPEG at
// quality 85 from image/jpeg's encoder (about the size of a product image
// on a CDN), the same at quality 95, and two test files (a libjpeg baseline
// and a progressive one).
func benchFiles(b *testing.B) []sample {
	out := []sample{
		{"gen640x480q85", encode(b, testImage(640, 480, 42, false), 85)},
		{"gen640x480q95", encode(b, testImage(640, 480, 43, false), 95)},
	}
	for _, f := range []string{"go-turns-two-280x360.jpeg", "video-001.progressive.jpeg"} {
		data, err := os.ReadFile("testdata/" + f)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, sample{f, data})
	}
	return out
}

// BenchmarkCheck and BenchmarkImageJPEGDecode run on the same files: the
// ratio of their ns/op is what decode validation saves per image.
func BenchmarkCheck(b *testing.B) {
	for _, s := range benchFiles(b) {
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(s.b)))
			b.ReportAllocs()
			c0 := cpuNanos()
			for b.Loop() {
				if err := Check(s.b); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
		})
	}
}

func BenchmarkImageJPEGDecode(b *testing.B) {
	for _, s := range benchFiles(b) {
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(s.b)))
			b.ReportAllocs()
			c0 := cpuNanos()
			for b.Loop() {
				if _, err := jpeg.Decode(bytes.NewReader(s.b)); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
		})
	}
}

// reportCPU adds the process CPU time per operation (cpu-ns/op) since c0:
// on a machine shared with other work it is the comparable figure, wall
// time per operation growing with the load.
func reportCPU(b *testing.B, c0 int64) {
	if c1 := cpuNanos(); c0 >= 0 && c1 >= 0 && b.N > 0 {
		b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/op")
	}
}

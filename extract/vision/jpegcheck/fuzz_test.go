package jpegcheck

import (
	"os"
	"testing"
)

// FuzzCheckMatchesImageJPEG is the differential fuzz target: Check must
// accept an input exactly when image/jpeg.Decode does (and report the same
// size). Inputs whose header asks for more than 4 Mpixels are skipped, since
// image/jpeg would allocate their pixels.
func FuzzCheckMatchesImageJPEG(f *testing.F) {
	for _, name := range []string{
		"video-005.gray.q50.2x2.progressive.jpeg",      // grey, progressive
		"video-001.q50.420.progressive.jpeg",           // 4:2:0, progressive with refinement scans
		"video-001.restart2.jpeg",                      // restart markers
		"libjpeg.444.progressive.37x29.restart1b.jpeg", // libjpeg, progressive with restart markers
	} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(encode(f, testImage(24, 16, 1, false), 75)) // image/jpeg's own encoder
	f.Fuzz(func(t *testing.T, b []byte) {
		agree(t, "fuzz input", b)
	})
}

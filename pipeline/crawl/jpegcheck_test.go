package crawl

import (
	"bytes"
	"image"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// scanStart returns the offset of the first scan's entropy-coded data.
func scanStart(t testing.TB, b []byte) int {
	i := bytes.Index(b, []byte{0xFF, mSOS})
	if i < 0 || i+4 > len(b) {
		t.Fatal("no SOS marker")
	}
	return i + 2 + int(b[i+2])<<8 | int(b[i+3])
}

// cutJPEG is a JPEG whose entropy-coded data stops halfway and is followed
// by an end-of-image marker: structurally complete, but it does not decode.
func cutJPEG(t testing.TB, b []byte) []byte {
	s := scanStart(t, b)
	cut := s + (len(b)-s)/2
	for b[cut-1] == 0xFF {
		cut--
	}
	return append(bytes.Clone(b[:cut]), 0xFF, 0xD9)
}

// TestCheckImageMatchesDecode: for JPEGs, the decode validation without
// pixels (jpegcheck) accepts exactly what image/jpeg decodes, with the same
// size; other formats go through the decoders.
func TestCheckImageMatchesDecode(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	progressive, err := os.ReadFile("../../extract/vision/jpegcheck/testdata/video-001.progressive.jpeg")
	if err != nil {
		t.Fatal(err)
	}
	gray := encJPEG(t, image.NewGray(image.Rect(0, 0, 33, 17)), 70)
	inputs := map[string][]byte{"big": f.big, "small": f.jpeg, "progressive": progressive, "gray": gray,
		"cut": cutJPEG(t, f.big), "cut-progressive": cutJPEG(t, progressive)}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"small", "progressive", "gray"} {
		b := inputs[name]
		for i := range 60 {
			m := bytes.Clone(b)
			m[rng.IntN(len(m))] = byte(rng.IntN(256))
			inputs[name+"-corrupt-"+string(rune('a'+i%26))+string(rune('0'+i/26))] = m
			inputs[name+"-truncated-"+string(rune('a'+i%26))+string(rune('0'+i/26))] = b[:rng.IntN(len(b))]
		}
	}
	for name, b := range inputs {
		w, h, err := checkImage(b, FormatJPEG)
		m, derr := decodeImage(b, FormatJPEG)
		if (err == nil) != (derr == nil) {
			t.Fatalf("%s: checkImage error %v, image/jpeg error %v", name, err, derr)
		}
		if derr == nil && (m.Bounds().Dx() != w || m.Bounds().Dy() != h) {
			t.Fatalf("%s: checkImage says %d×%d, image/jpeg decodes %v", name, w, h, m.Bounds())
		}
	}
	if w, h, err := checkImage(f.alpha, FormatPNG); err != nil || w == 0 || h == 0 {
		t.Errorf("checkImage(PNG) = %d×%d, %v", w, h, err)
	}
	if _, _, err := checkImage(f.badIDAT, FormatPNG); err == nil {
		t.Error("checkImage accepted a PNG with a bad IDAT")
	}
}

// TestDecodeValidationJPEG: a JPEG cut inside its scan but ended with EOI
// passes structural validation and fails --validate decode (jpegcheck) and
// --resize (image/jpeg) with the decode class.
func TestDecodeValidationJPEG(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/cut.jpg", "image/jpeg", cutJPEG(t, f.big))
	s.file("/big.jpg", "image/jpeg", f.big)
	rows := [][2]string{{"cut", s.URL + "/cut.jpg"}, {"big", s.URL + "/big.jpg"}}
	for _, mode := range []string{ValidateStructural, ValidateDecode, "resize"} {
		dir := t.TempDir()
		o := testOptions(dir)
		o.URLsFile = writeURLs(t, dir, rows)
		if mode == "resize" {
			o.Resize = 224
		} else {
			o.Validate = mode
		}
		run(t, o)
		ledger, images := storeContents(t, o.StoreDir())
		wants := map[string]want{"big": {status: imagestore.StatusOK}}
		if mode == ValidateStructural {
			wants["cut"] = okImage(640, 480, "image/jpeg")
		} else {
			wants["cut"] = want{status: imagestore.StatusFailed, class: ClassDecode, check: func(t *testing.T, e imagestore.LedgerEntry) {
				if !strings.Contains(e.Error, "jpeg decode: ") {
					t.Errorf("%s: error %q", mode, e.Error)
				}
			}}
		}
		checkLedger(t, ledger, wants)
		checkConsistent(t, ledger, images)
	}
}

package store

import (
	"bytes"
	"math"
	"testing"
)

// FuzzDecodeNPY checks that DecodeNPY never panics, that a decoded array
// holds as many values as its shape says, and that what it decodes survives
// an EncodeNPY/DecodeNPY round trip unchanged.
func FuzzDecodeNPY(f *testing.F) {
	for _, a := range []struct {
		shape []int
		data  []float32
	}{
		{[]int{2, 3}, []float32{1, 2, 3, 4, 5, float32(math.NaN())}},
		{[]int{0}, nil},
		{nil, []float32{7}},
	} {
		var b bytes.Buffer
		if err := EncodeNPY(&b, a.shape, a.data); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		f.Add(b.Bytes()[:b.Len()-1]) // truncated
	}
	f.Add([]byte("\x93NUMPY\x02\x00\x1e\x00\x00\x00{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }\n" +
		"\x3f\xf0\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f2', 'fortran_order': False, 'shape': (2, 1), }          \n\x00\x3c\x00\xc0"))
	f.Add([]byte("\x93NUMPY\x03\x00\x20\x00\x00\x00{'descr': '<i4', 'shape': (1,)}\n\x01\x00\x00\x00"))
	f.Add([]byte("not numpy at all"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeNPY(bytes.NewReader(b), "fuzz.npy")
		if err != nil {
			if a != nil {
				t.Errorf("error %v with a non-nil array", err)
			}
			return
		}
		n := 1
		for _, d := range a.Shape {
			if d < 0 {
				t.Fatalf("negative dimension in shape %v", a.Shape)
			}
			n *= d
		}
		if n != a.Len() {
			t.Fatalf("shape %v holds %d values, decoded %d", a.Shape, n, a.Len())
		}
		var enc bytes.Buffer
		if err := EncodeNPY(&enc, a.Shape, a.Data); err != nil {
			t.Fatalf("re-encode shape %v: %v", a.Shape, err)
		}
		back, err := DecodeNPY(&enc, "roundtrip.npy")
		if err != nil {
			t.Fatalf("decode of re-encoded array: %v", err)
		}
		if len(back.Data) != len(a.Data) {
			t.Fatalf("round trip: %d values, want %d", len(back.Data), len(a.Data))
		}
		for i := range a.Data {
			if math.Float32bits(back.Data[i]) != math.Float32bits(a.Data[i]) {
				t.Fatalf("round trip value %d: %v, want %v", i, back.Data[i], a.Data[i])
			}
		}
	})
}

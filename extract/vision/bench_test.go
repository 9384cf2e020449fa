package vision

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/disintegration/imaging"
	xdraw "golang.org/x/image/draw"
)

// PhotoJPEG draws a deterministic photo-like w×h picture (smooth shading,
// edges, sensor-like noise) and encodes it as JPEG at quality 90 with 4:2:0
// chroma, the common layout of product photos.
func photoJPEG(tb testing.TB, w, h int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	fx, fy := 3+r.Float64()*6, 3+r.Float64()*6
	for y := range h {
		for x := range w {
			u, v := float64(x)/float64(w), float64(y)/float64(h)
			l := 120 + 80*math.Sin(fx*u+2*math.Cos(fy*v)) + 10*r.NormFloat64()
			if (x/40+y/30)%7 == 0 {
				l = 255 - l
			}
			img.Y[y*img.YStride+x] = uint8(max(0, min(255, l)))
		}
	}
	for y := range (h + 1) / 2 {
		for x := range (w + 1) / 2 {
			img.Cb[y*img.CStride+x] = uint8(128 + 60*math.Sin(float64(x)/17+float64(seed)))
			img.Cr[y*img.CStride+x] = uint8(128 + 60*math.Cos(float64(y)/13))
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func benchImages(b *testing.B) [][]byte {
	imgs := make([][]byte, 8)
	for i := range imgs {
		imgs[i] = photoJPEG(b, 640, 480, uint64(i))
	}
	return imgs
}

// BenchmarkPreprocessCLIP is decode + resize + crop + normalise of a
// 640×480 JPEG on one goroutine.
func BenchmarkPreprocessCLIP(b *testing.B) {
	imgs := benchImages(b)
	rc := CLIP()
	dst := make([]float32, rc.Len())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rc.PreprocessInto(imgs[i%len(imgs)], dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "img/s")
}

// BenchmarkPreprocessCLIPParallel runs one image per goroutine on
// GOMAXPROCS goroutines, as the encode stage does.
func BenchmarkPreprocessCLIPParallel(b *testing.B) {
	imgs := benchImages(b)
	rc := CLIP()
	var n atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, rc.Len())
			for {
				i := n.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := rc.PreprocessInto(imgs[i%int64(len(imgs))], dst); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "img/s")
}

// BenchmarkDecodeJPEG is the decode alone (to RGB).
func BenchmarkDecodeJPEG(b *testing.B) {
	imgs := benchImages(b)
	for i := 0; i < b.N; i++ {
		if _, err := Decode(imgs[i%len(imgs)], 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "img/s")
}

// BenchmarkResizeAlternatives compares the resize step (640×480 RGB → short
// side 224, centre crop) of this package with disintegration/imaging's
// Fill (CatmullRom = the same cubic) and golang.org/x/image/draw's
// CatmullRom, each on one goroutine (imaging limited to one core).
func BenchmarkResizeAlternatives(b *testing.B) {
	data := photoJPEG(b, 640, 480, 1)
	src, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	rgb := ToRGB(src)
	rc := CLIP()
	b.Run("vision", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rc.Resample(rgb)
		}
	})
	b.Run("imaging.Fill", func(b *testing.B) {
		old := runtime.GOMAXPROCS(1)
		defer runtime.GOMAXPROCS(old)
		for i := 0; i < b.N; i++ {
			imaging.Fill(src, 224, 224, imaging.Center, imaging.CatmullRom)
		}
	})
	b.Run("xdraw.CatmullRom", func(b *testing.B) {
		dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
		for i := 0; i < b.N; i++ {
			xdraw.CatmullRom.Scale(dst, dst.Rect, src, image.Rect(80, 0, 560, 480), xdraw.Src, nil)
		}
	})
}

// Command encode-bench measures image preprocessing and the built-in
// encoders (bench/encode/run.sh drives it; the figures go to
// BENCHMARKS.md):
//
//	go run ./bench/encode gen --out DIR [--n 200]        # 640×480 JPEGs, quality 90
//	go run ./bench/encode preprocess --dir DIR [--recipe clip|pmmrec] [--workers N] [--seconds S]
//	go run ./bench/encode builtin --dir DIR [--workers N] [--seconds S]
//
// Images are read into memory first, so disk speed is not measured; each
// worker goroutine handles one image at a time.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/extract/vision"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: encode-bench gen|preprocess|builtin [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "folder of JPEG images")
	out := fs.String("out", "", "output folder (gen)")
	n := fs.Int("n", 200, "images to generate (gen)")
	recipe := fs.String("recipe", "clip", "preprocessing recipe: clip or pmmrec")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "worker goroutines")
	seconds := fs.Float64("seconds", 5, "minimum measuring time")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(*out, *n)
	case "preprocess":
		err = preprocess(*dir, *recipe, *workers, *seconds)
	case "builtin":
		err = builtins(*dir, *workers, *seconds)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "encode-bench:", err)
		os.Exit(1)
	}
}

// gen writes n photo-like 640×480 JPEGs (quality 90, 4:2:0): smooth
// shading, hard edges and sensor-like noise, seeded by the image number.
func gen(out string, n int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	const w, h = 640, 480
	total := 0
	for i := range n {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		fx, fy := 2+4*r.Float64(), 2+4*r.Float64()
		hue := r.Float64() * 2 * math.Pi
		cx, cy, rad := w*(0.3+0.4*r.Float64()), h*(0.3+0.4*r.Float64()), 60+100*r.Float64()
		for y := range h {
			for x := range w {
				u, v := float64(x)/w, float64(y)/h
				l := 0.5 + 0.35*math.Sin(fx*u*math.Pi+1.5*math.Cos(fy*v*math.Pi))
				c := [3]float64{l * (0.6 + 0.4*math.Cos(hue)), l * (0.6 + 0.4*math.Cos(hue+2)), l * (0.6 + 0.4*math.Cos(hue+4))}
				if dx, dy := float64(x)-cx, float64(y)-cy; dx*dx+dy*dy < rad*rad {
					c = [3]float64{0.9 * math.Abs(math.Cos(hue)), 0.3, 0.2 + 0.6*v}
				}
				o := 4 * (y*w + x)
				for k := range 3 {
					img.Pix[o+k] = uint8(max(0, min(255, 255*c[k]+3*r.NormFloat64())))
				}
				img.Pix[o+3] = 255
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
			return err
		}
		total += b.Len()
		if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("img%04d.jpg", i)), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d JPEGs of %dx%d to %s, mean %.1f KB\n", n, w, h, out, float64(total)/float64(n)/1024)
	return nil
}

func loadImages(dir string) ([][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no .jpg files in %q (run gen first): %v", dir, err)
	}
	slices.Sort(paths)
	var imgs [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, b)
	}
	return imgs, nil
}

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rate is a throughput: items per wall-clock second and per CPU second
// (the latter is steadier on a shared machine).
type rate struct {
	n         int
	wall, cpu float64 // items per second
}

func (r rate) String() string {
	return fmt.Sprintf("items=%d: %.1f /s wall, %.1f per cpu-s", r.n, r.wall, r.cpu)
}

// measure runs fn(i) for i = 0, 1, ... on workers goroutines until at least
// minSeconds have passed and every input was seen once.
func measure(workers, inputs int, minSeconds float64, fn func(i int) error) (rate, error) {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	runtime.GC()
	start, cpu0 := time.Now(), cpuTime()
	deadline := start.Add(time.Duration(minSeconds * float64(time.Second)))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= inputs && time.Now().After(deadline) {
					return
				}
				if err := fn(i % inputs); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	done := int(next.Load()) - workers
	wall, cpu := time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	return rate{n: done, wall: float64(done) / wall, cpu: float64(done) / cpu}, firstErr
}

func preprocess(dir, recipe string, workers int, seconds float64) error {
	imgs, err := loadImages(dir)
	if err != nil {
		return err
	}
	var rc vision.Recipe
	switch recipe {
	case "clip":
		rc = vision.CLIP()
	case "pmmrec":
		rc = vision.PMMRec()
	default:
		return fmt.Errorf("unknown recipe %q", recipe)
	}
	bufs := sync.Pool{New: func() any { return make([]float32, rc.Len()) }}
	res, err := measure(workers, len(imgs), seconds, func(i int) error {
		dst := bufs.Get().([]float32)
		defer bufs.Put(dst)
		return rc.PreprocessInto(imgs[i], dst)
	})
	if err != nil {
		return err
	}
	fmt.Printf("go preprocess recipe=%s workers=%d %s\n", recipe, workers, res)
	return nil
}

func builtins(dir string, workers int, seconds float64) error {
	imgs, err := loadImages(dir)
	if err != nil {
		return err
	}
	is, err := builtin.NewImageStats(extract.Options{})
	if err != nil {
		return err
	}
	res, err := measure(workers, len(imgs), seconds, func(i int) error {
		_, err := is.Prepare(extract.Input{ID: fmt.Sprint(i), Image: imgs[i]})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("go image-stats (640x480 jpeg, dim 256) workers=%d %s\n", workers, res)

	// Product-like texts of 20–60 words from a 3000-word vocabulary.
	r := rand.New(rand.NewPCG(5, 5))
	vocab := make([]string, 3000)
	for i := range vocab {
		var b strings.Builder
		for range 3 + r.IntN(7) {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		vocab[i] = b.String()
	}
	texts := make([]extract.Input, 2000)
	for i := range texts {
		words := make([]string, 20+r.IntN(41))
		for k := range words {
			words[k] = vocab[int(float64(len(vocab))*math.Pow(r.Float64(), 2))]
		}
		texts[i] = extract.Input{ID: fmt.Sprint(i), Text: strings.Join(words, " ")}
	}
	th, err := builtin.NewTextHash(extract.Options{})
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := th.Fit(context.Background(), slices.Values(texts)); err != nil {
		return err
	}
	fit := float64(len(texts)) / time.Since(t0).Seconds()
	res, err = measure(workers, len(texts), seconds, func(i int) error {
		_, err := th.Prepare(texts[i])
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("go text-hash (20-60 words, dim 384) workers=%d %s (idf fit %.0f texts/s wall)\n", workers, res, fit)
	return nil
}

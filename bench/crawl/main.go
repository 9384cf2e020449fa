// Command crawl benchmarks `mmpipe crawl` against a local HTTP server of
// real-size JPEGs:
//
//	go build -o bin/mmpipe ./cmd/mmpipe
//	go run ./bench/crawl [-n 2000] [-mmpipe bin/mmpipe] [-out bench/out/crawl] [-modes structural,decode,resize]
//
// It draws n product images as JPEGs (half studio shots on white, half
// full-frame photos; sizes 480×360 to 800×800, quality about 82–92 adjusted
// to land in 30–100 KB; cached under -out), serves them from a separate
// process (this program re-executed with -serve) over HTTP/1.1 keep-alive on
// 127.0.0.1, and runs the mmpipe binary once per mode on a fresh dataset
// directory: structural validation, full decode, and resize to 224. For
// each run it reports images stored per second (wall time of the whole
// process, start-up and final reports included, and the crawl's own
// timing), CPU time and peak RSS (getrusage of the child), and appends a
// JSON line per run to <out>/results.jsonl.
//
// Exit codes: 0 done, 1 failure, 2 bad usage.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mmpipe/mmpipe/extract/vision/jpegcheck"
)

func main() {
	var (
		n       = flag.Int("n", 2000, "number of images")
		bin     = flag.String("mmpipe", "bin/mmpipe", "mmpipe binary to benchmark")
		out     = flag.String("out", "bench/out/crawl", "work directory (image cache, datasets, results)")
		modes   = flag.String("modes", "decode-alone,check-alone,structural,decode,resize", "comma-separated runs: decode-alone (image/jpeg alone, the reference), check-alone (jpegcheck alone, what --validate decode runs on JPEGs), structural, decode, resize")
		conc    = flag.Int("concurrency", 64, "mmpipe --concurrency")
		repeat  = flag.Int("repeat", 1, "runs per mode (the best is reported)")
		extra   = flag.String("args", "", "extra mmpipe crawl arguments, space-separated")
		profile = flag.Bool("profile", false, "write a CPU profile per run to <out>/<mode>.prof")
		copies  = flag.Int("copies", 1, "list each image this many times under distinct URLs (?copy=k): more items, same files, to show that memory stays bounded")
		serve   = flag.String("serve", "", "internal: serve the images of this directory")
	)
	flag.Parse()
	if *serve != "" {
		if err := serveDir(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, *n, *copies, *bin, *out, strings.Split(*modes, ","), *conc, *repeat, strings.Fields(*extra), *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench crawl:", err)
		os.Exit(1)
	}
}

// images returns the cached image directory, drawing missing images.
func images(ctx context.Context, dir string, n int) (bytesTotal int64, pixels int64, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	var firstErr error
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := filepath.Join(dir, fmt.Sprintf("%06d.jpg", i))
				b, err := os.ReadFile(p)
				if err != nil {
					b = drawJPEG(uint64(i))
					err = os.WriteFile(p, b, 0o644)
				}
				cfg, cerr := jpeg.DecodeConfig(bytes.NewReader(b))
				mu.Lock()
				if err == nil {
					err = cerr
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
				bytesTotal += int64(len(b))
				pixels += int64(cfg.Width * cfg.Height)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return bytesTotal, pixels, firstErr
}

// drawJPEG draws a product image: an object with shading, texture and
// sensor-like noise, on a clean white background (studio shot) or on a
// noisy gradient (photo); size and quality vary with the seed so the files
// spread over 30–100 KB.
func drawJPEG(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x5EED))
	sizes := [][2]int{{500, 500}, {640, 480}, {480, 360}, {600, 600}, {800, 600}, {500, 375}, {800, 800}}
	sz := sizes[rng.IntN(len(sizes))]
	w, h := sz[0], sz[1]
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	// Half are studio shots (the object on a clean white background, as most
	// marketplace product images), half full-frame photos (a lit, noisy
	// gradient behind the object).
	studio := rng.IntN(2) == 0
	bg := 200 + rng.Float64()*50
	cx, cy := (0.3+0.4*rng.Float64())*float64(w), (0.3+0.4*rng.Float64())*float64(h)
	rx, ry := (0.2+0.2*rng.Float64())*float64(w), (0.2+0.2*rng.Float64())*float64(h)
	obj := 40 + rng.Float64()*150
	freq := 0.02 + rng.Float64()*0.08
	noise := 2 + rng.Float64()*5
	cb0, cr0 := 128+rng.Float64()*60-30, 128+rng.Float64()*60-30
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := (float64(x)-cx)/rx, (float64(y)-cy)/ry
			d := dx*dx + dy*dy
			v := bg - 30*float64(y)/float64(h)
			if studio {
				v = 255
			}
			if d < 1 {
				shade := 1 - 0.5*d
				v = obj*shade + 25*math.Sin(float64(x)*freq)*math.Cos(float64(y)*freq*1.3)
			}
			if !studio || d < 1 {
				v += rng.NormFloat64() * noise
			}
			m.Y[y*m.YStride+x] = uint8(max(0, min(255, v)))
		}
	}
	for y := 0; y < (h+1)/2; y++ {
		for x := 0; x < (w+1)/2; x++ {
			dx, dy := (float64(2*x)-cx)/rx, (float64(2*y)-cy)/ry
			cb, cr := 128.0, 128.0
			if dx*dx+dy*dy < 1 {
				cb, cr = cb0, cr0
			}
			i := y*m.CStride + x
			m.Cb[i] = uint8(max(0, min(255, cb+rng.NormFloat64()*2)))
			m.Cr[i] = uint8(max(0, min(255, cr+rng.NormFloat64()*2)))
		}
	}
	// Pick the quality (82–92 preferred) that lands in 30–100 KB, as product
	// photos on a CDN do.
	q := 82 + rng.IntN(11)
	var b bytes.Buffer
	for {
		b.Reset()
		jpeg.Encode(&b, m, &jpeg.Options{Quality: q})
		switch {
		case b.Len() > 100<<10 && q > 50:
			q -= 4
		case b.Len() < 30<<10 && q < 97:
			q += 2
		default:
			return b.Bytes()
		}
	}
}

// serveDir serves every file of dir from memory at /<name> and prints its
// address on stdout; it runs until stdin closes.
func serveDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		files["/"+e.Name()] = b
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})}
	fmt.Println(l.Addr().String())
	go func() {
		bufio.NewReader(os.Stdin).ReadByte() // EOF when the parent exits
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// result is one benchmark run.
type result struct {
	Mode         string  `json:"mode"`
	Images       int     `json:"images"`
	Stored       int     `json:"stored"`
	WallSeconds  float64 `json:"wall_seconds"`
	PerSecond    float64 `json:"images_per_second"`       // stored / wall time of the process
	CrawlPerSec  float64 `json:"crawl_images_per_second"` // the crawl's own figure
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`  // getrusage maxrss: includes file-backed pages (the binary, the LMDB map)
	PeakAnonMB   float64 `json:"peak_anon_mb"` // highest RssAnon seen, sampled every 10 ms (Go and C heaps)
	MeanKB       float64 `json:"mean_kb"`
	MeanMPixels  float64 `json:"mean_megapixels"`
	StoredMB     float64 `json:"stored_mb"`
	Cores        int     `json:"cores"`
	Concurrency  int     `json:"concurrency"`
	Command      string  `json:"command"`
	ServerCPUSec float64 `json:"server_cpu_seconds"`
}

func bench(ctx context.Context, n, copies int, bin, out string, modes []string, conc, repeat int, extra []string, profile bool) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w (build it: go build -o bin/mmpipe ./cmd/mmpipe)", err)
	}
	imgDir := filepath.Join(out, "images")
	start := time.Now()
	total, pixels, err := images(ctx, imgDir, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d images, %.1f KB and %.2f Mpixel on average (ready in %.1fs)\n", n, float64(total)/float64(n)/1024, float64(pixels)/float64(n)/1e6, time.Since(start).Seconds())

	self, err := os.Executable()
	if err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, self, "-serve", imgDir)
	srvIn, _ := srv.StdinPipe()
	srvOut, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srvIn.Close(); srv.Wait() }()
	addr, err := bufio.NewReader(srvOut).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	addr = strings.TrimSpace(addr)

	var csv strings.Builder
	csv.WriteString("item_id,url\n")
	for c := 0; c < max(copies, 1); c++ {
		for i := 0; i < n; i++ {
			if c == 0 {
				fmt.Fprintf(&csv, "img%06d,http://%s/%06d.jpg\n", i, addr, i)
			} else {
				fmt.Fprintf(&csv, "img%06d-%d,http://%s/%06d.jpg?copy=%d\n", i, c, addr, i, c)
			}
		}
	}
	urls := filepath.Join(out, "urls.csv")
	if err := os.WriteFile(urls, []byte(csv.String()), 0o644); err != nil {
		return err
	}
	resf, err := os.OpenFile(filepath.Join(out, "results.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer resf.Close()

	var results []result
	for _, mode := range modes {
		var best *result
		for r := 0; r < repeat; r++ {
			var res result
			var err error
			switch mode {
			case "decode-alone":
				res, err = decodeAlone(imgDir, n, "decode-alone")
			case "check-alone":
				res, err = decodeAlone(imgDir, n, "check-alone")
			default:
				res, err = runOnce(ctx, bin, out, urls, mode, conc, extra, profile, srv)
			}
			if err != nil {
				return err
			}
			res.Images, res.Concurrency, res.Cores = n*max(copies, 1), conc, runtime.NumCPU()
			res.MeanKB = float64(total) / float64(n) / 1024
			res.MeanMPixels = float64(pixels) / float64(n) / 1e6
			line, _ := json.Marshal(res)
			resf.Write(append(line, '\n'))
			fmt.Fprintf(os.Stderr, "%-12s %5d stored in %6.2fs = %6.0f images/s (crawl's own timing %6.0f/s), cpu %.1fs (server %.1fs), peak RSS %.0f MB (anonymous %.0f MB)\n",
				mode, res.Stored, res.WallSeconds, res.PerSecond, res.CrawlPerSec, res.CPUSeconds, res.ServerCPUSec, res.PeakRSSMB, res.PeakAnonMB)
			if best == nil || res.PerSecond > best.PerSecond {
				best = &res
			}
		}
		results = append(results, *best)
	}
	fmt.Println("| mode | images | stored | wall s | images/s | crawl's images/s | CPU s (ms/image) | server CPU s | peak RSS MB | peak anon MB |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %.2f | %.0f | %.0f | %.1f (%.2f) | %.1f | %.0f | %.0f |\n", r.Mode, r.Images, r.Stored, r.WallSeconds,
			r.PerSecond, r.CrawlPerSec, r.CPUSeconds, 1000*r.CPUSeconds/float64(r.Stored), r.ServerCPUSec, r.PeakRSSMB, r.PeakAnonMB)
	}
	return nil
}

func runOnce(ctx context.Context, bin, out, urls, mode string, conc int, extra []string, profile bool, srv *exec.Cmd) (result, error) {
	ds := filepath.Join(out, "ds-"+mode)
	if err := os.RemoveAll(ds); err != nil {
		return result{}, err
	}
	args := []string{"--log-format", "json"}
	if profile {
		args = append(args, "--cpuprofile", filepath.Join(out, mode+".prof"))
	}
	args = append(args, "crawl", "--dataset", ds, "--urls", urls, "--allow-private", "--host-rate", "*=0",
		"--concurrency", strconv.Itoa(conc), "--progress", "none")
	switch mode {
	case "structural":
	case "decode":
		args = append(args, "--validate", "decode")
	case "resize":
		args = append(args, "--resize", "224", "--jpeg-quality", "90")
	default:
		return result{}, fmt.Errorf("unknown mode %q", mode)
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	srvBefore := cpuOf(srv.Process.Pid)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	anon := make(chan int64, 1)
	go func() { anon <- peakAnon(cmd.Process.Pid) }()
	err := cmd.Wait()
	wall := time.Since(start).Seconds()
	peakAnonKB := <-anon
	if err != nil {
		return result{}, fmt.Errorf("%s: %v\n%s%s", mode, err, stdout.String(), stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var st struct {
		OK          int     `json:"ok"`
		PerSecond   float64 `json:"images_per_second"`
		BytesStored int64   `json:"bytes_stored"`
	}
	b, err := os.ReadFile(filepath.Join(ds, "crawl_stats.json"))
	if err != nil {
		return result{}, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return result{}, err
	}
	return result{
		Mode: mode, Stored: st.OK, WallSeconds: wall, PerSecond: float64(st.OK) / wall, CrawlPerSec: st.PerSecond,
		CPUSeconds:   time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
		PeakRSSMB:    float64(ru.Maxrss) / 1024,
		PeakAnonMB:   float64(peakAnonKB) / 1024,
		StoredMB:     float64(st.BytesStored) / 1e6,
		Command:      bin + " " + strings.Join(args, " "),
		ServerCPUSec: cpuOf(srv.Process.Pid) - srvBefore,
	}, nil
}

// decodeAlone is the reference: image/jpeg decoding the same files from
// memory on one goroutine per core, nothing else; as mode "check-alone",
// jpegcheck.Check (what the crawl's decode validation runs on a JPEG)
// instead of image/jpeg.
func decodeAlone(dir string, n int, mode string) (result, error) {
	decode := func(b []byte) error {
		_, err := jpeg.Decode(bytes.NewReader(b))
		return err
	}
	command := "image/jpeg.Decode of the same files from memory, GOMAXPROCS goroutines"
	if mode == "check-alone" {
		decode = jpegcheck.Check
		command = "jpegcheck.Check of the same files from memory, GOMAXPROCS goroutines"
	}
	files := make([][]byte, n)
	for i := range files {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%06d.jpg", i)))
		if err != nil {
			return result{}, err
		}
		files[i] = b
	}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	jobs := make(chan []byte, n)
	for _, f := range files {
		jobs <- f
	}
	close(jobs)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if err := decode(b); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if failed.Load() > 0 {
		return result{}, fmt.Errorf("%s: %d images failed", mode, failed.Load())
	}
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()).Seconds()
	return result{Mode: mode, Stored: n, WallSeconds: wall, PerSecond: float64(n) / wall, CrawlPerSec: float64(n) / wall,
		CPUSeconds: cpu, Command: command}, nil
}

// peakAnon samples /proc/<pid>/status every 10 ms until the process is gone
// and returns the highest RssAnon in KB.
func peakAnon(pid int) int64 {
	var peak int64
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return peak
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssAnon:" {
				if v, _ := strconv.ParseInt(f[1], 10, 64); v > peak {
					peak = v
				}
			}
		}
		if strings.Contains(string(b), "State:\tZ") {
			return peak
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cpuOf returns the CPU seconds a process has used (Linux /proc).
func cpuOf(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 Hz on Linux
}

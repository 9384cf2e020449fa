// Command limits measures the memory of a large mmpipe feature file (issue 9,
// "Limits"): it writes a ROWS × DIM float32 feature file with the store API
// (store.WriteFeatures) and reads it back memory-mapped (store.OpenFeatures),
// printing RssAnon / RssFile / VmHWM from /proc/self/status at each step.
//
//	go run ./bench/limits write --rows 2000000 --dim 512 --out F.arrow
//	go run ./bench/limits read --in F.arrow --sample 100000
//
// "write" holds the whole matrix in memory (WriteFeatures takes a
// FeatureMatrix), so its anonymous peak is ROWS*DIM*4 bytes plus Arrow's
// bookkeeping. "read" opens the file, touches a random sample of rows, then
// every row (summing each vector), and reports what is resident after each
// step: the vectors are file-backed pages (RssFile), not heap (RssAnon).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mmpipe/mmpipe/store"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: limits write|read ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "write":
		err = write(os.Args[2:])
	case "read":
		err = read(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "limits:", err)
		os.Exit(1)
	}
}

// status returns the memory lines of /proc/self/status we report, in MB.
func status(step string, start time.Time) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Printf("%-28s (no /proc/self/status: %v)\n", step, err)
		return
	}
	vals := map[string]string{}
	for _, ln := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(ln, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM", "VmRSS", "RssAnon", "RssFile":
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			vals[k] = fmt.Sprintf("%8.1f", float64(kb)/1024)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("%-28s t=%7.2fs  RssAnon=%s MB  RssFile=%s MB  VmRSS=%s MB  VmHWM=%s MB  GoHeapSys=%7.1f MB\n",
		step, time.Since(start).Seconds(), vals["RssAnon"], vals["RssFile"], vals["VmRSS"], vals["VmHWM"], float64(ms.HeapSys)/(1<<20))
}

func write(args []string) error {
	fs := flag.NewFlagSet("write", flag.ExitOnError)
	rows := fs.Int("rows", 2_000_000, "rows (items)")
	dim := fs.Int("dim", 512, "vector dimension")
	out := fs.String("out", "", "output .arrow file")
	fs.Parse(args)
	if *out == "" {
		return fmt.Errorf("write: --out is required")
	}
	start := time.Now()
	status("start", start)
	m := &store.FeatureMatrix{
		Meta: store.FeatureMeta{Modality: "image", Encoder: "bench-limits", Pooling: "mean"},
		Rows: *rows, Dim: *dim, Data: make([]float32, *rows**dim),
	}
	for r := 0; r < *rows; r++ {
		row := m.Data[r**dim : (r+1)**dim]
		for j := range row {
			row[j] = float32((r*31+j*7)%1009) / 1009
		}
	}
	status("matrix filled", start)
	if err := store.WriteFeatures(*out, m); err != nil {
		return err
	}
	status("WriteFeatures done", start)
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d rows x %d dim, %.2f GB in %.2fs\n", *out, *rows, *dim, float64(st.Size())/1e9, time.Since(start).Seconds())
	return nil
}

func read(args []string) error {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	in := fs.String("in", "", "feature file")
	sample := fs.Int("sample", 100_000, "random rows to touch before the full pass")
	all := fs.Bool("all", true, "touch every row after the sample")
	fs.Parse(args)
	start := time.Now()
	status("start", start)
	ff, err := store.OpenFeatures(*in)
	if err != nil {
		return err
	}
	defer ff.Close()
	status("OpenFeatures", start)
	fmt.Printf("rows=%d dim=%d present=%d\n", ff.Rows(), ff.Dim(), ff.Present())
	rng := rand.New(rand.NewPCG(1, 2))
	var sum float64
	t := time.Now()
	for i := 0; i < *sample; i++ {
		v := ff.Vector(rng.IntN(ff.Rows()))
		sum += float64(v[0] + v[len(v)-1])
	}
	fmt.Printf("sample of %d random rows: %.2fs\n", *sample, time.Since(t).Seconds())
	status(fmt.Sprintf("after %d random rows", *sample), start)
	if *all {
		t = time.Now()
		for r := 0; r < ff.Rows(); r++ {
			for _, x := range ff.Vector(r) {
				sum += float64(x)
			}
		}
		secs := time.Since(t).Seconds()
		fmt.Printf("full pass over %d rows: %.2fs (%.2f GB/s)\n", ff.Rows(), secs, float64(ff.Rows())*float64(ff.Dim())*4/secs/1e9)
		status("after every row", start)
	}
	fmt.Printf("checksum %.3f\n", sum)
	return nil
}

package mmssl

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// criticBytes is the memory the critic needs for a catalogue of n items:
// its items × items/4 and items/4 × items/8 weights with their gradients,
// Adam moments and work buffers, 7.125·n² bytes (BENCHMARKS.md, Limits).
func criticBytes(n int) float64 { return 7.125 * float64(n) * float64(n) }

// checkCriticMemory refuses a catalogue whose critic cannot fit in the
// machine's available memory (MemAvailable of /proc/meminfo), before the
// allocation that would get the process killed. Where /proc/meminfo is not
// readable it does not check.
func checkCriticMemory(items int) error {
	need := criticBytes(items)
	avail, ok := memAvailable()
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("the critic of %d items needs about %.1f GiB (7.125 × items² bytes: its items × items/4 first layer, as in the reference) and only %.1f GiB is available; MMSSL's critic grows with items², so filter the catalogue (e.g. a k-core at ingest) or use a larger machine",
		items, need/(1<<30), avail/(1<<30))
}

func memAvailable() (float64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, false
			}
			return kb * 1024, true
		}
	}
	return 0, false
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/pipeline/crawl"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// crawlServer serves n small JPEGs at /i/<k>.jpg, each after delay, and
// counts the requests in served (when not nil).
func crawlServer(t *testing.T, n int, delay time.Duration, served ...*atomic.Int64) (*httptest.Server, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 16, 12)), nil); err != nil {
		t.Fatal(err)
	}
	img := buf.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range served {
			c.Add(1)
		}
		if !strings.HasPrefix(r.URL.Path, "/i/") {
			http.NotFound(w, r)
			return
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(img)
	}))
	t.Cleanup(srv.Close)
	var csv strings.Builder
	csv.WriteString("item_id,url\n")
	for k := 0; k < n; k++ {
		fmt.Fprintf(&csv, "it%d,%s/i/%d.jpg\n", k, srv.URL, k)
	}
	fmt.Fprintf(&csv, "gone,%s/missing.jpg\n", srv.URL)
	p := filepath.Join(t.TempDir(), "urls.csv")
	if err := os.WriteFile(p, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, p
}

func TestCrawlCLI(t *testing.T) {
	_, urls := crawlServer(t, 20, 0)
	ds := filepath.Join(t.TempDir(), "ds")
	res := filepath.Join(t.TempDir(), "result.json")
	base := []string{"crawl", "--dataset", ds, "--urls", urls, "--allow-private", "--host-rate", "*=0", "--progress", "none"}
	stdout, stderr, code := run(t, append([]string{"--result-file", res}, base...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"20 stored", "1 failed", "http_404 1", "ledger: failed 1, ok 20", "failed.parquet (1 rows)"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
	var r map[string]any
	b, err := os.ReadFile(res)
	if err != nil || json.Unmarshal(b, &r) != nil {
		t.Fatalf("result file: %v %s", err, b)
	}
	if r["stage"] != "crawl" || r["ok"] != 20.0 || r["failed"] != 1.0 || r["skipped"] != false {
		t.Errorf("result file: %v", r)
	}
	if _, err := os.Stat(filepath.Join(ds, crawl.StatsFileName)); err != nil {
		t.Error(err)
	}
	st, err := imagestore.Open(filepath.Join(ds, "images.lmdb"), imagestore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := st.Stats()
	st.Close()
	if stats.Images != 20 || stats.Ledger["ok"] != 20 || stats.Ledger["failed"] != 1 {
		t.Errorf("store: %+v", stats)
	}

	// A re-run has nothing to do and says so; --retry-failed tries the 404 again.
	stdout, _, code = run(t, append([]string{"--result-file", res}, base...)...)
	if code != 0 || !strings.Contains(stdout, "skipped:") {
		t.Errorf("re-run: exit %d\n%s", code, stdout)
	}
	b, _ = os.ReadFile(res)
	if !bytes.Contains(b, []byte(`"skipped": true`)) {
		t.Errorf("re-run result file does not say skipped: %s", b)
	}
	stdout, _, code = run(t, append(base, "--retry-failed")...)
	if code != 0 || !strings.Contains(stdout, "1 items to fetch") {
		t.Errorf("--retry-failed: exit %d\n%s", code, stdout)
	}
}

func TestCrawlCLIUsage(t *testing.T) {
	_, urls := crawlServer(t, 1, 0)
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no dataset", []string{"crawl", "--urls", urls}, "--dataset is required"},
		{"no items", []string{"crawl", "--dataset", empty}, "items.parquet"},
		{"bad shard", []string{"crawl", "--dataset", empty, "--urls", urls, "--shard", "2/2"}, "--shard"},
		{"bad validate", []string{"crawl", "--dataset", empty, "--urls", urls, "--validate", "pixels"}, "--validate"},
		{"bad host rate", []string{"crawl", "--dataset", empty, "--urls", urls, "--host-rate", "example.com"}, "--host-rate"},
		{"bad allow-net", []string{"crawl", "--dataset", empty, "--urls", urls, "--allow-net", "10.0.0.0/99"}, "--allow-net"},
		{"bad max-bytes", []string{"crawl", "--dataset", empty, "--urls", urls, "--max-bytes", "lots"}, "--max-bytes"},
		{"bad quality", []string{"crawl", "--dataset", empty, "--urls", urls, "--resize", "224", "--jpeg-quality", "101"}, "--jpeg-quality"},
		{"missing url file", []string{"crawl", "--dataset", empty, "--urls", "/no/such.csv"}, "/no/such.csv"},
		{"urls and dir", []string{"crawl", "--dataset", empty, "--urls", urls, "--from-dir", empty}, "not both"},
		{"bad progress", []string{"crawl", "--dataset", empty, "--urls", urls, "--progress", "fancy"}, "--progress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, c.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, stderr)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q does not mention %q", stderr, c.msg)
			}
		})
	}
}

func TestCrawlProgressOutput(t *testing.T) {
	_, urls := crawlServer(t, 30, 10*time.Millisecond)
	ds := t.TempDir()
	_, stderr, code := run(t, "crawl", "--dataset", ds, "--urls", urls, "--allow-private", "--host-rate", "*=0",
		"--concurrency", "2", "--progress", "log", "--progress-interval", "20ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := 0
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.Contains(l, "crawl progress") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("progress line is not JSON: %q", l)
			continue
		}
		if _, ok := m["per_second"]; !ok || m["total"] != 31.0 {
			t.Errorf("progress line %v", m)
		}
		lines++
	}
	if lines < 2 {
		t.Errorf("%d progress lines:\n%s", lines, stderr)
	}

	var buf bytes.Buffer
	bar := &progressBar{w: &buf}
	bar.update(crawl.Progress{Total: 200, Done: 50, OK: 40, Failed: 10, PerSecond: 25, ETA: 6 * time.Second,
		Errors: map[string]int{"http_404": 7, "timeout": 3}})
	bar.finish()
	for _, w := range []string{"50/200", "25.0%", "25/s", "ETA 6s", "failed 10", "http_404 7, timeout 3"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("progress bar %q lacks %q", buf.String(), w)
		}
	}
}

// TestCrawlMainHelper is not a test: it runs main() in a child process for
// TestCrawlSignals, and returns at once otherwise.
func TestCrawlMainHelper(t *testing.T) {
	args := os.Getenv("MMPIPE_MAIN_ARGS")
	if args == "" {
		return
	}
	os.Args = append([]string{"mmpipe"}, strings.Split(args, "\x1f")...)
	main()
}

// TestCrawlSignals: SIGINT and SIGTERM make the real binary's main commit
// what it finished and exit with code 3; a re-run completes the crawl.
func TestCrawlSignals(t *testing.T) {
	var served atomic.Int64
	_, urls := crawlServer(t, 400, 5*time.Millisecond, &served)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		ds := t.TempDir()
		args := []string{"crawl", "--dataset", ds, "--urls", urls, "--allow-private", "--host-rate", "*=0",
			"--concurrency", "2", "--progress", "none", "--batch-size", "8"}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrawlMainHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MMPIPE_MAIN_ARGS="+strings.Join(args, "\x1f"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		before := served.Load()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); served.Load()-before < 40 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(sig)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 3 {
			t.Fatalf("%v: exit %d, want 3\n%s", sig, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "re-run to resume") {
			t.Errorf("%v: stderr does not say how to resume: %s", sig, stderr.String())
		}
		_, errOut, code := run(t, args...)
		if code != 0 {
			t.Fatalf("resume after %v: exit %d %s", sig, code, errOut)
		}
		st, err := imagestore.Open(filepath.Join(ds, "images.lmdb"), imagestore.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		stats, _ := st.Stats()
		st.Close()
		if stats.Images != 400 || stats.Ledger["ok"] != 400 || stats.Ledger["failed"] != 1 {
			t.Errorf("after %v and resume: %+v", sig, stats)
		}
	}
}

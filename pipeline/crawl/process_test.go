package crawl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// The crash tests run the crawler in a child process: this test binary,
// re-executed with crawlHelperEnv set, runs TestCrawlHelperProcess.
const (
	crawlHelperEnv     = "CRAWL_TEST_HELPER"
	crawlHelperDataset = "CRAWL_TEST_DATASET"
	crawlHelperURLs    = "CRAWL_TEST_URLS"
)

// TestCrawlHelperProcess is not a test: it is the child process of the
// tests below and returns at once when run normally. Exit codes: 0 done,
// 3 interrupted, 1 other errors.
func TestCrawlHelperProcess(t *testing.T) {
	if os.Getenv(crawlHelperEnv) == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := testOptions(os.Getenv(crawlHelperDataset))
	o.URLsFile = os.Getenv(crawlHelperURLs)
	o.Concurrency = 4
	o.BatchItems = 16
	o.BatchInterval = 20 * time.Millisecond
	_, err := Run(ctx, o)
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
}

func helperCrawl(dataset, urls string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrawlHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crawlHelperEnv+"=1", crawlHelperDataset+"="+dataset, crawlHelperURLs+"="+urls)
	cmd.Stderr = os.Stderr
	return cmd
}

// ledgerCount opens the store read-only (as another process may while the
// crawler writes) and counts the ledger entries.
func ledgerCount(dir string) (int, error) {
	st, err := imagestore.Open(dir, imagestore.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	s, err := st.Stats()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range s.Ledger {
		n += int(c)
	}
	return n, nil
}

// waitForLedger polls until the store has at least n ledger entries.
func waitForLedger(t *testing.T, dir string, n int, cmd *exec.Cmd) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := ledgerCount(dir); err == nil && c >= n {
			return c
		}
		if cmd.ProcessState != nil {
			t.Fatalf("the crawler exited before writing %d entries", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the store never reached %d ledger entries", n)
	return 0
}

// crashServer serves n distinct images, each after a short delay.
func crashServer(t *testing.T, n int) (*testServer, [][2]string) {
	f := newFixtures(t)
	s := newTestServer(t)
	var rows [][2]string
	for i := 0; i < n; i++ {
		p := "/img/" + strconv.Itoa(i) + ".png"
		// Distinct bytes per item: a PNG text chunk with the index.
		body := append(append([]byte{}, f.png[:len(f.png)-12]...), pngChunk("tEXt", []byte("i\x00"+strconv.Itoa(i)))...)
		body = append(body, f.png[len(f.png)-12:]...)
		s.handle(p, func(w http.ResponseWriter, r *http.Request, hit int) {
			time.Sleep(8 * time.Millisecond)
			serveBytes(w, "image/png", body)
		})
		rows = append(rows, [2]string{"item-" + strconv.Itoa(i), s.URL + p})
	}
	return s, rows
}

// TestCrashResume kills the crawler with SIGKILL twice at arbitrary moments
// and resumes it: every item ends up present exactly once, the store is
// never corrupt, the ledger matches the stored bytes, and no item committed
// before a kill is fetched again.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	const n = 600
	s, rows := crashServer(t, n)
	dir := t.TempDir()
	urls := writeURLs(t, dir, rows)
	o := testOptions(dir)
	// hits of each committed item when a kill found it committed
	committedBefore := map[string]int{}
	for round, killAt := range []int{80, 300} {
		cmd := helperCrawl(dir, urls)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitForLedger(t, o.StoreDir(), killAt, cmd)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the crawler was not killed: %v", round, err)
		}
		ledger, images := storeContents(t, o.StoreDir())
		if len(ledger) < killAt || len(ledger) >= n {
			t.Fatalf("round %d: %d ledger entries after the kill", round, len(ledger))
		}
		checkConsistent(t, ledger, images)
		for k := range ledger {
			if _, ok := committedBefore[k]; !ok {
				committedBefore[k] = s.hitsOf("/img/" + k[len("item-"):] + ".png")
			}
		}
		t.Logf("round %d: killed with %d of %d items committed", round, len(ledger), n)
	}
	cmd := helperCrawl(dir, urls)
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("the resumed crawl failed: %v %s", err, out)
	}
	ledger, images := storeContents(t, o.StoreDir())
	if len(ledger) != n || len(images) != n {
		t.Fatalf("after resuming: %d ledger entries, %d images, want %d", len(ledger), len(images), n)
	}
	checkConsistent(t, ledger, images)
	sums := map[string]string{}
	for k, e := range ledger {
		if e.Status != imagestore.StatusOK {
			t.Errorf("%s: %s %s", k, e.Status, e.Error)
		}
		if prev, dup := sums[e.SHA256]; dup {
			t.Errorf("%s and %s hold the same bytes", k, prev)
		}
		sums[e.SHA256] = k
	}
	for k, hits := range committedBefore {
		if h := s.hitsOf("/img/" + k[len("item-"):] + ".png"); h != hits || h > 2 {
			t.Errorf("%s was committed before a kill after %d requests, but requested %d times in all", k, hits, h)
		}
	}
}

// TestSIGTERM: a terminated crawler commits what it finished, writes its
// stats with interrupted = true and exits with code 3; a re-run finishes.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	const n = 300
	_, rows := crashServer(t, n)
	dir := t.TempDir()
	urls := writeURLs(t, dir, rows)
	o := testOptions(dir)
	cmd := helperCrawl(dir, urls)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	before := waitForLedger(t, o.StoreDir(), 50, cmd)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("exit after SIGTERM: %v (code %d), want code 3", err, cmd.ProcessState.ExitCode())
	}
	ledger, images := storeContents(t, o.StoreDir())
	if len(ledger) < before || len(ledger) == n {
		t.Errorf("%d entries after SIGTERM (had %d before the signal)", len(ledger), before)
	}
	checkConsistent(t, ledger, images)
	var st Stats
	b, err := os.ReadFile(o.StatsPath())
	if err != nil || json.Unmarshal(b, &st) != nil || !st.Interrupted || st.Done != len(ledger) {
		t.Errorf("stats after SIGTERM: %v %+v", err, st)
	}
	if out, err := helperCrawl(dir, urls).Output(); err != nil {
		t.Fatalf("resume: %v %s", err, out)
	}
	ledger, images = storeContents(t, o.StoreDir())
	if len(ledger) != n || len(images) != n {
		t.Errorf("after resuming: %d entries, %d images", len(ledger), len(images))
	}
}

package crawl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// testServer is an httptest server whose handlers see how often their path
// was hit (n counts from 1) and record the times of the hits.
type testServer struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string][]time.Time
	route map[string]func(w http.ResponseWriter, r *http.Request, n int)
}

func newTestServer(t testing.TB) *testServer {
	s := &testServer{hits: map[string][]time.Time{}, route: map[string]func(http.ResponseWriter, *http.Request, int){}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// newTestServerAt listens on a given loopback address (127.0.0.2, ...).
func newTestServerAt(t testing.TB, addr string) *testServer {
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	s := &testServer{hits: map[string][]time.Time{}, route: map[string]func(http.ResponseWriter, *http.Request, int){}}
	s.Server = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	s.mu.Lock()
	s.hits[p] = append(s.hits[p], time.Now())
	n := len(s.hits[p])
	h := s.route[p]
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r, n)
}

// handle registers h for path.
func (s *testServer) handle(path string, h func(w http.ResponseWriter, r *http.Request, n int)) {
	s.mu.Lock()
	s.route[path] = h
	s.mu.Unlock()
}

// file serves body with a content type.
func (s *testServer) file(path, ctype string, body []byte) {
	s.handle(path, func(w http.ResponseWriter, r *http.Request, n int) { serveBytes(w, ctype, body) })
}

func serveBytes(w http.ResponseWriter, ctype string, body []byte) {
	if ctype != "" {
		w.Header().Set("Content-Type", ctype)
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

// hitsOf returns the number of requests for path.
func (s *testServer) hitsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hits[path])
}

func (s *testServer) hitTimes(path string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.hits[path]...)
}

// reset closes the connection without an answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST instead of FIN
	}
	c.Close()
}

// testOptions are fast options for tests against local servers.
func testOptions(dir string) Options {
	return Options{
		Dataset:        dir,
		AllowPrivate:   true,
		HostRates:      map[string]float64{"*": -1},
		Concurrency:    16,
		Timeout:        500 * time.Millisecond,
		ConnectTimeout: 500 * time.Millisecond,
		Retries:        2,
		BackoffBase:    5 * time.Millisecond,
		BackoffMax:     20 * time.Millisecond,
		MaxRetryAfter:  3 * time.Second,
		MaxBytes:       1 << 20,
		BatchInterval:  50 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// writeURLs writes an item_id,url CSV with a header.
func writeURLs(t testing.TB, dir string, rows [][2]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("item_id,url\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%s,%s\n", r[0], r[1])
	}
	p := filepath.Join(dir, "urls.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// storeContents reads a closed store: ledger entries and images by key.
func storeContents(t testing.TB, dir string) (map[string]imagestore.LedgerEntry, map[string][]byte) {
	t.Helper()
	st, err := imagestore.Open(dir, imagestore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ledger := map[string]imagestore.LedgerEntry{}
	if err := st.LedgerScan(func(k string, e imagestore.LedgerEntry) error {
		if _, dup := ledger[k]; dup {
			return fmt.Errorf("ledger key %q twice", k)
		}
		ledger[k] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	images := map[string][]byte{}
	if err := st.Keys(func(k string) error {
		img, ok, err := st.Get(k)
		if err != nil || !ok {
			return fmt.Errorf("get %q: %v %v", k, ok, err)
		}
		images[k] = img
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ledger, images
}

// checkConsistent verifies that the ledger and the images agree: an image
// exactly for each ok entry, its sha256 and size as recorded, and a valid
// image of the recorded size.
func checkConsistent(t testing.TB, ledger map[string]imagestore.LedgerEntry, images map[string][]byte) {
	t.Helper()
	for k, e := range ledger {
		img, ok := images[k]
		if (e.Status == imagestore.StatusOK) != ok {
			t.Errorf("%s: ledger status %s, image present %v", k, e.Status, ok)
			continue
		}
		if !ok {
			continue
		}
		sum := sha256.Sum256(img)
		if hex.EncodeToString(sum[:]) != e.SHA256 || int64(len(img)) != e.Bytes {
			t.Errorf("%s: stored %d bytes sha %x, ledger %d bytes sha %s", k, len(img), sum, e.Bytes, e.SHA256)
		}
		info, err := Structural(img, -1)
		if err != nil || info.Width != e.Width || info.Height != e.Height || info.ContentType() != e.ContentType {
			t.Errorf("%s: stored image %+v (%v), ledger %d×%d %s", k, info, err, e.Width, e.Height, e.ContentType)
		}
	}
	for k := range images {
		if _, ok := ledger[k]; !ok {
			t.Errorf("%s: image without a ledger entry", k)
		}
	}
}

// run crawls with o and fails the test on an error.
func run(t testing.TB, o Options) *Stats {
	t.Helper()
	st, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st
}

// slowWriter sends half of body, then waits before the rest.
func slowBody(w http.ResponseWriter, body []byte, pause time.Duration) {
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	time.Sleep(pause)
	w.Write(body[len(body)/2:])
}

// shortBody announces the whole body, sends 60 % and closes.
func shortBody(w http.ResponseWriter, body []byte) {
	hj := w.(http.Hijacker)
	c, buf, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(body))
	buf.Write(body[:len(body)*6/10])
	buf.Flush()
}

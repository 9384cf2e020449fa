package crawl

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// want is the expected ledger state of one item.
type want struct {
	status     string
	class      string
	attempts   int // 0: not checked
	httpStatus int // 0: not checked
	w, h       int // 0: not checked
	ctype      string
	check      func(t *testing.T, e imagestore.LedgerEntry)
}

func okImage(w, h int, ctype string) want {
	return want{status: imagestore.StatusOK, attempts: 1, httpStatus: 200, w: w, h: h, ctype: ctype}
}

func failed(class string, attempts, httpStatus int) want {
	return want{status: imagestore.StatusFailed, class: class, attempts: attempts, httpStatus: httpStatus}
}

func checkLedger(t *testing.T, ledger map[string]imagestore.LedgerEntry, wants map[string]want) {
	t.Helper()
	for id, w := range wants {
		e, ok := ledger[id]
		if !ok {
			t.Errorf("%s: no ledger entry", id)
			continue
		}
		if e.Status != w.status || e.ErrorClass != w.class {
			t.Errorf("%s: status %s class %q (%s), want %s %q", id, e.Status, e.ErrorClass, e.Error, w.status, w.class)
			continue
		}
		if w.attempts != 0 && e.Attempts != w.attempts {
			t.Errorf("%s: %d attempts, want %d (%s)", id, e.Attempts, w.attempts, e.Error)
		}
		if w.httpStatus != 0 && e.HTTPStatus != w.httpStatus {
			t.Errorf("%s: HTTP status %d, want %d", id, e.HTTPStatus, w.httpStatus)
		}
		if w.w != 0 && (e.Width != w.w || e.Height != w.h) {
			t.Errorf("%s: %d×%d, want %d×%d", id, e.Width, e.Height, w.w, w.h)
		}
		if w.ctype != "" && e.ContentType != w.ctype {
			t.Errorf("%s: content type %q, want %q", id, e.ContentType, w.ctype)
		}
		if e.URL == "" || e.Time == "" {
			t.Errorf("%s: ledger entry lacks url or time: %+v", id, e)
		}
		if w.check != nil {
			w.check(t, e)
		}
	}
}

func extraString(e imagestore.LedgerEntry, k string) string {
	var s string
	if raw, ok := e.Extra[k]; ok {
		if json.Unmarshal(raw, &s) != nil {
			return string(raw)
		}
	}
	return s
}

// TestFaults runs one crawl over a server that serves every kind of image
// and every fault, and checks each item's ledger entry.
func TestFaults(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/robots.txt", "text/plain", []byte("User-agent: *\nDisallow: /private/\n\nUser-agent: mmpipe\nDisallow: /nommpipe/\nAllow: /nommpipe/ok\n"))
	s.file("/img/ok.jpg", "image/jpeg", f.jpeg)
	s.file("/img/ok.png", "image/png", f.png)
	s.file("/img/ok.gif", "image/gif", f.gif)
	s.file("/img/ok2.png", "image/png", f.png)
	s.file("/img/anim.gif", "image/gif", f.anim)
	s.file("/img/lossless.webp", "image/webp", webpLossless)
	s.file("/img/lossy.webp", "image/webp", webpLossy)
	s.file("/img/alpha.webp", "image/webp", webpAlpha)
	s.file("/private/x.jpg", "image/jpeg", f.big)
	s.file("/nommpipe/x.jpg", "image/jpeg", f.jpeg)
	s.file("/nommpipe/ok.png", "image/png", f.png)
	s.handle("/img/slow-ok.jpg", func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(100 * time.Millisecond)
		serveBytes(w, "image/jpeg", f.jpeg)
	})
	s.handle("/img/slow-headers.jpg", func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	s.handle("/img/slow-body.jpg", func(w http.ResponseWriter, r *http.Request, n int) { slowBody(w, f.big, 2*time.Second) })
	s.handle("/img/reset.jpg", func(w http.ResponseWriter, r *http.Request, n int) { reset(w) })
	s.handle("/img/reset-twice.jpg", func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 2 {
			reset(w)
			return
		}
		serveBytes(w, "image/jpeg", f.jpeg)
	})
	s.handle("/img/500-twice.png", func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 2 {
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		}
		serveBytes(w, "image/png", f.png)
	})
	s.handle("/img/500.jpg", func(w http.ResponseWriter, r *http.Request, n int) { http.Error(w, "oops", 500) })
	s.handle("/img/403.jpg", func(w http.ResponseWriter, r *http.Request, n int) { http.Error(w, "no", 403) })
	s.handle("/img/429-once.gif", func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		serveBytes(w, "image/gif", f.gif)
	})
	s.handle("/redir/ok", func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, "/img/ok.jpg", http.StatusFound)
	})
	s.handle("/loop/a", func(w http.ResponseWriter, r *http.Request, n int) { http.Redirect(w, r, "/loop/b", http.StatusFound) })
	s.handle("/loop/b", func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, "/loop/a", http.StatusMovedPermanently)
	})
	for i := 0; i < 10; i++ {
		next := "/chain/" + string(rune('0'+i+1))
		s.handle("/chain/"+string(rune('0'+i)), func(w http.ResponseWriter, r *http.Request, n int) { http.Redirect(w, r, next, http.StatusFound) })
	}
	s.handle("/img/huge-cl.jpg", func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", "52428800")
		w.Write(f.jpeg)
	})
	s.handle("/img/huge-chunked.jpg", func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "image/jpeg")
		chunk := make([]byte, 64<<10)
		for i := 0; i < 40; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	s.file("/img/html-as-jpeg.jpg", "image/jpeg", f.html)
	s.file("/img/jpeg-as-html", "text/html; charset=utf-8", f.jpeg)
	s.file("/img/png-octet", "application/octet-stream", f.png)
	s.file("/img/truncated.jpg", "image/jpeg", f.truncated)
	s.handle("/img/short-body.jpg", func(w http.ResponseWriter, r *http.Request, n int) { shortBody(w, f.big) })
	s.file("/img/bomb.png", "image/png", f.bombPNG)
	s.file("/img/bomb.gif", "image/gif", f.bombGIF)
	s.file("/img/x.bmp", "image/bmp", f.bmp)
	s.file("/img/bad-idat.png", "image/png", f.badIDAT)
	xrobots := func(tag string) func(http.ResponseWriter, *http.Request, int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("X-Robots-Tag", tag)
			serveBytes(w, "image/jpeg", f.jpeg)
		}
	}
	s.handle("/img/noai.jpg", xrobots("noai"))
	s.handle("/img/noimageai-for-us.jpg", xrobots("mmpipe: noindex, noimageai"))
	s.handle("/img/noai-other-bot.jpg", xrobots("otherbot: noai"))
	s.handle("/img/noindex.jpg", xrobots("noindex, nofollow"))
	s.handle("/img/unavailable.jpg", xrobots("unavailable_after: 25 Jun 2010 15:00:00 PST"))

	u := s.URL
	rows := [][2]string{
		{"ok-jpeg", u + "/img/ok.jpg"}, {"ok-png", u + "/img/ok.png"}, {"ok-gif", u + "/img/ok.gif"},
		{"ok-anim", u + "/img/anim.gif"}, {"ok-webp-lossless", u + "/img/lossless.webp"},
		{"ok-webp-lossy", u + "/img/lossy.webp"}, {"ok-webp-alpha", u + "/img/alpha.webp"},
		{"robots-other-group", u + "/private/x.jpg"}, {"robots-disallowed", u + "/nommpipe/x.jpg"},
		{"robots-allowed", u + "/nommpipe/ok.png"},
		{"slow-ok", u + "/img/slow-ok.jpg"}, {"slow-headers", u + "/img/slow-headers.jpg"}, {"slow-body", u + "/img/slow-body.jpg"},
		{"reset", u + "/img/reset.jpg"}, {"reset-twice", u + "/img/reset-twice.jpg"},
		{"500-twice", u + "/img/500-twice.png"}, {"500", u + "/img/500.jpg"},
		{"404", u + "/img/missing.jpg"}, {"403", u + "/img/403.jpg"}, {"429-once", u + "/img/429-once.gif"},
		{"redirect", u + "/redir/ok"}, {"redirect-loop", u + "/loop/a"}, {"redirect-chain", u + "/chain/0"},
		{"huge-cl", u + "/img/huge-cl.jpg"}, {"huge-chunked", u + "/img/huge-chunked.jpg"},
		{"html-as-jpeg", u + "/img/html-as-jpeg.jpg"}, {"jpeg-as-html", u + "/img/jpeg-as-html"}, {"png-octet", u + "/img/png-octet"},
		{"truncated", u + "/img/truncated.jpg"}, {"short-body", u + "/img/short-body.jpg"},
		{"bomb-png", u + "/img/bomb.png"}, {"bomb-gif", u + "/img/bomb.gif"}, {"bmp", u + "/img/x.bmp"},
		{"bad-idat", u + "/img/bad-idat.png"},
		{"noai", u + "/img/noai.jpg"}, {"noimageai-for-us", u + "/img/noimageai-for-us.jpg"},
		{"noai-other-bot", u + "/img/noai-other-bot.jpg"}, {"noindex", u + "/img/noindex.jpg"},
		{"unavailable-after", u + "/img/unavailable.jpg"},
		{"fallback", u + "/img/gone.jpg"}, {"fallback", u + "/img/ok2.png"},
		{"ftp", "ftp://127.0.0.1/x.jpg"}, {"file-url", "file:///etc/passwd"}, {"no-host", "http:///x.jpg"},
	}
	dir := t.TempDir()
	o := testOptions(dir)
	o.URLsFile = writeURLs(t, dir, rows)
	start := time.Now()
	stats := run(t, o)
	took := time.Since(start)

	skipped := func(class string) want { return want{status: imagestore.StatusSkipped, class: class, attempts: 1} }
	wants := map[string]want{
		"ok-jpeg":            okImage(96, 64, "image/jpeg"),
		"ok-png":             okImage(40, 30, "image/png"),
		"ok-gif":             okImage(33, 21, "image/gif"),
		"ok-anim":            okImage(20, 10, "image/gif"),
		"ok-webp-lossless":   okImage(1, 1, "image/webp"),
		"ok-webp-lossy":      okImage(1, 1, "image/webp"),
		"ok-webp-alpha":      okImage(1, 1, "image/webp"),
		"robots-other-group": okImage(640, 480, "image/jpeg"),
		"robots-disallowed":  skipped(ClassRobots),
		"robots-allowed":     okImage(40, 30, "image/png"),
		"slow-ok":            okImage(96, 64, "image/jpeg"),
		"slow-headers":       failed(ClassTimeout, 3, 0),
		"slow-body":          failed(ClassTimeout, 3, 200),
		"reset":              failed(ClassConnReset, 3, 0),
		// net/http itself retries a GET once when a reused connection is
		// reset, so the ledger may count 2 attempts for 3 requests.
		"reset-twice": {status: imagestore.StatusOK, httpStatus: 200, w: 96, h: 64},
		"500-twice":   {status: imagestore.StatusOK, attempts: 3, httpStatus: 200, w: 40, h: 30},
		"500":         failed("http_500", 3, 500),
		"404":         failed("http_404", 1, 404),
		"403":         failed("http_403", 1, 403),
		"429-once":    {status: imagestore.StatusOK, attempts: 2, httpStatus: 200, w: 33, h: 21},
		"redirect": {status: imagestore.StatusOK, attempts: 1, httpStatus: 200, w: 96, h: 64, check: func(t *testing.T, e imagestore.LedgerEntry) {
			if e.FinalURL != u+"/img/ok.jpg" {
				t.Errorf("redirect: final url %q", e.FinalURL)
			}
		}},
		"redirect-loop":  failed(ClassRedirectLoop, 1, 301),
		"redirect-chain": failed(ClassTooManyRedirects, 1, 302),
		"huge-cl":        failed(ClassTooLarge, 1, 200),
		"huge-chunked":   failed(ClassTooLarge, 1, 200),
		"html-as-jpeg":   failed(ClassNotImage, 1, 200),
		"jpeg-as-html": {status: imagestore.StatusOK, attempts: 1, w: 96, h: 64, ctype: "image/jpeg", check: func(t *testing.T, e imagestore.LedgerEntry) {
			if extraString(e, "declared_content_type") != "text/html" {
				t.Errorf("jpeg-as-html: declared_content_type %q", extraString(e, "declared_content_type"))
			}
		}},
		"png-octet":         {status: imagestore.StatusOK, attempts: 1, w: 40, h: 30, ctype: "image/png"},
		"truncated":         failed(ClassTruncated, 1, 200),
		"short-body":        failed(ClassConnReset, 3, 200),
		"bomb-png":          failed(ClassPixelLimit, 1, 200),
		"bomb-gif":          failed(ClassPixelLimit, 1, 200),
		"bmp":               failed(ClassUnsupported, 1, 200),
		"bad-idat":          okImage(40, 30, "image/png"), // structural validation cannot see it
		"noai":              skipped(ClassNoAI),
		"noimageai-for-us":  skipped(ClassNoAI),
		"noai-other-bot":    okImage(96, 64, "image/jpeg"),
		"noindex":           okImage(96, 64, "image/jpeg"),
		"unavailable-after": okImage(96, 64, "image/jpeg"),
		"fallback": {status: imagestore.StatusOK, attempts: 2, w: 40, h: 30, check: func(t *testing.T, e imagestore.LedgerEntry) {
			if e.URL != u+"/img/ok2.png" || string(e.Extra["url_index"]) != "1" {
				t.Errorf("fallback: url %q, url_index %s", e.URL, e.Extra["url_index"])
			}
		}},
		"ftp":      failed(ClassScheme, 1, 0),
		"file-url": failed(ClassScheme, 1, 0),
		"no-host":  failed(ClassBadURL, 1, 0),
	}
	ledger, images := storeContents(t, o.StoreDir())
	if len(ledger) != len(wants) {
		t.Errorf("%d ledger entries, want %d", len(ledger), len(wants))
	}
	checkLedger(t, ledger, wants)
	checkConsistent(t, ledger, images)

	// Politeness: robots.txt fetched once; disallowed paths never requested.
	if n := s.hitsOf("/robots.txt"); n != 1 {
		t.Errorf("robots.txt fetched %d times", n)
	}
	if n := s.hitsOf("/nommpipe/x.jpg"); n != 0 {
		t.Errorf("a disallowed path was requested %d times", n)
	}
	// Retry-After: the retry came at least a second later.
	if ts := s.hitTimes("/img/429-once.gif"); len(ts) != 2 || ts[1].Sub(ts[0]) < 950*time.Millisecond {
		t.Errorf("429 retry times %v", ts)
	}
	// The redirect chain stopped at the limit.
	if n := s.hitsOf("/chain/6"); n != 0 || s.hitsOf("/chain/5") != 1 {
		t.Errorf("redirect chain: /chain/5 hit %d, /chain/6 hit %d times", s.hitsOf("/chain/5"), n)
	}
	if n := s.hitsOf("/img/reset-twice.jpg"); n != 3 {
		t.Errorf("reset-twice requested %d times, want 3", n)
	}
	// Duplicates: every ok image whose bytes an earlier one had, pointing to
	// an item with the same bytes.
	bySHA := map[string]int{}
	for k, e := range ledger {
		if e.Status != imagestore.StatusOK {
			continue
		}
		bySHA[e.SHA256]++
		if d := extraString(e, "duplicate_of"); d != "" && ledger[d].SHA256 != e.SHA256 {
			t.Errorf("%s: duplicate_of %q has other bytes", k, d)
		}
	}
	dups := 0
	for _, n := range bySHA {
		dups += n - 1
	}
	if stats.Duplicates != dups || dups < 5 {
		t.Errorf("stats count %d duplicates, the ledger has %d", stats.Duplicates, dups)
	}
	// Stats agree with the ledger.
	var ok, fail, skip int
	for _, e := range ledger {
		switch e.Status {
		case imagestore.StatusOK:
			ok++
		case imagestore.StatusFailed:
			fail++
		case imagestore.StatusSkipped:
			skip++
		}
	}
	if stats.OK != ok || stats.Failed != fail || stats.SkippedItems != skip || stats.Done != len(wants) {
		t.Errorf("stats ok %d failed %d skipped %d done %d; ledger %d %d %d of %d", stats.OK, stats.Failed, stats.SkippedItems, stats.Done, ok, fail, skip, len(wants))
	}
	if stats.ContentTypeMismatch != 2 || stats.Errors["http_404"] != 1 {
		t.Errorf("stats mismatches %d, errors %v", stats.ContentTypeMismatch, stats.Errors)
	}
	if stats.FailedRows != fail+skip {
		t.Errorf("failed.parquet has %d rows, want %d", stats.FailedRows, fail+skip)
	}
	if took > 15*time.Second {
		t.Errorf("the crawl took %s: something waits too long", took)
	}
	t.Logf("%d items in %s, %d requests, %d retries", len(wants), took, stats.Requests, stats.Retries)
}

// TestHostPoliteness covers the behaviours that hold a whole host back.
func TestHostPoliteness(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)

	t.Run("crawl-delay", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.file("/robots.txt", "text/plain", []byte("User-agent: *\nCrawl-delay: 0.25\n"))
		var rows [][2]string
		for i := 0; i < 4; i++ {
			p := "/img/" + string(rune('a'+i)) + ".jpg"
			s.file(p, "image/jpeg", f.jpeg)
			rows = append(rows, [2]string{"cd" + string(rune('a'+i)), s.URL + p})
		}
		dir := t.TempDir()
		o := testOptions(dir)
		o.URLsFile = writeURLs(t, dir, rows)
		run(t, o)
		var times []time.Time
		for i := 0; i < 4; i++ {
			times = append(times, s.hitTimes("/img/"+string(rune('a'+i))+".jpg")...)
		}
		sortTimes(times)
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d < 230*time.Millisecond {
				t.Errorf("requests %d and %d only %s apart (Crawl-delay 0.25 s)", i-1, i, d)
			}
		}
		ledger, images := storeContents(t, o.StoreDir())
		if len(images) != 4 {
			t.Errorf("%d images stored, want 4", len(images))
		}
		checkConsistent(t, ledger, images)
	})

	t.Run("host-rate", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		var rows [][2]string
		for i := 0; i < 6; i++ {
			p := "/img/" + string(rune('a'+i)) + ".png"
			s.file(p, "image/png", f.png)
			rows = append(rows, [2]string{"hr" + string(rune('a'+i)), s.URL + p})
		}
		dir := t.TempDir()
		o := testOptions(dir)
		o.HostRates = map[string]float64{"127.0.0.1": 10} // one request per 100 ms, burst 1
		o.URLsFile = writeURLs(t, dir, rows)
		start := time.Now()
		run(t, o)
		// robots.txt and 6 images: 7 tokens, the first free.
		if d := time.Since(start); d < 570*time.Millisecond {
			t.Errorf("7 requests at 10/s took %s", d)
		}
	})

	t.Run("robots unreachable", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.handle("/robots.txt", func(w http.ResponseWriter, r *http.Request, n int) { http.Error(w, "down", 503) })
		s.file("/img/a.jpg", "image/jpeg", f.jpeg)
		dir := t.TempDir()
		o := testOptions(dir)
		s.file("/img/b.jpg", "image/jpeg", f.jpeg)
		o.URLsFile = writeURLs(t, dir, [][2]string{{"a", s.URL + "/img/a.jpg"}, {"b", s.URL + "/img/b.jpg"}})
		run(t, o)
		ledger, _ := storeContents(t, o.StoreDir())
		checkLedger(t, ledger, map[string]want{"a": failed(ClassRobotsUnreach, 1, 503), "b": failed(ClassRobotsUnreach, 1, 503)})
		if n := s.hitsOf("/img/a.jpg") + s.hitsOf("/img/b.jpg"); n != 0 || s.hitsOf("/robots.txt") != 3 {
			t.Errorf("images hit %d times, robots.txt %d times (want 0 and 3)", n, s.hitsOf("/robots.txt"))
		}
	})

	t.Run("ignore robots", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.file("/robots.txt", "text/plain", []byte("User-agent: *\nDisallow: /\nCrawl-delay: 30\n"))
		s.file("/img/a.jpg", "image/jpeg", f.jpeg)
		dir := t.TempDir()
		o := testOptions(dir)
		o.IgnoreRobots = true
		o.URLsFile = writeURLs(t, dir, [][2]string{{"a", s.URL + "/img/a.jpg"}})
		run(t, o)
		ledger, _ := storeContents(t, o.StoreDir())
		checkLedger(t, ledger, map[string]want{"a": okImage(96, 64, "image/jpeg")})
		if n := s.hitsOf("/robots.txt"); n != 0 {
			t.Errorf("robots.txt fetched %d times with IgnoreRobots", n)
		}
	})

	t.Run("crawl-delay too long", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.file("/robots.txt", "text/plain", []byte("User-agent: *\nCrawl-delay: 3600\n"))
		s.file("/img/a.jpg", "image/jpeg", f.jpeg)
		dir := t.TempDir()
		o := testOptions(dir)
		o.URLsFile = writeURLs(t, dir, [][2]string{{"a", s.URL + "/img/a.jpg"}})
		run(t, o)
		ledger, _ := storeContents(t, o.StoreDir())
		checkLedger(t, ledger, map[string]want{"a": failed(ClassCrawlDelay, 1, 0)})
		if n := s.hitsOf("/img/a.jpg"); n != 0 {
			t.Errorf("image fetched %d times from a host asking for an hour between requests", n)
		}
	})

	t.Run("retry-after too long", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		var rows [][2]string
		for i := 0; i < 7; i++ {
			p := "/img/" + strconv.Itoa(i) + ".jpg"
			s.handle(p, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Retry-After", "3600")
				http.Error(w, "maintenance", http.StatusServiceUnavailable)
			})
			rows = append(rows, [2]string{"i" + strconv.Itoa(i), s.URL + p})
		}
		dir := t.TempDir()
		o := testOptions(dir)
		o.Concurrency = 1 // one request at a time: the first answer blocks the host for the others
		o.URLsFile = writeURLs(t, dir, rows)
		start := time.Now()
		run(t, o)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s: the crawler waited for a Retry-After of an hour", d)
		}
		ledger, _ := storeContents(t, o.StoreDir())
		requested, answered, held := 0, 0, 0
		for i := 0; i < 7; i++ {
			requested += s.hitsOf("/img/" + strconv.Itoa(i) + ".jpg")
			switch e := ledger["i"+strconv.Itoa(i)]; {
			case e.Status == imagestore.StatusFailed && e.ErrorClass == "http_503" && e.HTTPStatus == 503 && e.Attempts == 1:
				answered++
			case e.Status == imagestore.StatusFailed && e.ErrorClass == ClassHostBackoff:
				held++
			default:
				t.Errorf("i%d: %+v", i, e)
			}
		}
		if requested != 1 || answered != 1 || held != 6 {
			t.Errorf("%d requests, %d items answered 503, %d held back (want 1, 1, 6)", requested, answered, held)
		}
	})
}

func sortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// TestPrivateAddresses: without --allow-private nothing internal is
// contacted, directly, by name or through a redirect.
func TestPrivateAddresses(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	a := newTestServer(t) // 127.0.0.1
	a.file("/img/ok.jpg", "image/jpeg", f.jpeg)
	b := newTestServerAt(t, "127.0.0.2")
	b.file("/img/ok.jpg", "image/jpeg", f.jpeg)
	a.handle("/redir", func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, b.URL+"/img/ok.jpg", http.StatusFound)
	})
	_, port, _ := strings.Cut(strings.TrimPrefix(a.URL, "http://"), ":")

	t.Run("all private refused", func(t *testing.T) {
		dir := t.TempDir()
		o := testOptions(dir)
		o.AllowPrivate = false
		o.URLsFile = writeURLs(t, dir, [][2]string{{"ip", a.URL + "/img/ok.jpg"}, {"name", "http://localhost:" + port + "/img/ok.jpg"},
			{"v6", "http://[::1]:" + port + "/img/ok.jpg"}, {"meta", "http://169.254.169.254/latest/meta-data/"}})
		run(t, o)
		ledger, images := storeContents(t, o.StoreDir())
		checkLedger(t, ledger, map[string]want{"ip": failed(ClassBlocked, 1, 0), "name": failed(ClassBlocked, 1, 0),
			"v6": failed(ClassBlocked, 1, 0), "meta": failed(ClassBlocked, 1, 0)})
		if len(images) != 0 || a.hitsOf("/img/ok.jpg") != 0 || a.hitsOf("/robots.txt") != 0 {
			t.Errorf("%d images stored, server hit %d times", len(images), a.hitsOf("/img/ok.jpg")+a.hitsOf("/robots.txt"))
		}
	})
	t.Run("redirect to a private address refused", func(t *testing.T) {
		dir := t.TempDir()
		o := testOptions(dir)
		o.AllowPrivate = false
		o.AllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		o.URLsFile = writeURLs(t, dir, [][2]string{{"direct", a.URL + "/img/ok.jpg"}, {"redirected", a.URL + "/redir"}})
		run(t, o)
		ledger, _ := storeContents(t, o.StoreDir())
		checkLedger(t, ledger, map[string]want{"direct": okImage(96, 64, "image/jpeg"), "redirected": failed(ClassBlocked, 1, 0)})
		if n := b.hitsOf("/img/ok.jpg") + b.hitsOf("/robots.txt"); n != 0 {
			t.Errorf("the private server behind the redirect was hit %d times", n)
		}
		if e := ledger["redirected"]; e.FinalURL != b.URL+"/img/ok.jpg" {
			t.Errorf("final url %q", e.FinalURL)
		}
	})
}

// TestResume: a re-run fetches nothing; --retry-failed fetches the failures
// again; --force refetches and keeps images whose refetch fails.
func TestResume(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	var healthy, gone atomic.Bool
	s.file("/img/a.jpg", "image/jpeg", f.jpeg)
	s.handle("/img/b.png", func(w http.ResponseWriter, r *http.Request, n int) {
		if gone.Load() {
			http.NotFound(w, r)
			return
		}
		serveBytes(w, "image/png", f.png)
	})
	s.handle("/img/flaky.gif", func(w http.ResponseWriter, r *http.Request, n int) {
		if !healthy.Load() {
			http.Error(w, "down", 500)
			return
		}
		serveBytes(w, "image/gif", f.gif)
	})
	dir := t.TempDir()
	o := testOptions(dir)
	o.URLsFile = writeURLs(t, dir, [][2]string{{"a", s.URL + "/img/a.jpg"}, {"b", s.URL + "/img/b.png"}, {"flaky", s.URL + "/img/flaky.gif"}})

	st := run(t, o)
	if st.OK != 2 || st.Failed != 1 || st.Skipped {
		t.Fatalf("first run: %+v", st)
	}
	hits := s.hitsOf("/img/a.jpg") + s.hitsOf("/img/b.png") + s.hitsOf("/img/flaky.gif")

	st = run(t, o)
	if !st.Skipped || st.AlreadyDone != 3 || st.Done != 0 {
		t.Errorf("second run: skipped %v, already done %d, done %d", st.Skipped, st.AlreadyDone, st.Done)
	}
	if n := s.hitsOf("/img/a.jpg") + s.hitsOf("/img/b.png") + s.hitsOf("/img/flaky.gif"); n != hits {
		t.Errorf("second run made %d requests", n-hits)
	}

	healthy.Store(true)
	o.RetryFailed = true
	st = run(t, o)
	if st.ToFetch != 1 || st.OK != 1 || st.Failed != 0 {
		t.Errorf("--retry-failed run: to fetch %d, ok %d, failed %d", st.ToFetch, st.OK, st.Failed)
	}
	ledger, images := storeContents(t, o.StoreDir())
	checkLedger(t, ledger, map[string]want{"flaky": okImage(33, 21, "image/gif")})
	checkConsistent(t, ledger, images)
	if st.FailedRows != 0 {
		t.Errorf("failed.parquet has %d rows after every item succeeded", st.FailedRows)
	}

	// A changed URL (a re-ingest) is fetched again without --force.
	s.file("/img/a2.jpg", "image/jpeg", f.big)
	o.RetryFailed = false
	o.URLsFile = writeURLs(t, dir, [][2]string{{"a", s.URL + "/img/a2.jpg"}, {"b", s.URL + "/img/b.png"}, {"flaky", s.URL + "/img/flaky.gif"}})
	st = run(t, o)
	if st.ToFetch != 1 || st.OK != 1 {
		t.Errorf("changed URL: to fetch %d, ok %d", st.ToFetch, st.OK)
	}
	ledger, images = storeContents(t, o.StoreDir())
	checkLedger(t, ledger, map[string]want{"a": okImage(640, 480, "image/jpeg")})

	gone.Store(true)
	o.RetryFailed, o.Force = false, true
	before := ledger["b"]
	st = run(t, o)
	if st.ToFetch != 3 || st.KeptPrevious != 1 {
		t.Errorf("--force: to fetch %d, kept %d", st.ToFetch, st.KeptPrevious)
	}
	ledger, images = storeContents(t, o.StoreDir())
	if e := ledger["b"]; e.Status != imagestore.StatusOK || e.SHA256 != before.SHA256 || images["b"] == nil {
		t.Errorf("--force lost the stored image of b: %+v", e)
	}
	checkConsistent(t, ledger, images)
}

// TestValidationModes: --validate decode catches what structure cannot;
// --resize re-encodes large images and keeps small ones.
func TestValidationModes(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/bad-idat.png", "image/png", f.badIDAT)
	s.file("/big.jpg", "image/jpeg", f.big)
	s.file("/small.jpg", "image/jpeg", f.jpeg)
	s.file("/alpha.png", "image/png", f.alpha)
	s.file("/webp", "image/webp", webpLossless)
	rows := [][2]string{{"bad-idat", s.URL + "/bad-idat.png"}, {"big", s.URL + "/big.jpg"}, {"small", s.URL + "/small.jpg"},
		{"alpha", s.URL + "/alpha.png"}, {"webp", s.URL + "/webp"}}

	dir := t.TempDir()
	o := testOptions(dir)
	o.URLsFile = writeURLs(t, dir, rows)
	o.Validate = ValidateDecode
	run(t, o)
	ledger, images := storeContents(t, o.StoreDir())
	checkLedger(t, ledger, map[string]want{"bad-idat": failed(ClassDecode, 1, 200), "big": okImage(640, 480, "image/jpeg"),
		"webp": okImage(1, 1, "image/webp")})
	checkConsistent(t, ledger, images)

	dir = t.TempDir()
	o = testOptions(dir)
	o.URLsFile = writeURLs(t, dir, rows)
	o.Resize = 224
	st := run(t, o)
	ledger, images = storeContents(t, o.StoreDir())
	checkLedger(t, ledger, map[string]want{
		"big": {status: imagestore.StatusOK, w: 224, h: 168, ctype: "image/jpeg", check: func(t *testing.T, e imagestore.LedgerEntry) {
			if string(e.Extra["original_width"]) != "640" || string(e.Extra["original_height"]) != "480" {
				t.Errorf("big: original size %s×%s", e.Extra["original_width"], e.Extra["original_height"])
			}
		}},
		"alpha":    {status: imagestore.StatusOK, w: 224, h: 75, ctype: "image/jpeg"},
		"small":    okImage(96, 64, "image/jpeg"),
		"bad-idat": failed(ClassDecode, 1, 200),
	})
	checkConsistent(t, ledger, images)
	if string(images["small"]) != string(f.jpeg) {
		t.Error("a small image was re-encoded")
	}
	if st.Resized != 2 {
		t.Errorf("stats: %d resized, want 2", st.Resized)
	}
}

// TestShards: the parts of a sharded crawl are disjoint and together hold
// every item, each in the part InShard assigns it to.
func TestShards(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/x.gif", "image/gif", f.gif)
	dir := t.TempDir()
	var rows [][2]string
	for i := 0; i < 60; i++ {
		rows = append(rows, [2]string{"item" + strconv.Itoa(i), s.URL + "/x.gif"})
	}
	urls := writeURLs(t, dir, rows)
	const n = 3
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		o := testOptions(dir)
		o.URLsFile = urls
		o.Shard, o.Shards = i, n
		st := run(t, o)
		if want := PartDir(dir, i, n); filepath.Dir(o.StoreDir()) != want || !strings.HasSuffix(want, "parts/crawl-"+strconv.Itoa(i)+"-of-3") {
			t.Errorf("shard %d writes %s", i, o.StoreDir())
		}
		ledger, images := storeContents(t, o.StoreDir())
		if st.Items != len(ledger) || len(images) != len(ledger) {
			t.Errorf("shard %d: %d items, %d ledger entries, %d images", i, st.Items, len(ledger), len(images))
		}
		for k := range ledger {
			seen[k]++
			if !InShard(k, i, n) {
				t.Errorf("%s is in part %d", k, i)
			}
		}
		if _, err := os.Stat(filepath.Join(PartDir(dir, i, n), StatsFileName)); err != nil {
			t.Error(err)
		}
	}
	if len(seen) != 60 {
		t.Errorf("the parts hold %d distinct items, want 60", len(seen))
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s in %d parts", k, c)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "images.lmdb")); err == nil {
		t.Error("a sharded crawl wrote the unsharded store")
	}

	// The parts merge into one store holding every item once; merging again
	// changes nothing, and a failed entry never replaces a stored image.
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, filepath.Join(PartDir(dir, i, n), "images.lmdb"))
	}
	merged := filepath.Join(dir, "images.lmdb")
	for round := 0; round < 2; round++ {
		ms, err := MergeParts(context.Background(), merged, parts)
		if err != nil || ms.Parts != n || ms.Images != 60 {
			t.Fatalf("merge round %d: %+v, %v", round, ms, err)
		}
	}
	failedPart := filepath.Join(t.TempDir(), "images.lmdb")
	fst, err := imagestore.Open(failedPart, imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fb := &imagestore.Batch{}
	fb.PutLedger("item7", imagestore.LedgerEntry{Status: imagestore.StatusFailed, ErrorClass: "http_404"})
	fb.PutLedger("new", imagestore.LedgerEntry{Status: imagestore.StatusFailed, ErrorClass: "http_404"})
	if err := fst.Commit(fb); err != nil {
		t.Fatal(err)
	}
	fst.Close()
	ms, err := MergeParts(context.Background(), merged, []string{failedPart})
	if err != nil || ms.Kept != 1 || ms.Ledger != 1 {
		t.Errorf("merging failures: %+v, %v", ms, err)
	}
	ledger, images := storeContents(t, merged)
	if len(ledger) != 61 || len(images) != 60 || ledger["item7"].Status != imagestore.StatusOK {
		t.Errorf("merged store: %d entries, %d images, item7 %s", len(ledger), len(images), ledger["item7"].Status)
	}
	checkConsistent(t, ledger, images)
}

// TestInterrupt: cancelling the context commits the finished items, returns
// an error wrapping context.Canceled, and a re-run completes the rest
// without fetching a committed item twice.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	const items = 120
	var rows [][2]string
	for i := 0; i < items; i++ {
		p := "/img/" + itoa3(i) + ".jpg"
		s.handle(p, func(w http.ResponseWriter, r *http.Request, n int) {
			time.Sleep(20 * time.Millisecond)
			serveBytes(w, "image/jpeg", f.jpeg)
		})
		rows = append(rows, [2]string{"i" + itoa3(i), s.URL + p})
	}
	dir := t.TempDir()
	o := testOptions(dir)
	o.Concurrency = 4
	o.BatchItems = 8
	o.URLsFile = writeURLs(t, dir, rows)
	ctx, cancel := context.WithCancel(context.Background())
	var progressed atomic.Int64
	o.Progress = func(p Progress) {
		if progressed.Store(int64(p.Done)); p.Done >= 20 {
			cancel()
		}
	}
	o.ProgressInterval = 10 * time.Millisecond
	st, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	if st == nil || !st.Interrupted || st.Done < 20 || st.Done >= items {
		t.Fatalf("interrupted run stats: %+v", st)
	}
	ledger, images := storeContents(t, o.StoreDir())
	if len(ledger) != st.Done {
		t.Errorf("%d ledger entries after the interruption, stats say %d done", len(ledger), st.Done)
	}
	checkConsistent(t, ledger, images)

	committed := ledger

	st2 := run(t, o)
	if st2.AlreadyDone != st.Done || st2.ToFetch != items-st.Done {
		t.Errorf("resume: already done %d, to fetch %d (first run did %d)", st2.AlreadyDone, st2.ToFetch, st.Done)
	}
	ledger, images = storeContents(t, o.StoreDir())
	if len(ledger) != items || len(images) != items {
		t.Errorf("after resume: %d ledger entries, %d images", len(ledger), len(images))
	}
	checkConsistent(t, ledger, images)
	// A committed item is never fetched again (items in flight when the run
	// was cancelled were not committed and are fetched a second time).
	for k := range committed {
		if n := s.hitsOf("/img/" + strings.TrimPrefix(k, "i") + ".jpg"); n != 1 {
			t.Errorf("%s committed in the first run, fetched %d times", k, n)
		}
	}
}

func itoa3(i int) string {
	b := []byte{'0' + byte(i/100%10), '0' + byte(i/10%10), '0' + byte(i%10)}
	return string(b)
}

// TestSharedURL: items that share a URL (a placeholder image) cause one
// request; each item still gets its image and ledger entry.
func TestSharedURL(t *testing.T) {
	t.Parallel()
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/placeholder.gif", "image/gif", f.gif)
	s.handle("/gone.jpg", func(w http.ResponseWriter, r *http.Request, n int) { http.NotFound(w, r) })
	var rows [][2]string
	for i := 0; i < 6; i++ {
		rows = append(rows, [2]string{"p" + strconv.Itoa(i), s.URL + "/placeholder.gif"}, [2]string{"g" + strconv.Itoa(i), s.URL + "/gone.jpg"})
	}
	dir := t.TempDir()
	o := testOptions(dir)
	o.URLsFile = writeURLs(t, dir, rows)
	st := run(t, o)
	if n := s.hitsOf("/placeholder.gif"); n != 1 {
		t.Errorf("the shared URL was requested %d times", n)
	}
	if n := s.hitsOf("/gone.jpg"); n != 1 {
		t.Errorf("the shared missing URL was requested %d times", n)
	}
	ledger, images := storeContents(t, o.StoreDir())
	checkConsistent(t, ledger, images)
	shared := 0
	for i := 0; i < 6; i++ {
		p, g := ledger["p"+strconv.Itoa(i)], ledger["g"+strconv.Itoa(i)]
		if p.Status != imagestore.StatusOK || g.Status != imagestore.StatusFailed || g.ErrorClass != "http_404" {
			t.Errorf("item %d: %s, %s %s", i, p.Status, g.Status, g.ErrorClass)
		}
		if string(p.Extra["shared_fetch"]) == "true" {
			shared++
		}
	}
	if shared != 5 || st.Duplicates != 5 || st.OK != 6 || st.Failed != 6 {
		t.Errorf("%d shared fetches, stats %d duplicates, %d ok, %d failed", shared, st.Duplicates, st.OK, st.Failed)
	}
}

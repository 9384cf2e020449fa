package crawl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// Fetch error classes (ledger error_class values). HTTP errors are
// "http_<code>" (http_404, http_500, ...).
const (
	ClassTimeout          = "timeout"
	ClassConnReset        = "connection_reset"
	ClassConnRefused      = "connection_refused"
	ClassUnreachable      = "unreachable"
	ClassNetwork          = "network"
	ClassDNS              = "dns"
	ClassTLS              = "tls"
	ClassBlocked          = "blocked_address"
	ClassScheme           = "unsupported_scheme"
	ClassBadURL           = "bad_url"
	ClassTooLarge         = "too_large"
	ClassTooManyRedirects = "too_many_redirects"
	ClassRedirectLoop     = "redirect_loop"
	ClassRobots           = "robots_disallowed"
	ClassRobotsUnreach    = "robots_unreachable"
	ClassCrawlDelay       = "crawl_delay_too_long"
	ClassNoAI             = "noai"
	ClassHostBackoff      = "retry_after_too_long" // the host's Retry-After exceeds --max-retry-after
	ClassNoURL            = "no_url"
	ClassNoFile           = "no_file" // --from-dir: no file for the item
	ClassIO               = "io"
	ClassResize           = "resize"
)

// failure is why an item (or one attempt of it) did not end with a stored
// image.
type failure struct {
	status     string // imagestore.StatusFailed or StatusSkipped
	class      string
	msg        string
	httpStatus int
	transient  bool          // worth retrying
	retryAfter time.Duration // from Retry-After, when the server sent one
}

func (f *failure) Error() string { return f.class + ": " + f.msg }

func failf(class string, transient bool, format string, args ...any) *failure {
	return &failure{status: imagestore.StatusFailed, class: class, transient: transient, msg: fmt.Sprintf(format, args...)}
}

func skipf(class string, format string, args ...any) *failure {
	return &failure{status: imagestore.StatusSkipped, class: class, msg: fmt.Sprintf(format, args...)}
}

// errInterrupted marks work abandoned because the run's context ended.
var errInterrupted = errors.New("interrupted")

// fetched is the outcome of fetching one URL, retries included.
type fetched struct {
	url          string
	finalURL     string
	body         []byte
	httpStatus   int
	declaredType string // Content-Type header, media type only
	attempts     int
	fail         *failure
	interrupted  bool
}

// fetcher downloads URLs politely and safely; safe for concurrent use.
type fetcher struct {
	o      *Options
	client *http.Client
	hosts  *hostTable
	conns  chan struct{} // open requests
	token  string        // robots.txt product token, lower case
	xtags  map[string]bool

	requests      atomic.Int64
	retries       atomic.Int64
	bytes         atomic.Int64
	robotsFetched atomic.Int64
}

func newFetcher(o *Options) *fetcher {
	pol := addressPolicy{allowPrivate: o.AllowPrivate, allow: o.AllowNets}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would hide the addresses the SSRF check must see
		DialContext:           pol.dialer(o.ConnectTimeout),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * o.Concurrency,
		MaxIdleConnsPerHost:   o.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	xt := map[string]bool{}
	for _, t := range o.XRobotsTags {
		xt[strings.ToLower(strings.TrimSpace(t))] = true
	}
	return &fetcher{
		o: o,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		hosts: newHostTable(o.DefaultHostRate, o.HostRates),
		conns: make(chan struct{}, o.Concurrency),
		token: strings.ToLower(o.RobotsToken),
		xtags: xt,
	}
}

func (f *fetcher) close() { f.client.CloseIdleConnections() }

// backoff is the wait before retry number n (1, 2, ...): exponential from
// BackoffBase, capped at BackoffMax, with "equal jitter" (between half and
// all of it) so that retries of many items do not arrive together.
func (f *fetcher) backoff(n int) time.Duration {
	d := f.o.BackoffBase << min(n-1, 20)
	if d > f.o.BackoffMax || d <= 0 {
		d = f.o.BackoffMax
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// fetch downloads raw with retries: transient failures (time-outs, resets,
// 5xx, 429) are retried up to Options.Retries times with back-off; 429 and
// 503 wait for Retry-After (the host's gate holds every request to it).
func (f *fetcher) fetch(ctx context.Context, raw string) fetched {
	res := fetched{url: raw}
	for attempt := 1; ; attempt++ {
		res.attempts = attempt
		a := f.attempt(ctx, raw, false)
		if ctx.Err() != nil || errors.Is(a.err, errInterrupted) {
			res.interrupted = true
			return res
		}
		res.finalURL, res.httpStatus, res.declaredType = a.finalURL, a.status, a.ctype
		if a.fail == nil {
			res.body, res.fail = a.body, nil
			return res
		}
		res.fail = a.fail
		if !a.fail.transient || attempt > f.o.Retries {
			return res
		}
		f.retries.Add(1)
		wait := f.backoff(attempt)
		if a.fail.retryAfter > 0 {
			wait = 0 // the host gate waits for Retry-After
		}
		if err := sleep(ctx, wait); err != nil {
			res.interrupted = true
			return res
		}
	}
}

// attemptResult is one try at a URL, redirects followed.
type attemptResult struct {
	finalURL string
	status   int
	ctype    string
	body     []byte
	fail     *failure
	err      error // errInterrupted
}

// attempt makes one try at raw: for each hop of the redirect chain it checks
// the scheme, robots.txt (unless robots is set: then raw is a robots.txt),
// waits for the host's gate and a connection slot, and sends the request;
// the whole try is bounded by Options.Timeout (waits for politeness are
// not counted).
func (f *fetcher) attempt(ctx context.Context, raw string, robots bool) attemptResult {
	var res attemptResult
	maxBody := f.o.MaxBytes
	maxHops := f.o.MaxRedirects
	if robots {
		maxBody, maxHops = robotsMaxBytes, robotsMaxRedirects
	}
	seen := map[string]bool{raw: true}
	cur := raw
	var spent time.Duration // time spent in requests so far
	for hop := 0; ; hop++ {
		res.finalURL = cur
		u, fail := parseHTTPURL(cur)
		if fail != nil {
			res.fail = fail
			return res
		}
		if !robots {
			if fail := f.checkRobots(ctx, u); fail != nil {
				if errors.Is(fail, errInterrupted) {
					res.err = errInterrupted
				} else {
					res.fail = fail
				}
				return res
			}
		}
		if fail, err := f.politeSlot(ctx, u); fail != nil || err != nil {
			res.fail, res.err = fail, err
			return res
		}
		left := f.o.Timeout - spent
		if left <= 0 {
			res.fail = failf(ClassTimeout, true, "%s: no time left for redirect %d after %s", cur, hop, f.o.Timeout)
			return res
		}
		start := time.Now()
		r := f.request(ctx, u, left, maxBody, robots)
		spent += time.Since(start)
		if r.err != nil {
			res.err = r.err
			return res
		}
		res.status, res.ctype = r.status, r.ctype
		if r.redirect == "" {
			res.body, res.fail = r.body, r.fail
			return res
		}
		if hop >= maxHops {
			res.fail = failf(ClassTooManyRedirects, false, "%s: more than %d redirects", raw, maxHops)
			res.fail.httpStatus = r.status
			return res
		}
		if seen[r.redirect] {
			res.fail = failf(ClassRedirectLoop, false, "%s: redirect loop back to %s", raw, r.redirect)
			res.fail.httpStatus = r.status
			return res
		}
		seen[r.redirect] = true
		cur = r.redirect
	}
}

// parseHTTPURL parses an absolute http or https URL.
func parseHTTPURL(raw string) (*url.URL, *failure) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, failf(ClassBadURL, false, "%q: %v", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "file":
		return nil, failf(ClassScheme, false, "%s: file URLs are read with --from-dir DIR, not fetched", raw)
	default:
		return nil, failf(ClassScheme, false, "%s: only http and https URLs are fetched", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, failf(ClassBadURL, false, "%q: no host", raw)
	}
	if u.User != nil {
		return nil, failf(ClassBadURL, false, "%s: URLs with credentials are refused", u.Redacted())
	}
	return u, nil
}

// politeSlot waits for the host's gate, then for a connection slot, which
// it holds on success (request releases it). A Retry-After that arrived
// while it waited for the slot sends it back to the gate.
func (f *fetcher) politeSlot(ctx context.Context, u *url.URL) (*failure, error) {
	g := f.hosts.gate(u.Hostname())
	for {
		if err := g.wait(ctx, f.o.MaxRetryAfter); err != nil {
			var hb *errHostBackoff
			if errors.As(err, &hb) {
				return failf(ClassHostBackoff, false, "%s: %v, more than --max-retry-after %s (retry later with --retry-failed)", u, hb, f.o.MaxRetryAfter), nil
			}
			return nil, errInterrupted
		}
		select {
		case f.conns <- struct{}{}:
		case <-ctx.Done():
			return nil, errInterrupted
		}
		if time.Until(g.until()) <= 0 {
			return nil, nil
		}
		<-f.conns
	}
}

// requestResult is one HTTP exchange.
type requestResult struct {
	status   int
	ctype    string
	redirect string // absolute Location of a 3xx
	body     []byte
	fail     *failure
	err      error
}

// request sends one GET and reads the answer; the caller holds a connection
// slot, which request releases.
func (f *fetcher) request(ctx context.Context, u *url.URL, timeout time.Duration, maxBody int64, robots bool) requestResult {
	defer func() { <-f.conns }()
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u.String(), nil)
	if err != nil {
		return requestResult{fail: failf(ClassBadURL, false, "%s: %v", u, err)}
	}
	req.Header.Set("User-Agent", f.o.UserAgent)
	if robots {
		req.Header.Set("Accept", "text/plain,*/*;q=0.5")
	} else {
		req.Header.Set("Accept", "image/webp,image/jpeg,image/png,image/gif;q=0.9,image/*;q=0.5")
	}
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return requestResult{err: errInterrupted}
		}
		return requestResult{fail: classifyNetErr(u.String(), err)}
	}
	defer resp.Body.Close()
	r := requestResult{status: resp.StatusCode}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		r.ctype = mt
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "":
		loc, err := resp.Location()
		io.CopyN(io.Discard, resp.Body, 64<<10) // let the connection be reused
		if err != nil {
			r.fail = failf(ClassBadURL, false, "%s: redirect to a bad Location %q: %v", u, resp.Header.Get("Location"), err)
			return r
		}
		loc.Fragment = ""
		r.redirect = loc.String()
		return r
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		r.fail = f.httpFailure(u, resp)
		io.CopyN(io.Discard, resp.Body, 64<<10)
		return r
	}
	if !robots {
		if tag := f.xRobotsBlock(resp.Header); tag != "" {
			r.fail = skipf(ClassNoAI, "%s: X-Robots-Tag %q", u, tag)
			r.fail.httpStatus = resp.StatusCode
			return r // the body is not read
		}
	}
	if !robots && resp.ContentLength > maxBody {
		r.fail = failf(ClassTooLarge, false, "%s: Content-Length %d exceeds the limit of %d bytes", u, resp.ContentLength, maxBody)
		r.fail.httpStatus = resp.StatusCode
		return r
	}
	body, err := readBody(resp.Body, resp.ContentLength, maxBody)
	f.bytes.Add(int64(len(body)))
	switch {
	case errors.Is(err, errTooLarge):
		if robots { // RFC 9309: parse at least the first 500 KiB
			r.body = body
			return r
		}
		r.fail = failf(ClassTooLarge, false, "%s: body exceeds the limit of %d bytes", u, maxBody)
	case err != nil && ctx.Err() != nil:
		return requestResult{err: errInterrupted}
	case err != nil:
		r.fail = classifyNetErr(u.String(), err)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			r.fail.msg = fmt.Sprintf("%s: body ended after %d of %d bytes", u, len(body), resp.ContentLength)
		}
	default:
		r.body = body
	}
	if r.fail != nil {
		r.fail.httpStatus = resp.StatusCode
	}
	return r
}

// httpFailure classifies a non-2xx answer; 429 and 503 with Retry-After
// block the host until then.
func (f *fetcher) httpFailure(u *url.URL, resp *http.Response) *failure {
	code := resp.StatusCode
	transient := code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
	fl := failf("http_"+strconv.Itoa(code), transient, "%s: HTTP %s", u, resp.Status)
	fl.httpStatus = code
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			fl.retryAfter = max(ra, time.Millisecond)
			if ra > f.o.MaxRetryAfter {
				fl.transient = false
				fl.msg += fmt.Sprintf(" with Retry-After %s, more than --max-retry-after %s (retry later with --retry-failed)", ra.Round(time.Second), f.o.MaxRetryAfter)
			} else {
				fl.msg += fmt.Sprintf(" with Retry-After %s", ra)
			}
			f.hosts.gate(u.Hostname()).block(time.Now().Add(ra))
		} else if code == http.StatusTooManyRequests {
			// No Retry-After: hold the host for one back-off step.
			f.hosts.gate(u.Hostname()).block(time.Now().Add(f.o.BackoffBase))
		}
	}
	return fl
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 1<<31)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// xRobotsBlock returns the X-Robots-Tag directive that forbids storing the
// image for this crawler ("" if none). Values apply to every crawler or,
// with a "name:" prefix, to the named one.
func (f *fetcher) xRobotsBlock(h http.Header) string {
	for _, v := range h.Values("X-Robots-Tag") {
		val := v
		if name, rest, ok := strings.Cut(v, ":"); ok {
			n := strings.ToLower(strings.TrimSpace(name))
			switch {
			case strings.ContainsAny(n, ", "), n == "unavailable_after", strings.HasPrefix(n, "max-"):
				// a directive with a value, not a user-agent prefix
			case n == f.token:
				val = rest
			default:
				continue // for another crawler
			}
		}
		for _, d := range strings.Split(val, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if f.xtags[d] {
				return d
			}
		}
	}
	return ""
}

var errTooLarge = errors.New("body too large")

// readBody reads at most max bytes of r; more is errTooLarge.
func readBody(r io.Reader, contentLength, maxBytes int64) ([]byte, error) {
	size := int64(32 << 10)
	if contentLength > 0 {
		size = min(contentLength, maxBytes) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return buf.Bytes(), err
	}
	if n > maxBytes {
		return buf.Bytes()[:maxBytes], errTooLarge
	}
	return buf.Bytes(), nil
}

// classifyNetErr maps a transport error to a failure class.
func classifyNetErr(u string, err error) *failure {
	var (
		blocked *BlockedAddressError
		dns     *net.DNSError
		cert    *tls.CertificateVerificationError
		unk     x509.UnknownAuthorityError
		host    x509.HostnameError
		rec     tls.RecordHeaderError
		ne      net.Error
	)
	msg := err.Error()
	switch {
	case errors.As(err, &blocked):
		return failf(ClassBlocked, false, "%s: %v", u, blocked)
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return failf(ClassDNS, false, "%s: no such host %s", u, dns.Name)
		}
		return failf(ClassDNS, true, "%s: %s", u, msg)
	case errors.As(err, &cert), errors.As(err, &unk), errors.As(err, &host), errors.As(err, &rec):
		return failf(ClassTLS, false, "%s: %s", u, msg)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failf(ClassTimeout, true, "%s: %s", u, msg)
	case errors.Is(err, syscall.ECONNREFUSED):
		return failf(ClassConnRefused, true, "%s: %s", u, msg)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(msg, "server closed"), strings.Contains(msg, "connection reset"):
		return failf(ClassConnReset, true, "%s: %s", u, msg)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return failf(ClassUnreachable, true, "%s: %s", u, msg)
	}
	return failf(ClassNetwork, true, "%s: %s", u, msg)
}

// Limits of robots.txt fetches (RFC 9309 §2.3.1.2, §2.5).
const (
	robotsMaxBytes     = 512 << 10
	robotsMaxRedirects = 5
)

// checkRobots applies the robots.txt of u's origin (fetched on first use):
// a disallowed path is skipped, a Crawl-delay slows the host's gate.
func (f *fetcher) checkRobots(ctx context.Context, u *url.URL) *failure {
	if f.o.IgnoreRobots {
		return nil
	}
	origin := strings.ToLower(u.Scheme + "://" + u.Host)
	hr, first := f.hosts.robotsFor(origin)
	if first {
		hr.robots, hr.fail = f.loadRobots(ctx, origin)
		if hr.robots != nil {
			f.hosts.gate(u.Hostname()).applyCrawlDelay(hr.robots.CrawlDelay())
		}
		close(hr.done)
	} else {
		select {
		case <-hr.done:
		case <-ctx.Done():
			return interruptedFailure()
		}
	}
	if hr.fail != nil {
		if hr.fail.status == statusInterrupted {
			if ctx.Err() != nil {
				return hr.fail
			}
			// The loader was interrupted but we were not (a test harness with
			// several contexts): treat as unreachable.
			return failf(ClassRobotsUnreach, false, "%s/robots.txt: fetch was interrupted", origin)
		}
		c := *hr.fail
		return &c
	}
	if d := hr.robots.CrawlDelay(); d > f.o.MaxCrawlDelay {
		return failf(ClassCrawlDelay, false, "%s/robots.txt asks for a Crawl-delay of %s, more than --max-crawl-delay %s", origin, d, f.o.MaxCrawlDelay)
	}
	if !hr.robots.Allowed(u) {
		return skipf(ClassRobots, "%s: disallowed by %s/robots.txt for user-agent %q", u, origin, f.token)
	}
	return nil
}

// Is makes errors.Is(f, errInterrupted) hold for the marker that
// interruptedFailure returns.
func (f *failure) Is(target error) bool {
	return target == errInterrupted && f.status == statusInterrupted
}

// statusInterrupted marks a failure that is no failure: the run's context
// ended. Such results are never written.
const statusInterrupted = "interrupted"

func interruptedFailure() *failure {
	return &failure{status: statusInterrupted, class: statusInterrupted, msg: errInterrupted.Error()}
}

// loadRobots fetches and parses origin/robots.txt. 2xx: its rules; 4xx
// (except 429): no rules; 5xx, 429 and network errors, after the retries:
// complete disallow (RFC 9309 §2.3.1.4), recorded as robots_unreachable so
// --retry-failed tries again later.
func (f *fetcher) loadRobots(ctx context.Context, origin string) (*Robots, *failure) {
	raw := origin + "/robots.txt"
	for attempt := 1; ; attempt++ {
		a := f.attempt(ctx, raw, true)
		if ctx.Err() != nil || errors.Is(a.err, errInterrupted) {
			return nil, interruptedFailure()
		}
		if a.fail == nil {
			f.robotsFetched.Add(1)
			return ParseRobots(a.body, f.token), nil
		}
		switch a.fail.class {
		case ClassBlocked, ClassDNS, ClassTLS, ClassBadURL, ClassScheme:
			if !a.fail.transient {
				return nil, a.fail // the images would fail the same way
			}
		case ClassTooManyRedirects, ClassRedirectLoop:
			return AllowAll(), nil // "unavailable"
		}
		if a.status >= 400 && a.status < 500 && a.status != http.StatusTooManyRequests {
			f.robotsFetched.Add(1)
			return AllowAll(), nil
		}
		if !a.fail.transient || attempt > f.o.Retries {
			fl := failf(ClassRobotsUnreach, false, "%s unreachable (%s); RFC 9309 says to assume complete disallow", raw, a.fail.msg)
			fl.httpStatus = a.status
			return nil, fl
		}
		f.retries.Add(1)
		wait := f.backoff(attempt)
		if a.fail.retryAfter > 0 {
			wait = 0
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, interruptedFailure()
		}
	}
}

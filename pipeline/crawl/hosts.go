package crawl

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// hostGate is the politeness state of one host name: a token bucket of
// requests per second (lowered to honour a robots.txt Crawl-delay) and a
// time before which no request may start (set by Retry-After).
type hostGate struct {
	name string
	lim  *rate.Limiter // nil: unlimited

	mu           sync.Mutex
	blockedUntil time.Time
	delaySet     bool
}

// hostRobots is the robots.txt state of one origin (scheme://host:port),
// fetched once.
type hostRobots struct {
	done   chan struct{}
	robots *Robots
	fail   *failure // set when robots.txt could not be fetched
}

// hostTable holds the gates and robots.txt of every host seen in a run.
type hostTable struct {
	defaultRate float64
	rates       map[string]float64 // lower-cased host or domain → requests/s (<= 0: unlimited)

	mu     sync.Mutex
	gates  map[string]*hostGate
	robots map[string]*hostRobots
}

func newHostTable(defaultRate float64, rates map[string]float64) *hostTable {
	r := make(map[string]float64, len(rates))
	for k, v := range rates {
		r[strings.ToLower(strings.TrimSuffix(k, "."))] = v
	}
	return &hostTable{defaultRate: defaultRate, rates: r, gates: map[string]*hostGate{}, robots: map[string]*hostRobots{}}
}

// rateFor returns the configured rate of host: the entry for the host
// itself, else for its nearest parent domain, else "*", else the default.
func (t *hostTable) rateFor(host string) float64 {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for {
		if r, ok := t.rates[h]; ok {
			return r
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	if r, ok := t.rates["*"]; ok {
		return r
	}
	return t.defaultRate
}

// burstFor is the bucket size of a rate: 1 (strictly spaced requests) for
// polite rates, about a tenth of a second's worth for fast ones.
func burstFor(r float64) int {
	if r <= 10 {
		return 1
	}
	return int(math.Ceil(r / 10))
}

// gate returns the gate of host, creating it.
func (t *hostTable) gate(host string) *hostGate {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gates[host]
	if g == nil {
		g = &hostGate{name: host}
		if r := t.rateFor(host); r > 0 && !math.IsInf(r, 1) {
			g.lim = rate.NewLimiter(rate.Limit(r), burstFor(r))
		}
		t.gates[host] = g
	}
	return g
}

// applyCrawlDelay lowers the gate's rate to one request per d (never raises
// it); the first delay seen for a host wins.
func (g *hostGate) applyCrawlDelay(d time.Duration) {
	if d <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.delaySet {
		return
	}
	g.delaySet = true
	r := rate.Every(d)
	if g.lim == nil {
		g.lim = rate.NewLimiter(r, 1)
		return
	}
	if r < g.lim.Limit() {
		g.lim.SetLimit(r)
		g.lim.SetBurst(1)
	}
}

// block makes the gate wait until t before the next request starts.
func (g *hostGate) block(t time.Time) {
	g.mu.Lock()
	if t.After(g.blockedUntil) {
		g.blockedUntil = t
	}
	g.mu.Unlock()
}

func (g *hostGate) until() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blockedUntil
}

// errHostBackoff is returned by wait when the host asked (Retry-After) for
// a pause longer than the crawler waits.
type errHostBackoff struct{ wait time.Duration }

func (e *errHostBackoff) Error() string {
	return fmt.Sprintf("the host asked for a pause of %s (Retry-After)", e.wait.Round(time.Second))
}

// wait blocks until a request to the host may start: after any Retry-After
// block, and with a token from the bucket. A block longer than maxBlock
// returns *errHostBackoff at once instead of waiting.
func (g *hostGate) wait(ctx context.Context, maxBlock time.Duration) error {
	for {
		if d := time.Until(g.until()); d > 0 {
			if d > maxBlock {
				return &errHostBackoff{wait: d}
			}
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		g.mu.Lock()
		lim := g.lim
		g.mu.Unlock()
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// The wait would outlast the context's deadline.
				return context.DeadlineExceeded
			}
		}
		// A Retry-After may have arrived while we waited for a token.
		if time.Until(g.until()) <= 0 {
			return nil
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// robotsFor returns the robots.txt state of origin, and whether the caller
// must fetch it (it is the first to ask); other callers wait on done.
func (t *hostTable) robotsFor(origin string) (*hostRobots, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.robots[origin]
	if r != nil {
		return r, false
	}
	r = &hostRobots{done: make(chan struct{})}
	t.robots[origin] = r
	return r, true
}

// hostCount returns the number of hosts and robots.txt origins seen.
func (t *hostTable) counts() (hosts, origins int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.gates), len(t.robots)
}

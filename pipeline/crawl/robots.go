package crawl

import (
	"bufio"
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Robots holds the rules of one robots.txt (RFC 9309) that apply to one
// user-agent token: the groups naming the token, or else the `*` groups.
type Robots struct {
	rules      []robotsRule
	crawlDelay time.Duration
	// disallowAll is set when robots.txt could not be fetched because of a
	// server or network error (RFC 9309 §2.3.1.4: assume complete disallow).
	disallowAll bool
}

type robotsRule struct {
	allow   bool
	pattern string
}

// AllowAll is the rule set of a host without a robots.txt (4xx).
func AllowAll() *Robots { return &Robots{} }

// ParseRobots parses a robots.txt body for the given product token (matched
// case-insensitively against each user-agent line's product token).
// Unknown lines are ignored; Crawl-delay (seconds, fractions allowed) is
// read from the matching groups.
func ParseRobots(body []byte, token string) *Robots {
	token = strings.ToLower(strings.TrimSpace(token))
	type group struct {
		agents []string
		rules  []robotsRule
		delay  time.Duration
		hasDel bool
	}
	var groups []*group
	var cur *group
	inAgents := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		switch key {
		case "user-agent", "useragent", "user agent":
			if !inAgents {
				cur = &group{}
				groups = append(groups, cur)
				inAgents = true
			}
			cur.agents = append(cur.agents, agentToken(val))
		case "allow", "disallow":
			inAgents = false
			if cur == nil || val == "" { // an empty Disallow allows everything
				continue
			}
			cur.rules = append(cur.rules, robotsRule{allow: key == "allow", pattern: normalizePattern(val)})
		case "crawl-delay", "crawldelay":
			inAgents = false
			if cur == nil {
				continue
			}
			if f, err := strconv.ParseFloat(val, 64); err == nil && f >= 0 && f < 1e6 {
				cur.delay, cur.hasDel = time.Duration(f*float64(time.Second)), true
			}
		default:
			// Sitemap and unknown keys do not end a run of user-agent lines
			// in most parsers, but RFC 9309 groups end at the first rule;
			// keep it simple: other keys end the agent run.
			if key != "sitemap" {
				inAgents = false
			}
		}
	}
	r := &Robots{}
	pick := func(match func(string) bool) bool {
		found := false
		for _, g := range groups {
			for _, a := range g.agents {
				if match(a) {
					r.rules = append(r.rules, g.rules...)
					if g.hasDel && g.delay > r.crawlDelay {
						r.crawlDelay = g.delay
					}
					found = true
					break
				}
			}
		}
		return found
	}
	if token == "" || !pick(func(a string) bool { return a == token }) {
		pick(func(a string) bool { return a == "*" })
	}
	return r
}

// agentToken is the lower-cased product token of a user-agent line value
// ("Googlebot/2.1 (+http://...)" → "googlebot").
func agentToken(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if i := strings.IndexAny(v, "/ \t("); i > 0 {
		v = v[:i]
	}
	return v
}

// normalizePattern percent-encodes the non-ASCII bytes of a rule and
// upper-cases percent escapes, so rules and paths compare alike.
func normalizePattern(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 0x80 || c <= 0x20:
			b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)|0x100, 16)[1:]))
		case c == '%' && i+2 < len(p):
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// robotsPath is the part of u that rules match: the escaped path and query.
func robotsPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return normalizePattern(p)
}

// Allowed reports whether the rules allow fetching u. The longest matching
// rule wins; on a tie, allow wins; /robots.txt is always allowed.
func (r *Robots) Allowed(u *url.URL) bool {
	if r == nil {
		return true
	}
	p := robotsPath(u)
	if p == "/robots.txt" {
		return true
	}
	if r.disallowAll {
		return false
	}
	best, allow := -1, true
	for _, rule := range r.rules {
		if !matchPattern(rule.pattern, p) {
			continue
		}
		n := len(rule.pattern)
		if n > best || (n == best && rule.allow) {
			best, allow = n, rule.allow
		}
	}
	return allow
}

// CrawlDelay is the delay between requests the matching groups ask for.
func (r *Robots) CrawlDelay() time.Duration {
	if r == nil {
		return 0
	}
	return r.crawlDelay
}

// matchPattern matches a robots.txt path pattern: a prefix match where `*`
// matches any run of characters and a final `$` anchors the end.
func matchPattern(pattern, path string) bool {
	anchored := strings.HasSuffix(pattern, "$")
	if anchored {
		pattern = pattern[:len(pattern)-1]
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(path, parts[0]) {
		return false
	}
	pos := len(parts[0])
	if len(parts) == 1 {
		return !anchored || pos == len(path)
	}
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(path[pos:], mid)
		if i < 0 {
			return false
		}
		pos += i + len(mid)
	}
	last := parts[len(parts)-1]
	if anchored {
		return len(path)-len(last) >= pos && strings.HasSuffix(path, last)
	}
	return strings.Contains(path[pos:], last)
}

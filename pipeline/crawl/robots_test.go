package crawl

import (
	"net/url"
	"testing"
	"time"
)

func TestRobots(t *testing.T) {
	const txt = `# comment
User-agent: *
Disallow: /private/
Allow: /private/public
Crawl-delay: 2

User-agent: mmpipe
User-agent: otherbot
Disallow: /nommpipe/
Allow: /nommpipe/ok
Disallow: /*.gif$
Disallow: /q?*secret
Crawl-delay: 0.5

User-agent: Googlebot/2.1
Disallow: /
`
	cases := []struct {
		token, path string
		allowed     bool
	}{
		{"mmpipe", "/private/x.jpg", true}, // the mmpipe group replaces *
		{"mmpipe", "/nommpipe/x.jpg", false},
		{"MMPIPE", "/nommpipe/x.jpg", false}, // tokens match case-insensitively
		{"mmpipe", "/nommpipe/ok.jpg", true}, // longer allow wins
		{"mmpipe", "/a/b.gif", false},
		{"mmpipe", "/a/b.gif?x=1", true}, // $ anchors the end
		{"mmpipe", "/q?a=1&secret=2", false},
		{"mmpipe", "/q?a=1", true},
		{"mmpipe", "/robots.txt", true},
		{"otherbot", "/nommpipe/x.jpg", false},
		{"somebot", "/private/x.jpg", false},
		{"somebot", "/private/public/x.jpg", true},
		{"somebot", "/nommpipe/x.jpg", true},
		{"googlebot", "/anything", false},
	}
	for _, c := range cases {
		r := ParseRobots([]byte(txt), c.token)
		u, _ := url.Parse("http://h" + c.path)
		if got := r.Allowed(u); got != c.allowed {
			t.Errorf("%s %s: allowed %v, want %v", c.token, c.path, got, c.allowed)
		}
	}
	if d := ParseRobots([]byte(txt), "mmpipe").CrawlDelay(); d != 500*time.Millisecond {
		t.Errorf("mmpipe crawl delay %s", d)
	}
	if d := ParseRobots([]byte(txt), "x").CrawlDelay(); d != 2*time.Second {
		t.Errorf("* crawl delay %s", d)
	}
}

func TestRobotsEdgeCases(t *testing.T) {
	cases := []struct {
		name, txt, path string
		allowed         bool
	}{
		{"empty file", "", "/x", true},
		{"empty disallow allows all", "User-agent: *\nDisallow:\n", "/x", true},
		{"disallow all", "User-agent: *\nDisallow: /\n", "/x", false},
		{"rules before any user-agent are ignored", "Disallow: /\n", "/x", true},
		{"tie: allow wins", "User-agent: *\nDisallow: /a\nAllow: /a\n", "/a", true},
		{"wildcard in the middle", "User-agent: *\nDisallow: /img/*/large/\n", "/img/1/2/large/x.jpg", false},
		{"percent-encoding", "User-agent: *\nDisallow: /caf%c3%a9\n", "/caf%C3%A9/x", false},
		{"non-ascii rule", "User-agent: *\nDisallow: /café\n", "/caf%C3%A9/x", false},
		{"crlf and spaces", "User-agent : *\r\nDisallow :  /x  \r\n", "/x/y", false},
		{"unknown lines", "Foo: bar\nUser-agent: *\nSitemap: http://h/s.xml\nDisallow: /x\n", "/x", false},
		{"two groups for *", "User-agent: *\nDisallow: /a\n\nUser-agent: *\nDisallow: /b\n", "/b", false},
	}
	for _, c := range cases {
		r := ParseRobots([]byte(c.txt), "mmpipe")
		u, err := url.Parse("http://h" + c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Allowed(u); got != c.allowed {
			t.Errorf("%s: %s allowed %v, want %v", c.name, c.path, got, c.allowed)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/", "/anything", true},
		{"/fish", "/fish.html", true},
		{"/fish", "/Fish", false},
		{"/fish$", "/fish", true},
		{"/fish$", "/fish/", false},
		{"/*.php", "/index.php", true},
		{"/*.php", "/folder/filename.php?parameters", true},
		{"/*.php$", "/filename.php?parameters", false},
		{"/fish*.php", "/fishheads/catfish.php?parameters", true},
		{"/fish*.php", "/Fish.PHP", false},
		{"*", "/x", true},
		{"/a*b*c$", "/abc", true},
		{"/a*b*c$", "/a-b-c-c", true},
		{"/a*b*c$", "/a-b-c-d", false},
	}
	for _, c := range cases {
		if got := matchPattern(c.pattern, c.path); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}

package crawl

import (
	"bytes"
	"image"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for what the crawler parses from the network: robots.txt
// bodies and image bytes.

// FuzzParseRobots parses a robots.txt body for a token and asks about one
// path: no panic; /robots.txt is always allowed; the crawl delay is in
// [0, 1e6 s); a body without a Disallow line allows everything; and every
// rule matches the path exactly when the rule, read as a regular expression
// (`*` any run, a final `$` the end), does, with the longest match deciding
// as RFC 9309 says.
func FuzzParseRobots(f *testing.F) {
	for _, s := range []struct{ body, token, path string }{
		{"User-agent: *\nDisallow: /private/\nAllow: /private/public\nCrawl-delay: 2\n", "mmpipe", "/private/x.jpg"},
		{"User-agent: mmpipe\nUser-agent: other\nDisallow: /*.gif$\nDisallow: /q?*secret\nCrawl-delay: 0.5\n", "MMPIPE", "/a/b.gif"},
		{"user-agent: Googlebot/2.1 (+http://x)\r\ndisallow: /\r\n# c\r\n", "googlebot", "/q?a=1&secret=2"},
		{"Disallow: /x\nUser-agent: *\nDisallow:\nSitemap: http://h/s.xml\nAllow: /%e9t%C3%a9\n", "", "/été"},
		{"User-agent: *\nDisallow: /a*b*c$\nCrawl-delay: -1\nCrawl-delay: 1e9\n", "x", "/aXbYc"},
		{"", "mmpipe", "/"},
		{"\xff\xfe\x00U\x00s", "mmpipe", "/robots.txt"},
	} {
		f.Add([]byte(s.body), s.token, s.path)
	}
	f.Fuzz(func(t *testing.T, body []byte, token, path string) {
		r := ParseRobots(body, token)
		if d := r.CrawlDelay(); d < 0 || d >= 1e6*time.Second {
			t.Fatalf("crawl delay %v", d)
		}
		if !r.Allowed(&url.URL{Scheme: "http", Host: "h", Path: "/robots.txt"}) {
			t.Fatal("/robots.txt disallowed")
		}
		u, err := url.Parse("http://h" + path)
		if err != nil || u.Host != "h" {
			return
		}
		allowed := r.Allowed(u)
		if !bytes.Contains(bytes.ToLower(body), []byte("disallow")) && !allowed {
			t.Fatalf("%s disallowed by a body without Disallow lines", path)
		}
		p := robotsPath(u)
		if p == "/robots.txt" {
			return
		}
		best, want := -1, true
		for _, rule := range r.rules {
			re, err := patternRegexp(rule.pattern)
			if err != nil {
				t.Fatalf("rule %q: %v", rule.pattern, err)
			}
			m := re.MatchString(p)
			if got := matchPattern(rule.pattern, p); got != m {
				t.Fatalf("matchPattern(%q, %q) = %v, the regular expression %s says %v", rule.pattern, p, got, re, m)
			}
			if m && (len(rule.pattern) > best || len(rule.pattern) == best && rule.allow) {
				best, want = len(rule.pattern), rule.allow
			}
		}
		if allowed != want {
			t.Fatalf("Allowed(%s) = %v, the longest matching rule says %v", p, allowed, want)
		}
	})
}

// patternRegexp is the reference reading of a robots.txt path pattern.
func patternRegexp(pattern string) (*regexp.Regexp, error) {
	anchored := strings.HasSuffix(pattern, "$")
	pattern = strings.TrimSuffix(pattern, "$")
	parts := strings.Split(pattern, "*")
	for i, s := range parts {
		parts[i] = regexp.QuoteMeta(s)
	}
	expr := `\A` + strings.Join(parts, `(?s:.*)`)
	if anchored {
		expr += `\z`
	}
	return regexp.Compile(expr)
}

// decodeLimit bounds the images the fuzz target decodes in full (a header
// may announce any size the pixel limit allows).
const decodeLimit = 1 << 20

// FuzzValidateImage runs structural validation and, for images it accepts,
// the crawl's full decode and resize path. Structural: no panic; every
// error is an *ImageError of a validation class; the format is the sniffed
// one; an accepted image has a positive size within the pixel limit, at
// least one frame, and its format's end marker. Decode: a failure is of the
// decode, corrupt or resize class; a success keeps the image when it fits
// and otherwise yields a JPEG that passes structural validation and decodes
// to the size reported, whose longer side is the resize limit.
func FuzzValidateImage(f *testing.F) {
	fx := newFixtures(f)
	for _, b := range [][]byte{fx.jpeg, fx.png, fx.gif, fx.anim, fx.alpha, fx.truncated, fx.badIDAT, fx.bmp, fx.html,
		webpLossless, webpLossy, webpAlpha, bombPNG(5000, 5000), bombGIF(300, 200),
		[]byte{0xFF, 0xD8, 0xFF, 0xD9}, []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")} {
		f.Add(b, int64(0), uint8(32))
		f.Add(b, int64(DefaultMaxPixels), uint8(0))
	}
	f.Add(fx.jpeg, int64(1000), uint8(200))
	f.Fuzz(func(t *testing.T, b []byte, maxPixels int64, resize uint8) {
		info, err := Structural(b, maxPixels)
		if info.Format != Sniff(b) {
			t.Fatalf("format %q, sniffed %q", info.Format, Sniff(b))
		}
		if err != nil {
			ie, ok := asImageError(err)
			if !ok {
				t.Fatalf("error %T %v is not an *ImageError", err, err)
			}
			switch ie.Class {
			case ClassNotImage, ClassUnsupported, ClassTruncated, ClassCorrupt, ClassPixelLimit:
			default:
				t.Fatalf("error class %q: %v", ie.Class, err)
			}
			// No signature: not an image, or one of another format; a
			// signature: never "not an image" (a JPEG whose height is in a
			// DNL marker is unsupported).
			if (ie.Class == ClassNotImage) != (info.Format == "") && !(ie.Class == ClassUnsupported && info.Format == "") {
				t.Fatalf("class %s for format %q", ie.Class, info.Format)
			}
			return
		}
		if info.Width <= 0 || info.Height <= 0 || info.Frames < 1 {
			t.Fatalf("accepted with size %d×%d, %d frames", info.Width, info.Height, info.Frames)
		}
		if maxPixels > 0 && int64(info.Width)*int64(info.Height) > maxPixels {
			t.Fatalf("accepted %d×%d over the limit of %d pixels", info.Width, info.Height, maxPixels)
		}
		end := map[string][]byte{FormatJPEG: {0xFF, 0xD9}, FormatPNG: []byte("IEND"), FormatGIF: {0x3B}, FormatWebP: []byte("VP8")}[info.Format]
		if !bytes.Contains(b, end) {
			t.Fatalf("%s accepted without %q", info.Format, end)
		}
		if info.ContentType() == "" {
			t.Fatalf("no content type for %s", info.Format)
		}
		if int64(info.Width)*int64(info.Height) > decodeLimit {
			return
		}
		r := &runner{o: &Options{Resize: int(resize), JPEGQuality: 75}}
		out, w, h, fl := r.decodeAndResize(b, info)
		if fl != nil && fl.class == ClassCorrupt {
			// The standard decoder reads an image that fits the header's
			// size: the crawl must not call it corrupt.
			if m, _, err := image.Decode(bytes.NewReader(b)); err == nil && m.Bounds().In(image.Rect(0, 0, info.Width, info.Height)) {
				t.Fatalf("%s: %v, but it decodes to %v", info.Format, fl, m.Bounds())
			}
		}
		if fl != nil {
			switch fl.class {
			case ClassDecode, ClassCorrupt, ClassResize:
			default:
				t.Fatalf("decode failure of class %q: %v", fl.class, fl)
			}
			return
		}
		fits := resize == 0 || max(info.Width, info.Height) <= int(resize)
		if fits != (out == nil) {
			t.Fatalf("%d×%d, resize %d: resized output %d bytes", info.Width, info.Height, resize, len(out))
		}
		if out == nil {
			return
		}
		if max(w, h) != int(resize) || min(w, h) < 1 {
			t.Fatalf("%d×%d resized to %d×%d, limit %d", info.Width, info.Height, w, h, resize)
		}
		oi, err := Structural(out, 0)
		if err != nil || oi.Format != FormatJPEG || oi.Width != w || oi.Height != h {
			t.Fatalf("resized output: %+v, %v; want a %d×%d JPEG", oi, err, w, h)
		}
		m, _, err := image.Decode(bytes.NewReader(out))
		if err != nil || m.Bounds().Dx() != w || m.Bounds().Dy() != h {
			t.Fatalf("resized output decodes to %v, %v; want %d×%d", m, err, w, h)
		}
	})
}

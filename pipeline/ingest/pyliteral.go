package ingest

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// A parser for Python literals as written by repr()/str() of dicts, the
// format of the Amazon 2014 metadata files (one dict per line), which also
// reads JSON (true/false/null, \/ and surrogate-pair escapes).
//
// Values map to Go as: dict → map[string]any (non-string keys are formatted
// as text), list/tuple/set → []any, str/bytes → string, int → int64 (float64
// when it overflows), float → float64, True/False → bool, None → nil.
//
// \xNN escapes: Python 2 wrote byte strings, so 'caf\xc3\xa9' holds the UTF-8
// bytes of "café", while Python 3 writes 'caf\xe9' for the same text. A
// string's \xNN escapes are first taken as bytes; when the result is not
// valid UTF-8 they are taken as code points U+0000–U+00FF instead.
//
// The parser is a hand-written recursive descent over the bytes with no
// regular expressions; strings without escapes are found with
// bytes.IndexByte and converted once.

// pyMaxDepth bounds nesting, so hostile input cannot exhaust the stack.
const pyMaxDepth = 256

// PySyntaxError is a malformed Python literal; Offset is the byte offset in
// the parsed text.
type PySyntaxError struct {
	Offset int
	Msg    string
}

func (e *PySyntaxError) Error() string {
	return fmt.Sprintf("python literal: offset %d: %s", e.Offset, e.Msg)
}

// pyParser parses Python literals. The zero value is ready; reuse one per
// file to recycle its scratch buffer.
type pyParser struct {
	b     []byte
	i     int
	depth int
	buf   []byte // scratch for strings with escapes
}

// parsePyLiteral parses b, which must hold exactly one literal (white space
// around it is allowed).
func parsePyLiteral(b []byte) (any, error) {
	var p pyParser
	p.reset(b)
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return v, nil
}

func (p *pyParser) reset(b []byte) {
	p.b, p.i, p.depth = b, 0, 0
}

func (p *pyParser) errf(off int, format string, args ...any) error {
	return &PySyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (p *pyParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.i++
		default:
			return
		}
	}
}

// end checks that only white space follows.
func (p *pyParser) end() error {
	p.ws()
	if p.i != len(p.b) {
		return p.errf(p.i, "unexpected %s after the literal", p.show(p.i))
	}
	return nil
}

// show describes the byte at off for an error message.
func (p *pyParser) show(off int) string {
	if off >= len(p.b) {
		return "end of input"
	}
	r, _ := utf8.DecodeRune(p.b[off:])
	return strconv.QuoteRune(r)
}

// topDict parses b as one dict and returns the entries whose key is in keys,
// skipping the others without building them (cheap for the large 'related'
// lists of Amazon metadata). keys nil keeps everything.
func (p *pyParser) topDict(b []byte, keys []string) (map[string]any, error) {
	p.reset(b)
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, p.errf(p.i, "expected '{' (a dict), found %s", p.show(p.i))
	}
	out := make(map[string]any, len(keys))
	err := p.entries(func(key []byte, keyStart int) error {
		name, ok := pickKey(key, keys)
		if !ok {
			return p.skip()
		}
		if name == "" {
			name = string(key)
		}
		v, err := p.value()
		if err != nil {
			return err
		}
		out[name] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// pickKey reports whether key is wanted: keys nil wants all (name ""),
// otherwise the matching constant string is returned (no allocation).
func pickKey(key []byte, keys []string) (string, bool) {
	if keys == nil {
		return "", true
	}
	for _, k := range keys {
		if string(key) == k {
			return k, true
		}
	}
	return "", false
}

// spans parses b as one dict and stores in out[k] the raw text of the value
// of names[k] (nil when absent). Nothing is allocated; decode the spans with
// spanBytes and spanFloat.
func (p *pyParser) spans(b []byte, names []string, out [][]byte) error {
	for k := range out {
		out[k] = nil
	}
	p.reset(b)
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return p.errf(p.i, "expected '{' (an object), found %s", p.show(p.i))
	}
	err := p.entries(func(key []byte, _ int) error {
		want := -1
		for k, n := range names {
			if string(key) == n {
				want = k
				break
			}
		}
		start := p.i
		if err := p.skip(); err != nil {
			return err
		}
		if want >= 0 {
			out[want] = p.b[start:p.i]
		}
		return nil
	})
	if err != nil {
		return err
	}
	return p.end()
}

// entries walks the dict at p.i ('{' expected) calling fn after each key's
// ':' with p.i at the value; fn must consume the value. The key slice is
// valid during the call only.
func (p *pyParser) entries(fn func(key []byte, keyStart int) error) error {
	p.i++ // '{'
	p.depth++
	if p.depth > pyMaxDepth {
		return p.errf(p.i-1, "nesting deeper than %d", pyMaxDepth)
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return p.errf(p.i, "unterminated dict: expected a key or '}'")
		}
		if p.b[p.i] == '}' {
			p.i++
			p.depth--
			return nil
		}
		keyStart := p.i
		var key []byte
		if c := p.b[p.i]; c == '\'' || c == '"' || (isPyPrefix(c) && p.stringAhead()) {
			k, err := p.strBytes()
			if err != nil {
				return err
			}
			key = k
		} else {
			v, err := p.value()
			if err != nil {
				return err
			}
			key = []byte(keyText(v))
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.errf(p.i, "expected ':' after a dict key, found %s", p.show(p.i))
		}
		p.i++
		p.ws()
		if err := fn(key, keyStart); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return p.errf(p.i, "unterminated dict: expected ',' or '}'")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
		default:
			return p.errf(p.i, "expected ',' or '}' in a dict, found %s", p.show(p.i))
		}
	}
}

// keyText formats a non-string dict key.
func keyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	}
	return fmt.Sprint(v)
}

// value parses the literal at p.i.
func (p *pyParser) value() (any, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.errf(p.i, "expected a value, found end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.dictOrSet()
	case c == '[':
		return p.seq('[', ']')
	case c == '(':
		return p.seq('(', ')')
	case c == '\'' || c == '"':
		s, err := p.strBytes()
		return string(s), err
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	case isPyPrefix(c) && p.stringAhead():
		s, err := p.strBytes()
		return string(s), err
	case isLetter(c):
		return p.name()
	default:
		return nil, p.errf(p.i, "unexpected %s, expected a value", p.show(p.i))
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

func isPyPrefix(c byte) bool {
	switch c {
	case 'r', 'R', 'b', 'B', 'u', 'U':
		return true
	}
	return false
}

// stringAhead reports whether p.i starts a prefixed string (u'..', rb"..").
func (p *pyParser) stringAhead() bool {
	for j := p.i; j < len(p.b) && j < p.i+3; j++ {
		c := p.b[j]
		if c == '\'' || c == '"' {
			return j > p.i
		}
		if !isPyPrefix(c) {
			return false
		}
	}
	return false
}

func (p *pyParser) name() (any, error) {
	start := p.i
	for p.i < len(p.b) && (isLetter(p.b[p.i]) || p.b[p.i] >= '0' && p.b[p.i] <= '9') {
		p.i++
	}
	switch string(p.b[start:p.i]) {
	case "True", "true":
		return true, nil
	case "False", "false":
		return false, nil
	case "None", "null":
		return nil, nil
	case "inf", "Infinity":
		return math.Inf(1), nil
	case "nan", "NaN":
		return math.NaN(), nil
	}
	return nil, p.errf(start, "unknown name %q (expected True, False, None or a quoted string)", p.b[start:p.i])
}

// number parses an int or float.
func (p *pyParser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' || p.b[p.i] == '+' {
		p.i++
		if p.i < len(p.b) && isLetter(p.b[p.i]) { // -inf, -nan
			v, err := p.name()
			if f, ok := v.(float64); ok && err == nil {
				if p.b[start] == '-' {
					f = -f
				}
				return f, nil
			}
			return nil, p.errf(start, "malformed number")
		}
	}
	isFloat := false
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' || c == '_' {
			p.i++
			continue
		}
		if c == '.' || c == 'e' || c == 'E' {
			isFloat = true
			p.i++
			if (c == 'e' || c == 'E') && p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+') {
				p.i++
			}
			continue
		}
		break
	}
	text := p.b[start:p.i]
	if bytes.IndexByte(text, '_') >= 0 {
		text = bytes.ReplaceAll(text, []byte("_"), nil)
	}
	if !isFloat {
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil && !isRangeErr(err) {
		return nil, p.errf(start, "malformed number %q", p.b[start:p.i])
	}
	return f, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// dictOrSet parses {…}: a dict, or a set when the first element is not
// followed by ':'.
func (p *pyParser) dictOrSet() (any, error) {
	start := p.i
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] != '}' {
		if err := p.skip(); err != nil {
			return nil, err
		}
		p.ws()
		if p.i < len(p.b) && (p.b[p.i] == ',' || p.b[p.i] == '}') {
			p.i = start
			return p.seq('{', '}')
		}
	}
	p.i = start
	m := make(map[string]any)
	err := p.entries(func(key []byte, _ int) error {
		k := string(key) // before value() reuses the scratch buffer
		v, err := p.value()
		if err != nil {
			return err
		}
		m[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// seq parses a list, tuple or set; a parenthesised single value without a
// comma is that value.
func (p *pyParser) seq(open, close byte) (any, error) {
	start := p.i
	p.i++
	p.depth++
	if p.depth > pyMaxDepth {
		return nil, p.errf(start, "nesting deeper than %d", pyMaxDepth)
	}
	out := []any{}
	comma := false
	for {
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errf(p.i, "unterminated %c…%c opened at offset %d", open, close, start)
		}
		if p.b[p.i] == close {
			p.i++
			p.depth--
			if open == '(' && len(out) == 1 && !comma {
				return out[0], nil
			}
			return out, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errf(p.i, "unterminated %c…%c opened at offset %d", open, close, start)
		}
		switch p.b[p.i] {
		case ',':
			comma = true
			p.i++
		case close:
		default:
			return nil, p.errf(p.i, "expected ',' or '%c', found %s", close, p.show(p.i))
		}
	}
}

// skip consumes one value without building it.
func (p *pyParser) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return p.errf(p.i, "expected a value, found end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[' || c == '(':
		return p.skipNested()
	case c == '\'' || c == '"' || (isPyPrefix(c) && p.stringAhead()):
		_, _, _, err := p.strEnd()
		return err
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	case isLetter(c):
		_, err := p.name()
		return err
	default:
		return p.errf(p.i, "unexpected %s, expected a value", p.show(p.i))
	}
}

// skipNested skips a bracketed value, matching brackets and skipping
// strings, without checking the grammar inside. It is the fast path for
// values nobody reads (Amazon's 'related' lists).
func (p *pyParser) skipNested() error {
	start := p.i
	var stack [pyMaxDepth]byte
	n := 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch c {
		case '{', '[', '(':
			if n == len(stack) || p.depth+n >= pyMaxDepth {
				return p.errf(p.i, "nesting deeper than %d", pyMaxDepth)
			}
			stack[n] = closer(c)
			n++
			p.i++
		case '}', ']', ')':
			if n == 0 || stack[n-1] != c {
				return p.errf(p.i, "unbalanced %q", c)
			}
			n--
			p.i++
			if n == 0 {
				return nil
			}
		case '\'', '"':
			if _, _, _, err := p.strEnd(); err != nil {
				return err
			}
		default:
			p.i++
		}
	}
	return p.errf(p.i, "unterminated bracket opened at offset %d", start)
}

func closer(c byte) byte {
	switch c {
	case '{':
		return '}'
	case '[':
		return ']'
	}
	return ')'
}

// strEnd finds the end of the string literal at p.i and moves past it. It
// returns the body (between the quotes), its offset, the prefix flags, and
// an error for an unterminated string.
func (p *pyParser) strEnd() (body []byte, bodyStart, flags int, err error) {
	start := p.i
	for p.i < len(p.b) && isPyPrefix(p.b[p.i]) {
		switch p.b[p.i] {
		case 'r', 'R':
			flags |= strRaw
		case 'b', 'B':
			flags |= strBytes
		}
		p.i++
	}
	q := p.b[p.i]
	p.i++
	triple := p.i+1 < len(p.b) && p.b[p.i] == q && p.b[p.i+1] == q
	if triple {
		p.i += 2
	}
	bodyStart = p.i
	for {
		k := bytes.IndexByte(p.b[p.i:], q)
		if k < 0 {
			return nil, 0, 0, p.errf(start, "unterminated string")
		}
		// A backslash before the quote escapes it (also in raw strings) when
		// the run of backslashes is odd.
		if bytes.IndexByte(p.b[p.i:p.i+k], '\\') >= 0 {
			flags |= strEscapes
			j := p.i + k - 1
			for j >= bodyStart && p.b[j] == '\\' {
				j--
			}
			if (p.i+k-1-j)%2 == 1 {
				p.i += k + 1
				continue
			}
		}
		end := p.i + k
		if triple {
			if end+2 < len(p.b) && p.b[end+1] == q && p.b[end+2] == q {
				p.i = end + 3
				return p.b[bodyStart:end], bodyStart, flags, nil
			}
			p.i = end + 1
			continue
		}
		p.i = end + 1
		return p.b[bodyStart:end], bodyStart, flags, nil
	}
}

const (
	strRaw = 1 << iota
	strBytes
	strEscapes
)

// strBytes parses the string at p.i and returns its decoded UTF-8 bytes,
// which alias the input or the scratch buffer until the next call.
func (p *pyParser) strBytes() ([]byte, error) {
	body, off, flags, err := p.strEnd()
	if err != nil {
		return nil, err
	}
	if flags&strEscapes == 0 || flags&strRaw != 0 {
		return body, nil
	}
	out, err := unescapePy(p.buf[:0], body, off, flags&strBytes != 0, true)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(out) && flags&strBytes == 0 {
		out, err = unescapePy(out[:0], body, off, false, false)
		if err != nil {
			return nil, err
		}
	}
	p.buf = out
	return out, nil
}

// unescapePy decodes the escapes of a string body into dst. With xBytes,
// \xNN (and octal escapes) append the raw byte, otherwise the code point.
// off is the body's offset for error messages.
func unescapePy(dst, body []byte, off int, isBytes, xBytes bool) ([]byte, error) {
	for i := 0; i < len(body); {
		k := bytes.IndexByte(body[i:], '\\')
		if k < 0 {
			return append(dst, body[i:]...), nil
		}
		dst = append(dst, body[i:i+k]...)
		i += k
		if i+1 >= len(body) {
			return nil, &PySyntaxError{Offset: off + i, Msg: "backslash at the end of a string"}
		}
		c := body[i+1]
		i += 2
		switch c {
		case '\\', '\'', '"':
			dst = append(dst, c)
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'a':
			dst = append(dst, '\a')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'v':
			dst = append(dst, '\v')
		case '/': // JSON
			dst = append(dst, '/')
		case '\n': // line continuation
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for n := 0; n < 2 && i < len(body) && body[i] >= '0' && body[i] <= '7'; n++ {
				v = v*8 + int(body[i]-'0')
				i++
			}
			dst = appendCode(dst, v, isBytes || xBytes)
		case 'x':
			v, ok := hexVal(body, i, 2)
			if !ok {
				return nil, &PySyntaxError{Offset: off + i - 2, Msg: `malformed \xNN escape`}
			}
			i += 2
			dst = appendCode(dst, v, isBytes || xBytes)
		case 'u', 'U':
			if isBytes {
				dst = append(dst, '\\', c)
				continue
			}
			n := 4
			if c == 'U' {
				n = 8
			}
			v, ok := hexVal(body, i, n)
			if !ok {
				return nil, &PySyntaxError{Offset: off + i - 2, Msg: fmt.Sprintf(`malformed \%c escape`, c)}
			}
			i += n
			if v >= 0xD800 && v < 0xDC00 && i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
				// A UTF-16 surrogate pair (JSON).
				if lo, ok := hexVal(body, i+2, 4); ok && lo >= 0xDC00 && lo < 0xE000 {
					v = 0x10000 + (v-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			if v > utf8.MaxRune || v >= 0xD800 && v < 0xE000 {
				v = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, rune(v))
		default: // unknown escapes keep the backslash, as in Python
			dst = append(dst, '\\', c)
		}
	}
	return dst, nil
}

func appendCode(dst []byte, v int, raw bool) []byte {
	if raw || v < 0x80 {
		return append(dst, byte(v))
	}
	return utf8.AppendRune(dst, rune(v))
}

func hexVal(b []byte, i, n int) (int, bool) {
	if i+n > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v*16 + int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v*16 + int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// spanBytes decodes a value span from spans: a string literal gives its
// decoded bytes (aliasing the input when it has no escapes, else freshly
// allocated), a number or name its text, None/null nil.
func spanBytes(span []byte) ([]byte, error) {
	if len(span) == 0 {
		return nil, nil
	}
	c, last := span[0], span[len(span)-1]
	if (last == '\'' || last == '"') && (c == last || isPyPrefix(c)) {
		p := pyParser{b: span}
		return p.strBytes()
	}
	if string(span) == "None" || string(span) == "null" {
		return nil, nil
	}
	return span, nil
}

// spanFloat decodes a numeric span (a number, or a string holding one); ok
// is false for anything else, including None.
func spanFloat(span []byte) (float64, bool) {
	if len(span) >= 2 && (span[0] == '"' || span[0] == '\'') && span[len(span)-1] == span[0] {
		span = bytes.TrimSpace(span[1 : len(span)-1])
	}
	if len(span) == 0 {
		return 0, false
	}
	return parseFloatFast(span)
}

package ingest

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParsePyLiteral(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"single quotes", `'abc'`, "abc"},
		{"double quotes with apostrophe", `"Girls' Ballet Tutu"`, "Girls' Ballet Tutu"},
		{"escaped quote", `'It\'s'`, "It's"},
		{"backslash", `'a\\b'`, `a\b`},
		{"newline tab", `'a\nb\tc\r'`, "a\nb\tc\r"},
		{"unicode 4", `'\u00e9l\u00e8ve'`, "élève"},
		{"unicode 8", `'\U0001F600'`, "😀"},
		{"json surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"json slash", `"a\/b"`, "a/b"},
		{"x as code point (py3)", `'caf\xe9'`, "café"},
		{"x as utf-8 bytes (py2)", `'caf\xc3\xa9 \xe2\x80\x93'`, "café –"},
		{"octal", `'\101\0'`, "A\x00"},
		{"unknown escape kept", `'\d+'`, `\d+`},
		{"raw string", `r'\d\n'`, `\d\n`},
		{"u prefix", `u'caf\xe9'`, "café"},
		{"bytes prefix", `b'ab\x41'`, "abA"},
		{"raw non-ascii", `'日本語'`, "日本語"},
		{"triple quoted", `'''a'b''c'''`, "a'b''c"},
		{"empty", `''`, ""},
		{"int", `211836`, int64(211836)},
		{"negative int", `-7`, int64(-7)},
		{"big int", `123456789012345678901234`, 1.2345678901234568e+23},
		{"float", `3.17`, 3.17},
		{"exp", `1e-05`, 1e-05},
		{"True", `True`, true},
		{"False", `False`, false},
		{"None", `None`, nil},
		{"json literals", `[true, false, null]`, []any{true, false, nil}},
		{"empty list", `[]`, []any{}},
		{"tuple", `('a', 1)`, []any{"a", int64(1)}},
		{"one-tuple", `('a',)`, []any{"a"}},
		{"parenthesised", `('a')`, "a"},
		{"set", `{'x', 'y'}`, []any{"x", "y"}},
		{"trailing comma", `[1, 2,]`, []any{int64(1), int64(2)}},
		{"empty dict", `{}`, map[string]any{}},
		{"int keys", `{1: 'a', 2.5: 'b', None: 'c'}`, map[string]any{"1": "a", "2.5": "b", "None": "c"}},
		{"nested", `{'related': {'also_bought': ['B1', 'B2']}, 'categories': [['A', 'B'], ['C']], 'x': (1, {'y': None})}`,
			map[string]any{
				"related":    map[string]any{"also_bought": []any{"B1", "B2"}},
				"categories": []any{[]any{"A", "B"}, []any{"C"}},
				"x":          []any{int64(1), map[string]any{"y": nil}},
			}},
		{"escaped key then escaped value", `{'k\'1': 'v\'1', 'k\n2': 'v2'}`, map[string]any{"k'1": "v'1", "k\n2": "v2"}},
		{"white space", " \t{ 'a' :\n 1 , } ", map[string]any{"a": int64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePyLiteral([]byte(tt.in))
			if err != nil {
				t.Fatalf("parsePyLiteral(%s): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsePyLiteral(%s) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePyLiteralSpecialFloats(t *testing.T) {
	for in, want := range map[string]float64{"inf": math.Inf(1), "-inf": math.Inf(-1), "Infinity": math.Inf(1)} {
		got, err := parsePyLiteral([]byte(in))
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v", in, got, err)
		}
	}
	got, err := parsePyLiteral([]byte("nan"))
	if f, ok := got.(float64); err != nil || !ok || !math.IsNaN(f) {
		t.Errorf("nan: got %v, %v", got, err)
	}
}

func TestParsePyLiteralErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		offset int
		msg    string
	}{
		{"unterminated string", `{'a': 'bc}`, 6, "unterminated string"},
		{"missing colon", `{'a' 1}`, 5, "expected ':'"},
		{"missing comma", `['a' 'b']`, 5, "expected ','"},
		{"unterminated list", `[1, 2`, 5, "unterminated"},
		{"unknown name", `{'a': Nonsense}`, 6, "unknown name"},
		{"trailing data", `{'a': 1} x`, 9, "after the literal"},
		{"bad hex escape", `'ab\xZZ'`, 3, `\xNN`},
		{"bad unicode escape", `'\u12'`, 1, `\u`},
		{"bad number", `[1.2.3]`, 1, "malformed number"},
		{"empty", ``, 0, "end of input"},
		{"stray bracket", `{'a': ]}`, 6, "unexpected"},
		{"too deep", strings.Repeat("[", 300) + strings.Repeat("]", 300), pyMaxDepth, "nesting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePyLiteral([]byte(tt.in))
			var se *PySyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("parsePyLiteral(%q) error = %v, want a PySyntaxError", tt.in, err)
			}
			if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("parsePyLiteral(%q) = offset %d %q, want offset %d containing %q", tt.in, se.Offset, se.Msg, tt.offset, tt.msg)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %q does not name the offset", err)
			}
		})
	}
}

func TestPyParserTopDictSkipsUnwanted(t *testing.T) {
	var p pyParser
	line := `{'asin': 'B1', 'related': {'also_bought': ['x', 'y', "z'"], 'weird': ('}', ']')}, 'title': 'T\'s', 'salesRank': {'Toys': 5}}`
	m, err := p.topDict([]byte(line), []string{"asin", "title", "price"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"asin": "B1", "title": "T's"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("topDict = %#v, want %#v", m, want)
	}
	// Unwanted values are skipped without a grammar check, but unbalanced
	// brackets are still errors.
	if _, err := p.topDict([]byte(`{'asin': 'B1', 'related': {'a': [1, 2}}`), []string{"asin"}); err == nil {
		t.Error("unbalanced skipped value: want an error")
	}
	if _, err := p.topDict([]byte(`['not', 'a', 'dict']`), nil); err == nil {
		t.Error("a list: want an error")
	}
}

func TestPyParserSpans(t *testing.T) {
	var p pyParser
	names := []string{"reviewerID", "asin", "overall", "unixReviewTime", "missing"}
	spans := make([][]byte, len(names))
	line := `{"reviewerID": "A\u0031B", "asin": "0439893577", "helpful": [0, 0], "reviewText": "say \"hi\" {", "overall": 5.0, "unixReviewTime": 1390953600}`
	if err := p.spans([]byte(line), names, spans); err != nil {
		t.Fatal(err)
	}
	user, err := spanBytes(spans[0])
	if err != nil || string(user) != "A1B" {
		t.Errorf("reviewerID = %q, %v", user, err)
	}
	asin, _ := spanBytes(spans[1])
	if string(asin) != "0439893577" {
		t.Errorf("asin = %q", asin)
	}
	if f, ok := spanFloat(spans[2]); !ok || f != 5 {
		t.Errorf("overall = %v %v", f, ok)
	}
	if f, ok := spanFloat(spans[3]); !ok || f != 1390953600 {
		t.Errorf("unixReviewTime = %v %v", f, ok)
	}
	if spans[4] != nil {
		t.Errorf("missing key span = %q, want nil", spans[4])
	}
	if err := p.spans([]byte(`{"asin": "B1", "overall": }`), names, spans); err == nil {
		t.Error("malformed object: want an error")
	}
}

func BenchmarkPyLiteralMetaLine(b *testing.B) {
	line := []byte(`{'asin': '0000031852', 'title': "Girls' Ballet Tutu Zebra Hot Pink", 'price': 3.17, 'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', 'related': {'also_bought': ['B00JHONN1S', 'B002BZX8Z6', 'B00D2K1M3O', '0000031909', 'B00613WDTQ', 'B00D0WDS9A', 'B00D0GCI8S', '0000031895', 'B003AVKOP2', 'B003AVEU6G'], 'also_viewed': ['B002BZX8Z6', 'B00JHONN1S', 'B008F0SU0Y', 'B00D23MC6W'], 'bought_together': ['B002BZX8Z6']}, 'salesRank': {'Toys & Games': 211836}, 'categories': [['Clothing, Shoes & Jewelry', 'Girls', 'Clothing', 'Active', 'Active Skirts'], ['Sports & Outdoors', 'Other Sports', 'Dance']], 'description': 'This tutu is great for dress up play for your little ballerina. It\'s made of soft tulle.'}`)
	var p pyParser
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := p.topDict(line, meta2014Keys); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParsePyLiteral checks that no input panics the parser, and that
// topDict and spans agree with a full parse on which input is a valid dict.
func FuzzParsePyLiteral(f *testing.F) {
	for _, s := range []string{
		`{'asin': 'B1', 'title': "Girls' \xe9", 'related': {'a': ['x', ('y',)]}, 'price': 3.17, 'b': True, 'n': None}`,
		`{"reviewerID": "A\u0031", "overall": 5.0, "helpful": [0, 1]}`,
		`[1, -2.5e3, inf, -nan, u'x', r'\d', b'\x00', '''t'''] `,
		`{1, 2}`, `('a')`, `{'a': 'b\'`, `u`, `'\U0001F600\ud83d'`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parsePyLiteral(b)
		var p pyParser
		m, err2 := p.topDict(b, nil)
		spans := make([][]byte, 2)
		err3 := p.spans(b, []string{"asin", "title"}, spans)
		if _, isDict := v.(map[string]any); err == nil && isDict && (err2 != nil || err3 != nil) {
			t.Errorf("%q parses as a dict, but topDict: %v, spans: %v", b, err2, err3)
		}
		if err2 == nil && len(m) > 0 && err != nil {
			// topDict skips unwanted values loosely; with keys nil it
			// parses every value, so it must agree with the full parse.
			t.Errorf("%q: topDict ok, full parse: %v", b, err)
		}
		for _, s := range spans {
			spanBytes(s)
			spanFloat(s)
		}
	})
}

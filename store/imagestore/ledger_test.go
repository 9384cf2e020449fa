package imagestore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestLedgerEntryMarshal(t *testing.T) {
	full := LedgerEntry{
		URL: "http://a/x.jpg", FinalURL: "https://b/x.jpg", Status: StatusOK, HTTPStatus: 200,
		Bytes: 1234, SHA256: "ab", Width: 640, Height: 480, ContentType: "image/jpeg",
		Attempts: 2, Time: "2024-05-01T10:00:00.123456789Z", DurationMS: 87, Source: "/imgs/x.jpg",
	}
	tests := []struct {
		name string
		in   LedgerEntry
		want string // exact JSON
	}{
		{"status only", LedgerEntry{Status: StatusFailed}, `{"status":"failed"}`},
		{"status is written even when empty", LedgerEntry{}, `{"status":""}`},
		{"failure", LedgerEntry{URL: "u", Status: StatusFailed, HTTPStatus: 404, ErrorClass: "http_404", Error: "not found", Attempts: 3},
			`{"url":"u","status":"failed","http_status":404,"error_class":"http_404","error":"not found","attempts":3}`},
		{"every field", full,
			`{"url":"http://a/x.jpg","final_url":"https://b/x.jpg","status":"ok","http_status":200,"bytes":1234,"sha256":"ab","width":640,"height":480,"content_type":"image/jpeg","attempts":2,"time":"2024-05-01T10:00:00.123456789Z","duration_ms":87,"source":"/imgs/x.jpg"}`},
		{"extra sorted after known fields, compacted",
			LedgerEntry{Status: "ok", Extra: map[string]json.RawMessage{"z": json.RawMessage(`[1, 2]`), "a": json.RawMessage(` {"b" : true} `)}},
			`{"status":"ok","a":{"b":true},"z":[1,2]}`},
		{"extra shadowing a known field is dropped",
			LedgerEntry{Status: "ok", Extra: map[string]json.RawMessage{"Status": json.RawMessage(`"bad"`), "url": json.RawMessage(`"x"`), "k": json.RawMessage(`1`)}},
			`{"status":"ok","k":1}`},
		{"extra key needing escapes", LedgerEntry{Status: "ok", Extra: map[string]json.RawMessage{`a"b`: json.RawMessage(`null`)}},
			`{"status":"ok","a\"b":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLedgerEntryMarshalRejectsBadExtra(t *testing.T) {
	for _, raw := range []string{`{`, ``, `nul`} {
		_, err := json.Marshal(LedgerEntry{Status: "ok", Extra: map[string]json.RawMessage{"x": json.RawMessage(raw)}})
		if err == nil {
			t.Errorf("extra %q: marshal succeeded, want error", raw)
		}
	}
}

func TestLedgerEntryUnmarshalKeepsUnknownFields(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      LedgerEntry // without Extra
		wantExtra []string    // sorted names
		wantOut   string      // the re-encoded value when it differs from in
	}{
		{"known only", `{"url":"u","status":"ok","width":3,"height":4}`, LedgerEntry{URL: "u", Status: "ok", Width: 3, Height: 4}, nil, ""},
		{"unknown kept", `{"status":"ok","phash":"f0e1","tags":["a",{"b":1}],"n":12345678901234567890,"nested":{"x":[null]}}`,
			LedgerEntry{Status: "ok"}, []string{"n", "nested", "phash", "tags"}, ""},
		{"known names match case-insensitively, as encoding/json does", `{"Status":"ok","URL":"x","Final_URL":"y"}`,
			LedgerEntry{Status: "ok", URL: "x", FinalURL: "y"}, nil, `{"url":"x","final_url":"y","status":"ok"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e LedgerEntry
			if err := json.Unmarshal([]byte(tc.in), &e); err != nil {
				t.Fatal(err)
			}
			var names []string
			for k := range e.Extra {
				names = append(names, k)
			}
			if len(names) == 0 && e.Extra != nil {
				t.Errorf("Extra is empty but not nil")
			}
			slices.Sort(names)
			if !reflect.DeepEqual(names, tc.wantExtra) {
				t.Errorf("extra names %v, want %v", names, tc.wantExtra)
			}
			extra := e.Extra
			e.Extra = nil
			if !reflect.DeepEqual(e, tc.want) {
				t.Errorf("known fields %+v, want %+v", e, tc.want)
			}
			// Round trip: re-encoding gives the same JSON value (numbers kept exactly).
			e.Extra = extra
			out, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.in
			if tc.wantOut != "" {
				want = tc.wantOut
			}
			if a, b := normJSON(t, want), normJSON(t, string(out)); a != b {
				t.Errorf("round trip changed the value:\n in  %s\n out %s", a, b)
			}
		})
	}
}

func TestLedgerEntryUnmarshalRejectsNonObjects(t *testing.T) {
	for _, in := range []string{`[]`, `"ok"`, `{"status":1}`, `{`} {
		var e LedgerEntry
		if err := json.Unmarshal([]byte(in), &e); err == nil {
			t.Errorf("Unmarshal(%s) succeeded: %+v", in, e)
		}
	}
}

func TestKnownFieldsMatchTags(t *testing.T) {
	want := []string{"attempts", "bytes", "content_type", "duration_ms", "error", "error_class", "final_url", "height",
		"http_status", "sha256", "source", "status", "time", "url", "width"}
	var got []string
	for k := range knownFields {
		got = append(got, k)
	}
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("known fields %v, want %v", got, want)
	}
}

// normJSON re-encodes a JSON text with sorted keys and exact numbers.
func normJSON(t *testing.T, s string) string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

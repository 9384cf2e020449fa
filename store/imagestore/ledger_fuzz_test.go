package imagestore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzLedgerValue decodes a ledger value as the store reads it (the full
// entry, and the status alone when counting): no panic; the two decoders
// agree on the status; and an accepted value survives a write and a read
// unchanged (known fields equal, unknown fields kept, compacted), so a
// read-modify-write loses nothing.
func FuzzLedgerValue(f *testing.F) {
	for _, s := range []string{
		`{"url":"http://h/a.jpg","status":"ok","http_status":200,"bytes":1234,"sha256":"ab","width":10,"height":20,"content_type":"image/jpeg","attempts":1,"time":"2026-01-02T03:04:05.123456789Z","duration_ms":12}`,
		`{"status":"failed","error_class":"http_404","error":"not found","x_new":{"a":[1, 2]},"Z":null}`,
		`{"STATUS":"skipped","Status":"duplicate","extra":"\u00e9\ud800"}`,
		`{"status":"ok","url":1}`, `{"status":"ok"} trailing`, `[]`, `null`, `{"status":"ok","width":1e40}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		var e LedgerEntry
		err := json.Unmarshal(v, &e)
		st, serr := decodeStatus(v)
		if err != nil {
			return
		}
		if serr != nil {
			t.Fatalf("entry decodes, status alone fails: %v", serr)
		}
		if st != e.Status {
			t.Fatalf("status %q, entry status %q", st, e.Status)
		}
		for k := range e.Extra {
			if isKnownField(k) {
				t.Fatalf("known field %q kept in Extra", k)
			}
		}
		enc, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		var back LedgerEntry
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("decode of re-encoded %s: %v", enc, err)
		}
		if !reflect.DeepEqual(known(back), known(e)) {
			t.Fatalf("round trip changed the known fields:\n got %+v\nwant %+v", known(back), known(e))
		}
		if len(back.Extra) != len(e.Extra) {
			t.Fatalf("round trip: %d extra fields, want %d", len(back.Extra), len(e.Extra))
		}
		for k, raw := range e.Extra {
			// The same JSON value, though maybe spelt otherwise
			// (json.Marshal escapes <, > and & in a Marshaler's output).
			a, err1 := jsonValue(raw)
			b, err2 := jsonValue(back.Extra[k])
			if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("extra %q: %s, want %s (%v, %v)", k, back.Extra[k], raw, err1, err2)
			}
		}
		enc2, err := json.Marshal(back)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("second encoding differs:\n%s\n%s (%v)", enc2, enc, err)
		}
	})
}

// known is e without its extra fields.
func known(e LedgerEntry) LedgerEntry {
	e.Extra = nil
	return e
}

// jsonValue decodes raw keeping numbers as written.
func jsonValue(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

package imagestore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Ledger statuses used by mmpipe. The ledger accepts any non-empty status;
// these are the ones the stages write and count.
const (
	StatusOK        = "ok"        // the image is stored under the same key
	StatusFailed    = "failed"    // the fetch or decode failed; see error_class and error
	StatusSkipped   = "skipped"   // deliberately not fetched (no URL, filtered, shard of another worker)
	StatusDuplicate = "duplicate" // same bytes as another item's image; not stored twice
)

// LedgerEntry is the JSON value stored per item in the `ledger` database: what
// happened when the item's image was fetched (or read from a folder).
//
// Bytes and SHA256 describe the stored image value: Batch.PutImage computes
// them from the bytes it is given, so sha256(images[key]) == ledger[key].sha256
// always holds for entries written by this package.
//
// Unknown fields: a ledger value written by another tool (or a newer mmpipe) may
// carry fields this struct does not name. UnmarshalJSON keeps them, raw, in
// Extra, and MarshalJSON writes them back (sorted by name, after the known
// fields), so a read-modify-write through this type loses nothing. Extra keys
// that match a known field name (case-insensitively, as encoding/json matches
// them) are never stored in Extra and are ignored on output.
type LedgerEntry struct {
	URL         string `json:"url,omitempty"`
	FinalURL    string `json:"final_url,omitempty"` // after redirects
	Status      string `json:"status"`              // StatusOK, StatusFailed, ...
	HTTPStatus  int    `json:"http_status,omitempty"`
	ErrorClass  string `json:"error_class,omitempty"` // short machine-readable class: "timeout", "http_404", "decode", ...
	Error       string `json:"error,omitempty"`       // human-readable message
	Bytes       int64  `json:"bytes,omitempty"`       // size of the stored image value
	SHA256      string `json:"sha256,omitempty"`      // lower-case hex of the stored image value
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	ContentType string `json:"content_type,omitempty"` // "image/jpeg", ...
	Attempts    int    `json:"attempts,omitempty"`
	Time        string `json:"time,omitempty"` // RFC 3339 with nanoseconds, UTC
	DurationMS  int64  `json:"duration_ms,omitempty"`
	Source      string `json:"source,omitempty"` // e.g. the file path when built from a folder

	// Extra holds fields of the stored JSON object that the fields above do
	// not name, as raw JSON values. Nil when there are none.
	Extra map[string]json.RawMessage `json:"-"`
}

// ledgerFields is LedgerEntry without its methods.
type ledgerFields LedgerEntry

// knownFields holds the lower-cased JSON names of LedgerEntry's fields.
var knownFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(LedgerEntry{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[strings.ToLower(name)] = true
		}
	}
	return m
}()

func isKnownField(name string) bool { return knownFields[strings.ToLower(name)] }

// MarshalJSON writes the known fields, then the Extra fields sorted by name.
func (e LedgerEntry) MarshalJSON() ([]byte, error) {
	base, err := json.Marshal(ledgerFields(e))
	if err != nil {
		return nil, err
	}
	if len(e.Extra) == 0 {
		return base, nil
	}
	names := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		if !isKnownField(k) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return base, nil
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.Grow(len(base) + 64*len(names))
	buf.Write(base[:len(base)-1]) // drop '}'; base always has "status", so it is not empty
	for _, k := range names {
		kb, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(kb)
		buf.WriteByte(':')
		raw := e.Extra[k]
		if len(raw) == 0 {
			return nil, fmt.Errorf("ledger extra field %q: empty raw JSON", k)
		}
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("ledger extra field %q: %w", k, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads the known fields and keeps every other field in Extra.
func (e *LedgerEntry) UnmarshalJSON(data []byte) error {
	var f ledgerFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for k := range all {
		if isKnownField(k) {
			delete(all, k)
		}
	}
	f.Extra = nil
	if len(all) > 0 {
		f.Extra = all
	}
	*e = LedgerEntry(f)
	return nil
}

// statusOnly decodes just the status of a ledger value, for counting.
type statusOnly struct {
	Status string `json:"status"`
}

func decodeStatus(v []byte) (string, error) {
	var s statusOnly
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s.Status, nil
}

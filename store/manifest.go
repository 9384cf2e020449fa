package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Names of the files of a dataset directory (DESIGN.md, Contracts).
const (
	ManifestFile     = "manifest.json"
	ItemsFile        = "items.parquet"
	UsersFile        = "users.parquet"
	InteractionsFile = "interactions.parquet"
	SplitsDir        = "splits"
	FeaturesDir      = "features"
	ImagesDir        = "images.lmdb"
	// PartsDir holds shard parts (crawl: parts/crawl-i-of-n; encode:
	// features/parts) until `mmpipe merge` joins them.
	PartsDir = "parts"
	// CrawlStatsFile and CrawlFailedFile are the crawl's reports.
	CrawlStatsFile  = "crawl_stats.json"
	CrawlFailedFile = "failed.parquet"
	// DatasetFormat identifies the manifest layout.
	DatasetFormat = "mmpipe-dataset/1"
)

// InputFile is one input as recorded in a manifest.
type InputFile struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
	// ModTime (Unix nanoseconds) lets a re-run decide cheaply that the
	// inputs are unchanged.
	ModTime int64 `json:"mtime_ns"`
}

// SplitInfo describes one split in the manifest.
type SplitInfo struct {
	Train  int64          `json:"train"`
	Valid  int64          `json:"valid"`
	Test   int64          `json:"test"`
	Params map[string]any `json:"params,omitempty"`
}

// Manifest is a dataset's manifest.json: what went in, with which
// parameters, what came out.
type Manifest struct {
	Format        string               `json:"format"`
	MmpipeVersion string               `json:"mmpipe_version"`
	Created       string               `json:"created"`
	SourceFormat  string               `json:"source_format"`
	Inputs        []InputFile          `json:"inputs"`
	Params        map[string]any       `json:"params"`
	Users         int                  `json:"users"`
	Items         int                  `json:"items"`
	Interactions  int64                `json:"interactions"`
	TimeKind      string               `json:"time_kind"` // "unix" or "ordinal"
	IDMapSHA256   string               `json:"idmap_sha256"`
	Splits        map[string]SplitInfo `json:"splits"`
	Features      []string             `json:"features,omitempty"`
	Report        json.RawMessage      `json:"report,omitempty"`
	// Outputs maps each file of the dataset (relative path) to its size and
	// sha256, for verification.
	Outputs map[string]InputFile `json:"outputs"`
}

// WriteJSONAtomic writes v as indented JSON to path via a temporary file.
func WriteJSONAtomic(path string, v any) error {
	af, err := OpenAtomicFile(path)
	if err != nil {
		return err
	}
	defer af.Abort()
	enc := json.NewEncoder(af)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return af.Commit()
}

// WriteManifest writes dir/manifest.json atomically. It is written last:
// a dataset directory without a manifest is incomplete.
func WriteManifest(dir string, m *Manifest) error {
	return WriteJSONAtomic(filepath.Join(dir, ManifestFile), m)
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a complete mmpipe dataset (no %s): %w", dir, ManifestFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if m.Format != DatasetFormat {
		return nil, fmt.Errorf("read %s: format %q, want %q", p, m.Format, DatasetFormat)
	}
	return &m, nil
}

// FileSHA256 hashes a file.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// IDMapSHA256 is the fingerprint of a dataset's item id map: sha256 over
// "<item_idx>\t<item_id>\n" for every item in index order. Feature files
// carry it so that training can refuse features built for another dataset.
func IDMapSHA256(items []Item) string {
	h := sha256.New()
	var buf []byte
	for _, it := range items {
		buf = fmt.Appendf(buf[:0], "%d\t%s\n", it.Idx, it.ID)
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Dataset is an opened dataset directory.
type Dataset struct {
	Dir      string
	Manifest *Manifest
}

// OpenDataset opens a complete dataset directory.
func OpenDataset(dir string) (*Dataset, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	return &Dataset{Dir: dir, Manifest: m}, nil
}

// Path joins a relative path to the dataset directory.
func (d *Dataset) Path(rel ...string) string {
	return filepath.Join(append([]string{d.Dir}, rel...)...)
}

// SplitPath is the file of a named split.
func SplitPath(dir, name string) string {
	return filepath.Join(dir, SplitsDir, name+".parquet")
}

// SplitNames lists the splits present, sorted.
func (d *Dataset) SplitNames() []string {
	var names []string
	for n := range d.Manifest.Splits {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// FeatureFiles lists features/*.arrow (relative names), sorted.
func (d *Dataset) FeatureFiles() ([]string, error) {
	ents, err := os.ReadDir(d.Path(FeaturesDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.Path(FeaturesDir), err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".arrow") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Unrecorded reports whether rel (a slash-separated path inside a dataset
// directory) lies outside the manifest's outputs: the manifest itself, the
// image store (its ledger is its own record), shard parts (inputs of merge),
// the crawl's reports (rewritten by every crawl) and hidden temporary files.
// RecordOutputs and verify use the same rule.
func Unrecorded(rel string) bool {
	base := path.Base(rel)
	switch {
	case rel == ManifestFile, rel == CrawlStatsFile, rel == CrawlFailedFile:
		return true
	case rel == ImagesDir, strings.HasSuffix(rel, ".lmdb"), base == PartsDir:
		return true
	case strings.HasPrefix(base, "."):
		return true
	}
	return false
}

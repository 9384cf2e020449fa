// Package verify checks a dataset directory against its manifest: every
// recorded output file (present, same size, same sha256), files the manifest
// does not know, the item and user id maps, the split files, the feature
// files and the LMDB image store with its ledger. It is the library side of
// `mmpipe verify`; it never modifies the dataset.
package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// Problem kinds.
const (
	KindManifest   = "manifest"   // manifest.json unreadable
	KindMissing    = "missing"    // a file the manifest lists is absent
	KindSize       = "size"       // a file's size differs from the manifest
	KindHash       = "sha256"     // a file's sha256 differs from the manifest
	KindUnexpected = "unexpected" // a file the manifest does not list
	KindTable      = "table"      // items/users/interactions unreadable or inconsistent
	KindIDMap      = "idmap"      // the item id map does not match the manifest
	KindSplit      = "split"      // a split file is missing, unreadable or inconsistent
	KindFeatures   = "features"   // a feature file is unreadable or built for another dataset
	KindImages     = "images"     // the LMDB image store or its ledger is inconsistent
)

// Problem is one thing wrong with a dataset.
type Problem struct {
	// File is the path relative to the dataset directory (slash-separated).
	File string `json:"file"`
	// Key is the LMDB key for image store problems.
	Key     string `json:"key,omitempty"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// String renders the problem as one line: "file[ key K]: kind: message".
func (p Problem) String() string {
	where := p.File
	if p.Key != "" {
		where += fmt.Sprintf(" key %q", p.Key)
	}
	return where + ": " + p.Kind + ": " + p.Message
}

// Checked counts what was examined.
type Checked struct {
	Files    int `json:"files"`
	Splits   int `json:"splits"`
	Features int `json:"features"`
	Images   int `json:"images"`
	Ledger   int `json:"ledger"`
}

// Report is the outcome of Dataset.
type Report struct {
	Dataset  string    `json:"dataset"`
	OK       bool      `json:"ok"`
	Checked  Checked   `json:"checked"`
	Problems []Problem `json:"problems"`
}

type checker struct {
	ctx context.Context
	dir string
	m   *store.Manifest
	rep *Report
}

func (c *checker) add(file, key, kind, format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, Problem{File: file, Key: key, Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// Dataset verifies the dataset directory dir. Problems with the data are in
// the report (Report.OK is false when there are any); the error is non-nil
// only when the check itself could not run (dir is not a directory, the
// context was cancelled, a read failed for reasons other than the data).
func Dataset(ctx context.Context, dir string) (*Report, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("verify: %s is not a directory", dir)
	}
	c := &checker{ctx: ctx, dir: dir, rep: &Report{Dataset: dir, Problems: []Problem{}}}
	m, err := store.ReadManifest(dir)
	if err != nil {
		c.add(store.ManifestFile, "", KindManifest, "%v", err)
		return c.finish(), nil
	}
	c.m = m
	steps := []func() error{c.files, c.tables, c.splits, c.features, c.images}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := step(); err != nil {
			return nil, err
		}
	}
	return c.finish(), nil
}

func (c *checker) finish() *Report {
	c.rep.OK = len(c.rep.Problems) == 0
	return c.rep
}

// files compares every output of the manifest with the file on disk and
// lists files the manifest does not know.
func (c *checker) files() error {
	names := make([]string, 0, len(c.m.Outputs))
	for rel := range c.m.Outputs {
		names = append(names, rel)
	}
	slices.Sort(names)
	for _, rel := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		want := c.m.Outputs[rel]
		p := filepath.Join(c.dir, filepath.FromSlash(rel))
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			c.add(rel, "", KindMissing, "listed in %s (%d bytes) but absent", store.ManifestFile, want.Bytes)
			continue
		}
		if err != nil {
			c.add(rel, "", KindMissing, "%v", err)
			continue
		}
		c.rep.Checked.Files++
		if st.Size() != want.Bytes {
			c.add(rel, "", KindSize, "%d bytes, manifest says %d", st.Size(), want.Bytes)
			continue
		}
		if want.SHA256 == "" {
			continue
		}
		sum, _, err := store.FileSHA256(p)
		if err != nil {
			c.add(rel, "", KindHash, "%v", err)
			continue
		}
		if sum != want.SHA256 {
			c.add(rel, "", KindHash, "sha256 %s, manifest says %s (same size: the content changed)", sum, want.SHA256)
		}
	}
	return filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("verify: walk %s: %w", c.dir, err)
		}
		rel, err := filepath.Rel(c.dir, p)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		// The image store is checked on its own, shard parts are merge's
		// inputs, crawl reports are rewritten by every crawl.
		if store.Unrecorded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if _, ok := c.m.Outputs[rel]; !ok {
			c.add(rel, "", KindUnexpected, "not listed in %s", store.ManifestFile)
		}
		return nil
	})
}

// tables checks the item and user tables (row r has index r, counts equal
// the manifest's, the item id map hashes to the manifest's idmap_sha256)
// and the interaction table (indices in range, row count).
func (c *checker) tables() error {
	items, err := store.ReadItems(c.ctx, filepath.Join(c.dir, store.ItemsFile))
	if err != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		c.add(store.ItemsFile, "", KindTable, "%v", err)
	} else {
		if len(items) != c.m.Items {
			c.add(store.ItemsFile, "", KindTable, "%d items, manifest says %d", len(items), c.m.Items)
		}
		if sum := store.IDMapSHA256(items); sum != c.m.IDMapSHA256 {
			c.add(store.ItemsFile, "", KindIDMap, "id map sha256 %s, manifest says %s", sum, c.m.IDMapSHA256)
		}
	}
	users, err := store.ReadUsers(c.ctx, filepath.Join(c.dir, store.UsersFile))
	if err != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		c.add(store.UsersFile, "", KindTable, "%v", err)
	} else if len(users) != c.m.Users {
		c.add(store.UsersFile, "", KindTable, "%d users, manifest says %d", len(users), c.m.Users)
	}
	inter, err := store.ReadInteractions(c.ctx, filepath.Join(c.dir, store.InteractionsFile))
	if err != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		c.add(store.InteractionsFile, "", KindTable, "%v", err)
		return nil
	}
	if int64(inter.Len()) != c.m.Interactions {
		c.add(store.InteractionsFile, "", KindTable, "%d rows, manifest says %d", inter.Len(), c.m.Interactions)
	}
	if msg := c.indexRange(inter); msg != "" {
		c.add(store.InteractionsFile, "", KindTable, "%s", msg)
	}
	return nil
}

// indexRange describes the first user or item index out of range, or "".
func (c *checker) indexRange(t *store.Interactions) string {
	for r := range t.Len() {
		if u := t.User[r]; u < 0 || int(u) >= c.m.Users {
			return fmt.Sprintf("row %d: user_idx %d out of range [0, %d)", r, u, c.m.Users)
		}
		if i := t.Item[r]; i < 0 || int(i) >= c.m.Items {
			return fmt.Sprintf("row %d: item_idx %d out of range [0, %d)", r, i, c.m.Items)
		}
	}
	return ""
}

// splits checks every split of the manifest (file present and readable,
// indices in range, part counts equal the manifest's) and split files the
// manifest does not name.
func (c *checker) splits() error {
	names := make([]string, 0, len(c.m.Splits))
	for n := range c.m.Splits {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		rel := store.SplitsDir + "/" + n + ".parquet"
		s, err := store.ReadSplit(c.ctx, store.SplitPath(c.dir, n))
		if err != nil {
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			if errors.Is(err, fs.ErrNotExist) {
				c.add(rel, "", KindSplit, "split %q is in %s but its file is absent", n, store.ManifestFile)
			} else {
				c.add(rel, "", KindSplit, "%v", err)
			}
			continue
		}
		c.rep.Checked.Splits++
		if msg := c.indexRange(&s.Interactions); msg != "" {
			c.add(rel, "", KindSplit, "%s", msg)
		}
		for r, p := range s.Part {
			if p != store.PartTrain && p != store.PartValid && p != store.PartTest {
				c.add(rel, "", KindSplit, "row %d: part %d is not train, valid or test", r, p)
				break
			}
		}
		tr, va, te := s.Counts()
		want := c.m.Splits[n]
		if int64(tr) != want.Train || int64(va) != want.Valid || int64(te) != want.Test {
			c.add(rel, "", KindSplit, "train/valid/test %d/%d/%d, manifest says %d/%d/%d", tr, va, te, want.Train, want.Valid, want.Test)
		}
	}
	ents, err := os.ReadDir(filepath.Join(c.dir, store.SplitsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verify: %w", err)
	}
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".parquet")
		if !ok || e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, known := c.m.Splits[n]; !known {
			c.add(store.SplitsDir+"/"+e.Name(), "", KindSplit, "split %q is not in %s", n, store.ManifestFile)
		}
	}
	return nil
}

// features opens every features/*.arrow and checks that it has one row per
// item and the dataset's idmap_sha256, and that every feature file the
// manifest names exists.
func (c *checker) features() error {
	ds := &store.Dataset{Dir: c.dir, Manifest: c.m}
	files, err := ds.FeatureFiles()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, name := range c.m.Features {
		if !slices.Contains(files, name) {
			c.add(store.FeaturesDir+"/"+name, "", KindFeatures, "listed in %s but absent", store.ManifestFile)
		}
	}
	for _, name := range files {
		rel := store.FeaturesDir + "/" + name
		ff, err := store.OpenFeatures(ds.Path(store.FeaturesDir, name))
		if err != nil {
			c.add(rel, "", KindFeatures, "%v", err)
			continue
		}
		c.rep.Checked.Features++
		meta, rows := ff.Meta(), ff.Rows()
		ff.Close()
		if rows != c.m.Items {
			c.add(rel, "", KindFeatures, "%d rows, dataset has %d items", rows, c.m.Items)
		}
		switch meta.IDMapSHA256 {
		case c.m.IDMapSHA256:
		case "":
			c.add(rel, "", KindFeatures, "no idmap_sha256 in its metadata: cannot tell which dataset it belongs to")
		default:
			c.add(rel, "", KindFeatures, "built for another dataset's id map (idmap_sha256 %s, dataset has %s)", meta.IDMapSHA256, c.m.IDMapSHA256)
		}
	}
	return nil
}

// images checks the LMDB image store, if there is one: every image has a
// ledger entry with status ok whose sha256 (and size, when recorded) match
// the stored bytes, and every ok ledger entry has its image.
func (c *checker) images() error {
	p := filepath.Join(c.dir, store.ImagesDir)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	rel := store.ImagesDir
	st, err := imagestore.Open(p, imagestore.Options{ReadOnly: true})
	if err != nil {
		c.add(rel, "", KindImages, "%v", err)
		return nil
	}
	defer st.Close()
	err = st.Keys(func(key string) error {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		c.rep.Checked.Images++
		img, ok, err := st.Get(key)
		if err != nil || !ok {
			c.add(rel, key, KindImages, "image unreadable: %v", err)
			return nil
		}
		e, ok, err := st.Ledger(key)
		switch {
		case err != nil:
			c.add(rel, key, KindImages, "ledger entry unreadable: %v", err)
			return nil
		case !ok:
			c.add(rel, key, KindImages, "image stored but no ledger entry")
			return nil
		case e.Status != imagestore.StatusOK:
			c.add(rel, key, KindImages, "image stored but ledger status is %q, want %q", e.Status, imagestore.StatusOK)
			return nil
		}
		sum := sha256.Sum256(img)
		if got := hex.EncodeToString(sum[:]); e.SHA256 != got {
			c.add(rel, key, KindImages, "stored image sha256 %s, ledger says %q", got, e.SHA256)
		} else if e.Bytes != 0 && e.Bytes != int64(len(img)) {
			c.add(rel, key, KindImages, "stored image has %d bytes, ledger says %d", len(img), e.Bytes)
		}
		return nil
	})
	if err != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		c.add(rel, "", KindImages, "scan images: %v", err)
		return nil
	}
	err = st.LedgerScan(func(key string, e imagestore.LedgerEntry) error {
		c.rep.Checked.Ledger++
		if e.Status != imagestore.StatusOK {
			return nil
		}
		has, err := st.Has(key)
		if err != nil {
			return err
		}
		if !has {
			c.add(rel, key, KindImages, "ledger status %q but no image stored", e.Status)
		}
		return nil
	})
	if err != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		c.add(rel, "", KindImages, "scan ledger: %v", err)
	}
	return nil
}

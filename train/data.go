package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// Data is a dataset split loaded for training: the split's rows, the
// binary users × items matrix of its training interactions, and lazy
// access to the id maps and feature files.
type Data struct {
	Dataset   *store.Dataset
	SplitName string
	Split     *store.Split
	NumUsers  int
	NumItems  int
	// Train is the binary NumUsers × NumItems matrix of the training
	// interactions (duplicates collapsed).
	Train *sparse.CSR
	// TrainRows is the number of training rows of the split (with
	// repeats), the epoch size of samplers that follow LightGCN's
	// reference.
	TrainRows int

	idOnce sync.Once
	users  []store.User
	items  []store.Item
	idErr  error
}

// DefaultSplit picks the split of a dataset for a protocol: "given" when
// the source came with one, else "random" for graph and "loo" for the
// sequential protocols.
func DefaultSplit(m *store.Manifest, p eval.Protocol) string {
	if _, ok := m.Splits["given"]; ok {
		return "given"
	}
	if p == eval.Graph {
		return "random"
	}
	return "loo"
}

// LoadData opens a dataset directory and reads one split (split "" picks
// DefaultSplit for protocol p).
func LoadData(ctx context.Context, dir, split string, p eval.Protocol) (*Data, error) {
	ds, err := store.OpenDataset(dir)
	if err != nil {
		return nil, &UsageError{fmt.Errorf("--dataset: %w", err)}
	}
	if split == "" {
		split = DefaultSplit(ds.Manifest, p)
	}
	if _, ok := ds.Manifest.Splits[split]; !ok {
		return nil, usagef("dataset %s has no split %q (splits: %s; make one with `mmpipe split --split %s %s`)",
			dir, split, strings.Join(ds.SplitNames(), ", "), split, dir)
	}
	s, err := store.ReadSplit(ctx, store.SplitPath(dir, split))
	if err != nil {
		return nil, err
	}
	d := &Data{Dataset: ds, SplitName: split, Split: s, NumUsers: ds.Manifest.Users, NumItems: ds.Manifest.Items}
	var tu, ti []int32
	for k, u := range s.User {
		i := s.Item[k]
		if u < 0 || int(u) >= d.NumUsers || i < 0 || int(i) >= d.NumItems {
			return nil, fmt.Errorf("split %s row %d: user %d / item %d outside the dataset's %d users and %d items", split, k, u, i, d.NumUsers, d.NumItems)
		}
		if s.Part[k] == store.PartTrain {
			tu, ti = append(tu, u), append(ti, i)
		}
	}
	d.TrainRows = len(tu)
	if d.Train, err = sparse.Bipartite(d.NumUsers, d.NumItems, tu, ti); err != nil {
		return nil, fmt.Errorf("split %s: %w", split, err)
	}
	return d, nil
}

// Task returns the evaluation task of protocol p for part (valid or test).
func (d *Data) Task(p eval.Protocol, part int8) (*eval.Task, error) {
	return eval.SplitTask(p, d.Split, part, d.NumUsers, d.NumItems)
}

// HasPart reports whether the split has rows of part.
func (d *Data) HasPart(part int8) bool {
	return slices.Contains(d.Split.Part, part)
}

// IDs returns the user and item tables (read once, on first use).
func (d *Data) IDs(ctx context.Context) ([]store.User, []store.Item, error) {
	d.idOnce.Do(func() {
		if d.users, d.idErr = store.ReadUsers(ctx, d.Dataset.Path(store.UsersFile)); d.idErr != nil {
			return
		}
		d.items, d.idErr = store.ReadItems(ctx, d.Dataset.Path(store.ItemsFile))
	})
	if d.idErr != nil {
		return nil, nil, d.idErr
	}
	if len(d.users) != d.NumUsers || len(d.items) != d.NumItems {
		return nil, nil, fmt.Errorf("dataset %s: %d users and %d items in the tables, %d and %d in the manifest",
			d.Dataset.Dir, len(d.users), len(d.items), d.NumUsers, d.NumItems)
	}
	return d.users, d.items, nil
}

// ErrNoFeatures is wrapped by Features and TokenFeatures when no file
// matches the name.
var ErrNoFeatures = errors.New("no such feature file")

// Features opens the dataset's feature file for a modality: name is a
// modality ("image": the one features/image.*.arrow file) or a file stem
// ("image.imported"). It refuses a file whose idmap_sha256 differs from the
// dataset manifest's (features built for another dataset or another item
// order) or whose row count differs from the item count. The caller closes
// the file. Token files (*.tokens.arrow) are not considered.
func (d *Data) Features(name string) (*store.FeatureFile, error) {
	return d.openFeatures(name, false)
}

// TokenFeatures is Features for token-state files (`encode --tokens`,
// features/<modality>.<encoder>.tokens.arrow): name is a modality ("text")
// or a stem with or without ".tokens" ("text.text-hash.tokens",
// "text.text-hash"). The same checks apply.
func (d *Data) TokenFeatures(name string) (*store.FeatureFile, error) {
	return d.openFeatures(name, true)
}

// openFeatures finds the pooled (tokens false) or token feature file name
// denotes, opens it and checks it against the dataset.
func (d *Data) openFeatures(name string, tokens bool) (*store.FeatureFile, error) {
	files, err := d.Dataset.FeatureFiles()
	if err != nil {
		return nil, err
	}
	kind := "features"
	if tokens {
		kind = "token features"
	}
	exact := []string{name + ".arrow", name + ".tokens.arrow"}
	var match []string
	for _, f := range files {
		stem := strings.TrimSuffix(f, ".arrow")
		if strings.HasSuffix(stem, ".tokens") != tokens {
			continue
		}
		if slices.Contains(exact, f) || strings.SplitN(stem, ".", 2)[0] == name {
			match = append(match, f)
		}
	}
	if len(match) > 1 {
		for _, f := range match {
			if slices.Contains(exact, f) {
				match = []string{f}
				break
			}
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("dataset %s has no %s for %q (files: %s): %w", d.Dataset.Dir, kind, name, strings.Join(files, ", "), ErrNoFeatures)
	case len(match) > 1:
		return nil, fmt.Errorf("dataset %s has several %s files for %q (%s): name one", d.Dataset.Dir, kind, name, strings.Join(match, ", "))
	}
	path := d.Dataset.Path(store.FeaturesDir, match[0])
	ff, err := store.OpenFeatures(path)
	if err != nil {
		return nil, err
	}
	want := d.Dataset.Manifest.IDMapSHA256
	if got := ff.Meta().IDMapSHA256; got != want {
		ff.Close()
		return nil, fmt.Errorf("%s %s: idmap_sha256 %q differs from the dataset's %q: the file was built for another dataset or item order; re-encode it",
			kind, path, got, want)
	}
	if ff.Rows() != d.NumItems {
		ff.Close()
		return nil, fmt.Errorf("%s %s: %d rows for %d items", kind, path, ff.Rows(), d.NumItems)
	}
	return ff, nil
}

// absPath returns an absolute, cleaned path (the path itself on error).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

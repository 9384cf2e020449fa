package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/mmpipe/mmpipe/store"
)

// SplitCounts is one split's size in interactions.
type SplitCounts struct {
	Train int64 `json:"train"`
	Valid int64 `json:"valid"`
	Test  int64 `json:"test"`
}

// Modality is one feature file of a dataset.
type Modality struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Dim     int    `json:"dim"`
	Tokens  int    `json:"tokens,omitempty"`
	Encoder string `json:"encoder"`
	Present int    `json:"present"`
}

// Degrees summarises a degree distribution.
type Degrees struct {
	Min    int     `json:"min"`
	Median int     `json:"median"`
	Mean   float64 `json:"mean"`
	Max    int     `json:"max"`
}

// Summary is what `mmpipe inspect --json` prints for a dataset. The keys
// users, items, interactions, splits and modalities are part of the
// contract.
type Summary struct {
	Dir          string                 `json:"dataset"`
	Source       string                 `json:"source_format"`
	Users        int                    `json:"users"`
	Items        int                    `json:"items"`
	Interactions int64                  `json:"interactions"`
	Sparsity     float64                `json:"sparsity"`
	UserDegree   Degrees                `json:"user_degree"`
	ItemDegree   Degrees                `json:"item_degree"`
	ColdItems    int                    `json:"items_without_interactions"`
	Splits       map[string]SplitCounts `json:"splits"`
	Modalities   []Modality             `json:"modalities"`
	Coverage     map[string]int         `json:"coverage"`
	TimeKind     string                 `json:"time_kind"`
	IDMapSHA256  string                 `json:"idmap_sha256"`
}

func degrees(counts []int) Degrees {
	if len(counts) == 0 {
		return Degrees{}
	}
	s := slices.Clone(counts)
	slices.Sort(s)
	sum := 0
	for _, c := range s {
		sum += c
	}
	return Degrees{Min: s[0], Median: s[len(s)/2], Mean: float64(sum) / float64(len(s)), Max: s[len(s)-1]}
}

// Summarize reads a dataset's tables and manifest into a Summary.
func Summarize(ctx context.Context, dir string) (*Summary, error) {
	ds, err := store.OpenDataset(dir)
	if err != nil {
		return nil, err
	}
	s := summaryOf(dir, ds.Manifest)
	inter, err := store.ReadInteractions(ctx, ds.Path(store.InteractionsFile))
	if err != nil {
		return nil, err
	}
	items, err := store.ReadItems(ctx, ds.Path(store.ItemsFile))
	if err != nil {
		return nil, err
	}
	s.addTables(inter, items)
	files, err := ds.FeatureFiles()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		ff, err := store.OpenFeatures(ds.Path(store.FeaturesDir, f))
		if err != nil {
			return nil, err
		}
		meta := ff.Meta()
		s.Modalities = append(s.Modalities, Modality{Name: meta.Modality, File: f, Dim: ff.Dim(), Tokens: ff.Tokens(),
			Encoder: meta.Encoder, Present: ff.Present()})
		ff.Close()
	}
	return s, nil
}

// addTables fills the degree statistics and coverage.
func (s *Summary) addTables(inter *store.Interactions, items []store.Item) {
	ud, id := make([]int, s.Users), make([]int, s.Items)
	for k := range inter.Len() {
		ud[inter.User[k]]++
		id[inter.Item[k]]++
	}
	for _, d := range id {
		if d == 0 {
			s.ColdItems++
		}
	}
	s.UserDegree, s.ItemDegree = degrees(ud), degrees(id)
	if s.Users > 0 && s.Items > 0 {
		s.Sparsity = 1 - float64(s.Interactions)/(float64(s.Users)*float64(s.Items))
	}
	for _, it := range items {
		if it.HasMeta {
			s.Coverage["metadata"]++
		}
		if it.HasText() {
			s.Coverage["text"]++
		}
		if len(it.ImageURLs) > 0 {
			s.Coverage["image_url"]++
		}
	}
}

// summaryOf starts a Summary from a manifest.
func summaryOf(dir string, m *store.Manifest) *Summary {
	s := &Summary{Dir: dir, Source: m.SourceFormat, Users: m.Users, Items: m.Items, Interactions: m.Interactions,
		Splits: map[string]SplitCounts{}, Modalities: []Modality{}, TimeKind: m.TimeKind, IDMapSHA256: m.IDMapSHA256,
		Coverage: map[string]int{}}
	for n, si := range m.Splits {
		s.Splits[n] = SplitCounts{Train: si.Train, Valid: si.Valid, Test: si.Test}
	}
	return s
}

// Print writes the human-readable summary.
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "dataset %s (source format %s)\n", s.Dir, s.Source)
	fmt.Fprintf(w, "  users %d, items %d, interactions %d, sparsity %.4f%%\n", s.Users, s.Items, s.Interactions, 100*s.Sparsity)
	fmt.Fprintf(w, "  user degree min/median/mean/max %d / %d / %.2f / %d\n", s.UserDegree.Min, s.UserDegree.Median, s.UserDegree.Mean, s.UserDegree.Max)
	fmt.Fprintf(w, "  item degree min/median/mean/max %d / %d / %.2f / %d (%d items without interactions)\n",
		s.ItemDegree.Min, s.ItemDegree.Median, s.ItemDegree.Mean, s.ItemDegree.Max, s.ColdItems)
	fmt.Fprintf(w, "  coverage: metadata %d, text %d, image URL %d of %d items\n", s.Coverage["metadata"], s.Coverage["text"], s.Coverage["image_url"], s.Items)
	names := make([]string, 0, len(s.Splits))
	for n := range s.Splits {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := s.Splits[n]
		fmt.Fprintf(w, "  split %-9s train %d, valid %d, test %d\n", n, c.Train, c.Valid, c.Test)
	}
	for _, m := range s.Modalities {
		tok := ""
		if m.Tokens > 0 {
			tok = fmt.Sprintf(" × %d tokens", m.Tokens)
		}
		fmt.Fprintf(w, "  modality %-8s %d-d%s, %d of %d items present, encoder %s (%s)\n", m.Name, m.Dim, tok, m.Present, s.Items, m.Encoder, m.File)
	}
}

// Resplit makes the named splits of an existing dataset and updates its
// manifest. A split whose parameters are unchanged is skipped unless force.
func Resplit(ctx context.Context, dir string, so SplitOptions, force bool, log *slog.Logger) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ds, err := store.OpenDataset(dir)
	if err != nil {
		return nil, err
	}
	m := ds.Manifest
	var todo []string
	for _, n := range so.Names {
		old, ok := m.Splits[n]
		want := SplitParams(n, so)
		if ok && !force && n != "given" && sameParams(old.Params, want) {
			log.Info("split skipped: exists with the same parameters (use --force to redo)", "split", n)
			continue
		}
		if n == "given" {
			if !ok {
				return nil, errors.New("split given: the dataset has no source split")
			}
			continue
		}
		todo = append(todo, n)
	}
	if len(todo) == 0 {
		return &Result{Skipped: true, Manifest: m}, nil
	}
	inter, err := store.ReadInteractions(ctx, ds.Path(store.InteractionsFile))
	if err != nil {
		return nil, err
	}
	so2 := so
	so2.Names = todo
	splits, err := MakeSplits(inter, nil, so2)
	if err != nil {
		return nil, err
	}
	md := map[string]string{"mmpipe_version": m.MmpipeVersion, "idmap_sha256": m.IDMapSHA256}
	for _, s := range splits {
		if err := store.WriteSplit(store.SplitPath(dir, s.Name), s, md); err != nil {
			return nil, err
		}
		tr, va, te := s.Counts()
		m.Splits[s.Name] = store.SplitInfo{Train: int64(tr), Valid: int64(va), Test: int64(te), Params: SplitParams(s.Name, so)}
	}
	if err := RecordOutputs(dir, m); err != nil {
		return nil, err
	}
	if err := store.WriteManifest(dir, m); err != nil {
		return nil, err
	}
	return &Result{Manifest: m}, nil
}

func sameParams(a, b map[string]any) bool {
	// Compare through their printed form: decoded JSON numbers are float64.
	return reflect.DeepEqual(fmt.Sprint(a), fmt.Sprint(b))
}

// Kind tells what a path passed to inspect is.
func Kind(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		if strings.HasSuffix(path, ".arrow") {
			return "features", nil
		}
		return "", fmt.Errorf("%s: not a dataset directory, feature file (.arrow) or LMDB image store", path)
	}
	if _, err := os.Stat(filepath.Join(path, store.ManifestFile)); err == nil {
		return "dataset", nil
	}
	if _, err := os.Stat(filepath.Join(path, "data.mdb")); err == nil {
		return "lmdb", nil
	}
	return "", fmt.Errorf("%s: not a complete dataset (no manifest.json) nor an LMDB image store (no data.mdb)", path)
}

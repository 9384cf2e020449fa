// Package merge joins the shard parts of a dataset: the image stores of
// `mmpipe crawl --shard i/n` (<dataset>/parts/crawl-<i>-of-<n>/images.lmdb)
// into <dataset>/images.lmdb, and the feature files of
// `mmpipe encode --shard i/n` (<dataset>/features/parts/
// <modality>.<encoder>.<i>-of-<n>[.tokens].arrow) into
// features/<modality>.<encoder>[.tokens].arrow. It refuses parts that do not
// belong together (different n, a missing or repeated shard, another encoder,
// model file, preprocessing, dimension or id map) with an error naming the
// files. The library side of `mmpipe merge`.
package merge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/mmpipe/mmpipe/pipeline/crawl"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/encode"
	"github.com/mmpipe/mmpipe/store"
)

// ErrBadInput marks parts that cannot be merged (inconsistent, incomplete)
// and datasets that are not there: bad input, exit code 2. It is the
// project-wide store.ErrBadInput.
var ErrBadInput = store.ErrBadInput

func badInput(format string, args ...any) error { return store.BadInputf(format, args...) }

// FeatureResult says what merging one group of feature parts did.
type FeatureResult struct {
	File    string   `json:"file"`  // relative to the dataset directory
	Parts   []string `json:"parts"` // relative to the dataset directory, by shard
	Rows    int      `json:"rows"`
	Present int      `json:"present"`
}

// Result says what Run did.
type Result struct {
	Crawl      *crawl.MergeStats `json:"crawl,omitempty"`
	CrawlParts []string          `json:"crawl_parts,omitempty"`
	Features   []FeatureResult   `json:"features,omitempty"`
}

// Run merges every kind of shard part the dataset directory holds. It is an
// error (ErrBadInput) when there are none.
func Run(ctx context.Context, dir string) (*Result, error) {
	ds, err := store.OpenDataset(dir)
	if err != nil {
		return nil, badInput("merge: %w", err)
	}
	res := &Result{}
	parts, err := CrawlParts(dir)
	if err != nil {
		return nil, err
	}
	if len(parts) > 0 {
		ms, err := crawl.MergeParts(ctx, ds.Path(store.ImagesDir), parts)
		if err != nil {
			return nil, err
		}
		res.Crawl = &ms
		for _, p := range parts {
			rel, _ := filepath.Rel(dir, filepath.Dir(p))
			res.CrawlParts = append(res.CrawlParts, filepath.ToSlash(rel))
		}
	}
	fr, err := Features(ctx, ds)
	if err != nil {
		return nil, err
	}
	res.Features = fr
	if res.Crawl == nil && len(fr) == 0 {
		return nil, badInput("merge: %s has no shard parts (%s/crawl-<i>-of-<n>/ or %s/parts/*.arrow)", dir, crawl.PartsDir, store.FeaturesDir)
	}
	return res, nil
}

var crawlPartRE = regexp.MustCompile(`^crawl-(\d+)-of-(\d+)$`)

// CrawlParts returns the image store directories of the crawl parts of a
// dataset, by shard, after checking that they are one complete sharded
// crawl: the same n everywhere, every shard 0..n-1 once, each with an image
// store, and (where the part has its crawl_stats.json) finished, not
// interrupted, with the shard and source the others have. No parts: nil.
func CrawlParts(dir string) ([]string, error) {
	root := filepath.Join(dir, crawl.PartsDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	n := -1
	byShard := map[int]string{}
	source, sourceOf := "", ""
	for _, e := range ents {
		m := crawlPartRE.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		ni, _ := strconv.Atoi(m[2])
		p := filepath.Join(root, e.Name())
		switch {
		case n >= 0 && ni != n:
			return nil, badInput("merge: crawl part %s is shard %d of %d, another part is of %d: parts of different crawls (remove the stale ones)", p, i, ni, n)
		case i >= ni:
			return nil, badInput("merge: crawl part %s: shard %d is not below %d", p, i, ni)
		case byShard[i] != "":
			return nil, badInput("merge: crawl parts %s and %s are both shard %d", byShard[i], p, i)
		}
		n = ni
		if _, err := os.Stat(filepath.Join(p, store.ImagesDir)); err != nil {
			return nil, badInput("merge: crawl part %s has no %s: %w", p, store.ImagesDir, err)
		}
		stats, err := readCrawlStats(filepath.Join(p, crawl.StatsFileName))
		if err != nil {
			return nil, err
		}
		if stats != nil {
			want := fmt.Sprintf("%d/%d", i, ni)
			switch {
			case stats.Interrupted:
				return nil, badInput("merge: crawl part %s was interrupted: re-run `mmpipe crawl --shard %s` to finish it", p, want)
			case stats.Shard != "" && stats.Shard != want:
				return nil, badInput("merge: crawl part %s: its %s says shard %s, its name says %s", p, crawl.StatsFileName, stats.Shard, want)
			case sourceOf != "" && stats.Source != source:
				return nil, badInput("merge: crawl parts %s and %s crawled different sources (%s, %s)", sourceOf, p, source, stats.Source)
			}
			if sourceOf == "" {
				source, sourceOf = stats.Source, p
			}
		}
		byShard[i] = p
	}
	if n < 0 {
		return nil, nil
	}
	out := make([]string, n)
	for i := range n {
		if byShard[i] == "" {
			return nil, badInput("merge: crawl shard %d of %d is missing (%s): run `mmpipe crawl --shard %d/%d` first", i, n,
				crawl.PartDir(dir, i, n), i, n)
		}
		out[i] = filepath.Join(byShard[i], store.ImagesDir)
	}
	return out, nil
}

// crawlStats holds the fields of crawl_stats.json that merge checks.
type crawlStats struct {
	Source      string `json:"source"`
	Shard       string `json:"shard"`
	Interrupted bool   `json:"interrupted"`
}

func readCrawlStats(path string) (*crawlStats, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	var s crawlStats
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, badInput("merge: %s: %w", path, err)
	}
	return &s, nil
}

// featurePartRE matches <modality>.<encoder>.<i>-of-<n>[.tokens].arrow.
var featurePartRE = regexp.MustCompile(`^(.+)\.(\d+)-of-(\d+)(\.tokens)?\.arrow$`)

// featureGroup is the parts of one output file.
type featureGroup struct {
	base   string // <modality>.<encoder>
	tokens bool
	n      int
	parts  map[int]string // shard → file name
}

func (g *featureGroup) output() string {
	if g.tokens {
		return g.base + ".tokens.arrow"
	}
	return g.base + ".arrow"
}

// Features merges every group of feature parts in <dataset>/features/parts
// into its feature file, then lists the files in the manifest and re-hashes
// the dataset's outputs. The parts stay (merging again gives the same file).
func Features(ctx context.Context, ds *store.Dataset) ([]FeatureResult, error) {
	partsDir := ds.Path(store.FeaturesDir, "parts")
	ents, err := os.ReadDir(partsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	groups := map[string]*featureGroup{}
	for _, e := range ents {
		m := featurePartRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		i, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		g := &featureGroup{base: m[1], tokens: m[4] != "", n: n, parts: map[int]string{}}
		key := g.output()
		if have, ok := groups[key]; ok {
			g = have
		} else {
			groups[key] = g
		}
		p := filepath.Join(partsDir, e.Name())
		switch {
		case n != g.n:
			return nil, badInput("merge: feature part %s is of %d shards, %s of %d: parts of different runs (remove the stale ones)",
				p, n, filepath.Join(partsDir, g.parts[slices.Min(slices.Collect(maps.Keys(g.parts)))]), g.n)
		case i >= n:
			return nil, badInput("merge: feature part %s: shard %d is not below %d", p, i, n)
		}
		g.parts[i] = e.Name()
	}
	var out []FeatureResult
	var names []string
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fr, err := mergeFeatures(ds, partsDir, groups[key])
		if err != nil {
			return nil, err
		}
		out = append(out, *fr)
		names = append(names, groups[key].output())
	}
	if len(out) == 0 {
		return nil, nil
	}
	m, err := store.ReadManifest(ds.Dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if !slices.Contains(m.Features, name) {
			m.Features = append(m.Features, name)
		}
	}
	slices.Sort(m.Features)
	if err := dataset.RecordOutputs(ds.Dir, m); err != nil {
		return nil, fmt.Errorf("merge: record outputs of %s: %w", ds.Dir, err)
	}
	if err := store.WriteManifest(ds.Dir, m); err != nil {
		return nil, err
	}
	ds.Manifest = m
	return out, nil
}

// sameProvenance compares the metadata two parts must share.
func sameProvenance(a, b store.FeatureMeta) string {
	switch {
	case a.Modality != b.Modality:
		return fmt.Sprintf("modality %q vs %q", a.Modality, b.Modality)
	case a.Encoder != b.Encoder:
		return fmt.Sprintf("encoder %q vs %q", a.Encoder, b.Encoder)
	case a.ModelSHA256 != b.ModelSHA256:
		return fmt.Sprintf("model_sha256 %s vs %s", a.ModelSHA256, b.ModelSHA256)
	case a.Preprocess != b.Preprocess:
		return fmt.Sprintf("preprocess %q vs %q", a.Preprocess, b.Preprocess)
	case a.Pooling != b.Pooling:
		return fmt.Sprintf("pooling %q vs %q", a.Pooling, b.Pooling)
	case a.Normalized != b.Normalized:
		return fmt.Sprintf("normalized %v vs %v", a.Normalized, b.Normalized)
	case a.IDMapSHA256 != b.IDMapSHA256:
		return fmt.Sprintf("idmap_sha256 %s vs %s", a.IDMapSHA256, b.IDMapSHA256)
	case a.Version != b.Version:
		return fmt.Sprintf("mmpipe_version %q vs %q", a.Version, b.Version)
	}
	ea, eb := maps.Clone(a.Extra), maps.Clone(b.Extra)
	delete(ea, encode.MetaShard)
	delete(eb, encode.MetaShard)
	if !maps.Equal(ea, eb) {
		return fmt.Sprintf("metadata %v vs %v", ea, eb)
	}
	return ""
}

// mergeFeatures checks one group's parts and writes the merged file: row r
// comes from shard r % n (encode's assignment).
func mergeFeatures(ds *store.Dataset, partsDir string, g *featureGroup) (*FeatureResult, error) {
	fr := &FeatureResult{File: store.FeaturesDir + "/" + g.output()}
	mats := make([]*store.FeatureMatrix, g.n)
	for i := range g.n {
		name, ok := g.parts[i]
		if !ok {
			return nil, badInput("merge: %s: shard %d of %d is missing (%s): run `mmpipe encode --shard %d/%d` first",
				fr.File, i, g.n, filepath.Join(partsDir, fmt.Sprintf("%s.%d-of-%d.arrow", g.base, i, g.n)), i, g.n)
		}
		p := filepath.Join(partsDir, name)
		fr.Parts = append(fr.Parts, store.FeaturesDir+"/parts/"+name)
		ff, err := store.OpenFeatures(p)
		if err != nil {
			return nil, badInput("merge: %w", err)
		}
		m := ff.Matrix()
		ff.Close()
		if got, want := m.Meta.Extra[encode.MetaShard], fmt.Sprintf("%d/%d", i, g.n); got != want {
			return nil, badInput("merge: %s: its metadata says shard %q, its name says %s", p, got, want)
		}
		if m.Meta.IDMapSHA256 != ds.Manifest.IDMapSHA256 {
			return nil, badInput("merge: %s was built for another dataset's id map (idmap_sha256 %s; %s has %s)",
				p, m.Meta.IDMapSHA256, ds.Dir, ds.Manifest.IDMapSHA256)
		}
		if m.Rows != ds.Manifest.Items {
			return nil, badInput("merge: %s has %d rows, %s has %d items", p, m.Rows, ds.Dir, ds.Manifest.Items)
		}
		if i > 0 {
			first := mats[0]
			if d := sameProvenance(first.Meta, m.Meta); d != "" {
				return nil, badInput("merge: %s and %s do not belong together: %s", fr.Parts[0], fr.Parts[i], d)
			}
			if m.Dim != first.Dim || m.Tokens != first.Tokens {
				return nil, badInput("merge: %s and %s do not belong together: dim %d×%d vs %d×%d",
					fr.Parts[0], fr.Parts[i], first.Tokens, first.Dim, m.Tokens, m.Dim)
			}
		}
		for r := range m.Rows {
			if r%g.n != i && (m.Valid == nil || m.Valid[r]) {
				return nil, badInput("merge: %s has a vector for item_idx %d, which belongs to shard %d/%d", p, r, r%g.n, g.n)
			}
		}
		mats[i] = m
	}
	first := mats[0]
	meta := first.Meta
	meta.Extra = maps.Clone(meta.Extra)
	delete(meta.Extra, encode.MetaShard)
	out := &store.FeatureMatrix{Meta: meta, Rows: first.Rows, Dim: first.Dim, Tokens: first.Tokens}
	w := first.Dim
	if first.Tokens > 0 {
		w *= first.Tokens
		out.NTokens = make([]int32, out.Rows)
	}
	out.Data = make([]float32, out.Rows*w)
	out.Valid = make([]bool, out.Rows)
	for r := range out.Rows {
		m := mats[r%g.n]
		if m.Valid != nil && !m.Valid[r] {
			continue
		}
		out.Valid[r] = true
		fr.Present++
		copy(out.Data[r*w:(r+1)*w], m.Data[r*w:(r+1)*w])
		if out.NTokens != nil {
			out.NTokens[r] = m.NTokens[r]
		}
	}
	fr.Rows = out.Rows
	if err := store.WriteFeatures(ds.Path(store.FeaturesDir, g.output()), out); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return fr, nil
}

// Lines describes the result, one line per merged output.
func (r *Result) Lines() []string {
	var lines []string
	if r.Crawl != nil {
		lines = append(lines, fmt.Sprintf("%s: %d parts, %d images, %d ledger entries (%d kept)",
			store.ImagesDir, r.Crawl.Parts, r.Crawl.Images, r.Crawl.Ledger, r.Crawl.Kept))
	}
	for _, f := range r.Features {
		lines = append(lines, fmt.Sprintf("%s: %d parts, %d rows, %d present", f.File, len(f.Parts), f.Rows, f.Present))
	}
	return lines
}

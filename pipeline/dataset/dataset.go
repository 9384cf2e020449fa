// Package dataset runs the ingest stage end to end: read a source with
// package ingest, clean it with package prep, make the splits and write the
// dataset directory (tables, splits, imported features, manifest last).
package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmpipe/mmpipe/pipeline/ingest"
	"github.com/mmpipe/mmpipe/pipeline/prep"
	"github.com/mmpipe/mmpipe/store"
)

// SplitOptions choose and parameterise the splits.
type SplitOptions struct {
	// Names of the splits to make: given, random, loo, temporal, or none.
	// Empty: given where the source has one, else random.
	Names []string
	// Seed of the random split.
	Seed uint64
	// LOOMaxLen keeps each user's last N interactions in the loo split (0:
	// all).
	LOOMaxLen int
	// TemporalValid and TemporalTest are the quantiles of time at which the
	// temporal split cuts (default 0.8 and 0.9).
	TemporalValid, TemporalTest float64
}

// Options of one ingest.
type Options struct {
	Format  string
	Inputs  []string
	Out     string
	Ingest  ingest.Options
	Splits  SplitOptions
	Version string
	// MinRating keeps rows rated at least this (NaN: keep all).
	MinRating float64
	// UserCore and ItemCore apply iterative k-core filtering (0: none).
	UserCore, ItemCore int
	Force              bool
	Logger             *slog.Logger
}

// Result says what the stage did.
type Result struct {
	Skipped  bool
	Manifest *store.Manifest
	Report   *ingest.Report
	// Summary is the dataset summary, computed from the tables in memory
	// (nil when the stage was skipped).
	Summary *Summary
}

func (o *Options) params() map[string]any {
	p := map[string]any{
		"format":        o.Format,
		"max_bad_lines": o.Ingest.MaxBadLines,
		"feat_dim":      o.Ingest.FeatDim,
		"user_core":     o.UserCore,
		"item_core":     o.ItemCore,
		"splits":        o.Splits.Names,
		"seed":          o.Splits.Seed,
		"loo_max_len":   o.Splits.LOOMaxLen,
		"temporal":      []float64{o.Splits.TemporalValid, o.Splits.TemporalTest},
	}
	if !math.IsNaN(o.MinRating) {
		p["min_rating"] = o.MinRating
	}
	// Round-trip through JSON so the map compares equal to a decoded one.
	b, _ := json.Marshal(p)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func inputFiles(inputs []string) ([]store.InputFile, error) {
	var out []store.InputFile
	for _, in := range inputs {
		err := filepath.WalkDir(in, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if strings.HasPrefix(d.Name(), ".") && p != in {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			st, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, store.InputFile{Path: p, Bytes: st.Size(), ModTime: st.ModTime().UnixNano()})
			return nil
		})
		if err != nil {
			return nil, &ingest.BadInputError{File: in, Err: err}
		}
	}
	slices.SortFunc(out, func(a, b store.InputFile) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// sameInputs compares inputs by path, size and modification time.
func sameInputs(a, b []store.InputFile) bool {
	return slices.EqualFunc(a, b, func(x, y store.InputFile) bool {
		return x.Path == y.Path && x.Bytes == y.Bytes && x.ModTime == y.ModTime
	})
}

// Ingest runs the stage. A dataset whose manifest records the same inputs
// and parameters is skipped unless Force is set.
func Ingest(ctx context.Context, o Options) (*Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Out == "" {
		return nil, &ingest.BadInputError{File: "--out", Err: errors.New("no output dataset directory given")}
	}
	inputs, err := inputFiles(o.Inputs)
	if err != nil {
		return nil, err
	}
	params := o.params()
	if !o.Force {
		if m, err := store.ReadManifest(o.Out); err == nil && sameInputs(m.Inputs, inputs) && reflect.DeepEqual(m.Params, params) {
			log.Info("ingest skipped: dataset is complete for the same inputs and parameters (use --force to redo)", "out", o.Out)
			return &Result{Skipped: true, Manifest: m}, nil
		}
	}
	// Hash the inputs on the side while the main goroutine parses.
	var g errgroup.Group
	g.Go(func() error {
		for k := range inputs {
			sum, _, err := store.FileSHA256(inputs[k].Path)
			if err != nil {
				return err
			}
			inputs[k].SHA256 = sum
		}
		return nil
	})
	start := time.Now()
	tables, report, err := ingest.Run(ctx, o.Format, o.Inputs, o.Ingest)
	if err != nil {
		g.Wait()
		return &Result{Report: report}, err
	}
	log.Info("read source", "format", o.Format, "users", len(tables.Users), "items", len(tables.Items),
		"interactions", tables.Inter.Len(), "bad_lines", report.BadLines, "seconds", time.Since(start).Seconds())

	if err := filterTables(tables, o, report, log); err != nil {
		return nil, err
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m := &store.Manifest{
		Format:        store.DatasetFormat,
		MmpipeVersion: o.Version,
		Created:       time.Now().UTC().Format(time.RFC3339),
		SourceFormat:  o.Format,
		Inputs:        inputs,
		Params:        params,
		TimeKind:      "unix",
	}
	if ingestOrdinal(o.Format, tables) {
		m.TimeKind = "ordinal"
	}
	if err := Write(ctx, o.Out, tables, m, o.Splits, log); err != nil {
		return nil, err
	}
	rep, _ := json.Marshal(report)
	m.Report = rep
	if err := store.WriteManifest(o.Out, m); err != nil {
		return nil, err
	}
	sum := summaryOf(o.Out, m)
	sum.addTables(&tables.Inter, tables.Items)
	for _, f := range tables.Features {
		present := f.Rows
		if f.Valid != nil {
			present = 0
			for _, v := range f.Valid {
				if v {
					present++
				}
			}
		}
		sum.Modalities = append(sum.Modalities, Modality{Name: f.Modality, File: f.Modality + ".imported.arrow", Dim: f.Dim,
			Encoder: "imported:" + f.Source, Present: present})
	}
	return &Result{Manifest: m, Report: report, Summary: sum}, nil
}

// ingestOrdinal reports sources whose timestamps are positions, not times.
func ingestOrdinal(format string, t *ingest.Tables) bool {
	switch format {
	case "mmssl", "bilibili":
		return true
	case "mmrec", "recbole":
		return t.Given != nil
	}
	return false
}

// filterTables applies the rating threshold and k-core, then re-indexes
// densely (keeping index order) when anything was dropped.
func filterTables(t *ingest.Tables, o Options, report *ingest.Report, log *slog.Logger) error {
	var rows []int32
	if !math.IsNaN(o.MinRating) {
		rows = prep.Threshold(&t.Inter, float32(o.MinRating))
	}
	if o.UserCore > 1 || o.ItemCore > 1 {
		rows = prep.KCore(&t.Inter, rows, o.UserCore, o.ItemCore)
	}
	if rows == nil || len(rows) == t.Inter.Len() && o.UserCore <= 1 && o.ItemCore <= 1 {
		return nil
	}
	log.Info("filtered", "kept", len(rows), "of", t.Inter.Len())
	userNew := make([]int32, len(t.Users))
	itemNew := make([]int32, len(t.Items))
	for i := range userNew {
		userNew[i] = -1
	}
	for i := range itemNew {
		itemNew[i] = -1
	}
	for _, r := range rows {
		userNew[t.Inter.User[r]] = 0
		itemNew[t.Inter.Item[r]] = 0
	}
	var users []store.User
	for i, u := range t.Users {
		if userNew[i] == 0 {
			userNew[i] = int32(len(users))
			u.Idx = userNew[i]
			users = append(users, u)
		}
	}
	var items []store.Item
	var keptItems []int
	for i, it := range t.Items {
		if itemNew[i] == 0 {
			itemNew[i] = int32(len(items))
			it.Idx = itemNew[i]
			items = append(items, it)
			keptItems = append(keptItems, i)
		}
	}
	var inter store.Interactions
	inter.Grow(len(rows))
	for _, r := range rows {
		inter.Append(userNew[t.Inter.User[r]], itemNew[t.Inter.Item[r]], t.Inter.Rating[r], t.Inter.Timestamp[r])
	}
	if t.Given != nil {
		g := &store.Split{Name: t.Given.Name}
		for k := range t.Given.Len() {
			u, i := userNew[t.Given.User[k]], itemNew[t.Given.Item[k]]
			if u >= 0 && i >= 0 {
				g.AppendRow(u, i, t.Given.Rating[k], t.Given.Timestamp[k], t.Given.Part[k])
			}
		}
		t.Given = g
	}
	for k := range t.Features {
		f := &t.Features[k]
		data := make([]float32, 0, len(keptItems)*f.Dim)
		var valid []bool
		for _, i := range keptItems {
			data = append(data, f.Data[i*f.Dim:(i+1)*f.Dim]...)
			if f.Valid != nil {
				valid = append(valid, f.Valid[i])
			}
		}
		f.Data, f.Valid, f.Rows = data, valid, len(keptItems)
	}
	report.Warnings = append(report.Warnings, fmt.Sprintf("filter kept %d of %d interactions, %d of %d users, %d of %d items",
		len(rows), t.Inter.Len(), len(users), len(t.Users), len(items), len(t.Items)))
	t.Users, t.Items, t.Inter = users, items, inter
	return nil
}

// MakeSplits builds the requested splits of an interaction table.
func MakeSplits(t *store.Interactions, given *store.Split, so SplitOptions) ([]*store.Split, error) {
	names := so.Names
	if len(names) == 0 {
		if given != nil {
			names = []string{"given"}
		} else {
			names = []string{"random"}
		}
	}
	var out []*store.Split
	for _, n := range names {
		switch n {
		case "none":
			if len(names) > 1 {
				return nil, &ingest.BadInputError{File: "--split", Err: errors.New("none cannot be combined with other splits")}
			}
		case "given":
			if given == nil {
				return nil, &ingest.BadInputError{File: "--split", Err: errors.New("the source has no split of its own to keep (given)")}
			}
			out = append(out, given)
		case "random":
			out = append(out, prep.Random(t, nil, so.Seed))
		case "loo":
			out = append(out, prep.LOO(t, nil, so.LOOMaxLen))
		case "temporal":
			qv, qt := so.TemporalValid, so.TemporalTest
			if qv == 0 && qt == 0 {
				qv, qt = 0.8, 0.9
			}
			cuts := prep.TimeQuantiles(t, nil, qv, qt)
			s, err := prep.Temporal(t, nil, cuts[0], cuts[1])
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		default:
			return nil, &ingest.BadInputError{File: "--split", Err: fmt.Errorf("unknown split %q (want given, random, loo, temporal)", n)}
		}
	}
	return out, nil
}

// SplitParams records how a split was made.
func SplitParams(name string, so SplitOptions) map[string]any {
	switch name {
	case "random":
		return map[string]any{"rule": "LATTICE per-user hold-out: <10 items: 1 test + 1 valid; else floor(20%), first half test", "seed": so.Seed}
	case "loo":
		return map[string]any{"rule": "chronological leave-one-out; users with < 3 interactions all train", "max_len": so.LOOMaxLen}
	case "temporal":
		return map[string]any{"rule": "global time cut at quantiles", "valid_quantile": so.TemporalValid, "test_quantile": so.TemporalTest}
	case "given":
		return map[string]any{"rule": "the source's own split"}
	}
	return nil
}

// Write writes the tables, splits and imported features of a dataset and
// fills m's counts, splits and outputs (the caller writes the manifest).
func Write(ctx context.Context, dir string, t *ingest.Tables, m *store.Manifest, so SplitOptions, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create dataset %s: %w", dir, err)
	}
	// The dataset is incomplete until the new manifest is written.
	if err := os.Remove(filepath.Join(dir, store.ManifestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reset %s: %w", dir, err)
	}
	m.Users, m.Items, m.Interactions = len(t.Users), len(t.Items), int64(t.Inter.Len())
	m.IDMapSHA256 = store.IDMapSHA256(t.Items)
	m.Splits = map[string]store.SplitInfo{}
	md := map[string]string{"mmpipe_version": m.MmpipeVersion, "idmap_sha256": m.IDMapSHA256}
	start := time.Now()
	var g errgroup.Group
	g.Go(func() error { return store.WriteItems(filepath.Join(dir, store.ItemsFile), t.Items, md) })
	g.Go(func() error { return store.WriteUsers(filepath.Join(dir, store.UsersFile), t.Users, md) })
	g.Go(func() error { return store.WriteInteractions(filepath.Join(dir, store.InteractionsFile), &t.Inter, md) })
	// Splits are computed while the tables are written.
	splits, err := MakeSplits(&t.Inter, t.Given, so)
	if err != nil {
		g.Wait()
		return err
	}
	for _, s := range splits {
		tr, va, te := s.Counts()
		m.Splits[s.Name] = store.SplitInfo{Train: int64(tr), Valid: int64(va), Test: int64(te), Params: SplitParams(s.Name, so)}
		g.Go(func() error { return store.WriteSplit(store.SplitPath(dir, s.Name), s, md) })
	}
	for _, f := range t.Features {
		name := f.Modality + ".imported.arrow"
		m.Features = append(m.Features, name)
		g.Go(func() error {
			fm := &store.FeatureMatrix{
				Meta: store.FeatureMeta{
					Modality: f.Modality, Encoder: "imported:" + f.Source, Preprocess: "none (imported)",
					Pooling: "as imported", IDMapSHA256: m.IDMapSHA256, Version: m.MmpipeVersion,
				},
				Rows: f.Rows, Dim: f.Dim, Data: f.Data, Valid: f.Valid,
			}
			return store.WriteFeatures(filepath.Join(dir, store.FeaturesDir, name), fm)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("wrote dataset tables", "dir", dir, "splits", len(splits), "features", len(t.Features), "seconds", time.Since(start).Seconds())
	// Remove splits that this run did not make (a re-ingest with other
	// split options).
	if ents, err := os.ReadDir(filepath.Join(dir, store.SplitsDir)); err == nil {
		for _, e := range ents {
			n := strings.TrimSuffix(e.Name(), ".parquet")
			if _, ok := m.Splits[n]; !ok && strings.HasSuffix(e.Name(), ".parquet") {
				os.Remove(filepath.Join(dir, store.SplitsDir, e.Name()))
			}
		}
	}
	return RecordOutputs(dir, m)
}

// RecordOutputs hashes every file of the dataset into m.Outputs, except
// what store.Unrecorded names (the manifest, the image store, shard parts,
// crawl reports, temporary files).
func RecordOutputs(dir string, m *store.Manifest) error {
	m.Outputs = map[string]store.InputFile{}
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if store.Unrecorded(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		sum, n, err := store.FileSHA256(p)
		if err != nil {
			return err
		}
		m.Outputs[filepath.ToSlash(rel)] = store.InputFile{Path: filepath.ToSlash(rel), Bytes: n, SHA256: sum}
		return nil
	})
}

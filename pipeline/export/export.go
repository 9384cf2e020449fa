// Package export writes a dataset in the layouts the reference code reads:
// MMSSL/LATTICE json + npy, MMRec .inter + npy, RecBole/UniSRec/MISSRec
// sequence files + .feat*CLS, PMMRec tsv + LMDB, and plain Parquet.
package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mmpipe/mmpipe/pipeline/prep"
	"github.com/mmpipe/mmpipe/store"
)

// Options of one export.
type Options struct {
	Format string
	// Dataset directory and output directory.
	Dataset, Out string
	// Split to export (default: given if present, else the only split,
	// else loo for sequence formats and random for the graph formats).
	Split string
	// Name is the dataset name used in file names (default: the dataset
	// directory's base name).
	Name string
	// Features are feature file names in features/ (default: all).
	Features []string
	// Fill of missing feature rows in .npy exports: "mean" (LATTICE's choice
	// for items without an image) or "zero".
	Fill string
	// MaxHistory caps RecBole sequence histories (default 50).
	MaxHistory int
}

// Formats lists the export formats.
func Formats() []string { return []string{"mmssl", "mmrec", "recbole", "pmmrec", "parquet"} }

// Run exports a dataset.
func Run(ctx context.Context, o Options) ([]string, error) {
	ds, err := store.OpenDataset(o.Dataset)
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = filepath.Base(filepath.Clean(o.Dataset))
	}
	if o.Fill == "" {
		o.Fill = "mean"
	}
	if o.MaxHistory == 0 {
		o.MaxHistory = 50
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e := &exporter{o: o, ds: ds, ctx: ctx}
	switch o.Format {
	case "mmssl":
		return e.files, e.mmssl()
	case "mmrec":
		return e.files, e.mmrec()
	case "recbole":
		return e.files, e.recbole()
	case "pmmrec":
		return e.files, e.pmmrec()
	case "parquet":
		return e.files, e.parquet()
	}
	return nil, fmt.Errorf("export: unknown format %q (want %s)", o.Format, strings.Join(Formats(), ", "))
}

type exporter struct {
	o     Options
	ds    *store.Dataset
	ctx   context.Context
	files []string
}

func (e *exporter) out(name string) string {
	p := filepath.Join(e.o.Out, name)
	e.files = append(e.files, p)
	return p
}

// split loads the chosen split; def is the fallback made on the fly when
// the dataset has no split at all.
func (e *exporter) split(def string) (*store.Split, error) {
	name := e.o.Split
	if name == "" {
		names := e.ds.SplitNames()
		switch {
		case slices.Contains(names, "given"):
			name = "given"
		case slices.Contains(names, def):
			name = def
		case len(names) == 1:
			name = names[0]
		default:
			return nil, fmt.Errorf("export: dataset %s has splits %v; choose one with --split", e.ds.Dir, names)
		}
	}
	if _, ok := e.ds.Manifest.Splits[name]; !ok {
		return nil, fmt.Errorf("export: dataset %s has no split %q (has %v; make it with `mmpipe split`)", e.ds.Dir, name, e.ds.SplitNames())
	}
	return store.ReadSplit(e.ctx, store.SplitPath(e.ds.Dir, name))
}

// features opens the selected feature files.
func (e *exporter) features() ([]*store.FeatureMatrix, error) {
	names := e.o.Features
	if len(names) == 0 {
		all, err := e.ds.FeatureFiles()
		if err != nil {
			return nil, err
		}
		for _, n := range all {
			if !strings.HasSuffix(n, ".tokens.arrow") {
				names = append(names, n)
			}
		}
	}
	var out []*store.FeatureMatrix
	seen := map[string]string{}
	for _, n := range names {
		ff, err := store.OpenFeatures(e.ds.Path(store.FeaturesDir, n))
		if err != nil {
			return nil, err
		}
		m := ff.Matrix()
		ff.Close()
		if m.Meta.IDMapSHA256 != "" && m.Meta.IDMapSHA256 != e.ds.Manifest.IDMapSHA256 {
			return nil, fmt.Errorf("export: feature file %s was built for another id map (%s, dataset has %s)", n, m.Meta.IDMapSHA256, e.ds.Manifest.IDMapSHA256)
		}
		if m.Rows != e.ds.Manifest.Items {
			return nil, fmt.Errorf("export: feature file %s has %d rows, dataset has %d items", n, m.Rows, e.ds.Manifest.Items)
		}
		if prev, ok := seen[m.Meta.Modality]; ok {
			return nil, fmt.Errorf("export: feature files %s and %s are both modality %q: choose one with --features", prev, n, m.Meta.Modality)
		}
		seen[m.Meta.Modality] = n
		out = append(out, m)
	}
	return out, nil
}

// filled returns a dense copy of a pooled feature matrix with missing rows
// filled by the column mean of the present rows, or zeros.
func filled(m *store.FeatureMatrix, fill string) []float32 {
	w := m.Dim
	if m.Tokens > 0 {
		w *= m.Tokens
	}
	data := slices.Clone(m.Data)
	if m.Valid == nil || fill == "zero" {
		for r := range m.Rows {
			if m.Valid != nil && !m.Valid[r] {
				clear(data[r*w : (r+1)*w])
			}
		}
		return data
	}
	mean := make([]float64, w)
	n := 0
	for r := range m.Rows {
		if m.Valid[r] {
			n++
			for k, v := range data[r*w : (r+1)*w] {
				mean[k] += float64(v)
			}
		}
	}
	for r := range m.Rows {
		if !m.Valid[r] {
			for k := range w {
				if n > 0 {
					data[r*w+k] = float32(mean[k] / float64(n))
				} else {
					data[r*w+k] = 0
				}
			}
		}
	}
	return data
}

// writeUserLists writes {"user": [items]} for one part, users in index
// order, items in the split's (chronological) order; users without items
// in the part are left out, as MMSSL's loader expects.
func writeUserLists(path string, s *store.Split, part int8) error {
	af, err := store.OpenAtomicFile(path)
	if err != nil {
		return err
	}
	defer af.Abort()
	w := bufio.NewWriterSize(af, 1<<20)
	w.WriteByte('{')
	first := true
	for k := 0; k < s.Len(); {
		u := s.User[k]
		e := k
		var items []int32
		for e < s.Len() && s.User[e] == u {
			if s.Part[e] == part {
				items = append(items, s.Item[e])
			}
			e++
		}
		if len(items) > 0 {
			if !first {
				w.WriteString(", ")
			}
			first = false
			fmt.Fprintf(w, "%q: [", strconv.Itoa(int(u)))
			for j, it := range items {
				if j > 0 {
					w.WriteString(", ")
				}
				w.WriteString(strconv.Itoa(int(it)))
			}
			w.WriteByte(']')
		}
		k = e
	}
	w.WriteString("}\n")
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return af.Commit()
}

func (e *exporter) npyFeatures() error {
	feats, err := e.features()
	if err != nil {
		return err
	}
	for _, m := range feats {
		if m.Tokens > 0 {
			continue
		}
		p := e.out(m.Meta.Modality + "_feat.npy")
		if err := store.WriteNPY(p, []int{m.Rows, m.Dim}, filled(m, e.o.Fill)); err != nil {
			return err
		}
	}
	return nil
}

func (e *exporter) mmssl() error {
	s, err := e.split("random")
	if err != nil {
		return err
	}
	for part, name := range []string{"train.json", "val.json", "test.json"} {
		if err := writeUserLists(e.out(name), s, int8(part)); err != nil {
			return err
		}
	}
	items, err := store.ReadItems(e.ctx, e.ds.Path(store.ItemsFile))
	if err != nil {
		return err
	}
	users, err := store.ReadUsers(e.ctx, e.ds.Path(store.UsersFile))
	if err != nil {
		return err
	}
	im := make(map[string]int32, len(items))
	for _, it := range items {
		im[it.ID] = it.Idx
	}
	if err := store.WriteJSONAtomic(e.out("item2id.json"), im); err != nil {
		return err
	}
	um := make(map[string]int32, len(users))
	for _, u := range users {
		um[u.ID] = u.Idx
	}
	if err := store.WriteJSONAtomic(e.out("user2id.json"), um); err != nil {
		return err
	}
	return e.npyFeatures()
}

func (e *exporter) mmrec() error {
	s, err := e.split("random")
	if err != nil {
		return err
	}
	af, err := store.OpenAtomicFile(e.out(e.o.Name + ".inter"))
	if err != nil {
		return err
	}
	defer af.Abort()
	w := bufio.NewWriterSize(af, 1<<20)
	w.WriteString("userID\titemID\trating\ttimestamp\tx_label\n")
	var buf []byte
	for k := range s.Len() {
		buf = strconv.AppendInt(buf[:0], int64(s.User[k]), 10)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(s.Item[k]), 10)
		buf = append(buf, '\t')
		if r := s.Rating[k]; !math.IsNaN(float64(r)) {
			buf = strconv.AppendFloat(buf, float64(r), 'g', -1, 32)
		} else {
			buf = append(buf, '1')
		}
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, s.Timestamp[k], 10)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(s.Part[k]), 10)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export mmrec: %w", err)
	}
	if err := af.Commit(); err != nil {
		return err
	}
	return e.npyFeatures()
}

// sequences returns each user's chronological items with their parts.
func sequences(s *store.Split) (users []int32, seqs [][]int32, parts [][]int8) {
	order := prep.ChronoOrder(&s.Interactions, nil)
	for k := 0; k < len(order); {
		u := s.User[order[k]]
		var seq []int32
		var pt []int8
		for k < len(order) && s.User[order[k]] == u {
			seq = append(seq, s.Item[order[k]])
			pt = append(pt, s.Part[order[k]])
			k++
		}
		users, seqs, parts = append(users, u), append(seqs, seq), append(parts, pt)
	}
	return
}

func (e *exporter) recbole() error {
	s, err := e.split("loo")
	if err != nil {
		return err
	}
	users, seqs, parts := sequences(s)
	header := []store.AtomicField{{Name: "user_id", Type: "token"}, {Name: "item_id_list", Type: "token_seq"}, {Name: "item_id", Type: "token"}}
	var ws [3]*store.AtomicWriter
	for p, suffix := range []string{".train.inter", ".valid.inter", ".test.inter"} {
		w, err := store.CreateAtomic(e.out(e.o.Name+suffix), header)
		if err != nil {
			return err
		}
		defer w.Abort()
		ws[p] = w
	}
	hist := func(seq []int32, end int) string {
		start := max(0, end-e.o.MaxHistory)
		var b strings.Builder
		for j := start; j < end; j++ {
			if j > start {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(int(seq[j])))
		}
		return b.String()
	}
	for k, u := range users {
		seq, pt := seqs[k], parts[k]
		us := strconv.Itoa(int(u))
		// Train rows: every prefix of the train part, longest first, as
		// UniSRec writes them.
		var train []int
		for j, p := range pt {
			if p == store.PartTrain {
				train = append(train, j)
			}
		}
		for t := len(train) - 1; t >= 1; t-- {
			j := train[t]
			if err := ws[0].Write(us, hist(seq, j), strconv.Itoa(int(seq[j]))); err != nil {
				return err
			}
		}
		for j, p := range pt {
			if p == store.PartValid || p == store.PartTest {
				if err := ws[p].Write(us, hist(seq, j), strconv.Itoa(int(seq[j]))); err != nil {
					return err
				}
			}
		}
	}
	for _, w := range ws {
		if err := w.Commit(); err != nil {
			return err
		}
	}
	items, err := store.ReadItems(e.ctx, e.ds.Path(store.ItemsFile))
	if err != nil {
		return err
	}
	usersT, err := store.ReadUsers(e.ctx, e.ds.Path(store.UsersFile))
	if err != nil {
		return err
	}
	if err := writeIndex(e.out(e.o.Name+".item2index"), len(items), func(i int) string { return items[i].ID }); err != nil {
		return err
	}
	if err := writeIndex(e.out(e.o.Name+".user2index"), len(usersT), func(i int) string { return usersT[i].ID }); err != nil {
		return err
	}
	tw, err := store.CreateAtomic(e.out(e.o.Name+".text"), []store.AtomicField{{Name: "item_id", Type: "token"}, {Name: "text", Type: "token_seq"}})
	if err != nil {
		return err
	}
	defer tw.Abort()
	for _, it := range items {
		if err := tw.Write(store.CleanField(it.ID), store.CleanField(ItemText(&it))); err != nil {
			return err
		}
	}
	if err := tw.Commit(); err != nil {
		return err
	}
	feats, err := e.features()
	if err != nil {
		return err
	}
	names := map[string]string{"text": ".feat1CLS", "text_worddrop": ".feat2CLS", "image": ".feat3CLS"}
	for _, m := range feats {
		suffix, ok := names[m.Meta.Modality]
		if !ok || m.Tokens > 0 {
			continue
		}
		// MISSRec marks a missing input with an all-zero row.
		if err := store.WriteFeatCLS(e.out(e.o.Name+suffix), filled(m, "zero")); err != nil {
			return err
		}
	}
	return nil
}

// ItemText is the UniSRec item text: "title. categories. brand." (with
// the description or free text when there is no title).
func ItemText(it *store.Item) string {
	var parts []string
	if it.Title != "" {
		parts = append(parts, it.Title)
	}
	if len(it.Categories) > 0 {
		parts = append(parts, strings.Join(it.Categories, " "))
	}
	if it.Brand != "" {
		parts = append(parts, it.Brand)
	}
	if len(parts) == 0 {
		if it.Text != "" {
			return it.Text
		}
		return it.Description
	}
	return strings.Join(parts, ". ") + "."
}

func writeIndex(path string, n int, id func(int) string) error {
	af, err := store.OpenAtomicFile(path)
	if err != nil {
		return err
	}
	defer af.Abort()
	w := bufio.NewWriter(af)
	for i := range n {
		fmt.Fprintf(w, "%s\t%d\n", store.CleanField(id(i)), i)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return af.Commit()
}

// errNoImages is returned by the PMMRec export's image step when the
// dataset has no image store.
var errNoImages = errors.New("no images.lmdb in the dataset (run `mmpipe crawl` first)")

func (e *exporter) pmmrec() error {
	s, err := e.split("loo")
	if err != nil {
		return err
	}
	items, err := store.ReadItems(e.ctx, e.ds.Path(store.ItemsFile))
	if err != nil {
		return err
	}
	usersT, err := store.ReadUsers(e.ctx, e.ds.Path(store.UsersFile))
	if err != nil {
		return err
	}
	users, seqs, _ := sequences(s)
	af, err := store.OpenAtomicFile(e.out(e.o.Name + "_users.tsv"))
	if err != nil {
		return err
	}
	defer af.Abort()
	w := bufio.NewWriterSize(af, 1<<20)
	used := make([]bool, len(items))
	for k, u := range users {
		w.WriteString(store.CleanField(usersT[u].ID))
		w.WriteByte('\t')
		for j, it := range seqs[k] {
			if j > 0 {
				w.WriteByte(' ')
			}
			used[it] = true
			w.WriteString(strings.ReplaceAll(store.CleanField(items[it].ID), " ", "_"))
		}
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export pmmrec: %w", err)
	}
	if err := af.Commit(); err != nil {
		return err
	}
	tf, err := store.OpenAtomicFile(e.out(e.o.Name + "_items_texts.tsv"))
	if err != nil {
		return err
	}
	defer tf.Abort()
	tw := bufio.NewWriterSize(tf, 1<<20)
	for i, it := range items {
		if !used[i] {
			continue
		}
		title := it.Title
		if title == "" {
			title = ItemText(&it)
		}
		fmt.Fprintf(tw, "%s\t%s\n", strings.ReplaceAll(store.CleanField(it.ID), " ", "_"), store.CleanField(title))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("export pmmrec: %w", err)
	}
	if err := tf.Commit(); err != nil {
		return err
	}
	return e.pmmrecImages(items, used)
}

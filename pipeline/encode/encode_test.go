package encode

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/export"
	"github.com/mmpipe/mmpipe/pipeline/synth"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// fixture is a small ingested Amazon 2018 dataset with an images.lmdb.
type fixture struct {
	dir      string
	info     *synth.DemoInfo
	items    []store.Item
	images   map[string][]byte // what images.lmdb holds, by raw id
	corrupt  string            // id whose stored image is not decodable
	withheld []string          // ids with an image file but nothing in the store
}

// newFixture generates the synth demo (60 items), ingests it and builds
// images.lmdb from its image folder, leaving out every 7th image and
// storing garbage for one item.
func newFixture(t *testing.T, seed uint64) *fixture {
	t.Helper()
	ctx := context.Background()
	raw := t.TempDir()
	info, err := synth.Amazon2018Demo(ctx, raw, synth.DemoConfig{Seed: seed, Users: 50, Items: 60, Categories: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ds")
	if _, err := dataset.Ingest(ctx, dataset.Options{Format: "amazon2018", Inputs: []string{info.ReviewsFile, info.MetaFile},
		Out: dir, Splits: dataset.SplitOptions{Names: []string{"random"}, Seed: 1}, Version: "test", MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	items, err := store.ReadItems(ctx, filepath.Join(dir, store.ItemsFile))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, info: info, items: items, images: map[string][]byte{}}
	st, err := imagestore.Open(filepath.Join(dir, store.ImagesDir), imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &imagestore.Batch{}
	for k, p := range info.ImageFiles {
		id := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		if k%7 == 3 {
			f.withheld = append(f.withheld, id)
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if f.corrupt == "" && k%7 == 5 {
			f.corrupt = id
			data = []byte("\xff\xd8\xff not really a jpeg")
		}
		b.PutImage(id, data, imagestore.LedgerEntry{Source: p})
		f.images[id] = data
	}
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func factory(name string) extract.Factory { return builtin.Factories()[name] }

func run(t *testing.T, o Options) *Result {
	t.Helper()
	if o.Factory == nil {
		o.Factory = factory(o.Encoder)
	}
	if o.Version == "" {
		o.Version = "test"
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func openFeatures(t *testing.T, path string) *store.FeatureFile {
	t.Helper()
	ff, err := store.OpenFeatures(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ff.Close() })
	return ff
}

func TestEncodeTextEndToEnd(t *testing.T) {
	f := newFixture(t, 1)
	opts := extract.Options{Dim: 48, TokenOutput: true, MaxTokens: 8}
	res := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: opts, BatchSize: 5, Workers: 3})
	if res.Skipped || res.File != "features/text.text-hash.arrow" || res.TokensFile != "features/text.text-hash.tokens.arrow" {
		t.Fatalf("result %+v", res)
	}

	// The reference: the same encoder fitted on the same texts.
	ref, _ := builtin.NewTextHash(opts)
	var corpus []extract.Input
	for r := range f.items {
		if s := export.ItemText(&f.items[r]); s != "" {
			corpus = append(corpus, extract.Input{Text: s})
		}
	}
	if err := ref.Fit(context.Background(), slices.Values(corpus)); err != nil {
		t.Fatal(err)
	}
	ff := openFeatures(t, filepath.Join(f.dir, res.File))
	tf := openFeatures(t, filepath.Join(f.dir, res.TokensFile))
	if ff.Rows() != len(f.items) || ff.Dim() != 48 || tf.Rows() != len(f.items) || tf.Tokens() != 8 || tf.Dim() != 48 {
		t.Fatalf("shapes: %d×%d, tokens %d×%d×%d", ff.Rows(), ff.Dim(), tf.Rows(), tf.Tokens(), tf.Dim())
	}
	noText := 0
	for r := range f.items {
		text := export.ItemText(&f.items[r])
		if text == "" {
			noText++
			if ff.Valid(r) || tf.Valid(r) || tf.NTokens(r) != 0 {
				t.Errorf("item %d (%s) has no text but a vector", r, f.items[r].ID)
			}
			continue
		}
		if !ff.Valid(r) {
			t.Fatalf("item %d (%s) has text but no vector", r, f.items[r].ID)
		}
		p, err := ref.Prepare(extract.Input{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		var out extract.Output
		if err := ref.Run(context.Background(), []any{p}, &out); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ff.Vector(r), out.Pooled) {
			t.Fatalf("row %d is not item %d's vector", r, r)
		}
		if !slices.Equal(tf.Vector(r), out.TokenStates) || tf.NTokens(r) != int(out.NTokens[0]) {
			t.Fatalf("token row %d is not item %d's tokens", r, r)
		}
	}
	if noText == 0 || noText != len(f.info.ItemsWithoutMeta) {
		t.Errorf("%d items without text, want the %d without metadata", noText, len(f.info.ItemsWithoutMeta))
	}
	if ff.Present() != len(f.items)-noText || res.Present != ff.Present() || res.Encoded != ff.Present() {
		t.Errorf("present %d, result %+v", ff.Present(), res)
	}

	// Provenance.
	ds, _ := store.OpenDataset(f.dir)
	m := ff.Meta()
	want := ref.Info().Meta
	if m.Modality != "text" || m.Encoder != "text-hash" || m.ModelSHA256 != want.ModelSHA256 || m.Preprocess != want.Preprocess ||
		m.Pooling != want.Pooling || !m.Normalized || m.IDMapSHA256 != ds.Manifest.IDMapSHA256 || m.Version != "test" ||
		len(m.Extra[MetaTextSHA256]) != 64 || m.Extra[MetaInputSource] == "" {
		t.Errorf("metadata %+v\nwant model %s", m, want.ModelSHA256)
	}
	if tm := tf.Meta(); tm.ModelSHA256 != m.ModelSHA256 || tm.IDMapSHA256 != m.IDMapSHA256 {
		t.Errorf("token file metadata %+v", tm)
	}
	// The manifest lists both files and their hashes.
	if !slices.Contains(ds.Manifest.Features, "text.text-hash.arrow") || !slices.Contains(ds.Manifest.Features, "text.text-hash.tokens.arrow") {
		t.Errorf("manifest features %v", ds.Manifest.Features)
	}
	sum, _, _ := store.FileSHA256(filepath.Join(f.dir, res.File))
	if ds.Manifest.Outputs[res.File].SHA256 != sum {
		t.Errorf("manifest output hash %v, file %s", ds.Manifest.Outputs[res.File], sum)
	}
	s, err := dataset.Summarize(context.Background(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Modalities) != 2 || s.Modalities[0].Name != "text" || s.Modalities[0].Present != ff.Present() {
		t.Errorf("summary modalities %+v", s.Modalities)
	}

	// A re-run is skipped and leaves the files alone; --force redoes them.
	st1, _ := os.Stat(filepath.Join(f.dir, res.File))
	man1, _ := os.Stat(filepath.Join(f.dir, store.ManifestFile))
	again := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: opts})
	st2, _ := os.Stat(filepath.Join(f.dir, res.File))
	man2, _ := os.Stat(filepath.Join(f.dir, store.ManifestFile))
	if !again.Skipped || again.Encoded != 0 || again.Present != res.Present || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("re-run not skipped: %+v", again)
	}
	if !man2.ModTime().Equal(man1.ModTime()) {
		t.Error("a skipped run rewrote the manifest")
	}
	forced := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: opts, Force: true})
	if forced.Skipped || forced.Encoded != res.Encoded || forced.Reused != 0 {
		t.Errorf("forced run: %+v", forced)
	}
	// Another dimension is another model: everything is re-encoded.
	other := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: extract.Options{Dim: 40}})
	if other.Skipped || other.Reused != 0 || other.Encoded != res.Encoded {
		t.Errorf("run with another dim: %+v", other)
	}
}

func TestEncodeImagesIncremental(t *testing.T) {
	f := newFixture(t, 2)
	opts := extract.Options{Dim: 32}
	res := run(t, Options{Dataset: f.dir, Encoder: builtin.ImageStatsName, Opts: opts, BatchSize: 4, Workers: 4})
	if res.File != "features/image.image-stats.arrow" || res.Failed != 1 || len(res.FailedItems) != 1 ||
		!strings.Contains(res.FailedItems[0], f.corrupt) || res.WithInput != len(f.images) || res.Encoded != len(f.images)-1 {
		t.Fatalf("result %+v (corrupt %s, %d stored images)", res, f.corrupt, len(f.images))
	}
	ref, _ := builtin.NewImageStats(opts)
	check := func(path string) {
		t.Helper()
		ff := openFeatures(t, path)
		for r, it := range f.items {
			img, stored := f.images[it.ID]
			if !stored || it.ID == f.corrupt {
				if ff.Valid(r) {
					t.Errorf("item %d (%s) has no decodable image but a vector", r, it.ID)
				}
				continue
			}
			if !ff.Valid(r) {
				t.Fatalf("item %d (%s) has an image but no vector", r, it.ID)
			}
			p, err := ref.Prepare(extract.Input{Image: img})
			if err != nil {
				t.Fatal(err)
			}
			var out extract.Output
			ref.Run(context.Background(), []any{p}, &out)
			if !slices.Equal(ff.Vector(r), out.Pooled) {
				t.Fatalf("row %d is not item %d's vector", r, r)
			}
		}
	}
	path := filepath.Join(f.dir, res.File)
	check(path)

	// Add a withheld image to the store: only it is encoded (and the
	// corrupt one is tried again).
	st, err := imagestore.Open(filepath.Join(f.dir, store.ImagesDir), imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := f.withheld[0]
	data, err := os.ReadFile(filepath.Join(f.info.ImageDir, id+".jpg"))
	if err != nil {
		data, err = os.ReadFile(filepath.Join(f.info.ImageDir, id+".png"))
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &imagestore.Batch{}
	b.PutImage(id, data, imagestore.LedgerEntry{})
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	st.Close()
	f.images[id] = data
	inc := run(t, Options{Dataset: f.dir, Encoder: builtin.ImageStatsName, Opts: opts})
	if inc.Skipped || inc.Encoded != 1 || inc.Reused != res.Encoded || inc.Failed != 1 || inc.Present != res.Present+1 {
		t.Errorf("incremental run: %+v (first run %+v)", inc, res)
	}
	check(path)

	// The folder source gives the same vectors (all images there, so the
	// withheld ones are encoded too; the corrupt one is fine there).
	fold := run(t, Options{Dataset: f.dir, Encoder: builtin.ImageStatsName, Opts: opts, ImagesDir: f.info.ImageDir, Force: true})
	if fold.Failed != 0 || fold.WithInput != len(f.info.ImageFiles) || fold.Source != "folder "+f.info.ImageDir {
		t.Errorf("folder run: %+v", fold)
	}
	ff := openFeatures(t, path)
	for r, it := range f.items {
		want := slices.Contains(f.info.ItemsWithoutImage, it.ID) || slices.Contains(f.info.ItemsWithoutMeta, it.ID)
		if ff.Valid(r) == want {
			t.Errorf("folder run: item %d (%s) valid %v", r, it.ID, ff.Valid(r))
		}
	}
}

func TestEncodeShardAndErrors(t *testing.T) {
	f := newFixture(t, 3)
	res := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Shard: Shard{I: 1, N: 2}})
	if res.File != "features/parts/text.text-hash.1-of-2.arrow" {
		t.Fatalf("shard file %s", res.File)
	}
	ff := openFeatures(t, filepath.Join(f.dir, res.File))
	for r := range f.items {
		if ff.Valid(r) && r%2 != 1 {
			t.Errorf("shard 1/2 encoded item %d", r)
		}
	}
	if ff.Meta().Extra[MetaShard] != "1/2" {
		t.Errorf("shard metadata %v", ff.Meta().Extra)
	}
	ds, _ := store.OpenDataset(f.dir)
	if len(ds.Manifest.Features) != 0 {
		t.Errorf("a shard part was listed as a feature: %v", ds.Manifest.Features)
	}
	if _, err := ParseShard("2/2"); !errors.Is(err, ErrBadInput) {
		t.Errorf("shard 2/2: %v", err)
	}
	if s, err := ParseShard("0/3"); err != nil || s != (Shard{0, 3}) {
		t.Errorf("shard 0/3: %v %v", s, err)
	}

	// No image store and no folder: a bad-input error that says what to do.
	os.RemoveAll(filepath.Join(f.dir, store.ImagesDir))
	_, err := Run(context.Background(), Options{Dataset: f.dir, Encoder: builtin.ImageStatsName, Factory: factory(builtin.ImageStatsName)})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "crawl") {
		t.Errorf("no images: %v", err)
	}
	_, err = Run(context.Background(), Options{Dataset: t.TempDir(), Encoder: "x", Factory: factory(builtin.TextHashName)})
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("not a dataset: %v", err)
	}
	_, err = Run(context.Background(), Options{Dataset: f.dir, Encoder: builtin.TextHashName, Factory: factory(builtin.TextHashName),
		Opts: extract.Options{Device: "cuda"}})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "CPU") {
		t.Errorf("cuda: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Factory: factory(builtin.TextHashName), Force: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCheckFeatureFile(t *testing.T) {
	a := newFixture(t, 4)
	b := newFixture(t, 5)
	res := run(t, Options{Dataset: a.dir, Encoder: builtin.TextHashName})
	path := filepath.Join(a.dir, res.File)
	if err := CheckFeatureFile(a.dir, path); err != nil {
		t.Errorf("own file refused: %v", err)
	}
	err := CheckFeatureFile(b.dir, path)
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "another dataset's id map") {
		t.Errorf("file of dataset a accepted for dataset b: %v", err)
	}
	// A file with the right id map but the wrong row count, and one
	// without an id map.
	ds, _ := store.OpenDataset(a.dir)
	bad := filepath.Join(t.TempDir(), "bad.arrow")
	store.WriteFeatures(bad, &store.FeatureMatrix{Meta: store.FeatureMeta{IDMapSHA256: ds.Manifest.IDMapSHA256}, Rows: 3, Dim: 2, Data: make([]float32, 6)})
	if err := CheckFeatureFile(a.dir, bad); err == nil || !strings.Contains(err.Error(), "3 rows") {
		t.Errorf("short file: %v", err)
	}
	store.WriteFeatures(bad, &store.FeatureMatrix{Rows: ds.Manifest.Items, Dim: 1, Data: make([]float32, ds.Manifest.Items)})
	if err := CheckFeatureFile(a.dir, bad); err == nil || !strings.Contains(err.Error(), "no idmap_sha256") {
		t.Errorf("file without id map: %v", err)
	}
	// An existing file built for another id map is not reused.
	if err := os.Rename(path, filepath.Join(b.dir, res.File)); err != nil {
		os.MkdirAll(filepath.Join(b.dir, "features"), 0o755)
		if err := os.Rename(path, filepath.Join(b.dir, res.File)); err != nil {
			t.Fatal(err)
		}
	}
	rb := run(t, Options{Dataset: b.dir, Encoder: builtin.TextHashName})
	if rb.Skipped || rb.Reused != 0 {
		t.Errorf("a file of another dataset was reused: %+v", rb)
	}
	if err := CheckFeatureFile(b.dir, filepath.Join(b.dir, rb.File)); err != nil {
		t.Errorf("re-encoded file refused: %v", err)
	}
}

// slowEncoder prepares items in random time and encodes item r as the
// vector (r, r+0.5): it checks that rows land where they belong whatever
// the order in which workers finish.
type slowEncoder struct {
	mu   sync.Mutex
	r    *rand.Rand
	runs int
}

func (e *slowEncoder) Info() extract.Info {
	return extract.Info{Name: "slow", Modality: "text", Dim: 2, Meta: store.FeatureMeta{ModelSHA256: "x"}}
}

func (e *slowEncoder) Prepare(in extract.Input) (any, error) {
	e.mu.Lock()
	d := time.Duration(e.r.IntN(300)) * time.Microsecond
	e.mu.Unlock()
	time.Sleep(d)
	if in.Item%11 == 5 {
		return nil, errors.New("refused")
	}
	return in.Item, nil
}

func (e *slowEncoder) Run(ctx context.Context, batch []any, out *extract.Output) error {
	e.mu.Lock()
	e.runs++
	e.mu.Unlock()
	out.Pooled = out.Pooled[:0]
	for _, v := range batch {
		r := float32(v.(int32))
		out.Pooled = append(out.Pooled, r, r+0.5)
	}
	return nil
}

func (e *slowEncoder) Close() error { return nil }

func TestPipelineOrder(t *testing.T) {
	f := newFixture(t, 6)
	enc := &slowEncoder{r: rand.New(rand.NewPCG(1, 1))}
	res, err := Run(context.Background(), Options{Dataset: f.dir, Encoder: "slow", BatchSize: 3, Workers: 8,
		Factory: func(extract.Options) (extract.Encoder, error) { return enc, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ff := openFeatures(t, filepath.Join(f.dir, res.File))
	failed := 0
	for r := range f.items {
		has := export.ItemText(&f.items[r]) != ""
		if has && r%11 == 5 {
			failed++
			has = false
		}
		if ff.Valid(r) != has {
			t.Fatalf("row %d valid %v, want %v", r, ff.Valid(r), has)
		}
		if has && !slices.Equal(ff.Vector(r), []float32{float32(r), float32(r) + 0.5}) {
			t.Fatalf("row %d holds %v", r, ff.Vector(r))
		}
	}
	if res.Failed != failed || enc.runs != (res.Encoded+2)/3 {
		t.Errorf("result %+v, %d runs", res, enc.runs)
	}
}

// addWithheld stores the fixture's first withheld image in its LMDB store.
func addWithheld(t *testing.T, f *fixture) {
	t.Helper()
	st, err := imagestore.Open(filepath.Join(f.dir, store.ImagesDir), imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id := f.withheld[0]
	data, err := os.ReadFile(filepath.Join(f.info.ImageDir, id+".jpg"))
	if err != nil {
		data, err = os.ReadFile(filepath.Join(f.info.ImageDir, id+".png"))
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &imagestore.Batch{}
	b.PutImage(id, data, imagestore.LedgerEntry{})
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
}

// TestEncodeTokensInScratch: token states kept in a file-backed scratch
// array (forced with ScratchBytes -1), through a first run and an
// incremental one that reuses the old rows, give the same token file as
// one run on the heap, and leave no scratch file behind.
func TestEncodeTokensInScratch(t *testing.T) {
	opts := extract.Options{Dim: 24, TokenOutput: true}
	a := newFixture(t, 2)
	first := run(t, Options{Dataset: a.dir, Encoder: builtin.ImageStatsName, Opts: opts, ScratchBytes: -1, BatchSize: 3})
	addWithheld(t, a)
	inc := run(t, Options{Dataset: a.dir, Encoder: builtin.ImageStatsName, Opts: opts, ScratchBytes: -1})
	if inc.Encoded != 1 || inc.Reused != first.Encoded {
		t.Fatalf("incremental run %+v after %+v", inc, first)
	}
	b := newFixture(t, 2)
	addWithheld(t, b)
	heap := run(t, Options{Dataset: b.dir, Encoder: builtin.ImageStatsName, Opts: opts})
	ta, tb := openFeatures(t, filepath.Join(a.dir, inc.TokensFile)), openFeatures(t, filepath.Join(b.dir, heap.TokensFile))
	if ta.Rows() != tb.Rows() || ta.Tokens() != tb.Tokens() || ta.Tokens() == 0 || ta.Present() != tb.Present() {
		t.Fatalf("scratch file %d rows × %d tokens (%d present), heap %d × %d (%d)", ta.Rows(), ta.Tokens(), ta.Present(), tb.Rows(), tb.Tokens(), tb.Present())
	}
	for r := range ta.Rows() {
		if ta.Valid(r) != tb.Valid(r) || ta.NTokens(r) != tb.NTokens(r) || !slices.Equal(ta.Vector(r), tb.Vector(r)) {
			t.Fatalf("row %d differs between the scratch and the heap runs", r)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(a.dir, store.FeaturesDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".scratch") {
			t.Errorf("scratch file %s left behind", e.Name())
		}
	}
}

// TestEncodeWordDrop: --word-drop writes modality text_worddrop, each
// row is the (full-text-fitted) encoder applied to the item's text with
// words dropped, the drop is a fixed function of the item, and an image
// encoder or a bad probability is refused.
func TestEncodeWordDrop(t *testing.T) {
	f := newFixture(t, 3)
	opts := extract.Options{Dim: 32}
	full := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: opts})
	wd := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: opts, WordDrop: 0.5})
	if wd.File != "features/text_worddrop.text-hash.arrow" || wd.Modality != WordDropModality || wd.Encoded != full.Encoded {
		t.Fatalf("word-drop result %+v (full %+v)", wd, full)
	}
	ff, wf := openFeatures(t, filepath.Join(f.dir, full.File)), openFeatures(t, filepath.Join(f.dir, wd.File))
	if m := wf.Meta(); m.Modality != WordDropModality || m.Extra[MetaWordDrop] != "0.5" || m.Extra[MetaTextSHA256] == ff.Meta().Extra[MetaTextSHA256] {
		t.Errorf("metadata %+v", m)
	}
	// The reference: text-hash fitted on the full texts, applied to the
	// dropped ones.
	ref, _ := builtin.NewTextHash(opts)
	src := newTextSource(f.items)
	var corpus []extract.Input
	for r := range f.items {
		if src.has(r) {
			corpus = append(corpus, extract.Input{Text: src.texts[r]})
		}
	}
	if err := ref.Fit(context.Background(), slices.Values(corpus)); err != nil {
		t.Fatal(err)
	}
	src.dropWords(0.5)
	differ, shorter := 0, 0
	for r := range f.items {
		if !src.has(r) {
			continue
		}
		if n, m := len(strings.Fields(src.texts[r])), len(strings.Fields(export.ItemText(&f.items[r]))); n < 1 || n > m {
			t.Fatalf("item %d keeps %d of %d words", r, n, m)
		} else if n < m {
			shorter++
		}
		p, _ := ref.Prepare(extract.Input{Text: src.texts[r]})
		var out extract.Output
		if err := ref.Run(context.Background(), []any{p}, &out); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(wf.Vector(r), out.Pooled) {
			t.Fatalf("row %d is not the encoding of item %d's word-dropped text", r, r)
		}
		if !slices.Equal(wf.Vector(r), ff.Vector(r)) {
			differ++
		}
	}
	if shorter < len(corpus)/2 || differ < shorter/2 {
		t.Errorf("%d of %d texts lost words, %d vectors differ from the full-text ones", shorter, len(corpus), differ)
	}
	// Deterministic: a forced re-run writes the same vectors.
	again := run(t, Options{Dataset: f.dir, Encoder: builtin.TextHashName, Opts: opts, WordDrop: 0.5, Force: true})
	af := openFeatures(t, filepath.Join(f.dir, again.File))
	for r := range f.items {
		if !slices.Equal(af.Vector(r), wf.Vector(r)) {
			t.Fatalf("row %d changed between two word-drop runs", r)
		}
	}
	for _, c := range []struct {
		enc string
		p   float64
	}{{builtin.ImageStatsName, 0.5}, {builtin.TextHashName, 1}, {builtin.TextHashName, -0.1}} {
		o := Options{Dataset: f.dir, Encoder: c.enc, Factory: factory(c.enc), Opts: opts, WordDrop: c.p, Version: "test"}
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--word-drop") {
			t.Errorf("%s with word drop %v: error %v", c.enc, c.p, err)
		}
	}
}

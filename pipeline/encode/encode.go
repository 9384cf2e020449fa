// Package encode runs the encode stage: it turns every item of a dataset
// that has the input (its text, or its image from the dataset's
// images.lmdb or a folder) into a vector with an extract.Encoder and writes
// the item-aligned feature file features/<modality>.<encoder>.arrow (plus
// features/<modality>.<encoder>.tokens.arrow for token outputs), with
// provenance, then records it in the dataset manifest.
//
// The runtime is a pipeline: a pool of workers (GOMAXPROCS by default)
// reads inputs and runs Encoder.Prepare (decoding, resizing, tokenising),
// one goroutine assembles batches in item order while the previous batch
// runs, one goroutine calls Encoder.Run batch after batch, and one writer
// copies the outputs into the feature matrices, which are written
// atomically at the end.
//
// Re-runs are incremental: when the existing file was written by the same
// encoder, model file (model_sha256), preprocessing and id map (and, for
// text, the same item texts), its vectors are kept and only items that
// have an input but no vector yet are encoded (images crawled since the
// last run, or items that failed before); with nothing to encode the stage
// is skipped. Force re-encodes everything.
//
// The output matrices are held in memory until they are written: rows ×
// dim float32 values, and rows × tokens × token dim for token outputs (50 ×
// 768 floats = 150 KiB per item, so token outputs suit datasets of up to a
// few hundred thousand items).
package encode

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/store"
)

// ErrBadInput matches (errors.Is) the errors caused by the user's input: no
// such dataset, no images, an encoder that cannot be built or cannot give
// what was asked, a feature file of another dataset (exit code 2). It is
// the project-wide store.ErrBadInput.
var ErrBadInput = store.ErrBadInput

// badInput formats an error that matches ErrBadInput.
func badInput(format string, args ...any) error { return store.BadInputf(format, args...) }

// Defaults of Options.
const (
	DefaultBatchSize = 32
	DefaultProgress  = 10 * time.Second
	maxFailureLog    = 10 // failures logged one by one, the rest counted
)

// Metadata keys the stage adds to the feature files (FeatureMeta.Extra).
const (
	MetaTextSHA256  = "text_sha256"  // sha256 of the item texts (text modality)
	MetaInputSource = "input_source" // where the inputs came from
	MetaWordDrop    = "word_drop"    // word-drop probability of a text_worddrop file
	MetaShard       = "shard"        // "i/n" for a shard part
)

// Shard selects the items with item_idx % N == I (N = 0: all items).
type Shard struct{ I, N int }

// ParseShard parses "i/n" (0 <= i < n); "" is no sharding.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n <= 0 || i < 0 || i >= n {
		return Shard{}, badInput("shard %q: want i/n with 0 <= i < n", s)
	}
	return Shard{I: i, N: n}, nil
}

func (s Shard) has(r int) bool { return s.N <= 1 || r%s.N == s.I }

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.I, s.N) }

// WordDropModality is the modality of word-dropped text features
// (Options.WordDrop), the name ingest gives MISSRec's .feat2CLS.
const WordDropModality = "text_worddrop"

// Options of one encode run.
type Options struct {
	// Dataset is the dataset directory.
	Dataset string
	// Encoder is the registry name; it names the output file
	// (<modality>.<Encoder>.arrow). Empty: the encoder's Info().Name.
	Encoder string
	// Factory builds the encoder from Opts.
	Factory extract.Factory
	Opts    extract.Options
	// BatchSize is the number of items per Encoder.Run (default 32).
	BatchSize int
	// Workers run Prepare (default GOMAXPROCS).
	Workers int
	// Force re-encodes every item even when the existing file matches.
	Force bool
	// Shard encodes only the items of one shard into
	// features/parts/<modality>.<encoder>.<i>-of-<n>.arrow (rows of other
	// shards are null there); `mmpipe merge` joins the parts.
	Shard Shard
	// ImagesDir reads images from <ImagesDir>/<raw id>.<jpg|jpeg|png|webp|gif>
	// instead of <Dataset>/images.lmdb.
	ImagesDir string
	// Version is the mmpipe version written into the files.
	Version string
	// Logger receives progress (nil: discarded).
	Logger *slog.Logger
	// Progress is the interval of progress logs (default 10 s).
	Progress time.Duration
	// WordDrop, for a text encoder, encodes each item's text with every
	// word dropped with this probability (at least one word kept; the
	// draws are a fixed function of the item index, so re-runs agree) into
	// modality "text_worddrop": the word-dropped text features of MISSRec's
	// pre-training (its .feat2CLS). A fitted encoder (text-hash's IDF) is
	// fitted on the full texts, so both files share one space.
	WordDrop float64
	// ScratchBytes is the size of token states past which they are kept
	// in a file-backed scratch array instead of the heap (default 256 MiB;
	// negative: always).
	ScratchBytes int64
}

func (o Options) scratchBytes() int64 {
	switch {
	case o.ScratchBytes < 0:
		return -1
	case o.ScratchBytes == 0:
		return 256 << 20
	}
	return o.ScratchBytes
}

// Result says what the stage did.
type Result struct {
	Skipped     bool   `json:"skipped"`
	Encoder     string `json:"encoder"`
	Modality    string `json:"modality"`
	File        string `json:"file"`                  // relative to the dataset directory
	TokensFile  string `json:"tokens_file,omitempty"` // idem
	ModelSHA256 string `json:"model_sha256"`
	Source      string `json:"source"`
	Items       int    `json:"items"`      // rows of the file
	WithInput   int    `json:"with_input"` // items of the shard with an input
	Present     int    `json:"present"`    // rows with a vector after the run
	Encoded     int    `json:"encoded"`    // vectors computed by this run
	Reused      int    `json:"reused"`     // vectors kept from the existing file
	Failed      int    `json:"failed"`     // items whose input could not be encoded
	// FailedItems lists the first failures as "id: error".
	FailedItems    []string `json:"failed_items,omitempty"`
	Seconds        float64  `json:"seconds"`
	ItemsPerSecond float64  `json:"items_per_second"`
}

// FileName returns the feature file name of an encoder's output:
// <modality>.<encoder>.arrow, or <modality>.<encoder>.tokens.arrow.
func FileName(modality, encoder string, tokens bool) string {
	if tokens {
		return modality + "." + encoder + ".tokens.arrow"
	}
	return modality + "." + encoder + ".arrow"
}

// Run runs the encode stage.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Progress <= 0 {
		o.Progress = DefaultProgress
	}
	if o.Factory == nil {
		return nil, badInput("no encoder factory for %q", o.Encoder)
	}
	ds, err := store.OpenDataset(o.Dataset)
	if err != nil {
		return nil, badInput("%w", err)
	}
	items, err := store.ReadItems(ctx, ds.Path(store.ItemsFile))
	if err != nil {
		return nil, err
	}
	for r := range items {
		if int(items[r].Idx) != r {
			return nil, fmt.Errorf("encode: %s: row %d has item_idx %d: items must be stored in index order", ds.Path(store.ItemsFile), r, items[r].Idx)
		}
	}
	idmap := ds.Manifest.IDMapSHA256
	if idmap == "" {
		idmap = store.IDMapSHA256(items)
	}

	enc, err := o.Factory(o.Opts)
	if err != nil {
		return nil, badInput("encoder %s: %w", o.Encoder, err)
	}
	defer enc.Close()
	info := enc.Info()
	name := o.Encoder
	if name == "" {
		name = info.Name
	}
	if info.Dim <= 0 || (info.Modality != "text" && info.Modality != "image") {
		return nil, fmt.Errorf("encode: encoder %s reports modality %q and dim %d", name, info.Modality, info.Dim)
	}
	withTokens := o.Opts.TokenOutput
	if withTokens && (info.Tokens <= 0 || info.TokenDim <= 0) {
		return nil, badInput("encoder %s gives no token output", name)
	}

	mod := info.Modality
	if o.WordDrop != 0 {
		if info.Modality != "text" || !(o.WordDrop > 0 && o.WordDrop < 1) {
			return nil, badInput("--word-drop %v: wants a text encoder and a probability in (0, 1) (encoder %s is %s)", o.WordDrop, name, info.Modality)
		}
		mod = WordDropModality
	}
	src, textFP, err := openSource(ds, info.Modality, o.ImagesDir, items)
	if err != nil {
		return nil, err
	}
	defer src.close()
	fitSrc := src
	if o.WordDrop > 0 {
		ts := src.(*textSource)
		ts.dropWords(o.WordDrop)
		textFP = ts.fingerprint()
		fitSrc = newTextSource(items)
	}

	if f, ok := enc.(extract.Fitter); ok {
		t0 := time.Now()
		if err := f.Fit(ctx, inputs(fitSrc, len(items))); err != nil {
			return nil, fmt.Errorf("encode: %s: %w", name, err)
		}
		info = enc.Info()
		log.Info("fitted encoder on the dataset", "encoder", name, "seconds", time.Since(t0).Seconds())
	}

	meta := info.Meta
	meta.Modality, meta.Encoder = mod, name
	meta.IDMapSHA256, meta.Version = idmap, o.Version
	meta.Extra = map[string]string{MetaInputSource: src.describe()}
	if textFP != "" {
		meta.Extra[MetaTextSHA256] = textFP
	}
	if o.WordDrop > 0 {
		meta.Extra[MetaWordDrop] = strconv.FormatFloat(o.WordDrop, 'g', -1, 64)
	}
	rel := filepath.Join(store.FeaturesDir, FileName(mod, name, false))
	relTok := filepath.Join(store.FeaturesDir, FileName(mod, name, true))
	if o.Shard.N > 1 {
		part := fmt.Sprintf("%s.%s.%d-of-%d", mod, name, o.Shard.I, o.Shard.N)
		rel = filepath.Join(store.FeaturesDir, "parts", part+".arrow")
		relTok = filepath.Join(store.FeaturesDir, "parts", part+".tokens.arrow")
		meta.Extra[MetaShard] = o.Shard.String()
	}
	// A run killed while it wrote leaves temporaries that a run which then
	// finds the files complete would not replace.
	for _, p := range []string{rel, relTok, store.ManifestFile} {
		store.RemoveStaleTemps(ds.Path(p))
	}
	res := &Result{Encoder: name, Modality: mod, File: filepath.ToSlash(rel), ModelSHA256: meta.ModelSHA256,
		Source: src.describe(), Items: len(items)}
	if withTokens {
		res.TokensFile = filepath.ToSlash(relTok)
	}

	n := len(items)
	pooled := &store.FeatureMatrix{Meta: meta, Rows: n, Dim: info.Dim}
	var tokens *store.FeatureMatrix
	if withTokens {
		tokens = &store.FeatureMatrix{Meta: meta, Rows: n, Dim: info.TokenDim, Tokens: info.Tokens}
	}
	pooled.Data, pooled.Valid = make([]float32, n*info.Dim), make([]bool, n)
	if withTokens {
		// Token states can be far larger than memory (items × tokens × width):
		// past scratchBytes they live in a file-backed scratch array beside
		// the output, which the kernel pages out as needed.
		if err := os.MkdirAll(filepath.Dir(ds.Path(relTok)), 0o755); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if vals := n * info.Tokens * info.TokenDim; int64(vals)*4 > o.scratchBytes() {
			sc, err := store.NewScratch(filepath.Dir(ds.Path(relTok)), vals)
			if err != nil {
				return nil, fmt.Errorf("encode: token states: %w", err)
			}
			defer sc.Close()
			tokens.Data = sc.Data
			log.Info("token states kept in a file-backed scratch array", "bytes", int64(vals)*4, "dir", filepath.Dir(ds.Path(relTok)))
		} else {
			tokens.Data = make([]float32, vals)
		}
		tokens.Valid, tokens.NTokens = make([]bool, n), make([]int32, n)
	}
	reused := false
	if !o.Force {
		reused = reuse(ds.Path(rel), pooled, log)
		if reused && withTokens {
			reused = reuse(ds.Path(relTok), tokens, log)
		}
		if !reused {
			for _, m := range []*store.FeatureMatrix{pooled, tokens} {
				if m != nil {
					clear(m.Data)
					clear(m.Valid)
					clear(m.NTokens)
				}
			}
		}
	}

	// What to do: items of the shard with an input and without a vector;
	// vectors of items that lost their input are dropped.
	var todo []int
	changed := false
	for r := range n {
		if !o.Shard.has(r) {
			if pooled.Valid[r] {
				invalidate(pooled, tokens, r)
				changed = true
			}
			continue
		}
		if !src.has(r) {
			if pooled.Valid[r] {
				invalidate(pooled, tokens, r)
				changed = true
			}
			continue
		}
		res.WithInput++
		if pooled.Valid[r] {
			res.Reused++
			continue
		}
		todo = append(todo, r)
	}
	if res.WithInput == 0 && o.Shard.N <= 1 {
		return nil, badInput("no item of %s has %s input (%s)", ds.Dir, info.Modality, src.describe())
	}
	if len(todo) == 0 && reused && !changed {
		res.Skipped, res.Present = true, res.Reused
		log.Info("encode skipped: every item with input is already encoded by the same model file (--force redoes it)",
			"encoder", name, "file", res.File, "present", res.Present)
		listed := slices.Contains(ds.Manifest.Features, filepath.Base(rel)) &&
			(!withTokens || slices.Contains(ds.Manifest.Features, filepath.Base(relTok)))
		if o.Shard.N <= 1 && !listed {
			if err := recordFeatures(ds.Dir, rel, relTok, withTokens, false); err != nil {
				return nil, err
			}
		}
		res.Seconds = time.Since(start).Seconds()
		return res, nil
	}
	log.Info("encoding", "encoder", name, "modality", info.Modality, "source", src.describe(), "items", n,
		"with_input", res.WithInput, "to_encode", len(todo), "reused", res.Reused, "batch", o.BatchSize, "workers", o.Workers)

	t0 := time.Now()
	if err := runPipeline(ctx, o, enc, info, src, todo, pooled, tokens, res, log); err != nil {
		return nil, err
	}
	encodeSecs := time.Since(t0).Seconds()
	if res.Encoded > 0 && encodeSecs > 0 {
		res.ItemsPerSecond = float64(res.Encoded) / encodeSecs
	}
	for r := range n {
		if pooled.Valid[r] {
			res.Present++
		}
	}
	if res.Failed > 0 {
		log.Warn("some items could not be encoded (their rows are null)", "encoder", name, "failed", res.Failed)
	}

	if res.Encoded > 0 || changed || !reused {
		if err := os.MkdirAll(filepath.Dir(ds.Path(rel)), 0o755); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if withTokens {
			if err := store.WriteFeatures(ds.Path(relTok), tokens); err != nil {
				return nil, err
			}
		}
		if err := store.WriteFeatures(ds.Path(rel), pooled); err != nil {
			return nil, err
		}
	}
	if err := recordFeatures(ds.Dir, rel, relTok, withTokens && o.Shard.N <= 1, o.Shard.N > 1); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	log.Info("encoded", "encoder", name, "file", res.File, "encoded", res.Encoded, "reused", res.Reused,
		"failed", res.Failed, "present", res.Present, "items", n, "items_per_second", res.ItemsPerSecond, "seconds", res.Seconds)
	return res, nil
}

// openSource opens the input source of a modality; for text it also
// returns the fingerprint of the texts.
func openSource(ds *store.Dataset, modality, imagesDir string, items []store.Item) (source, string, error) {
	if modality == "text" {
		s := newTextSource(items)
		return s, s.fingerprint(), nil
	}
	if imagesDir != "" {
		s, err := newFolderSource(imagesDir, items)
		return s, "", err
	}
	dir := ds.Path(store.ImagesDir)
	if _, err := os.Stat(filepath.Join(dir, "data.mdb")); err != nil {
		return nil, "", badInput("dataset %s has no %s (run `mmpipe crawl` first, or pass --images DIR)", ds.Dir, store.ImagesDir)
	}
	s, err := newLMDBSource(dir, items)
	return s, "", err
}

// inputs iterates over the inputs of every item that has one (for Fit).
func inputs(src source, n int) iter.Seq[extract.Input] {
	return func(yield func(extract.Input) bool) {
		for r := range n {
			if !src.has(r) {
				continue
			}
			in, err := src.input(r)
			if err != nil {
				continue // Prepare reports it
			}
			if !yield(in) {
				return
			}
		}
	}
}

// reuse loads the existing file at path into m when it was written with
// the same provenance (m.Meta, except the version) and shape; it reports
// whether it did.
func reuse(path string, m *store.FeatureMatrix, log *slog.Logger) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	ff, err := store.OpenFeatures(path)
	if err != nil {
		log.Warn("existing feature file unreadable; re-encoding everything", "file", path, "err", err)
		return false
	}
	defer ff.Close()
	old := ff.Meta()
	why := ""
	switch {
	case old.Encoder != m.Meta.Encoder:
		why = "encoder " + old.Encoder
	case old.ModelSHA256 != m.Meta.ModelSHA256:
		why = "another model file (model_sha256 " + old.ModelSHA256 + ")"
	case old.Preprocess != m.Meta.Preprocess:
		why = "other preprocessing (" + old.Preprocess + ")"
	case old.IDMapSHA256 != m.Meta.IDMapSHA256:
		why = "another id map (idmap_sha256 " + old.IDMapSHA256 + ")"
	case old.Extra[MetaTextSHA256] != m.Meta.Extra[MetaTextSHA256]:
		why = "other item texts"
	case old.Extra[MetaShard] != m.Meta.Extra[MetaShard]:
		why = "another shard"
	case ff.Rows() != m.Rows || ff.Dim() != m.Dim || ff.Tokens() != m.Tokens:
		why = fmt.Sprintf("another shape (%d rows × %d tokens × %d)", ff.Rows(), ff.Tokens(), ff.Dim())
	}
	if why != "" {
		log.Info("existing feature file was built differently; re-encoding everything", "file", path, "reason", why)
		return false
	}
	// Copy into m's arrays (allocated by the caller, possibly a scratch
	// file), row by row, so an old file is never held twice.
	w := m.Dim
	if m.Tokens > 0 {
		w = m.Tokens * m.Dim
	}
	for r := range m.Rows {
		if !ff.Valid(r) {
			continue
		}
		copy(m.Data[r*w:(r+1)*w], ff.Vector(r))
		m.Valid[r] = true
		if m.Tokens > 0 {
			m.NTokens[r] = int32(ff.NTokens(r))
		}
	}
	return true
}

// invalidate clears row r.
func invalidate(pooled, tokens *store.FeatureMatrix, r int) {
	pooled.Valid[r] = false
	clear(pooled.Data[r*pooled.Dim : (r+1)*pooled.Dim])
	if tokens != nil {
		w := tokens.Tokens * tokens.Dim
		tokens.Valid[r] = false
		clear(tokens.Data[r*w : (r+1)*w])
		tokens.NTokens[r] = 0
	}
}

// recordFeatures adds the files to the manifest's feature list (unless
// part) and re-hashes the dataset's outputs.
func recordFeatures(dir, rel, relTok string, withTokens, part bool) error {
	if part {
		// Shard parts are recorded by `mmpipe merge`; shards running at
		// once must not rewrite the manifest (nor re-hash the dataset).
		return nil
	}
	m, err := store.ReadManifest(dir)
	if err != nil {
		return err
	}
	if !part {
		for _, f := range []string{rel, relTok} {
			if f == relTok && !withTokens {
				continue
			}
			name := filepath.Base(f)
			if !slices.Contains(m.Features, name) {
				m.Features = append(m.Features, name)
			}
		}
		slices.Sort(m.Features)
	}
	if err := dataset.RecordOutputs(dir, m); err != nil {
		return fmt.Errorf("encode: record outputs of %s: %w", dir, err)
	}
	return store.WriteManifest(dir, m)
}

// CheckFeatureFile returns an error unless the feature file at path was
// built for the dataset in datasetDir: same idmap_sha256 as the dataset's
// manifest and one row per item. Training calls it before using features.
func CheckFeatureFile(datasetDir, path string) error {
	ds, err := store.OpenDataset(datasetDir)
	if err != nil {
		return err
	}
	meta, rows, _, err := store.ReadFeatureMeta(path)
	if err != nil {
		return err
	}
	want := ds.Manifest.IDMapSHA256
	switch {
	case meta.IDMapSHA256 == "":
		return badInput("feature file %s has no idmap_sha256: cannot tell which dataset it belongs to (re-encode it with `mmpipe encode --dataset %s`)", path, datasetDir)
	case meta.IDMapSHA256 != want:
		return badInput("feature file %s was built for another dataset's id map (idmap_sha256 %s; dataset %s has %s): re-encode it with `mmpipe encode --dataset %s`",
			path, meta.IDMapSHA256, datasetDir, want, datasetDir)
	case rows != ds.Manifest.Items:
		return badInput("feature file %s has %d rows, dataset %s has %d items", path, rows, datasetDir, ds.Manifest.Items)
	}
	return nil
}

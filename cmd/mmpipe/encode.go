package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/all"
	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/encode"
	"github.com/mmpipe/mmpipe/pipeline/synth"
	"github.com/mmpipe/mmpipe/store"
)

// lookupEncoder finds an encoder factory by name, with a usage error that
// lists the known names.
func lookupEncoder(fs map[string]extract.Factory, name string) (extract.Factory, error) {
	if name == "" {
		return nil, usagef("--encoder is required (one of %s)", strings.Join(all.Names(fs), ", "))
	}
	f, ok := fs[name]
	if !ok {
		return nil, usagef("unknown encoder %q (known: %s)", name, strings.Join(all.Names(fs), ", "))
	}
	return f, nil
}

func (a *app) encodeCommand() *cobra.Command {
	return a.encodeCommandWith(all.Factories())
}

// encodeCommandWith builds the encode command over a registry of encoders.
func (a *app) encodeCommandWith(factories map[string]extract.Factory) *cobra.Command {
	var o encode.Options
	var shard string
	cmd := &cobra.Command{
		Use:   "encode --dataset D --encoder NAME [options]",
		Short: "Encode item images or texts into an item-aligned feature file",
		Long: "Encode every item that has the input (its text, or its image from <dataset>/images.lmdb or --images DIR)\n" +
			"into features/<modality>.<encoder>.arrow (plus .tokens.arrow with --tokens), with provenance metadata, and\n" +
			"record it in the manifest. A re-run keeps the vectors of the same encoder, model file, preprocessing and\n" +
			"id map and encodes only items that have none yet; --force re-encodes everything.\n\nEncoders: " +
			strings.Join(all.Names(factories), ", "),
		Example: "  mmpipe encode --dataset data/baby --encoder text-hash\n" +
			"  mmpipe encode --dataset data/baby --encoder image-stats --tokens\n" +
			"  mmpipe encode --dataset data/demo --encoder image-stats --images raw/images\n" +
			"  mmpipe encode --dataset data/baby --encoder clip-vit-b32 --model-dir models/clip --device cuda",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Dataset == "" {
				return usagef("--dataset is required")
			}
			f, err := lookupEncoder(factories, o.Encoder)
			if err != nil {
				return err
			}
			switch o.Opts.Device {
			case "cpu", "cuda":
			default:
				return usagef("--device %q: want cpu or cuda", o.Opts.Device)
			}
			if o.Shard, err = encode.ParseShard(shard); err != nil {
				return usageError{err}
			}
			o.Factory, o.Version, o.Logger = f, version, a.log
			res, err := encode.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if res.Skipped {
				fmt.Fprintf(a.stdout, "skipped: %s already holds %d vectors of %d items from the same model file (--force redoes it)\n",
					res.File, res.Present, res.Items)
			} else {
				fmt.Fprintf(a.stdout, "%s: encoded %d items (%d kept, %d failed) of %d with input, %d items in all; %.1f items/s\n",
					res.File, res.Encoded, res.Reused, res.Failed, res.WithInput, res.Items, res.ItemsPerSecond)
				for _, s := range res.FailedItems {
					fmt.Fprintln(a.stdout, "failed:", s)
				}
			}
			if res.TokensFile != "" {
				fmt.Fprintf(a.stdout, "token states: %s\n", res.TokensFile)
			}
			return a.writeResult("encode", res.Skipped, map[string]any{"dataset": o.Dataset, "encode": res})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Dataset, "dataset", "", "dataset directory")
	fl.StringVar(&o.Encoder, "encoder", "", "encoder: "+strings.Join(all.Names(factories), ", "))
	fl.StringVar(&o.Opts.ModelDir, "model-dir", "", "model directory (model.onnx and tokenizer) for ONNX encoders")
	fl.StringVar(&o.Opts.Device, "device", "cpu", "cpu or cuda (ONNX encoders)")
	fl.StringVar(&o.Opts.ORTLib, "ort-lib", "", "ONNX Runtime shared library (default: $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the Makefile's install)")
	fl.IntVar(&o.BatchSize, "batch-size", encode.DefaultBatchSize, "items per encoder batch")
	fl.IntVar(&o.Opts.Dim, "dim", 0, "output width of the built-in encoders (default: text-hash 384, image-stats 256)")
	fl.BoolVar(&o.Opts.TokenOutput, "tokens", false, "also write token-level outputs (<modality>.<encoder>.tokens.arrow)")
	fl.IntVar(&o.Opts.MaxTokens, "max-tokens", 0, "token count of text token outputs (default 50)")
	fl.StringVar(&o.ImagesDir, "images", "", "read images from DIR/<raw item id>.<jpg|png|webp|gif> instead of the dataset's images.lmdb")
	fl.IntVar(&o.Opts.Threads, "threads", 0, "encoder intra-op threads (ONNX Runtime; 0 = number of cores)")
	fl.IntVar(&o.Workers, "workers", 0, "goroutines decoding and preparing inputs (0 = number of cores)")
	fl.Uint64Var(&o.Opts.Seed, "seed", 0, "seed of the built-in encoders' random projections")
	fl.StringVar(&shard, "shard", "", "encode only shard i/n (item_idx % n == i) into features/parts/")
	fl.BoolVar(&o.Force, "force", false, "re-encode every item even when the existing file matches")
	fl.Float64Var(&o.WordDrop, "word-drop", 0, "text encoders: drop each word with this probability and write modality text_worddrop (MISSRec's word-drop features, its .feat2CLS)")
	return cmd
}

// demoEncode is the demo's encode step: text-hash over the item texts and
// image-stats over the images (the dataset's images.lmdb when a crawl step
// filled it, else the generated image folder), then the modalities and how
// well each feature groups items by their hidden category.
func (a *app) demoEncode(ctx context.Context, ds string, info *synth.DemoInfo) error {
	start := time.Now()
	fs := builtin.Factories()
	imagesDir := ""
	if _, err := os.Stat(filepath.Join(ds, store.ImagesDir, "data.mdb")); err != nil {
		imagesDir = info.ImageDir
	}
	var files []string
	for _, name := range []string{builtin.TextHashName, builtin.ImageStatsName} {
		o := encode.Options{Dataset: ds, Encoder: name, Factory: fs[name], Version: version, Logger: a.log}
		if name == builtin.ImageStatsName {
			o.ImagesDir = imagesDir
		}
		res, err := encode.Run(ctx, o)
		if err != nil {
			return err
		}
		verb := "encoded"
		if res.Skipped {
			verb = "kept (same model, skipped)"
		}
		fmt.Fprintf(a.stdout, "encode %-11s %s %d of %d items from %s → %s (%d failed)\n", name, verb, res.Present, res.Items, res.Source, res.File, res.Failed)
		files = append(files, filepath.Join(ds, res.File))
	}
	s, err := dataset.Summarize(ctx, ds)
	if err != nil {
		return err
	}
	for _, m := range s.Modalities {
		fmt.Fprintf(a.stdout, "  modality %-6s %4d-d, %d of %d items present, encoder %s (%s)\n", m.Name, m.Dim, m.Present, s.Items, m.Encoder, m.File)
	}
	raw, err := os.ReadFile(info.HiddenFile)
	if err != nil {
		return err
	}
	var hidden map[string]int
	if err := json.Unmarshal(raw, &hidden); err != nil {
		return fmt.Errorf("read %s: %w", info.HiddenFile, err)
	}
	items, err := store.ReadItems(ctx, filepath.Join(ds, store.ItemsFile))
	if err != nil {
		return err
	}
	for _, f := range files {
		c, err := categorySeparation(f, items, hidden)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "  %s: mean cosine within hidden categories %.3f, across %.3f; nearest neighbour in the same category for %.1f%% of %d items\n",
			filepath.Base(f), c.within, c.across, 100*c.nnAccuracy, c.n)
	}
	fmt.Fprintf(a.stdout, "encode step finished in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// separation says how a feature file groups items by hidden category.
type separation struct {
	within, across float64 // mean cosine of pairs in the same / different categories
	nnAccuracy     float64 // share of items whose nearest neighbour shares their category
	n              int
}

// categorySeparation compares the vectors of a feature file with the
// hidden categories (raw id → category).
func categorySeparation(path string, items []store.Item, hidden map[string]int) (separation, error) {
	ff, err := store.OpenFeatures(path)
	if err != nil {
		return separation{}, err
	}
	defer ff.Close()
	var rows []int
	for r := range min(ff.Rows(), len(items)) {
		if _, ok := hidden[items[r].ID]; ok && ff.Valid(r) {
			rows = append(rows, r)
		}
	}
	var s separation
	var nw, na int
	correct := 0
	for _, i := range rows {
		vi, ci := ff.Vector(i), hidden[items[i].ID]
		best, bestCat := math.Inf(-1), -1
		for _, j := range rows {
			if i == j {
				continue
			}
			vj := ff.Vector(j)
			dot := 0.0
			for k := range vi {
				dot += float64(vi[k]) * float64(vj[k])
			}
			cj := hidden[items[j].ID]
			if cj == ci {
				s.within += dot
				nw++
			} else {
				s.across += dot
				na++
			}
			if dot > best {
				best, bestCat = dot, cj
			}
		}
		if bestCat == ci {
			correct++
		}
	}
	if nw > 0 {
		s.within /= float64(nw)
	}
	if na > 0 {
		s.across /= float64(na)
	}
	s.n = len(rows)
	if s.n > 0 {
		s.nnAccuracy = float64(correct) / float64(s.n)
	}
	return s, nil
}

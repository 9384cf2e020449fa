package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/pipeline/synth"
	"github.com/mmpipe/mmpipe/train"
)

func (a *app) demoCommand() *cobra.Command {
	var out string
	var seed uint64
	var users, items, epochs int
	cmd := &cobra.Command{
		Use:   "demo [--out DIR]",
		Short: "Run the pipeline on a built-in generated sample (no downloads)",
		Long: "Generates a small raw dataset in the Amazon 2018 format (reviews, metadata with texts, procedurally drawn\n" +
			"images whose content depends on hidden item categories), ingests it with random and leave-one-out splits,\n" +
			"serves the images from a local HTTP server on 127.0.0.1 and crawls them into the dataset's images.lmdb,\n" +
			"and prints the dataset summary and the crawl statistics.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			start := time.Now()
			raw := filepath.Join(out, "raw")
			if err := os.MkdirAll(raw, 0o755); err != nil {
				return err
			}
			// crawl step (1/2): the generated images are served on 127.0.0.1 and the
			// metadata points at that server; see demoCrawl in crawl.go.
			imgSrv, err := startDemoImageServer(filepath.Join(raw, "images"))
			if err != nil {
				return err
			}
			defer imgSrv.Close()
			info, err := synth.Amazon2018Demo(ctx, raw, synth.DemoConfig{Seed: seed, Users: users, Items: items, ImageBaseURL: imgSrv.BaseURL})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "generated %s, %s and %d images in %s (%.1fs)\n", info.ReviewsFile, info.MetaFile, len(info.ImageFiles), raw, time.Since(start).Seconds())
			ds := filepath.Join(out, "dataset")
			res, err := dataset.Ingest(ctx, dataset.Options{
				Format: "amazon2018", Inputs: []string{info.ReviewsFile, info.MetaFile}, Out: ds,
				Splits:  dataset.SplitOptions{Names: []string{"random", "loo"}, Seed: seed},
				Version: version, Logger: a.log, MinRating: nan(),
			})
			if err != nil {
				return err
			}
			printReport(a.stdout, res.Report)
			s, err := dataset.Summarize(ctx, ds)
			if err != nil {
				return err
			}
			s.Print(a.stdout)
			// crawl step (2/2): fetch the images into <dataset>/images.lmdb.
			if _, err := a.demoCrawl(ctx, ds); err != nil {
				return err
			}
			// encode step: text-hash over the item texts, image-stats over the images (from images.lmdb when a
			// crawl step filled it, else from raw/images); prints the modalities and how each feature groups the
			// items by hidden category. The code is demoEncode in encode.go.
			if err := a.demoEncode(ctx, ds, info); err != nil {
				return err
			}
			// end of encode step
			// train step: popularity, MF-BPR, LightGCN and ItemKNN-CBF on the random split.
			if err := a.demoTrain(ctx, ds, filepath.Join(out, "runs"), epochs); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "demo finished in %.1fs; try: mmpipe inspect --json %s\n", time.Since(start).Seconds(), ds)
			return a.writeResult("demo", res.Skipped, map[string]any{"dataset": ds, "summary": s})
		},
	}
	cmd.Flags().StringVar(&out, "out", "demo-out", "directory for the raw sample and the dataset")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the generated sample and the random split")
	cmd.Flags().IntVar(&users, "users", 600, "users in the generated sample")
	cmd.Flags().IntVar(&items, "items", 400, "items in the generated sample")
	cmd.Flags().IntVar(&epochs, "epochs", 100, "training epochs of the demo's MF-BPR and LightGCN runs")
	return cmd
}

func nan() float64 { return math.NaN() }

// demoTrain trains the baselines (popularity, MF-BPR, LightGCN and the
// feature-based ItemKNN-CBF on the image-stats vectors) and MMSSL (faithful
// mode, on the image-stats and text-hash features, 5 epochs) on the demo
// dataset's random split and prints each run's headline metrics.
func (a *app) demoTrain(ctx context.Context, ds, runs string, epochs int) error {
	for _, m := range []string{"pop", "mf", "lightgcn", "itemknn-cbf", "mmssl"} {
		f, err := lookupModel(m)
		if err != nil {
			return err
		}
		o := train.Options{Dataset: ds, Split: "random", Out: filepath.Join(runs, m), Log: a.log, Version: version,
			Sets: []string{fmt.Sprintf("epochs=%d", epochs), "eval_every=5"}}
		switch m {
		case "pop":
			o.Sets = nil
		case "itemknn-cbf": // the feature-based baseline, on the image-stats vectors
			o.Sets = []string{"model.features=image"}
			o.Out = filepath.Join(runs, "itemknn-cbf-image")
		case "mmssl": // its critic dominates the time: a few epochs show it above popularity
			o.Sets = []string{"epochs=5", "eval_every=5"}
		}
		rep, err := train.Run(ctx, f, o)
		if err != nil {
			return trainError(err)
		}
		printRunReport(a, rep)
	}
	return nil
}

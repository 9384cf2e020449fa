package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/models"
)

// trainError maps configuration and usage mistakes to exit code 2;
// interrupts keep wrapping context.Canceled (exit code 3).
func trainError(err error) error {
	var ce *train.ConfigError
	var ue *train.UsageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return usageError{err}
	}
	return err
}

func modelList() string {
	var b strings.Builder
	for _, f := range models.All() {
		fmt.Fprintf(&b, "  %-10s %s (protocol %s)\n", f.Name, f.Describe, f.Protocol)
	}
	return b.String()
}

func lookupModel(name string) (*train.Factory, error) {
	if name == "" {
		return nil, usagef("--model is required (one of %s)", strings.Join(models.Names(), ", "))
	}
	f, ok := models.Lookup(name)
	if !ok {
		return nil, usagef("unknown model %q (models: %s)", name, strings.Join(models.Names(), ", "))
	}
	return f, nil
}

func (a *app) trainCommand() *cobra.Command {
	var o train.Options
	var model string
	var showConfig bool
	cmd := &cobra.Command{
		Use:   "train --model M --dataset D --out RUN [--split NAME] [--config file.yaml] [--set key=value ...] [--init CKPT] [--resume]",
		Short: "Train a model on a dataset split, select it on validation and score the test split once",
		Long: "Train a model on a dataset split. Every epoch is validated (eval_every), logged to RUN/metrics.jsonl and\n" +
			"checkpointed (checkpoint_every, and at the best validation score); the test split is scored once, for the\n" +
			"selected checkpoint, into RUN/report.json. Ctrl-C stops at a batch boundary after writing a checkpoint\n" +
			"(exit code 3); --resume continues with the same result as an uninterrupted run.\n\n" +
			"Models:\n" + modelList() +
			"\nEvaluation protocols (key protocol): " + protocolNames() + ".\n" +
			"Configuration: defaults, then --config (YAML), then --set key=value (dotted keys; lists as 10,20).\n" +
			"--show-config prints every key of a model.",
		Example: "  mmpipe train --model lightgcn --dataset data/tiktok --out runs/lgcn\n" +
			"  mmpipe train --model mf --dataset data/baby --out runs/mf --set epochs=50 --set model.lr=0.005\n" +
			"  mmpipe train --model lightgcn --out runs/lgcn --resume",
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := lookupModel(model)
			if err != nil {
				return err
			}
			if showConfig {
				cfg, err := train.ResolveConfig(f, o.ConfigFile, o.Sets)
				if err != nil {
					return trainError(err)
				}
				y, err := cfg.YAML()
				if err != nil {
					return err
				}
				fmt.Fprint(a.stdout, string(y))
				return nil
			}
			o.Log, o.Version = a.log, version
			if train.IsTerminal(a.stderr) {
				o.Progress = a.stderr
			}
			rep, err := train.Run(cmd.Context(), f, o)
			if err != nil {
				return trainError(err)
			}
			if rep.Skipped {
				fmt.Fprintf(a.stdout, "skipped: %s is complete (%s)\n", o.Out, filepath.Join(o.Out, train.ReportFile))
			}
			printRunReport(a, rep)
			return a.writeResult("train", rep.Skipped, map[string]any{"run": o.Out, "report": rep})
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model: "+strings.Join(models.Names(), ", "))
	f.StringVar(&o.Dataset, "dataset", "", "dataset directory (from mmpipe ingest); with --resume, defaults to the run's")
	f.StringVar(&o.Split, "split", "", "split to train on (default: given if the dataset has one, else random for graph models, loo for sequential ones)")
	f.StringVar(&o.Out, "out", "", "run directory to write")
	f.StringVar(&o.ConfigFile, "config", "", "YAML file of config keys")
	f.StringArrayVar(&o.Sets, "set", nil, "override one config key: key=value (repeatable), e.g. --set model.dim=128 --set ks=10,20")
	f.StringVar(&o.Init, "init", "", "start from a checkpoint of an earlier run of the same model (transfer: e.g. RUN/checkpoints/best.ckpt of a pre-training run; the model's transfer setting says what is copied)")
	f.BoolVar(&o.Resume, "resume", false, "continue the run in --out from its last checkpoint (skips a complete run)")
	f.BoolVar(&showConfig, "show-config", false, "print the resolved configuration and exit")
	return cmd
}

// printRunReport prints the headline numbers of a report.
func printRunReport(a *app, rep *train.Report) {
	fmt.Fprintf(a.stdout, "%s on %s (split %s, protocol %s): best epoch %d of %d, %.3f s per epoch (median)\n",
		rep.Model, rep.Dataset, rep.Split, rep.Protocol, rep.BestEpoch, rep.EpochsRun, rep.EpochSeconds)
	for _, part := range []struct {
		name string
		m    map[string]float64
	}{{"valid", rep.Valid}, {"test", rep.Test}} {
		if len(part.m) == 0 {
			continue
		}
		ks := []int{10, 20, 50}
		if rep.Config != nil {
			ks = rep.Config.Ks
		}
		fmt.Fprintf(a.stdout, "  %-5s %s\n", part.name, formatMetrics(part.m, ks))
	}
}

// formatMetrics renders the main metrics at each K on one line.
func formatMetrics(m map[string]float64, ks []int) string {
	var parts []string
	for _, fam := range []string{"recall", "ndcg", "hit", "mrr", "ndcg_ngcf"} {
		for _, k := range ks {
			name := fmt.Sprintf("%s@%d", fam, k)
			if v, ok := m[name]; ok {
				parts = append(parts, fmt.Sprintf("%s %.4f", name, v))
			}
		}
	}
	return strings.Join(parts, "  ")
}

func parseParts(s string) ([]int8, error) {
	switch s {
	case "valid":
		return []int8{store.PartValid}, nil
	case "test":
		return []int8{store.PartTest}, nil
	case "both":
		return []int8{store.PartValid, store.PartTest}, nil
	}
	return nil, usagef("--part %q: want valid, test or both", s)
}

func (a *app) evalCommand() *cobra.Command {
	var which, part, dataset string
	cmd := &cobra.Command{
		Use:   "eval RUN [--checkpoint best|last|FILE] [--part valid|test|both]",
		Short: "Re-score a run's checkpoint on the validation and/or test split",
		Long: "Load a run's checkpoint (the best by default) and score the validation and/or test part of its split with\n" +
			"the run's protocol and cut-offs. Prints the metrics as JSON.",
		Example: "  mmpipe eval runs/lgcn\n  mmpipe eval runs/lgcn --checkpoint last --part valid",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			parts, err := parseParts(part)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			r, err := train.OpenRun(ctx, args[0], models.Lookup, train.OpenRunOptions{Dataset: dataset, Log: a.log})
			if err != nil {
				return trainError(err)
			}
			epoch, err := r.LoadCheckpoint(which)
			if err != nil {
				return err
			}
			out := map[string]any{"run": args[0], "model": r.Info.Model, "checkpoint": which, "epoch": epoch,
				"protocol": r.Config.Protocol, "split": r.Info.Split}
			for _, p := range parts {
				res, err := r.Evaluate(ctx, p)
				if err != nil {
					return err
				}
				out[store.PartName(p)] = res.Metrics
				out[store.PartName(p)+"_users"] = res.Users
			}
			fmt.Fprintln(a.stdout, mustJSON(out))
			return a.writeResult("eval", false, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&which, "checkpoint", "best", "checkpoint: best, last or a .ckpt file")
	f.StringVar(&part, "part", "both", "part to score: valid, test or both")
	f.StringVar(&dataset, "dataset", "", "dataset directory, if it moved since training (same item id map)")
	return cmd
}

func (a *app) recommendCommand() *cobra.Command {
	var which, exclude, out, dataset string
	var k int
	cmd := &cobra.Command{
		Use:   "recommend RUN [--k 20] [--exclude train|all|none] [--out FILE]",
		Short: "Write every user's top-K items of a run's checkpoint as Parquet",
		Long: "Rank all items for every user with a run's checkpoint (the best by default) and write the top K as Parquet:\n" +
			"user_idx, user_id, rank (from 1), item_idx, item_id, score; rows ordered by user, then rank. Ties are broken\n" +
			"by lower item index. --exclude drops the user's training items (default), all of the user's items in the\n" +
			"split, or none.",
		Example: "  mmpipe recommend runs/lgcn --k 50\n  duckdb -c \"select * from 'runs/lgcn/recommendations.parquet' where user_idx = 0\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ex, err := train.ParseExclude(exclude)
			if err != nil {
				return usageError{err}
			}
			if k <= 0 {
				return usagef("--k must be positive, got %d", k)
			}
			ctx := cmd.Context()
			r, err := train.OpenRun(ctx, args[0], models.Lookup, train.OpenRunOptions{Dataset: dataset, Log: a.log})
			if err != nil {
				return trainError(err)
			}
			epoch, err := r.LoadCheckpoint(which)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(args[0], train.RecommendFile)
			}
			rows, err := r.Recommend(ctx, out, k, ex)
			if err != nil {
				return trainError(err)
			}
			fmt.Fprintf(a.stdout, "wrote %d recommendations (%d users × top %d, epoch %d) to %s\n", rows, r.Data.NumUsers, k, epoch, out)
			return a.writeResult("recommend", false, map[string]any{"run": args[0], "file": out, "rows": rows, "k": k,
				"exclude": string(ex), "checkpoint": which, "epoch": epoch})
		},
	}
	f := cmd.Flags()
	f.StringVar(&which, "checkpoint", "best", "checkpoint: best, last or a .ckpt file")
	f.IntVar(&k, "k", 20, "items per user")
	f.StringVar(&exclude, "exclude", "train", "items left out: train, all or none")
	f.StringVar(&out, "out", "", "Parquet file to write (default RUN/recommendations.parquet)")
	f.StringVar(&dataset, "dataset", "", "dataset directory, if it moved since training (same item id map)")
	return cmd
}

// protocolNames lists the evaluation protocols (for help texts).
func protocolNames() string {
	var s []string
	for _, p := range eval.Protocols() {
		s = append(s, string(p))
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

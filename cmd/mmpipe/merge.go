package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/pipeline/merge"
)

// mergeCommand is `mmpipe merge --dataset D`: it joins the shard parts of
// `crawl --shard i/n` and `encode --shard i/n` into the dataset.
func (a *app) mergeCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "merge --dataset DATASET",
		Short: "Join the shard parts of crawl and encode into the dataset",
		Long: "Join the parts written by `mmpipe crawl --shard i/n` (DATASET/parts/crawl-<i>-of-<n>/images.lmdb) into\n" +
			"DATASET/images.lmdb and those of `mmpipe encode --shard i/n` (DATASET/features/parts/) into\n" +
			"DATASET/features/<modality>.<encoder>.arrow. Parts that do not belong together (a different n, a missing\n" +
			"shard, another encoder, model file or id map) are refused with exit code 2. Merging again is harmless.",
		Example: "  mmpipe merge --dataset data/baby",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if dir != "" && dir != args[0] {
					return usagef("give the dataset once: --dataset %s or %s", dir, args[0])
				}
				dir = args[0]
			}
			if dir == "" {
				return usagef("--dataset is required")
			}
			res, err := merge.Run(cmd.Context(), dir)
			if err != nil {
				return err
			}
			for _, l := range res.Lines() {
				fmt.Fprintln(a.stdout, l)
			}
			return a.writeResult("merge", false, map[string]any{"dataset": dir, "merge": res})
		},
	}
	cmd.Flags().StringVar(&dir, "dataset", "", "dataset directory")
	return cmd
}

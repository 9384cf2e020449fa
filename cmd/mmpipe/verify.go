package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/pipeline/verify"
)

// verifyCommand is `mmpipe verify DATASET`: it checks every file of a dataset
// against its manifest and exits 2 when anything is wrong.
func (a *app) verifyCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--json] DATASET",
		Short: "Check a dataset against its manifest: hashes, id maps, splits, feature alignment, LMDB ledger",
		Long: "Check every file of a dataset against its manifest.json (present, same size and sha256; files the manifest\n" +
			"does not list), the item and user id maps, the split files, the feature files (one row per item, the\n" +
			"dataset's idmap_sha256) and images.lmdb (every image has an ok ledger entry with its sha256).\n" +
			"Prints one line per problem; exits 0 when clean and 2 when anything is wrong.",
		Example: "  mmpipe verify data/tiktok\n" +
			"  mmpipe verify --json data/baby",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := verify.Dataset(cmd.Context(), args[0])
			if err != nil {
				if cmd.Context().Err() != nil {
					return err
				}
				return usageError{err}
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return fmt.Errorf("verify: write report: %w", err)
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintln(a.stdout, p.String())
				}
				c := rep.Checked
				fmt.Fprintf(a.stdout, "checked %d files, %d splits, %d feature files, %d images, %d ledger entries: %d problems\n",
					c.Files, c.Splits, c.Features, c.Images, c.Ledger, len(rep.Problems))
			}
			if err := a.writeResult("verify", false, map[string]any{"dataset": rep.Dataset, "ok": rep.OK,
				"checked": rep.Checked, "problems": len(rep.Problems)}); err != nil {
				return err
			}
			if !rep.OK {
				return usagef("verify %s: %d problems", rep.Dataset, len(rep.Problems))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

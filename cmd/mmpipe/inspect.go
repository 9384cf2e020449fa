package main

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

func (a *app) inspectCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [--json] PATH",
		Short: "Describe a dataset directory, a feature file (.arrow) or an LMDB image store",
		Example: "  mmpipe inspect data/tiktok\n" +
			"  mmpipe inspect --json data/tiktok/features/image.imported.arrow\n" +
			"  mmpipe inspect data/demo/images.lmdb",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			kind, err := dataset.Kind(path)
			if err != nil {
				return usageError{err}
			}
			var v any
			switch kind {
			case "dataset":
				s, err := dataset.Summarize(cmd.Context(), path)
				if err != nil {
					return err
				}
				if !asJSON {
					s.Print(a.stdout)
					return nil
				}
				v = s
			case "features":
				v, err = inspectFeatures(path)
				if err != nil {
					return err
				}
				if !asJSON {
					printFeatures(a, v.(map[string]any))
					return nil
				}
			case "lmdb":
				st, err := imagestore.Open(path, imagestore.Options{ReadOnly: true})
				if err != nil {
					return err
				}
				defer st.Close()
				stats, err := st.Stats()
				if err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(a.stdout, "image store %s: %d images, %d bytes (file %d bytes, map %d bytes)\n", path, stats.Images, stats.Bytes, stats.FileBytes, stats.MapSize)
					keys := make([]string, 0, len(stats.Ledger))
					for k := range stats.Ledger {
						keys = append(keys, k)
					}
					slices.Sort(keys)
					for _, k := range keys {
						fmt.Fprintf(a.stdout, "  ledger %-10s %d\n", k, stats.Ledger[k])
					}
					return nil
				}
				v = stats
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func inspectFeatures(path string) (map[string]any, error) {
	ff, err := store.OpenFeatures(path)
	if err != nil {
		return nil, err
	}
	defer ff.Close()
	m := ff.Meta()
	out := map[string]any{
		"file": path, "rows": ff.Rows(), "dim": ff.Dim(), "present": ff.Present(),
		"modality": m.Modality, "encoder": m.Encoder, "model_sha256": m.ModelSHA256, "preprocess": m.Preprocess,
		"pooling": m.Pooling, "normalized": m.Normalized, "idmap_sha256": m.IDMapSHA256, "mmpipe_version": m.Version,
	}
	if ff.Tokens() > 0 {
		out["tokens"] = ff.Tokens()
	}
	for k, v := range m.Extra {
		out[k] = v
	}
	return out, nil
}

func printFeatures(a *app, m map[string]any) {
	fmt.Fprintf(a.stdout, "feature file %s: %v rows × %v, %v present\n", m["file"], m["rows"], m["dim"], m["present"])
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "file", "rows", "dim", "present":
			continue
		}
		fmt.Fprintf(a.stdout, "  %-15s %v\n", k, m[k])
	}
}

package crawl

import (
	"context"
	"fmt"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// MergeStats reports what MergeParts did.
type MergeStats struct {
	Parts  int `json:"parts"`
	Images int `json:"images"` // images copied
	Ledger int `json:"ledger"` // ledger entries copied (with or without an image)
	// Kept counts entries of the parts that were not ok where dst already
	// had the item ok: a stored image is never replaced by a failure.
	Kept int `json:"kept"`
}

// MergeParts copies the image stores of shard parts (the images.lmdb
// directories of PartDir(dataset, i, n) for each i) into the store dst,
// creating it if needed: every ledger entry, with its image when it is ok.
// Parts of one sharded crawl hold disjoint items; where a key is in several
// parts or already in dst, the last part wins, except that an ok entry of
// dst is never replaced by a failed or skipped one. Merging again is
// harmless. This is the library side of `mmpipe merge` for crawl parts.
func MergeParts(ctx context.Context, dst string, parts []string) (MergeStats, error) {
	var ms MergeStats
	out, err := imagestore.Open(dst, imagestore.Options{})
	if err != nil {
		return ms, fmt.Errorf("crawl merge: %w", err)
	}
	defer out.Close()
	have := map[string]bool{} // keys of dst whose entry is ok
	if err := out.LedgerScan(func(k string, e imagestore.LedgerEntry) error {
		if e.Status == imagestore.StatusOK {
			have[k] = true
		}
		return nil
	}); err != nil {
		return ms, fmt.Errorf("crawl merge: %w", err)
	}
	b := &imagestore.Batch{}
	flush := func() error {
		if err := out.Commit(b); err != nil {
			return fmt.Errorf("crawl merge: %w", err)
		}
		b.Reset()
		return nil
	}
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return ms, err
		}
		in, err := imagestore.Open(p, imagestore.Options{ReadOnly: true})
		if err != nil {
			return ms, fmt.Errorf("crawl merge: part %s: %w", p, err)
		}
		err = in.LedgerScan(func(k string, e imagestore.LedgerEntry) error {
			if e.Status != imagestore.StatusOK {
				if have[k] {
					ms.Kept++
					return nil
				}
				b.PutLedger(k, e)
				ms.Ledger++
			} else {
				img, ok, err := in.Get(k)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("part %s: key %q: ledger says ok but no image is stored", p, k)
				}
				b.PutImage(k, img, e)
				have[k] = true
				ms.Images++
				ms.Ledger++
			}
			if b.Len() >= DefaultBatchItems || b.Bytes() >= DefaultBatchBytes {
				return flush()
			}
			return ctx.Err()
		})
		in.Close()
		if err != nil {
			return ms, fmt.Errorf("crawl merge: part %s: %w", p, err)
		}
		ms.Parts++
	}
	if err := flush(); err != nil {
		return ms, err
	}
	return ms, nil
}

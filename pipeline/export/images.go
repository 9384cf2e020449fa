package export

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// PMMRecKey is the LMDB key PMMRec's loader looks up for an item name: the
// decimal value of the name with every 'v' removed ("v17551" → "17551"),
// or the raw name when that is not a number.
func PMMRecKey(id string) string {
	s := strings.ReplaceAll(id, "v", "")
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return strconv.FormatInt(n, 10)
	}
	return id
}

// pmmrecImages copies the images of the exported items into
// <name>_items_images.lmdb, keyed as PMMRec looks them up. The values are
// the encoded image bytes, not PMMRec's pickled LMDB_Image objects (see the
// README): a loader needs a two-line change to decode them.
func (e *exporter) pmmrecImages(items []store.Item, used []bool) error {
	src := e.ds.Path(store.ImagesDir)
	if _, err := os.Stat(src); err != nil {
		slog.Warn("pmmrec export: no images written", "reason", errNoImages)
		return nil
	}
	in, err := imagestore.Open(src, imagestore.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer in.Close()
	dst := e.out(e.o.Name + "_items_images.lmdb")
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("export pmmrec: %w", err)
	}
	out, err := imagestore.Open(dst, imagestore.Options{})
	if err != nil {
		return err
	}
	b := &imagestore.Batch{}
	for i, it := range items {
		if !used[i] {
			continue
		}
		img, ok, err := in.Get(it.ID)
		if err != nil {
			out.Close()
			return err
		}
		if !ok {
			continue
		}
		led, _, err := in.Ledger(it.ID)
		if err != nil {
			out.Close()
			return err
		}
		b.PutImage(PMMRecKey(it.ID), img, led)
		if b.Len() >= 1000 {
			if err := out.Commit(b); err != nil {
				out.Close()
				return err
			}
			b.Reset()
		}
	}
	if err := out.Commit(b); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	af, err := store.OpenAtomicFile(dst)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := io.Copy(af, in); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return af.Commit()
}

// parquet writes items, users, interactions and every split joined with the
// raw ids, each a plain Parquet file.
func (e *exporter) parquet() error {
	for _, f := range []string{store.ItemsFile, store.UsersFile, store.InteractionsFile} {
		if err := copyFile(e.out(f), e.ds.Path(f)); err != nil {
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
	names := e.ds.SplitNames()
	if e.o.Split != "" {
		names = []string{e.o.Split}
	}
	if len(names) == 0 {
		return errors.New("export parquet: the dataset has no split")
	}
	for _, n := range names {
		s, err := store.ReadSplit(e.ctx, store.SplitPath(e.ds.Dir, n))
		if err != nil {
			return err
		}
		if err := store.WriteLabeledSplit(e.out("split_"+n+".parquet"), s, users, items); err != nil {
			return err
		}
	}
	return nil
}

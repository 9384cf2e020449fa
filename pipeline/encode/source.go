package encode

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/pipeline/export"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// source supplies the input of each item for one modality.
type source interface {
	// has reports whether item r has an input.
	has(r int) bool
	// input reads item r's input; safe for concurrent use.
	input(r int) (extract.Input, error)
	// describe names the source for logs and provenance.
	describe() string
	close() error
}

// textSource gives each item's text: export.ItemText, the text the RecBole
// export writes (title, categories and brand; the free text or the
// description when those are all empty).
type textSource struct {
	items []store.Item
	texts []string
}

func newTextSource(items []store.Item) *textSource {
	s := &textSource{items: items, texts: make([]string, len(items))}
	for r := range items {
		s.texts[r] = export.ItemText(&items[r])
	}
	return s
}

func (s *textSource) has(r int) bool { return s.texts[r] != "" }

// dropWords replaces every text by a copy with each word dropped with
// probability p (at least one kept). The draws for item r come from a PCG
// seeded with r, so they do not depend on the run, the shard or the order.
func (s *textSource) dropWords(p float64) {
	for r, t := range s.texts {
		words := strings.Fields(t)
		if len(words) == 0 {
			continue
		}
		rng := rand.New(rand.NewPCG(0x3ad0f, uint64(r)))
		kept := words[:0:0]
		for _, w := range words {
			if rng.Float64() >= p {
				kept = append(kept, w)
			}
		}
		if len(kept) == 0 {
			kept = append(kept, words[rng.IntN(len(words))])
		}
		s.texts[r] = strings.Join(kept, " ")
	}
}

func (s *textSource) input(r int) (extract.Input, error) {
	return extract.Input{Item: int32(r), ID: s.items[r].ID, Text: s.texts[r]}, nil
}

func (s *textSource) describe() string { return "item text (title, categories, brand)" }

func (s *textSource) close() error { return nil }

// fingerprint is the sha256 of every item's text, in index order: a
// re-run reuses vectors only when it is unchanged.
func (s *textSource) fingerprint() string {
	h := sha256.New()
	var buf []byte
	for r, t := range s.texts {
		buf = fmt.Appendf(buf[:0], "%d\t%d\t", r, len(t))
		h.Write(buf)
		h.Write([]byte(t))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lmdbSource reads images from the dataset's images.lmdb (key = raw id).
type lmdbSource struct {
	items   []store.Item
	st      *imagestore.Store
	present []bool
}

func newLMDBSource(dir string, items []store.Item) (*lmdbSource, error) {
	st, err := imagestore.Open(dir, imagestore.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	s := &lmdbSource{items: items, st: st, present: make([]bool, len(items))}
	for r := range items {
		if imagestore.ValidKey(items[r].ID) != nil {
			continue // an id LMDB cannot store has no image
		}
		ok, err := st.Has(items[r].ID)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("image store %s: item %s: %w", dir, items[r].ID, err)
		}
		s.present[r] = ok
	}
	return s, nil
}

func (s *lmdbSource) has(r int) bool { return s.present[r] }

func (s *lmdbSource) input(r int) (extract.Input, error) {
	id := s.items[r].ID
	img, ok, err := s.st.Get(id)
	if err != nil {
		return extract.Input{}, err
	}
	if !ok {
		return extract.Input{}, fmt.Errorf("item %s: image vanished from %s", id, s.st.Dir())
	}
	return extract.Input{Item: int32(r), ID: id, Image: img}, nil
}

func (s *lmdbSource) describe() string { return store.ImagesDir }

func (s *lmdbSource) close() error { return s.st.Close() }

// imageExtRank returns the preference of an image file extension when an
// item has several files (lower first), or -1 for other files.
func imageExtRank(ext string) int {
	switch strings.ToLower(ext) {
	case ".jpg":
		return 0
	case ".jpeg":
		return 1
	case ".png":
		return 2
	case ".webp":
		return 3
	case ".gif":
		return 4
	}
	return -1
}

// folderSource reads images from <dir>/<raw id>.<ext>.
type folderSource struct {
	dir   string
	items []store.Item
	paths []string
}

func newFolderSource(dir string, items []store.Item) (*folderSource, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, badInput("images folder: %w", err)
	}
	byID := map[string]string{}
	rank := map[string]int{}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		k := imageExtRank(filepath.Ext(e.Name()))
		if k < 0 {
			continue
		}
		id := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		if old, ok := rank[id]; !ok || k < old {
			byID[id], rank[id] = filepath.Join(dir, e.Name()), k
		}
	}
	s := &folderSource{dir: dir, items: items, paths: make([]string, len(items))}
	for r := range items {
		s.paths[r] = byID[items[r].ID]
	}
	return s, nil
}

func (s *folderSource) has(r int) bool { return s.paths[r] != "" }

func (s *folderSource) input(r int) (extract.Input, error) {
	data, err := os.ReadFile(s.paths[r])
	if errors.Is(err, fs.ErrNotExist) {
		return extract.Input{}, fmt.Errorf("item %s: image file vanished: %w", s.items[r].ID, err)
	}
	if err != nil {
		return extract.Input{}, fmt.Errorf("item %s: %w", s.items[r].ID, err)
	}
	return extract.Input{Item: int32(r), ID: s.items[r].ID, Image: data}, nil
}

func (s *folderSource) describe() string { return "folder " + s.dir }

func (s *folderSource) close() error { return nil }

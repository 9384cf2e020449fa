package crawl

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/mmpipe/mmpipe/store"
)

// task is one item to crawl: its candidate URLs (tried in order until one
// gives a valid image) or, with --from-dir, its file.
type task struct {
	id   string
	urls []string
	path string
	host string // scheduling key: the host of the first URL ("" for files)
}

// BadInputError reports unusable input (a missing or malformed URL list,
// folder or dataset); the CLI maps it to exit code 2.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// Is makes a BadInputError match store.ErrBadInput.
func (e *BadInputError) Is(target error) bool { return target == store.ErrBadInput }

func badInput(format string, args ...any) error {
	return &BadInputError{fmt.Errorf(format, args...)}
}

// InShard reports whether id belongs to shard i of n: FNV-1a (64 bit) of the
// raw id's UTF-8 bytes, modulo n. The assignment depends on nothing but the
// id, so every worker of a sharded crawl agrees on it.
func InShard(id string, i, n int) bool {
	if n <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()%uint64(n) == uint64(i)
}

// hostOf returns the lower-cased host name of a URL ("" when unparsable).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// tasksFromItems makes one task per item of the dataset's items.parquet.
func tasksFromItems(ctx context.Context, dataset string) ([]task, error) {
	path := filepath.Join(dataset, store.ItemsFile)
	if _, err := os.Stat(path); err != nil {
		return nil, badInput("crawl: %s has no %s (ingest it first, or give --urls FILE or --from-dir DIR): %w", dataset, store.ItemsFile, err)
	}
	items, err := store.ReadItems(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("crawl: %w", err)
	}
	tasks := make([]task, 0, len(items))
	for _, it := range items {
		urls := make([]string, 0, len(it.ImageURLs))
		for _, u := range it.ImageURLs {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
		t := task{id: it.ID, urls: urls}
		if len(urls) > 0 {
			t.host = hostOf(urls[0])
		}
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// urlTable groups (id, url) rows into tasks in order of first appearance.
type urlTable struct {
	tasks []task
	index map[string]int
}

func (t *urlTable) add(id, u string) {
	id, u = strings.TrimSpace(id), strings.TrimSpace(u)
	if t.index == nil {
		t.index = map[string]int{}
	}
	i, ok := t.index[id]
	if !ok {
		i = len(t.tasks)
		t.index[id] = i
		t.tasks = append(t.tasks, task{id: id})
	}
	if u != "" && !slices.Contains(t.tasks[i].urls, u) {
		t.tasks[i].urls = append(t.tasks[i].urls, u)
		if len(t.tasks[i].urls) == 1 {
			t.tasks[i].host = hostOf(u)
		}
	}
}

// Column names accepted in a URL list, in order of preference.
var (
	idColumns  = []string{"item_id", "id", "key", "asin"}
	urlColumns = []string{"url", "image_url", "imurl", "imageurl"}
)

// tasksFromURLFile reads an `item_id,url` list: CSV (a header naming the
// columns is optional; without one the first two columns are used; several
// rows per item give fallback URLs in order) or Parquet (string columns
// item_id and url).
func tasksFromURLFile(ctx context.Context, path string) ([]task, error) {
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		return tasksFromParquet(ctx, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, badInput("crawl: --urls: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	if strings.EqualFold(filepath.Ext(path), ".tsv") {
		r.Comma = '\t'
	}
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	r.LazyQuotes = true
	idCol, urlCol := 0, 1
	var t urlTable
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badInput("crawl: --urls %s: %w", path, err)
		}
		if line == 1 {
			if i, j := findColumn(rec, idColumns), findColumn(rec, urlColumns); i >= 0 && j >= 0 {
				idCol, urlCol = i, j
				continue
			}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // blank line
		}
		if len(rec) <= max(idCol, urlCol) {
			return nil, badInput("crawl: --urls %s:%d: want item_id,url, got %d field(s)", path, line, len(rec))
		}
		if strings.TrimSpace(rec[idCol]) == "" {
			return nil, badInput("crawl: --urls %s:%d: empty item id", path, line)
		}
		t.add(rec[idCol], rec[urlCol])
		if line%65536 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return t.tasks, nil
}

func findColumn(header []string, names []string) int {
	for _, n := range names {
		for i, h := range header {
			if strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), n) {
				return i
			}
		}
	}
	return -1
}

func tasksFromParquet(ctx context.Context, path string) ([]task, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, badInput("crawl: --urls %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, badInput("crawl: --urls %s: %w", path, err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, badInput("crawl: --urls %s: %w", path, err)
	}
	defer tbl.Release()
	names := make([]string, tbl.NumCols())
	for i := range names {
		names[i] = tbl.Schema().Field(i).Name
	}
	ic, uc := findColumn(names, idColumns), findColumn(names, urlColumns)
	if ic < 0 || uc < 0 {
		return nil, badInput("crawl: --urls %s: want columns item_id and url, have %v", path, names)
	}
	ids, err := stringValues(tbl.Column(ic))
	if err != nil {
		return nil, badInput("crawl: --urls %s: column %s: %w", path, names[ic], err)
	}
	urls, err := stringValues(tbl.Column(uc))
	if err != nil {
		return nil, badInput("crawl: --urls %s: column %s: %w", path, names[uc], err)
	}
	var t urlTable
	for i := range ids {
		if ids[i] == "" {
			return nil, badInput("crawl: --urls %s: row %d: empty item id", path, i)
		}
		t.add(ids[i], urls[i])
	}
	return t.tasks, nil
}

// stringValues flattens a string-like or integer column ("" for nulls).
func stringValues(col *arrow.Column) ([]string, error) {
	var out []string
	for _, c := range col.Data().Chunks() {
		for i := 0; i < c.Len(); i++ {
			if c.IsNull(i) {
				out = append(out, "")
				continue
			}
			switch a := c.(type) {
			case *array.String:
				out = append(out, a.Value(i))
			case *array.LargeString:
				out = append(out, a.Value(i))
			case *array.Binary:
				out = append(out, string(a.Value(i)))
			case *array.Int64:
				out = append(out, strconv.FormatInt(a.Value(i), 10))
			case *array.Int32:
				out = append(out, strconv.FormatInt(int64(a.Value(i)), 10))
			default:
				return nil, fmt.Errorf("type %s is not a string or integer column", c.DataType())
			}
		}
	}
	return out, nil
}

// imageExts are the file extensions --from-dir reads.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true}

// tasksFromDir lists the image files of dir (not recursive): the key is the
// file name without its extension. When two files give the same key, the
// first in name order wins and the others are reported.
func tasksFromDir(dir string) ([]task, []string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, badInput("crawl: --from-dir: %w", err)
	}
	var tasks []task
	var dups []string
	seen := map[string]string{}
	for _, e := range ents {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if e.IsDir() || strings.HasPrefix(name, ".") || !imageExts[ext] {
			continue
		}
		id := strings.TrimSuffix(name, filepath.Ext(name))
		if prev, ok := seen[id]; ok {
			dups = append(dups, fmt.Sprintf("%s (key %q already from %s)", name, id, prev))
			continue
		}
		seen[id] = name
		tasks = append(tasks, task{id: id, path: filepath.Join(dir, name)})
	}
	return tasks, dups, nil
}

package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ReadFeatCLS reads a headerless little-endian float32 feature file (the
// .feat1CLS/.feat2CLS files of UniSRec, MISSRec and RecBole's pre-trained
// item features), dim values per row. It returns the number of rows and the
// values, rows*dim of them. The file size must be a multiple of 4*dim.
func ReadFeatCLS(path string, dim int) (rows int, data []float32, err error) {
	if dim <= 0 {
		return 0, nil, fmt.Errorf("featcls: %s: dim must be positive, got %d", path, dim)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("featcls: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("featcls: %w", err)
	}
	size := st.Size()
	rowBytes := int64(4) * int64(dim)
	if size%rowBytes != 0 {
		return 0, nil, fmt.Errorf("featcls: %s: size %d bytes is not a multiple of 4*dim = %d (dim %d): %d rows and %d bytes left over",
			path, size, rowBytes, dim, size/rowBytes, size%rowBytes)
	}
	rows = int(size / rowBytes)
	data = make([]float32, rows*dim)
	buf := make([]byte, min(size, npyChunk))
	for done := 0; done < len(data); {
		k := min(len(data)-done, len(buf)/4)
		n, err := io.ReadFull(f, buf[:4*k])
		if err != nil {
			return 0, nil, fmt.Errorf("featcls: %s: read at offset %d: got %d of %d bytes: %w", path, 4*done, n, 4*k, err)
		}
		decodeLEFloat32(data[done:done+k], buf)
		done += k
	}
	return rows, data, nil
}

// WriteFeatCLS writes data as a headerless little-endian float32 file. The
// row width is not stored: readers must know it. The file is written to a
// temporary file in the same directory, synced and renamed into place.
func WriteFeatCLS(path string, data []float32) error {
	if err := writeFileAtomicFunc(path, func(w io.Writer) error {
		return writeLEFloat32(w, data)
	}); err != nil {
		return fmt.Errorf("featcls: %w", err)
	}
	return nil
}

// pendingFile is a file being written under a temporary name next to its
// final path; commit syncs it and renames it into place, abort removes it.
type pendingFile struct {
	path string
	f    *os.File
	w    *bufio.Writer
	done bool
}

// newPendingFile creates a temporary file in path's directory, creating the
// directory if needed.
func newPendingFile(path string) (*pendingFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		return nil, fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	return &pendingFile{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// commit flushes, syncs, closes and renames the file into place, then syncs
// the directory (best effort). On error the temporary file is removed.
func (p *pendingFile) commit() error {
	if p.done {
		return fmt.Errorf("%s: already committed or aborted", p.path)
	}
	p.done = true
	tmp := p.f.Name()
	fail := func(step string, err error) error {
		p.f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %s %s: %w", p.path, step, tmp, err)
	}
	if err := p.w.Flush(); err != nil {
		return fail("write", err)
	}
	if err := p.f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := p.f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: close %s: %w", p.path, tmp, err)
	}
	// CreateTemp makes the file 0600; give it the usual permissions.
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: chmod %s: %w", p.path, tmp, err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: rename %s: %w", p.path, tmp, err)
	}
	if d, err := os.Open(filepath.Dir(p.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	RemoveStaleTemps(p.path)
	return nil
}

// abort closes and removes the temporary file; it is a no-op after commit.
func (p *pendingFile) abort() {
	if p.done {
		return
	}
	p.done = true
	p.f.Close()
	os.Remove(p.f.Name())
}

// writeFileAtomicFunc writes path through fill, atomically: fill writes to a
// buffered temporary file that is synced and renamed into place only if fill
// succeeds. Errors name path.
func writeFileAtomicFunc(path string, fill func(w io.Writer) error) error {
	p, err := newPendingFile(path)
	if err != nil {
		return err
	}
	if err := fill(p.w); err != nil {
		p.abort()
		return fmt.Errorf("%s: %w", path, err)
	}
	return p.commit()
}

package store

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Scratch is a large float32 array backed by a temporary file instead of
// the Go heap: the file is created in a directory of the caller's choice
// (the output's, so it is on a disk with room), unlinked at once (a crash
// leaves nothing behind) and mapped shared, so the kernel writes its pages
// back to disk under memory pressure instead of the process growing
// without bound. encode keeps token states this way: 2 million items × 50
// tokens × 768 would be 307 GB of heap.
type Scratch struct {
	Data []float32
	mem  []byte
}

// NewScratch returns a zeroed scratch array of n float32 values in dir.
func NewScratch(dir string, n int) (*Scratch, error) {
	if n == 0 {
		return &Scratch{Data: []float32{}}, nil
	}
	f, err := os.CreateTemp(dir, ".scratch-*")
	if err != nil {
		return nil, fmt.Errorf("scratch: %w", err)
	}
	defer f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return nil, fmt.Errorf("scratch: %w", err)
	}
	size := int64(n) * 4
	if err := f.Truncate(size); err != nil {
		return nil, fmt.Errorf("scratch: %d bytes in %s: %w", size, dir, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("scratch: mmap %d bytes: %w", size, err)
	}
	return &Scratch{Data: unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n), mem: mem}, nil
}

// Close unmaps the array (and so frees its disk space); Data must not be
// used afterwards.
func (s *Scratch) Close() error {
	if s == nil || s.mem == nil {
		return nil
	}
	mem := s.mem
	s.mem, s.Data = nil, nil
	if err := syscall.Munmap(mem); err != nil {
		return fmt.Errorf("scratch: munmap: %w", err)
	}
	return nil
}

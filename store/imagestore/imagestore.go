// Package imagestore is the LMDB image store of a dataset: the environment
// directory `<dataset>/images.lmdb/` with exactly two named databases,
//
//   - `images`: key = the item's raw id as UTF-8, value = the encoded image
//     bytes exactly as given (JPEG, PNG, WebP, GIF: as fetched, or re-encoded
//     when the caller set a max side);
//   - `ledger`: key = the item's raw id, value = one JSON object (LedgerEntry)
//     saying what happened to the item's image: url, status, error, bytes,
//     sha256, width, height, time...
//
// The main (unnamed) database holds nothing but those two names, so Python's
// `lmdb` (open with max_dbs=2) and PIL read the store as it is.
//
// Writes are batched: a Batch collects puts and deletes and Store.Commit
// applies it in one write transaction, growing the memory map (doubling it,
// up to Options.MaxMapSize) and retrying the whole transaction when LMDB
// reports MDB_MAP_FULL. Reads are safe from any number of goroutines at once
// (at most Options.MaxReaders in flight; more wait); a map grown by another
// process is adopted transparently (MDB_MAP_RESIZED). Scans (Keys, LedgerScan,
// Stats) read in chunks of short read transactions, so a long scan never pins
// old pages while a crawl writes; they see every key that exists for the whole
// scan, but are not one snapshot.
//
// Crash safety: a committed batch is durable (fsync at every commit, or, with
// Options.NoSync, at Close and Store.Sync; with NoSync a kill of the process
// still keeps committed batches, only a crash of the machine can lose them). A
// killed writer loses at most the batch it had not committed yet, never part
// of a batch. LMDB's copy-on-write B-tree never leaves a corrupt store behind;
// the reader slots of a killed process are cleared when a writer opens the
// store again. Any number of processes may open the store read-only while one
// writer process has it open.
//
// One process must not open the same directory twice at the same time (LMDB
// uses POSIX record locks, which the second close would drop for both); Open
// refuses to do so and names the directory.
package imagestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unicode/utf8"

	"github.com/PowerDNS/lmdb-go/lmdb"
)

// Database names inside the environment.
const (
	ImagesDB = "images"
	LedgerDB = "ledger"
)

// MaxKeyLen is the longest key LMDB accepts (its default compile-time limit).
const MaxKeyLen = 511

// Defaults for Options.
const (
	DefaultInitialMapSize = 64 << 20
	DefaultMaxMapSize     = 1 << 40
	DefaultMaxReaders     = 126
)

// Errors callers can test with errors.Is.
var (
	ErrReadOnly = errors.New("image store opened read-only")
	ErrClosed   = errors.New("image store is closed")
	ErrBadKey   = errors.New("invalid key")
	ErrNotStore = errors.New("not an image store")
)

// Options configure Open. The zero value opens for writing with the defaults.
type Options struct {
	// ReadOnly opens without write access; it works while a writer process
	// has the store open. The store must exist.
	ReadOnly bool
	// InitialMapSize is the memory map size of a new store (default 64 MiB).
	// An existing store keeps its recorded map size when that is larger.
	InitialMapSize int64
	// MaxMapSize caps the automatic growth (default 1 TiB). A batch that does
	// not fit under it fails with an MDB_MAP_FULL error and writes nothing.
	MaxMapSize int64
	// MaxReaders is the number of reader slots (default 126). At most that
	// many reads of this process run at once; more wait for a slot.
	MaxReaders int
	// NoSync skips the fsync at each commit; Close (and Sync) flush instead.
	NoSync bool
}

// Store is an open image store. Its methods are safe for concurrent use.
type Store struct {
	dir    string
	regKey string
	ro     bool
	noSync bool
	maxMap int64

	env    *lmdb.Env
	images lmdb.DBI
	ledger lmdb.DBI

	// mu is held shared by every transaction in flight and exclusively to
	// resize the map or close the environment: LMDB's mdb_env_set_mapsize
	// requires that no transaction of this process is active.
	mu     sync.RWMutex
	closed bool // guarded by mu

	wmu     sync.Mutex    // serialises Commit
	readers chan struct{} // read slots in flight
}

// open directories of this process; see the package comment.
var (
	openMu   sync.Mutex
	openDirs = map[string]bool{}
)

// Open opens (and, unless opts.ReadOnly, creates) the image store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.InitialMapSize <= 0 {
		opts.InitialMapSize = DefaultInitialMapSize
	}
	if opts.MaxMapSize <= 0 {
		opts.MaxMapSize = DefaultMaxMapSize
	}
	if opts.MaxMapSize < opts.InitialMapSize {
		opts.MaxMapSize = opts.InitialMapSize
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = DefaultMaxReaders
	}
	fail := func(err error) (*Store, error) {
		return nil, fmt.Errorf("imagestore: open %s: %w", dir, err)
	}
	if opts.ReadOnly {
		if _, err := os.Stat(filepath.Join(dir, "data.mdb")); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fail(fmt.Errorf("%w: no data.mdb", ErrNotStore))
			}
			return fail(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	regKey, err := filepath.Abs(dir)
	if err != nil {
		return fail(err)
	}
	if r, err := filepath.EvalSymlinks(regKey); err == nil {
		regKey = r
	}
	openMu.Lock()
	if openDirs[regKey] {
		openMu.Unlock()
		return fail(errors.New("already open in this process (LMDB allows one open per process)"))
	}
	openDirs[regKey] = true
	openMu.Unlock()

	s := &Store{
		dir:     dir,
		regKey:  regKey,
		ro:      opts.ReadOnly,
		noSync:  opts.NoSync && !opts.ReadOnly,
		maxMap:  opts.MaxMapSize,
		readers: make(chan struct{}, opts.MaxReaders),
	}
	if err := s.open(opts); err != nil {
		if s.env != nil {
			s.env.Close()
		}
		unregister(regKey)
		return fail(err)
	}
	return s, nil
}

func unregister(key string) {
	openMu.Lock()
	delete(openDirs, key)
	openMu.Unlock()
}

func (s *Store) open(opts Options) error {
	env, err := lmdb.NewEnv()
	if err != nil {
		return err
	}
	s.env = env
	if err := env.SetMaxDBs(2); err != nil {
		return err
	}
	if err := env.SetMaxReaders(opts.MaxReaders); err != nil {
		return err
	}
	var flags uint
	if opts.ReadOnly {
		flags |= lmdb.Readonly
	}
	if s.noSync {
		flags |= lmdb.NoSync
	}
	// No map size is set before opening, so an existing store opens with the
	// size recorded in it; a new one starts at LMDB's 1 MiB and grows to
	// InitialMapSize below.
	if err := env.Open(s.dir, flags, 0o644); err != nil {
		return err
	}
	if opts.ReadOnly {
		return env.View(func(txn *lmdb.Txn) error {
			var err error
			if s.images, err = txn.OpenDBI(ImagesDB, 0); err != nil {
				return dbiErr(ImagesDB, err)
			}
			if s.ledger, err = txn.OpenDBI(LedgerDB, 0); err != nil {
				return dbiErr(LedgerDB, err)
			}
			return nil
		})
	}
	info, err := env.Info()
	if err != nil {
		return err
	}
	if info.MapSize < opts.InitialMapSize {
		if err := env.SetMapSize(opts.InitialMapSize); err != nil {
			return err
		}
	}
	// Clear the reader slots of killed processes.
	if _, err := env.ReaderCheck(); err != nil {
		return err
	}
	return env.Update(func(txn *lmdb.Txn) error {
		var err error
		if s.images, err = txn.CreateDBI(ImagesDB); err != nil {
			return err
		}
		s.ledger, err = txn.CreateDBI(LedgerDB)
		return err
	})
}

func dbiErr(name string, err error) error {
	if lmdb.IsNotFound(err) {
		return fmt.Errorf("%w: no database %q", ErrNotStore, name)
	}
	return fmt.Errorf("database %q: %w", name, err)
}

// Dir returns the directory the store was opened from.
func (s *Store) Dir() string { return s.dir }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.ro }

// Close flushes (with NoSync) and closes the environment. Reads and commits in
// flight finish first; later calls fail with ErrClosed. Closing twice is a
// no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.noSync {
		if e := s.env.Sync(true); e != nil {
			err = fmt.Errorf("imagestore %s: sync on close: %w", s.dir, e)
		}
	}
	if e := s.env.Close(); e != nil && err == nil {
		err = fmt.Errorf("imagestore %s: close: %w", s.dir, e)
	}
	unregister(s.regKey)
	return err
}

// Sync flushes committed data to disk; needed only with Options.NoSync.
func (s *Store) Sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("imagestore %s: sync: %w", s.dir, ErrClosed)
	}
	if s.ro {
		return nil
	}
	if err := s.env.Sync(true); err != nil {
		return fmt.Errorf("imagestore %s: sync: %w", s.dir, err)
	}
	return nil
}

// isErrno reports whether err (possibly wrapped) is the LMDB error errno.
func isErrno(err error, errno lmdb.Errno) bool {
	var op *lmdb.OpError
	if errors.As(err, &op) {
		return op.Errno == errno
	}
	var e lmdb.Errno
	return errors.As(err, &e) && e == errno
}

// view runs fn in a read transaction. When the transaction cannot begin
// because another process grew the map beyond this process's mapping, view
// adopts the new size and tries again; fn runs at most once.
func (s *Store) view(fn lmdb.TxnOp) error {
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return ErrClosed
		}
		s.readers <- struct{}{}
		ran := false
		err := s.env.View(func(txn *lmdb.Txn) error {
			ran = true
			return fn(txn)
		})
		<-s.readers
		s.mu.RUnlock()
		if !ran && isErrno(err, lmdb.MapResized) {
			if err := s.adoptMapSize(); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// adoptMapSize takes over the map size another process recorded.
func (s *Store) adoptMapSize() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.env.SetMapSize(0)
}

// ValidKey reports why key cannot be a store key, or nil: keys are 1 to
// MaxKeyLen bytes of valid UTF-8.
func ValidKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrBadKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadKey)
	}
	return nil
}

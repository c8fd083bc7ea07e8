package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/quickimap/quickimap/store"
)

// A full disk. SQLite needs room to delete: every transaction, an expunge
// too, first appends its pages to the WAL, and a checkpoint may extend
// the database file; on a disk with no free block, the statements that
// would free space fail like the ones that would use it. So the store
// keeps a reserve: a file of Options.ReserveBytes allocated bytes in the data
// directory (ReserveName). The first write that fails for lack of space
// (SQLITE_FULL, or ENOSPC/EDQUOT writing a body file) removes it, and the
// store enters the full state:
//
//   - AppendMessages fails at once with store.ErrFull, without writing, so
//     that new mail does not eat the room the reserve gave back;
//   - every other write (flags, expunge, move, copy, which shares the
//     bodies, delete, the \Recent claim of SELECT) goes on and uses that
//     room, so that a user can free space;
//   - the state ends when there is room again (checked, at most once a
//     second, by the appends it refuses; see reserve.room): the reserve is
//     written back and appends go through.
//
// Space that an expunge frees inside the database (bodies under
// Options.LargeBody, rows, index pages) is reused by SQLite but is not
// free space for the file system; bodies kept as files give their space
// back at once. So the full state also ends when the database holds
// enough free pages, and the reserve is written back later, when the
// file system has room for it.

// ReserveName is the reserve file's name inside the data directory.
const ReserveName = "quickimap.reserve"

// DefaultReserveBytes is the reserve's default size: room for SQLite to
// commit deletes (WAL frames, a checkpoint, the -shm index) of a few
// thousand messages at once.
const DefaultReserveBytes = 8 << 20

// rearmInterval bounds how often a refused append checks for room.
const rearmInterval = time.Second

// reserve is the store's disk-space reserve and full state.
type reserve struct {
	path string // "" when there is no reserve
	size int64

	full atomic.Bool
	// missing: the full state ended on the database's free pages, with
	// no room yet to write the reserve back.
	missing atomic.Bool

	mu        sync.Mutex // serializes removal, re-creation and checks
	lastCheck time.Time  // guarded by mu
}

// isFull reports whether err is a failure for lack of space.
func isFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqliteFull {
		return true
	}
	return isNoSpaceErrno(err)
}

// sqliteFull is SQLITE_FULL, the primary result code of a write that
// found the disk full.
const sqliteFull = 13

// prepare creates the reserve file when it is missing or short. A disk
// without room for it twice over (as room requires) leaves the store in
// the full state; other errors are returned.
func (r *reserve) prepare() error {
	if r.path == "" {
		return nil
	}
	if fi, err := os.Stat(r.path); err == nil && fi.Size() >= r.size {
		return nil
	}
	// The rule of room: another process (a running server in the full
	// state, which removed the reserve) must not find its room taken.
	if free, ok := freeSpace(filepath.Dir(r.path)); ok && free < uint64(2*r.size) {
		r.full.Store(true)
		return nil
	}
	err := r.create()
	if isFull(err) {
		r.full.Store(true)
		return nil
	}
	return err
}

// create writes the reserve file: allocated blocks (fallocate) or real
// zeros, not a sparse file, which would hold no blocks; fsynced, so that
// its blocks are the file system's to give back.
func (r *reserve) create() error {
	tmp := r.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	done, err := allocate(f, r.size)
	buf := make([]byte, 1<<20)
	for left := r.size; !done && left > 0 && err == nil; {
		n := min(left, int64(len(buf)))
		_, err = f.Write(buf[:n])
		left -= n
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sqlite store: reserve file: %w", err)
	}
	return syncDir(filepath.Dir(r.path))
}

// release enters the full state and removes the reserve (if it is
// there), once.
func (r *reserve) release() {
	if r.full.Swap(true) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastCheck = time.Now()
	if r.path != "" {
		// A failure leaves nothing better to do: the error of the
		// write that filled the disk is what the caller reports.
		_ = os.Remove(r.path)
	}
}

// room returns store.ErrFull while the store is full and has not got
// room back; it ends the full state when it has: when the file system
// has room for the reserve and as much again (the reserve is written
// back), or, failing that, when the database's own free pages (left by
// expunges of bodies kept in it) come to the reserve's size (appends then
// reuse those pages, and the reserve is written back once the file system
// has room). inDB returns the bytes of the database's free pages.
func (r *reserve) room(inDB func() int64) error {
	if !r.full.Load() && !r.missing.Load() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	full := r.full.Load()
	if !full && !r.missing.Load() {
		return nil
	}
	if time.Since(r.lastCheck) < rearmInterval {
		if full {
			return errFull
		}
		return nil
	}
	r.lastCheck = time.Now()
	if r.path == "" {
		// No reserve to write back: try again, once a second.
		r.full.Store(false)
		return nil
	}
	free, known := freeSpace(filepath.Dir(r.path))
	if !known || free >= uint64(2*r.size) {
		if err := r.create(); err == nil {
			r.full.Store(false)
			r.missing.Store(false)
			return nil
		}
	}
	if !full {
		return nil // still missing; appends go on meanwhile
	}
	if inDB() >= r.size {
		r.full.Store(false)
		r.missing.Store(true)
		return nil
	}
	return errFull
}

var errFull = fmt.Errorf("%w: no room for new messages until space is freed", store.ErrFull)

// noteFull turns an error for lack of space into one that wraps
// store.ErrFull, and enters the full state; other errors are returned as
// they are.
func (s *Store) noteFull(err error) error {
	if err == nil || errors.Is(err, store.ErrFull) || !isFull(err) {
		return err
	}
	s.reserve.release()
	return fmt.Errorf("%w: %w", store.ErrFull, err)
}

// freePages returns the bytes of the database's free pages (0 when they
// cannot be read).
func (s *Store) freePages() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n, size int64
	r := s.readers()
	if r.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&n) != nil ||
		r.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size) != nil {
		return 0
	}
	return n * size
}

// Full reports whether the store is in the full state (see ReserveName).
func (s *Store) Full() bool { return s.reserve.full.Load() }

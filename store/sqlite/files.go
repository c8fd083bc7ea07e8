package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/quickimap/quickimap/store"
)

// Large message bodies live in files, one per body, under the data
// directory's bodies/ folder (bodies/ab/ab01...ff, 256 folders by the first
// two hex digits of a random 128-bit name, made when first needed); the bodies row keeps the name
// in its file column and an empty data blob. Smaller bodies stay in the
// database.
//
// Why: a body in SQLite is a chain of 4 KB overflow pages that SQLite
// copies page by page into one buffer, and the driver copies again into a
// new Go slice per read, so every FETCH BODY[] of a 2 MB message cost
// about 500 page reads and 4 MB of garbage. A file is read in large
// chunks into a reused buffer and sent as it is read.
//
// Durability: APPEND writes and fsyncs each file and then its folder
// before the transaction that refers to it commits, so a committed row
// never points to a missing file. A crash before the commit leaves an
// unreferenced file, which Check reports (it is harmless). A body row
// deleted by a commit (its last message expunged) records its file in
// dead_files by trigger, in the same transaction; after the commit the
// writer removes the files and the next transaction forgets the names.
// A crash in between only repeats the removal at the next start.
//
// Backup: the database alone no longer holds every message. Backup
// (backup.go, `quickimap backup`) copies the database and the files it
// names consistently while the server runs; by hand, stop the server and
// copy the data directory.

// bodyDir is the folder of body files inside the data directory.
const bodyDir = "bodies"

// files is the set of body files of a store.
type files struct {
	dir string // the bodies folder
	min int    // bodies of at least min bytes go to files; 0: none do
}

// newBodyName returns a fresh file name: 32 hex digits.
func newBodyName() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// validName reports whether name is one newBodyName could have made, so
// that a corrupt row cannot name a path outside the folder.
func validName(name string) bool {
	if len(name) != 32 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

func (f *files) path(name string) string { return filepath.Join(f.dir, name[:2], name) }

// large reports whether a body of n bytes goes to a file.
func (f *files) large(n int) bool { return f.min > 0 && n >= f.min }

// prepare creates the bodies folder if it is missing, durably; its
// subfolders are made as they are needed (put).
func (f *files) prepare() error {
	err := os.Mkdir(f.dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(f.dir))
}

// put writes bodies into new files, each fsynced, then fsyncs their
// folders, and returns the names. On error no file is left.
func (f *files) put(bodies [][]byte) ([]string, error) {
	names := make([]string, 0, len(bodies))
	dirs := map[string]bool{}
	fail := func(err error) ([]string, error) {
		f.remove(names)
		return nil, fmt.Errorf("sqlite store: body file: %w", err)
	}
	for _, b := range bodies {
		name := newBodyName()
		sub := filepath.Dir(f.path(name))
		if err := os.Mkdir(sub, 0o700); err == nil {
			dirs[f.dir] = true // a new entry in bodies/
		} else if !errors.Is(err, fs.ErrExist) {
			return fail(err)
		}
		fh, err := os.OpenFile(f.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(err)
		}
		names = append(names, name)
		_, err = fh.Write(b)
		if err == nil {
			err = fh.Sync()
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
		dirs[sub] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return fail(err)
		}
	}
	return names, nil
}

// remove deletes files; one that is already gone is no error.
func (f *files) remove(names []string) error {
	var errs []error
	for _, n := range names {
		if !validName(n) {
			continue
		}
		if err := os.Remove(f.path(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// open opens a body file of the given size.
func (f *files) open(name string, size int64) (*fileBody, error) {
	if !validName(name) {
		return nil, fmt.Errorf("sqlite store: invalid body file name %q", name)
	}
	fh, err := os.Open(f.path(name))
	if err != nil {
		return nil, err
	}
	return &fileBody{f: fh, size: size}, nil
}

func (f *files) read(name string, size int64) ([]byte, error) {
	b, err := f.open(name, size)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	buf := make([]byte, size)
	n, err := b.ReadAt(buf, 0)
	if n == len(buf) {
		err = nil
	} else if err == nil || err == io.EOF {
		err = fmt.Errorf("sqlite store: body file %s: %d bytes, want %d", name, n, size)
	}
	return buf, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileBody is a store.Body in a file.
type fileBody struct {
	f    *os.File
	size int64
}

func (b *fileBody) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.size {
		return 0, io.EOF
	}
	if rest := b.size - off; int64(len(p)) > rest {
		n, err := b.f.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return b.f.ReadAt(p, off)
}

func (b *fileBody) Size() int64   { return b.size }
func (b *fileBody) Bytes() []byte { return nil }
func (b *fileBody) Close() error  { return b.f.Close() }

// memBody is a store.Body held in memory, in a buffer of the store's
// pool.
type memBody struct {
	b    []byte
	buf  *[]byte
	pool *sync.Pool
}

func (b *memBody) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b.b)) {
		return 0, io.EOF
	}
	n := copy(p, b.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (b *memBody) Size() int64   { return int64(len(b.b)) }
func (b *memBody) Bytes() []byte { return b.b }

func (b *memBody) Close() error {
	if b.buf != nil && cap(*b.buf) <= maxPooledBody {
		b.pool.Put(b.buf)
	}
	b.b, b.buf = nil, nil
	return nil
}

var (
	_ store.Body = (*fileBody)(nil)
	_ store.Body = (*memBody)(nil)
)

// sweepFiles removes the files of bodies deleted by committed
// transactions (dead_files) and remembers their names, which the next
// write transaction deletes (forgetDeadFiles). It runs on the writer
// connection, between transactions, by the leader.
func (s *Store) sweepFiles(ctx context.Context) {
	if s.files.dir == "" {
		return
	}
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM dead_files LIMIT 1000`)
	if err != nil {
		return
	}
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			names = append(names, n)
		}
	}
	rows.Close()
	for _, n := range names {
		if slices.Contains(s.swept, n) {
			continue
		}
		if err := s.files.remove([]string{n}); err == nil {
			s.swept = append(s.swept, n)
		}
	}
}

// forgetDeadFiles deletes the names of removed files from dead_files, in
// the write transaction that has just begun.
func (s *Store) forgetDeadFiles(ctx context.Context) error {
	for _, n := range s.swept {
		if _, err := s.w.ExecContext(ctx, `DELETE FROM dead_files WHERE name = ?`, n); err != nil {
			return err
		}
	}
	return nil
}

// Package sqlite is quickimap's embedded default store, on SQLite through
// the pure-Go driver modernc.org/sqlite (no cgo).
//
// The database is one file, dir/quickimap.db, in WAL mode with
// synchronous=FULL: a write method returns only after its transaction's
// WAL frames are fsynced, as the store.Store contract requires.
//
// # Connections and write serialization
//
// SQLite allows one writer at a time per database anyway; letting several
// connections race for the write lock only produces SQLITE_BUSY retries
// (busy_timeout sleeps) and deferred transactions that fail to upgrade. So
// the store owns exactly one writer connection (a *sql.DB capped at one
// open connection, which the store holds as a *sql.Conn: see writerConn;
// its transactions are started with BEGIN IMMEDIATE) and funnels every
// mutation through Store.write, which takes a ctx-aware one-slot
// semaphore first. Reads go to a separate pool of query_only
// connections; in WAL mode they never block the writer nor wait for it and
// each sees the last committed state.
//
// Store.write is the only place that begins and commits a write
// transaction, and a mutation is a func(*dbtx) error that does not
// commit by itself.
//
// # Group commit
//
// With synchronous=FULL every commit costs an fsync of the WAL, which
// bounds a single writer to a few thousand commits per second whatever the
// CPU. Store.write therefore batches: callers enqueue their mutation, and
// whichever caller acquires the writer slot becomes the leader for one or
// more batches. A batch is one SQLite transaction; each queued mutation
// runs inside its own SAVEPOINT, so a mutation that fails is rolled back
// alone and its caller gets its error at once, while the others are
// committed together — one fsync for the whole batch — and their callers
// are woken only after that commit, so "returned nil" still means
// "durable". Concurrent callers (many IMAP connections) thus share fsyncs;
// a lone caller sees no difference.
//
// If the shared transaction itself breaks (SQLite rolls back a whole
// transaction when a statement is interrupted, as the driver does when a
// caller's context is cancelled mid-statement), the caller whose mutation
// broke it gets the error and the other mutations of the batch are run
// again in a new transaction. A mutation must therefore be re-runnable:
// it sets its results afresh each time it is called (every mutation in
// this package assigns, never accumulates across calls).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/quickimap/quickimap/internal/keylock"
	"github.com/quickimap/quickimap/store"
)

// FileName is the database's file name inside the data directory.
const FileName = "quickimap.db"

// Options tunes the store. The zero value is fine.
type Options struct {
	// BusyTimeout is how long a connection waits for a lock held by
	// another process (such as `quickimap check` running beside the
	// server) before failing. Default 10s.
	BusyTimeout time.Duration
	// ReadConns caps the read pool. Default max(4, GOMAXPROCS).
	ReadConns int

	// TombstoneMaxAge is how long an expunge tombstone (UID, MODSEQ) is
	// kept for CONDSTORE/QRESYNC change reports. Default 30 days.
	TombstoneMaxAge time.Duration
	// TombstoneMaxCount caps the tombstones kept per mailbox; the oldest
	// (lowest MODSEQ) go first. Default 100,000.
	TombstoneMaxCount int
	// LargeBody is the size from which a message body is kept in a file
	// of its own under the data directory's bodies/ folder instead of in
	// the database (files.go). Default 64 KiB; negative: every body in
	// the database. Bodies already stored stay where they are.
	LargeBody int
	// ReserveBytes is the size of the reserve file that lets deletes
	// commit on a full disk (full.go). Default DefaultReserveBytes;
	// negative: no reserve.
	ReserveBytes int64
	// Now is the store's clock: the expunge time of tombstones and the
	// default INTERNALDATE of appended messages. Default time.Now. Tests
	// inject a fake clock to expire tombstones.
	Now func() time.Time
	// Fsync says which writes wait for an fsync before they return:
	// FsyncAlways (the default) every write; FsyncOptimized only those
	// that add mail or change accounts and mailboxes (see Fsync).
	Fsync Fsync
	// LazySyncDelay bounds, under FsyncOptimized, how long a change
	// committed without fsync waits for one: the WAL is fsynced that long
	// after the first such commit at the latest. Default 1 second.
	LazySyncDelay time.Duration
	// ObserveTransaction, when not nil, is told of every write
	// transaction committed (one group commit: begin to commit) and how
	// long it took; durable: committed with an fsync (not lazy). It runs
	// on the writer, so it must be quick (a metrics update).
	ObserveTransaction func(d time.Duration, durable bool)
}

// Fsync is the store's durability policy for writes that add no mail.
type Fsync uint8

const (
	// FsyncAlways: every write is fsynced before it returns; a change
	// acknowledged to a client survives a power failure.
	FsyncAlways Fsync = iota
	// FsyncOptimized: writes that add mail or change accounts,
	// mailboxes or subscriptions (APPEND, delivery, COPY, MOVE, CREATE,
	// DELETE, RENAME, user changes) are fsynced before they return, as
	// with FsyncAlways. Flag changes, expunges and session checkpoints
	// are committed without waiting for an fsync: they survive a crash
	// of the process at once (the WAL is in the kernel's page cache) and
	// a power failure once the next fsynced write, the next checkpoint
	// or the periodic sync (LazySyncDelay) has run, whichever comes
	// first. A power failure can thus undo at most that last second of
	// flag changes and expunges, as a consistent prefix (the WAL keeps
	// commit order). Dovecot's default, mail_fsync = optimized, makes the
	// same trade.
	FsyncOptimized
)

// ParseFsync reads "always" or "optimized".
func ParseFsync(v string) (Fsync, error) {
	switch strings.ToLower(v) {
	case "always":
		return FsyncAlways, nil
	case "optimized":
		return FsyncOptimized, nil
	}
	return 0, fmt.Errorf("fsync must be always or optimized, not %q", v)
}

func (f Fsync) String() string {
	if f == FsyncOptimized {
		return "optimized"
	}
	return "always"
}

// maxBatch caps how many queued mutations one group commit runs.
const maxBatch = 256

// purgeLimit bounds how many tombstones one write transaction purges per
// mailbox (per window rule), so that the opportunistic purge never makes
// one request slow; a backlog shrinks over the following writes.
const purgeLimit = 1000

// Store is the SQLite store. It implements store.Store.
type Store struct {
	path   string
	w      writerConn    // the single writer connection (guarded by wsem)
	wsem   chan struct{} // one slot: held by the leader running batches
	closed bool          // guarded by wsem
	rdb    *sql.DB       // query_only readers
	rcache *stmtCache    // prepared statements of the readers
	opts   Options

	qmu   sync.Mutex
	queue []*writeReq // mutations waiting for a leader, in arrival order

	spellings keywordSpellings // each mailbox's spelling of its keywords (flags.go)

	reserve  reserve   // room for deletes on a full disk (full.go)
	files    files     // large bodies (files.go)
	swept    []string  // removed files still in dead_files (guarded by wsem)
	bodyBufs sync.Pool // *[]byte for bodies read from the database (OpenBody)

	// sessionLocks are the users' sessions locks (LockSessions): one
	// process writes the database, so a lock in the process is one
	// among every user of the store.
	sessionLocks keylock.Locks

	// The writer connection's last PRAGMA data_version (external.go),
	// guarded by wsem.
	dataVersionConn *sql.Conn
	dataVersion     int64

	lazy lazySync // the periodic WAL sync of FsyncOptimized

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the store in dir (created with mode 0700 if missing),
// creating or migrating the schema.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("sqlite store: empty data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	if err := privateFiles(dir, abs); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	if opts.TombstoneMaxAge <= 0 {
		opts.TombstoneMaxAge = 30 * 24 * time.Hour
	}
	if opts.TombstoneMaxCount <= 0 {
		opts.TombstoneMaxCount = 100_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LargeBody == 0 {
		opts.LargeBody = 64 << 10
	}
	if opts.LazySyncDelay <= 0 {
		opts.LazySyncDelay = time.Second
	}
	if opts.ReserveBytes == 0 {
		opts.ReserveBytes = DefaultReserveBytes
	}

	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", opts.BusyTimeout.Milliseconds())
	wdb, err := sql.Open("sqlite", fileURI(abs)+"?"+common+
		"&_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	s := &Store{path: abs, w: writerConn{db: wdb}, wsem: make(chan struct{}, 1), opts: opts,
		files: files{dir: filepath.Join(filepath.Dir(abs), bodyDir), min: max(opts.LargeBody, 0)},
		lazy:  lazySync{wal: abs + "-wal", delay: opts.LazySyncDelay}}
	// The writer goes first: it sets WAL mode (persistent in the file) and
	// creates the schema before any reader looks.
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	// From here on the store holds the writer connection.
	closeW := func() {
		s.w.release()
		wdb.Close()
	}
	if err := s.migrate(ctx); err != nil {
		closeW()
		return nil, err
	}
	if err := s.files.prepare(); err != nil {
		closeW()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	if opts.ReserveBytes > 0 {
		s.reserve = reserve{path: filepath.Join(filepath.Dir(abs), ReserveName), size: opts.ReserveBytes}
	}
	if err := s.reserve.prepare(); err != nil {
		closeW()
		return nil, err
	}
	// Files of bodies deleted just before a crash.
	s.sweepFiles(ctx)

	// No mmap_size: with the file mapped, a page is read without a pread,
	// but in WAL mode a reader unmaps the whole file at the start of any
	// read transaction that follows a commit, and maps and faults the
	// pages in again; with writes between reads (STORE, APPEND: the
	// usual mix) that cost more than the preads it saved (BenchmarkLoad
	// mix-10 ~10% more CPU, store-flags ~20%).
	rdb, err := sql.Open("sqlite", fileURI(abs)+"?"+common+"&_query_only=1")
	if err != nil {
		closeW()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := rdb.PingContext(ctx); err != nil {
		closeW()
		rdb.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	s.rdb = rdb
	s.rcache = newStmtCache(rdb)
	return s, nil
}

// privateFiles keeps the store to its owner: the data directory 0700, the
// database and its -wal and -shm files (which hold the password hashes
// too) 0600. The database file is created here, empty, with that mode
// when it is missing, because SQLite gives its -wal and -shm files the
// mode of the database file, whatever the umask; files of an older
// store are changed.
func privateFiles(dir, db string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&0o700); err != nil {
			return fmt.Errorf("data directory %s is open to others (mode %v): %w", dir, perm, err)
		}
	}
	f, err := os.OpenFile(db, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, name := range []string{db, db + "-wal", db + "-shm"} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(name, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileURI turns an absolute path into an SQLite URI filename, escaping the
// characters that URIs give a meaning to.
func fileURI(path string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(path))
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the store. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Wait for the running batch; later writes fail.
		s.wsem <- struct{}{}
		s.closed = true
		s.lazy.close()
		// Best effort: keep the query planner's statistics current.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if c, err := s.w.get(ctx); err == nil {
			_, _ = c.ExecContext(ctx, `PRAGMA optimize`)
		}
		cancel()
		werr := s.w.release()
		<-s.wsem
		s.rcache.close()
		s.closeErr = errors.Join(s.rdb.Close(), werr, s.w.db.Close())
	})
	return s.closeErr
}

// writeReq is one queued mutation.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *dbtx) error
	lazy bool          // may be committed without fsync (see writeLazy)
	err  error         // valid once done is closed
	done chan struct{} // closed when the mutation is committed or has failed
}

func (r *writeReq) finish(err error) {
	r.err = err
	close(r.done)
}

func (r *writeReq) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// write runs fn in a write transaction on the single writer connection and
// commits it; the change is durable when write returns nil. fn must not
// commit or roll back; it may be called more than once (see Group commit
// in the package documentation) and must set its results afresh each time.
func (s *Store) write(ctx context.Context, fn func(tx *dbtx) error) error {
	return s.noteFull(s.enqueue(ctx, fn, false))
}

// writeLazy is write for a change that may be lost in a crash: when every
// mutation of a batch is lazy, the batch is committed with
// synchronous=NORMAL, without an fsync of the WAL. The change is atomic
// and visible to readers when writeLazy returns, and becomes durable with
// the next commit that is fsynced (the WAL is one file, synced as a
// whole) or the next checkpoint (SQLite syncs the WAL before it). A lazy
// mutation batched with a durable one is fsynced with it.
func (s *Store) writeLazy(ctx context.Context, fn func(tx *dbtx) error) error {
	return s.noteFull(s.enqueue(ctx, fn, true))
}

// writeMeta is write for a change that adds no mail (flags, expunges,
// session checkpoints): lazy under FsyncOptimized, durable otherwise.
func (s *Store) writeMeta(ctx context.Context, fn func(tx *dbtx) error) error {
	return s.noteFull(s.enqueue(ctx, fn, s.opts.Fsync == FsyncOptimized))
}

func (s *Store) enqueue(ctx context.Context, fn func(tx *dbtx) error, lazy bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &writeReq{ctx: ctx, fn: fn, lazy: lazy, done: make(chan struct{})}
	s.qmu.Lock()
	s.queue = append(s.queue, req)
	s.qmu.Unlock()

	select {
	case <-req.done:
		return req.err
	case s.wsem <- struct{}{}:
		// Leader: run batches until ours is done (an earlier leader may
		// have run it already).
		for !req.finished() {
			s.runBatch(s.takeBatch())
		}
		<-s.wsem
		return req.err
	case <-ctx.Done():
		if s.dequeue(req) {
			return ctx.Err()
		}
		// A leader has taken it: its outcome is decided by that batch.
		<-req.done
		return req.err
	}
}

// takeBatch removes up to maxBatch requests from the front of the queue.
func (s *Store) takeBatch() []*writeReq {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	n := min(len(s.queue), maxBatch)
	batch := make([]*writeReq, n)
	copy(batch, s.queue)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch
}

// dequeue removes req from the queue if no leader has taken it yet.
func (s *Store) dequeue(req *writeReq) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for i, r := range s.queue {
		if r == req {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return true
		}
	}
	return false
}

// runBatch runs the requests in one transaction, each in a savepoint, and
// commits once. Every request is finished when it returns.
func (s *Store) runBatch(batch []*writeReq) {
	// The transaction outlives any single caller: it must not be rolled
	// back because one caller's context ends.
	bg := context.Background()
	pending := batch
retry:
	for len(pending) > 0 {
		start := time.Now()
		lazy := allLazy(pending)
		err := errStoreClosed
		if !s.closed {
			err = s.begin(bg, lazy)
		}
		if err != nil {
			for _, r := range pending {
				s.finish(r, fmt.Errorf("sqlite store: begin: %w", err))
			}
			return
		}
		if len(s.swept) > 0 {
			// Best effort: a name left over is removed again later.
			_ = s.forgetDeadFiles(bg)
		}
		wtx := &dbtx{w: &s.w}
		single := len(pending) == 1
		var ok []*writeReq
		for i, r := range pending {
			if err := r.ctx.Err(); err != nil {
				s.finish(r, err)
				continue
			}
			if single {
				// No savepoint needed: the transaction is the request's own.
				if err := r.fn(wtx); err != nil {
					s.rollback(bg)
					s.finish(r, err)
					return
				}
				ok = append(ok, r)
				break
			}
			if _, err := s.w.ExecContext(bg, `SAVEPOINT w`); err != nil {
				s.rollback(bg)
				for _, r := range pending[i:] {
					s.finish(r, fmt.Errorf("sqlite store: savepoint: %w", err))
				}
				pending = ok
				continue retry
			}
			ferr := r.fn(wtx)
			var serr error
			if ferr != nil {
				_, serr = s.w.ExecContext(bg, `ROLLBACK TO w; RELEASE w`)
			} else {
				_, serr = s.w.ExecContext(bg, `RELEASE w`)
			}
			if serr != nil {
				// The shared transaction is gone (SQLite rolled it back):
				// this request fails, the ones before it run again.
				s.rollback(bg)
				s.finish(r, cmpErr(ferr, fmt.Errorf("sqlite store: transaction aborted: %w", serr)))
				pending = append(ok, pending[i+1:]...)
				continue retry
			}
			if ferr != nil {
				s.finish(r, ferr)
				continue
			}
			ok = append(ok, r)
		}
		if len(ok) == 0 {
			s.rollback(bg)
			return
		}
		_, err = s.w.ExecContext(bg, `COMMIT`)
		if err != nil {
			// A failed COMMIT can leave the transaction open.
			s.rollback(bg)
			s.w.check(err)
			err = fmt.Errorf("sqlite store: %w: %w", errCommit, err)
		} else {
			if s.opts.ObserveTransaction != nil {
				s.opts.ObserveTransaction(time.Since(start), !lazy)
			}
			s.lazy.committed(lazy)
			s.swept = nil
			if wtx.freesBodies {
				if lazy {
					// The files go only once the rows that named them
					// are gone for good: a power failure must not bring
					// back a message whose body file was removed.
					s.lazy.sync()
				}
				s.sweepFiles(bg)
			}
		}
		for _, r := range ok {
			s.finish(r, err)
		}
		return
	}
}

// finish ends a request of a batch. A failure for lack of space releases
// the reserve at once (full.go), so that the requests of the batch that
// run again, and the next ones, have its room.
func (s *Store) finish(r *writeReq, err error) {
	if err != nil && isFull(err) {
		s.reserve.release()
	}
	r.finish(err)
}

var errStoreClosed = errors.New("store is closed")

// errCommit marks a failed COMMIT, after which the transaction may or may
// not be durable.
var errCommit = errors.New("commit")

// allLazy reports whether every request of a batch may skip the fsync.
func allLazy(batch []*writeReq) bool {
	for _, r := range batch {
		if !r.lazy {
			return false
		}
	}
	return true
}

// begin opens the write transaction on the writer connection, to be
// committed without fsync when lazy (synchronous=NORMAL; in WAL mode the
// database stays consistent, only the last commits may be lost in a
// crash) and with one otherwise (synchronous=FULL).
func (s *Store) begin(ctx context.Context, lazy bool) error {
	if _, err := s.w.get(ctx); err != nil {
		return err
	}
	if err := s.w.setLazy(ctx, lazy); err != nil {
		s.w.check(err)
		return err
	}
	_, err := s.w.ExecContext(ctx, `BEGIN IMMEDIATE`)
	s.w.check(err)
	return err
}

// rollback ends the write transaction, if SQLite has not already.
func (s *Store) rollback(ctx context.Context) {
	_, err := s.w.ExecContext(ctx, `ROLLBACK`)
	s.w.check(err)
}

// cmpErr returns the first non-nil error.
func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// readers runs single statements on the read pool, outside a
// transaction, with prepared statements cached.
func (s *Store) readers() pool { return pool{db: s.rdb, c: s.rcache} }

// read runs fn in a read transaction, which sees one consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *dbtx) error) error {
	tx, err := s.rdb.BeginTx(quiet(ctx), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite store: begin read: %w", err)
	}
	err = fn(&dbtx{tx: tx, c: s.rcache})
	tx.Rollback()
	if s.rcache.pending() {
		s.rcache.prepareWanted(ctx)
	}
	return err
}

// querier is what both *sql.Tx and *sql.DB offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

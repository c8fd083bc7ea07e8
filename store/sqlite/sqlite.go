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
// open connection, its transactions started with BEGIN IMMEDIATE) and
// funnels every mutation through Store.write, which takes a ctx-aware
// one-slot semaphore first. Reads go to a separate pool of query_only
// connections; in WAL mode they never block the writer nor wait for it and
// each sees the last committed state.
//
// Store.write is the only place that begins and commits a write
// transaction, and a mutation is a func(*sql.Tx) error that does not
// commit by itself. That is what group commit needs later: write can
// become a queue drained by one goroutine that runs each queued function
// inside a SAVEPOINT of one shared transaction (rolling back only the
// savepoint of a function that fails), commits once — one fsync for the
// whole batch — and then wakes every caller. No caller changes.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

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
}

// Store is the SQLite store. It implements store.Store.
type Store struct {
	path string
	wdb  *sql.DB       // the single writer connection
	rdb  *sql.DB       // query_only readers
	wsem chan struct{} // one slot: held while a write transaction runs

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
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}

	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", opts.BusyTimeout.Milliseconds())
	wdb, err := sql.Open("sqlite", fileURI(abs)+"?"+common+
		"&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	s := &Store{path: abs, wdb: wdb, wsem: make(chan struct{}, 1)}
	// The writer goes first: it sets WAL mode (persistent in the file) and
	// creates the schema before any reader looks.
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	if err := s.migrate(ctx); err != nil {
		wdb.Close()
		return nil, err
	}
	if err := os.Chmod(abs, 0o600); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}

	rdb, err := sql.Open("sqlite", fileURI(abs)+"?"+common+"&_query_only=1")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := rdb.PingContext(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	s.rdb = rdb
	return s, nil
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
		// Best effort: keep the query planner's statistics current.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.wdb.ExecContext(ctx, `PRAGMA optimize`)
		cancel()
		s.closeErr = errors.Join(s.rdb.Close(), s.wdb.Close())
	})
	return s.closeErr
}

// write runs fn in a write transaction on the single writer connection and
// commits it; the change is durable when write returns nil. fn must not
// commit or roll back, and may be called only once.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wsem }()

	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite store: commit: %w", err)
	}
	return nil
}

// read runs fn in a read transaction, which sees one consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite store: begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// querier is what both *sql.Tx and *sql.DB offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

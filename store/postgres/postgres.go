// Package postgres is a store.Store backend on PostgreSQL, through
// github.com/jackc/pgx/v5 (pgxpool). Several quickimap processes may
// share one database: everything a process needs to agree on with the
// others lives in the database and is serialised by PostgreSQL's own row
// locks, never by a mutex in the process.
//
// # Data
//
// Accounts, mailboxes, subscriptions, messages (bodies included, as
// bytea), expunge tombstones and resumable sessions are tables of the
// schema (schema.go). Names are compared bytewise (COLLATE "C"), the
// order Go's string comparison uses, whatever the database's locale.
//
// # Locks and MODSEQ order
//
// Every write that changes a mailbox's messages starts by locking the
// mailbox row (SELECT ... FOR UPDATE) and takes its new MODSEQ, and its
// new UIDs, from that row in the same transaction. The lock is held until
// commit, so two writes to one mailbox commit in the order of their
// MODSEQs: a reader that has seen MODSEQ n has seen every change up to n,
// and ChangesSince(n) can never skip a change that another connection, or
// another process, commits later with a lower MODSEQ (RFC 7162 §3.1.7's
// HIGHESTMODSEQ promise holds across processes). COPY and MOVE lock both
// mailboxes in id order. Changes to a user's mailbox hierarchy (CREATE,
// DELETE, RENAME) lock the user's row first, so that two processes
// cannot interleave them. Reads that need several statements to agree run
// in a REPEATABLE READ read-only transaction (one snapshot). Deadlocks and
// serialisation failures, which the lock order should make impossible,
// are retried.
//
// # Schema migrations
//
// Open brings the schema to the version this code knows, under a
// transaction-scoped advisory lock, so that several processes starting
// at once run each migration exactly once; a database newer than the
// code is refused.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quickimap/quickimap/internal/keylock"
	"github.com/quickimap/quickimap/store"
)

// Options tunes the store. The zero value is fine.
type Options struct {
	// MaxConns caps the connection pool; 0 keeps pgxpool's default (or
	// the DSN's pool_max_conns).
	MaxConns int32
	// TombstoneMaxAge is how long an expunge tombstone (UID, MODSEQ) is
	// kept for CONDSTORE/QRESYNC change reports. Default 30 days.
	TombstoneMaxAge time.Duration
	// TombstoneMaxCount caps the tombstones kept per mailbox; the oldest
	// (lowest MODSEQ) go first. Default 100,000.
	TombstoneMaxCount int
	// Now is the store's clock: the expunge time of tombstones and the
	// default INTERNALDATE of appended messages. Default time.Now.
	Now func() time.Time
}

// purgeLimit bounds how many tombstones one write purges per mailbox, so
// that the opportunistic purge never makes one request slow.
const purgeLimit = 1000

// maxRetries bounds the retries of a transaction that failed with a
// deadlock or a serialisation failure.
const maxRetries = 10

// Store is the PostgreSQL store. It implements store.Store.
type Store struct {
	pool connPool
	opts Options

	// lockPool holds the connections that hold users' sessions locks
	// (LockSessions): a session-level advisory lock lives on one
	// connection for as long as its holder works, and the holder's own
	// queries go through pool. Apart, a burst of lock holders can never
	// take every connection their queries wait for.
	lockPool *pgxpool.Pool
	// sessionLocks serialises this process's holders of one user's lock
	// before they take a connection of lockPool: one connection per
	// user at most.
	sessionLocks keylock.Locks
}

var _ store.Store = (*Store)(nil)

// querier is what a pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Open connects to the database dsn (a PostgreSQL URL or key=value
// string), creating or migrating the schema.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.TombstoneMaxAge <= 0 {
		opts.TombstoneMaxAge = 30 * 24 * time.Hour
	}
	if opts.TombstoneMaxCount <= 0 {
		opts.TombstoneMaxCount = 100_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	lockPool, err := pgxpool.NewWithConfig(ctx, cfg.Copy())
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s := &Store{pool: connPool{pool}, opts: opts, lockPool: lockPool}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return s, nil
}

// Close implements store.Store. It may be called more than once.
func (s *Store) Close() error {
	s.pool.Close()
	s.lockPool.Close()
	return nil
}

// Pool returns the store's connection pool, for callers that need the
// database beyond the store (tests, maintenance).
func (s *Store) Pool() *pgxpool.Pool { return s.pool.Pool }

// write runs fn in a READ COMMITTED transaction and commits it; a commit
// that returns makes the change durable (with the server's default
// synchronous_commit). fn may run more than once (after a deadlock or a
// serialisation failure): it must set its results afresh on every call.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.run(ctx, pgx.TxOptions{}, fn)
}

// read runs fn in a REPEATABLE READ read-only transaction: every
// statement of fn sees the same snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.run(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) run(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		committing, err := s.once(ctx, opts, fn)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil && attempt < maxRetries &&
			(retryable(err) || attempt < s.pool.lostTries() && unavailable(err) && !committing) {
			continue
		}
		return mapErr(err)
	}
}

// once runs fn in one transaction; committing says that the error came
// from COMMIT, after which the transaction may or may not have landed.
// Before it, a connection lost leaves nothing done (PostgreSQL rolls back
// a transaction whose connection ends), so run may try again: a restart
// or a failover of the server costs the request a reconnection, not an
// error.
func (s *Store) once(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) (committing bool, err error) {
	tx, err := s.pool.Pool.BeginTx(ctx, opts)
	if err != nil {
		return false, err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return false, err
	}
	return true, tx.Commit(ctx)
}

// retryable reports a deadlock or a serialisation failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// mapErr turns PostgreSQL's errors that the store interface names into
// the store's errors (keeping the original in the chain).
func mapErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Code == "23505": // unique_violation: a concurrent insert won
		return fmt.Errorf("%w: %w", store.ErrExists, err)
	case pe.Code == "53100" || pe.Code == "53200": // disk_full, out_of_memory
		return fmt.Errorf("%w: %w", store.ErrFull, err)
	}
	return err
}

// noRows turns pgx.ErrNoRows into ErrNotFound about what.
func noRows(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", store.ErrNotFound, fmt.Sprintf(format, args...))
	}
	return err
}

// pgErr returns the server error in err's chain, or nil.
func pgErr(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// maxCachedStmts bounds the statement cache; every query of this package
// is a constant string, so the bound is only a guard.
const maxCachedStmts = 256

// stmtCache keeps the read pool's prepared statements per query text.
// SQLite spends more time parsing a statement than running a small query
// or insert: without caching, half of a durable APPEND's CPU time went
// into the SQL parser. (The writer connection has its own cache, see
// writerConn.)
//
// Preparing a statement on the pool may need a connection, so a query
// missing from the cache inside a read transaction runs unprepared and is
// prepared after the transaction ends (prepareWanted); a single statement
// outside a transaction (pool) is prepared first.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt), wanted: make(map[string]bool)}
}

func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok || c.m == nil {
		return st
	}
	// A script of several statements cannot be one prepared statement.
	if len(c.m)+len(c.wanted) < maxCachedStmts && !strings.Contains(query, ";") {
		c.wanted[query] = true
	}
	return nil
}

// prepareWanted prepares the queries that ran unprepared. It must be
// called with no transaction of the caller's open on c.db. The mutex is
// not held while preparing: preparing may wait for a pooled connection,
// and the transactions holding them need the mutex to finish. It runs on
// the caller's context: a caller that is gone prepares nothing (a query
// not prepared runs unprepared and is wanted again).
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	var queries []string
	for q := range c.wanted {
		queries = append(queries, q)
		delete(c.wanted, q)
	}
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, dup := c.m[q]; dup || c.m == nil {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

// prepared returns the cached statement for query, preparing it on the
// pool first if it is missing; nil if it cannot be prepared (the caller
// then runs the query unprepared, which reports the error). It must be
// called while the caller holds none of c.db's connections (no open
// transaction or unread row of its own), as preparing may need one.
func (c *stmtCache) prepared(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.m[query]
	full := c.m == nil || len(c.m)+len(c.wanted) >= maxCachedStmts
	c.mu.Unlock()
	if ok || full || strings.Contains(query, ";") {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if dup, ok := c.m[query]; ok || c.m == nil {
		st.Close()
		return dup // nil once the cache is closed
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.wanted) > 0
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil // a late prepareWanted closes what it made
}

// dbtx is a transaction: a read transaction on the read pool, whose
// queries use the pool's statement cache, or the write transaction open on
// the writer connection.
type dbtx struct {
	tx *sql.Tx // the read transaction; nil for the write transaction
	c  *stmtCache
	w  *writerConn // the write transaction's connection
	// freesBodies is set by a mutation that may delete messages, and so
	// bodies whose files go after the commit (files.go).
	freesBodies bool
}

func (t *dbtx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.c.get(query); st != nil {
		return t.tx.StmtContext(ctx, st)
	}
	return nil
}

func (t *dbtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.w == nil {
		ctx = quiet(ctx)
	}
	if t.w != nil {
		return t.w.ExecContext(ctx, query, args...)
	}
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *dbtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if t.w == nil {
		ctx = quiet(ctx)
	}
	if t.w != nil {
		return t.w.QueryContext(ctx, query, args...)
	}
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *dbtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if t.w == nil {
		ctx = quiet(ctx)
	}
	if t.w != nil {
		return t.w.QueryRowContext(ctx, query, args...)
	}
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// txStmt is a statement prepared for the rest of a transaction. Closing it
// leaves a cached statement prepared.
type txStmt struct {
	st    *sql.Stmt
	owned bool // not cached: Close closes it
	read  bool // of a read transaction: its statements run quiet
}

func (s *txStmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	if s.read {
		ctx = quiet(ctx)
	}
	return s.st.ExecContext(ctx, args...)
}

func (s *txStmt) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	if s.read {
		ctx = quiet(ctx)
	}
	return s.st.QueryContext(ctx, args...)
}

func (s *txStmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	if s.read {
		ctx = quiet(ctx)
	}
	return s.st.QueryRowContext(ctx, args...)
}

func (s *txStmt) Close() error {
	if s.owned {
		return s.st.Close()
	}
	return nil
}

// PrepareContext returns the statement for query, prepared for the rest
// of the transaction (from the cache when there is one).
func (t *dbtx) PrepareContext(ctx context.Context, query string) (*txStmt, error) {
	if t.w != nil {
		if st := t.w.stmt(ctx, query); st != nil {
			return &txStmt{st: st}, nil
		}
		if t.w.conn == nil {
			return nil, sql.ErrConnDone
		}
		st, err := t.w.conn.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		return &txStmt{st: st, owned: true}, nil
	}
	ctx = quiet(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return &txStmt{st: st, read: true}, nil
	}
	st, err := t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &txStmt{st: st, owned: true, read: true}, nil
}

// pool runs single statements on a connection pool outside any
// transaction (each one sees a consistent snapshot by itself) through the
// pool's statement cache. It is a querier.
type pool struct {
	db *sql.DB
	c  *stmtCache
}

func (p pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = quiet(ctx)
	if st := p.c.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, query, args...)
}

func (p pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = quiet(ctx)
	if st := p.c.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, query, args...)
}

func (p pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = quiet(ctx)
	if st := p.c.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// quiet returns the context a read statement runs under: ctx itself when it
// has ended (database/sql then refuses the statement at once), else ctx
// without its cancellation. For a context that can end, database/sql and
// the driver start a goroutine per statement (and per read transaction
// and result set) to interrupt it, which costs more than most statements
// here (MessageInfos of one message: 13 µs, 21 µs with those goroutines).
// So a caller whose context ends is refused its next statement, and the
// one in progress runs to its end: the longest, a mailbox's whole index,
// takes tens of milliseconds. Statements of the write transaction keep
// the cancellation: a write costs an fsync, and a caller cancelled during
// its statement fails alone (see runBatch).
func quiet(ctx context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

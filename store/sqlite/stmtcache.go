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

// stmtCache keeps prepared statements per query text. SQLite spends more
// time parsing a statement than running a small insert: without the cache
// half of a durable APPEND's CPU time went into the SQL parser.
//
// A statement cannot be prepared on the pool while a transaction holds
// the writer's only connection, so a query missing from the cache runs
// unprepared and is prepared after the transaction ends (prepareWanted).
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
// and the transactions holding them need the mutex to finish.
func (c *stmtCache) prepareWanted() {
	c.mu.Lock()
	var queries []string
	for q := range c.wanted {
		queries = append(queries, q)
		delete(c.wanted, q)
	}
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(context.Background(), q)
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

// dbtx is a transaction whose queries use the statement cache.
type dbtx struct {
	*sql.Tx
	c *stmtCache
}

func (t *dbtx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.c.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	return nil
}

func (t *dbtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *dbtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *dbtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// PrepareContext returns the cached statement bound to the transaction
// when there is one; closing it leaves the cached statement open.
func (t *dbtx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st, nil
	}
	return t.Tx.PrepareContext(ctx, query)
}

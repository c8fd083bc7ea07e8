package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
)

// writerConn is the store's single writer connection, held by the store
// for its whole life, with the statements prepared on it. Only the
// leader of the group commit (the holder of Store.wsem) uses it.
//
// Write transactions are BEGIN IMMEDIATE and COMMIT statements on this
// connection rather than database/sql transactions: a *sql.Tx starts a
// goroutine to watch its context and wraps every prepared statement anew
// for the transaction, which together cost about as much CPU as the
// INSERTs of a durable APPEND. Holding the connection also lets a
// statement be prepared while a transaction is open.
type writerConn struct {
	db    *sql.DB // capped at one connection: conn, while held
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	// lazy: conn is at synchronous=NORMAL rather than the FULL its DSN
	// sets.
	lazy bool
}

// setLazy sets the held connection's synchronous level for the next
// transaction: NORMAL when lazy, FULL otherwise. It must be called
// outside a transaction.
func (w *writerConn) setLazy(ctx context.Context, lazy bool) error {
	if w.lazy == lazy {
		return nil
	}
	q := `PRAGMA synchronous = FULL`
	if lazy {
		q = `PRAGMA synchronous = NORMAL`
	}
	if _, err := w.ExecContext(ctx, q); err != nil {
		return err
	}
	w.lazy = lazy
	return nil
}

// get returns the held connection, taking it (again) from db if needed.
func (w *writerConn) get(ctx context.Context) (*sql.Conn, error) {
	if w.conn == nil {
		c, err := w.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		w.conn, w.stmts, w.lazy = c, map[string]*sql.Stmt{}, false
	}
	return w.conn, nil
}

// release gives the connection back to db, closing its statements.
func (w *writerConn) release() error {
	if w.conn == nil {
		return nil
	}
	for _, st := range w.stmts {
		st.Close()
	}
	err := w.conn.Close()
	w.conn, w.stmts, w.lazy = nil, nil, false
	return err
}

// check drops a connection that database/sql has declared broken, so that
// the next transaction takes a new one.
func (w *writerConn) check(err error) {
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		w.release()
	}
}

// stmt returns the statement prepared for query, preparing it on a miss.
// nil means the query runs unprepared: a script of several statements
// cannot be one prepared statement, and the cache is bounded.
func (w *writerConn) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := w.stmts[query]; ok {
		return st
	}
	if w.conn == nil || len(w.stmts) >= maxCachedStmts || strings.Contains(query, ";") {
		return nil
	}
	st, err := w.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil // running it unprepared reports the error
	}
	w.stmts[query] = st
	return st
}

func (w *writerConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := w.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	if w.conn == nil {
		return nil, sql.ErrConnDone
	}
	return w.conn.ExecContext(ctx, query, args...)
}

func (w *writerConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := w.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	if w.conn == nil {
		return nil, sql.ErrConnDone
	}
	return w.conn.QueryContext(ctx, query, args...)
}

func (w *writerConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := w.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return w.conn.QueryRowContext(ctx, query, args...)
}

package sqlite

import (
	"context"
	"database/sql"
)

// writerT runs single statements on the writer connection for tests, each
// in a write transaction of its own (the store holds the connection).
type writerT struct{ s *Store }

func (s *Store) wdbT() writerT { return writerT{s} }

func (w writerT) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := w.s.write(ctx, func(tx *dbtx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// rowT is QueryRowContext's result: Scan runs the query.
type rowT struct {
	w     writerT
	ctx   context.Context
	query string
	args  []any
}

func (w writerT) QueryRowContext(ctx context.Context, query string, args ...any) rowT {
	return rowT{w, ctx, query, args}
}

func (r rowT) Scan(dest ...any) error {
	return r.w.s.write(r.ctx, func(tx *dbtx) error {
		return tx.QueryRowContext(r.ctx, r.query, r.args...).Scan(dest...)
	})
}

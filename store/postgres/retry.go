package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quickimap/quickimap/store"
)

// connPool is the store's pgxpool, for the statements that run alone,
// outside a transaction: a connection lost under them (PostgreSQL
// restarting, a failover to a replica: each pooled connection to the old
// primary fails once) is replaced and a read tried again; a write is
// tried again only when nothing of it reached the server. What still
// fails is reported as store.ErrUnavailable, which the server answers
// with NO [UNAVAILABLE]. (Transactions get the same treatment in run.)
type connPool struct{ *pgxpool.Pool }

// lostTries bounds the attempts of a statement whose connection was
// lost: every pooled connection may be dead at once (each fails once and
// is dropped), and one more reaches a new one.
func (p connPool) lostTries() int { return int(p.Config().MaxConns) + 1 }

// reads reports a statement that changes nothing and may run twice.
func reads(sql string) bool {
	s := strings.TrimSpace(sql)
	return len(s) >= 6 && strings.EqualFold(s[:6], "SELECT") && !strings.Contains(strings.ToUpper(s), "FOR UPDATE")
}

// again reports whether a statement that failed with err, on attempt
// (from 0), should run again.
func (p connPool) again(ctx context.Context, err error, sql string, attempt int) bool {
	return attempt < p.lostTries() && ctx.Err() == nil && connLost(err, reads(sql))
}

// wrapUnavailable marks a connection failure as store.ErrUnavailable.
func wrapUnavailable(ctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && unavailable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func (p connPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	for attempt := 0; ; attempt++ {
		tag, err := p.Pool.Exec(ctx, sql, args...)
		if err == nil || !p.again(ctx, err, sql, attempt) {
			return tag, wrapUnavailable(ctx, err)
		}
	}
}

// Query tries again only when the query could not be sent; an error
// that comes with the rows is marked when the caller reads it.
func (p connPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	for attempt := 0; ; attempt++ {
		rows, err := p.Pool.Query(ctx, sql, args...)
		if err == nil {
			return markedRows{Rows: rows, ctx: ctx}, nil
		}
		if !p.again(ctx, err, sql, attempt) {
			return rows, wrapUnavailable(ctx, err)
		}
	}
}

func (p connPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &retryRow{p: p, ctx: ctx, sql: sql, args: args}
}

// retryRow runs its query when scanned, so that a lost connection can be
// replaced and a read run again.
type retryRow struct {
	p    connPool
	ctx  context.Context
	sql  string
	args []any
}

func (r *retryRow) Scan(dest ...any) error {
	for attempt := 0; ; attempt++ {
		err := r.p.Pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
		if err == nil || !r.p.again(r.ctx, err, r.sql, attempt) {
			return wrapUnavailable(r.ctx, err)
		}
	}
}

// markedRows marks a connection failure met while reading rows.
type markedRows struct {
	pgx.Rows
	ctx context.Context
}

func (r markedRows) Err() error { return wrapUnavailable(r.ctx, r.Rows.Err()) }

// connLost reports a failure of the connection rather than of the
// statement, after which the statement may run again on another
// connection: a read always, a write only when pgx knows that nothing of
// it reached the server (a write whose effect may have landed must not
// be done twice).
func connLost(err error, readOnly bool) bool {
	return unavailable(err) && (readOnly || pgconn.SafeToRetry(err))
}

// unavailable reports an error that says the database cannot be reached
// or is not (or no longer) the primary, rather than that the request was
// wrong.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pe := pgErr(err); pe != nil {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", // admin_shutdown
			pe.Code == "57P02", // crash_shutdown
			pe.Code == "57P03", // cannot_connect_now
			pe.Code == "25006": // read_only_sql_transaction: a standby
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/store"
)

// expireBatch bounds the rows one ExpireSessions transaction deletes.
const expireBatch = 5000

// SaveSession implements store.Sessions.
func (s *Store) SaveSession(ctx context.Context, rec store.SessionRecord) error {
	if rec.ID == "" {
		return fmt.Errorf("%w: empty session id", store.ErrInvalid)
	}
	state := rec.State
	if state == nil {
		state = []byte{}
	}
	// The foreign key finds a missing user: the insert selects from
	// users, so no row means no user.
	tag, err := s.pool.Exec(ctx, `INSERT INTO sessions (user_id, id, client_ip, created, last_active, state)
		SELECT id, $2, $3, $4, $5, $6 FROM users WHERE id = $1
		ON CONFLICT (user_id, id) DO UPDATE SET client_ip = excluded.client_ip, created = excluded.created,
			last_active = excluded.last_active, state = excluded.state`,
		rec.UserID, rec.ID, rec.ClientIP, rec.Created.UnixNano(), rec.LastActive.UnixNano(), state)
	if err != nil {
		return mapSessionErr(err, rec.UserID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: account %d", store.ErrNotFound, rec.UserID)
	}
	return nil
}

// mapSessionErr: a user deleted between the SELECT and the insert shows
// as a foreign key violation.
func mapSessionErr(err error, userID int64) error {
	if pe := pgErr(err); pe != nil && pe.Code == "23503" {
		return fmt.Errorf("%w: account %d", store.ErrNotFound, userID)
	}
	return mapErr(err)
}

// LoadSession implements store.Sessions.
func (s *Store) LoadSession(ctx context.Context, userID int64, id string) (store.SessionRecord, error) {
	rec := store.SessionRecord{ID: id, UserID: userID}
	var created, active int64
	err := s.pool.QueryRow(ctx, `SELECT client_ip, created, last_active, state FROM sessions
		WHERE user_id = $1 AND id = $2`, userID, id).Scan(&rec.ClientIP, &created, &active, &rec.State)
	if err != nil {
		return store.SessionRecord{}, noRows(err, "session")
	}
	rec.Created, rec.LastActive = time.Unix(0, created), time.Unix(0, active)
	if rec.State == nil {
		rec.State = []byte{}
	}
	return rec, nil
}

// DeleteSession implements store.Sessions.
func (s *Store) DeleteSession(ctx context.Context, userID int64, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id = $2`, userID, id)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: session", store.ErrNotFound)
	}
	return nil
}

// UserSessions implements store.Sessions.
func (s *Store) UserSessions(ctx context.Context, userID int64) ([]store.SessionRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, id, client_ip, created, last_active FROM sessions
		WHERE user_id = $1 ORDER BY last_active, id`, userID)
	if err != nil {
		return nil, err
	}
	return collectSessions(rows)
}

func collectSessions(rows pgx.Rows) ([]store.SessionRecord, error) {
	var out []store.SessionRecord
	var rec store.SessionRecord
	var created, active int64
	_, err := pgx.ForEachRow(rows, []any{&rec.UserID, &rec.ID, &rec.ClientIP, &created, &active}, func() error {
		rec.Created, rec.LastActive = time.Unix(0, created), time.Unix(0, active)
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExpireSessions implements store.Sessions, in batches of expireBatch
// rows so that no transaction grows without bound.
func (s *Store) ExpireSessions(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE (user_id, id) IN (
			SELECT user_id, id FROM sessions WHERE last_active < $1 ORDER BY last_active LIMIT $2)`,
			before.UnixNano(), expireBatch)
		if err != nil {
			return total, mapErr(err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < expireBatch {
			return total, nil
		}
	}
}

// CountSessions implements store.Sessions. It counts the rows (an index
// scan): a store-wide counter row, as the SQLite store keeps, would
// serialise every session insert of every process on one row lock.
func (s *Store) CountSessions(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n)
	return n, err
}

// CountIPSessions implements store.Sessions.
func (s *Store) CountIPSessions(ctx context.Context, ip string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE client_ip = $1`, ip).Scan(&n)
	return n, err
}

// IPSessions implements store.Sessions.
func (s *Store) IPSessions(ctx context.Context, ip string, limit int) ([]store.SessionRecord, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, `SELECT user_id, id, client_ip, created, last_active FROM sessions
		WHERE client_ip = $1 ORDER BY last_active, user_id, id LIMIT $2`, ip, lim)
	if err != nil {
		return nil, err
	}
	return collectSessions(rows)
}

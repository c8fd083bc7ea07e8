package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/quickimap/quickimap/store"
)

// expireBatch bounds how many sessions one write transaction of
// ExpireSessions deletes, so that a large sweep never holds the writer
// (and every caller queued behind it) for long.
const expireBatch = 5000

// SaveSession implements store.Store.
func (s *Store) SaveSession(ctx context.Context, rec store.SessionRecord) error {
	if rec.ID == "" {
		return fmt.Errorf("%w: empty session id", store.ErrInvalid)
	}
	state := rec.State
	if state == nil {
		state = []byte{} // NOT NULL in spirit: a record always has a state, maybe empty
	}
	return s.write(ctx, func(tx *dbtx) error {
		if err := requireUser(ctx, tx, rec.UserID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (user_id, id, client_ip, created, last_active, state)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, id) DO UPDATE SET client_ip = excluded.client_ip, created = excluded.created,
				last_active = excluded.last_active, state = excluded.state`,
			rec.UserID, rec.ID, rec.ClientIP, rec.Created.UnixNano(), rec.LastActive.UnixNano(), state)
		return err
	})
}

// LoadSession implements store.Store.
func (s *Store) LoadSession(ctx context.Context, userID int64, id string) (store.SessionRecord, error) {
	var rec store.SessionRecord
	err := s.read(ctx, func(tx *dbtx) error {
		var created, active int64
		var state []byte
		err := tx.QueryRowContext(ctx, `SELECT client_ip, created, last_active, state FROM sessions
			WHERE user_id = ? AND id = ?`, userID, id).Scan(&rec.ClientIP, &created, &active, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: session", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		rec.ID, rec.UserID = id, userID
		rec.Created, rec.LastActive = time.Unix(0, created), time.Unix(0, active)
		rec.State = state
		if rec.State == nil {
			rec.State = []byte{}
		}
		return nil
	})
	if err != nil {
		return store.SessionRecord{}, err
	}
	return rec, nil
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, userID int64, id string) error {
	return s.write(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id = ?`, userID, id)
		return affectedOne(res, err, "session")
	})
}

// UserSessions implements store.Store.
func (s *Store) UserSessions(ctx context.Context, userID int64) ([]store.SessionRecord, error) {
	return s.sessionList(ctx, `SELECT user_id, id, client_ip, created, last_active FROM sessions
		WHERE user_id = ? ORDER BY last_active, id`, userID)
}

// sessionList runs a query of (user_id, id, client_ip, created,
// last_active) rows and returns them as records without state.
func (s *Store) sessionList(ctx context.Context, query string, args ...any) ([]store.SessionRecord, error) {
	var out []store.SessionRecord
	err := s.read(ctx, func(tx *dbtx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var rec store.SessionRecord
			var created, active int64
			if err := rows.Scan(&rec.UserID, &rec.ID, &rec.ClientIP, &created, &active); err != nil {
				return err
			}
			rec.Created, rec.LastActive = time.Unix(0, created), time.Unix(0, active)
			out = append(out, rec)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExpireSessions implements store.Store. It deletes in batches of
// expireBatch, one transaction each.
func (s *Store) ExpireSessions(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, func(tx *dbtx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE (user_id, id) IN (
				SELECT user_id, id FROM sessions WHERE last_active < ? ORDER BY last_active LIMIT ?)`,
				before.UnixNano(), expireBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < expireBatch {
			return total, nil
		}
	}
}

// CountSessions implements store.Store: one row of the counters table,
// kept by triggers.
func (s *Store) CountSessions(ctx context.Context) (int, error) {
	var n int
	err := s.read(ctx, func(tx *dbtx) error {
		return tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'sessions'`).Scan(&n)
	})
	return n, err
}

// CountIPSessions implements store.Store (an index range count).
func (s *Store) CountIPSessions(ctx context.Context, ip string) (int, error) {
	var n int
	err := s.read(ctx, func(tx *dbtx) error {
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE client_ip = ?`, ip).Scan(&n)
	})
	return n, err
}

// IPSessions implements store.Store. It reads the address's rows through
// the client_ip index and sorts them: it runs only when an address is at
// its session cap.
func (s *Store) IPSessions(ctx context.Context, ip string, limit int) ([]store.SessionRecord, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return s.sessionList(ctx, `SELECT user_id, id, client_ip, created, last_active FROM sessions
		WHERE client_ip = ? ORDER BY last_active, user_id, id LIMIT ?`, ip, limit)
}

// checkSessions returns the session invariants for Check: the counter
// agrees with the table. (Not yet called from Check, whose file belongs
// to another change; see TestSessionCounter.)
func checkSessions(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT 'sessions counter is ' || c.value || ', actual ' || (SELECT count(*) FROM sessions)
		FROM counters c WHERE c.name = 'sessions' AND c.value != (SELECT count(*) FROM sessions)`)
}

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
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (user_id, id, client_ip, created, last_active, state, owner, generation)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, id) DO UPDATE SET client_ip = excluded.client_ip, created = excluded.created,
				last_active = excluded.last_active, state = excluded.state, owner = excluded.owner,
				generation = excluded.generation`,
			rec.UserID, rec.ID, rec.ClientIP, rec.Created.UnixNano(), rec.LastActive.UnixNano(), state,
			rec.Owner, int64(rec.Generation))
		return err
	})
}

// LoadSession implements store.Store.
func (s *Store) LoadSession(ctx context.Context, userID int64, id string) (store.SessionRecord, error) {
	var rec store.SessionRecord
	err := s.read(ctx, func(tx *dbtx) error {
		var err error
		rec, err = loadSession(ctx, tx, userID, id)
		return err
	})
	if err != nil {
		return store.SessionRecord{}, err
	}
	return rec, nil
}

// sessionColumns are the columns scanSession reads, from sessions s
// LEFT JOIN nodes n on the owner.
const sessionColumns = `s.user_id, s.id, s.client_ip, s.created, s.last_active, s.owner, s.generation, n.heartbeat`

// sessionFrom is the FROM clause that goes with sessionColumns.
const sessionFrom = `sessions s LEFT JOIN nodes n ON n.name = s.owner AND s.owner != ''`

// scanSession reads sessionColumns, and the state after them when state
// is true.
func scanSession(row interface{ Scan(...any) error }, state bool) (store.SessionRecord, error) {
	var rec store.SessionRecord
	var created, active, gen int64
	var beat sql.NullInt64
	dest := []any{&rec.UserID, &rec.ID, &rec.ClientIP, &created, &active, &rec.Owner, &gen, &beat}
	if state {
		dest = append(dest, &rec.State)
	}
	if err := row.Scan(dest...); err != nil {
		return store.SessionRecord{}, err
	}
	rec.Created, rec.LastActive = time.Unix(0, created), time.Unix(0, active)
	rec.Generation = uint64(gen)
	if beat.Valid {
		rec.OwnerBeat = time.Unix(0, beat.Int64)
	}
	if state && rec.State == nil {
		rec.State = []byte{}
	}
	return rec, nil
}

// loadSession reads a record with its state.
func loadSession(ctx context.Context, q querier, userID int64, id string) (store.SessionRecord, error) {
	rec, err := scanSession(q.QueryRowContext(ctx, `SELECT `+sessionColumns+`, s.state FROM `+sessionFrom+`
		WHERE s.user_id = ? AND s.id = ?`, userID, id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return store.SessionRecord{}, fmt.Errorf("%w: session", store.ErrNotFound)
	}
	return rec, err
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
	return s.sessionList(ctx, `SELECT `+sessionColumns+` FROM `+sessionFrom+`
		WHERE s.user_id = ? ORDER BY s.last_active, s.id`, userID)
}

// sessionList runs a query of sessionColumns rows and returns them as
// records without state.
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
			rec, err := scanSession(rows, false)
			if err != nil {
				return err
			}
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
	return s.sessionList(ctx, `SELECT `+sessionColumns+` FROM `+sessionFrom+`
		WHERE s.client_ip = ? ORDER BY s.last_active, s.user_id, s.id LIMIT ?`, ip, limit)
}

// checkSessions returns the session invariants for Check: the counter
// agrees with the table. (Not yet called from Check, whose file belongs
// to another change; see TestSessionCounter.)
func checkSessions(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT 'sessions counter is ' || c.value || ', actual ' || (SELECT count(*) FROM sessions)
		FROM counters c WHERE c.name = 'sessions' AND c.value != (SELECT count(*) FROM sessions)`)
}

// ClaimSession implements store.Sessions: a read and an update in one
// write transaction, which the single writer serialises with every
// other. It is committed without an fsync (writeLazy): every resume
// claims, and the claim guards against other writers of the database,
// all of them in this process (one process writes it). A crash of the
// machine that loses a claim loses the process and its connections with
// it, and the restarted node releases its sessions anyway; the state a
// resume changes is written durably by the checkpoint that follows. (A
// LastActive the claim moves forward is then durable with the next
// fsynced commit of any kind.)
func (s *Store) ClaimSession(ctx context.Context, userID int64, id, node string, touchBefore, now time.Time) (store.SessionRecord, error) {
	var rec store.SessionRecord
	err := s.writeLazy(ctx, func(tx *dbtx) error {
		var err error
		if rec, err = loadSession(ctx, tx, userID, id); err != nil {
			return err
		}
		active := rec.LastActive
		if !touchBefore.IsZero() && active.Before(touchBefore) {
			active = now
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET owner = ?, generation = generation + 1, last_active = ?
			WHERE user_id = ? AND id = ?`, node, active.UnixNano(), userID, id)
		return err
	})
	if err != nil {
		return store.SessionRecord{}, err
	}
	return rec, nil
}

// UpdateSession implements store.Sessions.
func (s *Store) UpdateSession(ctx context.Context, rec store.SessionRecord, release bool) error {
	var state any // NULL keeps the stored state
	if rec.State != nil {
		state = rec.State
	}
	return s.write(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET last_active = ?, state = coalesce(?, state),
				owner = CASE WHEN ? THEN '' ELSE owner END
			WHERE user_id = ? AND id = ? AND generation = ?`,
			rec.LastActive.UnixNano(), state, release, rec.UserID, rec.ID, int64(rec.Generation))
		return staleOrMissing(ctx, tx, res, err, rec.UserID, rec.ID)
	})
}

// DeleteSessionIf implements store.Sessions.
func (s *Store) DeleteSessionIf(ctx context.Context, userID int64, id string, gen uint64) error {
	return s.write(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id = ? AND generation = ?`,
			userID, id, int64(gen))
		return staleOrMissing(ctx, tx, res, err, userID, id)
	})
}

// staleOrMissing tells why a conditional write of a session changed no
// row: ErrNotFound, or ErrStale when the session is there at another
// generation.
func staleOrMissing(ctx context.Context, q querier, res sql.Result, err error, userID int64, id string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil || n > 0 {
		return err
	}
	var one int
	err = q.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE user_id = ? AND id = ?`, userID, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: session", store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return store.ErrStale
}

// ReleaseNodeSessions implements store.Sessions (through the partial
// index sessions_owner).
func (s *Store) ReleaseNodeSessions(ctx context.Context, node string) (int, error) {
	if node == "" {
		return 0, nil
	}
	var n int64
	err := s.write(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET owner = '' WHERE owner = ?`, node)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// NodeSessions implements store.Sessions (through the partial index
// sessions_owner).
func (s *Store) NodeSessions(ctx context.Context, node string) ([]store.SessionRecord, error) {
	if node == "" {
		return nil, nil
	}
	return s.sessionList(ctx, `SELECT `+sessionColumns+` FROM `+sessionFrom+` WHERE s.owner = ?`, node)
}

// Heartbeat implements store.Sessions. It is written without an fsync
// (writeLazy): a heartbeat lost in a crash of the machine is one the
// node could not have used either.
func (s *Store) Heartbeat(ctx context.Context, node string, at time.Time) error {
	if node == "" {
		return fmt.Errorf("%w: empty node name", store.ErrInvalid)
	}
	return s.writeLazy(ctx, func(tx *dbtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (name, heartbeat) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET heartbeat = excluded.heartbeat`, node, at.UnixNano())
		return err
	})
}

// LockSessions implements store.Sessions with a lock in the process: the
// database has one writing process.
func (s *Store) LockSessions(ctx context.Context, userID int64) (func(), error) {
	return s.sessionLocks.Lock(ctx, userID)
}

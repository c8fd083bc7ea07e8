package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	tag, err := s.pool.Exec(ctx, `INSERT INTO sessions (user_id, id, client_ip, created, last_active, state, owner, generation)
		SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM users WHERE id = $1
		ON CONFLICT (user_id, id) DO UPDATE SET client_ip = excluded.client_ip, created = excluded.created,
			last_active = excluded.last_active, state = excluded.state, owner = excluded.owner,
			generation = excluded.generation`,
		rec.UserID, rec.ID, rec.ClientIP, rec.Created.UnixNano(), rec.LastActive.UnixNano(), state,
		rec.Owner, int64(rec.Generation))
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
	rec, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+`, s.state FROM `+sessionFrom+`
		WHERE s.user_id = $1 AND s.id = $2`, userID, id), true)
	if err != nil {
		return store.SessionRecord{}, noRows(err, "session")
	}
	return rec, nil
}

// sessionColumns are the columns scanSession reads, from sessionFrom.
const sessionColumns = `s.user_id, s.id, s.client_ip, s.created, s.last_active, s.owner, s.generation, n.heartbeat`

// sessionFrom joins each session to its owner's heartbeat.
const sessionFrom = `sessions s LEFT JOIN nodes n ON n.name = s.owner AND s.owner != ''`

// scanSession reads sessionColumns, and the state after them when state
// is true.
func scanSession(row pgx.Row, state bool) (store.SessionRecord, error) {
	var rec store.SessionRecord
	var created, active, gen int64
	var beat *int64
	dest := []any{&rec.UserID, &rec.ID, &rec.ClientIP, &created, &active, &rec.Owner, &gen, &beat}
	if state {
		dest = append(dest, &rec.State)
	}
	if err := row.Scan(dest...); err != nil {
		return store.SessionRecord{}, err
	}
	fillSession(&rec, created, active, gen, beat)
	if state && rec.State == nil {
		rec.State = []byte{}
	}
	return rec, nil
}

func fillSession(rec *store.SessionRecord, created, active, gen int64, beat *int64) {
	rec.Created, rec.LastActive = time.Unix(0, created), time.Unix(0, active)
	rec.Generation = uint64(gen)
	rec.OwnerBeat = time.Time{}
	if beat != nil {
		rec.OwnerBeat = time.Unix(0, *beat)
	}
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
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM `+sessionFrom+`
		WHERE s.user_id = $1 ORDER BY s.last_active, s.id`, userID)
	if err != nil {
		return nil, err
	}
	return collectSessions(rows)
}

func collectSessions(rows pgx.Rows) ([]store.SessionRecord, error) {
	var out []store.SessionRecord
	var rec store.SessionRecord
	var created, active, gen int64
	var beat *int64
	_, err := pgx.ForEachRow(rows, []any{&rec.UserID, &rec.ID, &rec.ClientIP, &created, &active, &rec.Owner, &gen, &beat}, func() error {
		fillSession(&rec, created, active, gen, beat)
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
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM `+sessionFrom+`
		WHERE s.client_ip = $1 ORDER BY s.last_active, s.user_id, s.id LIMIT $2`, ip, lim)
	if err != nil {
		return nil, err
	}
	return collectSessions(rows)
}

// ClaimSession implements store.Sessions in one statement: the subquery
// locks the row and reads it as it was, the update raises the generation
// and returns both.
func (s *Store) ClaimSession(ctx context.Context, userID int64, id, node string, touchBefore, now time.Time) (store.SessionRecord, error) {
	var touch, at *int64
	if !touchBefore.IsZero() {
		tb, n := touchBefore.UnixNano(), now.UnixNano()
		touch, at = &tb, &n
	}
	rec := store.SessionRecord{ID: id, UserID: userID}
	var created, active, gen int64
	var beat *int64
	err := s.pool.QueryRow(ctx, `UPDATE sessions s SET owner = $3, generation = s.generation + 1,
			last_active = CASE WHEN s.last_active < $4 THEN $5 ELSE s.last_active END
		FROM (SELECT user_id, id, owner, generation, last_active FROM sessions
			WHERE user_id = $1 AND id = $2 FOR UPDATE) o
		WHERE s.user_id = o.user_id AND s.id = o.id
		RETURNING s.client_ip, s.created, o.last_active, o.owner, o.generation,
			(SELECT heartbeat FROM nodes WHERE name = o.owner AND o.owner != ''), s.state`,
		userID, id, node, touch, at).Scan(&rec.ClientIP, &created, &active, &rec.Owner, &gen, &beat, &rec.State)
	if err != nil {
		return store.SessionRecord{}, noRows(err, "session")
	}
	fillSession(&rec, created, active, gen, beat)
	if rec.State == nil {
		rec.State = []byte{}
	}
	return rec, nil
}

// UpdateSession implements store.Sessions.
func (s *Store) UpdateSession(ctx context.Context, rec store.SessionRecord, release bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET last_active = $4, state = coalesce($5, state),
			owner = CASE WHEN $6 THEN '' ELSE owner END
		WHERE user_id = $1 AND id = $2 AND generation = $3`,
		rec.UserID, rec.ID, int64(rec.Generation), rec.LastActive.UnixNano(), rec.State, release)
	return s.staleOrMissing(ctx, tag, err, rec.UserID, rec.ID)
}

// DeleteSessionIf implements store.Sessions.
func (s *Store) DeleteSessionIf(ctx context.Context, userID int64, id string, gen uint64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id = $2 AND generation = $3`,
		userID, id, int64(gen))
	return s.staleOrMissing(ctx, tag, err, userID, id)
}

// staleOrMissing tells why a conditional write of a session changed no
// row: ErrNotFound, or ErrStale when the session is there at another
// generation. (The generation only grows: a row seen after the write at
// another generation was at another one during it.)
func (s *Store) staleOrMissing(ctx context.Context, tag pgconn.CommandTag, err error, userID int64, id string) error {
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var one int
	err = s.pool.QueryRow(ctx, `SELECT 1 FROM sessions WHERE user_id = $1 AND id = $2`, userID, id).Scan(&one)
	if err != nil {
		return noRows(err, "session")
	}
	return store.ErrStale
}

// ReleaseNodeSessions implements store.Sessions.
func (s *Store) ReleaseNodeSessions(ctx context.Context, node string) (int, error) {
	if node == "" {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET owner = '' WHERE owner = $1`, node)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// NodeSessions implements store.Sessions (through the partial index
// sessions_owner).
func (s *Store) NodeSessions(ctx context.Context, node string) ([]store.SessionRecord, error) {
	if node == "" {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM `+sessionFrom+` WHERE s.owner = $1`, node)
	if err != nil {
		return nil, err
	}
	return collectSessions(rows)
}

// Heartbeat implements store.Sessions.
func (s *Store) Heartbeat(ctx context.Context, node string, at time.Time) error {
	if node == "" {
		return fmt.Errorf("%w: empty node name", store.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO nodes (name, heartbeat) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET heartbeat = excluded.heartbeat`, node, at.UnixNano())
	return mapErr(err)
}

// sessionLockClass is the first key of the two-key advisory locks of
// users' sessions (the second is the user id, truncated to 32 bits: two
// users that share a lock only wait for each other). Two-key locks never
// collide with the one-key migration lock.
const sessionLockClass int32 = 0x53494400 // "SID\0"

// LockSessions implements store.Sessions with a session-level advisory
// lock held on a connection of lockPool until unlock, so that it holds
// among every process sharing the database. This process's holders of
// one user queue in the process first.
func (s *Store) LockSessions(ctx context.Context, userID int64) (func(), error) {
	unlockLocal, err := s.sessionLocks.Lock(ctx, userID)
	if err != nil {
		return nil, err
	}
	conn, err := s.lockPool.Acquire(ctx)
	if err != nil {
		unlockLocal()
		return nil, err
	}
	key := int32(userID)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, sessionLockClass, key); err != nil {
		// The connection may hold the lock after all (cancelled after
		// it was granted): close it, which drops every lock it holds.
		conn.Conn().Close(context.Background())
		conn.Release()
		unlockLocal()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			defer cancel()
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, sessionLockClass, key); err != nil {
				conn.Conn().Close(context.Background())
			}
			conn.Release()
			unlockLocal()
		})
	}, nil
}

// unlockTimeout bounds the release of a sessions lock; past it the
// connection is closed, which releases it too.
const unlockTimeout = 10 * time.Second

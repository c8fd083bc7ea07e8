package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/transfer"
)

// Exporter reads a whole store as rows (transfer.Source), from one read
// transaction: every method sees the store as it was when Export
// returned, however long the export takes and whatever is written
// meanwhile. Rows are read as they are yielded, never gathered, so an
// export needs memory for one row (one body) at a time.
//
// Large bodies are read from their files. A server writing to the store
// during the export does not disturb the snapshot of the database, but
// an expunge committed meanwhile removes the files of the bodies it
// frees: export a store that no server is writing to.
type Exporter struct {
	s   *Store
	tx  *sql.Tx
	buf []byte // the body read from a file last
}

var _ transfer.Source = (*Exporter)(nil)

// Export starts an export of the store. Close ends it.
func (s *Store) Export(ctx context.Context) (*Exporter, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite store: begin export: %w", err)
	}
	// The snapshot is taken at the first read, here.
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("sqlite store: begin export: %w", err)
	}
	return &Exporter{s: s, tx: tx}, nil
}

// Close ends the export's read transaction.
func (e *Exporter) Close() error {
	err := e.tx.Rollback()
	if err == sql.ErrTxDone {
		err = nil
	}
	return err
}

// each runs query and calls fn after scanning each row into dest.
func (e *Exporter) each(ctx context.Context, query string, dest []any, fn func() error) error {
	rows, err := e.tx.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("sqlite store: export: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("sqlite store: export: %w", err)
		}
		if err := fn(); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite store: export: %w", err)
	}
	return nil
}

// Counters implements transfer.Source. users and mailboxes are
// AUTOINCREMENT tables: sqlite_sequence holds the highest id they ever
// gave.
func (e *Exporter) Counters(ctx context.Context) (transfer.Counters, error) {
	var c transfer.Counters
	err := e.tx.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name = 'uidvalidity'),
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0),
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'mailboxes'), 0)`).Scan(
		&c.UIDValidity, &c.MaxUserID, &c.MaxMailboxID)
	if err != nil {
		return c, fmt.Errorf("sqlite store: export: %w", err)
	}
	return c, nil
}

// referenced is the condition on bodies b of being some message's body:
// a body whose messages are gone is not exported.
const referenced = `EXISTS (SELECT 1 FROM messages WHERE body_id = b.id)`

// Totals implements transfer.Source. The length of a body kept in a file
// is its messages' size.
func (e *Exporter) Totals(ctx context.Context) (transfer.Totals, error) {
	var t transfer.Totals
	err := e.tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM mailboxes),
		(SELECT count(*) FROM subscriptions), (SELECT count(*) FROM bodies b WHERE `+referenced+`),
		(SELECT count(*) FROM messages), (SELECT count(*) FROM expunged), (SELECT count(*) FROM sessions),
		(SELECT coalesce(sum(CASE WHEN b.file IS NULL THEN length(b.data)
			ELSE (SELECT size FROM messages WHERE body_id = b.id LIMIT 1) END), 0)
			FROM bodies b WHERE `+referenced+`)`).Scan(
		&t.Users, &t.Mailboxes, &t.Subscriptions, &t.Bodies, &t.Messages, &t.Tombstones, &t.Sessions, &t.BodyBytes)
	if err != nil {
		return t, fmt.Errorf("sqlite store: export: %w", err)
	}
	return t, nil
}

// Users implements transfer.Source.
func (e *Exporter) Users(ctx context.Context, yield func(transfer.User) error) error {
	var u transfer.User
	return e.each(ctx, `SELECT id, name, password_hash, created FROM users ORDER BY id`,
		[]any{&u.ID, &u.Name, &u.PasswordHash, &u.Created}, func() error { return yield(u) })
}

// Mailboxes implements transfer.Source.
func (e *Exporter) Mailboxes(ctx context.Context, yield func(transfer.Mailbox) error) error {
	var m transfer.Mailbox
	return e.each(ctx, `SELECT id, user_id, name, uidvalidity, uidnext, highest_modseq, first_recent_uid,
		special_use, noselect, vanished_floor FROM mailboxes ORDER BY id`,
		[]any{&m.ID, &m.UserID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.FirstRecentUID,
			&m.SpecialUse, &m.NoSelect, &m.VanishedFloor}, func() error { return yield(m) })
}

// Subscriptions implements transfer.Source.
func (e *Exporter) Subscriptions(ctx context.Context, yield func(transfer.Subscription) error) error {
	var s transfer.Subscription
	return e.each(ctx, `SELECT user_id, name FROM subscriptions ORDER BY user_id, name`,
		[]any{&s.UserID, &s.Name}, func() error { return yield(s) })
}

// Bodies implements transfer.Source: the bodies of messages, with their
// kept header and structure; a body kept in a file is read from it.
func (e *Exporter) Bodies(ctx context.Context, yield func(transfer.Body) error) error {
	var (
		id                      int64
		data, header, structure sql.RawBytes
		file                    sql.NullString
	)
	return e.each(ctx, `SELECT b.id, b.data, b.file, h.data, st.data FROM bodies b
		LEFT JOIN headers h ON h.body_id = b.id LEFT JOIN structures st ON st.body_id = b.id
		WHERE `+referenced+` ORDER BY b.id`,
		[]any{&id, &data, &file, &header, &structure}, func() error {
			b := transfer.Body{ID: id, Data: data, Header: header, Structure: structure}
			if file.Valid {
				var err error
				if b.Data, err = e.readFile(file.String); err != nil {
					return fmt.Errorf("sqlite store: export: body %d: %w", id, err)
				}
			} else if b.Data == nil {
				b.Data = []byte{}
			}
			return yield(b)
		})
}

// readFile reads a body file into the exporter's buffer.
func (e *Exporter) readFile(name string) ([]byte, error) {
	if !validName(name) {
		return nil, fmt.Errorf("invalid body file name %q", name)
	}
	f, err := os.Open(e.s.files.path(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(cap(e.buf)) < fi.Size() {
		e.buf = make([]byte, fi.Size())
	}
	e.buf = e.buf[:fi.Size()]
	if _, err := io.ReadFull(f, e.buf); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// Messages implements transfer.Source.
func (e *Exporter) Messages(ctx context.Context, yield func(transfer.Message) error) error {
	var m transfer.Message
	return e.each(ctx, `SELECT mailbox_id, uid, modseq, flags, internal_date, internal_tz, size, body_id
		FROM messages ORDER BY mailbox_id, uid`,
		[]any{&m.MailboxID, &m.UID, &m.ModSeq, &m.Flags, &m.InternalDate, &m.InternalTZ, &m.Size, &m.BodyID},
		func() error { return yield(m) })
}

// Tombstones implements transfer.Source.
func (e *Exporter) Tombstones(ctx context.Context, yield func(transfer.Tombstone) error) error {
	var t transfer.Tombstone
	return e.each(ctx, `SELECT mailbox_id, uid, modseq, expunged_at FROM expunged ORDER BY mailbox_id, uid`,
		[]any{&t.MailboxID, &t.UID, &t.ModSeq, &t.ExpungedAt}, func() error { return yield(t) })
}

// Sessions implements transfer.Source: every column of the sessions
// table.
func (e *Exporter) Sessions(ctx context.Context, yield func(store.SessionRecord) error) error {
	var (
		r                    store.SessionRecord
		created, active, gen int64
		state                sql.RawBytes
	)
	return e.each(ctx, `SELECT user_id, id, client_ip, created, last_active, state, owner, generation
		FROM sessions ORDER BY user_id, id`,
		[]any{&r.UserID, &r.ID, &r.ClientIP, &created, &active, &state, &r.Owner, &gen}, func() error {
			r.Created, r.LastActive = time.Unix(0, created), time.Unix(0, active)
			r.Generation = uint64(gen)
			r.State = state
			if r.State == nil {
				r.State = []byte{}
			}
			return yield(r)
		})
}

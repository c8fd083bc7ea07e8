package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/internal/storeutil"
	"github.com/quickimap/quickimap/store/transfer"
)

// ErrNotEmpty is Import's answer for a database that already holds a
// store's data: an import never merges.
var ErrNotEmpty = errors.New("the PostgreSQL database is not empty")

// importMarker is the counters row that an import holds from its first
// transaction to its last: a database that has it holds a partial copy
// (Check reports it), and a second import started meanwhile fails on it.
const importMarker = "import"

// Batch sizes of an import: each batch is one COPY in one transaction.
const (
	importRows      = 10_000
	importBodyRows  = 1_000
	importBodyBytes = 32 << 20
)

// Import copies every row of src into this store's database, which must
// be empty (ErrNotEmpty otherwise: a schema without rows, as Open leaves
// it, is empty). UIDs, MODSEQs, UIDVALIDITY, flags, dates, bodies,
// tombstones and the resumable sessions are copied as they are, and the
// ids of users, mailboxes and bodies are kept (see package transfer).
//
// Rows are read from src as they are written, in batches of a few
// thousand rows (tens of MiB of bodies at most), each batch one COPY in
// a transaction of its own: the memory needed does not grow with the
// store. If Import fails part-way the database holds a partial copy,
// which Check reports and a new Import refuses; empty the database
// (drop and create it) before trying again. progress, when not nil, is
// told of each batch written: the table and the rows written to it so
// far. Import returns the numbers of rows written.
func (s *Store) Import(ctx context.Context, src transfer.Source, progress func(table string, rows int64)) (transfer.Totals, error) {
	var t transfer.Totals
	if progress == nil {
		progress = func(string, int64) {}
	}
	counters, err := src.Counters(ctx)
	if err != nil {
		return t, err
	}
	if err := s.beginImport(ctx, counters.UIDValidity); err != nil {
		return t, err
	}

	users := s.copier("users", []string{"id", "name", "password_hash", "created"}, progress)
	if err := src.Users(ctx, func(u transfer.User) error {
		return users.add(ctx, 0, u.ID, u.Name, u.PasswordHash, u.Created)
	}); err != nil {
		return t, err
	}
	if t.Users, err = users.done(ctx); err != nil {
		return t, err
	}

	mailboxes := s.copier("mailboxes", []string{"id", "user_id", "name", "uidvalidity", "uidnext", "highest_modseq",
		"first_recent_uid", "special_use", "noselect", "vanished_floor"}, progress)
	if err := src.Mailboxes(ctx, func(m transfer.Mailbox) error {
		return mailboxes.add(ctx, 0, m.ID, m.UserID, m.Name, m.UIDValidity, m.UIDNext, m.HighestModSeq,
			m.FirstRecentUID, m.SpecialUse, m.NoSelect, m.VanishedFloor)
	}); err != nil {
		return t, err
	}
	if t.Mailboxes, err = mailboxes.done(ctx); err != nil {
		return t, err
	}

	subs := s.copier("subscriptions", []string{"user_id", "name"}, progress)
	if err := src.Subscriptions(ctx, func(x transfer.Subscription) error {
		return subs.add(ctx, 0, x.UserID, x.Name)
	}); err != nil {
		return t, err
	}
	if t.Subscriptions, err = subs.done(ctx); err != nil {
		return t, err
	}

	bodies := s.copier("bodies", []string{"id", "data", "header", "structure"}, progress)
	bodies.maxRows = importBodyRows
	if err := src.Bodies(ctx, func(b transfer.Body) error {
		t.BodyBytes += int64(len(b.Data))
		// The source may reuse its slices; a nil header or structure
		// stays NULL.
		return bodies.add(ctx, len(b.Data)+len(b.Header)+len(b.Structure),
			b.ID, bytes.Clone(b.Data), cloneOrNil(b.Header), cloneOrNil(b.Structure))
	}); err != nil {
		return t, err
	}
	if t.Bodies, err = bodies.done(ctx); err != nil {
		return t, err
	}

	// The triggers on messages and expunged keep the mailboxes'
	// counters, once per COPY.
	messages := s.copier("messages", []string{"mailbox_id", "uid", "modseq", "flags", "internal_date", "internal_tz",
		"size", "body_id"}, progress)
	if err := src.Messages(ctx, func(m transfer.Message) error {
		return messages.add(ctx, 0, m.MailboxID, m.UID, m.ModSeq, m.Flags, m.InternalDate, m.InternalTZ, m.Size, m.BodyID)
	}); err != nil {
		return t, err
	}
	if t.Messages, err = messages.done(ctx); err != nil {
		return t, err
	}
	if err := s.importKeywords(ctx, progress); err != nil {
		return t, err
	}

	tombstones := s.copier("expunged", []string{"mailbox_id", "uid", "modseq", "expunged_at"}, progress)
	if err := src.Tombstones(ctx, func(x transfer.Tombstone) error {
		return tombstones.add(ctx, 0, x.MailboxID, x.UID, x.ModSeq, x.ExpungedAt)
	}); err != nil {
		return t, err
	}
	if t.Tombstones, err = tombstones.done(ctx); err != nil {
		return t, err
	}

	if t.Sessions, err = s.importSessions(ctx, src, progress); err != nil {
		return t, err
	}
	return t, s.endImport(ctx, counters)
}

// importSessions copies the resumable sessions, every column of them.
// The generation is kept; the owner is not: no node holds a session of
// a store being imported (the nodes' heartbeats are not copied either),
// so every session starts inactive, resumable on any node, and its next
// claim raises the generation as usual.
func (s *Store) importSessions(ctx context.Context, src transfer.Source, progress func(string, int64)) (int64, error) {
	sessions := s.copier("sessions", []string{"user_id", "id", "client_ip", "created", "last_active", "state",
		"owner", "generation"}, progress)
	if err := src.Sessions(ctx, func(r store.SessionRecord) error {
		return sessions.add(ctx, len(r.State), r.UserID, r.ID, r.ClientIP, r.Created.UnixNano(), r.LastActive.UnixNano(),
			bytes.Clone(r.State), "", int64(r.Generation))
	}); err != nil {
		return 0, err
	}
	return sessions.done(ctx)
}

func cloneOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

// beginImport checks that the database is empty and marks it as being
// imported into, in one transaction; it raises the UIDVALIDITY counter
// to the source's.
func (s *Store) beginImport(ctx context.Context, uidValidityCounter int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var users, mailboxes, bodies, sessions int64
		var marked bool
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM mailboxes),
			(SELECT count(*) FROM bodies), (SELECT count(*) FROM sessions),
			EXISTS (SELECT 1 FROM counters WHERE name = $1)`, importMarker).Scan(
			&users, &mailboxes, &bodies, &sessions, &marked); err != nil {
			return err
		}
		if marked {
			return fmt.Errorf("%w: it holds a partial copy from an import that did not finish, or one is under way", ErrNotEmpty)
		}
		if users+mailboxes+bodies+sessions > 0 {
			return fmt.Errorf("%w: it holds %d account(s), %d mailbox(es), %d message bodies and %d session(s)",
				ErrNotEmpty, users, mailboxes, bodies, sessions)
		}
		// A second import that started meanwhile waits here for this
		// transaction, then fails on the primary key.
		if _, err := tx.Exec(ctx, `INSERT INTO counters (name, value) VALUES ($1, $2)`,
			importMarker, s.opts.Now().Unix()); err != nil {
			if pe := pgErr(err); pe != nil && pe.Code == "23505" {
				return fmt.Errorf("%w: another import is under way", ErrNotEmpty)
			}
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE counters SET value = greatest(value, $1) WHERE name = 'uidvalidity'`,
			uidValidityCounter)
		return err
	})
}

// endImport moves the identity sequences past the copied ids, and past
// the source's highest ids ever given (those of deleted accounts and
// mailboxes are not given again), and removes the import's mark.
func (s *Store) endImport(ctx context.Context, c transfer.Counters) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, seq := range []struct {
			table string
			max   int64
		}{{"users", c.MaxUserID}, {"mailboxes", c.MaxMailboxID}, {"bodies", 0}} {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+seq.table+`', 'id'),
				greatest(coalesce((SELECT max(id) FROM `+seq.table+`), 0), $1) + 1, false)`, seq.max); err != nil {
				return fmt.Errorf("postgres store: import: sequence of %s: %w", seq.table, err)
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM counters WHERE name = $1`, importMarker)
		return err
	})
}

// importKeywords records each mailbox's spelling of the keywords its
// messages have (the keywords table, see spell), from the distinct flag
// sets of the copied messages.
func (s *Store) importKeywords(ctx context.Context, progress func(string, int64)) error {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT mailbox_id, flags FROM messages
		WHERE position(' ' in flags) > 0 OR (flags != '' AND left(flags, 1) != '\')
		ORDER BY mailbox_id`)
	if err != nil {
		return fmt.Errorf("postgres store: import: keywords: %w", err)
	}
	type key struct {
		mailbox int64
		key     string
	}
	var list []key
	spelling := map[key]string{}
	var mailbox int64
	var flags string
	if _, err := pgx.ForEachRow(rows, []any{&mailbox, &flags}, func() error {
		for _, f := range storeutil.ParseFlags(flags) {
			if strings.HasPrefix(f, `\`) {
				continue
			}
			k := key{mailbox, storeutil.FlagKey(f)}
			if _, ok := spelling[k]; !ok {
				spelling[k] = f
				list = append(list, k)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("postgres store: import: keywords: %w", err)
	}
	kw := s.copier("keywords", []string{"mailbox_id", "key", "spelling"}, progress)
	for _, k := range list {
		if err := kw.add(ctx, 0, k.mailbox, k.key, spelling[k]); err != nil {
			return err
		}
	}
	_, err = kw.done(ctx)
	return err
}

// copier gathers rows of one table and writes them in batches, each one
// COPY in a transaction of its own.
type copier struct {
	s        *Store
	table    string
	cols     []string
	progress func(string, int64)
	maxRows  int
	rows     [][]any
	bytes    int
	n        int64
}

func (s *Store) copier(table string, cols []string, progress func(string, int64)) *copier {
	return &copier{s: s, table: table, cols: cols, progress: progress, maxRows: importRows}
}

// add queues a row (size: the bytes it holds beyond its numbers) and
// writes the batch when it is full.
func (c *copier) add(ctx context.Context, size int, row ...any) error {
	c.rows = append(c.rows, row)
	c.bytes += size
	if len(c.rows) >= c.maxRows || c.bytes >= importBodyBytes {
		return c.flush(ctx)
	}
	return nil
}

func (c *copier) flush(ctx context.Context) error {
	if len(c.rows) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, c.s.pool, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres store: import into %s: %w", c.table, err)
	}
	c.n += int64(len(c.rows))
	clear(c.rows) // let the bodies go
	c.rows, c.bytes = c.rows[:0], 0
	c.progress(c.table, c.n)
	return nil
}

// done writes the last batch and returns the rows written.
func (c *copier) done(ctx context.Context) (int64, error) {
	err := c.flush(ctx)
	return c.n, err
}

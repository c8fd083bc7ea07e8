package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/internal/storeutil"
)

const mailboxCols = `id, user_id, name, uidvalidity, uidnext, highest_modseq, first_recent_uid, special_use, noselect`

func scanMailbox(row pgx.Row, more ...any) (store.Mailbox, error) {
	var m store.Mailbox
	var uidvalidity, uidnext, firstRecent, highest int64
	dest := append([]any{&m.ID, &m.UserID, &m.Name, &uidvalidity, &uidnext, &highest, &firstRecent, &m.SpecialUse, &m.NoSelect}, more...)
	if err := row.Scan(dest...); err != nil {
		return store.Mailbox{}, err
	}
	m.UIDValidity = uint32(uidvalidity)
	m.UIDNext = storeutil.ClampUID(uidnext)
	m.FirstRecentUID = storeutil.ClampUID(firstRecent)
	m.HighestModSeq = uint64(highest)
	return m, nil
}

func mailboxByName(ctx context.Context, q querier, userID int64, name string) (store.Mailbox, error) {
	m, err := scanMailbox(q.QueryRow(ctx,
		`SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2`, userID, name))
	if err != nil {
		return store.Mailbox{}, noRows(err, "mailbox %q", name)
	}
	return m, nil
}

func mailboxByID(ctx context.Context, q querier, userID, id int64) (store.Mailbox, error) {
	m, err := scanMailbox(q.QueryRow(ctx,
		`SELECT `+mailboxCols+` FROM mailboxes WHERE id = $1 AND user_id = $2`, id, userID))
	if err != nil {
		return store.Mailbox{}, noRows(err, "mailbox id %d", id)
	}
	return m, nil
}

func mailboxExists(ctx context.Context, q querier, userID int64, name string) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND name = $2)`,
		userID, name).Scan(&exists)
	return exists, err
}

func hasChildren(ctx context.Context, q querier, userID int64, name string) (bool, error) {
	lo, hi := storeutil.ChildRange(name)
	var exists bool
	err := q.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND name >= $2 AND name < $3)`,
		userID, lo, hi).Scan(&exists)
	return exists, err
}

// nextUIDValidity takes the next value from the store-wide counter. The
// counter only grows, so a name that is reused always gets a greater
// UIDVALIDITY (RFC 3501 §2.3.1.1), and it never goes below the current
// Unix time, so that a store recreated from scratch does not hand out a
// value a client has already seen for that name. The counter row stays
// locked until commit: mailbox creations are serialised store-wide, which
// they can afford (they are rare).
func nextUIDValidity(ctx context.Context, tx pgx.Tx) (uint32, error) {
	var v int64
	err := tx.QueryRow(ctx,
		`UPDATE counters SET value = greatest(value + 1, $1) WHERE name = 'uidvalidity' RETURNING value`,
		time.Now().Unix()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("postgres store: uidvalidity counter: %w", err)
	}
	if v < 1 || v > math.MaxUint32 {
		return 0, fmt.Errorf("postgres store: uidvalidity counter out of range: %d", v)
	}
	return uint32(v), nil
}

// insertMailbox inserts a new selectable mailbox whose parent exists.
func insertMailbox(ctx context.Context, tx pgx.Tx, userID int64, name, specialUse string) (store.Mailbox, error) {
	uv, err := nextUIDValidity(ctx, tx)
	if err != nil {
		return store.Mailbox{}, err
	}
	return scanMailbox(tx.QueryRow(ctx,
		`INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4)
		RETURNING `+mailboxCols, userID, name, uv, specialUse))
}

// ensureParents creates the missing ancestors of name as selectable
// mailboxes, top-down.
func ensureParents(ctx context.Context, tx pgx.Tx, userID int64, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		exists, err := mailboxExists(ctx, tx, userID, p)
		if err != nil {
			return err
		}
		if !exists {
			if _, err := insertMailbox(ctx, tx, userID, p, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// pruneParents removes the placeholders above name that no longer have
// children, bottom-up.
func pruneParents(ctx context.Context, tx pgx.Tx, userID int64, name string) error {
	for p := storeutil.ParentName(name); p != ""; p = storeutil.ParentName(p) {
		m, err := mailboxByName(ctx, tx, userID, p)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if !m.NoSelect {
			return nil
		}
		children, err := hasChildren(ctx, tx, userID, p)
		if err != nil || children {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mailboxes WHERE id = $1`, m.ID); err != nil {
			return err
		}
	}
	return nil
}

// createMailbox is CreateMailbox inside a write transaction that holds
// the user's lock; name is canonical.
func createMailbox(ctx context.Context, tx pgx.Tx, userID int64, name, specialUse string) (store.Mailbox, error) {
	m, err := mailboxByName(ctx, tx, userID, name)
	switch {
	case err == nil && !m.NoSelect:
		return store.Mailbox{}, fmt.Errorf("%w: mailbox %q", store.ErrExists, name)
	case err == nil:
		// A placeholder becomes selectable again: same id, new
		// UIDVALIDITY; UIDNEXT and the modseq never go back.
		uv, err := nextUIDValidity(ctx, tx)
		if err != nil {
			return store.Mailbox{}, err
		}
		return scanMailbox(tx.QueryRow(ctx,
			`UPDATE mailboxes SET noselect = false, uidvalidity = $1, special_use = $2, first_recent_uid = uidnext
			WHERE id = $3 RETURNING `+mailboxCols, uv, specialUse, m.ID))
	case !errors.Is(err, store.ErrNotFound):
		return store.Mailbox{}, err
	}
	if err := ensureParents(ctx, tx, userID, name); err != nil {
		return store.Mailbox{}, err
	}
	return insertMailbox(ctx, tx, userID, name, specialUse)
}

// Mailboxes implements store.Store. An unknown user has no mailboxes.
func (s *Store) Mailboxes(ctx context.Context, userID int64) ([]store.Mailbox, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 ORDER BY name`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Mailbox, error) { return scanMailbox(r) })
}

// MailboxByName implements store.Store.
func (s *Store) MailboxByName(ctx context.Context, userID int64, name string) (store.Mailbox, error) {
	cname, err := storeutil.CanonName(name)
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("%w: mailbox %q", store.ErrNotFound, name)
	}
	return mailboxByName(ctx, s.pool, userID, cname)
}

// MailboxByID implements store.Store.
func (s *Store) MailboxByID(ctx context.Context, userID, id int64) (store.Mailbox, error) {
	return mailboxByID(ctx, s.pool, userID, id)
}

// CreateMailbox implements store.Store.
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (store.Mailbox, error) {
	name, err := storeutil.CanonName(name)
	if err != nil {
		return store.Mailbox{}, err
	}
	var m store.Mailbox
	err = s.write(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return err
		}
		var err error
		m, err = createMailbox(ctx, tx, userID, name, specialUse)
		return err
	})
	return m, err
}

// DeleteMailbox implements store.Store.
func (s *Store) DeleteMailbox(ctx context.Context, userID int64, name string) error {
	name, err := storeutil.CanonName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return fmt.Errorf("%w: INBOX cannot be deleted", store.ErrInvalid)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return noRows(pgx.ErrNoRows, "mailbox %q", name)
		}
		m, err := mailboxByName(ctx, tx, userID, name)
		if err != nil {
			return err
		}
		if _, err := lockMailbox(ctx, tx, userID, m.ID); err != nil {
			return err
		}
		children, err := hasChildren(ctx, tx, userID, name)
		if err != nil {
			return err
		}
		if !children {
			if err := deleteMessagesWhere(ctx, tx, `mailbox_id = $1`, m.ID); err != nil {
				return err
			}
			// The foreign keys cascade to tombstones and keywords.
			if _, err := tx.Exec(ctx, `DELETE FROM mailboxes WHERE id = $1`, m.ID); err != nil {
				return err
			}
			return pruneParents(ctx, tx, userID, name)
		}
		if m.NoSelect {
			return fmt.Errorf("%w: %q", store.ErrNoSelect, name)
		}
		// RFC 3501 §6.3.4: the messages go, the name stays as \Noselect.
		// The tombstones go too: the mailbox gets a new UIDVALIDITY if it
		// is ever created again. The vanished floor records that no
		// change report from before now is complete any more.
		if err := deleteMessagesWhere(ctx, tx, `mailbox_id = $1`, m.ID); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM expunged WHERE mailbox_id = $1`,
			`DELETE FROM keywords WHERE mailbox_id = $1`,
			`UPDATE mailboxes SET noselect = true, special_use = '', first_recent_uid = uidnext,
				vanished_floor = highest_modseq WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, m.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// RenameMailbox implements store.Store. The missing parents of the new
// name are created as selectable mailboxes, as CREATE does; placeholders
// above the old name that are left without children are removed.
// Subscriptions are not touched.
func (s *Store) RenameMailbox(ctx context.Context, userID int64, oldName, newName string) error {
	oldName, newName, err := storeutil.RenameNames(oldName, newName)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return noRows(pgx.ErrNoRows, "mailbox %q", oldName)
		}
		m, err := mailboxByName(ctx, tx, userID, oldName)
		if err != nil {
			return err
		}
		exists, err := mailboxExists(ctx, tx, userID, newName)
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("%w: mailbox %q", store.ErrExists, newName)
		}
		if oldName == "INBOX" {
			// INBOX itself moves (id, UIDVALIDITY, messages); its
			// children stay under the new, empty INBOX.
			if _, err := tx.Exec(ctx, `UPDATE mailboxes SET name = $1 WHERE id = $2`, newName, m.ID); err != nil {
				return err
			}
			if _, err := insertMailbox(ctx, tx, userID, "INBOX", ""); err != nil {
				return err
			}
			return ensureParents(ctx, tx, userID, newName)
		}
		// newName does not exist and every mailbox's parent exists, so no
		// name under newName exists either: the children can move one by
		// one without collisions.
		lo, hi := storeutil.ChildRange(oldName)
		rows, err := tx.Query(ctx, `SELECT id, name FROM mailboxes WHERE user_id = $1 AND name >= $2 AND name < $3`,
			userID, lo, hi)
		if err != nil {
			return err
		}
		type child struct {
			id   int64
			name string
		}
		children, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (child, error) {
			var c child
			err := r.Scan(&c.id, &c.name)
			return c, err
		})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET name = $1 WHERE id = $2`, newName, m.ID); err != nil {
			return err
		}
		for _, c := range children {
			if _, err := tx.Exec(ctx, `UPDATE mailboxes SET name = $1 WHERE id = $2`,
				newName+c.name[len(oldName):], c.id); err != nil {
				return err
			}
		}
		if err := ensureParents(ctx, tx, userID, newName); err != nil {
			return err
		}
		return pruneParents(ctx, tx, userID, oldName)
	})
}

// Status implements store.Store. One statement, one snapshot: the
// counters come from the mailbox row (kept by triggers) and Recent from
// a primary-key range scan over the recent UIDs only.
func (s *Store) Status(ctx context.Context, userID, mailboxID int64) (store.MailboxStatus, error) {
	var st store.MailboxStatus
	var messages, unseen, recent int64
	m, err := scanMailbox(s.pool.QueryRow(ctx, `SELECT `+mailboxCols+`, message_count, unseen_count, total_size,
			(SELECT count(*) FROM messages WHERE mailbox_id = x.id AND uid >= x.first_recent_uid)
		FROM mailboxes AS x WHERE id = $1 AND user_id = $2`, mailboxID, userID),
		&messages, &unseen, &st.Size, &recent)
	if err != nil {
		return store.MailboxStatus{}, noRows(err, "mailbox id %d", mailboxID)
	}
	if m.NoSelect {
		return store.MailboxStatus{}, fmt.Errorf("%w: %q", store.ErrNoSelect, m.Name)
	}
	st.Mailbox = m
	st.Messages, st.Unseen, st.Recent = uint32(messages), uint32(unseen), uint32(recent)
	return st, nil
}

// ClaimRecent implements store.Store.
func (s *Store) ClaimRecent(ctx context.Context, userID, mailboxID int64) (from, to uint32, err error) {
	// Fast path without a lock: nothing to claim is the common case
	// (every SELECT calls this). Seeing a slightly older state is
	// harmless: it is as if the claim happened just before the append.
	m, err := mailboxByID(ctx, s.pool, userID, mailboxID)
	if err != nil {
		return 0, 0, err
	}
	if m.NoSelect {
		return 0, 0, fmt.Errorf("%w: %q", store.ErrNoSelect, m.Name)
	}
	if m.FirstRecentUID >= m.UIDNext {
		return m.UIDNext, m.UIDNext, nil
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		m, err := lockSelectable(ctx, tx, userID, mailboxID)
		if err != nil {
			return err
		}
		from, to = m.FirstRecentUID, m.UIDNext
		if from >= to {
			from = to
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE mailboxes SET first_recent_uid = uidnext WHERE id = $1`, m.ID)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return from, to, nil
}

// Subscribe implements store.Store.
func (s *Store) Subscribe(ctx context.Context, userID int64, name string) error {
	name, err := storeutil.CanonName(name)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, userID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("%w: account %d", store.ErrNotFound, userID)
		}
		return subscribe(ctx, tx, userID, name)
	})
}

func subscribe(ctx context.Context, tx pgx.Tx, userID int64, name string) error {
	_, err := tx.Exec(ctx, `INSERT INTO subscriptions (user_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, name)
	return err
}

// Unsubscribe implements store.Store.
func (s *Store) Unsubscribe(ctx context.Context, userID int64, name string) error {
	cname, err := storeutil.CanonName(name)
	if err != nil {
		return fmt.Errorf("%w: subscription %q", store.ErrNotFound, name)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM subscriptions WHERE user_id = $1 AND name = $2`, userID, cname)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: subscription %q", store.ErrNotFound, cname)
	}
	return nil
}

// Subscriptions implements store.Store.
func (s *Store) Subscriptions(ctx context.Context, userID int64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM subscriptions WHERE user_id = $1 ORDER BY name`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

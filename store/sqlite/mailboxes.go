package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/internal/storeutil"
)

const mailboxCols = `id, user_id, name, uidvalidity, uidnext, highest_modseq, first_recent_uid, special_use, noselect`

func scanMailbox(row interface{ Scan(...any) error }) (store.Mailbox, error) {
	var m store.Mailbox
	var uidvalidity, uidnext, firstRecent int64
	var highest int64
	if err := row.Scan(&m.ID, &m.UserID, &m.Name, &uidvalidity, &uidnext, &highest, &firstRecent, &m.SpecialUse, &m.NoSelect); err != nil {
		return store.Mailbox{}, err
	}
	m.UIDValidity = uint32(uidvalidity)
	m.UIDNext = storeutil.ClampUID(uidnext)
	m.FirstRecentUID = storeutil.ClampUID(firstRecent)
	m.HighestModSeq = uint64(highest)
	return m, nil
}

func mailboxByName(ctx context.Context, q querier, userID int64, name string) (store.Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx,
		`SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = ? AND name = ?`, userID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Mailbox{}, fmt.Errorf("%w: mailbox %q", store.ErrNotFound, name)
	}
	return m, err
}

func mailboxByID(ctx context.Context, q querier, userID, id int64) (store.Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx,
		`SELECT `+mailboxCols+` FROM mailboxes WHERE id = ? AND user_id = ?`, id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Mailbox{}, fmt.Errorf("%w: mailbox id %d", store.ErrNotFound, id)
	}
	return m, err
}

func mailboxExists(ctx context.Context, q querier, userID int64, name string) (bool, error) {
	var exists bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?)`,
		userID, name).Scan(&exists)
	return exists, err
}

func hasChildren(ctx context.Context, q querier, userID int64, name string) (bool, error) {
	lo, hi := storeutil.ChildRange(name)
	var exists bool
	err := q.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = ? AND name >= ? AND name < ?)`,
		userID, lo, hi).Scan(&exists)
	return exists, err
}

// nextUIDValidity takes the next value from the store-wide counter. The
// counter only grows, so a name that is reused always gets a greater
// UIDVALIDITY (RFC 3501 §2.3.1.1), and it never goes below the current
// Unix time, so that even a store restored from an old backup, or
// recreated from scratch, does not hand out a value a client has already
// seen for that name.
func nextUIDValidity(ctx context.Context, tx *dbtx) (uint32, error) {
	var v int64
	err := tx.QueryRowContext(ctx,
		`UPDATE counters SET value = max(value + 1, ?) WHERE name = 'uidvalidity' RETURNING value`,
		time.Now().Unix()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: uidvalidity counter: %w", err)
	}
	if v < 1 || v > math.MaxUint32 {
		return 0, fmt.Errorf("sqlite store: uidvalidity counter out of range: %d", v)
	}
	return uint32(v), nil
}

// insertMailbox inserts a new selectable mailbox whose parent exists.
func insertMailbox(ctx context.Context, tx *dbtx, userID int64, name, specialUse string) (store.Mailbox, error) {
	uv, err := nextUIDValidity(ctx, tx)
	if err != nil {
		return store.Mailbox{}, err
	}
	return scanMailbox(tx.QueryRowContext(ctx,
		`INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)
		RETURNING `+mailboxCols, userID, name, uv, specialUse))
}

// ensureParents creates the missing ancestors of name as selectable
// mailboxes, top-down. Existing ancestors (placeholders included) stay as
// they are.
func ensureParents(ctx context.Context, tx *dbtx, userID int64, name string) error {
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
func pruneParents(ctx context.Context, tx *dbtx, userID int64, name string) error {
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
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id = ?`, m.ID); err != nil {
			return err
		}
	}
	return nil
}

// createMailbox is CreateMailbox inside a write transaction; name is
// canonical.
func createMailbox(ctx context.Context, tx *dbtx, userID int64, name, specialUse string) (store.Mailbox, error) {
	m, err := mailboxByName(ctx, tx, userID, name)
	switch {
	case err == nil && !m.NoSelect:
		return store.Mailbox{}, fmt.Errorf("%w: mailbox %q", store.ErrExists, name)
	case err == nil:
		// A placeholder becomes selectable again. It keeps its id (the
		// row is the same node of the hierarchy) but gets a new
		// UIDVALIDITY; UIDNEXT and the modseq never go back.
		uv, err := nextUIDValidity(ctx, tx)
		if err != nil {
			return store.Mailbox{}, err
		}
		return scanMailbox(tx.QueryRowContext(ctx,
			`UPDATE mailboxes SET noselect = 0, uidvalidity = ?, special_use = ?, first_recent_uid = uidnext
			WHERE id = ? RETURNING `+mailboxCols, uv, specialUse, m.ID))
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
	rows, err := s.readers().QueryContext(ctx,
		`SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = ? ORDER BY name`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []store.Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, m)
	}
	return list, rows.Err()
}

// MailboxByName implements store.Store.
func (s *Store) MailboxByName(ctx context.Context, userID int64, name string) (store.Mailbox, error) {
	cname, err := storeutil.CanonName(name)
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("%w: mailbox %q", store.ErrNotFound, name)
	}
	return mailboxByName(ctx, s.readers(), userID, cname)
}

// MailboxByID implements store.Store.
func (s *Store) MailboxByID(ctx context.Context, userID, id int64) (store.Mailbox, error) {
	return mailboxByID(ctx, s.readers(), userID, id)
}

// CreateMailbox implements store.Store.
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (store.Mailbox, error) {
	name, err := storeutil.CanonName(name)
	if err != nil {
		return store.Mailbox{}, err
	}
	var m store.Mailbox
	err = s.write(ctx, func(tx *dbtx) error {
		if err := requireUser(ctx, tx, userID); err != nil {
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
	return s.write(ctx, func(tx *dbtx) error {
		tx.freesBodies = true
		m, err := mailboxByName(ctx, tx, userID, name)
		if err != nil {
			return err
		}
		children, err := hasChildren(ctx, tx, userID, name)
		if err != nil {
			return err
		}
		if !children {
			// The foreign keys cascade to messages and tombstones.
			if _, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id = ?`, m.ID); err != nil {
				return err
			}
			return pruneParents(ctx, tx, userID, name)
		}
		if m.NoSelect {
			return fmt.Errorf("%w: %q", store.ErrNoSelect, name)
		}
		// RFC 3501 §6.3.4: the messages go, the name stays as \Noselect.
		// The tombstones go too: the mailbox gets a new UIDVALIDITY if it
		// is ever created again, which invalidates every client's state.
		// The vanished floor records that no change report from before
		// now is complete any more.
		for _, q := range []string{
			`DELETE FROM messages WHERE mailbox_id = ?`,
			`DELETE FROM expunged WHERE mailbox_id = ?`,
			`UPDATE mailboxes SET noselect = 1, special_use = '', first_recent_uid = uidnext,
				vanished_floor = highest_modseq WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, m.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// RenameMailbox implements store.Store. The missing parents of the new
// name are created as selectable mailboxes, as CREATE does; placeholders
// above the old name that are left without children are removed.
// Subscriptions are not touched (they are independent of mailboxes).
func (s *Store) RenameMailbox(ctx context.Context, userID int64, oldName, newName string) error {
	oldName, newName, err := storeutil.RenameNames(oldName, newName)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *dbtx) error {
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
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`, newName, m.ID); err != nil {
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
		rows, err := tx.QueryContext(ctx,
			`SELECT id, name FROM mailboxes WHERE user_id = ? AND name >= ? AND name < ?`, userID, lo, hi)
		if err != nil {
			return err
		}
		type child struct {
			id   int64
			name string
		}
		var children []child
		for rows.Next() {
			var c child
			if err := rows.Scan(&c.id, &c.name); err != nil {
				rows.Close()
				return err
			}
			children = append(children, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`, newName, m.ID); err != nil {
			return err
		}
		for _, c := range children {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`,
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

// Status implements store.Store. Status of a placeholder is ErrNoSelect.
// One statement, hence one consistent snapshot without a transaction:
// the counters come from the mailbox row (kept by triggers) and Recent
// from a primary-key range scan over the recent UIDs only.
func (s *Store) Status(ctx context.Context, userID, mailboxID int64) (store.MailboxStatus, error) {
	var st store.MailboxStatus
	var uidvalidity, uidnext, firstRecent, highest, messages, unseen, recent int64
	err := s.readers().QueryRowContext(ctx,
		`SELECT id, user_id, name, uidvalidity, uidnext, highest_modseq, first_recent_uid, special_use, noselect,
			message_count, unseen_count, total_size,
			(SELECT count(*) FROM messages WHERE mailbox_id = m.id AND uid >= m.first_recent_uid)
		FROM mailboxes AS m WHERE id = ? AND user_id = ?`, mailboxID, userID).Scan(
		&st.ID, &st.UserID, &st.Name, &uidvalidity, &uidnext, &highest, &firstRecent, &st.SpecialUse, &st.NoSelect,
		&messages, &unseen, &st.Size, &recent)
	if errors.Is(err, sql.ErrNoRows) {
		return store.MailboxStatus{}, fmt.Errorf("%w: mailbox id %d", store.ErrNotFound, mailboxID)
	} else if err != nil {
		return store.MailboxStatus{}, err
	}
	if st.NoSelect {
		return store.MailboxStatus{}, fmt.Errorf("%w: %q", store.ErrNoSelect, st.Name)
	}
	st.UIDValidity = uint32(uidvalidity)
	st.UIDNext = storeutil.ClampUID(uidnext)
	st.FirstRecentUID = storeutil.ClampUID(firstRecent)
	st.HighestModSeq = uint64(highest)
	st.Messages, st.Unseen, st.Recent = uint32(messages), uint32(unseen), uint32(recent)
	return st, nil
}

// ClaimRecent implements store.Store. Claiming on a placeholder is
// ErrNoSelect.
//
// The claim is committed without an fsync of its own (writeLazy): it is
// made durable by the next durable write or checkpoint. \Recent is
// session state (RFC 3501 §2.3.2: "recently arrived in this mailbox ...
// this session is the first session to have been notified"); a crash ends
// every session, and a claim lost with it only lets the next session see
// those messages as \Recent again, which is what the messages would have
// been had the claiming session never been notified. Every other change
// (APPEND, STORE, EXPUNGE) stays durable before its OK.
func (s *Store) ClaimRecent(ctx context.Context, userID, mailboxID int64) (from, to uint32, err error) {
	// Fast path without the write lock: nothing to claim is the common
	// case (every SELECT calls this). Seeing a slightly older snapshot is
	// harmless: it is as if the claim happened just before the append.
	m, err := mailboxByID(ctx, s.readers(), userID, mailboxID)
	if err != nil {
		return 0, 0, err
	}
	if m.NoSelect {
		return 0, 0, fmt.Errorf("%w: %q", store.ErrNoSelect, m.Name)
	}
	if m.FirstRecentUID >= m.UIDNext {
		return m.UIDNext, m.UIDNext, nil
	}
	err = s.writeLazy(ctx, func(tx *dbtx) error {
		m, err := mailboxByID(ctx, tx, userID, mailboxID)
		if err != nil {
			return err
		}
		if m.NoSelect {
			return fmt.Errorf("%w: %q", store.ErrNoSelect, m.Name)
		}
		from, to = m.FirstRecentUID, m.UIDNext
		if from >= to {
			from = to
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET first_recent_uid = uidnext WHERE id = ?`, m.ID)
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
	return s.write(ctx, func(tx *dbtx) error {
		if err := requireUser(ctx, tx, userID); err != nil {
			return err
		}
		return subscribe(ctx, tx, userID, name)
	})
}

func subscribe(ctx context.Context, tx *dbtx, userID int64, name string) error {
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)`, userID, name)
	return err
}

// Unsubscribe implements store.Store.
func (s *Store) Unsubscribe(ctx context.Context, userID int64, name string) error {
	cname, err := storeutil.CanonName(name)
	if err != nil {
		return fmt.Errorf("%w: subscription %q", store.ErrNotFound, name)
	}
	return s.write(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE user_id = ? AND name = ?`, userID, cname)
		return affectedOne(res, err, fmt.Sprintf("subscription %q", cname))
	})
}

// Subscriptions implements store.Store.
func (s *Store) Subscriptions(ctx context.Context, userID int64) ([]string, error) {
	rows, err := s.readers().QueryContext(ctx, `SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

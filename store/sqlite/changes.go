package sqlite

import (
	"context"
	"slices"

	"github.com/quickimap/quickimap/store"
)

// The UIDs changed and expunged after a MODSEQ, each from its MODSEQ
// index alone (TestQueryPlans).
const (
	changedUIDsQuery  = `SELECT uid FROM messages WHERE mailbox_id = ? AND modseq > ?`
	vanishedUIDsQuery = `SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?`
)

// UIDChangesSince implements store.Messages: ChangesSince's reads by UID
// only. Both go through the (mailbox_id, modseq) indexes alone (the
// messages index holds the UID, as the table's key), so the cost is the
// number of changes, not the mailbox's size.
func (s *Store) UIDChangesSince(ctx context.Context, userID, mailboxID int64, modseq uint64, withChanged bool) (store.UIDChanges, error) {
	var ch store.UIDChanges
	err := s.read(ctx, func(tx *dbtx) error {
		ch = store.UIDChanges{}
		m, err := selectable(ctx, tx, userID, mailboxID)
		if err != nil {
			return err
		}
		var floor int64
		if err := tx.QueryRowContext(ctx, `SELECT vanished_floor FROM mailboxes WHERE id = ?`, m.ID).Scan(&floor); err != nil {
			return err
		}
		ch.HighestModSeq = m.HighestModSeq
		ch.Complete = modseq >= uint64(floor)
		if modseq >= m.HighestModSeq {
			return nil // nothing can be newer
		}
		if withChanged {
			if ch.Changed, err = readUIDs(ctx, tx, changedUIDsQuery, m.ID, int64(modseq)); err != nil {
				return err
			}
		}
		ch.Vanished, err = readUIDs(ctx, tx, vanishedUIDsQuery, m.ID, int64(modseq))
		return err
	})
	if err != nil {
		return store.UIDChanges{}, err
	}
	return ch, nil
}

// readUIDs runs a query of one UID column and returns the UIDs ascending
// (nil when none).
func readUIDs(ctx context.Context, tx *dbtx, query string, args ...any) ([]uint32, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			return nil, err
		}
		out = append(out, uint32(uid))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

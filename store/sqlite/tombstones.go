package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// purgeTombstones applies the tombstone window (Options.TombstoneMaxAge,
// Options.TombstoneMaxCount) to one mailbox inside a write transaction.
// It is called opportunistically by every message write, so its common
// case is one indexed lookup; it purges at most purgeLimit tombstones per
// call, oldest (lowest MODSEQ) first, and raises the mailbox's
// vanished_floor to the highest MODSEQ it purged.
func (s *Store) purgeTombstones(ctx context.Context, tx *dbtx, mailboxID int64, now time.Time) error {
	var count int64
	var oldest sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT tombstone_count,
		(SELECT expunged_at FROM expunged WHERE mailbox_id = m.id ORDER BY modseq LIMIT 1)
		FROM mailboxes m WHERE id = ?`, mailboxID).Scan(&count, &oldest)
	if err != nil {
		return err
	}
	return s.purgeTombstonesOf(ctx, tx, mailboxID, now, count, oldest)
}

// purgeTombstonesOf is purgeTombstones once the mailbox's tombstone count
// and the expunge time of its oldest tombstone (NULL: none) are known.
func (s *Store) purgeTombstonesOf(ctx context.Context, tx *dbtx, mailboxID int64, now time.Time, count int64, oldest sql.NullInt64) error {
	cutoff := now.Add(-s.opts.TombstoneMaxAge).Unix()
	excess := count - int64(s.opts.TombstoneMaxCount)
	if excess <= 0 && (!oldest.Valid || oldest.Int64 >= cutoff) {
		return nil
	}
	// Walk the oldest tombstones in MODSEQ order and find the last one to
	// purge: everything over the count, then everything expired. Expunge
	// times grow with MODSEQ (unless the clock goes back, in which case
	// stopping at the first fresh tombstone is merely conservative).
	rows, err := tx.QueryContext(ctx, `SELECT uid, modseq, expunged_at FROM expunged
		WHERE mailbox_id = ? ORDER BY modseq, uid LIMIT ?`, mailboxID, purgeLimit)
	if err != nil {
		return err
	}
	var lastUID, lastModSeq int64
	found := false
	for i := int64(0); rows.Next(); i++ {
		var uid, modseq, at int64
		if err := rows.Scan(&uid, &modseq, &at); err != nil {
			rows.Close()
			return err
		}
		if i >= excess && at >= cutoff {
			break
		}
		lastUID, lastModSeq, found = uid, modseq, true
	}
	rows.Close()
	if err := rows.Err(); err != nil || !found {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM expunged WHERE mailbox_id = ? AND (modseq, uid) <= (?, ?)`,
		mailboxID, lastModSeq, lastUID); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET vanished_floor = max(vanished_floor, ?) WHERE id = ?`,
		lastModSeq, mailboxID)
	return err
}

// PurgeTombstones applies the tombstone window to every mailbox, as of
// now (a zero now means the store's clock). Message writes already purge
// the mailboxes they touch, a bounded amount each time; this sweep is for
// a periodic maintenance job, so that mailboxes nobody writes to shed
// their expired tombstones too. It runs one short write transaction per
// mailbox that has tombstones to purge and stops at the first error.
func (s *Store) PurgeTombstones(ctx context.Context, now time.Time) error {
	if now.IsZero() {
		now = s.opts.Now()
	}
	cutoff := now.Add(-s.opts.TombstoneMaxAge).Unix()
	rows, err := s.readers().QueryContext(ctx, `SELECT id FROM mailboxes m WHERE tombstone_count > ?
		OR (SELECT expunged_at FROM expunged WHERE mailbox_id = m.id ORDER BY modseq LIMIT 1) < ?`,
		s.opts.TombstoneMaxCount, cutoff)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		for {
			var before, after int64
			err := s.write(ctx, func(tx *dbtx) error {
				err := tx.QueryRowContext(ctx, `SELECT tombstone_count FROM mailboxes WHERE id = ?`, id).Scan(&before)
				if errors.Is(err, sql.ErrNoRows) {
					before, after = 0, 0 // deleted meanwhile
					return nil
				} else if err != nil {
					return err
				}
				if err := s.purgeTombstones(ctx, tx, id, now); err != nil {
					return err
				}
				return tx.QueryRowContext(ctx, `SELECT tombstone_count FROM mailboxes WHERE id = ?`, id).Scan(&after)
			})
			if err != nil {
				return err
			}
			if after == before || after == 0 {
				break
			}
		}
	}
	return nil
}

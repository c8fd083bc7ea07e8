package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// purgeTombstones applies the tombstone window (Options.TombstoneMaxAge,
// Options.TombstoneMaxCount) to one mailbox whose lock the caller holds.
// Every message write calls it, so its common case is one indexed
// lookup; it purges at most purgeLimit tombstones per call, oldest (lowest
// MODSEQ) first, and raises the mailbox's vanished_floor to the highest
// MODSEQ it purged.
func (s *Store) purgeTombstones(ctx context.Context, tx pgx.Tx, mailboxID int64, now time.Time) error {
	var count int64
	var oldest *int64
	err := tx.QueryRow(ctx, `SELECT tombstone_count,
		(SELECT expunged_at FROM expunged WHERE mailbox_id = m.id ORDER BY modseq LIMIT 1)
		FROM mailboxes m WHERE id = $1`, mailboxID).Scan(&count, &oldest)
	if err != nil {
		return err
	}
	return s.purgeTombstonesOf(ctx, tx, mailboxID, now, count, oldest)
}

// purgeTombstonesOf is purgeTombstones once the mailbox's tombstone count
// and the expunge time of its oldest tombstone (nil: none) are known.
func (s *Store) purgeTombstonesOf(ctx context.Context, tx pgx.Tx, mailboxID int64, now time.Time, count int64, oldest *int64) error {
	cutoff := now.Add(-s.opts.TombstoneMaxAge).Unix()
	excess := count - int64(s.opts.TombstoneMaxCount)
	if excess <= 0 && (oldest == nil || *oldest >= cutoff) {
		return nil
	}
	// Walk the oldest tombstones in MODSEQ order and find the last one to
	// purge: everything over the count, then everything expired.
	rows, err := tx.Query(ctx, `SELECT uid, modseq, expunged_at FROM expunged
		WHERE mailbox_id = $1 ORDER BY modseq, uid LIMIT $2`, mailboxID, purgeLimit)
	if err != nil {
		return err
	}
	var lastUID, lastModSeq int64
	found, stopped := false, false
	var i int64
	var uid, modseq, at int64
	_, err = pgx.ForEachRow(rows, []any{&uid, &modseq, &at}, func() error {
		// Expunge times grow with MODSEQ (unless the clock went back, when
		// stopping at the first fresh tombstone is merely conservative).
		if stopped || i >= excess && at >= cutoff {
			stopped = true
			return nil
		}
		lastUID, lastModSeq, found = uid, modseq, true
		i++
		return nil
	})
	if err != nil || !found {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM expunged WHERE mailbox_id = $1 AND (modseq, uid) <= ($2, $3)`,
		mailboxID, lastModSeq, lastUID); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE mailboxes SET vanished_floor = greatest(vanished_floor, $1) WHERE id = $2`,
		lastModSeq, mailboxID)
	return err
}

// PurgeTombstones applies the tombstone window to every mailbox, as of
// now (a zero now means the store's clock). Message writes already purge
// the mailboxes they touch; this sweep is for a periodic job, so that
// mailboxes nobody writes to shed their expired tombstones too. It runs
// one short transaction per mailbox and batch of purgeLimit, under the
// mailbox's lock, and stops at the first error. Several processes may run
// it at once: they take turns on each mailbox.
func (s *Store) PurgeTombstones(ctx context.Context, now time.Time) error {
	if now.IsZero() {
		now = s.opts.Now()
	}
	cutoff := now.Add(-s.opts.TombstoneMaxAge).Unix()
	rows, err := s.pool.Query(ctx, `SELECT id FROM mailboxes m WHERE tombstone_count > $1
		OR (SELECT expunged_at FROM expunged WHERE mailbox_id = m.id ORDER BY modseq LIMIT 1) < $2`,
		s.opts.TombstoneMaxCount, cutoff)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, id := range ids {
		for {
			var before, after int64
			err := s.write(ctx, func(tx pgx.Tx) error {
				err := tx.QueryRow(ctx, `SELECT tombstone_count FROM mailboxes WHERE id = $1 FOR UPDATE`, id).Scan(&before)
				if err == pgx.ErrNoRows {
					before, after = 0, 0 // deleted meanwhile
					return nil
				} else if err != nil {
					return err
				}
				if err := s.purgeTombstones(ctx, tx, id, now); err != nil {
					return err
				}
				return tx.QueryRow(ctx, `SELECT tombstone_count FROM mailboxes WHERE id = $1`, id).Scan(&after)
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

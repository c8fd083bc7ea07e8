package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/store/internal/storeutil"
)

// Check implements store.Store: quickimap's invariants, on one read
// snapshot. It aggregates every table once, so it is O(size of the
// store); it is meant for `quickimap check`, not for every request.
// PostgreSQL's own structures are PostgreSQL's business (amcheck).
func (s *Store) Check(ctx context.Context) ([]string, error) {
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	err := s.read(ctx, func(tx pgx.Tx) error {
		problems = nil
		var version int
		if err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
			return err
		}
		if version != SchemaVersion() {
			report("schema_version is %d, expected %d", version, SchemaVersion())
		}
		for _, q := range []struct{ what, sql string }{
			{"account name is not lower-case", `SELECT name FROM users WHERE name != lower(name)`},
			{"uidvalidity counter is behind a mailbox's uidvalidity (values could repeat)",
				`SELECT m.name FROM mailboxes m, counters c WHERE c.name = 'uidvalidity' AND m.uidvalidity > c.value`},
			{"uidvalidity is shared by two mailboxes",
				`SELECT uidvalidity::text FROM mailboxes GROUP BY uidvalidity HAVING count(*) > 1`},
			{"uidnext is not above the highest message uid",
				`SELECT m.name || ' (uidnext ' || m.uidnext || ', max uid ' || x.u || ')' FROM mailboxes m
				JOIN (SELECT mailbox_id, max(uid) AS u FROM messages GROUP BY mailbox_id) x ON x.mailbox_id = m.id
				WHERE m.uidnext <= x.u`},
			{"uidnext is not above the highest expunged uid",
				`SELECT m.name || ' (uidnext ' || m.uidnext || ', max uid ' || x.u || ')' FROM mailboxes m
				JOIN (SELECT mailbox_id, max(uid) AS u FROM expunged GROUP BY mailbox_id) x ON x.mailbox_id = m.id
				WHERE m.uidnext <= x.u`},
			{"highest_modseq is below a message's modseq",
				`SELECT m.name FROM mailboxes m
				JOIN (SELECT mailbox_id, max(modseq) AS s FROM messages GROUP BY mailbox_id) x ON x.mailbox_id = m.id
				WHERE m.highest_modseq < x.s`},
			{"highest_modseq is below an expunge's modseq",
				`SELECT m.name FROM mailboxes m
				JOIN (SELECT mailbox_id, max(modseq) AS s FROM expunged GROUP BY mailbox_id) x ON x.mailbox_id = m.id
				WHERE m.highest_modseq < x.s`},
			{"first_recent_uid is above uidnext", `SELECT name FROM mailboxes WHERE first_recent_uid > uidnext`},
			{"\\Noselect placeholder has messages",
				`SELECT name FROM mailboxes m WHERE noselect AND EXISTS (SELECT 1 FROM messages WHERE mailbox_id = m.id)`},
			{"message counters disagree with the messages",
				`SELECT m.name || ' (stored ' || m.message_count || '/' || m.unseen_count || '/' || m.total_size ||
					', actual ' || coalesce(x.n, 0) || '/' || coalesce(x.unseen, 0) || '/' || coalesce(x.size, 0) || ')'
				FROM mailboxes m LEFT JOIN (
					SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT seen) AS unseen, sum(size) AS size
					FROM messages GROUP BY mailbox_id) x ON x.mailbox_id = m.id
				WHERE m.message_count != coalesce(x.n, 0) OR m.unseen_count != coalesce(x.unseen, 0)
					OR m.total_size != coalesce(x.size, 0)`},
			{"tombstone counter disagrees with the tombstones",
				`SELECT m.name || ' (stored ' || m.tombstone_count || ', actual ' || coalesce(x.n, 0) || ')'
				FROM mailboxes m LEFT JOIN (SELECT mailbox_id, count(*) AS n FROM expunged GROUP BY mailbox_id) x
					ON x.mailbox_id = m.id
				WHERE m.tombstone_count != coalesce(x.n, 0)`},
			{"vanished_floor is above highest_modseq",
				`SELECT name FROM mailboxes WHERE vanished_floor > highest_modseq`},
			{"expunged uid is still a message",
				`SELECT m.name || ' uid ' || e.uid FROM expunged e JOIN mailboxes m ON m.id = e.mailbox_id
				WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox_id = e.mailbox_id AND uid = e.uid)`},
			{"message size differs from its body's length",
				`SELECT m.name || ' uid ' || x.uid || ' (size ' || x.size || ', body ' || length(b.data) || ')'
				FROM messages x JOIN mailboxes m ON m.id = x.mailbox_id JOIN bodies b ON b.id = x.body_id
				WHERE x.size != length(b.data)`},
			{"body is not referenced by any message",
				`SELECT id::text FROM bodies b WHERE NOT EXISTS (SELECT 1 FROM messages WHERE body_id = b.id)`},
			{"an import (quickimap migrate) did not finish; the database holds a partial copy",
				`SELECT 'started at Unix time ' || value FROM counters WHERE name = '` + importMarker + `'`},
			{"account has no INBOX",
				`SELECT name FROM users u WHERE NOT EXISTS (
					SELECT 1 FROM mailboxes WHERE user_id = u.id AND name = 'INBOX' AND NOT noselect)`},
		} {
			rows, err := tx.Query(ctx, q.sql)
			if err != nil {
				return fmt.Errorf("check %q: %w", q.what, err)
			}
			vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("check %q: %w", q.what, err)
			}
			for _, v := range vals {
				report("%s: %s", q.what, v)
			}
		}

		// Stored flags must be in normal form: the seen column and flag
		// comparisons rely on it.
		rows, err := tx.Query(ctx, `SELECT DISTINCT flags FROM messages`)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, flags := range all {
			if fs, err := storeutil.NormFlags(storeutil.ParseFlags(flags)); err != nil || storeutil.FormatFlags(fs) != flags {
				report("message flags are not in normal form: %q", flags)
			}
		}

		// The hierarchy, per user: names must be canonical, every parent
		// must exist and every placeholder must have children.
		type key struct {
			user int64
			name string
		}
		names := map[key]bool{} // -> noselect
		hasChild := map[key]bool{}
		var sorted []key
		var k key
		var noselect bool
		rows, err = tx.Query(ctx, `SELECT user_id, name, noselect FROM mailboxes ORDER BY user_id, name`)
		if err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&k.user, &k.name, &noselect}, func() error {
			names[k] = noselect
			sorted = append(sorted, k)
			if p := storeutil.ParentName(k.name); p != "" {
				hasChild[key{k.user, p}] = true
			}
			return nil
		}); err != nil {
			return err
		}
		slices.SortFunc(sorted, func(a, b key) int {
			return cmp.Or(cmp.Compare(a.user, b.user), strings.Compare(a.name, b.name))
		})
		for _, k := range sorted {
			if c, err := storeutil.CanonName(k.name); err != nil || c != k.name {
				report("user %d: mailbox name %q is not canonical", k.user, k.name)
			}
			if p := storeutil.ParentName(k.name); p != "" {
				if _, ok := names[key{k.user, p}]; !ok {
					report("user %d: mailbox %q has no parent %q", k.user, k.name, p)
				}
			}
			if names[k] && !hasChild[k] {
				report("user %d: \\Noselect placeholder %q has no children", k.user, k.name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return problems, nil
}

// Counts are the sizes of a store, for `quickimap check`.
type Counts struct {
	// SchemaVersion is the database's schema version.
	SchemaVersion int

	Users, Mailboxes, Messages, Bodies, Tombstones, Sessions int64
	// BodyBytes is the total length of the stored bodies.
	BodyBytes int64
}

// Counts returns the number of rows of the main tables, from one
// snapshot.
func (s *Store) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.pool.QueryRow(ctx, `SELECT (SELECT max(version) FROM schema_version), (SELECT count(*) FROM users), (SELECT count(*) FROM mailboxes),
		(SELECT count(*) FROM messages), (SELECT count(*) FROM bodies), (SELECT coalesce(sum(length(data)), 0) FROM bodies),
		(SELECT count(*) FROM expunged), (SELECT count(*) FROM sessions)`).Scan(
		&c.SchemaVersion, &c.Users, &c.Mailboxes, &c.Messages, &c.Bodies, &c.BodyBytes, &c.Tombstones, &c.Sessions)
	return c, err
}

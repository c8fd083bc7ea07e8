package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// Check implements store.Store: SQLite's own integrity and foreign key
// checks, then quickimap's invariants, all on one read snapshot. It reads
// every row of the mailboxes table and aggregates the messages table once,
// so it is O(size of the store); it is meant for `quickimap check`, not for
// every request.
func (s *Store) Check(ctx context.Context) ([]string, error) {
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	err := s.read(ctx, func(tx *dbtx) error {
		// SQLite's structural checks.
		lines, err := queryStrings(ctx, tx, `PRAGMA integrity_check`)
		if err != nil {
			return err
		}
		if len(lines) != 1 || lines[0] != "ok" {
			for _, l := range lines {
				report("integrity_check: %s", l)
			}
		}
		rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var table, parent string
			var rowid, fkid sql.NullInt64
			if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
				rows.Close()
				return err
			}
			report("foreign_key_check: %s row %d refers to a missing %s row", table, rowid.Int64, parent)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}

		var version int
		if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
			return err
		}
		if version != schemaVersion() {
			report("schema_version is %d, expected %d", version, schemaVersion())
		}

		// Invariants expressed as queries returning one description per
		// violation.
		for _, q := range []struct{ what, sql string }{
			{"account name is not lower-case", `SELECT name FROM users WHERE name != lower(name)`},
			{"uidvalidity is 0", `SELECT name FROM mailboxes WHERE uidvalidity = 0`},
			{"uidvalidity counter is behind a mailbox's uidvalidity (values could repeat)",
				`SELECT m.name FROM mailboxes m, counters c WHERE c.name = 'uidvalidity' AND m.uidvalidity > c.value`},
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
					SELECT mailbox_id, count(*) AS n, sum(NOT seen) AS unseen, sum(size) AS size
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
				`SELECT id FROM bodies b WHERE NOT EXISTS (SELECT 1 FROM messages WHERE body_id = b.id)`},
			{"account has no INBOX",
				`SELECT name FROM users u WHERE NOT EXISTS (
					SELECT 1 FROM mailboxes WHERE user_id = u.id AND name = 'INBOX' AND NOT noselect)`},
		} {
			vals, err := queryStrings(ctx, tx, q.sql)
			if err != nil {
				return fmt.Errorf("check %q: %w", q.what, err)
			}
			for _, v := range vals {
				report("%s: %s", q.what, v)
			}
		}

		// Stored flags must be in normal form (canonical, deduped, sorted,
		// no \Recent): the seen counter and flag comparisons rely on it.
		rows, err = tx.QueryContext(ctx, `SELECT DISTINCT flags FROM messages`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var flags string
			if err := rows.Scan(&flags); err != nil {
				rows.Close()
				return err
			}
			if fs, err := normFlags(parseFlags(flags)); err != nil || formatFlags(fs) != flags {
				report("message flags are not in normal form: %q", flags)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}

		// The hierarchy, per user, in Go: names must be canonical, every
		// parent must exist and every placeholder must have children.
		rows, err = tx.QueryContext(ctx, `SELECT user_id, name, noselect FROM mailboxes ORDER BY user_id, name`)
		if err != nil {
			return err
		}
		type key struct {
			user int64
			name string
		}
		names := map[key]bool{} // name -> noselect
		hasChild := map[key]bool{}
		for rows.Next() {
			var k key
			var noselect bool
			if err := rows.Scan(&k.user, &k.name, &noselect); err != nil {
				rows.Close()
				return err
			}
			names[k] = noselect
			if p := parentName(k.name); p != "" {
				hasChild[key{k.user, p}] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var sorted []key
		for k := range names {
			sorted = append(sorted, k)
		}
		slices.SortFunc(sorted, func(a, b key) int {
			return cmp.Or(cmp.Compare(a.user, b.user), strings.Compare(a.name, b.name))
		})
		for _, k := range sorted {
			if c, err := canonName(k.name); err != nil || c != k.name {
				report("user %d: mailbox name %q is not canonical", k.user, k.name)
			}
			if p := parentName(k.name); p != "" {
				if _, ok := names[key{k.user, p}]; !ok {
					report("user %d: mailbox %q has no parent %q", k.user, k.name, p)
				}
			}
			if names[k] && !hasChild[k] {
				report("user %d: \\Noselect placeholder %q has no children", k.user, k.name)
			}
		}
		sessions, err := checkSessions(ctx, tx)
		if err != nil {
			return err
		}
		problems = append(problems, sessions...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return problems, nil
}

func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v.String)
	}
	return out, rows.Err()
}

package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/quickimap/quickimap/store/internal/storeutil"
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
				WHERE b.file IS NULL AND x.size != length(b.data)`},
			{"body in a file also has data in the database",
				`SELECT id FROM bodies WHERE file IS NOT NULL AND length(data) != 0`},
			{"body file is named twice",
				`SELECT file FROM bodies WHERE file IS NOT NULL GROUP BY file HAVING count(*) > 1`},
			{"live body's file is listed as dead",
				`SELECT b.file FROM bodies b JOIN dead_files d ON d.name = b.file`},
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
			if fs, err := storeutil.NormFlags(storeutil.ParseFlags(flags)); err != nil || storeutil.FormatFlags(fs) != flags {
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
			if p := storeutil.ParentName(k.name); p != "" {
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
		sessions, err := checkSessions(ctx, tx)
		if err != nil {
			return err
		}
		problems = append(problems, sessions...)
		fileProblems, err := s.checkFiles(ctx, tx)
		if err != nil {
			return err
		}
		problems = append(problems, fileProblems...)
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

// orphanAge is how old an unreferenced body file must be for Check to
// report it: a younger one may belong to an APPEND whose transaction has
// not committed yet.
const orphanAge = time.Hour

// checkFiles checks the body files against the snapshot tx reads: every
// file a body names exists with its message's size, and every file in
// bodies/ is named by a body or listed in dead_files (or is younger than
// orphanAge).
func (s *Store) checkFiles(ctx context.Context, tx *dbtx) ([]string, error) {
	var problems []string
	rows, err := tx.QueryContext(ctx, `SELECT b.file, min(m.size), max(m.size) FROM bodies b
		JOIN messages m ON m.body_id = b.id WHERE b.file IS NOT NULL GROUP BY b.id`)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for rows.Next() {
		var name string
		var lo, hi int64
		if err := rows.Scan(&name, &lo, &hi); err != nil {
			rows.Close()
			return nil, err
		}
		known[name] = true
		if !validName(name) {
			problems = append(problems, fmt.Sprintf("body file name is invalid: %q", name))
			continue
		}
		fi, err := os.Stat(s.files.path(name))
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("body file is missing: %s (%v)", name, err))
		case lo != hi || fi.Size() != lo:
			problems = append(problems, fmt.Sprintf("body file size differs from its messages' size: %s (%d bytes, messages %d..%d)", name, fi.Size(), lo, hi))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	dead, err := queryStrings(ctx, tx, `SELECT name FROM dead_files`)
	if err != nil {
		return nil, err
	}
	for _, n := range dead {
		known[n] = true
	}
	subs, err := os.ReadDir(s.files.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return problems, nil
		}
		return nil, err
	}
	now := time.Now()
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.files.dir, sub.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if known[e.Name()] {
				continue
			}
			if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) < orphanAge {
				continue
			}
			problems = append(problems, fmt.Sprintf("body file is not referenced by any body: %s", filepath.Join(sub.Name(), e.Name())))
		}
	}
	return problems, nil
}

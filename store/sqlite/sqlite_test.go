package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/storetest"
)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, t.TempDir()) })
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store { return openTest(t, dir) })
}

func TestOpenCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b?#%c")
	s := openTest(t, dir)
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	fi, err = os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	ctx := context.Background()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1"} {
		var got string
		if err := s.wdbT().QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
	// Readers cannot write.
	if _, err := s.rdb.ExecContext(ctx, `DELETE FROM users`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	var v int
	if err := s.rdb.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != schemaVersion() || v != 8 {
		t.Errorf("schema_version %d, want %d", v, schemaVersion())
	}
	// A database from a newer program is refused.
	if _, err := s.wdbT().ExecContext(ctx, `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(ctx, dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("Open accepted a newer schema version")
	}
}

// addMessage inserts a message the way the message issues will, to test
// the counters and Check until the interface has APPEND.
func addMessage(t *testing.T, s *Store, mailboxID int64, flags string, size int) uint32 {
	t.Helper()
	var uid uint32
	err := s.write(context.Background(), func(tx *dbtx) error {
		var body int64
		if err := tx.QueryRowContext(context.Background(), `INSERT INTO bodies (data) VALUES (?) RETURNING id`, []byte(strings.Repeat("x", size))).Scan(&body); err != nil {
			return err
		}
		if err := tx.QueryRowContext(context.Background(), `UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1
			WHERE id = ? RETURNING uidnext - 1`, mailboxID).Scan(&uid); err != nil {
			return err
		}
		_, err := tx.ExecContext(context.Background(), `INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id)
			SELECT id, ?, highest_modseq, ?, 0, ?, ? FROM mailboxes WHERE id = ?`, uid, flags, size, body, mailboxID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func TestMessageCounters(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "u", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	addMessage(t, s, inbox.ID, `\Seen`, 10)
	addMessage(t, s, inbox.ID, ``, 20)
	addMessage(t, s, inbox.ID, `\Flagged \Seen`, 30)
	st, err := s.Status(ctx, u.ID, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 3 || st.Unseen != 1 || st.Recent != 3 || st.Size != 60 || st.UIDNext != 4 || st.HighestModSeq != 4 {
		t.Errorf("Status = %+v", st)
	}
	from, to, err := s.ClaimRecent(ctx, u.ID, inbox.ID)
	if err != nil || from != 1 || to != 4 {
		t.Errorf("ClaimRecent = [%d, %d), %v; want [1, 4)", from, to, err)
	}
	from, to, err = s.ClaimRecent(ctx, u.ID, inbox.ID)
	if err != nil || from != 4 || to != 4 {
		t.Errorf("second ClaimRecent = [%d, %d), %v; want [4, 4)", from, to, err)
	}
	addMessage(t, s, inbox.ID, ``, 5)
	st, _ = s.Status(ctx, u.ID, inbox.ID)
	if st.Messages != 4 || st.Unseen != 2 || st.Recent != 1 || st.Size != 65 {
		t.Errorf("Status = %+v", st)
	}

	// Flag changes, moves and deletions keep the counters right.
	if _, err := s.wdbT().ExecContext(ctx, `UPDATE messages SET flags = '\Seen' WHERE mailbox_id = ? AND uid = 2`, inbox.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdbT().ExecContext(ctx, `UPDATE messages SET flags = '\Answered' WHERE mailbox_id = ? AND uid = 1`, inbox.ID); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Status(ctx, u.ID, inbox.ID)
	if st.Messages != 4 || st.Unseen != 2 || st.Size != 65 {
		t.Errorf("Status after STORE = %+v", st)
	}
	if problems, err := s.Check(ctx); err != nil || problems != nil {
		t.Errorf("Check = %q, %v", problems, err)
	}

	// RENAME INBOX takes the messages along; the new INBOX is empty.
	if err := s.RenameMailbox(ctx, u.ID, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	old, _ := s.MailboxByName(ctx, u.ID, "Old")
	st, _ = s.Status(ctx, u.ID, old.ID)
	if st.ID != inbox.ID || st.Messages != 4 {
		t.Errorf("Status of renamed INBOX = %+v", st)
	}
	newInbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	if st, _ := s.Status(ctx, u.ID, newInbox.ID); st.Messages != 0 {
		t.Errorf("Status of new INBOX = %+v", st)
	}

	// DELETE of a mailbox with children drops its messages and bodies.
	if _, err := s.CreateMailbox(ctx, u.ID, "Old/child", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, u.ID, "Old"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM bodies)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d messages and bodies left after DELETE", n)
	}
	if problems, err := s.Check(ctx); err != nil || problems != nil {
		t.Errorf("Check = %q, %v", problems, err)
	}

	// DeleteUser cascades to messages.
	sent, _ := s.MailboxByName(ctx, u.ID, "Sent")
	addMessage(t, s, sent.ID, ``, 1)
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM bodies) + (SELECT count(*) FROM mailboxes) + (SELECT count(*) FROM subscriptions)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows left after DeleteUser", n)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "u", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	addMessage(t, s, inbox.ID, ``, 3)
	if _, err := s.CreateMailbox(ctx, u.ID, "a/b", ""); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE mailboxes SET uidnext = 1, highest_modseq = 1 WHERE name = 'INBOX'`,
		`UPDATE mailboxes SET message_count = 7 WHERE name = 'INBOX'`,
		`DELETE FROM mailboxes WHERE name = 'a'`,
		`INSERT INTO mailboxes (user_id, name, uidvalidity, noselect) VALUES (` + strconv.FormatInt(u.ID, 10) + `, 'Inbox', 5, 0)`,
		`INSERT INTO mailboxes (user_id, name, uidvalidity, noselect) VALUES (` + strconv.FormatInt(u.ID, 10) + `, 'empty', 6, 1)`,
		`UPDATE counters SET value = 1`,
		`INSERT INTO users (name, password_hash, created) VALUES ('UPPER', '', 0)`,
	} {
		if _, err := s.wdbT().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	problems, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"uidnext is not above the highest message uid",
		"highest_modseq is below a message's modseq",
		"message counters disagree",
		`mailbox "a/b" has no parent "a"`,
		`mailbox name "Inbox" is not canonical`,
		`placeholder "empty" has no children`,
		"uidvalidity counter is behind",
		"account name is not lower-case",
		"account has no INBOX: UPPER",
	} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("Check did not report %q; got:\n%s", want, strings.Join(problems, "\n"))
		}
	}
}

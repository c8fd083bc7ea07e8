package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store/postgres"
	"github.com/quickimap/quickimap/store/sqlite"
)

// migrate copies a store into an empty database, verifies it, and
// refuses a database that is not empty or a missing --postgres.
func TestMigrateCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	dsn := pgtest.DB(t)
	quickimap(t, "pw\n", "user", "add", "--data", dir, "alice").want(t, exitOK, "Created user alice", "")
	quickimap(t, "pw\n", "user", "add", "--data", dir, "bob").want(t, exitOK, "Created user bob", "")

	quickimap(t, "", "migrate", "--data", dir).want(t, exitUsage, "", "--postgres DSN is required")
	quickimap(t, "", "migrate", "--data", filepath.Join(dir, "none"), "--postgres", dsn).want(t, exitFail, "", "no data directory")
	r := quickimap(t, "", "migrate", "--data", dir, "--postgres", dsn)
	r.want(t, exitOK, "copying 2 account(s), 12 mailbox(es), 0 message(s)", "")
	r.want(t, exitOK, "ok: 0 message(s)", "")
	quickimap(t, "", "check", "--postgres", dsn).want(t, exitOK, "2 accounts, 12 mailboxes", "")
	quickimap(t, "", "migrate", "--data", dir, "--postgres", dsn).want(t, exitFail, "",
		"is not empty: it holds 2 account(s), 12 mailbox(es)")
	quickimap(t, "", "help", "migrate").want(t, exitOK, "Stop the server first", "")
	quickimap(t, "", "help").want(t, exitOK, "quickimap migrate [--data DIR] --postgres DSN", "")
}

// migrate fails when another process writes to the store during the
// copy: the copy is of the store as it was when migrate began.
func TestMigrateStoreChanged(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	dsn := pgtest.DB(t)
	quickimap(t, "pw\n", "user", "add", "--data", dir, "alice").want(t, exitOK, "Created user alice", "")
	other, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	u, err := other.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wrote := false
	var out strings.Builder
	err = migrate(ctx, dir, dsn, sqlite.Options{}, postgres.Options{}, &out, func() {
		if !wrote {
			wrote = true
			if err := other.Subscribe(ctx, u.ID, "Later"); err != nil {
				t.Error(err)
			}
		}
	})
	if err == nil || !strings.Contains(err.Error(), "the store changed while it was copied") {
		t.Fatalf("migrate with a write during the copy: %v\n%s", err, out.String())
	}
}

// A client's session and QRESYNC state from before a migration stay
// good after it: a SID made against the embedded store resumes against
// "serve --postgres" with SELECTED, its \Recent and only what changed
// meanwhile (EXPUNGED from the copied tombstones), and a QRESYNC SELECT
// with the UIDVALIDITY and MODSEQ cached before gets VANISHED (EARLIER)
// for the expunges made before the migration.
func TestMigrateResume(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	dsn := pgtest.DB(t)
	quickimap(t, "secret\n", "user", "add", "--data", dir, "carol").want(t, exitOK, "Created user carol", "")
	s := startServer(t, bin, "--data", dir, "--listen", "127.0.0.1:0", "--no-initial-user")
	env := &imaptest.Env{Addr: s.waitListening()["addr"], User: "carol", Password: "secret"}

	w := env.DialLogin(t)
	for i := 1; i <= 4; i++ {
		body := fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)
		w.ExpectTagged("a", fmt.Sprintf("APPEND INBOX (%s) {%d+}\r\n%s", []string{`\Seen`, `$Work`, ``, `\Flagged`}[i-1], len(body), body), "a OK [APPENDUID")
	}
	c := env.DialLogin(t)
	c.ExpectTagged("e", "ENABLE QRESYNC", "e OK")
	uv, modseq := selectState(t, c.Cmd("s", "SELECT INBOX"))
	got := c.Cmd("n", "SID")
	if len(got) != 2 || !strings.HasPrefix(got[0], "* NEWSID ") {
		t.Fatalf("SID: %q", got)
	}
	sid := strings.TrimPrefix(got[0], "* NEWSID ")
	c.NC.Close() // the phone loses its connection

	// Changes the phone has not seen, before the migration.
	w.ExpectTagged("w1", "SELECT INBOX", "w1 OK")
	w.ExpectTagged("w2", `UID STORE 2 +FLAGS (\Answered)`, "w2 OK")
	w.ExpectTagged("w3", `UID STORE 3 +FLAGS.SILENT (\Deleted)`, "w3 OK")
	w.ExpectTagged("w4", "EXPUNGE", "w4 OK")
	w.ExpectTagged("w5", "LOGOUT", "w5 OK")
	s.stop()

	quickimap(t, "", "migrate", "--data", dir, "--postgres", dsn).want(t, exitOK, "ok: 3 message(s)", "")
	p := startServer(t, bin, "--postgres", dsn, "--data", filepath.Join(t.TempDir(), "unused"), "--listen", "127.0.0.1:0", "--no-initial-user")
	env.Addr = p.waitListening()["addr"]

	c = env.DialLogin(t)
	got = c.Cmd("r", fmt.Sprintf("SID %s %s %s", sid, uv, modseq))
	if got[0] != "* SELECTED INBOX" || !strings.HasPrefix(got[len(got)-1], "r OK [READ-WRITE]") {
		t.Fatalf("resume after migration: %q", got)
	}
	for _, want := range []string{"* 3 EXISTS", "* EXPUNGED 3", `FETCH (UID 2 FLAGS (\Answered $Work \Recent) MODSEQ (`} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("resume after migration: no %q in %q", want, got)
		}
	}
	for _, l := range got {
		if strings.Contains(l, "UID 1 ") || strings.Contains(l, "UID 4 ") {
			t.Errorf("resume after migration reports an unchanged message: %q", l)
		}
	}
	// The session goes on: a new message takes the next UID.
	body := "Subject: m5\r\n\r\nafter\r\n"
	c.ExpectTagged("a5", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body), fmt.Sprintf("a5 OK [APPENDUID %s 5]", uv))

	// A QRESYNC client without a session.
	q := env.DialLogin(t)
	q.ExpectTagged("e", "ENABLE QRESYNC", "e OK")
	got = q.Cmd("q", fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s 1:4))", uv, modseq))
	if !strings.HasPrefix(got[len(got)-1], "q OK") {
		t.Fatalf("QRESYNC SELECT after migration: %q", got)
	}
	for _, want := range []string{"* VANISHED (EARLIER) 3", fmt.Sprintf("[UIDVALIDITY %s]", uv), "[UIDNEXT 6]", "* 4 EXISTS", "UID 2 "} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("QRESYNC SELECT after migration: no %q in %q", want, got)
		}
	}
	q.ExpectTagged("f", "UID FETCH 1:* (BODY.PEEK[])", "f OK")
	p.stop()

	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if problems, err := st.Check(context.Background()); err != nil || problems != nil {
		t.Errorf("check after serving the copy: %q, %v", problems, err)
	}
}

// selectState returns the UIDVALIDITY and HIGHESTMODSEQ of a SELECT's
// response.
func selectState(t *testing.T, lines []string) (uv, modseq string) {
	t.Helper()
	for _, l := range lines {
		if m := regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`).FindStringSubmatch(l); m != nil {
			uv = m[1]
		}
		if m := regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(l); m != nil {
			modseq = m[1]
		}
	}
	if uv == "" || modseq == "" {
		t.Fatalf("SELECT: %q", lines)
	}
	return uv, modseq
}

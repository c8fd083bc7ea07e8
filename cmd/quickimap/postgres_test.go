package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The postgres key selects the PostgreSQL store and carries the store
// settings that apply to it.
func TestPostgresOptions(t *testing.T) {
	c := config.Default()
	if c.Postgres != "" {
		t.Fatalf("default postgres = %q, want empty (the embedded store)", c.Postgres)
	}
	for k, v := range map[string]string{"postgres": "postgres://q@db/mail", "tombstone-max-count": "7", "tombstone-max-age": "1h"} {
		if err := c.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if c.Postgres != "postgres://q@db/mail" {
		t.Errorf("Postgres = %q", c.Postgres)
	}
	if o := postgresOptions(&c); o.TombstoneMaxCount != 7 || o.TombstoneMaxAge != time.Hour {
		t.Errorf("postgresOptions = %+v", o)
	}
}

// user and check work on a PostgreSQL store given by --postgres.
func TestPostgresCommands(t *testing.T) {
	dsn := pgtest.DB(t)
	empty := t.TempDir() // no store here: every command must use the DSN
	quickimap(t, "s3cret\n", "user", "add", "--postgres", dsn, "--data", empty, "Alice").want(t, exitOK, "Created user alice", "")
	quickimap(t, "pw\n", "user", "add", "bob", "--postgres", dsn).want(t, exitOK, "Created user bob", "")
	quickimap(t, "x\n", "user", "add", "--postgres", dsn, "ALICE").want(t, exitFail, "", "already exists")
	r := quickimap(t, "", "user", "list", "--postgres", dsn)
	if r.code != exitOK || r.stdout != "alice\nbob\n" {
		t.Errorf("user list = %d %q %q", r.code, r.stdout, r.stderr)
	}
	quickimap(t, "", "user", "del", "--postgres", dsn, "bob").want(t, exitOK, "", "")
	quickimap(t, "", "check", "--postgres", dsn).want(t, exitOK,
		fmt.Sprintf("schema version %d: 1 accounts, 6 mailboxes, 0 messages", postgres.SchemaVersion()), "")
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("data directory used: %v %v", entries, err)
	}

	// check reports a broken invariant and fails.
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Pool().Exec(context.Background(), `UPDATE mailboxes SET message_count = 3 WHERE name = 'Junk'`)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	quickimap(t, "", "check", "--postgres", dsn).want(t, exitFail, "message counters disagree", "1 problem(s)")

	quickimap(t, "", "check", "--postgres", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2").
		want(t, exitFail, "", "opening the PostgreSQL store")
}

// The server on PostgreSQL: a short IMAP session (LOGIN, APPEND, SELECT,
// FETCH, STORE, EXPUNGE) and an IDLE that receives an APPEND made on a
// second connection.
func TestServePostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	bin := buildBinary(t)
	quickimap(t, "secret\n", "user", "add", "--postgres", dsn, "alice").want(t, exitOK, "Created user alice", "")
	s := startServer(t, bin, "--postgres", dsn, "--data", filepath.Join(t.TempDir(), "unused"),
		"--listen", "127.0.0.1:0", "--no-initial-user")
	env := &imaptest.Env{Addr: s.waitListening()["addr"], User: "alice", Password: "secret"}

	a := env.DialLogin(t)
	msg := "From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
	a.SendLine(fmt.Sprintf("a1 APPEND INBOX (\\Flagged) {%d}", len(msg)))
	if l := a.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	a.SendLine(msg)
	if got := a.ReadUntilTagged("a1"); !strings.Contains(got[len(got)-1], "a1 OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", got)
	}
	sel := strings.Join(a.ExpectTagged("a2", "SELECT INBOX", "a2 OK [READ-WRITE]"), "\n")
	if !strings.Contains(sel, "* 1 EXISTS") {
		t.Errorf("SELECT: %s", sel)
	}
	fetch := strings.Join(a.ExpectTagged("a3", "FETCH 1 (FLAGS BODY[])", "a3 OK"), "\n")
	if !strings.Contains(fetch, `\Flagged`) || !strings.Contains(fetch, "Subject: hello") {
		t.Errorf("FETCH: %s", fetch)
	}
	store := strings.Join(a.ExpectTagged("a4", `STORE 1 +FLAGS (\Seen \Deleted)`, "a4 OK"), "\n")
	if !strings.Contains(store, `\Seen`) || !strings.Contains(store, `\Deleted`) {
		t.Errorf("STORE: %s", store)
	}
	a.Expect("a5", "EXPUNGE", "* 1 EXPUNGE", "a5 OK EXPUNGE completed")

	// IDLE on a second connection sees an APPEND made on the first.
	b := env.DialLogin(t)
	b.ExpectTagged("b1", "SELECT INBOX", "b1 OK")
	b.SendLine("b2 IDLE")
	if l := b.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	a.SendLine(fmt.Sprintf("a6 APPEND INBOX {%d}", len(msg)))
	a.ReadLine()
	a.SendLine(msg)
	a.ReadUntilTagged("a6")
	if l := b.ReadLine(); l != "* 1 EXISTS" {
		t.Errorf("IDLE got %q, want * 1 EXISTS", l)
	}
	b.SendLine("DONE")
	b.ReadUntilTagged("b2")
	a.ExpectTagged("a7", "LOGOUT", "a7 OK")
	s.stop()
}

// import writes into a PostgreSQL store given by --postgres, skipping
// what is already there; backup refuses one and names PostgreSQL's
// tools.
func TestImportBackupPostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	mbox := filepath.Join("..", "..", "importer", "testdata", "mboxrd.mbox")
	unused := filepath.Join(t.TempDir(), "none") // no data directory: nothing may touch it
	quickimap(t, "pw\n", "user", "add", "--postgres", dsn, "alice").want(t, exitOK, "Created user alice", "")
	quickimap(t, "", "import", "--postgres", dsn, "--data", unused, "--user", "Alice", mbox).
		want(t, exitOK, "3 message(s) read: 3 imported, 0 already present", "")
	quickimap(t, "", "import", "--postgres", dsn, "--user", "alice", "--mailbox", "Archive/2025", mbox).
		want(t, exitOK, "3 imported", "")
	quickimap(t, "", "import", "--postgres", dsn, "--user", "alice", mbox).want(t, exitOK, "0 imported, 3 already present", "")
	quickimap(t, "", "import", "--postgres", dsn, "--user", "nobody", mbox).want(t, exitFail, "", "no user nobody")
	if _, err := os.Stat(unused); !os.IsNotExist(err) {
		t.Errorf("import --postgres touched the data directory: %v", err)
	}

	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"INBOX", "Archive/2025"} {
		mb, err := st.MailboxByName(ctx, u.ID, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s, err := st.Status(ctx, u.ID, mb.ID); err != nil || s.Messages != 3 {
			t.Errorf("%s: %d messages, %v", name, s.Messages, err)
		}
	}
	quickimap(t, "", "check", "--postgres", dsn).want(t, exitOK, "1 accounts, 7 mailboxes, 6 messages", "")

	out := filepath.Join(t.TempDir(), "backup")
	quickimap(t, "", "backup", "--postgres", dsn, out).want(t, exitUsage, "", "pg_dump --format=custom")
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("backup --postgres made %s: %v", out, err)
	}
	quickimap(t, "", "help", "backup").want(t, exitOK, "pg_basebackup", "")
	quickimap(t, "", "help", "import").want(t, exitOK, "--postgres DSN", "")
}

// An import into a PostgreSQL store reaches the IDLE clients of a server
// on it through the bus, not through the safety poll (turned off here).
func TestImportPostgresIdle(t *testing.T) {
	dsn := pgtest.DB(t)
	bin := buildBinary(t)
	quickimap(t, "secret\n", "user", "add", "--postgres", dsn, "alice").want(t, exitOK, "Created user alice", "")
	s := startServer(t, bin, "--postgres", dsn, "--data", filepath.Join(t.TempDir(), "unused"),
		"--listen", "127.0.0.1:0", "--no-initial-user", "--bus-poll-interval", "0")
	env := &imaptest.Env{Addr: s.waitListening()["addr"], User: "alice", Password: "secret"}
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.SendLine("i IDLE")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	mbox := filepath.Join("..", "..", "importer", "testdata", "mboxrd.mbox")
	quickimap(t, "", "import", "--postgres", dsn, "--user", "alice", mbox).want(t, exitOK, "3 imported", "")
	if l := c.ReadLine(); l != "* 3 EXISTS" {
		t.Errorf("IDLE after the import: %q, want * 3 EXISTS", l)
	}
	c.SendLine("DONE")
	c.ReadUntilTagged("i")
	s.stop()
}

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/pgtest"
)

// Two serve processes on one PostgreSQL database: an IDLE client on one
// hears an APPEND made on the other, through the bus serve opens on the
// store's DSN. Both are named by the host name: they tell their hints
// apart all the same.
func TestServePostgresTwoNodes(t *testing.T) {
	dsn := pgtest.DB(t)
	bin := buildBinary(t)
	quickimap(t, "secret\n", "user", "add", "--postgres", dsn, "alice").want(t, exitOK, "Created user alice", "")
	start := func() *imaptest.Env {
		s := startServer(t, bin, "--postgres", dsn, "--data", filepath.Join(t.TempDir(), "unused"),
			"--listen", "127.0.0.1:0", "--no-initial-user")
		t.Cleanup(s.stop)
		return &imaptest.Env{Addr: s.waitListening()["addr"], User: "alice", Password: "secret"}
	}
	a, b := start(), start()

	ca := a.DialLogin(t)
	ca.ExpectTagged("a1", "SELECT INBOX", "a1 OK")
	ca.SendLine("a2 IDLE")
	if l := ca.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	cb := b.DialLogin(t)
	msg := "From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
	cb.Send(fmt.Sprintf("b1 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	if got := cb.ReadUntilTagged("b1"); !strings.HasPrefix(got[len(got)-1], "b1 OK") {
		t.Fatalf("APPEND on b: %q", got)
	}
	if l := ca.ReadLine(); l != "* 1 EXISTS" {
		t.Errorf("IDLE on a got %q, want * 1 EXISTS", l)
	}
	ca.SendLine("DONE")
	ca.ReadUntilTagged("a2")
}

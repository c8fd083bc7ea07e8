package server_test

import (
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// RFC 3501 §2.3.2, §6.3.2: a read-only session (EXAMINE) claims no
// \Recent, but it sees it: the messages no read-write session has claimed
// are \Recent in it, consistently in RECENT, FETCH FLAGS and SEARCH
// RECENT/NEW, and stay \Recent for other sessions too. A message it learns
// of first stays \Recent in it after a read-write session claims it
// (\Recent: "this session is the first session to have been notified").
func TestExamineSeesRecent(t *testing.T) {
	env := imaptest.Start(t, nil)
	p := env.DialLogin(t)
	appendMsg(t, p, "p1", "INBOX", "", testMsg)
	appendMsg(t, p, "p2", "INBOX", `\Seen`, testMsg)

	e := env.DialLogin(t)
	got := e.Cmd("e1", "EXAMINE INBOX")
	if got[3] != "* 2 RECENT" {
		t.Fatalf("EXAMINE: %q", got)
	}
	e.Expect("e2", "FETCH 1:* (FLAGS)", `* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Seen \Recent))`, "e2 OK FETCH completed")
	e.Expect("e3", "SEARCH RECENT", "* SEARCH 1 2", "e3 OK SEARCH completed")
	e.Expect("e4", "SEARCH NEW", "* SEARCH 1", "e4 OK SEARCH completed")
	e.Expect("e5", "SEARCH OLD", "* SEARCH", "e5 OK SEARCH completed")
	e.Expect("e6", "NOOP", "e6 OK NOOP completed")

	// A second read-only session sees them too: nothing was claimed.
	e2 := env.DialLogin(t)
	got = e2.Cmd("f1", "EXAMINE INBOX")
	if got[3] != "* 2 RECENT" {
		t.Fatalf("second EXAMINE: %q", got)
	}

	// A new message while examining: recent in both.
	appendMsg(t, p, "p3", "INBOX", "", testMsg)
	e.Expect("e7", "NOOP", "* 3 EXISTS", "* 3 RECENT", "e7 OK NOOP completed")
	e.Expect("e8", "FETCH 3 (FLAGS)", `* 3 FETCH (FLAGS (\Recent))`, "e8 OK FETCH completed")

	// A read-write session claims all three; the read-only session was
	// told first and keeps them; a new EXAMINE sees none.
	s := env.DialLogin(t)
	got = s.Cmd("s1", "SELECT INBOX")
	if got[3] != "* 3 RECENT" {
		t.Fatalf("SELECT: %q", got)
	}
	e.Expect("e9", "SEARCH RECENT", "* SEARCH 1 2 3", "e9 OK SEARCH completed")
	e3 := env.DialLogin(t)
	got = e3.Cmd("g1", "EXAMINE INBOX")
	if got[3] != "* 0 RECENT" {
		t.Fatalf("EXAMINE after the claim: %q", got)
	}
	e3.Expect("g2", "SEARCH RECENT", "* SEARCH", "g2 OK SEARCH completed")
	e3.Expect("g3", "FETCH 1 (FLAGS)", `* 1 FETCH (FLAGS ())`, "g3 OK FETCH completed")

	// Another arrival: the read-only sessions learn of it first, so it is
	// recent in them, and still claimed by the read-write one.
	appendMsg(t, p, "p4", "INBOX", "", testMsg)
	e.Expect("e10", "NOOP", "* 4 EXISTS", "* 4 RECENT", "e10 OK NOOP completed")
	e3.Expect("g4", "NOOP", "* 4 EXISTS", "* 1 RECENT", "g4 OK NOOP completed")
	s.Expect("s2", "NOOP", "* 4 EXISTS", "* 4 RECENT", "s2 OK NOOP completed")
	// Claimed now: a read-only session that learns of it later does not
	// see it recent.
	e2.Expect("f2", "NOOP", "* 4 EXISTS", "* 2 RECENT", "f2 OK NOOP completed")
	e2.Expect("f3", "SEARCH RECENT", "* SEARCH 1 2", "f3 OK SEARCH completed")
}

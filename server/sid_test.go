package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

// Resumable sessions, draft-ietf-lemonade-reconnect-07. The session ids
// are random, so lines holding them are checked after substitution.

// newSID runs SID with no argument and returns the new id (§3.2).
func newSID(t *testing.T, c *imaptest.Conn, tag string) string {
	t.Helper()
	got := c.Cmd(tag, "SID")
	var id string
	if len(got) != 2 || !strings.HasPrefix(got[0], "* NEWSID ") || got[1] != tag+" OK SID completed: session created" {
		t.Fatalf("SID: %q", got)
	}
	id = strings.TrimPrefix(got[0], "* NEWSID ")
	return id
}

// §3.2: SID with no argument creates a session.
func TestSIDNew(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	// §3.3: arguments that are not syntactically valid are BAD.
	c.Expect("a", "SID 1", "a BAD Syntax error: expected SP, found end of line")
	c.Expect("a2", "SID x 1 1 1:*", "a2 BAD Syntax error: * is not allowed in SID known UIDs")
	id := newSID(t, c, "b")
	if id == "" {
		t.Fatal("empty id")
	}
	c.Expect("c", "DELETESID", "c OK DELETESID completed")
	// §3.4 (our reading): no current session, BAD.
	c.Expect("d", "DELETESID", "d BAD No current session")
	// Not before authentication.
	u := env.Dial(t)
	u.Expect("e", "SID", "e BAD SID not allowed in the not authenticated state")
}

// §3.3, §5.1: resume after a dropped connection; the changes made
// meanwhile come as FETCH (UID FLAGS MODSEQ) and EXPUNGED.
func TestSIDResumeAfterDrop(t *testing.T) {
	env, uv, w := seeded(t, 5) // HIGHESTMODSEQ 6
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "a")
	c.NC.Close() // drop: the session stays resumable (§1)

	w.ExpectTagged("w1", `UID STORE 2 +FLAGS (\Flagged)`, "w1 OK") // 7
	expungeUIDs(t, w, "4")                                         // 8, 9

	c = env.DialLogin(t)
	got := c.Cmd("b", fmt.Sprintf("SID %s %d 6", id, uv))
	want := []string{
		"* SELECTED INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Ok`,
		"* 4 EXISTS",
		"* 0 RECENT",
		// No UNSEEN (§3.1: OPTIONAL; the client has every flag) and
		// short texts: docs/reconnect.md, "What a resume sends".
		fmt.Sprintf("* OK [UIDVALIDITY %d] Ok", uv),
		"* OK [UIDNEXT 6] Ok",
		"* OK [HIGHESTMODSEQ 9] Ok",
		`* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (7))`,
		"* EXPUNGED 4", // after the FETCH responses, as in §3.3's example
		"b OK [READ-WRITE] Ok",
	}
	checkLines(t, got, want)
	// The session is live again: the mailbox is selected.
	c.Expect("c", "CHECK", "c OK CHECK completed")
	c.Expect("o", "LOGOUT (PRESERVE)", "* BYE Logging out; session state preserved", "o OK LOGOUT completed")

	// §3.3: with known-uids, only those UIDs are reported on.
	w.ExpectTagged("w2", `UID STORE 1,5 +FLAGS (\Seen)`, "w2 OK") // 10: one mod-sequence per command
	expungeUIDs(t, w, "3")                                        // 11, 12
	c = env.DialLogin(t)
	got = c.Cmd("d", fmt.Sprintf("SID %s %d 9 1:2,4", id, uv))
	want = []string{
		"* SELECTED INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Ok`,
		"* 3 EXISTS",
		"* 0 RECENT",
		fmt.Sprintf("* OK [UIDVALIDITY %d] Ok", uv),
		"* OK [UIDNEXT 6] Ok",
		"* OK [HIGHESTMODSEQ 12] Ok",
		`* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (10))`,
		"d OK [READ-WRITE] Ok",
	}
	checkLines(t, got, want)

	// The resume stood for UID FETCH (REPORTEXPUNGES) (§3.3), so live
	// expunges come as EXPUNGED (EXPUNGED draft §3.2), which renumbers as
	// EXPUNGE does.
	expungeUIDs(t, w, "5")
	c.Expect("e", "NOOP", "* EXPUNGED 5", "e OK NOOP completed")
	c.Expect("f", "FETCH 2 (UID)", "* 2 FETCH (UID 2)", "f OK FETCH completed")
}

func checkLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// §3.3: an unknown id creates a new session; so does another user's id,
// which never resumes the other's session.
func TestSIDUnknownAndOtherUser(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	got := c.Cmd("a", "SID nosuchsession 1 1")
	if len(got) != 2 || !strings.HasPrefix(got[0], "* NEWSID ") || got[1] != "a OK SID completed: session created" {
		t.Fatalf("unknown SID: %q", got)
	}
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	id := strings.TrimPrefix(got[0], "* NEWSID ")

	h, err := auth.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.CreateUser(context.Background(), "bob", h, store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	b := env.Dial(t)
	b.ExpectTagged("l", "LOGIN bob pw", "l OK")
	got = b.Cmd("b", "SID "+id+" 1 1")
	if len(got) != 2 || got[0] == "* NEWSID "+id || !strings.HasPrefix(got[0], "* NEWSID ") {
		t.Fatalf("other user's SID: %q", got)
	}
	// alice still holds hers: no DELETEDSID.
	c.Expect("n", "NOOP", "n OK NOOP completed")
}

// §3.3: a UIDVALIDITY that differs gives NEWSID with the same id and the
// full SELECT responses; the mailbox stays selected.
func TestSIDUIDValidityMismatch(t *testing.T) {
	env, uv, _ := seeded(t, 2)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "EXAMINE INBOX", "s OK [READ-ONLY]")
	id := newSID(t, c, "a")
	c.Expect("o", "LOGOUT (PRESERVE)", "* BYE Logging out; session state preserved", "o OK LOGOUT completed")

	c = env.DialLogin(t)
	got := c.Cmd("b", fmt.Sprintf("SID %s %d 1 1:2", id, uv+1))
	want := []string{
		"* SELECTED INBOX",
		"* NEWSID " + id,
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS ()] No permanent flags permitted`,
		"* 2 EXISTS",
		"* 0 RECENT",
		"* OK [UNSEEN 1] First unseen message",
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", uv),
		"* OK [UIDNEXT 3] Predicted next UID",
		"* OK [HIGHESTMODSEQ 3] Highest mod-sequence",
		"b OK [READ-ONLY] SID completed: resync required",
	}
	checkLines(t, got, want)
}

// §4: LOGOUT (PRESERVE) keeps the session; an unknown logout parameter
// is BAD (RFC 4466); plain LOGOUT deletes the session (§1).
func TestSIDLogoutPreserve(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	c.Expect("x", "LOGOUT (FOO)", "x BAD Syntax error: unknown LOGOUT parameter FOO")
	id := newSID(t, c, "a")
	c.Expect("o", "LOGOUT (PRESERVE)", "* BYE Logging out; session state preserved", "o OK LOGOUT completed")

	c = env.DialLogin(t)
	c.Expect("b", "SID "+id+" 1 1", "* SELECTED", "b OK SID completed: session resumed")
	c.Expect("o", "LOGOUT", "* BYE Logging out", "o OK LOGOUT completed")

	c = env.DialLogin(t)
	got := c.Cmd("d", "SID "+id+" 1 1")
	if len(got) != 2 || got[0] == "* NEWSID "+id || !strings.HasPrefix(got[0], "* NEWSID ") {
		t.Fatalf("SID after plain LOGOUT: %q", got)
	}
	// Without a session, LOGOUT (PRESERVE) is a plain LOGOUT (§4).
	c.Expect("e", "DELETESID", "e OK DELETESID completed")
	c.Expect("o", "LOGOUT (PRESERVE)", "* BYE Logging out", "o OK LOGOUT completed")
}

// §3.3, §5.3: resuming a session another connection holds moves it; the
// other connection gets DELETEDSID at its next command, or during IDLE.
func TestSIDTakeover(t *testing.T) {
	env, uv, _ := seeded(t, 1)
	first := env.DialLogin(t)
	first.ExpectTagged("s", "SELECT INBOX", "s OK")
	id := newSID(t, first, "a")

	second := env.DialLogin(t)
	second.ExpectTagged("b", fmt.Sprintf("SID %s %d 2", id, uv), "b OK [READ-WRITE]")
	first.Expect("n", "NOOP", "* DELETEDSID "+id, "n OK NOOP completed")
	first.Expect("d", "DELETESID", "d BAD No current session")

	// During IDLE: the line comes without a command.
	second.SendLine("i IDLE")
	if l := second.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	third := env.DialLogin(t)
	third.ExpectTagged("c", fmt.Sprintf("SID %s %d 2", id, uv), "c OK [READ-WRITE]")
	if l := second.ReadLine(); l != "* DELETEDSID "+id {
		t.Fatalf("IDLE: got %q, want DELETEDSID", l)
	}
	second.SendLine("DONE")
	if l := second.ReadLine(); l != "i OK IDLE terminated" {
		t.Fatalf("IDLE end: %q", l)
	}
	third.Expect("n", "NOOP", "n OK NOOP completed")
}

// The operator option adds the plain RECONNECT name after the draft's;
// neither is offered before authentication.
func TestSIDReconnectPlainName(t *testing.T) {
	env := imaptest.Start(t, func(o *server.Options) { o.ReconnectPlainName = true })
	c := env.Dial(t)
	if strings.Contains(c.Greeting, "RECONNECT") {
		t.Errorf("greeting offers reconnect before authentication: %q", c.Greeting)
	}
	got := c.Cmd("a", "LOGIN alice secret")
	if !strings.Contains(got[0], " X-DRAFT-W07-RECONNECT RECONNECT]") {
		t.Errorf("LOGIN: %q", got)
	}
}

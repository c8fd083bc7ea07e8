package server_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/session"
)

// A selected mailbox that goes away under a session: deleted by another
// session, or INBOX renamed (RFC 3501 §6.3.5 moves its messages to the new
// name and leaves a new, empty INBOX). RFC 2180 §3.2, as Dovecot does: the
// other sessions that have it selected get "* BYE" at their next chance
// and the connection closes; the session that did it gets "* OK [CLOSED]"
// (RFC 7162 §3.2.11) and stays, in the authenticated state.

const (
	byeDeleted = "* BYE Selected mailbox was deleted"
	byeRenamed = "* BYE Selected mailbox was renamed"
)

// expectBye sends a command and checks that the answer is the command's
// own untagged data, if any (pre), then the BYE, and that the server
// closes the connection (RFC 3501 §7.1.5: no tagged response after a BYE
// that is not LOGOUT's).
func expectBye(t *testing.T, c *imaptest.Conn, tag, cmd, bye string, pre ...string) {
	t.Helper()
	c.SendLine(tag + " " + cmd)
	for _, want := range append(pre, bye) {
		if l := c.ReadLine(); l != want {
			t.Errorf("%s %s: %q, want %q", tag, cmd, l, want)
		}
	}
	expectNothingThenEOF(t, c)
}

// expectNothingThenEOF checks that the server closes the connection
// without sending anything more.
func expectNothingThenEOF(t *testing.T, c *imaptest.Conn) {
	t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c.R)
	if err != nil || len(rest) > 0 {
		t.Errorf("after the BYE: %q, %v; want the connection closed", rest, err)
	}
}

// selectedOn returns a new logged-in connection with mailbox selected.
func selectedOn(t *testing.T, env *imaptest.Env, cmd string) *imaptest.Conn {
	t.Helper()
	c := env.DialLogin(t)
	c.ExpectTagged("s", cmd, "s OK")
	return c
}

func TestDeletedByAnotherSession(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.Expect("a1", "CREATE Box", "a1 OK CREATE completed")
	appendMsg(t, a, "a2", "Box", `\Seen`, testMsg)
	appendMsg(t, a, "a3", "Box", "", testMsg)

	// Every command in the selected state gets the BYE instead of its
	// tagged answer, and none of them acts on the old messages (no
	// message is left to FETCH, STORE, COPY or SEARCH); those that are
	// not about the selected mailbox answer first.
	cmds := []struct {
		cmd string
		pre []string
	}{
		{"NOOP", nil},
		{"CHECK", nil},
		{"FETCH 1:* (FLAGS)", nil},
		{"FETCH 1 BODY[]", nil},
		{"UID FETCH 1:* (FLAGS)", nil},
		{`STORE 1 +FLAGS (\Deleted)`, nil},
		{"COPY 1:* INBOX", nil},
		{"MOVE 1:* INBOX", nil},
		{"SEARCH ALL", []string{"* SEARCH"}},
		{"EXPUNGE", nil},
		{"STATUS INBOX (MESSAGES)", []string{"* STATUS INBOX (MESSAGES 0)"}},
		{`LIST "" INBOX`, []string{`* LIST (\HasNoChildren) "/" INBOX`}},
	}
	conns := make([]*imaptest.Conn, len(cmds))
	for i := range cmds {
		conns[i] = selectedOn(t, env, "SELECT Box")
	}
	examiner := selectedOn(t, env, "EXAMINE Box")
	idler := selectedOn(t, env, "SELECT Box")
	idler.SendLine("i1 IDLE")
	if l := idler.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	// These leave the mailbox themselves: no BYE, the session goes on.
	closer := selectedOn(t, env, "SELECT Box")
	unselecter := selectedOn(t, env, "SELECT Box")
	reselecter := selectedOn(t, env, "SELECT Box")

	a.Expect("a4", "DELETE Box", "a4 OK DELETE completed")

	// IDLE hears it at once.
	if l := idler.ReadLine(); l != byeDeleted {
		t.Errorf("IDLE: %q, want %q", l, byeDeleted)
	}
	expectNothingThenEOF(t, idler)

	for i, c := range cmds {
		expectBye(t, conns[i], "b", c.cmd, byeDeleted, c.pre...)
	}
	expectBye(t, examiner, "e", "FETCH 1:* (FLAGS)", byeDeleted)

	closer.Expect("c1", "CLOSE", "c1 OK CLOSE completed")
	closer.Expect("c2", "NOOP", "c2 OK NOOP completed")
	unselecter.Expect("u1", "UNSELECT", "u1 OK UNSELECT completed")
	unselecter.Expect("u2", "FETCH 1 FLAGS", "u2 BAD FETCH not allowed in the authenticated state")
	got := reselecter.Cmd("r1", "SELECT INBOX")
	if got[0] != "* OK [CLOSED] Previous mailbox closed" || got[len(got)-1] != "r1 OK [READ-WRITE] SELECT completed" {
		t.Errorf("SELECT after the delete: %q", got)
	}

	// Nothing was copied or moved into INBOX.
	a.Expect("a5", "STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 0)", "a5 OK STATUS completed")

	// The name again: a new mailbox, which the sessions that select it
	// see from UID 1 with a new UIDVALIDITY, nothing of the old one.
	a.Expect("a6", "CREATE Box", "a6 OK CREATE completed")
	appendMsg(t, a, "a7", "Box", `\Flagged`, testMsg)
	c := selectedOn(t, env, "SELECT Box")
	c.Expect("c1", "FETCH 1:* (UID FLAGS)", `* 1 FETCH (UID 1 FLAGS (\Flagged \Recent))`, "c1 OK FETCH completed")
}

// RFC 3501 §6.3.4 with children: the mailbox becomes \Noselect and loses
// its messages; for the sessions that had it selected it is gone just
// the same.
func TestDeletedParentByAnotherSession(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.Expect("a1", "CREATE Box/Child", "a1 OK CREATE completed")
	appendMsg(t, a, "a2", "Box", "", testMsg)
	b := selectedOn(t, env, "SELECT Box")
	a.Expect("a3", "DELETE Box", "a3 OK DELETE completed")
	expectBye(t, b, "b1", "NOOP", byeDeleted)
}

// The session that deletes its own selected mailbox: CLOSED before the
// tagged OK, then the authenticated state; the next SELECT has nothing to
// close.
func TestDeleteOwnSelectedMailbox(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.Expect("a1", "CREATE Box", "a1 OK CREATE completed")
	a.Expect("a2", "CREATE Other", "a2 OK CREATE completed")
	appendMsg(t, a, "a3", "Box", "", testMsg)
	a.ExpectTagged("a4", "SELECT Box", "a4 OK")
	// Deleting another mailbox leaves the selection alone.
	a.Expect("a5", "DELETE Other", "a5 OK DELETE completed")
	a.Expect("a6", "CHECK", "a6 OK CHECK completed")
	a.Expect("a7", "DELETE Box", "* OK [CLOSED] Selected mailbox was deleted", "a7 OK DELETE completed")
	a.Expect("a8", "FETCH 1 (FLAGS)", "a8 BAD FETCH not allowed in the authenticated state")
	got := a.Cmd("a9", "SELECT INBOX")
	if got[0] != `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)` || got[len(got)-1] != "a9 OK [READ-WRITE] SELECT completed" {
		t.Errorf("SELECT after deleting the selected mailbox: %q", got)
	}
	// EXAMINE too.
	a.Expect("b1", "CREATE Box", "b1 OK CREATE completed")
	a.ExpectTagged("b2", "EXAMINE Box", "b2 OK [READ-ONLY]")
	a.Expect("b3", "DELETE Box", "* OK [CLOSED] Selected mailbox was deleted", "b3 OK DELETE completed")
	a.Expect("b4", "CHECK", "b4 BAD CHECK not allowed in the authenticated state")
}

// A resumable session ended by the BYE stays resumable, like one whose
// connection dropped, with nothing selected: the resume answers a nameless
// SELECTED (docs/reconnect.md, "Mailbox deleted").
func TestDeletedSelectedSIDSessionKept(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.Expect("a1", "CREATE Box", "a1 OK CREATE completed")
	appendMsg(t, a, "a2", "Box", "", testMsg)
	b := env.DialLogin(t)
	id := newSID(t, b, "b1")
	b.ExpectTagged("b2", "SELECT Box", "b2 OK")
	a.Expect("a3", "DELETE Box", "a3 OK DELETE completed")
	expectBye(t, b, "b3", "NOOP", byeDeleted)

	c := env.DialLogin(t)
	c.Expect("c1", "SID "+id+" 1 1", "* SELECTED", "c1 OK SID completed: session resumed")
	c.Expect("c2", "CHECK", "c2 BAD CHECK not allowed in the authenticated state")
}

// RENAME INBOX (RFC 3501 §6.3.5) while INBOX is selected: the session
// that renames gets CLOSED, the others BYE; a new SELECT INBOX shows the
// new, empty INBOX, and new mail there.
func TestRenameSelectedInbox(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	appendMsg(t, a, "a1", "INBOX", "", testMsg)
	appendMsg(t, a, "a2", "INBOX", "", testMsg)
	a.ExpectTagged("a3", "SELECT INBOX", "a3 OK")
	b := selectedOn(t, env, "SELECT INBOX")
	e := selectedOn(t, env, "EXAMINE inbox")
	idler := selectedOn(t, env, "SELECT INBOX")
	idler.SendLine("i1 IDLE")
	if l := idler.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	other := selectedOn(t, env, "SELECT Sent")

	a.Expect("a4", "RENAME INBOX Old", "* OK [CLOSED] Selected mailbox was renamed", "a4 OK RENAME completed")
	a.Expect("a5", "NOOP", "a5 OK NOOP completed")

	if l := idler.ReadLine(); l != byeRenamed {
		t.Errorf("IDLE: %q, want %q", l, byeRenamed)
	}
	expectNothingThenEOF(t, idler)
	expectBye(t, b, "b1", "FETCH 1:* (FLAGS)", byeRenamed)
	expectBye(t, e, "e1", "NOOP", byeRenamed)
	other.Expect("o1", "NOOP", "o1 OK NOOP completed")

	// The new INBOX is empty and gets new mail; Old has the messages.
	appendMsg(t, a, "a6", "INBOX", "", testMsg)
	c := selectedOn(t, env, "SELECT INBOX")
	c.Expect("c1", "FETCH 1:* (UID)", `* 1 FETCH (UID 1)`, "c1 OK FETCH completed")
	a.Expect("a7", "STATUS Old (MESSAGES)", "* STATUS Old (MESSAGES 2)", "a7 OK STATUS completed")

	// Renaming another selected mailbox keeps it selected: same mailbox,
	// same UIDs, under the new name.
	o := selectedOn(t, env, "SELECT Old")
	a.Expect("a8", "RENAME Old Older", "a8 OK RENAME completed")
	o.Expect("o2", "FETCH 1:* (UID)", "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "o2 OK FETCH completed")
	// And renaming the new INBOX again leaves the session that has
	// Older selected alone.
	a.Expect("a9", "RENAME INBOX Old2", "a9 OK RENAME completed")
	o.Expect("o3", "NOOP", "o3 OK NOOP completed")
}

// A resumable session ended because INBOX was renamed resumes with
// nothing selected, not with the renamed mailbox under the name INBOX.
func TestRenamedInboxSIDSessionKept(t *testing.T) { renamedInboxResume(t, false) }

// A session that was not connected when INBOX was renamed resumes with
// nothing selected too: its INBOX is gone, whatever now has its old id.
func TestRenamedInboxInactiveSIDSession(t *testing.T) { renamedInboxResume(t, true) }

// renamedInboxResume selects INBOX in a resumable session, renames INBOX
// from another connection (after dropping the session's connection when
// inactive, else while it is connected, which gets the BYE) and checks
// the resume answers a nameless SELECTED.
func renamedInboxResume(t *testing.T, inactive bool) {
	env, reg := limitEnv(t, nil, session.Options{})
	a := env.DialLogin(t)
	appendMsg(t, a, "a1", "INBOX", "", testMsg)
	b := env.DialLogin(t)
	id := newSID(t, b, "b1")
	b.ExpectTagged("b2", "SELECT INBOX", "b2 OK")
	var uv uint32
	got := a.Cmd("a2", "STATUS INBOX (UIDVALIDITY)")
	fmt.Sscanf(got[0], "* STATUS INBOX (UIDVALIDITY %d)", &uv)
	if inactive {
		b.NC.Close()
		// Wait for the server to notice the drop and detach the
		// session (saved, then released), so that the rename finds
		// it inactive.
		if !waitFor(10*time.Second, func() bool { return reg.ActiveCount() == 0 }) {
			t.Fatalf("session still active 10 s after its connection closed")
		}
	}
	a.Expect("a3", "RENAME INBOX Old", "a3 OK RENAME completed")
	if !inactive {
		expectBye(t, b, "b3", "NOOP", byeRenamed)
	}

	c := env.DialLogin(t)
	got = c.Cmd("c1", fmt.Sprintf("SID %s %d 1", id, uv))
	if strings.Join(got, "|") != "* SELECTED|c1 OK SID completed: session resumed" {
		t.Errorf("resume after RENAME INBOX (inactive %v): %q", inactive, got)
	}
}

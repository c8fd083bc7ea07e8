package server_test

import (
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// STATUS of a \Noselect placeholder answers like SELECT: the name exists,
// it just cannot hold messages (RFC 5530 CANNOT, not NONEXISTENT).
func TestStatusNoselect(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	c.ExpectTagged("c1", "CREATE Job/Sub", "c1 OK")
	c.ExpectTagged("c2", "DELETE Job", "c2 OK")
	c.Expect("c3", `LIST "" Job*`,
		`* LIST (\Noselect \HasChildren) "/" Job`,
		`* LIST (\HasNoChildren) "/" Job/Sub`,
		"c3 OK LIST completed")
	c.Expect("c4", "SELECT Job", "c4 NO [CANNOT] Mailbox is not selectable")
	c.Expect("c5", "STATUS Job (MESSAGES)", "c5 NO [CANNOT] Mailbox is not selectable")
	c.Expect("c6", "STATUS Nowhere (MESSAGES)", "c6 NO [NONEXISTENT] No such mailbox")
	// LIST-STATUS leaves the placeholder without STATUS.
	c.Expect("c7", `LIST "" Job* RETURN (STATUS (MESSAGES))`,
		`* LIST (\Noselect \HasChildren) "/" Job`,
		`* LIST (\HasNoChildren) "/" Job/Sub`,
		`* STATUS Job/Sub (MESSAGES 0)`,
		"c7 OK LIST completed")
}

// STATUS RECENT counts the messages with \Recent set (RFC 3501 §6.3.10):
// for the selected mailbox, those that are \Recent in this session and
// still exist, plus those no session has claimed yet.
func TestStatusRecentSelected(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	b := env.DialLogin(t)
	appendMsg(t, b, "p1", "INBOX", "", testMsg)
	appendMsg(t, b, "p2", "INBOX", "", testMsg)
	a.Expect("a0", "STATUS INBOX (MESSAGES RECENT)", "* STATUS INBOX (MESSAGES 2 RECENT 2)", "a0 OK STATUS completed")
	got := a.Cmd("a1", "SELECT INBOX")
	if got[3] != "* 2 RECENT" {
		t.Fatalf("SELECT: %q", got)
	}
	// Both are \Recent in a now, none is left to claim.
	a.Expect("a2", "STATUS INBOX (MESSAGES RECENT)", "* STATUS INBOX (MESSAGES 2 RECENT 2)", "a2 OK STATUS completed")
	a.Expect("a3", `LIST "" INBOX RETURN (STATUS (RECENT))`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* STATUS INBOX (RECENT 2)`,
		"a3 OK LIST completed")
	// Another session sees none of them recent: they are a's.
	b.Expect("b1", "STATUS INBOX (MESSAGES RECENT)", "* STATUS INBOX (MESSAGES 2 RECENT 0)", "b1 OK STATUS completed")

	// A new message, not yet claimed: a's two and the new one. STATUS
	// may then report the new message (EXISTS, RECENT: a claims it).
	appendMsg(t, b, "p3", "INBOX", "", testMsg)
	a.Expect("a4", "STATUS INBOX (MESSAGES RECENT)",
		"* STATUS INBOX (MESSAGES 3 RECENT 3)",
		"* 3 EXISTS", "* 3 RECENT",
		"a4 OK STATUS completed")
	a.Expect("a5", "STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 3)", "a5 OK STATUS completed")
	b.Expect("b2", "STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 0)", "b2 OK STATUS completed")

	// b expunges one of a's recent messages; before a is told, STATUS
	// counts what exists, like MESSAGES.
	b.ExpectTagged("b3", "SELECT INBOX", "b3 OK")
	b.ExpectTagged("b4", `STORE 1 +FLAGS.SILENT (\Deleted)`, "b4 OK")
	b.ExpectTagged("b5", "EXPUNGE", "b5 OK")
	a.Expect("a6", "STATUS INBOX (MESSAGES RECENT)",
		"* STATUS INBOX (MESSAGES 2 RECENT 2)",
		"* 1 EXPUNGE",
		"a6 OK STATUS completed")
	// EXAMINE claims nothing: an unclaimed message stays counted. (It is
	// appended from a session without INBOX selected, which would claim
	// it.)
	d := env.DialLogin(t)
	appendMsg(t, d, "p4", "INBOX", "", testMsg)
	e := env.DialLogin(t)
	e.ExpectTagged("e1", "EXAMINE INBOX", "e1 OK")
	e.Expect("e2", "STATUS INBOX (MESSAGES RECENT)", "* STATUS INBOX (MESSAGES 3 RECENT 1)", "e2 OK STATUS completed")
}

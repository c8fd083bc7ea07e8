package server_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

const (
	preAuthCaps  = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE AUTH=PLAIN"
	postAuthCaps = "IMAP4rev1 LITERAL+ ID ENABLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS STATUS=SIZE IDLE UIDPLUS MOVE MULTIAPPEND ESEARCH CONDSTORE QRESYNC X-DRAFT-I01-EXPUNGED COMPRESS=DEFLATE X-DRAFT-W07-RECONNECT"
)

func TestGreetingAndCapability(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	if want := "* OK [CAPABILITY " + preAuthCaps + "] ready"; c.Greeting != want {
		t.Fatalf("greeting %q, want %q", c.Greeting, want)
	}
	c.Expect("a1", "CAPABILITY", "* CAPABILITY "+preAuthCaps, "a1 OK CAPABILITY completed")
	c.Expect("a2", "capability", "* CAPABILITY "+preAuthCaps, "a2 OK CAPABILITY completed")
	c.Expect("a3", "NOOP", "a3 OK NOOP completed")
	c.Expect("a4", "LOGIN alice secret", "a4 OK [CAPABILITY "+postAuthCaps+"] Ok")
	c.Expect("a5", "CAPABILITY", "* CAPABILITY "+postAuthCaps, "a5 OK CAPABILITY completed")
	c.Expect("a6", "LOGOUT", "* BYE Logging out", "a6 OK LOGOUT completed")
	c.ExpectEOF(2e9)
}

func TestLoginFailures(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	c.Expect("a1", "LOGIN alice wrong", "a1 NO [AUTHENTICATIONFAILED] Authentication failed")
	c.Expect("a2", "LOGIN nobody secret", "a2 NO [AUTHENTICATIONFAILED] Authentication failed")
	c.Expect("a3", "LOGIN alice", "a3 BAD Syntax error: expected SP, found end of line")
	// The third failure closes the connection.
	c.Expect("a4", `LOGIN "alice" "nope"`, "a4 NO [AUTHENTICATIONFAILED] Authentication failed")
	if l := c.ReadLine(); l != "* BYE Too many authentication failures" {
		t.Fatalf("got %q", l)
	}
	c.ExpectEOF(2e9)

	// Account names are case-insensitive; quoted and literal forms work.
	c = env.Dial(t)
	c.Expect("b1", `LOGIN "ALICE" "secret"`, "b1 OK [CAPABILITY "+postAuthCaps+"] Ok")
	c = env.Dial(t)
	c.SendLine("b2 LOGIN {5}")
	if l := c.ReadLine(); l != "+ Ready for literal data" {
		t.Fatalf("got %q", l)
	}
	c.SendLine("Alice {6+}")
	c.SendLine("secret")
	if l := c.ReadLine(); l != "b2 OK [CAPABILITY "+postAuthCaps+"] Ok" {
		t.Fatalf("got %q", l)
	}
}

func TestAuthenticatePlain(t *testing.T) {
	env := imaptest.Start(t, nil)
	// "\0alice\0secret" in base64.
	const ir = "AGFsaWNlAHNlY3JldA=="
	c := env.Dial(t)
	c.Expect("a1", "AUTHENTICATE PLAIN "+ir, "a1 OK [CAPABILITY "+postAuthCaps+"] Ok")
	c.Expect("a2", "AUTHENTICATE PLAIN "+ir, "a2 BAD AUTHENTICATE not allowed in the authenticated state")

	c = env.Dial(t)
	c.SendLine("b1 AUTHENTICATE PLAIN")
	if l := c.ReadLine(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	c.SendLine(ir)
	if l := c.ReadLine(); l != "b1 OK [CAPABILITY "+postAuthCaps+"] Ok" {
		t.Fatalf("got %q", l)
	}

	c = env.Dial(t)
	c.SendLine("c1 AUTHENTICATE PLAIN")
	c.ReadLine()
	c.SendLine("*")
	if l := c.ReadLine(); l != "c1 BAD AUTHENTICATE cancelled" {
		t.Fatalf("got %q", l)
	}
	c.Expect("c2", "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n", "c2 NO [AUTHENTICATIONFAILED] Authentication failed")
	c.Expect("c3", "AUTHENTICATE CRAM-MD5", "c3 NO [CANNOT] Unsupported authentication mechanism")
	c.Expect("c4", "AUTHENTICATE PLAIN !!!", "c4 BAD Syntax error: invalid base64 in initial response")
	// authzid other than the user is refused.
	c.Expect("c5", "AUTHENTICATE PLAIN Ym9iAGFsaWNlAHNlY3JldA==", "c5 NO [AUTHORIZATIONFAILED] Cannot act as another user")
}

func TestStateErrors(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	for _, cmd := range []string{"SELECT INBOX", "EXAMINE INBOX", "CREATE x", "DELETE x", "RENAME x y",
		"SUBSCRIBE x", "UNSUBSCRIBE x", `LIST "" *`, `LSUB "" *`, "STATUS INBOX (MESSAGES)", "NAMESPACE",
		"ENABLE CONDSTORE"} {
		name := strings.Fields(cmd)[0]
		c.Expect("s1", cmd, "s1 BAD "+name+" not allowed in the not authenticated state")
	}
	for _, cmd := range []string{"CHECK", "CLOSE", "UNSELECT"} {
		c.Expect("s2", cmd, "s2 BAD "+cmd+" not allowed in the not authenticated state")
	}
	c.Expect("s3", "LOGIN alice secret", "s3 OK [CAPABILITY "+postAuthCaps+"] Ok")
	for _, cmd := range []string{"CHECK", "CLOSE", "UNSELECT"} {
		c.Expect("s4", cmd, "s4 BAD "+cmd+" not allowed in the authenticated state")
	}
	c.Expect("s5", "LOGIN alice secret", "s5 BAD LOGIN not allowed in the authenticated state")
	c.Expect("s6", "STARTTLS", "s6 BAD STARTTLS not allowed in the authenticated state")
	c.ExpectTagged("s7", "SELECT INBOX", "s7 OK [READ-WRITE]")
	c.Expect("s8", "ENABLE CONDSTORE", "s8 BAD ENABLE not allowed in the selected state")
	c.Expect("s9", "FROB", "s9 BAD Unknown command FROB")
}

var uidvalidityRE = regexp.MustCompile(`^\* OK \[UIDVALIDITY (\d+)\] UIDs valid$`)

func TestSelectExamineCloseUnselect(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	got := c.Cmd("a1", "SELECT inbox")
	want := []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 0 EXISTS`,
		`* 0 RECENT`,
		``, // UIDVALIDITY, checked below
		`* OK [UIDNEXT 1] Predicted next UID`,
		`a1 OK [READ-WRITE] SELECT completed`,
	}
	if len(got) != len(want) {
		t.Fatalf("SELECT: %q", got)
	}
	for i := range want {
		if i == 4 {
			if !uidvalidityRE.MatchString(got[i]) {
				t.Errorf("line %d: %q", i, got[i])
			}
			continue
		}
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
	c.Expect("a2", "CHECK", "a2 OK CHECK completed")
	got = c.Cmd("a3", "EXAMINE Sent")
	// RFC 7162 §3.2.11: CLOSED marks the end of the previous mailbox.
	if got[0] != `* OK [CLOSED] Previous mailbox closed` || got[2] != `* OK [PERMANENTFLAGS ()] No permanent flags permitted` || got[len(got)-1] != "a3 OK [READ-ONLY] EXAMINE completed" {
		t.Errorf("EXAMINE: %q", got)
	}
	c.Expect("a4", "UNSELECT", "a4 OK UNSELECT completed")
	c.Expect("a5", "CHECK", "a5 BAD CHECK not allowed in the authenticated state")
	c.ExpectTagged("a6", "SELECT Drafts", "a6 OK [READ-WRITE]")
	c.Expect("a7", "CLOSE", "a7 OK CLOSE completed")
	c.Expect("a8", "SELECT nosuch", "a8 NO [NONEXISTENT] No such mailbox")
	// A failed SELECT leaves the connection unselected (RFC 3501 §6.3.1).
	c.ExpectTagged("a9", "SELECT INBOX", "a9 OK")
	c.Expect("a10", "SELECT nosuch", "* OK [CLOSED] Previous mailbox closed", "a10 NO [NONEXISTENT] No such mailbox")
	c.Expect("a11", "CLOSE", "a11 BAD CLOSE not allowed in the authenticated state")
	c.Expect("a12", "SELECT INBOX (FOO)", "a12 BAD Syntax error: unknown SELECT parameter FOO")
}

func TestCreateDeleteRenameList(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	c.Expect("a1", `LIST "" *`,
		`* LIST (\HasNoChildren \Archive) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
		`a1 OK LIST completed`)
	c.Expect("a2", `LIST "" ""`, `* LIST (\Noselect) "/" ""`, `a2 OK LIST completed`)
	c.Expect("a3", "CREATE Work/Projects/", "a3 OK CREATE completed")
	c.Expect("a4", "CREATE Work", "a4 NO [ALREADYEXISTS] Mailbox already exists")
	c.Expect("a5", "CREATE inbox", "a5 NO [ALREADYEXISTS] INBOX always exists")
	c.Expect("a6", `LIST "" Work*`,
		`* LIST (\HasChildren) "/" Work`,
		`* LIST (\HasNoChildren) "/" Work/Projects`,
		`a6 OK LIST completed`)
	c.Expect("a7", `LIST Work/ %`, `* LIST (\HasNoChildren) "/" Work/Projects`, `a7 OK LIST completed`)
	c.Expect("a8", `LIST "" %/%`, `* LIST (\HasNoChildren) "/" Work/Projects`, `a8 OK LIST completed`)
	c.Expect("a9", "RENAME Work Job", "a9 OK RENAME completed")
	c.Expect("a10", `LIST "" Job/*`, `* LIST (\HasNoChildren) "/" Job/Projects`, `a10 OK LIST completed`)
	c.Expect("a11", "RENAME Job Job/Sub", "a11 NO [CANNOT] Cannot move a mailbox into itself")
	c.Expect("a12", "RENAME nosuch x", "a12 NO [NONEXISTENT] No such mailbox")
	c.Expect("a13", "RENAME Job Sent", "a13 NO [ALREADYEXISTS] Mailbox already exists")
	// DELETE of a mailbox with children leaves a \Noselect placeholder.
	c.Expect("a14", "DELETE Job", "a14 OK DELETE completed")
	c.Expect("a15", `LIST "" Job*`,
		`* LIST (\Noselect \HasChildren) "/" Job`,
		`* LIST (\HasNoChildren) "/" Job/Projects`,
		`a15 OK LIST completed`)
	c.Expect("a16", "DELETE Job", "a16 NO [CANNOT] Mailbox has children and no messages; delete the children first")
	c.Expect("a17", "SELECT Job", "a17 NO [CANNOT] Mailbox is not selectable")
	c.Expect("a18", "DELETE Job/Projects", "a18 OK DELETE completed")
	c.Expect("a19", `LIST "" Job*`, `a19 OK LIST completed`)
	c.Expect("a20", "DELETE INBOX", "a20 NO [CANNOT] INBOX cannot be deleted")
	c.Expect("a21", "DELETE nosuch", "a21 NO [NONEXISTENT] No such mailbox")
	c.Expect("a22", "CREATE a//b", "a22 NO [CANNOT] Mailbox name has an empty hierarchy level")
	c.Expect("a23", `CREATE "a*b"`, "a23 NO [CANNOT] Mailbox name contains a forbidden character")
	// Modified UTF-7 names round-trip; 8-bit input is decoded as UTF-8.
	c.Expect("a24", "CREATE &ZeVnLIqe-", "a24 OK CREATE completed")
	c.Expect("a25", `LIST "" &ZeVnLIqe-`, `* LIST (\HasNoChildren) "/" &ZeVnLIqe-`, `a25 OK LIST completed`)
	c.Expect("a26", "CREATE &Jjo!", "a26 NO [CANNOT] Mailbox name is not valid modified UTF-7")
}

func TestRenameInbox(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	before := c.Cmd("a1", "STATUS INBOX (UIDVALIDITY)")
	c.Expect("a2", "RENAME INBOX Old", "a2 OK RENAME completed")
	after := c.Cmd("a3", "STATUS Old (UIDVALIDITY)")
	if strings.TrimPrefix(before[0], "* STATUS INBOX") != strings.TrimPrefix(after[0], "* STATUS Old") {
		t.Errorf("renamed INBOX lost its UIDVALIDITY: %q vs %q", before, after)
	}
	fresh := c.Cmd("a4", "STATUS INBOX (UIDVALIDITY MESSAGES)")
	if fresh[0] == before[0] {
		t.Errorf("new INBOX kept the old UIDVALIDITY: %q", fresh)
	}
}

func TestSubscriptionsAndLsub(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	c.Expect("a1", "CREATE Lists/Go", "a1 OK CREATE completed")
	c.Expect("a2", "SUBSCRIBE Lists/Go", "a2 OK SUBSCRIBE completed")
	c.Expect("a3", `LSUB "" Lists/*`, `* LSUB () "/" Lists/Go`, `a3 OK LSUB completed`)
	// % matches the unsubscribed parent, returned as \Noselect
	// (RFC 3501 §6.3.9).
	c.Expect("a4", `LSUB "" L%`, `* LSUB (\Noselect) "/" Lists`, `a4 OK LSUB completed`)
	c.Expect("a5", `LIST (SUBSCRIBED) "" Lists/*`, `* LIST (\HasNoChildren \Subscribed) "/" Lists/Go`, `a5 OK LIST completed`)
	c.Expect("a6", `LIST (SUBSCRIBED RECURSIVEMATCH) "" %`,
		`* LIST (\HasNoChildren \Archive \Subscribed) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts \Subscribed) "/" Drafts`,
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasNoChildren \Junk \Subscribed) "/" Junk`,
		`* LIST (\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasNoChildren \Sent \Subscribed) "/" Sent`,
		`* LIST (\HasNoChildren \Trash \Subscribed) "/" Trash`,
		`a6 OK LIST completed`)
	c.Expect("a7", "UNSUBSCRIBE Lists/Go", "a7 OK UNSUBSCRIBE completed")
	c.Expect("a8", "UNSUBSCRIBE Lists/Go", "a8 OK UNSUBSCRIBE completed")
	c.Expect("a9", `LSUB "" Lists/*`, `a9 OK LSUB completed`)
	c.Expect("a10", "SUBSCRIBE Gone", "a10 OK SUBSCRIBE completed")
	c.Expect("a11", `LIST (SUBSCRIBED) "" Gone`, `* LIST (\NonExistent \Subscribed) "/" Gone`, `a11 OK LIST completed`)
	c.Expect("a12", `LIST (RECURSIVEMATCH) "" %`, `a12 BAD RECURSIVEMATCH needs another selection option`)
	c.Expect("a13", `LIST (SPECIAL-USE) "" *`,
		`* LIST (\HasNoChildren \Archive) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
		`a13 OK LIST completed`)
}

func TestStatusNamespaceIDEnable(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	got := c.Cmd("a1", "STATUS Sent (MESSAGES RECENT UIDNEXT UNSEEN SIZE)")
	if got[0] != `* STATUS Sent (MESSAGES 0 RECENT 0 UIDNEXT 1 UNSEEN 0 SIZE 0)` || got[1] != "a1 OK STATUS completed" {
		t.Errorf("STATUS: %q", got)
	}
	c.Expect("a2", "STATUS Sent (BOGUS)", "a2 BAD Syntax error: unknown STATUS item BOGUS")
	c.Expect("a3", "STATUS Sent ()", "a3 BAD Syntax error: STATUS needs at least one item")
	c.Expect("a4", "STATUS nosuch (MESSAGES)", "a4 NO [NONEXISTENT] No such mailbox")
	c.Expect("a5", "NAMESPACE", `* NAMESPACE (("" "/")) NIL NIL`, "a5 OK NAMESPACE completed")
	idResp := `* ID ("name" "quickimap" "version" "0.1.0" "vendor" "quickimap" "support-url" "https://github.com/quickimap/quickimap")`
	c.Expect("a6", "ID NIL", idResp, "a6 OK ID completed")
	c.Expect("a7", `ID ("name" "test" "version" NIL)`, idResp, "a7 OK ID completed")
	c.Expect("a8", `ID ("name")`, "a8 BAD Syntax error: ID list must hold field/value pairs")
	c.Expect("a9", "ENABLE FOO", "* ENABLED", "a9 OK ENABLE completed")
	c.Expect("a10", "ENABLE", "a10 BAD ENABLE needs at least one capability")
	got = c.Cmd("a11", `LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UIDNEXT))`)
	want := []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* STATUS INBOX (MESSAGES 0 UIDNEXT 1)`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* STATUS Sent (MESSAGES 0 UIDNEXT 1)`,
		`a11 OK LIST completed`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("LIST-STATUS:\n%s", strings.Join(got, "\n"))
	}
}

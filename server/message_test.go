package server_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

const testMsg = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nHi Bob.\r\n"

// appendMsg appends body with LITERAL+ and returns the tagged line.
func appendMsg(t *testing.T, c *imaptest.Conn, tag, mailbox, flags, body string) string {
	t.Helper()
	if flags != "" {
		flags = " (" + flags + ")"
	}
	c.Send(fmt.Sprintf("%s APPEND %s%s {%d+}\r\n%s\r\n", tag, mailbox, flags, len(body), body))
	lines := c.ReadUntilTagged(tag)
	return lines[len(lines)-1]
}

var appendUIDRE = regexp.MustCompile(`^\S+ OK \[APPENDUID (\d+) ([0-9:,]+)\] APPEND completed$`)

func TestAppend(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	l := appendMsg(t, c, "a1", "INBOX", `\Seen $Forwarded`, testMsg)
	m := appendUIDRE.FindStringSubmatch(l)
	if m == nil || m[2] != "1" {
		t.Fatalf("APPEND: %q", l)
	}
	// Synchronizing literal with a date.
	c.SendLine(fmt.Sprintf(`a2 APPEND INBOX () " 5-Mar-2024 10:00:00 +0100" {%d}`, len(testMsg)))
	if l := c.ReadLine(); l != "+ Ready for literal data" {
		t.Fatalf("got %q", l)
	}
	c.Send(testMsg + "\r\n")
	if l := c.ReadLine(); !strings.HasPrefix(l, "a2 OK [APPENDUID "+m[1]+" 2]") {
		t.Fatalf("got %q", l)
	}
	// MULTIAPPEND (RFC 3502): one APPENDUID with both UIDs.
	c.Send(fmt.Sprintf("a3 APPEND INBOX {%d+}\r\n%s (\\Flagged) {%d+}\r\n%s\r\n", len(testMsg), testMsg, len(testMsg), testMsg))
	if l := c.ReadLine(); l != "a3 OK [APPENDUID "+m[1]+" 3:4] APPEND completed" {
		t.Fatalf("got %q", l)
	}
	if l := appendMsg(t, c, "a4", "Nowhere", "", testMsg); l != "a4 NO [TRYCREATE] No such mailbox" {
		t.Errorf("got %q", l)
	}
	if l := appendMsg(t, c, "a5", "INBOX", `\Recent`, testMsg); l != `a5 BAD Flag \Recent cannot be set` {
		t.Errorf("got %q", l)
	}
	c.Expect("a6", "APPEND INBOX {0+}\r\n", "a6 NO Empty message refused")
	c.Expect("a7", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT RECENT)", "* STATUS INBOX (MESSAGES 4 UNSEEN 3 UIDNEXT 5 RECENT 4)", "a7 OK STATUS completed")

	got := c.Cmd("a8", "SELECT INBOX")
	want := []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded \*)] Flags permitted`,
		`* 4 EXISTS`,
		`* 4 RECENT`,
		`* OK [UNSEEN 2] First unseen message`,
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("SELECT line %d: %q, want %q", i, got[i], w)
		}
	}
	// A second session finds nothing recent: \Recent belongs to one.
	c2 := env.DialLogin(t)
	got = c2.Cmd("b1", "SELECT INBOX")
	if got[3] != "* 0 RECENT" {
		t.Errorf("second session: %q", got[3])
	}
	// Appending to the selected mailbox reports EXISTS before the OK.
	got = c.Cmd("a9", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(testMsg), testMsg))
	if strings.Join(got[:2], "|") != "* 5 EXISTS|* 5 RECENT" {
		t.Errorf("APPEND to selected: %q", got)
	}
}

func TestStoreExpungeCopyMove(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	for i := 0; i < 5; i++ {
		appendMsg(t, c, "p", "INBOX", "", testMsg)
	}
	c.ExpectTagged("s0", "SELECT INBOX", "s0 OK [READ-WRITE]")
	c.Expect("s1", `STORE 1:2 +FLAGS (\Deleted)`,
		`* 1 FETCH (FLAGS (\Deleted \Recent))`,
		`* 2 FETCH (FLAGS (\Deleted \Recent))`,
		"s1 OK STORE completed")
	c.Expect("s2", `UID STORE 3 FLAGS.SILENT (\Seen $Work)`, // a new keyword: FLAGS again (RFC 3501 §7.2.6)
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work \*)] Flags permitted`,
		"s2 OK STORE completed")
	c.Expect("s3", `UID STORE 3 -FLAGS ($Work)`, `* 3 FETCH (UID 3 FLAGS (\Seen \Recent))`, "s3 OK STORE completed")
	c.Expect("s4", `STORE 9 FLAGS (\Seen)`, "s4 BAD Invalid message sequence number")
	c.Expect("s5", `STORE 1 FLAGS (\Bogus)`, `s5 BAD Flag \Bogus cannot be set`)
	c.Expect("s6", `STORE 1 FLAGZ (\Seen)`, `s6 BAD Syntax error: expected FLAGS, +FLAGS or -FLAGS`)
	// UID EXPUNGE only touches the UIDs given (RFC 4315).
	c.Expect("e1", "UID EXPUNGE 2", "* 2 EXPUNGE", "e1 OK EXPUNGE completed")
	c.Expect("e2", "EXPUNGE", "* 1 EXPUNGE", "e2 OK EXPUNGE completed")
	c.Expect("e3", "EXPUNGE", "e3 OK EXPUNGE completed")
	// Now UIDs 3, 4, 5 are sequence numbers 1, 2, 3.
	got := c.Cmd("c1", "COPY 1:2 Archive")
	if !regexp.MustCompile(`^c1 OK \[COPYUID \d+ 3:4 1:2\] COPY completed$`).MatchString(got[len(got)-1]) {
		t.Errorf("COPY: %q", got)
	}
	c.Expect("c2", "COPY 1 Nowhere", "c2 NO [TRYCREATE] No such mailbox")
	got = c.Cmd("m1", "UID MOVE 3,5 Trash")
	if len(got) != 4 || !regexp.MustCompile(`^\* OK \[COPYUID \d+ 3,5 1:2\] Moved$`).MatchString(got[0]) ||
		got[1] != "* 3 EXPUNGE" || got[2] != "* 1 EXPUNGE" || got[3] != "m1 OK MOVE completed" {
		t.Errorf("MOVE: %q", got)
	}
	c.Expect("m2", "STATUS Trash (MESSAGES)", "* STATUS Trash (MESSAGES 2)", "m2 OK STATUS completed")
	// CLOSE expunges \Deleted silently.
	c.Expect("x1", `STORE 1 +FLAGS.SILENT (\Deleted)`, "x1 OK STORE completed")
	c.Expect("x2", "CLOSE", "x2 OK CLOSE completed")
	c.Expect("x3", "STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 0)", "x3 OK STATUS completed")
	// Read-only mailboxes refuse changes.
	c.ExpectTagged("r0", "EXAMINE Archive", "r0 OK [READ-ONLY]")
	c.Expect("r1", `STORE 1 +FLAGS (\Seen)`, "r1 NO [READ-ONLY] Mailbox is read-only")
	c.Expect("r2", "EXPUNGE", "r2 NO [READ-ONLY] Mailbox is read-only")
	c.Expect("r3", "MOVE 1 INBOX", "r3 NO [READ-ONLY] Mailbox is read-only")
}

// Updates between connections: sequence numbers stay right for each, and
// EXPUNGE is never sent during STORE (RFC 3501 §7.4.1).
func TestLiveUpdates(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	b := env.DialLogin(t)
	for i := 0; i < 3; i++ {
		appendMsg(t, b, "p", "INBOX", "", testMsg)
	}
	a.ExpectTagged("a1", "SELECT INBOX", "a1 OK")
	b.ExpectTagged("b1", "SELECT INBOX", "b1 OK")
	appendMsg(t, b, "b2", "INBOX", "", testMsg)
	b.Expect("b3", `STORE 2 +FLAGS (\Seen)`, `* 2 FETCH (FLAGS (\Seen))`, "b3 OK STORE completed")
	// UID 4 is recent in B's session, which saw it first (after its own
	// APPEND); a message is recent in exactly one session.
	a.Expect("a2", "NOOP", "* 4 EXISTS", "* 3 RECENT", `* 2 FETCH (UID 2 FLAGS (\Seen \Recent))`, "a2 OK NOOP completed")
	b.Expect("b4", `STORE 1 +FLAGS (\Deleted)`, `* 1 FETCH (FLAGS (\Deleted))`, "b4 OK STORE completed")
	b.Expect("b5", "EXPUNGE", "* 1 EXPUNGE", "b5 OK EXPUNGE completed")
	// A's STORE on sequence number 1 still means UID 1's slot: the
	// expunge is held back, message 2 is still number 2.
	a.Expect("a3", `STORE 2 +FLAGS (\Flagged)`, `* 2 FETCH (FLAGS (\Flagged \Seen \Recent))`, "a3 OK STORE completed")
	a.Expect("a4", "NOOP", "* 1 EXPUNGE", "a4 OK NOOP completed")
	b.Expect("b6", "NOOP", `* 1 FETCH (UID 2 FLAGS (\Flagged \Seen))`, "b6 OK NOOP completed")

	// IDLE: A is told at once.
	a.SendLine("a5 IDLE")
	if l := a.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	appendMsg(t, b, "b7", "INBOX", "", testMsg)
	if l := a.ReadLine(); l != "* 4 EXISTS" {
		t.Fatalf("during IDLE: %q", l)
	}
	// Whether A or B claims UID 5 as recent is a race both may win.
	recentA := a.ReadLine()
	if recentA != "* 2 RECENT" && recentA != "* 3 RECENT" {
		t.Fatalf("during IDLE: %q", recentA)
	}
	b.ExpectTagged("b8", `UID STORE 5 +FLAGS (\Answered)`, "b8 OK STORE completed")
	want := `* 4 FETCH (UID 5 FLAGS (\Answered))`
	if recentA == "* 3 RECENT" {
		want = `* 4 FETCH (UID 5 FLAGS (\Answered \Recent))`
	}
	if l := a.ReadLine(); l != want {
		t.Fatalf("during IDLE: %q, want %q", l, want)
	}
	a.SendLine("DONE")
	if l := a.ReadLine(); l != "a5 OK IDLE terminated" {
		t.Fatalf("after DONE: %q", l)
	}
	a.SendLine("a6 IDLE")
	a.ReadLine()
	a.SendLine("NOPE")
	if l := a.ReadLine(); l != "a6 BAD Expected DONE to end IDLE" {
		t.Fatalf("bad DONE: %q", l)
	}
}

func TestIdleKeepalive(t *testing.T) {
	env := imaptest.Start(t, func(o *server.Options) { o.IdleKeepalive = 100 * time.Millisecond })
	c := env.DialLogin(t)
	c.SendLine("i1 IDLE")
	c.ReadLine()
	if l := c.ReadLine(); l != "* OK Still here" {
		t.Fatalf("keepalive: %q", l)
	}
	c.SendLine("DONE")
	if l := c.ReadLine(); l != "i1 OK IDLE terminated" {
		t.Fatalf("got %q", l)
	}
}

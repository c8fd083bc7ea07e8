package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// fetchFixture reads a message of testdata/messages.
func fetchFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fetchAppend appends body with flags and an internal date (LITERAL+).
func fetchAppend(t testing.TB, c *imaptest.Conn, flags, body string) {
	t.Helper()
	c.Send(fmt.Sprintf("ap APPEND INBOX (%s) \"07-Feb-1994 21:52:25 -0800\" {%d+}\r\n%s\r\n", flags, len(body), body))
	lines := c.ReadUntilTagged("ap")
	if !strings.HasPrefix(lines[len(lines)-1], "ap OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", lines)
	}
}

// expectFetch sends a command and checks its whole answer: want is the
// untagged responses exactly as sent, literals included (lines joined with
// CRLF), then the tagged line.
func expectFetch(t *testing.T, c *imaptest.Conn, tag, cmd, want, tagged string) {
	t.Helper()
	got := c.Cmd(tag, cmd)
	last := got[len(got)-1]
	body := strings.Join(got[:len(got)-1], "\r\n")
	if body != want || last != tag+" "+tagged {
		t.Errorf("%s %s:\n got: %q\n      %q\nwant: %q\n      %q", tag, cmd, body, last, want, tag+" "+tagged)
	}
}

const (
	simpleEnvelope = `("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) ((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL "<B27397-0100000@Blurdybloop.example>")`
	simpleBody     = `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1)`
	simpleBS       = `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1 NIL NIL NIL NIL)`
	fetchDate      = `"07-Feb-1994 21:52:25 -0800"`
)

func lit(s string) string { return "{" + strconv.Itoa(len(s)) + "}\r\n" + s }

func TestFetchSimpleItems(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	msg := fetchFixture(t, "simple.eml")
	fetchAppend(t, c, `\Flagged`, msg)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	i := strings.Index(msg, "\r\n\r\n") + 4
	header, text := msg[:i], msg[i:]
	size := strconv.Itoa(len(msg))
	const ok = "OK FETCH completed"

	expectFetch(t, c, "f1", "FETCH 1 FLAGS", `* 1 FETCH (FLAGS (\Flagged \Recent))`, ok)
	expectFetch(t, c, "f2", "FETCH 1 (UID)", `* 1 FETCH (UID 1)`, ok)
	expectFetch(t, c, "f3", "fetch 1 internaldate", `* 1 FETCH (INTERNALDATE `+fetchDate+`)`, ok)
	expectFetch(t, c, "f4", "FETCH 1 RFC822.SIZE", `* 1 FETCH (RFC822.SIZE `+size+`)`, ok)
	expectFetch(t, c, "f5", "FETCH 1 ENVELOPE", `* 1 FETCH (ENVELOPE `+simpleEnvelope+`)`, ok)
	expectFetch(t, c, "f6", "FETCH 1 BODY", `* 1 FETCH (BODY `+simpleBody+`)`, ok)
	expectFetch(t, c, "f7", "FETCH 1 BODYSTRUCTURE", `* 1 FETCH (BODYSTRUCTURE `+simpleBS+`)`, ok)
	expectFetch(t, c, "f8", "FETCH 1 FAST", `* 1 FETCH (FLAGS (\Flagged \Recent) INTERNALDATE `+fetchDate+` RFC822.SIZE `+size+`)`, ok)
	expectFetch(t, c, "f9", "FETCH 1 ALL", `* 1 FETCH (FLAGS (\Flagged \Recent) INTERNALDATE `+fetchDate+` RFC822.SIZE `+size+` ENVELOPE `+simpleEnvelope+`)`, ok)
	expectFetch(t, c, "f10", "FETCH 1 FULL", `* 1 FETCH (FLAGS (\Flagged \Recent) INTERNALDATE `+fetchDate+` RFC822.SIZE `+size+` ENVELOPE `+simpleEnvelope+` BODY `+simpleBody+`)`, ok)
	// PEEK forms and RFC822.HEADER leave \Seen alone.
	expectFetch(t, c, "p1", "FETCH 1 RFC822.HEADER", `* 1 FETCH (RFC822.HEADER `+lit(header)+`)`, ok)
	expectFetch(t, c, "p2", "FETCH 1 BODY.PEEK[]", `* 1 FETCH (BODY[] `+lit(msg)+`)`, ok)
	expectFetch(t, c, "p3", "FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])", `* 1 FETCH (BODY[HEADER] `+lit(header)+` BODY[TEXT] `+lit(text)+`)`, ok)
	expectFetch(t, c, "p4", "FETCH 1 BODY.PEEK[1]", `* 1 FETCH (BODY[1] `+lit(text)+`)`, ok)
	expectFetch(t, c, "p5", "FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject from)]",
		`* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] `+lit("From: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\n")+`)`, ok)
	expectFetch(t, c, "p6", "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Date From Subject To Message-Id)]",
		`* 1 FETCH (BODY[HEADER.FIELDS.NOT (DATE FROM SUBJECT TO MESSAGE-ID)] `+lit("MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n")+`)`, ok)
	expectFetch(t, c, "p7", "FETCH 1 BODY.PEEK[HEADER.FIELDS (X-None)]", `* 1 FETCH (BODY[HEADER.FIELDS (X-NONE)] {2}`+"\r\n\r\n)", ok)
	// Nonexistent parts are empty strings.
	expectFetch(t, c, "p8", "FETCH 1 (BODY.PEEK[2] BODY.PEEK[1.2] BODY.PEEK[2.MIME] BODY.PEEK[1.HEADER])",
		`* 1 FETCH (BODY[2] "" BODY[1.2] "" BODY[2.MIME] "" BODY[1.HEADER] "")`, ok)
	// Partials: the origin only in the response; beyond the end is "".
	expectFetch(t, c, "q1", "FETCH 1 BODY.PEEK[]<0.4>", `* 1 FETCH (BODY[]<0> {4}`+"\r\nDate)", ok)
	expectFetch(t, c, "q2", "FETCH 1 BODY.PEEK[TEXT]<6.3>", `* 1 FETCH (BODY[TEXT]<6> {3}`+"\r\nJoe)", ok)
	expectFetch(t, c, "q3", "FETCH 1 BODY.PEEK[TEXT]<50.100>", `* 1 FETCH (BODY[TEXT]<50> {5}`+"\r\now?\r\n)", ok)
	expectFetch(t, c, "q4", "FETCH 1 BODY.PEEK[]<"+size+".1>", `* 1 FETCH (BODY[]<`+size+`> "")`, ok)
	expectFetch(t, c, "q5", "FETCH 1 BODY.PEEK[]<4294967295.4294967295>", `* 1 FETCH (BODY[]<4294967295> "")`, ok)
	expectFetch(t, c, "f11", "FETCH 1 FLAGS", `* 1 FETCH (FLAGS (\Flagged \Recent))`, ok)

	// RFC822.TEXT sets \Seen and reports the new flags.
	expectFetch(t, c, "r1", "FETCH 1 RFC822.TEXT", `* 1 FETCH (FLAGS (\Flagged \Seen \Recent) RFC822.TEXT `+lit(text)+`)`, ok)
	// Already seen: no FLAGS.
	expectFetch(t, c, "r2", "FETCH 1 RFC822", `* 1 FETCH (RFC822 `+lit(msg)+`)`, ok)
	c.Expect("r3", `STORE 1 -FLAGS.SILENT (\Seen)`, "r3 OK STORE completed")
	expectFetch(t, c, "r4", "FETCH 1 RFC822", `* 1 FETCH (FLAGS (\Flagged \Seen \Recent) RFC822 `+lit(msg)+`)`, ok)
	c.Expect("r5", `STORE 1 -FLAGS.SILENT (\Seen)`, "r5 OK STORE completed")
	// Asked-for FLAGS are the new ones, and not repeated.
	expectFetch(t, c, "r6", "FETCH 1 (BODY[]<0.4> FLAGS)", `* 1 FETCH (BODY[]<0> {4}`+"\r\nDate"+` FLAGS (\Flagged \Seen \Recent))`, ok)
	c.Expect("r7", `STORE 1 -FLAGS.SILENT (\Seen)`, "r7 OK STORE completed")
	// UID FETCH: UID first, then the FLAGS.
	expectFetch(t, c, "r8", "UID FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]",
		`* 1 FETCH (UID 1 FLAGS (\Flagged \Seen \Recent) BODY[HEADER.FIELDS (SUBJECT)] `+lit("Subject: afternoon meeting\r\n\r\n")+`)`, ok)
	c.Expect("r9", `STORE 1 -FLAGS.SILENT (\Seen)`, "r9 OK STORE completed")
	// BODY[] with BODY.PEEK[] is not a PEEK.
	expectFetch(t, c, "r10", "FETCH 1 (BODY.PEEK[]<0.1> BODY[]<0.1>)", `* 1 FETCH (FLAGS (\Flagged \Seen \Recent) BODY[]<0> {1}`+"\r\nD)", ok)
}

func TestFetchMultipart(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	mixed := fetchFixture(t, "mixed-attachment.eml")
	fwd := fetchFixture(t, "rfc822.eml")
	fetchAppend(t, c, "", mixed)
	fetchAppend(t, c, "", fwd)
	c.ExpectTagged("s", "EXAMINE INBOX", "s OK [READ-ONLY]")
	const ok = "OK FETCH completed"

	expectFetch(t, c, "m1", "FETCH 1 BODYSTRUCTURE",
		`* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1 NIL NIL NIL NIL)`+
			`("APPLICATION" "PDF" ("NAME" "report.pdf") "<pdf1@example.com>" "The report" "BASE64" 16 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "report.pdf" "SIZE" "12")) ("en" "de") "http://example.com/report.pdf")`+
			` "MIXED" ("BOUNDARY" "mix") NIL NIL NIL))`, ok)
	expectFetch(t, c, "m2", "FETCH 1 BODY",
		`* 1 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1)`+
			`("APPLICATION" "PDF" ("NAME" "report.pdf") "<pdf1@example.com>" "The report" "BASE64" 16) "MIXED"))`, ok)
	expectFetch(t, c, "m3", "FETCH 1 ENVELOPE",
		`* 1 FETCH (ENVELOPE ("Wed, 2 Jul 2025 11:00:00 +0200" "report" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL NIL))`, ok)
	// Sections of parts; EXAMINE never sets \Seen.
	expectFetch(t, c, "m4", "FETCH 1 (BODY[1] BODY[2] BODY[1.MIME] BODY[3] BODY[2.1] BODY[2]<4.4>)",
		`* 1 FETCH (BODY[1] `+lit("See attached.")+` BODY[2] `+lit("SGVsbG8gV29ybGQh")+
			` BODY[1.MIME] `+lit("Content-Type: text/plain; charset=us-ascii\r\n\r\n")+` BODY[3] "" BODY[2.1] "" BODY[2]<4> {4}`+"\r\nbG8g)", ok)
	// Unclaimed: \Recent in a read-only session too (RFC 3501 §6.3.2).
	expectFetch(t, c, "m5", "FETCH 1 FLAGS", `* 1 FETCH (FLAGS (\Recent))`, ok)

	// message/rfc822: its parts are the encapsulated message's.
	inner := fwd[strings.Index(fwd, "From: Carol"):]
	innerHeader := inner[:strings.Index(inner, "\r\n\r\n")+4]
	innerText := inner[len(innerHeader):strings.Index(inner, "\r\n--fwd--")]
	expectFetch(t, c, "n1", "FETCH 2 (BODY[2.HEADER] BODY[2.TEXT] BODY[2.1] BODY[2.2.MIME] BODY[2.MIME] BODY[2.HEADER.FIELDS (Subject)] BODY[1.HEADER])",
		`* 2 FETCH (BODY[2.HEADER] `+lit(innerHeader)+` BODY[2.TEXT] `+lit(innerText)+` BODY[2.1] `+lit("Inner text.")+
			` BODY[2.2.MIME] `+lit("Content-Type: text/plain; name=notes.txt\r\n\r\n")+
			` BODY[2.MIME] `+lit("Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n")+
			` BODY[2.HEADER.FIELDS (SUBJECT)] `+lit("Subject: hello\r\n\r\n")+` BODY[1.HEADER] "")`, ok)
	expectFetch(t, c, "n2", "FETCH 2 BODY[2]", `* 2 FETCH (BODY[2] `+lit(inner[:strings.Index(inner, "\r\n--fwd--")])+`)`, ok)
	expectFetch(t, c, "n3", "FETCH 2 ENVELOPE",
		`* 2 FETCH (ENVELOPE (NIL "Fwd: hello" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL NIL))`, ok)
	expectFetch(t, c, "n4", "FETCH 1:2 FLAGS", "* 1 FETCH (FLAGS (\\Recent))\r\n* 2 FETCH (FLAGS (\\Recent))", ok)
	expectFetch(t, c, "n5", "UID FETCH 1:* RFC822.SIZE", fmt.Sprintf("* 1 FETCH (UID 1 RFC822.SIZE %d)\r\n* 2 FETCH (UID 2 RFC822.SIZE %d)", len(mixed), len(fwd)), ok)
}

func TestFetchSeenAcrossSessions(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	b := env.DialLogin(t)
	for i := 0; i < 3; i++ {
		fetchAppend(t, a, "", testMsg)
	}
	a.ExpectTagged("a1", "SELECT INBOX", "a1 OK [READ-WRITE]")
	b.ExpectTagged("b1", "EXAMINE INBOX", "b1 OK [READ-ONLY]")
	const ok = "OK FETCH completed"
	// EXAMINE: no \Seen.
	expectFetch(t, b, "b2", "FETCH 1 BODY[TEXT]", `* 1 FETCH (BODY[TEXT] `+lit("Hi Bob.\r\n")+`)`, ok)
	expectFetch(t, b, "b3", "FETCH 1:3 FLAGS", "* 1 FETCH (FLAGS ())\r\n* 2 FETCH (FLAGS ())\r\n* 3 FETCH (FLAGS ())", ok)
	// Read-write: \Seen on 2:3 only, 1 by PEEK stays unseen.
	expectFetch(t, a, "a2", "FETCH 2:3 BODY[TEXT]",
		`* 2 FETCH (FLAGS (\Seen \Recent) BODY[TEXT] `+lit("Hi Bob.\r\n")+")\r\n"+
			`* 3 FETCH (FLAGS (\Seen \Recent) BODY[TEXT] `+lit("Hi Bob.\r\n")+")", ok)
	expectFetch(t, a, "a3", "FETCH 1 BODY.PEEK[TEXT]", `* 1 FETCH (BODY[TEXT] `+lit("Hi Bob.\r\n")+`)`, ok)
	// A's own change is not reported to A again; B hears of it.
	a.Expect("a4", "NOOP", "a4 OK NOOP completed")
	b.Expect("b4", "NOOP", `* 2 FETCH (UID 2 FLAGS (\Seen))`, `* 3 FETCH (UID 3 FLAGS (\Seen))`, "b4 OK NOOP completed")
}

func TestFetchUIDAndExpunged(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	b := env.DialLogin(t)
	a.ExpectTagged("a0", "SELECT INBOX", "a0 OK")
	const ok = "OK FETCH completed"
	// Empty mailbox: UID FETCH finds nothing, FETCH has no valid number.
	expectFetch(t, a, "e1", "UID FETCH 1:* FLAGS", "", ok)
	a.Expect("e2", "FETCH 1:* FLAGS", "e2 BAD No messages in the mailbox")
	for i := 0; i < 4; i++ {
		fetchAppend(t, b, "", testMsg)
	}
	a.Expect("a1", "NOOP", "* 4 EXISTS", "* 4 RECENT", "a1 OK NOOP completed")
	expectFetch(t, a, "u1", "UID FETCH 2:3 FLAGS", "* 2 FETCH (UID 2 FLAGS (\\Recent))\r\n* 3 FETCH (UID 3 FLAGS (\\Recent))", ok)
	expectFetch(t, a, "u2", "UID FETCH 4 (FLAGS UID)", "* 4 FETCH (FLAGS (\\Recent) UID 4)", ok)
	expectFetch(t, a, "u3", "UID FETCH 4,9:20 RFC822.SIZE", fmt.Sprintf("* 4 FETCH (UID 4 RFC822.SIZE %d)", len(testMsg)), ok)
	expectFetch(t, a, "u4", "UID FETCH 99 FLAGS", "", ok)
	expectFetch(t, a, "u5", "UID FETCH * UID", "* 4 FETCH (UID 4)", ok)

	// B expunges UID 2: A still numbers it 2 until told, FETCH skips it,
	// sends no EXPUNGE (RFC 3501 §7.4.1) and ends in NO [EXPUNGEISSUED]
	// (RFC 2180 §4.1, RFC 5530); see expungeissued_test.go.
	b.ExpectTagged("b1", "SELECT INBOX", "b1 OK")
	b.ExpectTagged("b2", `UID STORE 2 +FLAGS.SILENT (\Deleted)`, "b2 OK")
	b.ExpectTagged("b3", "EXPUNGE", "b3 OK")
	const issued = "NO [EXPUNGEISSUED] Some of the requested messages no longer exist"
	expectFetch(t, a, "x1", "FETCH 1:* UID", "* 1 FETCH (UID 1)\r\n* 3 FETCH (UID 3)\r\n* 4 FETCH (UID 4)", issued)
	expectFetch(t, a, "x2", "FETCH 2 (UID RFC822.SIZE BODY[])", "", issued)
	expectFetch(t, a, "x3", "FETCH 2:3 ENVELOPE", `* 3 FETCH (ENVELOPE (NIL "hello" (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) ((NIL NIL "bob" "example.org")) NIL NIL NIL NIL))`, issued)
	a.Expect("x4", "NOOP", "* 2 EXPUNGE", "x4 OK NOOP completed")
	expectFetch(t, a, "x5", "FETCH 2 UID", "* 2 FETCH (UID 3)", ok)
}

func TestFetchErrors(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	c.Expect("n1", "FETCH 1 FLAGS", "n1 BAD FETCH not allowed in the authenticated state")
	fetchAppend(t, c, "", testMsg)
	fetchAppend(t, c, "", testMsg)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("b1", "FETCH 3 FLAGS", "b1 BAD Invalid message sequence number")
	c.Expect("b2", "FETCH 1:5 FLAGS", "b2 BAD Invalid message sequence number")
	c.Expect("b3", "FETCH 0 FLAGS", "b3 BAD Syntax error: zero in sequence set")
	for i, cmd := range []string{
		"FETCH",
		"FETCH 1",
		"FETCH 1 ",
		"FETCH 1 FOO",
		"FETCH 1 (FLAGS FOO)",
		"FETCH 1 ()",
		"FETCH 1 (FLAGS",
		"FETCH 1 (ALL)",
		"FETCH 1 BODY[FOO]",
		"FETCH 1 BODY[MIME]",
		"FETCH 1 BODY[0]",
		"FETCH 1 BODY[HEADER.FIELDS]",
		"FETCH 1 BODY[]<0.0>",
		"FETCH 1 BODY.PEEK",
		"FETCH 1 BINARY[1]",
		"FETCH 1 FLAGS (CHANGEDSINCE)",
		"FETCH 1 FLAGS (FOO)",
		"UID FETCH 1 FLAGS extra",
	} {
		tag := "x" + strconv.Itoa(i)
		got := c.Cmd(tag, cmd)
		if len(got) != 1 || !strings.HasPrefix(got[0], tag+" BAD Syntax error: ") {
			t.Errorf("%s: %q", cmd, got)
		}
	}
	// Limits answer BAD [LIMIT] and the connection goes on.
	got := c.Cmd("l1", "FETCH 1 ("+strings.TrimSpace(strings.Repeat("UID ", 101))+")")
	if len(got) != 1 || !strings.HasPrefix(got[0], "l1 BAD [LIMIT]") {
		t.Errorf("too many items: %q", got)
	}
	// A synchronizing literal in a header list.
	c.SendLine("h1 FETCH 1 BODY.PEEK[HEADER.FIELDS ({7}")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("got %q", l)
	}
	c.Send("Subject)]\r\n")
	if got := strings.Join(c.ReadUntilTagged("h1"), "|"); got != "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}|Subject: hello||)|h1 OK FETCH completed" {
		t.Errorf("literal field name: %q", got)
	}
	c.Expect("z", "NOOP", "z OK NOOP completed")
}

// TestFetchWithoutStructure covers messages stored without a cached
// structure (an older or another writer): FETCH parses them on the fly.
func TestFetchWithoutStructure(t *testing.T) {
	env := imaptest.Start(t, nil)
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, env.User)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msg := fetchFixture(t, "simple.eml")
	date := time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600))
	bad := []byte{1, 2, 3}
	if _, _, err := env.Store.AppendMessages(ctx, u.ID, mb.ID, []store.NewMessage{
		{Body: []byte(msg), InternalDate: date},
		{Body: []byte(msg), InternalDate: date, Structure: bad},
	}); err != nil {
		t.Fatal(err)
	}
	c := env.DialLogin(t)
	c.ExpectTagged("s", "EXAMINE INBOX", "s OK")
	expectFetch(t, c, "f1", "FETCH 1:2 (ENVELOPE BODYSTRUCTURE BODY[1])",
		`* 1 FETCH (ENVELOPE `+simpleEnvelope+` BODYSTRUCTURE `+simpleBS+` BODY[1] `+lit(msg[strings.Index(msg, "\r\n\r\n")+4:])+")\r\n"+
			`* 2 FETCH (ENVELOPE `+simpleEnvelope+` BODYSTRUCTURE `+simpleBS+` BODY[1] `+lit(msg[strings.Index(msg, "\r\n\r\n")+4:])+")",
		"OK FETCH completed")
}

// partPaths lists every part number of the message root, in the way
// BODY[n.m] addresses them (message.Resolve).
func partPaths(root *message.Part) [][]int {
	var out [][]int
	var walk func(container *message.Part, msgLevel bool, prefix []int)
	descend := func(p *message.Part, path []int) {
		switch {
		case p.Message != nil:
			walk(p.Message, true, path)
		case p.IsMultipart():
			walk(p, false, path)
		}
	}
	walk = func(container *message.Part, msgLevel bool, prefix []int) {
		if len(out) > 2000 || len(prefix) > 50 {
			return
		}
		switch {
		case container.IsMultipart():
			for i, ch := range container.Children {
				path := append(append([]int(nil), prefix...), i+1)
				out = append(out, path)
				descend(ch, path)
			}
		case msgLevel:
			path := append(append([]int(nil), prefix...), 1)
			out = append(out, path)
			if container.Message != nil {
				walk(container.Message, true, path)
			}
		}
	}
	walk(root, true, nil)
	return out
}

// TestFetchMIMEEdge fetches everything of every message of the MIME edge
// corpus through the go-imap client, which must parse every response.
func TestFetchMIMEEdge(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "mime-edge")
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(files) == 0 {
		t.Skipf("no MIME edge corpus in %s (../shared/data/mime-edge from the module root)", dir)
	}
	sort.Strings(files)
	t.Run("bodies-in-database", func(t *testing.T) {
		testFetchMIMEEdge(t, files, imaptest.StartStore(t, sqlite.Options{LargeBody: -1}, nil))
	})
	// Every body in a file: sections are read from it in pieces.
	t.Run("bodies-in-files", func(t *testing.T) {
		testFetchMIMEEdge(t, files, imaptest.StartStore(t, sqlite.Options{LargeBody: 1}, nil))
	})
}

func testFetchMIMEEdge(t *testing.T, files []string, env *imaptest.Env) {
	cl, err := imapclient.DialInsecure(env.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Login(env.User, env.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	raws := make([][]byte, len(files))
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = raw
		ap := cl.Append("INBOX", int64(len(raw)), nil)
		ap.Write(raw)
		ap.Close()
		if _, err := ap.Wait(); err != nil {
			t.Fatalf("APPEND %s: %v", f, err)
		}
	}
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		name := filepath.Base(f)
		raw := raws[i]
		root, err := message.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		seq := imap.SeqSetNum(uint32(i + 1))
		sections := []*imap.FetchItemBodySection{
			{Peek: true},
			{Peek: true, Specifier: imap.PartSpecifierHeader},
			{Peek: true, Specifier: imap.PartSpecifierText},
			{Peek: true, Part: []int{1}},
			{Peek: true, Part: []int{1}, Specifier: imap.PartSpecifierMIME},
			{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "from"}},
			{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Subject"}},
			{Peek: true, Partial: &imap.SectionPartial{Offset: 10, Size: 100}},
			{Peek: true, Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 1, Size: 1 << 20}},
		}
		msgs, err := cl.Fetch(seq, &imap.FetchOptions{
			UID:           true,
			Flags:         true,
			InternalDate:  true,
			RFC822Size:    true,
			Envelope:      true,
			BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			BodySection:   sections,
		}).Collect()
		if err != nil {
			t.Errorf("%s: FETCH: %v", name, err)
			continue
		}
		if len(msgs) != 1 {
			t.Errorf("%s: %d messages", name, len(msgs))
			continue
		}
		m := msgs[0]
		if m.Envelope == nil || m.BodyStructure == nil {
			t.Errorf("%s: no envelope or body structure", name)
		}
		if m.RFC822Size != int64(len(raw)) {
			t.Errorf("%s: RFC822.SIZE %d, want %d", name, m.RFC822Size, len(raw))
		}
		for _, f := range m.Flags {
			if f == imap.FlagSeen {
				t.Errorf("%s: flags %v after PEEK", name, m.Flags)
			}
		}
		full := m.FindBodySection(sections[0])
		if !bytes.Equal(full, raw) {
			t.Errorf("%s: BODY[] differs from the file (%d bytes, want %d)", name, len(full), len(raw))
		}
		hdr, txt := m.FindBodySection(sections[1]), m.FindBodySection(sections[2])
		if !bytes.Equal(append(append([]byte(nil), hdr...), txt...), raw) {
			t.Errorf("%s: BODY[HEADER] + BODY[TEXT] differ from the file", name)
		}
		for j, sec := range []message.Section{
			{Specifier: message.SpecHeaderFields, Fields: []string{"Subject", "from"}},
			{Specifier: message.SpecHeaderFieldsNot, Fields: []string{"Subject"}},
		} {
			w, err := message.Extract(raw, root, sec)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.FindBodySection(sections[5+j]); !bytes.Equal(got, w) {
				t.Errorf("%s: BODY[%s] = %q, want %q", name, sec.Specifier, got, w)
			}
		}
		partial := func(b []byte, off, n int) []byte { return b[min(off, len(b)):min(off+n, len(b))] }
		if got, w := m.FindBodySection(sections[7]), partial(raw, 10, 100); !bytes.Equal(got, w) {
			t.Errorf("%s: BODY[]<10.100> = %q, want %q", name, got, w)
		}
		if got, w := m.FindBodySection(sections[8]), partial(txt, 1, 1<<20); !bytes.Equal(got, w) {
			t.Errorf("%s: BODY[TEXT]<1.1048576> = %q, want %q", name, got, w)
		}
		// Every part number, its MIME header when it has one, and the
		// header and text of encapsulated messages: bytes as the
		// message package extracts them.
		var more []*imap.FetchItemBodySection
		var want [][]byte
		for _, p := range partPaths(root) {
			specs := []imap.PartSpecifier{imap.PartSpecifierNone, imap.PartSpecifierMIME}
			if part := message.Resolve(root, p); part != nil && part.Message != nil {
				specs = append(specs, imap.PartSpecifierHeader, imap.PartSpecifierText)
			}
			for _, sp := range specs {
				w, err := message.Extract(raw, root, message.Section{Path: p, Specifier: string(sp)})
				if err != nil {
					t.Fatalf("%s: Extract %v %s: %v", name, p, sp, err)
				}
				more = append(more, &imap.FetchItemBodySection{Peek: true, Part: p, Specifier: sp})
				want = append(want, w)
			}
		}
		if len(more) == 0 {
			t.Errorf("%s: no parts", name)
		}
		for len(more) > 0 {
			n := min(len(more), 50)
			msgs, err := cl.Fetch(seq, &imap.FetchOptions{BodySection: more[:n]}).Collect()
			if err != nil || len(msgs) != 1 {
				t.Errorf("%s: FETCH parts: %v (%d messages)", name, err, len(msgs))
				break
			}
			for j, s := range more[:n] {
				got := msgs[0].FindBodySection(s)
				if got == nil && len(want[j]) > 0 {
					t.Errorf("%s: BODY[%v.%s] missing", name, s.Part, s.Specifier)
				} else if !bytes.Equal(got, want[j]) {
					t.Errorf("%s: BODY[%v.%s] = %q, want %q", name, s.Part, s.Specifier, got, want[j])
				}
			}
			more, want = more[n:], want[n:]
		}
	}
	// And all of them at once.
	all, err := cl.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection: []*imap.FetchItemBodySection{{Peek: true, Part: []int{1}}},
	}).Collect()
	if err != nil || len(all) != len(files) {
		t.Errorf("FETCH 1:*: %v, %d messages, want %d", err, len(all), len(files))
	}
}

// BenchmarkUIDFetchFlags100k measures "UID FETCH 1:* (UID FLAGS)" over
// TCP on a mailbox of 100,000 messages, reading until the tagged OK.
func BenchmarkUIDFetchFlags100k(b *testing.B) {
	const total, batch = 100000, 5000
	env := imaptest.Start(b, nil)
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, env.User)
	if err != nil {
		b.Fatal(err)
	}
	mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(testMsg)
	flagSets := [][]string{nil, {`\Seen`}, {`\Seen`, `\Flagged`}, {`\Answered`, `\Seen`, "$Work"}}
	msgs := make([]store.NewMessage, batch)
	for n := 0; n < total; n += batch {
		for i := range msgs {
			msgs[i] = store.NewMessage{Body: body, Flags: flagSets[(n+i)%len(flagSets)]}
		}
		if _, _, err := env.Store.AppendMessages(ctx, u.ID, mb.ID, msgs); err != nil {
			b.Fatal(err)
		}
	}
	// A first session takes \Recent, so that the measured one reports the
	// stored flags alone (the steady state of a phone resyncing).
	first := env.DialLogin(b)
	first.ExpectTagged("s", "SELECT INBOX", "s OK")
	first.ExpectTagged("l", "LOGOUT", "l OK")

	c := env.DialLogin(b)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	r := bufio.NewReaderSize(c.NC, 64<<10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Send("f UID FETCH 1:* (UID FLAGS)\r\n")
		n, err := readToTagged(c.NC, r, "f ")
		if err != nil {
			b.Fatal(err)
		}
		if n != total {
			b.Fatalf("%d FETCH responses, want %d", n, total)
		}
	}
}

// readToTagged reads lines until the one starting with tag and returns the
// number of lines before it.
func readToTagged(nc net.Conn, r *bufio.Reader, tag string) (int, error) {
	nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	n := 0
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return n, fmt.Errorf("line too long")
		}
		if err != nil {
			return n, err
		}
		if bytes.HasPrefix(line, []byte(tag)) {
			if !bytes.HasPrefix(line[len(tag):], []byte("OK")) {
				return n, fmt.Errorf("%s", line)
			}
			return n, nil
		}
		n++
	}
}

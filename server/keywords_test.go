package server_test

import (
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// RFC 3501 §7.2.6: the FLAGS response lists the flags that apply to the
// mailbox, and "the update from the FLAGS response MUST be recorded by the
// client". When a keyword new to the mailbox appears (STORE, APPEND, COPY,
// MOVE, by this session or another), FLAGS and PERMANENTFLAGS go out again
// before any FETCH or EXISTS that may carry it, as Dovecot does; a
// read-only session gets FLAGS only (its PERMANENTFLAGS stays empty).

const sysFlags = `\Answered \Flagged \Deleted \Seen \Draft`

func flagsLines(keywords string) []string {
	return []string{
		"* FLAGS (" + sysFlags + " " + keywords + ")",
		"* OK [PERMANENTFLAGS (" + sysFlags + " " + keywords + ` \*)] Flags permitted`,
	}
}

func lines(l ...any) []string {
	var out []string
	for _, x := range l {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case []string:
			out = append(out, x...)
		}
	}
	return out
}

func TestNewKeywordsAnnounced(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	appendMsg(t, a, "p1", "INBOX", "kwA", testMsg)
	appendMsg(t, a, "p2", "INBOX", "", testMsg)
	got := a.Cmd("a0", "SELECT INBOX") // claims \Recent of 1 and 2
	if !strings.HasPrefix(strings.Join(got, "|"), strings.Join(flagsLines("kwA"), "|")) {
		t.Fatalf("SELECT: %q", got)
	}
	b := selectedOn(t, env, "SELECT INBOX")
	e := selectedOn(t, env, "EXAMINE INBOX")
	idler := selectedOn(t, env, "SELECT INBOX")
	idler.SendLine("i1 IDLE")
	if l := idler.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}

	// The session's own STORE: FLAGS before the FETCH that uses it.
	a.Expect("a1", "STORE 2 +FLAGS (newkw)", lines(
		flagsLines("kwA newkw"),
		`* 2 FETCH (FLAGS (newkw \Recent))`,
		"a1 OK STORE completed")...)
	// Known now: no FLAGS again.
	a.Expect("a2", "STORE 1 +FLAGS (newkw)", `* 1 FETCH (FLAGS (kwA newkw \Recent))`, "a2 OK STORE completed")

	// IDLE: once, before the flag changes.
	var heard []string
	for len(heard) < 4 {
		heard = append(heard, idler.ReadLine())
	}
	checkLines(t, heard, lines(flagsLines("kwA newkw"),
		"* 2 FETCH (UID 2 FLAGS (newkw))",
		"* 1 FETCH (UID 1 FLAGS (kwA newkw))"))
	idler.SendLine("DONE")
	idler.Expect("i2", "NOOP", "i1 OK IDLE terminated", "i2 OK NOOP completed")

	// A FETCH reads the current flags: FLAGS come before it, not after
	// with the update report.
	b.Expect("b1", "FETCH 2 (FLAGS)", lines(
		flagsLines("kwA newkw"),
		"* 2 FETCH (FLAGS (newkw))",
		"* 1 FETCH (UID 1 FLAGS (kwA newkw))",
		"* 2 FETCH (UID 2 FLAGS (newkw))",
		"b1 OK FETCH completed")...)

	// Read-only: FLAGS without PERMANENTFLAGS.
	e.Expect("e1", "NOOP",
		"* FLAGS ("+sysFlags+" kwA newkw)",
		"* 1 FETCH (UID 1 FLAGS (kwA newkw))",
		"* 2 FETCH (UID 2 FLAGS (newkw))",
		"e1 OK NOOP completed")

	// APPEND into the selected mailbox, by the session itself.
	got = a.Cmd("a3", "APPEND INBOX (appkw) {5+}\r\nHi!\r\n")
	checkLines(t, got[:len(got)-1], lines(flagsLines("appkw kwA newkw"), "* 3 EXISTS", "* 3 RECENT"))

	// MOVE into it by another session.
	m := env.DialLogin(t)
	appendMsg(t, m, "m1", "Archive", "movedkw", testMsg)
	m.ExpectTagged("m2", "SELECT Archive", "m2 OK")
	m.ExpectTagged("m3", "MOVE 1 INBOX", "m3 OK")
	b.Expect("b2", "NOOP", lines(flagsLines("appkw kwA movedkw newkw"), "* 4 EXISTS", "* 1 RECENT", "b2 OK NOOP completed")...)
	// COPY too.
	appendMsg(t, m, "m4", "Archive", "copiedkw", testMsg)
	m.ExpectTagged("m5", "UID COPY 2 INBOX", "m5 OK")
	b.Expect("b3", "NOOP", lines(flagsLines("appkw copiedkw kwA movedkw newkw"), "* 5 EXISTS", "* 2 RECENT", "b3 OK NOOP completed")...)

	// A SEARCH that reads flags announces them first as well (the
	// messages with the new keywords are not yet in this session's view:
	// they come with EXISTS after the result; b claimed their \Recent).
	a.Expect("a4", "SEARCH KEYWORD copiedkw", lines(flagsLines("appkw copiedkw kwA movedkw newkw"),
		"* SEARCH", "* 5 EXISTS", "* 3 RECENT", "a4 OK SEARCH completed")...)
}

// Keywords are case-insensitive (RFC 3501 §9 note 1; Dovecot): a keyword
// stored in another case takes the spelling the mailbox already has, so
// FLAGS never lists the same keyword twice.
func TestKeywordCaseReusesMailboxSpelling(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	appendMsg(t, a, "p1", "INBOX", "kwA", testMsg)
	appendMsg(t, a, "p2", "INBOX", "", testMsg)
	appendMsg(t, a, "p3", "INBOX", "KWa", testMsg)
	a.ExpectTagged("a0", "SELECT INBOX", "a0 OK")
	a.Expect("a1", "STORE 2 +FLAGS (KWA)", `* 2 FETCH (FLAGS (kwA \Recent))`, "a1 OK STORE completed")
	a.Expect("a2", "FETCH 3 (FLAGS)", `* 3 FETCH (FLAGS (kwA \Recent))`, "a2 OK FETCH completed")
	a.Expect("a3", "SEARCH KEYWORD KwA", `* SEARCH 1 2 3`, "a3 OK SEARCH completed")
	b := env.DialLogin(t)
	got := b.Cmd("b1", "EXAMINE INBOX")
	if got[0] != "* FLAGS ("+sysFlags+" kwA)" {
		t.Errorf("EXAMINE: %q", got)
	}
}

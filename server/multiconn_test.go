package server_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

var fetchUIDFlagsRE = regexp.MustCompile(`^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$`)

// snapshot returns "seq:uid:flags" lines for the whole mailbox, without
// \Recent (which differs between sessions by design), and asserts the
// sequence numbers run 1..n with ascending UIDs.
func snapshot(t *testing.T, c *imaptest.Conn, tag string) []string {
	t.Helper()
	lines := c.Cmd(tag, "UID FETCH 1:* (UID FLAGS)")
	var out []string
	lastUID := 0
	for _, l := range lines[:len(lines)-1] {
		m := fetchUIDFlagsRE.FindStringSubmatch(l)
		if m == nil {
			continue // an unsolicited update before the answer
		}
		var seq, uid int
		fmt.Sscan(m[1], &seq)
		fmt.Sscan(m[2], &uid)
		if seq != len(out)+1 || uid <= lastUID {
			t.Fatalf("%s: sequence numbers out of order: %q", tag, lines)
		}
		lastUID = uid
		flags := strings.TrimSpace(strings.ReplaceAll(m[3], `\Recent`, ""))
		out = append(out, fmt.Sprintf("%d:%d:%s", seq, uid, strings.Join(strings.Fields(flags), " ")))
	}
	return out
}

// TestThreeConnections: a writer appends, stores and expunges while one
// session is selected and silent, one is idling and one is in the middle
// of a command (waiting to send a literal). Each must end with the same
// view as the writer, and none may see an EXPUNGE during SEARCH.
func TestThreeConnections(t *testing.T) {
	env := imaptest.Start(t, nil)
	w := env.DialLogin(t)
	for i := 0; i < 6; i++ {
		appendMsg(t, w, "p", "INBOX", "", testMsg)
	}
	w.ExpectTagged("w0", "SELECT INBOX", "w0 OK")
	silent := env.DialLogin(t)
	silent.ExpectTagged("s0", "SELECT INBOX", "s0 OK")
	idler := env.DialLogin(t)
	idler.ExpectTagged("i0", "SELECT INBOX", "i0 OK")
	busy := env.DialLogin(t)
	busy.ExpectTagged("b0", "SELECT INBOX", "b0 OK")

	idler.SendLine("i1 IDLE")
	if l := idler.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	// busy starts a SEARCH whose string is a synchronizing literal and
	// stops before sending it.
	busy.SendLine("b1 SEARCH BODY {3}")
	if l := busy.ReadLine(); l != "+ Ready for literal data" {
		t.Fatalf("literal: %q", l)
	}

	appendMsg(t, w, "w1", "INBOX", "", testMsg)
	w.ExpectTagged("w2", `STORE 2,4 +FLAGS (\Flagged)`, "w2 OK")
	w.ExpectTagged("w3", `STORE 1,3 +FLAGS.SILENT (\Deleted)`, "w3 OK")
	w.ExpectTagged("w4", "EXPUNGE", "w4 OK")
	appendMsg(t, w, "w5", "INBOX", `\Seen`, testMsg)

	// The idler hears every change while idling: expunges of 3 and 1
	// (descending), EXISTS, flags.
	var heard []string
	wanted := []string{`FLAGS (\Flagged`, "* 3 EXPUNGE", "* 1 EXPUNGE", "* 6 EXISTS"}
	for len(heard) < 30 {
		heard = append(heard, idler.ReadLine())
		joined := strings.Join(heard, "|")
		all := true
		for _, want := range wanted {
			all = all && strings.Contains(joined, want)
		}
		if all {
			break
		}
	}
	if len(heard) == 30 {
		t.Errorf("idler missed some of %q: %q", wanted, heard)
	}
	idler.SendLine("DONE")
	idler.ReadUntilTagged("i1")

	// busy finishes its SEARCH: the sequence numbers are still those of
	// its old view (6 messages + new ones), no EXPUNGE in between.
	busy.Send("Bob\r\n")
	lines := busy.ReadUntilTagged("b1")
	for _, l := range lines {
		if strings.HasSuffix(l, " EXPUNGE") {
			t.Errorf("EXPUNGE during SEARCH: %q", lines)
		}
	}
	if got := lines[len(lines)-1]; got != "b1 OK SEARCH completed" {
		t.Errorf("SEARCH: %q", lines)
	}
	var search string
	for _, l := range lines {
		if strings.HasPrefix(l, "* SEARCH") {
			search = l
		}
	}
	// Messages 1..6 were appended with "Bob" in the body; 1 and 3 are
	// expunged but not yet reported to busy, so they no longer match; the
	// two new ones are not in busy's view until EXISTS tells it of them.
	if search != "* SEARCH 2 4 5 6" {
		t.Errorf("busy's SEARCH: %q", search)
	}

	want := snapshot(t, w, "w9")
	if len(want) != 6 {
		t.Fatalf("writer sees %d messages: %q", len(want), want)
	}
	for name, c := range map[string]*imaptest.Conn{"silent": silent, "idler": idler, "busy": busy} {
		c.ExpectTagged("n", "NOOP", "n OK")
		if got := snapshot(t, c, "f"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s sees %q, writer %q", name, got, want)
		}
	}
}

// TestViewFarBehindLog: a session silent while more changes happen than
// the shared change log keeps falls back to comparing its whole view; it
// is told only of the messages that changed, and ends in step.
func TestViewFarBehindLog(t *testing.T) {
	env := imaptest.Start(t, nil)
	w := env.DialLogin(t)
	for i := 0; i < 10; i++ {
		appendMsg(t, w, "p", "INBOX", "", testMsg)
	}
	w.ExpectTagged("w0", "SELECT INBOX", "w0 OK")
	a := env.DialLogin(t)
	a.ExpectTagged("a0", "SELECT INBOX", "a0 OK")
	const n = 4200 // more than the log keeps
	var b strings.Builder
	for i := 0; i < n; i++ {
		op := "+"
		if i%2 == 1 {
			op = "-"
		}
		fmt.Fprintf(&b, "s%d STORE 1 %sFLAGS.SILENT (\\Flagged)\r\n", i, op)
	}
	fmt.Fprintf(&b, "s%d STORE 2 +FLAGS.SILENT (\\Seen)\r\n", n)
	w.Send(b.String())
	w.ReadUntilTagged(fmt.Sprintf("s%d", n))
	w.ExpectTagged("w1", `STORE 3 +FLAGS.SILENT (\Deleted)`, "w1 OK")
	w.ExpectTagged("w2", "EXPUNGE", "w2 OK")

	got := a.Cmd("a1", "NOOP")
	// Message 1 ends with the flags it had, but its MODSEQ moved: it is
	// reported; messages 4-10 did not change and are not.
	want := []string{"* 3 EXPUNGE", `* 1 FETCH (UID 1 FLAGS ())`, `* 2 FETCH (UID 2 FLAGS (\Seen))`, "a1 OK NOOP completed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("far behind: got %q, want %q", got, want)
	}
	if gotS, wantS := snapshot(t, a, "f"), snapshot(t, w, "g"); strings.Join(gotS, ",") != strings.Join(wantS, ",") {
		t.Errorf("views differ: %q vs %q", gotS, wantS)
	}
}

//go:build unix

package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestResumeAfterKill: a session made with SID survives a SIGKILL of the
// server (sessions live in the store): after the restart the client
// resumes it with SID and gets SELECTED and only what changed while it was
// away (draft-ietf-lemonade-reconnect-07 §3.3).
func TestResumeAfterKill(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	if code, stdout, stderr := run(t, bin, password+"\n", "user", "add", "--data", dir, "carol"); code != 0 {
		t.Fatalf("user add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	p := startServer(t, bin, dir)
	env := &imaptest.Env{Addr: p.addr, User: "carol", Password: password}

	w := env.DialLogin(t)
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)
		w.ExpectTagged("a", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body), "a OK [APPENDUID")
	}

	c := env.DialLogin(t)
	sel := c.Cmd("s", "SELECT INBOX (CONDSTORE)")
	var uv, modseq string
	for _, l := range sel {
		if m := regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`).FindStringSubmatch(l); m != nil {
			uv = m[1]
		}
		if m := regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(l); m != nil {
			modseq = m[1]
		}
	}
	if uv == "" || modseq == "" {
		t.Fatalf("SELECT (CONDSTORE): %q", sel)
	}
	got := c.Cmd("n", "SID")
	if len(got) != 2 || !strings.HasPrefix(got[0], "* NEWSID ") {
		t.Fatalf("SID: %q", got)
	}
	id := strings.TrimPrefix(got[0], "* NEWSID ")
	c.NC.Close() // the phone loses its connection

	w.ExpectTagged("w1", "SELECT INBOX", "w1 OK")
	w.ExpectTagged("w2", `UID STORE 2 +FLAGS (\Flagged)`, "w2 OK")
	w.ExpectTagged("w3", `UID STORE 3 +FLAGS.SILENT (\Deleted)`, "w3 OK")
	w.ExpectTagged("w4", "EXPUNGE", "w4 OK")

	p.kill(t)
	p2 := startServer(t, bin, dir)
	env.Addr = p2.addr

	c = env.DialLogin(t)
	got = c.Cmd("r", fmt.Sprintf("SID %s %s %s", id, uv, modseq))
	if got[0] != "* SELECTED INBOX" {
		t.Fatalf("resume after restart: %q", got)
	}
	// The session's first SELECT claimed the three messages as \Recent;
	// the two left are still recent in it after the restart (the draft's
	// §3.1 session state includes RECENT).
	for _, want := range []string{"* 2 EXISTS", "* 2 RECENT", "* EXPUNGED 3", `FETCH (UID 2 FLAGS (\Flagged \Recent) MODSEQ (`} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("resume after restart: no %q in %q", want, got)
		}
	}
	if last := got[len(got)-1]; !strings.HasPrefix(last, "r OK [READ-WRITE]") {
		t.Errorf("resume after restart: tagged %q", last)
	}
	for _, l := range got {
		if strings.Contains(l, "UID 1 ") {
			t.Errorf("unchanged message reported: %q", l)
		}
	}
}

package importer

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/dovecottest"
)

// TestImportDovecotMaildir imports the Maildir++ tree a real Dovecot
// wrote: messages appended to it over IMAP with flags, keywords and
// internal dates, in INBOX, a subfolder of a subfolder and a folder with
// a non-ASCII name, come back the same from the store. Dovecot keeps the
// internal date as the file's time, keywords as letters listed in
// dovecot-keywords, folder names in modified UTF-7, and messages with
// LF line endings (restored to CRLF here).
func TestImportDovecotMaildir(t *testing.T) {
	env := dovecottest.Start(t)
	c := env.Login(t)
	c.MustOK(`CREATE "Work.Projects"`)
	c.MustOK(`CREATE "Entw&APw-rfe"`)
	type msg struct {
		box, mailbox string // Dovecot's name, ours
		flags, date  string
		body         string
	}
	msgs := []msg{
		{"INBOX", "INBOX", `\Seen`, "01-Jan-2024 10:00:00 +0000", "Subject: seen\r\n\r\nA\r\n"},
		{"INBOX", "INBOX", `\Flagged \Answered $Label1`, "02-Jan-2024 11:30:00 +0100", "Subject: flagged\r\n\r\nB\r\n"},
		{"INBOX", "INBOX", ``, "03-Jan-2024 12:00:00 -0500", "Subject: unseen\r\n\r\nC\r\n"},
		{"Work.Projects", "Work/Projects", `\Draft Important`, "04-Feb-2023 08:00:00 +0000", "Subject: draft\r\n\r\nD\r\n"},
		{"Entw&APw-rfe", "Entwürfe", `\Deleted \Seen`, "05-Mar-2022 09:15:00 +0000", "Subject: deleted\r\n\r\nE\r\n"},
	}
	for _, m := range msgs {
		c.MustOK("APPEND %s (%s) %q {%d+}\r\n%s", dovecottest.Quote(m.box), m.flags, m.date, len(m.body), m.body)
	}
	c.MustOK("LOGOUT")

	st, u := testStore(t)
	md := filepath.Join(env.Dir, "home", env.User, "Maildir")
	s := importPaths(t, st, u.ID, Options{}, md)
	if s.Added != len(msgs) || s.Refused != 0 {
		t.Fatalf("stats %+v", s)
	}
	got := map[string][]stored{}
	for _, name := range []string{"INBOX", "Work/Projects", "Entwürfe"} {
		got[name] = mailbox(t, st, u.ID, name)
	}
	next := map[string]int{}
	for _, m := range msgs {
		i := next[m.mailbox]
		next[m.mailbox]++
		if i >= len(got[m.mailbox]) {
			t.Errorf("%s: message %q missing", m.mailbox, m.body)
			continue
		}
		g := got[m.mailbox][i]
		if g.body != m.body {
			t.Errorf("%s %d: body %q, want %q", m.mailbox, i, g.body, m.body)
		}
		want, _ := time.Parse("02-Jan-2006 15:04:05 -0700", m.date)
		if !g.date.Equal(want) {
			t.Errorf("%s %d: date %v, want %v", m.mailbox, i, g.date, want)
		}
		wf := strings.Fields(m.flags)
		gf := slices.Clone(g.flags)
		slices.Sort(wf)
		slices.Sort(gf)
		if !slices.Equal(gf, wf) {
			t.Errorf("%s %d: flags %q, want %q", m.mailbox, i, gf, wf)
		}
	}
	if t.Failed() {
		t.Log(fmt.Sprint(env.Doveadm(t, "mailbox", "list", "-u", env.User)))
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/importer"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

func TestImportAndBackupCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mbox := filepath.Join("..", "..", "importer", "testdata", "mboxrd.mbox")

	quickimap(t, "", "help", "import").want(t, exitOK, "--mbox-format", "")
	quickimap(t, "", "help", "backup").want(t, exitOK, "quickimap backup", "")
	quickimap(t, "", "import", "--data", data, mbox).want(t, exitUsage, "", "--user is required")
	quickimap(t, "", "import", "--data", data, "--user", "alice").want(t, exitUsage, "", "no PATH")
	quickimap(t, "", "import", "--data", data, "--user", "alice", "--mbox-format", "mboxcl", mbox).
		want(t, exitUsage, "", "unknown mbox format")
	quickimap(t, "", "import", "--data", data, "--user", "alice", mbox).want(t, exitFail, "", "no data directory")

	quickimap(t, "pw\n", "user", "add", "--data", data, "alice").want(t, exitOK, "Created user alice", "")
	quickimap(t, "", "import", "--data", data, "--user", "nobody", mbox).want(t, exitFail, "", "no user nobody")
	r := quickimap(t, "", "import", "--data", data, "--user", "Alice", mbox)
	r.want(t, exitOK, "3 message(s) read: 3 imported, 0 already present, 0 refused", "")
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, yet: %q", r.stderr)
	}
	quickimap(t, "", "import", "--data", data, "--user", "alice", mbox, "--mailbox", "Archive/2025").
		want(t, exitOK, "3 imported", "")
	quickimap(t, "", "import", "--data", data, "--user", "alice", mbox).
		want(t, exitOK, "0 imported, 3 already present", "")
	quickimap(t, "", "import", "--data", data, "--user", "alice", filepath.Join(dir, "missing")).
		want(t, exitFail, "", "no such file")

	out := filepath.Join(dir, "backup")
	quickimap(t, "", "backup", "--data", data).want(t, exitUsage, "", "one OUT directory expected")
	quickimap(t, "", "backup", "--data", data, out).want(t, exitOK, "backed up", "")
	quickimap(t, "", "backup", "--data", data, out).want(t, exitFail, "", "not empty")
	quickimap(t, "", "check", "--data", out).want(t, exitOK, "ok", "")
	for _, f := range []string{out, filepath.Join(out, sqlite.FileName)} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, open to others", f, fi.Mode())
		}
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, out, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"INBOX", "Archive/2025"} {
		mb, err := st.MailboxByName(ctx, u.ID, name)
		if err != nil {
			t.Fatalf("%s in the backup: %v", name, err)
		}
		if s, err := st.Status(ctx, u.ID, mb.ID); err != nil || s.Messages != 3 {
			t.Errorf("%s in the backup: %d messages, %v", name, s.Messages, err)
		}
	}
}

// TestImportBackupWhileServing runs the binary: a client idles on INBOX
// of a running `quickimap serve` while `quickimap import`, another
// process, adds an mbox to it; the client is told of the new messages.
// Then `quickimap backup` copies the live store and `quickimap check`
// passes on the copy.
func TestImportBackupWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0")
	var password string
	for line := range s.stdout {
		if v, ok := strings.CutPrefix(line, "Password: "); ok {
			password = v
			break
		}
	}
	addr := s.waitListening()["addr"]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readLine(t, c, r)
	cmd := func(tag, line string) []string {
		t.Helper()
		io.WriteString(c, tag+" "+line+"\r\n")
		var lines []string
		for {
			l := readLine(t, c, r)
			lines = append(lines, l)
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("%s: %q", line, lines)
				}
				return lines
			}
		}
	}
	cmd("a", "LOGIN user "+password)
	cmd("b", "SELECT INBOX")
	io.WriteString(c, "i IDLE\r\n")
	if l := readLine(t, c, r); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("quickimap %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	mbox := filepath.Join("..", "..", "importer", "testdata", "mboxrd.mbox")
	if out := run("import", "--data", data, "--user", "user", mbox); !strings.Contains(out, "3 imported") {
		t.Fatalf("import: %s", out)
	}
	// The server polls every 2 s; readLine waits 5 s per line.
	for {
		l := readLine(t, c, r)
		if l == "* 3 EXISTS" {
			break
		}
		if !strings.HasPrefix(l, "* ") {
			t.Fatalf("while idling: %q", l)
		}
	}
	io.WriteString(c, "DONE\r\n")
	for !strings.HasPrefix(readLine(t, c, r), "i OK") {
	}
	lines := cmd("f", "FETCH 3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if !strings.Contains(strings.Join(lines, "\n"), "Subject: no date on the From_ line") {
		t.Errorf("FETCH 3: %q", lines)
	}

	out := filepath.Join(dir, "backup")
	run("backup", "--data", data, out)
	if got := run("check", "--data", out); got != "ok\n" {
		t.Errorf("check of the backup: %q", got)
	}
	cmd("z", "LOGOUT")
	s.stop()
}

// TestSyncThenImport mirrors a mailbox with `quickimap sync` into a
// Maildir and imports that Maildir into another account: the messages,
// their flags (those Maildir has letters for) and internal dates
// survive the trip (sync sets each file's time to the INTERNALDATE).
func TestSyncThenImport(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	msgs := []struct{ flags, date, body string }{
		{`\Seen`, "01-Jan-2024 10:00:00 +0100", "Subject: one\r\n\r\nfirst\r\n"},
		{`\Flagged \Answered`, "15-Jun-2022 23:59:59 -0700", "Subject: two\r\n\r\nsecond\r\n"},
		{``, "29-Feb-2020 00:00:01 +0000", "Subject: three\r\n\r\nthird, unread\r\n"},
	}
	for i, m := range msgs {
		c.SendLine(fmt.Sprintf(`a%d APPEND INBOX (%s) "%s" {%d}`, i, m.flags, m.date, len(m.body)))
		if l := c.ReadLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("APPEND: %q", l)
		}
		c.Send(m.body + "\r\n")
		if l := c.ReadUntilTagged(fmt.Sprintf("a%d", i)); !strings.Contains(l[len(l)-1], "OK") {
			t.Fatalf("APPEND: %q", l)
		}
	}
	md := filepath.Join(t.TempDir(), "Maildir")
	quickimap(t, env.Password+"\n", "sync", "--addr", env.Addr, "--user", env.User, "--maildir", md).want(t, exitOK, "", "")

	ctx := context.Background()
	if _, err := env.Store.CreateUser(ctx, "bob", "x", store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	quickimap(t, "", "import", "--data", env.Dir, "--user", "bob", md).want(t, exitOK, "3 imported", "")

	read := func(name string) []store.MessageInfo {
		u, err := env.Store.UserByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		infos, err := env.Store.MessageInfos(ctx, u.ID, mb.ID, []uint32{1, 2, 3})
		if err != nil || len(infos) != 3 {
			t.Fatalf("%s: %d messages, %v", name, len(infos), err)
		}
		for i := range infos {
			b, err := env.Store.MessageBody(ctx, u.ID, mb.ID, infos[i].UID)
			if err != nil {
				t.Fatal(err)
			}
			infos[i].Structure = b // the body, for the comparison
		}
		return infos
	}
	// Sync writes in UID order at one mtime per message; import orders
	// by mtime, which is the INTERNALDATE: order by date to compare.
	byDate := func(in []store.MessageInfo) []store.MessageInfo {
		slices.SortFunc(in, func(a, b store.MessageInfo) int { return a.InternalDate.Compare(b.InternalDate) })
		return in
	}
	a, b := byDate(read(env.User)), byDate(read("bob"))
	for i := range a {
		if string(a[i].Structure) != string(b[i].Structure) || !a[i].InternalDate.Equal(b[i].InternalDate) ||
			!slices.Equal(a[i].Flags, b[i].Flags) {
			t.Errorf("message %d: %q %v %q, imported as %q %v %q", i,
				a[i].Structure, a[i].InternalDate, a[i].Flags, b[i].Structure, b[i].InternalDate, b[i].Flags)
		}
	}
}

func TestProgressLine(t *testing.T) {
	if newProgressLine(&strings.Builder{}) != nil {
		t.Error("a progress line on a writer that is not a terminal")
	}
	var b strings.Builder
	p := &progressLine{w: &b}
	p.show(importer.Stats{Read: 5, Added: 3, Skipped: 1, Refused: 1, Bytes: 2_500_000})
	p.show(importer.Stats{Read: 6}) // within 100 ms: not drawn
	p.clear()
	want := "\r\x1b[Kimporting: 5 read, 3 imported, 1 present, 1 refused, 2.5 MB"
	if got := b.String(); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " msg/s\r\x1b[K") || strings.Count(got, "importing") != 1 {
		t.Errorf("progress output %q", got)
	}
}

// A directory without a store is no store to check (an interrupted
// backup): check fails instead of creating an empty store.
func TestCheckWithoutStore(t *testing.T) {
	dir := t.TempDir()
	quickimap(t, "", "check", "--data", dir).want(t, exitFail, "", "no store in")
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); !os.IsNotExist(err) {
		t.Errorf("check created a store: %v", err)
	}
}

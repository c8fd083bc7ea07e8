package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/internal/dovecottest"
	"github.com/quickimap/quickimap/internal/imaptest"
)

// syncServer is what a sync test needs of a server.
type syncServer struct {
	addr, user, password string
}

func (s syncServer) dial(t *testing.T) *imapclient.Client {
	t.Helper()
	sf := &serverFlags{addr: s.addr, user: s.user}
	c, err := sf.dialHelper(s.password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testMessage(n int) string {
	return fmt.Sprintf("From: a@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@sync.test>\r\n\r\nbody of message %d\r\n", n, n, n)
}

func appendMessages(t *testing.T, c *imapclient.Client, mailbox string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := testMessage(i)
		cmd := c.Append(mailbox, int64(len(m)), nil)
		cmd.Write([]byte(m))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("APPEND: %v", err)
		}
	}
}

// checkMaildir checks that dir holds exactly one file per message of the
// mailbox, in cur, named with its UID, UIDVALIDITY and flags, holding the
// message, and nothing else in cur, new and tmp.
func checkMaildir(t *testing.T, srv syncServer, mailbox, dir string) {
	t.Helper()
	c := srv.dial(t)
	defer func() { c.Logout().Wait() }()
	data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE: %v", err)
	}
	want := map[string]string{} // "uid_uv:2,flags" -> body
	if data.NumMessages > 0 {
		msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("UID FETCH: %v", err)
		}
		for _, m := range msgs {
			var fl []string
			for _, f := range m.Flags {
				fl = append(fl, string(f))
			}
			key := fmt.Sprintf("%d_%d:2,%s", m.UID, data.UIDValidity, flagLetters(fl))
			want[key] = string(m.BodySection[0].Bytes)
		}
	}
	got := map[string]string{}
	for _, sub := range []string{"new", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) > 0 {
			t.Errorf("%s is not empty: %v", sub, ents)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), ".", 3)
		if len(parts) != 3 {
			t.Errorf("file name %q", e.Name())
			continue
		}
		_, info, _ := strings.Cut(parts[2], ":")
		key := parts[1] + ":" + info
		b, err := os.ReadFile(filepath.Join(dir, "cur", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[key]; dup {
			t.Errorf("two files for %s", key)
		}
		got[key] = string(b)
	}
	if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
		t.Fatalf("maildir has\n  %v\nserver has\n  %v", sortedKeys(got), sortedKeys(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: file %q, server %q", k, got[k], w)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func syncArgs(srv syncServer, pwFile, mailbox, dir string) []string {
	return []string{"sync", "--addr", srv.addr, "--user", srv.user, "--password-file", pwFile,
		"--mailbox", mailbox, "--maildir", dir}
}

// testSync mirrors mailbox, changes it, mirrors again, and checks the
// Maildir each time; a run without changes downloads nothing.
func testSync(t *testing.T, srv syncServer, mailbox string) {
	pw := passwordFile(t, srv.password)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := srv.dial(t)
	appendMessages(t, c, mailbox, 1, 6)

	args := syncArgs(srv, pw, mailbox, dir)
	quickimap(t, "", args...).want(t, exitOK, "downloaded 6, renamed 0, deleted 0", "")
	checkMaildir(t, srv, mailbox, dir)
	if _, err := os.Stat(filepath.Join(dir, ".quickimap-sync-state")); err != nil {
		t.Errorf("no state file: %v", err)
	}

	// Changes from another connection: flags on two messages, one
	// expunge, two new messages.
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(uid imap.UID, op imap.StoreFlagsOp, flags ...imap.Flag) {
		t.Helper()
		if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	store(1, imap.StoreFlagsAdd, imap.FlagSeen, imap.FlagFlagged)
	store(2, imap.StoreFlagsAdd, imap.FlagAnswered, imap.FlagDraft)
	store(3, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	appendMessages(t, c, mailbox, 7, 2)

	quickimap(t, "", args...).want(t, exitOK, "downloaded 2, renamed 2, deleted 1", "")
	checkMaildir(t, srv, mailbox, dir)
	quickimap(t, "", args...).want(t, exitOK, "downloaded 0, renamed 0, deleted 0", "")
	checkMaildir(t, srv, mailbox, dir)

	// A file lost or renamed locally is put back.
	ents, _ := os.ReadDir(filepath.Join(dir, "cur"))
	os.Remove(filepath.Join(dir, "cur", ents[0].Name()))
	base, _, _ := strings.Cut(ents[1].Name(), ":")
	os.Rename(filepath.Join(dir, "cur", ents[1].Name()), filepath.Join(dir, "new", base))
	quickimap(t, "", args...).want(t, exitOK, "downloaded 1, renamed 1, deleted 0", "")
	checkMaildir(t, srv, mailbox, dir)

	// A new UIDVALIDITY: the mailbox recreated.
	if mailbox != "INBOX" {
		c.Unselect().Wait()
		if err := c.Delete(mailbox).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		appendMessages(t, c, mailbox, 20, 3)
		quickimap(t, "", args...).want(t, exitOK, "downloaded 3, renamed 0, deleted 7", "")
		checkMaildir(t, srv, mailbox, dir)
	}
}

func TestSync(t *testing.T) {
	env := imaptest.Start(t, nil)
	srv := syncServer{env.Addr, env.User, env.Password}
	t.Run("INBOX", func(t *testing.T) { testSync(t, srv, "INBOX") })
	t.Run("Archive", func(t *testing.T) { testSync(t, srv, "Archive") })
}

func TestSyncDovecot(t *testing.T) {
	env := dovecottest.Start(t)
	srv := syncServer{env.Addr, env.User, env.Password}
	c := srv.dial(t)
	if err := c.Create("Mirror", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	testSync(t, srv, "Mirror")
}

func TestSyncWatch(t *testing.T) {
	env := imaptest.Start(t, nil)
	srv := syncServer{env.Addr, env.User, env.Password}
	pw := passwordFile(t, env.Password)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := srv.dial(t)
	appendMessages(t, c, "INBOX", 1, 2)

	ctx, cancel := context.WithCancel(context.Background())
	var out, errb imaptest.SyncBuffer
	done := make(chan int)
	go func() {
		done <- runContext(ctx, append(syncArgs(srv, pw, "INBOX", dir), "--watch"), strings.NewReader(""), &out, &errb)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("timed out waiting for %s\nstdout:\n%s\nstderr:\n%s", what, out.String(), errb.String())
			}
		}
	}
	files := func() []string {
		ents, _ := os.ReadDir(filepath.Join(dir, "cur"))
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	waitFor("the first sync", func() bool { return len(files()) == 2 })

	appendMessages(t, c, "INBOX", 3, 1)
	waitFor("the new message", func() bool { return len(files()) == 3 })
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	waitFor("the flag change", func() bool {
		for _, f := range files() {
			if strings.HasPrefix(strings.SplitN(f, ".", 3)[1], "1_") {
				return strings.HasSuffix(f, ":2,S")
			}
		}
		return false
	})
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	waitFor("the expunge", func() bool { return len(files()) == 2 })
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sync --watch did not stop")
	}
	checkMaildir(t, srv, "INBOX", dir)
}

func TestSyncUsage(t *testing.T) {
	quickimap(t, "", "sync", "-h").want(t, exitOK, "--maildir DIR", "")
	quickimap(t, "", "help", "sync").want(t, exitOK, "--watch", "")
	quickimap(t, "", "sync", "--addr", "127.0.0.1:1", "--user", "u").want(t, exitUsage, "", "--maildir is required")
	quickimap(t, "", "sync", "--user", "u", "--maildir", "x").want(t, exitUsage, "", "--addr is required")
	quickimap(t, "", "sync", "--addr", "127.0.0.1:1", "--maildir", "x").want(t, exitUsage, "", "--user is required")
}

func TestParseMaildirName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		uid, uv uint32
		flags   string
		ok      bool
	}{
		{"1700000000.12_345.host:2,FS", 12, 345, "FS", true},
		{"1700000000.12_345.host.example.org:2,", 12, 345, "", true},
		{"1700000000.12_345.host", 12, 345, "", true},
		{"1700000000.M1P2.host:2,S", 0, 0, "", false},
		{"1700000000.0_345.host:2,S", 0, 0, "", false},
		{"x.12_345.host:2,S", 0, 0, "", false},
		{"1700000000.12_345.host:1,S", 0, 0, "", false},
		{".quickimap-sync-state", 0, 0, "", false},
	} {
		uid, uv, flags, ok := parseMaildirName(tc.name)
		if uid != tc.uid || uv != tc.uv || flags != tc.flags || ok != tc.ok {
			t.Errorf("parseMaildirName(%q) = %d, %d, %q, %v", tc.name, uid, uv, flags, ok)
		}
	}
	if got := flagLetters([]string{`\Seen`, `\Recent`, "$Junk", `\flagged`, `\Deleted`, `\Answered`, `\Draft`}); got != "DFRST" {
		t.Errorf("flagLetters = %q", got)
	}
}

package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestFetchmail retrieves mail from INBOX with fetchmail over IMAP into
// one file per message (through an MDA): first with "keep", which must
// deliver every unseen message byte for byte (after the Received: header
// fetchmail adds) and leave them on the server with \Seen; then again
// with "keep", which must find no new mail; then without "keep" and with
// "fetchall", which must deliver everything and leave INBOX empty
// (fetchmail sets \Deleted and expunges).
func TestFetchmail(t *testing.T) {
	bin := lookTool(t, "fetchmail", "fetchmail")
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		t.Logf("%s", bytes.SplitN(bytes.TrimSpace(out), []byte("\n"), 2)[0])
	}
	env := imaptest.Start(t, nil)
	c := mbsyncLogin(t, env)

	// 30 messages of various sizes, some multipart, two with 8-bit text
	// and long folded headers; every fifth already \Seen (fetchmail
	// fetches only unseen messages unless told "fetchall").
	const total = 30
	bodies := map[string][]byte{} // Message-ID -> message (CRLF)
	var ids []string
	seen := map[string]bool{}
	for i := range total {
		body := mbsyncMessage(i)
		if i%10 == 7 {
			body = fetchmailMessage(i)
		}
		id := fmt.Sprintf("<mbsync-%d@example.org>", i)
		if !bytes.Contains(body, []byte("Message-ID: "+id+"\r\n")) {
			t.Fatalf("message %d has no Message-ID %s", i, id)
		}
		var flags []imap.Flag
		if i%5 == 3 {
			flags = []imap.Flag{imap.FlagSeen}
			seen[id] = true
		}
		if i%4 == 1 {
			flags = append(flags, imap.FlagFlagged)
		}
		oiAppend(t, c, "INBOX", body, flags)
		bodies[id] = body
		ids = append(ids, id)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "delivered")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	// The MDA writes each message it is given to a file of its own.
	mda := filepath.Join(dir, "mda.sh")
	if err := os.WriteFile(mda, []byte("#!/bin/sh\nexec cat > \"$(mktemp '"+out+"/msg.XXXXXXXX')\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(env.Addr)
	rc := func(name, options string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		// sslproto '': no STARTTLS on loopback.
		conf := fmt.Sprintf(`set no bouncemail
set no syslog
poll %s port %s protocol IMAP auth password
  user "%s" password "%s"
  sslproto ''
  no sslcertck
  mda "%s"
  %s
`, host, port, env.User, env.Password, mda, options)
		// fetchmail refuses a run control file others can read.
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := 0
	// runFetchmail runs fetchmail once and returns the messages it
	// delivered, by Message-ID, and its exit status (0: mail retrieved,
	// 1: no mail).
	runFetchmail := func(rc string) (map[string][]byte, int) {
		t.Helper()
		run++
		before := listDir(t, out)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := []string{"-f", rc, "--nodetach", "-v", "--pidfile", filepath.Join(dir, "fetchmail.pid"), "--idfile", filepath.Join(dir, "fetchids")}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "FETCHMAILHOME=" + dir, "LC_ALL=C"}
		cmd.WaitDelay = 5 * time.Second
		log, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("run %d: fetchmail did not finish within 60 s; output:\n%s", run, log)
		}
		code := 0
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("run %d: fetchmail %s: %v", run, strings.Join(args, " "), err)
			}
			code = ee.ExitCode()
		}
		t.Logf("run %d: fetchmail -f %s (exit status %d):\n%s", run, filepath.Base(rc), code, log)
		if code > 1 {
			t.Fatalf("run %d: fetchmail failed with exit status %d", run, code)
		}
		got := map[string][]byte{}
		for _, name := range listDir(t, out) {
			if slices.Contains(before, name) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			m := fetchmailMessageID.FindSubmatch(b)
			if m == nil {
				t.Errorf("run %d: delivered file %s has no Message-ID:\n%.300q", run, name, b)
				continue
			}
			if _, dup := got[string(m[1])]; dup {
				t.Errorf("run %d: %s delivered twice", run, m[1])
			}
			got[string(m[1])] = b
		}
		return got, code
	}
	// checkDelivered compares what fetchmail delivered with the messages
	// appended: the same bytes with LF line ends, after the Received:
	// header fetchmail puts on top.
	checkDelivered := func(got map[string][]byte, want []string) {
		t.Helper()
		for _, id := range want {
			b, ok := got[id]
			if !ok {
				t.Errorf("run %d: %s was not delivered", run, id)
				continue
			}
			rest, ok := stripFetchmailReceived(b)
			if !ok {
				t.Errorf("run %d: %s: no Received: header from fetchmail on top:\n%.300q", run, id, b)
			}
			wantLF := bytes.ReplaceAll(bodies[id], []byte("\r\n"), []byte("\n"))
			if !bytes.Equal(rest, wantLF) {
				t.Errorf("run %d: %s: delivered message differs from the one appended (%d bytes, want %d); first difference: %s",
					run, id, len(rest), len(wantLF), firstDiff(rest, wantLF))
			}
		}
		for id := range got {
			if !slices.Contains(want, id) {
				t.Errorf("run %d: %s was delivered but should not have been", run, id)
			}
		}
	}
	serverFlags := func() map[string]string { // Message-ID -> Maildir letters
		t.Helper()
		msgs := oiServerFolder(t, c, "INBOX")
		flags := map[string]string{}
		for uid, m := range msgs {
			id := fetchmailMessageID.FindSubmatch(m.body)
			if id == nil {
				t.Fatalf("INBOX UID %d has no Message-ID", uid)
			}
			flags[string(id[1])] = m.flags
		}
		return flags
	}

	// Run 1, keep: the unseen messages are delivered, all stay on the
	// server, now \Seen, with their other flags.
	got, code := runFetchmail(rc("keep.rc", "keep"))
	var unseen []string
	for _, id := range ids {
		if !seen[id] {
			unseen = append(unseen, id)
		}
	}
	if code != 0 {
		t.Errorf("run 1: exit status %d, want 0 (mail retrieved)", code)
	}
	if len(got) != len(unseen) {
		t.Errorf("run 1: fetchmail delivered %d messages, want the %d unseen ones", len(got), len(unseen))
	}
	checkDelivered(got, unseen)
	flags := serverFlags()
	if len(flags) != total {
		t.Errorf("after run 1 (keep) the server has %d messages, want %d", len(flags), total)
	}
	for i, id := range ids {
		want := "S"
		if i%4 == 1 {
			want = "FS"
		}
		if f, ok := flags[id]; !ok {
			t.Errorf("after run 1 (keep) %s is gone from the server", id)
		} else if f != want {
			t.Errorf("after run 1 (keep) %s has flags %q on the server, want %q", id, f, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Run 2, keep: everything is \Seen, nothing new to fetch.
	got, code = runFetchmail(rc("keep.rc", "keep"))
	if code != 1 {
		t.Errorf("run 2: exit status %d, want 1 (no mail)", code)
	}
	if len(got) != 0 {
		t.Errorf("run 2 delivered %d messages, want none: %q", len(got), slices.Sorted(maps.Keys(got)))
	}

	// Three more messages, then run 3 without keep: everything, old
	// and new, is delivered and expunged.
	for i := total; i < total+3; i++ {
		body := mbsyncMessage(i)
		id := fmt.Sprintf("<mbsync-%d@example.org>", i)
		oiAppend(t, c, "INBOX", body, nil)
		bodies[id] = body
		ids = append(ids, id)
	}
	got, code = runFetchmail(rc("flush.rc", "no keep\n  fetchall"))
	if code != 0 {
		t.Errorf("run 3: exit status %d, want 0 (mail retrieved)", code)
	}
	checkDelivered(got, ids)
	if flags := serverFlags(); len(flags) != 0 {
		t.Errorf("after run 3 (no keep) INBOX still has %d messages: %v", len(flags), flags)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS INBOX: %v", err)
	}
	if st.NumMessages == nil || *st.NumMessages != 0 {
		t.Errorf("STATUS INBOX (MESSAGES) after run 3: %v, want 0", st.NumMessages)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// fetchmailMessage is a message with 8-bit UTF-8 text and a long folded
// header, which fetchmail parses (it reads the header to deliver).
func fetchmailMessage(i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen%d@example.org>\r\nTo: alice@example.com,\r\n"+
		"  bob@example.com, carol@example.com, dave@example.com, erin@example.com,\r\n  frank@example.com\r\n"+
		"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_Nummer?= %d\r\nDate: Mon, 1 Jan 2024 12:%02d:00 +0100\r\n"+
		"Message-ID: <mbsync-%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\nX-Long: %s\r\n\r\n", i, i, i%60, i, strings.Repeat("x", 900))
	for j := range 50 {
		fmt.Fprintf(&b, "Zeile %d: Grüße, schöne Äpfel — %d.\r\n", j, i)
	}
	b.WriteString(".\r\nFrom the end.\r\n")
	return b.Bytes()
}

var fetchmailMessageID = regexp.MustCompile(`(?m)^Message-ID: (<[^>\r\n]+>)\r?$`)

// fetchmailReceived is the header fetchmail prepends:
//
//	Received: from 127.0.0.1 [127.0.0.1]
//		by host with IMAP (fetchmail-6.4.37)
//		for <user@localhost> (single-drop); Fri, 27 Nov 2026 07:05:17 +0000 (UTC)
var fetchmailReceived = regexp.MustCompile(`\AReceived: from [^\n]*\n(?:[ \t][^\n]*\n)*`)

// stripFetchmailReceived removes fetchmail's Received: header from the
// top of a delivered message.
func stripFetchmailReceived(b []byte) ([]byte, bool) {
	loc := fetchmailReceived.FindIndex(b)
	if loc == nil || !bytes.Contains(b[:loc[1]], []byte("(fetchmail-")) {
		return b, false
	}
	return b[loc[1]:], true
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

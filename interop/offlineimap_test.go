package interop

import (
	"bytes"
	"context"
	"fmt"
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
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestOfflineimap synchronises several mailboxes — INBOX, a nested
// Work/Sub and "Entwürfe", whose name travels in modified UTF-7 — to a
// Maildir with offlineimap, and checks every message's bytes and flag
// letters there. It then changes the Maildir (flags, a deletion, new
// messages in a subfolder, a new folder) and checks that a second run
// brings those changes to the server, and that a third run finds
// nothing left to do.
func TestOfflineimap(t *testing.T) {
	bin := lookTool(t, "offlineimap", "offlineimap3")
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		t.Logf("offlineimap %s", bytes.TrimSpace(out))
	}
	env := imaptest.Start(t, nil)
	c := mbsyncLogin(t, env)

	// The server's side: name (UTF-8, as go-imap takes it) -> messages.
	// \Deleted stays out of INBOX, where the Maildir deletion happens:
	// offlineimap expunges a mailbox it deleted from, which would take
	// those messages too.
	folders := []struct {
		name  string
		count int
	}{{"INBOX", 40}, {"Work", 12}, {"Work/Sub", 8}, {"Entwürfe", 10}}
	for _, f := range folders[1:] {
		if err := c.Create(f.name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", f.name, err)
		}
	}
	want := map[string]map[imap.UID]oiMsg{} // folder -> UID -> what the Maildir must hold
	n := 0
	for _, f := range folders {
		want[f.name] = map[imap.UID]oiMsg{}
		for range f.count {
			body := mbsyncMessage(n)
			if f.name != "INBOX" {
				body = oiMessage(n, f.name)
			}
			flags, l := mbsyncFlags(n)
			if f.name == "INBOX" {
				flags = slices.DeleteFunc(flags, func(f imap.Flag) bool { return f == imap.FlagDeleted })
				l = strings.ReplaceAll(l, "T", "")
			}
			uid := oiAppend(t, c, f.name, body, flags)
			want[f.name][uid] = oiMsg{flags: l, body: body}
			n++
		}
	}

	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail")
	host, port, _ := net.SplitHostPort(env.Addr)
	// utf8foldernames: the Maildir folder is "Entwürfe", the IMAP name
	// "Entw&APw-rfe". sep = /: Work/Sub is a directory inside Work.
	conf := fmt.Sprintf(`[general]
accounts = test
metadata = %s
ui = basic

[Account test]
localrepository = local
remoterepository = remote
utf8foldernames = yes

[Repository local]
type = Maildir
localfolders = %s
sep = /

[Repository remote]
type = IMAP
remotehost = %s
remoteport = %s
remoteuser = %s
remotepass = %s
ssl = no
starttls = no
`, filepath.Join(dir, "meta"), maildir, host, port, env.User, env.Password)
	rc := filepath.Join(dir, "offlineimaprc")
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := 0
	runOfflineimap := func() string {
		t.Helper()
		run++
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-c", rc, "-o", "-u", "basic")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C.UTF-8"}
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("run %d: offlineimap did not finish within 60 s; output:\n%s", run, out)
		}
		if err != nil {
			t.Fatalf("run %d: offlineimap -c %s -o -u basic: %v; output:\n%s", run, filepath.Base(rc), err, out)
		}
		t.Logf("run %d: offlineimap -o -u basic:\n%s", run, out)
		if bad := oiComplaint.FindAll(out, -1); bad != nil {
			t.Errorf("run %d: offlineimap's output complains (%q)", run, bad)
		}
		return string(out)
	}

	// First run: every mailbox and message reaches the Maildir.
	runOfflineimap()
	for _, f := range folders {
		oiCheckMaildir(t, "after the first run", filepath.Join(maildir, f.name), want[f.name])
	}
	for _, box := range []string{"Archive", "Drafts", "Junk", "Sent", "Trash"} {
		if _, err := os.Stat(filepath.Join(maildir, box, "cur")); err != nil {
			t.Errorf("mailbox %s was not created in the Maildir: %v", box, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Local changes: flags toggled in INBOX and in Entwürfe (a STORE in
	// a mailbox named in modified UTF-7), one INBOX message deleted, two
	// new messages in Work/Sub (one with flags), and a new folder whose
	// name offlineimap must encode to create it on the server.
	local := readMaildir(t, filepath.Join(maildir, "INBOX"))
	var uids []imap.UID
	for uid := range local {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	deleted := uids[7]
	if err := os.Remove(local[deleted].path); err != nil {
		t.Fatal(err)
	}
	delete(want["INBOX"], deleted)
	for _, uid := range uids[10:20] {
		m := want["INBOX"][uid]
		m.flags = toggleLetter(toggleLetter(m.flags, 'F'), 'S')
		want["INBOX"][uid] = m
		renameWithFlags(t, local[uid], m.flags)
	}
	drafts := readMaildir(t, filepath.Join(maildir, "Entwürfe"))
	for uid, m := range drafts {
		if uid%2 == 1 && !strings.Contains(m.flags, "T") {
			w := want["Entwürfe"][uid]
			w.flags = toggleLetter(w.flags, 'R')
			want["Entwürfe"][uid] = w
			renameWithFlags(t, m, w.flags)
		}
	}
	sub := filepath.Join(maildir, "Work", "Sub")
	newMsgs := map[string]oiMsg{ // Message-ID -> body (LF) and flags
		"<oi-local-1@example.com>": {body: []byte("From: Local <local@example.com>\nTo: alice@example.com\nSubject: written in the Maildir\n" +
			"Message-ID: <oi-local-1@example.com>\nDate: Tue, 2 Jan 2024 10:00:00 +0000\n\nA message offlineimap must upload.\n")},
		"<oi-local-2@example.com>": {flags: "FS", body: []byte("From: Local <local@example.com>\nTo: alice@example.com\nSubject: flagged in the Maildir\n" +
			"Message-ID: <oi-local-2@example.com>\nDate: Tue, 2 Jan 2024 11:00:00 +0000\nMIME-Version: 1.0\n" +
			"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus dem Maildir.\n")},
		"<oi-local-3@example.com>": {body: []byte("From: Local <local@example.com>\nTo: alice@example.com\nSubject: in a new folder\n" +
			"Message-ID: <oi-local-3@example.com>\nDate: Tue, 2 Jan 2024 12:00:00 +0000\n\nThis folder is new.\n")},
	}
	writeMaildir := func(folder, name string, m oiMsg) {
		t.Helper()
		path := filepath.Join(folder, "new", name)
		if m.flags != "" {
			path = filepath.Join(folder, "cur", name+":2,"+m.flags)
		}
		if err := os.WriteFile(path, m.body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Unix()
	writeMaildir(sub, fmt.Sprintf("%d.oi1.quickimaptest", now), newMsgs["<oi-local-1@example.com>"])
	writeMaildir(sub, fmt.Sprintf("%d.oi2.quickimaptest", now), newMsgs["<oi-local-2@example.com>"])
	const newFolder = "Gelöscht"
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, newFolder, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeMaildir(filepath.Join(maildir, newFolder), fmt.Sprintf("%d.oi3.quickimaptest", now), newMsgs["<oi-local-3@example.com>"])

	// Second run: the changes reach the server.
	runOfflineimap()
	all := []string{newFolder}
	for _, f := range folders {
		all = append(all, f.name)
	}
	server := map[string]map[imap.UID]oiMsg{}
	for _, name := range all {
		server[name] = oiServerFolder(t, c, name)
	}
	for _, box := range []string{"INBOX", "Work", "Entwürfe"} {
		oiCompare(t, box, server[box], want[box])
	}
	if m, ok := server["INBOX"][deleted]; ok {
		t.Errorf("INBOX UID %d was deleted from the Maildir but is still on the server (flags %q)", deleted, m.flags)
	}
	want[newFolder] = map[imap.UID]oiMsg{}
	// The uploads: found by Message-ID, with their bytes (CRLF) and flags.
	for id, folder := range map[string]string{
		"<oi-local-1@example.com>": "Work/Sub",
		"<oi-local-2@example.com>": "Work/Sub",
		"<oi-local-3@example.com>": newFolder,
	} {
		m := newMsgs[id]
		wantBody := bytes.ReplaceAll(m.body, []byte("\n"), []byte("\r\n"))
		var found []imap.UID
		for uid, s := range server[folder] {
			if bytes.Contains(s.body, []byte("\r\nMessage-ID: "+id+"\r\n")) {
				found = append(found, uid)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d messages with Message-ID %s on the server, want 1", folder, len(found), id)
			continue
		}
		s := server[folder][found[0]]
		if got := stripOfflineIMAP(s.body); !bytes.Equal(got, wantBody) {
			t.Errorf("%s UID %d (%s) on the server:\n%q\nwant\n%q", folder, found[0], id, got, wantBody)
		}
		if s.flags != m.flags {
			t.Errorf("%s UID %d (%s): flags %q on the server, want %q", folder, found[0], id, s.flags, m.flags)
		}
		if folder == "Work/Sub" && found[0] <= imap.UID(folders[2].count) {
			t.Errorf("%s: the upload %s has UID %d, not a new one", folder, id, found[0])
		}
		want[folder][found[0]] = oiMsg{flags: m.flags, body: s.body}
	}
	if got, w := len(server["Work/Sub"]), folders[2].count+2; got != w {
		t.Errorf("Work/Sub has %d messages on the server, want %d", got, w)
	}
	if got := len(server[newFolder]); got != 1 {
		t.Errorf("%s has %d messages on the server, want 1", newFolder, got)
	}
	oiCompare(t, "Work/Sub", server["Work/Sub"], want["Work/Sub"])
	// The new folder's name went out in modified UTF-7 (RFC 3501 §5.1.3).
	raw := env.DialLogin(t)
	if lines := raw.Cmd("l1", `LIST "" "Gel*"`); !slices.Contains(lines, `* LIST (\HasNoChildren) "/" "Gel&APY-scht"`) &&
		!slices.Contains(lines, `* LIST (\HasNoChildren) "/" Gel&APY-scht`) {
		t.Errorf(`LIST "" "Gel*" after offlineimap created %s: %q, want Gel&APY-scht`, newFolder, lines)
	}
	raw.Cmd("l2", "LOGOUT")
	// And the Maildir agrees with the server, folder by folder.
	for _, f := range all {
		oiCheckMaildir(t, "after the second run", filepath.Join(maildir, f), server[f])
	}
	if t.Failed() {
		t.FailNow()
	}

	// Third run: nothing to do, nothing changes on either side.
	out := runOfflineimap()
	if did := oiAction.FindAllString(out, -1); did != nil {
		t.Errorf("the third run still changed something: %q", did)
	}
	for f, msgs := range server {
		oiCompare(t, f+" (after the third run)", oiServerFolder(t, c, f), msgs)
		oiCheckMaildir(t, "after the third run", filepath.Join(maildir, f), msgs)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// oiMsg is a message as the test expects it: Maildir flag letters
// (sorted) and its bytes with CRLF line ends.
type oiMsg struct {
	flags string
	body  []byte
}

// oiComplaint matches what offlineimap prints when something went wrong
// (it may still exit 0).
var oiComplaint = regexp.MustCompile(`(?m)^.*(?:ERROR|WARNING|Traceback).*$`)

// oiAction matches offlineimap's lines for changes it makes.
var oiAction = regexp.MustCompile(`(?m)^.*(?:Copy message|Deleting|Adding flag|Creating folder|Creating new Local Status|Adding labels|Deleting labels).*$`)

// oiMessage is message n of a mailbox other than INBOX: small, plain.
func oiMessage(n int, folder string) []byte {
	return fmt.Appendf(nil, "From: Sender %d <sender%d@example.org>\r\nTo: alice@example.com\r\nSubject: %s message %d\r\n"+
		"Date: Wed, 3 Jan 2024 %02d:%02d:00 +0100\r\nMessage-ID: <oi-%d@example.org>\r\n\r\n%s",
		n, n, folder, n, n/60%24, n%60, n, strings.Repeat(fmt.Sprintf("Line of message %d in %s.\r\n", n, folder), n%9+1))
}

// oiAppend appends one message and returns its UID.
func oiAppend(t *testing.T, c *imapclient.Client, mailbox string, body []byte, flags []imap.Flag) imap.UID {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(body); err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	if data.UID == 0 {
		t.Fatalf("APPEND to %s: no APPENDUID", mailbox)
	}
	return data.UID
}

// oiServerFolder fetches every message of a mailbox: UID, flags as
// Maildir letters, bytes.
func oiServerFolder(t *testing.T, c *imapclient.Client, mailbox string) map[imap.UID]oiMsg {
	t.Helper()
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE %s: %v", mailbox, err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}},
		&imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("%s: UID FETCH 1:* (FLAGS BODY.PEEK[]): %v", mailbox, err)
	}
	out := map[imap.UID]oiMsg{}
	for _, m := range msgs {
		out[m.UID] = oiMsg{flags: letters(m.Flags), body: m.FindBodySection(section)}
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT %s: %v", mailbox, err)
	}
	return out
}

// oiCompare checks the server's messages of a mailbox against want:
// the same UIDs, flags and bytes.
func oiCompare(t *testing.T, mailbox string, got, want map[imap.UID]oiMsg) {
	t.Helper()
	for uid, w := range want {
		g, ok := got[uid]
		switch {
		case !ok:
			t.Errorf("%s UID %d is not on the server (want flags %q)", mailbox, uid, w.flags)
		case g.flags != w.flags:
			t.Errorf("%s UID %d: flags %q on the server, want %q", mailbox, uid, g.flags, w.flags)
		case !bytes.Equal(g.body, w.body):
			t.Errorf("%s UID %d: the message changed on the server; first difference: %s", mailbox, uid, firstDiff(g.body, w.body))
		}
	}
	for uid, g := range got {
		if _, ok := want[uid]; !ok {
			t.Errorf("%s UID %d is on the server (flags %q) but should not be", mailbox, uid, g.flags)
		}
	}
}

// oiCheckMaildir checks that a Maildir folder holds exactly the messages
// of want, by the UID offlineimap puts in the file names (,U=N), with the
// same flag letters and the same bytes (with LF line ends).
func oiCheckMaildir(t *testing.T, when, folder string, want map[imap.UID]oiMsg) {
	t.Helper()
	local := readMaildir(t, folder)
	for uid, w := range want {
		m, ok := local[uid]
		if !ok {
			t.Errorf("%s: UID %d is not in the Maildir %s", when, uid, folder)
			continue
		}
		if m.flags != w.flags {
			t.Errorf("%s: %s UID %d: Maildir flags %q (%s), want %q", when, folder, uid, m.flags, m.name, w.flags)
		}
		got, err := os.ReadFile(m.path)
		if err != nil {
			t.Fatal(err)
		}
		got = stripOfflineIMAP(got)
		wantLF := bytes.ReplaceAll(stripOfflineIMAP(w.body), []byte("\r\n"), []byte("\n"))
		if !bytes.Equal(got, wantLF) {
			t.Errorf("%s: %s UID %d: Maildir file %s differs from the message on the server (%d bytes, want %d); first difference: %s",
				when, folder, uid, m.name, len(got), len(wantLF), firstDiff(got, wantLF))
		}
	}
	for uid, m := range local {
		if _, ok := want[uid]; !ok {
			t.Errorf("%s: the Maildir %s has UID %d (%s), which the server does not", when, folder, uid, m.name)
		}
	}
}

var offlineIMAPHeader = regexp.MustCompile(`(?im)^X-OfflineIMAP: [^\r\n]*\r?\n`)

// stripOfflineIMAP removes the X-OfflineIMAP header offlineimap adds to
// the messages it uploads when it cannot learn their UID otherwise
// (without UIDPLUS).
func stripOfflineIMAP(b []byte) []byte {
	loc := offlineIMAPHeader.FindIndex(b)
	if loc == nil {
		return b
	}
	return append(b[:loc[0]:loc[0]], b[loc[1]:]...)
}

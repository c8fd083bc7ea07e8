package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestMbsync synchronises a 300-message INBOX to a Maildir with isync's
// mbsync, checks every message's flags and bytes there, then changes the
// Maildir (flags, a deletion, a new message) and checks that a second
// sync brings those changes to the server.
func TestMbsync(t *testing.T) {
	mbsync := lookTool(t, "mbsync", "isync")
	if out, err := exec.Command(mbsync, "--version").Output(); err == nil {
		t.Logf("%s", bytes.TrimSpace(out))
	}
	env := imaptest.Start(t, nil)
	c := mbsyncLogin(t, env)

	// 300 messages with every combination of flags mbsync maps to Maildir
	// letters, of different sizes, some multipart.
	const total = 300
	bodies := map[imap.UID][]byte{}
	wantFlags := map[imap.UID]string{} // Maildir letters, sorted
	for i := range total {
		body := mbsyncMessage(i)
		flags, letters := mbsyncFlags(i)
		cmd := c.Append("INBOX", int64(len(body)), &imap.AppendOptions{Flags: flags})
		if _, err := cmd.Write(body); err != nil {
			t.Fatalf("APPEND %d: %v", i, err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("APPEND %d: %v", i, err)
		}
		data, err := cmd.Wait()
		if err != nil {
			t.Fatalf("APPEND %d: %v", i, err)
		}
		if data.UID == 0 {
			t.Fatalf("APPEND %d: no APPENDUID", i)
		}
		bodies[data.UID] = body
		wantFlags[data.UID] = letters
	}

	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail")
	inbox := filepath.Join(maildir, "INBOX")
	if err := os.MkdirAll(maildir, 0o700); err != nil { // mbsync creates folders, not the root
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(env.Addr)
	rc := func(expunge string) string {
		path := filepath.Join(dir, "mbsyncrc-"+expunge)
		conf := fmt.Sprintf(`IMAPAccount quickimap
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore quickimap-far
Account quickimap

MaildirStore quickimap-near
Path %s/
Inbox %s
SubFolders Verbatim

Channel quickimap
Far :quickimap-far:
Near :quickimap-near:
Patterns *
Create Both
Expunge %s
SyncState *
`, host, port, env.User, env.Password, maildir, inbox, expunge)
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	runMbsync := func(rc string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, mbsync, "-c", rc, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("mbsync did not finish within 60 s; output:\n%s", out)
		}
		if err != nil {
			t.Fatalf("mbsync -c %s -a: %v; output:\n%s", filepath.Base(rc), err, out)
		}
		t.Logf("mbsync -c %s -a:\n%s", filepath.Base(rc), out)
	}

	// First sync, without expunging: every message, \Deleted ones too,
	// must reach the Maildir.
	runMbsync(rc("None"))
	local := readMaildir(t, inbox)
	if len(local) != total {
		t.Fatalf("Maildir INBOX has %d messages after the first sync, want %d", len(local), total)
	}
	for uid, want := range bodies {
		m, ok := local[uid]
		if !ok {
			t.Errorf("UID %d is not in the Maildir", uid)
			continue
		}
		if m.flags != wantFlags[uid] {
			t.Errorf("UID %d: Maildir flags %q (%s), want %q", uid, m.flags, m.name, wantFlags[uid])
		}
		got, err := os.ReadFile(m.path)
		if err != nil {
			t.Fatal(err)
		}
		// Maildir keeps LF line ends; mbsync converts, and adds an X-TUID
		// header of its own to every message it propagates (isync 1.4
		// uses it to recognise messages after an interrupted run).
		got = stripTUID(got)
		if wantLF := bytes.ReplaceAll(want, []byte("\r\n"), []byte("\n")); !bytes.Equal(got, wantLF) && !bytes.Equal(got, want) {
			t.Errorf("UID %d: Maildir file %s differs from the message appended (%d bytes, want %d); first difference: %s",
				uid, m.name, len(got), len(wantLF), firstDiff(got, wantLF))
		}
	}
	for _, box := range []string{"Archive", "Drafts", "Junk", "Sent", "Trash"} {
		if _, err := os.Stat(filepath.Join(maildir, box, "cur")); err != nil {
			t.Errorf("mailbox %s was not created in the Maildir: %v", box, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Local changes: flags added and removed by renaming, one message
	// deleted, one new message delivered to new/.
	var uids []imap.UID
	for uid := range local {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	changed := map[imap.UID]string{}
	var deleted imap.UID
	for _, uid := range uids {
		m := local[uid]
		if strings.Contains(m.flags, "T") {
			continue
		}
		switch {
		case deleted == 0 && uid > 100:
			deleted = uid
			if err := os.Remove(m.path); err != nil {
				t.Fatal(err)
			}
		case len(changed) < 40 && uid%3 == 0:
			// Toggle \Flagged and \Seen.
			nf := toggleLetter(toggleLetter(m.flags, 'F'), 'S')
			changed[uid] = nf
			renameWithFlags(t, m, nf)
		}
	}
	newBody := "From: Local <local@example.com>\nTo: alice@example.com\nSubject: written in the Maildir\n" +
		"Message-ID: <local-1@example.com>\nDate: Tue, 2 Jan 2024 10:00:00 +0000\n\nA message mbsync must upload.\n"
	newFile := filepath.Join(inbox, "new", fmt.Sprintf("%d.quickimaptest.localhost", time.Now().Unix()))
	if err := os.WriteFile(newFile, []byte(newBody), 0o600); err != nil {
		t.Fatal(err)
	}

	// Second sync, expunging on both sides: the local deletion and the
	// messages flagged \Deleted go on the server as well.
	runMbsync(rc("Both"))

	c.Select("INBOX", nil).Wait()
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH 1:* (UID FLAGS): %v", err)
	}
	server := map[imap.UID]string{}
	for _, m := range msgs {
		server[m.UID] = letters(m.Flags)
	}
	for _, uid := range uids {
		got, ok := server[uid]
		switch want := wantFlags[uid]; {
		case uid == deleted:
			if ok {
				t.Errorf("UID %d was deleted from the Maildir but is still on the server (flags %q)", uid, got)
			}
		case strings.Contains(want, "T"):
			if ok {
				t.Errorf("UID %d had \\Deleted and should have been expunged by mbsync (Expunge Both), but is still there", uid)
			}
		case !ok:
			t.Errorf("UID %d vanished from the server", uid)
		case hasKey(changed, uid):
			if got != changed[uid] {
				t.Errorf("UID %d: flags on the server %q after the local change, want %q (were %q)", uid, got, changed[uid], want)
			}
		default:
			if got != want {
				t.Errorf("UID %d: flags on the server %q, want unchanged %q", uid, got, want)
			}
		}
	}
	// The new message arrived, byte for byte (with CRLF line ends).
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "written in the Maildir"}}}, nil).Wait()
	if err != nil {
		t.Fatalf("UID SEARCH SUBJECT: %v", err)
	}
	newUIDs := found.AllUIDs()
	if len(newUIDs) != 1 {
		t.Fatalf("UID SEARCH SUBJECT \"written in the Maildir\": %v, want one UID", newUIDs)
	}
	if _, ok := bodies[newUIDs[0]]; ok || newUIDs[0] <= uids[len(uids)-1] {
		t.Errorf("the uploaded message has UID %d, not a new one", newUIDs[0])
	}
	section := &imap.FetchItemBodySection{Peek: true}
	fm, err := c.Fetch(imap.UIDSetNum(newUIDs[0]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(fm) != 1 {
		t.Fatalf("UID FETCH %d BODY.PEEK[]: %v, %d messages", newUIDs[0], err, len(fm))
	}
	// mbsync adds its X-TUID header to uploads too.
	wantCRLF := strings.ReplaceAll(newBody, "\n", "\r\n")
	if got := string(stripTUID(fm[0].FindBodySection(section))); got != wantCRLF {
		t.Errorf("uploaded message on the server:\n%q\nwant\n%q", got, wantCRLF)
	}
	wantCount := 0
	for _, uid := range uids {
		if uid != deleted && !strings.Contains(wantFlags[uid], "T") {
			wantCount++
		}
	}
	if len(server) != wantCount+1 {
		t.Errorf("the server has %d messages after the second sync, want %d", len(server), wantCount+1)
	}
	// And the Maildir agrees with the server.
	local = readMaildir(t, inbox)
	if len(local) != len(server) {
		t.Errorf("Maildir has %d messages after the second sync, the server %d", len(local), len(server))
	}
	for uid, m := range local {
		if f, ok := server[uid]; !ok || f != m.flags {
			t.Errorf("after the second sync, Maildir UID %d has flags %q, server %q (present %v)", uid, m.flags, f, ok)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

func mbsyncLogin(t *testing.T, env *imaptest.Env) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(env.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(env.User, env.Password).Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	return c
}

// mbsyncFlags gives message i a mix of the flags mbsync maps to Maildir
// letters, and returns the letters in Maildir order.
func mbsyncFlags(i int) ([]imap.Flag, string) {
	var flags []imap.Flag
	var l []byte
	if i%11 == 3 {
		flags, l = append(flags, imap.FlagDraft), append(l, 'D')
	}
	if i%5 == 1 {
		flags, l = append(flags, imap.FlagFlagged), append(l, 'F')
	}
	if i%7 == 2 {
		flags, l = append(flags, imap.FlagAnswered), append(l, 'R')
	}
	if i%2 == 0 {
		flags, l = append(flags, imap.FlagSeen), append(l, 'S')
	}
	if i%13 == 4 {
		flags, l = append(flags, imap.FlagDeleted), append(l, 'T')
	}
	if i%17 == 0 {
		flags = append(flags, "$Label1") // a keyword mbsync ignores
	}
	return flags, string(l)
}

func letters(flags []imap.Flag) string {
	var l []byte
	for _, f := range flags {
		switch f {
		case imap.FlagDraft:
			l = append(l, 'D')
		case imap.FlagFlagged:
			l = append(l, 'F')
		case imap.FlagAnswered:
			l = append(l, 'R')
		case imap.FlagSeen:
			l = append(l, 'S')
		case imap.FlagDeleted:
			l = append(l, 'T')
		}
	}
	slices.Sort(l)
	return string(l)
}

func toggleLetter(flags string, c byte) string {
	if strings.IndexByte(flags, c) >= 0 {
		return strings.ReplaceAll(flags, string(c), "")
	}
	b := []byte(flags + string(c))
	slices.Sort(b)
	return string(b)
}

// mbsyncMessage is message i: plain text of various sizes, or every
// third one a multipart/mixed with a base64 attachment.
func mbsyncMessage(i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.org>\r\nTo: alice@example.com\r\nSubject: mbsync test %d\r\n"+
		"Date: Mon, 1 Jan 2024 %02d:%02d:00 +0000\r\nMessage-ID: <mbsync-%d@example.org>\r\nMIME-Version: 1.0\r\n",
		i, i, i, i/60%24, i%60, i)
	size := []int{200, 2000, 9000, 40000, 120000}[i%5]
	text := func() {
		line := fmt.Sprintf("Message %d says hello; lorem ipsum dolor sit amet.\r\n", i)
		for n := 0; n < size; n += len(line) {
			b.WriteString(line)
		}
	}
	if i%3 != 0 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		text()
		return b.Bytes()
	}
	boundary := fmt.Sprintf("=-boundary-%d", i)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\nThis is a MIME message.\r\n--%s\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n", boundary, boundary)
	text()
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data-%d.bin\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n", boundary, i)
	raw := make([]byte, 3000+i*10)
	for j := range raw {
		raw[j] = byte(i*31 + j*7)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--" + boundary + "--\r\n")
	return b.Bytes()
}

type maildirMsg struct {
	path, name string
	dir        string // "cur" or "new"
	base       string // name without the ":2,..." info
	flags      string
}

var maildirUIDRE = regexp.MustCompile(`,U=(\d+)`)

// readMaildir lists a Maildir folder's messages by the UID mbsync put in
// their names (,U=N).
func readMaildir(t *testing.T, folder string) map[imap.UID]maildirMsg {
	t.Helper()
	out := map[imap.UID]maildirMsg{}
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			m := maildirMsg{path: filepath.Join(folder, sub, name), name: sub + "/" + name, dir: sub, base: name}
			if i := strings.Index(name, ":2,"); i >= 0 {
				m.base, m.flags = name[:i], name[i+3:]
			}
			f := []byte(m.flags)
			sort.Slice(f, func(i, j int) bool { return f[i] < f[j] })
			m.flags = string(f)
			u := maildirUIDRE.FindStringSubmatch(m.base)
			if u == nil {
				t.Errorf("Maildir file %s has no ,U=<uid>", m.name)
				continue
			}
			n, _ := strconv.ParseUint(u[1], 10, 32)
			if _, dup := out[imap.UID(n)]; dup {
				t.Errorf("two Maildir files with UID %d", n)
			}
			out[imap.UID(n)] = m
		}
	}
	return out
}

// renameWithFlags gives a Maildir message new flags, moving it to cur/.
func renameWithFlags(t *testing.T, m maildirMsg, flags string) {
	t.Helper()
	to := filepath.Join(filepath.Dir(filepath.Dir(m.path)), "cur", m.base+":2,"+flags)
	if err := os.Rename(m.path, to); err != nil {
		t.Fatal(err)
	}
}

// firstDiff describes where two byte strings first differ.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	clip := func(b []byte) []byte { return b[min(i, len(b)):min(i+60, len(b))] }
	return fmt.Sprintf("at byte %d got %q, want %q", i, clip(got), clip(want))
}

var tuidRE = regexp.MustCompile(`(?m)^X-TUID: [A-Za-z0-9+/]{12}\r?\n`)

// stripTUID removes the X-TUID header mbsync adds.
func stripTUID(b []byte) []byte {
	loc := tuidRE.FindIndex(b)
	if loc == nil {
		return b
	}
	return append(b[:loc[0]:loc[0]], b[loc[1]:]...)
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

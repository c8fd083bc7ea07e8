package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
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

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestInterimap synchronizes two quickimap servers with interimap, which
// relies on QRESYNC (RFC 7162), ENABLE, UIDPLUS, LIST-EXTENDED,
// LIST-STATUS and LITERAL+. Over several rounds it changes both sides
// through raw IMAP (APPEND, flag changes, expunges, moves, new mailboxes),
// runs interimap, and checks that it succeeds without complaint and
// that both servers then hold the same mailboxes and the same messages
// (by Message-ID, with flags, size and INTERNALDATE).
func TestInterimap(t *testing.T) {
	bin := lookTool(t, "interimap", "interimap")
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		t.Logf("%s", bytes.TrimSpace(out))
	}
	local := imaptest.Start(t, nil)
	remote := imaptest.Start(t, nil)
	dir := t.TempDir()
	conf := filepath.Join(dir, "interimap.conf")
	section := func(name string, env *imaptest.Env) string {
		host, port, _ := net.SplitHostPort(env.Addr)
		return fmt.Sprintf("[%s]\ntype = imap\nhost = %s\nport = %s\nSTARTTLS = NO\nauth = PLAIN\nusername = %s\npassword = %s\ncompress = NO\n\n",
			name, host, port, env.User, env.Password)
	}
	text := "database = " + filepath.Join(dir, "interimap.db") + "\n\n" + section("local", local) + section("remote", remote)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	round := 0
	run := func(args ...string) {
		t.Helper()
		round++
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		args = append([]string{"--config=" + conf}, args...)
		if os.Getenv("QUICKIMAP_INTERIMAP_DEBUG") != "" {
			args = append([]string{"--debug"}, args...)
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + dir,
			"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
			"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
			"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
			"LC_ALL=C.UTF-8",
		}
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("round %d: interimap %s did not finish within 90 s; output:\n%s", round, strings.Join(args, " "), out)
		}
		if err != nil {
			t.Fatalf("round %d: interimap %s: %v; output:\n%s", round, strings.Join(args, " "), err, out)
		}
		t.Logf("round %d: interimap %s:\n%s", round, strings.Join(args[1:], " "), out)
		if bad := interimapComplaint.FindAll(out, -1); bad != nil {
			t.Errorf("round %d: interimap's output complains (%q):\n%s", round, bad, out)
		}
	}

	l := local.DialLogin(t)
	r := remote.DialLogin(t)
	n := 0
	add := func(c *imaptest.Conn, mailbox, flags string) string {
		t.Helper()
		n++
		id := fmt.Sprintf("<interimap-%d@example.com>", n)
		body := fmt.Sprintf("From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\nSubject: message %d\r\n"+
			"Date: Mon, 1 Jan 2024 00:00:%02d +0000\r\nMessage-ID: %s\r\n\r\n%s\r\n",
			n, n, n, n%60, id, strings.Repeat(fmt.Sprintf("line %d of the body\r\n", n), n%7+1))
		date := time.Date(2024, 1, 1+n%28, 12, 0, n%60, 0, time.FixedZone("", 3600)).Format("02-Jan-2006 15:04:05 -0700")
		tag := fmt.Sprintf("a%d", n)
		c.Send(fmt.Sprintf("%s APPEND %s (%s) \"%s\" {%d+}\r\n%s\r\n", tag, mailbox, flags, date, len(body), body))
		lines := c.ReadUntilTagged(tag)
		if !strings.HasPrefix(lines[len(lines)-1], tag+" OK") {
			t.Fatalf("APPEND to %s: %q", mailbox, lines)
		}
		return id
	}
	// uidOf finds a message's UID in the selected mailbox by Message-ID.
	uidOf := func(c *imaptest.Conn, id string) string {
		t.Helper()
		lines := c.Cmd("s", "UID SEARCH HEADER Message-ID "+strconv.Quote(id))
		for _, line := range lines {
			if f := strings.Fields(line); len(f) == 3 && f[1] == "SEARCH" {
				return f[2]
			}
		}
		t.Fatalf("no message %s: %q", id, lines)
		return ""
	}
	ok := func(c *imaptest.Conn, cmd string) {
		t.Helper()
		c.ExpectTagged("x", cmd, "x OK")
	}
	var content map[string]map[string]*imMsg // local, after the last check
	check := func() {
		t.Helper()
		l.Cmd("u0", "UNSELECT")
		r.Cmd("u0", "UNSELECT")
		a, b := interimapContent(t, l), interimapContent(t, r)
		if d := interimapDiff(a, b); d != "" {
			t.Fatalf("round %d: local and remote differ after interimap:\n%s", round, d)
		}
		content = a
	}
	// expect checks one message after a check (flags "-" for absent):
	// identical content alone would not catch a change undone on the
	// side it was made on.
	expect := func(mailbox, id, flags string) {
		t.Helper()
		m := content[mailbox][id]
		switch {
		case flags == "-" && m != nil:
			t.Errorf("round %d: %s %s is still there (%+v)", round, mailbox, id, *m)
		case flags != "-" && m == nil:
			t.Errorf("round %d: %s %s is missing", round, mailbox, id)
		case flags != "-" && m.flags != flags:
			t.Errorf("round %d: %s %s has flags %q, want %q", round, mailbox, id, m.flags, flags)
		}
	}

	// Round 1: messages on both sides, a new mailbox with a child on the
	// local side, one on the remote side.
	var ids []string
	for i := range 6 {
		ids = append(ids, add(l, "INBOX", []string{``, `\Seen`, `\Seen \Flagged`, `\Answered $Label1`, `\Draft`, `$Forwarded \Seen`}[i]))
	}
	for range 3 {
		ids = append(ids, add(r, "INBOX", `\Seen`))
	}
	// Projects exists on both sides: quickimap's CREATE Projects/Alpha
	// creates the parent too (RFC 3501 §6.3.3), so an interimap that
	// creates the child on the other side first (the order follows a
	// Perl hash) then gets ALREADYEXISTS for the parent and warns.
	ok(r, "CREATE Projects")
	ok(l, "CREATE Projects/Alpha")
	add(l, "Projects", `\Flagged`)
	add(l, "Projects/Alpha", ``)
	ok(r, "CREATE Lists")
	add(r, "Lists", `\Seen`)
	run()
	check()

	// Round 2: flag changes on both sides (different messages), an
	// expunge on each side, new messages, a new nested mailbox.
	ok(l, "SELECT INBOX")
	ok(r, "SELECT INBOX")
	ok(l, "UID STORE "+uidOf(l, ids[0])+" +FLAGS (\\Seen $Label2)")
	ok(l, "UID STORE "+uidOf(l, ids[2])+" -FLAGS (\\Flagged)")
	ok(r, "UID STORE "+uidOf(r, ids[3])+" FLAGS (\\Answered \\Seen)")
	ok(r, "UID STORE "+uidOf(r, ids[6])+" +FLAGS (\\Flagged)")
	ok(l, "UID STORE "+uidOf(l, ids[1])+" +FLAGS (\\Deleted)")
	ok(l, "UID EXPUNGE "+uidOf(l, ids[1]))
	ok(r, "UID STORE "+uidOf(r, ids[7])+" +FLAGS (\\Deleted)")
	ok(r, "EXPUNGE")
	ids = append(ids, add(l, "INBOX", `\Seen`), add(r, "INBOX", ``))
	ok(r, "CREATE Lists/Go")
	add(r, "Lists/Go", `$Label1`)
	add(l, "Sent", `\Seen`)
	run()
	check()
	expect("INBOX", ids[0], `$label2 \seen`)
	expect("INBOX", ids[1], "-")
	expect("INBOX", ids[2], `\seen`)
	expect("INBOX", ids[3], `\answered \seen`)
	expect("INBOX", ids[6], `\flagged \seen`)
	expect("INBOX", ids[7], "-")

	// Round 3: a message moved between mailboxes on one side, a \Deleted
	// flag that stays unexpunged, keywords removed, many new messages.
	ok(l, "SELECT INBOX")
	ok(r, "SELECT INBOX")
	ok(l, "UID MOVE "+uidOf(l, ids[4])+" Archive")
	ok(r, "UID STORE "+uidOf(r, ids[5])+" +FLAGS (\\Deleted)")
	ok(r, "UID STORE "+uidOf(r, ids[0])+" -FLAGS ($Label2)")
	for i := range 40 {
		add([]*imaptest.Conn{l, r}[i%2], []string{"INBOX", "Projects/Alpha", "Lists/Go"}[i%3], []string{``, `\Seen`, `\Seen $Label1`}[i%3])
	}
	run()
	check()
	expect("INBOX", ids[4], "-")
	expect("Archive", ids[4], `\draft`)
	expect("INBOX", ids[5], `$forwarded \deleted \seen`)
	expect("INBOX", ids[0], `\seen`)
	if got := len(content["Projects/Alpha"]); got != 1+13 {
		t.Errorf("round %d: Projects/Alpha has %d messages, want 14", round, got)
	}

	// Round 4: changes on both sides to the same mailbox between two
	// runs, then a run with nothing to do.
	ok(l, "SELECT Projects/Alpha")
	ok(l, "UID STORE 1:* +FLAGS (\\Seen)")
	ok(r, "SELECT Lists/Go")
	ok(r, "UID STORE 1:* +FLAGS (\\Deleted)")
	ok(r, "EXPUNGE")
	ok(l, "UNSELECT")
	ok(r, "UNSELECT")
	run()
	check()
	if got := len(content["Lists/Go"]); got != 0 {
		t.Errorf("round %d: Lists/Go has %d messages, want none", round, got)
	}
	for id, m := range content["Projects/Alpha"] {
		if !strings.Contains(m.flags, `\seen`) {
			t.Errorf("round %d: Projects/Alpha %s has flags %q, want \\Seen", round, id, m.flags)
		}
	}
	run()
	check()

	// Round 5: interimap's own --delete and --rename go through both
	// servers and the database; a sync afterwards must agree.
	run("--rename", "Projects/Alpha", "Projects/Beta")
	check()
	if _, ok := content["Projects/Alpha"]; ok || len(content["Projects/Beta"]) != 14 {
		t.Errorf("round %d: after --rename, Projects/Alpha exists: %v, Projects/Beta has %d messages; want false and 14",
			round, ok, len(content["Projects/Beta"]))
	}
	run("--delete", "Lists/Go")
	check()
	if _, ok := content["Lists/Go"]; ok {
		t.Errorf("round %d: Lists/Go still exists after --delete", round)
	}
	add(l, "Projects/Beta", `\Flagged`)
	run()
	check()
	if got := len(content["Projects/Beta"]); got != 15 {
		t.Errorf("round %d: Projects/Beta has %d messages, want 15", round, got)
	}
}

// interimapComplaint matches what interimap prints when something is
// wrong; its ordinary progress lines say what it copied and updated.
var interimapComplaint = regexp.MustCompile(`(?i)[^\n]*(error|warning|violation|panic|abort|conflict|can't|cannot|mismatch|unexpected)[^\n]*`)

type imMsg struct {
	flags string // sorted, without \Recent
	size  int
	date  string
	count int
}

// interimapContent lists every mailbox and its messages by Message-ID.
func interimapContent(t *testing.T, c *imaptest.Conn) map[string]map[string]*imMsg {
	t.Helper()
	lines := c.Cmd("l", `LIST "" "*"`)
	if !strings.HasPrefix(lines[len(lines)-1], "l OK") {
		t.Fatalf("LIST: %q", lines)
	}
	listRE := regexp.MustCompile(`^\* LIST \(([^)]*)\) (?:"."|NIL) (.+)$`)
	out := map[string]map[string]*imMsg{}
	for _, line := range lines[:len(lines)-1] {
		m := listRE.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "* LIST ") {
				t.Fatalf("LIST: cannot parse %q", line)
			}
			continue // news about a mailbox selected before
		}
		name := m[2]
		if unq, err := strconv.Unquote(name); err == nil {
			name = unq
		}
		msgs := map[string]*imMsg{}
		out[name] = msgs
		if strings.Contains(strings.ToLower(m[1]), `\noselect`) {
			out[name] = nil
			continue
		}
		c.ExpectTagged("e", "EXAMINE "+strconv.Quote(name), "e OK")
		for _, f := range interimapFetch(t, c, "UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])") {
			id := f.header
			if id == "" {
				t.Fatalf("%s: a message without Message-ID: %+v", name, f)
			}
			if old := msgs[id]; old != nil {
				old.count++
				continue
			}
			msgs[id] = &imMsg{flags: f.flags, size: f.size, date: f.date, count: 1}
		}
		c.ExpectTagged("u", "UNSELECT", "u OK")
	}
	return out
}

type imFetch struct {
	flags, date, header string
	size                int
}

// interimapFetch runs a FETCH and reads its answers, literals included.
func interimapFetch(t *testing.T, c *imaptest.Conn, cmd string) []imFetch {
	t.Helper()
	c.SendLine("f " + cmd)
	litRE := regexp.MustCompile(`\{(\d+)\}$`)
	flagsRE := regexp.MustCompile(`FLAGS \(([^)]*)\)`)
	sizeRE := regexp.MustCompile(`RFC822\.SIZE (\d+)`)
	dateRE := regexp.MustCompile(`INTERNALDATE "([^"]*)"`)
	idRE := regexp.MustCompile(`(?i)Message-ID:\s*(\S+)`)
	var out []imFetch
	for {
		line := c.ReadLine()
		if strings.HasPrefix(line, "f ") {
			if !strings.HasPrefix(line, "f OK") {
				t.Fatalf("%s: %q", cmd, line)
			}
			return out
		}
		// Gather the whole response: each literal, then the rest.
		full, header := line, ""
		for {
			m := litRE.FindStringSubmatch(full)
			if m == nil {
				break
			}
			size, _ := strconv.Atoi(m[1])
			buf := make([]byte, size)
			if _, err := io.ReadFull(c.R, buf); err != nil {
				t.Fatalf("%s: reading a literal: %v", cmd, err)
			}
			header += string(buf)
			full += "<literal>" + c.ReadLine()
		}
		if !strings.Contains(full, " FETCH ") {
			continue
		}
		var f imFetch
		if m := flagsRE.FindStringSubmatch(full); m != nil {
			fl := strings.Fields(m[1])
			fl = slices.DeleteFunc(fl, func(s string) bool { return strings.EqualFold(s, `\Recent`) })
			for i := range fl {
				fl[i] = strings.ToLower(fl[i])
			}
			sort.Strings(fl)
			f.flags = strings.Join(fl, " ")
		}
		if m := sizeRE.FindStringSubmatch(full); m != nil {
			f.size, _ = strconv.Atoi(m[1])
		}
		if m := dateRE.FindStringSubmatch(full); m != nil {
			f.date = m[1]
		}
		if m := idRE.FindStringSubmatch(header); m != nil {
			f.header = m[1]
		}
		out = append(out, f)
	}
}

// interimapDiff describes how two servers' contents differ, or "".
func interimapDiff(a, b map[string]map[string]*imMsg) string {
	var d []string
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		ma, okA := a[name]
		mb, okB := b[name]
		switch {
		case !okA:
			d = append(d, fmt.Sprintf("mailbox %q only on remote", name))
			continue
		case !okB:
			d = append(d, fmt.Sprintf("mailbox %q only on local", name))
			continue
		case (ma == nil) != (mb == nil):
			d = append(d, fmt.Sprintf("mailbox %q is \\Noselect on one side only", name))
			continue
		}
		ids := map[string]bool{}
		for id := range ma {
			ids[id] = true
		}
		for id := range mb {
			ids[id] = true
		}
		sortedIDs := make([]string, 0, len(ids))
		for id := range ids {
			sortedIDs = append(sortedIDs, id)
		}
		sort.Strings(sortedIDs)
		for _, id := range sortedIDs {
			x, y := ma[id], mb[id]
			switch {
			case x == nil:
				d = append(d, fmt.Sprintf("%s: %s only on remote", name, id))
			case y == nil:
				d = append(d, fmt.Sprintf("%s: %s only on local", name, id))
			case *x != *y:
				d = append(d, fmt.Sprintf("%s: %s local %+v, remote %+v", name, id, *x, *y))
			case x.count != 1:
				d = append(d, fmt.Sprintf("%s: %s is there %d times on each side", name, id, x.count))
			}
		}
	}
	return strings.Join(d, "\n")
}

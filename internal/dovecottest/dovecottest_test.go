package dovecottest

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testMsg = "From: a@example.org\nTo: b@example.org\nSubject: hello\n\nbody\n"

func capsOf(t *testing.T, lines []string, text string) map[string]bool {
	t.Helper()
	caps := map[string]bool{}
	add := func(s string) {
		for _, c := range strings.Fields(s) {
			caps[strings.ToUpper(c)] = true
		}
	}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "* CAPABILITY "); ok {
			add(rest)
		}
	}
	if m := regexp.MustCompile(`\[CAPABILITY ([^\]]*)\]`).FindStringSubmatch(text); m != nil {
		add(m[1])
	}
	if len(caps) == 0 {
		t.Fatalf("no capabilities in %q / %q", lines, text)
	}
	return caps
}

func want(t *testing.T, lines []string, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range lines {
		if m := rx.FindStringSubmatch(l); m != nil {
			return m
		}
	}
	t.Fatalf("no line matching %s in:\n%s", re, strings.Join(lines, "\n"))
	return nil
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := Start(t)
	t.Logf("dovecot %s on %s as uid %d, started in %v", e.Version, e.Addr, e.uid, time.Since(start))

	c := e.Dial(t)
	t.Logf("greeting: %s", c.Greeting)
	pre := capsOf(t, nil, c.Greeting)
	for _, cp := range []string{"IMAP4REV1", "SASL-IR", "LITERAL+", "ENABLE", "ID", "IDLE", "AUTH=PLAIN"} {
		if !pre[cp] {
			t.Errorf("greeting lacks %s: %s", cp, c.Greeting)
		}
	}
	if pre["STARTTLS"] || pre["LOGINDISABLED"] {
		t.Errorf("greeting should not offer STARTTLS/LOGINDISABLED with ssl=no: %s", c.Greeting)
	}

	resp, err := c.Do("LOGIN %s %s", Quote(e.User), Quote(e.Password))
	if err != nil || resp.Status != "OK" {
		t.Fatalf("LOGIN: %v %+v\n%s", err, resp, e.LogTail(10))
	}
	t.Logf("LOGIN: %s", resp.Text)
	untagged := c.MustOK("CAPABILITY")
	caps := capsOf(t, untagged, "")
	for _, cp := range []string{"QRESYNC", "CONDSTORE", "ENABLE", "UIDPLUS", "MOVE", "IDLE", "LITERAL+", "ESEARCH"} {
		if !caps[cp] {
			t.Errorf("post-login CAPABILITY lacks %s: %q", cp, untagged)
		}
	}

	want(t, c.MustOK("ENABLE QRESYNC"), `^\* ENABLED .*QRESYNC`)

	uid := c.Append("INBOX", testMsg)
	uid2 := c.Append("INBOX", strings.Replace(testMsg, "hello", "second", 1))
	if uid2 != uid+1 {
		t.Errorf("APPEND UIDs %d, %d", uid, uid2)
	}

	sel := c.MustOK("SELECT INBOX (QRESYNC (1 1))")
	want(t, sel, `^\* 2 EXISTS$`)
	uv, _ := strconv.ParseUint(want(t, sel, `^\* OK \[UIDVALIDITY (\d+)\]`)[1], 10, 32)
	hms, _ := strconv.ParseUint(want(t, sel, `^\* OK \[HIGHESTMODSEQ (\d+)\]`)[1], 10, 64)
	want(t, sel, fmt.Sprintf(`^\* OK \[UIDNEXT %d\]`, uid2+1))
	t.Logf("SELECT (QRESYNC with wrong UIDVALIDITY):\n%s", strings.Join(sel, "\n"))

	// Another session expunges uid; the selected QRESYNC session must
	// hear VANISHED, not EXPUNGE.
	other := e.Login(t)
	other.MustOK("SELECT INBOX")
	other.MustOK("UID STORE %d +FLAGS.SILENT (\\Deleted)", uid)
	other.MustOK("UID EXPUNGE %d", uid)
	noop := c.MustOK("NOOP")
	want(t, noop, fmt.Sprintf(`^\* VANISHED %d$`, uid))
	t.Logf("NOOP after expunge elsewhere: %q", noop)

	// Resync from the earlier state: VANISHED (EARLIER) for the expunged
	// UID. The FETCH of the changed message appears only if its MODSEQ
	// rose, which flag changes do.
	other.MustOK("UID STORE %d +FLAGS.SILENT (\\Flagged)", uid2)
	// The common form: right UIDVALIDITY, MODSEQ 1, no known UIDs.
	// Re-SELECT while selected: Dovecot sends OK [CLOSED] first.
	sel = c.MustOK("SELECT INBOX (QRESYNC (%d 1))", uv)
	if !strings.HasPrefix(sel[0], "* OK [CLOSED]") {
		t.Errorf("re-SELECT does not start with OK [CLOSED]: %q", sel)
	}
	want(t, sel, fmt.Sprintf(`^\* VANISHED \(EARLIER\) %d$`, uid))
	want(t, sel, fmt.Sprintf(`^\* 1 FETCH \(UID %d FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$`, uid2))
	t.Logf("SELECT (QRESYNC (uv 1)):\n%s", strings.Join(sel, "\n"))

	c.MustOK("UNSELECT")
	sel = c.MustOK("SELECT INBOX (QRESYNC (%d %d 1:%d))", uv, hms, uid2)
	want(t, sel, fmt.Sprintf(`^\* VANISHED \(EARLIER\) %d$`, uid))
	want(t, sel, fmt.Sprintf(`^\* 1 FETCH \(UID %d FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$`, uid2))
	want(t, sel, `^\* 1 EXISTS$`)
	t.Logf("SELECT (QRESYNC resync):\n%s", strings.Join(sel, "\n"))

	body := c.MustOK("UID FETCH %d BODY.PEEK[]", uid2)
	want(t, body, `Subject: second`)
	c.MustOK("LOGOUT")
}

func TestAuthenticatePlainSASLIR(t *testing.T) {
	t.Parallel()
	e := Start(t)
	c := e.Dial(t)
	if !strings.Contains(c.Greeting, "SASL-IR") {
		t.Fatalf("SASL-IR not advertised: %s", c.Greeting)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + e.User + "\x00" + e.Password))
	resp, err := c.Do("AUTHENTICATE PLAIN %s", ir)
	if err != nil || resp.Status != "OK" {
		t.Fatalf("AUTHENTICATE PLAIN: %v %+v\n%s", err, resp, e.LogTail(10))
	}
	if !strings.Contains(resp.Text, "QRESYNC") {
		t.Logf("no CAPABILITY code in %q", resp.Text)
	}
	c.MustOK("SELECT INBOX")

	// A wrong password fails fast (auth_failure_delay = 0).
	c2 := e.Dial(t)
	bad := base64.StdEncoding.EncodeToString([]byte("\x00" + e.User + "\x00wrong"))
	t0 := time.Now()
	resp, err = c2.Do("AUTHENTICATE PLAIN %s", bad)
	if err != nil || resp.Status != "NO" || !strings.Contains(resp.Text, "AUTHENTICATIONFAILED") {
		t.Fatalf("bad AUTHENTICATE: %v %+v", err, resp)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("failed authentication took %v", d)
	}
}

func TestUsersClearKickRestart(t *testing.T) {
	t.Parallel()
	e := Start(t)
	e.AddUser(t, "second", "pw2")
	c2 := e.LoginAs(t, "second", "pw2")
	c2.MustOK("CREATE Archive")
	c2.Append("Archive", testMsg)
	c2.MustOK("LOGOUT")

	e.Append(t, "INBOX", testMsg)
	c := e.Login(t)
	c.MustOK("CREATE Sent")
	c.MustOK("CREATE a.b") // Maildir++: the separator is "."
	c.Append("Sent", testMsg)
	sel := c.MustOK("SELECT INBOX")
	uv := want(t, sel, `UIDVALIDITY (\d+)`)[1]
	want(t, sel, `^\* 1 EXISTS$`)

	// Kick: the session gets BYE and EOF.
	e.Kick(t, e.User)
	var lines []string
	for {
		l, err := c.ReadLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after kick: %v (%q)", err, lines)
		}
		lines = append(lines, l)
	}
	want(t, lines, `^\* BYE `)

	e.Clear(t)
	c = e.Login(t)
	list := c.MustOK(`LIST "" "*"`)
	if len(list) != 1 || !strings.Contains(list[0], "INBOX") {
		t.Errorf("after Clear, LIST: %q", list)
	}
	sel = c.MustOK("SELECT INBOX")
	want(t, sel, `^\* 0 EXISTS$`)
	want(t, sel, `UIDVALIDITY `+uv+`\]`)
	want(t, sel, `UIDNEXT 2\]`)

	// Restart: the connection is closed, the port and mail survive.
	addr := e.Addr
	e.Append(t, "INBOX", testMsg)
	e.Restart(t)
	if e.Addr != addr || !e.Running() {
		t.Fatalf("after restart: %s (was %s), running %v", e.Addr, addr, e.Running())
	}
	lines = nil
	for {
		l, err := c.ReadLine()
		if err != nil {
			break
		}
		lines = append(lines, l)
	}
	t.Logf("old connection got %q before EOF", lines)
	want(t, lines, `^\* BYE Server shutting down`)
	c = e.Login(t)
	sel = c.MustOK("SELECT INBOX")
	want(t, sel, `^\* 1 EXISTS$`)
	want(t, sel, `UIDVALIDITY `+uv+`\]`)
	c3 := e.LoginAs(t, "second", "pw2")
	want(t, c3.MustOK("STATUS Archive (MESSAGES)"), `MESSAGES 1`)

	e.Stop()
	if e.Running() {
		t.Fatal("running after Stop")
	}
}

func TestExtraConfig(t *testing.T) {
	t.Parallel()
	e := StartWith(t, Options{ExtraConfig: "mail_max_userip_connections = 1"})
	e.Login(t)
	c := e.Dial(t)
	resp, err := c.Do("LOGIN %s %s", Quote(e.User), Quote(e.Password))
	if err == nil && resp.Status == "OK" {
		t.Fatalf("second connection accepted despite mail_max_userip_connections = 1")
	}
	t.Logf("over the limit: %v %+v", err, resp)
}

func TestConcurrentStarts(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	addrs := map[string]bool{}
	for i := 0; i < 4; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			e := Start(t)
			mu.Lock()
			if addrs[e.Addr] {
				t.Errorf("address %s reused", e.Addr)
			}
			addrs[e.Addr] = true
			mu.Unlock()
			c := e.Login(t)
			c.Append("INBOX", testMsg)
			want(t, c.MustOK("STATUS INBOX (MESSAGES)"), `MESSAGES 1\)`)
		})
	}
}

func TestListName(t *testing.T) {
	for line, name := range map[string]string{
		`* LIST (\HasNoChildren) "/" INBOX`:           "INBOX",
		`* LIST (\HasChildren) "." "a b"`:             "a b",
		`* LIST (\Noselect) NIL foo`:                  "foo",
		`* LIST (\HasNoChildren) "\\" "x\\y"`:         `x\y`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent It"`: "Sent It",
	} {
		got, ok := listName(line)
		if !ok || got != name {
			t.Errorf("listName(%q) = %q, %v; want %q", line, got, ok, name)
		}
	}
}

func TestMissingDovecotSkips(t *testing.T) {
	// Not parallel: it changes the environment.
	t.Setenv(EnvRequire, "")
	t.Setenv(EnvBinary, "/nonexistent/dovecot")
	var skipped bool
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
		t.Error("Start returned without dovecot")
	})
	if !skipped {
		t.Fatal("Start did not skip without dovecot")
	}
}

func TestBcryptUsersAuthCache(t *testing.T) {
	t.Parallel()
	e := StartWith(t, Options{
		PasswordScheme: SchemeBlfCrypt,
		BcryptCost:     4,
		AuthCacheSize:  "1M",
		Users:          NumberedUsers("load%d", 3, "pw"),
	})
	passwd, err := os.ReadFile(e.passwdPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{e.User, "load1", "load3"} {
		if !regexp.MustCompile(`(?m)^` + u + `:\{BLF-CRYPT\}\$2a\$04\$`).Match(passwd) {
			t.Errorf("no bcrypt entry for %s in\n%s", u, passwd)
		}
	}
	if conf, _ := os.ReadFile(e.ConfPath); !strings.Contains(string(conf), "\nauth_cache_size = 1M\n") {
		t.Errorf("no auth_cache_size in\n%s", conf)
	}
	e.AddUser(t, "late", "pw4")
	for _, u := range []User{{e.User, e.Password}, {"load1", "pw"}, {"load3", "pw"}, {"late", "pw4"}} {
		// Twice: the second login may be answered from the cache.
		for range 2 {
			e.LoginAs(t, u.Name, u.Password).MustOK("LOGOUT")
		}
	}
	c := e.Dial(t)
	resp, err := c.Do(`LOGIN "load2" "wrong"`)
	if err != nil || resp.Status != "NO" {
		t.Errorf("wrong password: %v %+v", err, resp)
	}

	pid := e.PID()
	if pid <= 0 {
		t.Fatalf("PID %d", pid)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil && !strings.Contains(string(stat), "(dovecot)") {
		t.Errorf("process %d is not dovecot: %s", pid, stat)
	}
	e.Stop()
	if e.PID() != 0 {
		t.Error("PID after Stop")
	}
}

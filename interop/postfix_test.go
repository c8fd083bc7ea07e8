package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/lmtp"
)

// postfixInstance is a Postfix mail system of its own (configuration,
// queue, data and log in a temporary directory) started by a test.
type postfixInstance struct {
	t        *testing.T
	dir      string // config in dir/etc, queue in dir/spool
	postfix  string
	sendmail string
}

// startPostfix configures and starts a Postfix instance whose only job is
// to hand mail for the given domains to LMTP: mainCF is appended to the
// common settings and masterCF to master.cf. The instance is stopped at the end of the test. It
// needs root (Postfix's master starts as root and its daemons switch to
// the postfix user) and skips without Postfix, unless INTEROP_REQUIRE=1.
func startPostfix(t *testing.T, mainCF, masterCF string) *postfixInstance {
	t.Helper()
	postfix := lookSbin(t, "postfix")
	postconf := lookSbin(t, "postconf")
	if os.Geteuid() != 0 {
		missing(t, "Postfix's master daemon must be started as root, and the tests do not run as root")
	}
	out, err := exec.Command(postconf, "-h", "-d", "command_directory").Output()
	if err != nil {
		t.Fatalf("postconf: %v", err)
	}
	sendmail := filepath.Join(strings.TrimSpace(string(out)), "sendmail")
	pf, err := user.Lookup("postfix")
	if err != nil {
		missing(t, "no postfix user: "+err.Error())
	}
	uid, _ := strconv.Atoi(pf.Uid)

	// Not t.TempDir(): its parents are 0700, and the daemons, running
	// as the postfix user, must reach the queue.
	dir, err := os.MkdirTemp("", "quickimap-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"etc", "spool", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.quickimap.test
mydomain = quickimap.test
myorigin = quickimap.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost =
alias_maps =
alias_database =
# The test sends nothing to another host; a bounce to one stays queued.
default_transport = error:no mail leaves this test instance
`, dir) + mainCF
	// No network listener unless masterCF adds one: mail comes in
	// through sendmail (postdrop and pickup).
	const master = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	if err := os.WriteFile(filepath.Join(dir, "etc", "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "master.cf"), []byte(master+masterCF), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &postfixInstance{t: t, dir: dir, postfix: postfix, sendmail: sendmail}
	if out, err := p.run(postfix, "-c", p.etc(), "start"); err != nil {
		p.stop()
		t.Fatalf("postfix start: %v\n%s\nlog:\n%s", err, out, p.log())
	}
	t.Cleanup(p.stop)
	return p
}

// lookSbin is lookTool for a program of the postfix package, also found
// in /usr/sbin when that is not on the PATH (a non-root shell's PATH).
func lookSbin(t *testing.T, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	path := filepath.Join("/usr/sbin", name)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path
	}
	return lookTool(t, name, "postfix")
}

func (p *postfixInstance) etc() string { return filepath.Join(p.dir, "etc") }

// run runs a Postfix command with a time limit.
func (p *postfixInstance) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// log returns the instance's log.
func (p *postfixInstance) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// masterPID returns the process id of the instance's master, or 0.
func (p *postfixInstance) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "spool", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive reports whether pid runs (a zombie, which a container's init may
// never reap, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// stop stops the instance: "postfix stop", then "postfix abort", then
// SIGKILL to its master if it still runs after each.
func (p *postfixInstance) stop() {
	pid := p.masterPID()
	p.run(p.postfix, "-c", p.etc(), "stop")
	if pid == 0 {
		return
	}
	wait := func(d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if !alive(pid) {
				return true
			}
		}
		return false
	}
	if wait(10 * time.Second) {
		return
	}
	p.run(p.postfix, "-c", p.etc(), "abort")
	if wait(5 * time.Second) {
		return
	}
	if proc, err := os.FindProcess(pid); err == nil {
		proc.Kill()
	}
	p.t.Errorf("Postfix master %d did not stop; killed", pid)
}

// submit hands a message to sendmail (postdrop, then pickup).
func (p *postfixInstance) submit(from string, msg []byte, rcpts ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-C", p.etc(), "-i", "-f", from, "--"}, rcpts...)
	cmd := exec.CommandContext(ctx, p.sendmail, args...)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("sendmail: %v\n%s\nlog:\n%s", err, out, p.log())
	}
}

// TestPostfixLMTP: a message submitted with Postfix's sendmail is delivered
// by Postfix over LMTP, over TCP for one domain and a Unix socket for the
// other, and read back over IMAP byte for byte apart from the trace
// header fields added before it; Postfix bounces the unknown recipient,
// and the bounce is delivered the same way.
func TestPostfixLMTP(t *testing.T) {
	e := startLMTP(t, 10<<20, "example.org", "example.net")
	sockDir, err := os.MkdirTemp("", "quickimap-lmtp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	os.Chmod(sockDir, 0o755)
	sock := filepath.Join(sockDir, "lmtp.sock")
	// Postfix's lmtp client runs as the postfix user.
	ul, err := lmtp.Listen(context.Background(), "unix:"+sock, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.LMTP.Serve(ul) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.LMTP.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("LMTP Serve on the socket: %v", err)
		}
	})

	// An SMTP listener too, to check that Postfix can refuse unknown
	// recipients during the SMTP dialogue by asking quickimap
	// (reject_unverified_recipient: a probe over LMTP that stops after
	// RCPT).
	smtpdAddr := freePort(t)
	p := startPostfix(t, fmt.Sprintf(`virtual_mailbox_domains = example.org, example.net
virtual_transport = lmtp:inet:%s
transport_maps = inline:{example.net=lmtp:unix:%s}
recipient_delimiter = +
smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient
unverified_recipient_reject_code = 550
address_verify_poll_delay = 1s
`, e.LMTPAddr, sock), smtpdAddr+" inet n - n - - smtpd\n")
	checkVerify(t, p, smtpdAddr)

	const from = "bob@example.net"
	// Lines end in LF: sendmail takes the local convention and Postfix
	// sends CRLF over LMTP.
	msg := "From: Bob <bob@example.net>\n" +
		"To: alice@example.org, nobody@example.org\n" +
		"Cc: bob@example.net\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n" +
		"Date: Wed, 02 Dec 2026 08:00:00 +0000\n" +
		"Message-ID: <postfix-lmtp-test@example.net>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"Content-Transfer-Encoding: 8bit\n" +
		"\n" +
		"Grüße aus Köln, € 5.\n" +
		".a line that starts with a dot\n" +
		"..and one with two\n" +
		"\n" +
		"-- \n" +
		"Bob\n"
	want := []byte(strings.ReplaceAll(msg, "\n", "\r\n"))
	p.submit(from, []byte(msg), "alice@example.org", "alice+Lists@example.org", "nobody@example.org", "bob@example.net")

	// Wait for the three copies and the bounce of nobody (Postfix
	// retries nothing here: every recipient gets a final answer).
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := fetchAll(t, e.Env, e.User, "INBOX")
		l := fetchAll(t, e.Env, e.User, "Lists")
		b := fetchAll(t, e.Env, "bob", "INBOX")
		if len(a) >= 1 && len(l) >= 1 && len(b) >= 2 {
			checkCopy(t, "alice INBOX", a[0], from, "alice@example.org", want)
			checkCopy(t, "alice Lists", l[0], from, "alice+Lists@example.org", want)
			var copy, bounce []byte
			for _, m := range b {
				if bytes.HasPrefix(m, []byte("Return-Path: <>\r\n")) {
					bounce = m
				} else {
					copy = m
				}
			}
			checkCopy(t, "bob INBOX", copy, from, "bob@example.net", want)
			if !regexp.MustCompile(`(?s)nobody@example\.org.*5\.1\.1`).Match(bounce) {
				t.Errorf("bounce of nobody@example.org:\n%s", bounce)
			}
			if len(a) != 1 || len(l) != 1 || len(b) != 2 {
				t.Errorf("messages: alice INBOX %d, Lists %d, bob INBOX %d; want 1, 1, 2", len(a), len(l), len(b))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: alice INBOX %d, Lists %d, bob INBOX %d messages; Postfix log:\n%s", len(a), len(l), len(b), p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	log := p.log()
	for _, rcpt := range []string{"alice@example.org", "alice+Lists@example.org", "bob@example.net"} {
		if !regexp.MustCompile(`to=<` + regexp.QuoteMeta(rcpt) + `>, relay=[^,]+, .*status=sent \(250 2\.0\.0 `).MatchString(log) {
			t.Errorf("no status=sent for %s in the Postfix log:\n%s", rcpt, log)
		}
	}
	t.Logf("Postfix log:\n%s", log)
}

// fetchAll logs in as user and fetches every message of mailbox.
func fetchAll(t *testing.T, e *imaptest.Env, user, mailbox string) [][]byte {
	t.Helper()
	c := e.Dial(t)
	defer c.NC.Close()
	c.ExpectTagged("l", "LOGIN "+user+" "+e.Password, "l OK")
	lines := c.ExpectTagged("s", "EXAMINE "+mailbox, "s OK")
	n := 0
	for _, l := range lines {
		fmt.Sscanf(l, "* %d EXISTS", &n)
	}
	var out [][]byte
	for i := 1; i <= n; i++ {
		c.SendLine(fmt.Sprintf("f FETCH %d BODY.PEEK[]", i))
		head := c.ReadLine()
		var size int
		if _, err := fmt.Sscanf(head[strings.LastIndexByte(head, '{'):], "{%d}", &size); err != nil {
			t.Fatalf("FETCH: %q", head)
		}
		body := make([]byte, size)
		c.NC.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c.R, body); err != nil {
			t.Fatal(err)
		}
		c.ReadUntilTagged("f")
		out = append(out, body)
	}
	c.SendLine("z LOGOUT")
	return out
}

// checkCopy checks that a delivered copy is the message sent, byte for
// byte, after trace header fields only: ours (Return-Path, Delivered-To,
// Received) first, then Postfix's Received.
func checkCopy(t *testing.T, what string, got []byte, from, rcpt string, want []byte) {
	t.Helper()
	prefix := "Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\nReceived: from "
	if !bytes.HasPrefix(got, []byte(prefix)) {
		t.Errorf("%s: begins %q, want %q", what, got[:min(len(got), 120)], prefix)
	}
	if !bytes.HasSuffix(got, want) {
		t.Errorf("%s: the message changed:\n got: %q\nwant (at the end): %q", what, got, want)
		return
	}
	for _, line := range strings.Split(string(got[:len(got)-len(want)]), "\r\n") {
		if line != "" && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") &&
			!strings.HasPrefix(line, "Return-Path: ") && !strings.HasPrefix(line, "Delivered-To: ") && !strings.HasPrefix(line, "Received: ") {
			t.Errorf("%s: header field %q added before the message", what, line)
		}
	}
}

// freePort returns a loopback address with a port nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// checkVerify asks Postfix's smtpd about a known and an unknown recipient:
// with reject_unverified_recipient it probes quickimap over LMTP and
// answers from the probe's RCPT reply.
func checkVerify(t *testing.T, p *postfixInstance, addr string) {
	t.Helper()
	var nc net.Conn
	var err error
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if nc, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		t.Fatalf("Postfix smtpd on %s: %v\nlog:\n%s", addr, err, p.log())
	}
	// Postfix polls for the probe's result for a few seconds at most.
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(nc, "127.0.0.1")
	if err != nil {
		nc.Close()
		t.Fatalf("Postfix smtpd: %v\nlog:\n%s", err, p.log())
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("probe-test@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice+Lists@example.org"); err != nil {
		t.Errorf("RCPT of a known recipient through Postfix: %v", err)
	}
	err = c.Rcpt("nobody@example.org")
	if err == nil || !strings.HasPrefix(err.Error(), "550 ") || !strings.Contains(err.Error(), "5.1.1") {
		t.Errorf("RCPT of an unknown recipient through Postfix: %v, want 550 ... 5.1.1", err)
	}
	c.Quit()
}

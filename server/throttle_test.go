package server_test

import (
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// throttledLine is the log line of a throttled login, as the fail2ban
// filter of docs/security.md matches it (<HOST> is the address group).
var throttledLine = regexp.MustCompile(`level=WARN msg="login throttled" remote=\S+ addr=(\S+) `)

// timedCmd runs a command and returns its tagged response and duration.
func timedCmd(c *imaptest.Conn, tag, cmd string) (string, time.Duration) {
	t0 := time.Now()
	l := c.Cmd(tag, cmd)
	return l[len(l)-1], time.Since(t0)
}

// Login throttling: after 3 failures from 127.0.0.2, its attempts are
// delayed (300 ms, then 600 ms, the cap), logged with its address, and
// spaced even on parallel connections, while 127.0.0.1 logs in at once
// during the delay.
func TestLoginThrottle(t *testing.T) {
	const delay, maxDelay = 300 * time.Millisecond, 600 * time.Millisecond
	env, logs := startWithLog(t, func(o *server.Options) {
		o.LimitLoopback = true
		o.LoginThrottleFailures = 3
		o.LoginThrottleDelay = delay
		o.LoginThrottleMaxDelay = maxDelay
		o.MaxAuthFailures = 100
		o.FailedLoginDelay = time.Millisecond
	})
	bad := env.DialFrom(t, "127.0.0.2")
	for i := range 3 {
		l, d := timedCmd(bad, "f", "LOGIN alice wrong")
		if !strings.HasPrefix(l, "f NO [AUTHENTICATIONFAILED]") || d > 200*time.Millisecond {
			t.Errorf("failure %d: %q in %v, want a prompt NO", i, l, d)
		}
	}
	if throttledLine.MatchString(logs.String()) {
		t.Fatalf("throttled before the fourth attempt:\n%s", logs)
	}

	// The fourth attempt waits; meanwhile another address logs in fast.
	t0 := time.Now()
	bad.SendLine("g LOGIN alice wrong")
	if !waitFor(5*time.Second, func() bool { return throttledLine.MatchString(logs.String()) }) {
		t.Fatalf("no throttled line:\n%s", logs)
	}
	t1 := time.Now()
	good := env.DialFrom(t, "127.0.0.1")
	good.ExpectTagged("a", "LOGIN alice secret", "a OK")
	if d := time.Since(t1); d > 200*time.Millisecond {
		t.Errorf("login from another address took %v while 127.0.0.2 was throttled", d)
	}
	if l := bad.ReadUntilTagged("g"); !strings.HasPrefix(l[len(l)-1], "g NO [AUTHENTICATIONFAILED]") {
		t.Errorf("throttled attempt: %q", l)
	}
	if d := time.Since(t0); d < delay {
		t.Errorf("fourth attempt answered after %v, want at least %v", d, delay)
	}
	m := throttledLine.FindStringSubmatch(logs.String())
	if m[1] != "127.0.0.2" {
		t.Errorf("throttled address %q, want 127.0.0.2", m[1])
	}
	if !strings.Contains(logs.String(), "addr=127.0.0.2 method=LOGIN failures=3 delay=300ms") {
		t.Errorf("throttled line without the failures and delay:\n%s", logs)
	}

	// Doubled, then capped; the right password waits too, and succeeds.
	if l, d := timedCmd(bad, "h", "LOGIN alice wrong"); !strings.HasPrefix(l, "h NO") || d < maxDelay {
		t.Errorf("fifth attempt: %q after %v, want NO after at least %v", l, d, maxDelay)
	}
	// Two parallel connections: the second answered a delay after the
	// first, not at the same time.
	other := env.DialFrom(t, "127.0.0.2")
	t0 = time.Now()
	bad.SendLine("i LOGIN alice wrong")
	other.SendLine("j LOGIN alice secret")
	var first, second time.Duration
	for _, c := range []struct {
		c   *imaptest.Conn
		tag string
		d   *time.Duration
	}{{bad, "i", &first}, {other, "j", &second}} {
		l := c.c.ReadUntilTagged(c.tag)
		*c.d = time.Since(t0)
		if want := map[string]string{"i": "i NO", "j": "j OK"}[c.tag]; !strings.HasPrefix(l[len(l)-1], want) {
			t.Errorf("parallel attempt %s: %q", c.tag, l)
		}
	}
	if max(first, second) < 2*maxDelay {
		t.Errorf("parallel attempts answered after %v and %v, want one after at least %v", first, second, 2*maxDelay)
	}
	if n := len(throttledLine.FindAllString(logs.String(), -1)); n != 4 {
		t.Errorf("%d throttled lines for 4 throttled attempts", n)
	}

	// Loopback clients are exempt unless LimitLoopback.
	env2, logs2 := startWithLog(t, func(o *server.Options) {
		o.LoginThrottleFailures = 3
		o.MaxAuthFailures = 100
		o.FailedLoginDelay = time.Millisecond
	})
	c := env2.DialFrom(t, "127.0.0.2")
	for range 6 {
		c.ExpectTagged("f", "LOGIN alice wrong", "f NO")
	}
	if l, d := timedCmd(c, "a", "LOGIN alice secret"); !strings.HasPrefix(l, "a OK") || d > 200*time.Millisecond {
		t.Errorf("exempt loopback login: %q in %v", l, d)
	}
	if throttledLine.MatchString(logs2.String()) {
		t.Errorf("loopback client throttled without LimitLoopback")
	}
}

// The fail2ban filter of docs/security.md finds the address in the
// server's throttled line, in both log formats.
func TestLoginThrottleFail2banFilter(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)failregex = (.*?)\n` + "```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no failregex in docs/security.md")
	}
	var filters []*regexp.Regexp
	for _, l := range strings.Split(string(m[1]), "\n") {
		// fail2ban's <HOST> matches an IPv4 or IPv6 address.
		re := strings.ReplaceAll(strings.TrimSpace(l), "<HOST>", `([0-9a-fA-F:.]+)`)
		filters = append(filters, regexp.MustCompile(re))
	}
	if len(filters) != 2 {
		t.Fatalf("%d failregex lines, want 2 (text and JSON)", len(filters))
	}

	var text, js imaptest.SyncBuffer
	env := imaptest.Start(t, func(o *server.Options) {
		o.Logger = slog.New(teeHandler{slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)})
		o.LimitLoopback = true
		o.LoginThrottleFailures = 1
		o.LoginThrottleDelay = time.Millisecond
		o.MaxAuthFailures = 100
	})
	c := env.DialFrom(t, "127.0.0.2")
	c.ExpectTagged("a", "LOGIN alice wrong", "a NO")
	c.ExpectTagged("b", "LOGIN alice wrong", "b NO")
	for i, log := range []string{text.String(), js.String()} {
		var hosts []string
		for _, l := range strings.Split(log, "\n") {
			for _, f := range filters {
				if m := f.FindStringSubmatch(l); m != nil {
					hosts = append(hosts, m[1])
				}
			}
		}
		if len(hosts) != 1 || hosts[0] != "127.0.0.2" {
			t.Errorf("format %d: the filter found %q in\n%s", i, hosts, log)
		}
	}
}

// An attempt whose turn would come after its connection's time to log in
// is refused at once, with a BYE, and does not push the turns of later
// attempts away.
func TestLoginThrottleRefusal(t *testing.T) {
	const delay = 600 * time.Millisecond
	env, logs := startWithLog(t, func(o *server.Options) {
		o.LimitLoopback = true
		o.PreAuthTimeout = time.Second
		o.LoginThrottleFailures = 1
		o.LoginThrottleDelay = delay
		o.LoginThrottleMaxDelay = delay
		o.MaxAuthFailures = 100
		o.FailedLoginDelay = time.Millisecond
	})
	a := env.DialFrom(t, "127.0.0.2")
	b := env.DialFrom(t, "127.0.0.2")
	a.ExpectTagged("f", "LOGIN alice wrong", "f NO [AUTHENTICATIONFAILED]")
	// a's attempt takes the next turn, 600 ms away; b's would come at
	// 1.2 s, after its second to log in.
	a.SendLine("g LOGIN alice wrong")
	if !waitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), "refused=false") }) {
		t.Fatalf("a's attempt not throttled:\n%s", logs)
	}
	t0 := time.Now()
	b.Expect("h", "LOGIN alice secret", "h NO [UNAVAILABLE] Too many failed logins from your address")
	if l := b.ReadLine(); l != "* BYE Too many failed logins from your address, try again later" {
		t.Errorf("after the refusal: %q", l)
	}
	if d := time.Since(t0); d > 200*time.Millisecond {
		t.Errorf("refusal took %v, want at once", d)
	}
	b.ExpectEOF(time.Second)
	if !throttledLine.MatchString(logs.String()) || !strings.Contains(logs.String(), "refused=true") {
		t.Errorf("no throttled line for the refusal:\n%s", logs)
	}
	if l := a.ReadUntilTagged("g"); !strings.HasPrefix(l[len(l)-1], "g NO [AUTHENTICATIONFAILED]") {
		t.Errorf("throttled attempt: %q", l)
	}
	// The refusal reserved nothing: a new connection's attempt waits one
	// delay after a's, not two.
	c := env.DialFrom(t, "127.0.0.2")
	if l, d := timedCmd(c, "i", "LOGIN alice secret"); !strings.HasPrefix(l, "i OK") || d > delay+300*time.Millisecond {
		t.Errorf("next attempt: %q after %v, want OK after about %v", l, d, delay)
	}
}

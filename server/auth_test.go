package server_test

import (
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// startLogged starts a server whose log goes to the returned buffer, with
// the given failed-login delay and room for many failures per connection.
func startLogged(t *testing.T, delay time.Duration) (*imaptest.Env, *imaptest.SyncBuffer) {
	t.Helper()
	buf := &imaptest.SyncBuffer{}
	env := imaptest.Start(t, func(o *server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(buf, nil))
		o.FailedLoginDelay = delay
		o.MaxAuthFailures = 100
	})
	return env, buf
}

func plainIR(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

// logLines returns the lines of the log that contain every one of subs.
func logLines(log string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// RFC 5530: AUTHENTICATIONFAILED when the credentials are wrong, whatever
// the authorization identity; AUTHORIZATIONFAILED only once they are right
// and the identity asked for is another user's.
func TestAuthenticatePlainAuthzid(t *testing.T) {
	env, log := startLogged(t, time.Millisecond)
	c := env.Dial(t)
	const authnFailed = "NO [AUTHENTICATIONFAILED] Authentication failed"
	c.Expect("a1", "AUTHENTICATE PLAIN "+plainIR("other", "alice", "wrongpw-1"), "a1 "+authnFailed)
	c.Expect("a2", "AUTHENTICATE PLAIN "+plainIR("other", "nobody", "wrongpw-2"), "a2 "+authnFailed)
	c.Expect("a3", "AUTHENTICATE PLAIN "+plainIR("alice", "alice", "wrongpw-3"), "a3 "+authnFailed)
	c.Expect("a4", "AUTHENTICATE PLAIN "+plainIR("other", "alice", "secret"), "a4 NO [AUTHORIZATIONFAILED] Cannot act as another user")
	// Without the initial response, the same.
	c.SendLine("a5 AUTHENTICATE PLAIN")
	if l := c.ReadLine(); l != "+ " {
		t.Fatalf("a5: got %q, want an empty challenge", l)
	}
	c.SendLine(plainIR("other", "alice", "wrongpw-5"))
	if l := c.ReadLine(); l != "a5 "+authnFailed {
		t.Errorf("a5: got %q, want %q", l, "a5 "+authnFailed)
	}
	// Malformed: not three fields.
	c.Expect("a6", "AUTHENTICATE PLAIN "+base64.StdEncoding.EncodeToString([]byte("alice\x00wrongpw-6")),
		"a6 NO [AUTHENTICATIONFAILED] Invalid PLAIN response")
	// The authorization identity may be the user's own, in any case.
	c.ExpectTagged("a7", "AUTHENTICATE PLAIN "+plainIR("ALICE", "alice", "secret"), "a7 OK [CAPABILITY ")

	got := log.String()
	if strings.Contains(got, "wrongpw") || strings.Contains(got, "secret") {
		t.Errorf("a password is in the log:\n%s", got)
	}
	for _, want := range [][]string{
		{`msg="login failed"`, "method=AUTHENTICATE", "user=alice", "failures=1"},
		{`msg="login failed"`, "method=AUTHENTICATE", "user=nobody", "failures=2"},
		{`msg="login failed"`, "method=AUTHENTICATE", "user=alice", "failures=3"},
		// The authzid failure names the user who authenticated.
		{`msg="login failed"`, "method=AUTHENTICATE", "user=alice", "failures=4", "authzid=other"},
		{`msg="login failed"`, "method=AUTHENTICATE", "user=alice", "failures=5"},
		// Which field is the user is unknown: none is logged.
		{`msg="login failed"`, "method=AUTHENTICATE", `user=""`, "failures=6"},
	} {
		if len(logLines(got, want...)) != 1 {
			t.Errorf("no log line with %q in:\n%s", want, got)
		}
	}
}

// A failed LOGIN is answered after FailedLoginDelay and logged with the
// method, the user name and the client's address, never the password.
func TestLoginFailedDelayedAndLogged(t *testing.T) {
	const delay = 200 * time.Millisecond
	env, log := startLogged(t, delay)
	c := env.Dial(t)
	start := time.Now()
	c.Expect("a1", "LOGIN alice wrongpw-secret", "a1 NO [AUTHENTICATIONFAILED] Authentication failed")
	if el := time.Since(start); el < delay {
		t.Errorf("failed LOGIN answered after %v, want at least %v", el, delay)
	}
	start = time.Now()
	c.Expect("a2", "LOGIN nobody wrongpw-2", "a2 NO [AUTHENTICATIONFAILED] Authentication failed")
	if el := time.Since(start); el < delay {
		t.Errorf("failed LOGIN of an unknown user answered after %v, want at least %v", el, delay)
	}
	// A successful one is not delayed by it (bcrypt aside).
	c.ExpectTagged("a3", "LOGIN alice secret", "a3 OK")

	remote := "remote=" + c.NC.LocalAddr().String()
	got := log.String()
	if strings.Contains(got, "wrongpw") {
		t.Errorf("a password is in the log:\n%s", got)
	}
	for _, want := range [][]string{
		{"level=WARN", `msg="login failed"`, "method=LOGIN", "user=alice", remote},
		{"level=WARN", `msg="login failed"`, "method=LOGIN", "user=nobody", remote},
		{"level=INFO", "msg=login", "method=LOGIN", "user=alice", remote},
	} {
		if len(logLines(got, want...)) != 1 {
			t.Errorf("no log line with %q in:\n%s", want, got)
		}
	}
}

package server_test

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// An idle connection waits on a goroutine that has run nothing yet (small
// stack, see conn.loop), woken by changes to its mailbox through its read
// deadline. These tests put a connection in that state and check that it
// still hears everything at once, over plain TCP and over TLS.

// waitHandedOff waits until conns connections wait on a fresh goroutine
// each (blocked in await called by (*conn).run itself, not by loop after
// a command), and no other connection goroutine is left.
func waitHandedOff(t *testing.T, conns int) {
	t.Helper()
	var dump string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var b bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		dump = b.String()
		fresh, busy := 0, 0
		for _, g := range strings.Split(dump, "\n\n") {
			switch {
			case !strings.Contains(g, "server.(*conn)."):
			case strings.Contains(g, "server.(*conn).run(") && strings.Contains(g, "server.(*deadlineConn).await(") &&
				!strings.Contains(g, "server.(*conn).loop("):
				fresh++
			default:
				busy++
			}
		}
		if fresh == conns && busy == 0 {
			return
		}
	}
	t.Fatalf("connections not waiting on a fresh goroutine after 10 s:\n%s", dump)
}

func TestIdleWakesAfterHandoff(t *testing.T) {
	env := imaptest.Start(t, nil)
	idler := env.DialLogin(t)
	idler.ExpectTagged("s", "SELECT INBOX", "s OK")
	// A command after the hand-off runs as usual.
	waitHandedOff(t, 1)
	idler.Expect("n", "NOOP", "n OK NOOP completed")
	idler.SendLine("i1 IDLE")
	if l := idler.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	waitHandedOff(t, 1)

	w := env.DialLogin(t)
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)
		start := time.Now()
		w.ExpectTagged("a", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body), "a OK")
		want := fmt.Sprintf("* %d EXISTS", i)
		if l := idler.ReadLine(); l != want {
			t.Fatalf("IDLE after APPEND %d: %q, want %q", i, l, want)
		}
		if l := idler.ReadLine(); l != fmt.Sprintf("* %d RECENT", i) {
			t.Fatalf("IDLE after APPEND %d: %q", i, l)
		}
		// The keepalive is 29 minutes away: only the wake explains an
		// answer this quick; 5 s leaves room for a loaded machine.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("EXISTS %d came %v after the APPEND", i, d)
		}
		waitHandedOff(t, 2)
	}
	idler.SendLine("DONE")
	if l := idler.ReadLine(); l != "i1 OK IDLE terminated" {
		t.Fatalf("DONE: %q", l)
	}
	idler.Expect("n2", "NOOP", "n2 OK NOOP completed")
}

func TestIdleOverTLS(t *testing.T) {
	srvTLS, cliTLS := imaptest.TLSConfigs(t)
	env := imaptest.Start(t, func(o *server.Options) {
		o.TLSConfig = srvTLS
		o.IdleKeepalive = 300 * time.Millisecond
	})
	c := env.Dial(t)
	if l := c.Cmd("t", "STARTTLS"); l[len(l)-1] != "t OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", l)
	}
	c.StartTLSUpgrade(cliTLS)
	env.Login(t, c)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.SendLine("i1 IDLE")
	if l := c.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	// Keepalives: the wait times out and goes on, on the same TLS
	// connection, across hand-offs.
	for range 2 {
		if l := c.ReadLine(); l != "* OK Still here" {
			t.Fatalf("keepalive: %q", l)
		}
	}
	w := env.DialLogin(t)
	body := "Subject: tls\r\n\r\nx\r\n"
	w.ExpectTagged("a", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body), "a OK")
	for {
		l := c.ReadLine()
		if l == "* OK Still here" {
			continue
		}
		if l != "* 1 EXISTS" {
			t.Fatalf("IDLE over TLS after APPEND: %q", l)
		}
		break
	}
	c.SendLine("DONE")
	for {
		l := c.ReadLine()
		if l == "i1 OK IDLE terminated" {
			break
		}
		if l != "* 1 RECENT" && l != "* OK Still here" {
			t.Fatalf("DONE over TLS: %q", l)
		}
	}
	c.Expect("n", "NOOP", "n OK NOOP completed")
}

// The silence that ends a connection is timed from its last command, not
// from the hand-off of its wait.
func TestAutologoutAcrossHandoff(t *testing.T) {
	const timeout = 600 * time.Millisecond
	env := imaptest.Start(t, func(o *server.Options) { o.AutoLogoutTimeout = timeout })
	c := env.DialLogin(t)
	start := time.Now()
	c.Expect("n", "NOOP", "n OK NOOP completed")
	if l := c.ReadLine(); l != "* BYE Autologout; idle for too long" {
		t.Fatalf("got %q", l)
	}
	d := time.Since(start)
	if d < timeout {
		t.Errorf("autologout after %v, before the %v timeout", d, timeout)
	}
	if d > timeout+5*time.Second {
		t.Errorf("autologout after %v, long after the %v timeout", d, timeout)
	}
	c.ExpectEOF(5 * time.Second)
}

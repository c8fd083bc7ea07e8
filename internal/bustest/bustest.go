// Package bustest runs several quickimap servers on one shared store, each
// with its own end of a bus, and checks that what one node writes reaches
// the sessions of another: the scenario is the same whatever the store
// and the bus (SQLite with the in-process broker, PostgreSQL with
// LISTEN/NOTIFY).
package bustest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/lmtp"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

// User and Password are the account CreateUser makes.
const (
	User     = "alice"
	Password = "secret"
)

// CreateUser creates the test account in st (bcrypt at its lowest cost:
// the tests measure the bus, not bcrypt).
func CreateUser(t testing.TB, st store.Store) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), User, string(h), store.DefaultMailboxes()); err != nil {
		t.Fatalf("create user: %v", err)
	}
}

// Node is one server of the test.
type Node struct {
	Name     string
	Server   *server.Server
	Env      *imaptest.Env // Addr, User and Password, for Dial
	LMTPAddr string
}

// StartNode serves st on loopback IMAP and LMTP ports, with b as its bus.
// Nothing but the bus tells it of the other nodes' writes: the store's
// polling for other processes and the bus's safety poll are off. The
// server is shut down, and then b closed, when the test ends; the store
// is the caller's. mod, when not nil, adjusts the server's options.
func StartNode(t testing.TB, name string, st store.Store, b bus.Bus, mod func(*server.Options)) *Node {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := server.Options{
		Store:                st,
		Logger:               logger,
		NodeID:               name,
		Bus:                  b,
		BusPollInterval:      -1,
		ExternalPollInterval: -1,
		FailedLoginDelay:     10 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	// Closed once the server has shut down (cleanups run last first).
	t.Cleanup(func() { b.Close() })
	env := imaptest.Serve(t, opts, User, Password)
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lsrv := lmtp.New(lmtp.Options{Store: st, Deliverer: env.Server, Logger: logger, Hostname: name})
	done := make(chan struct{})
	go func() { lsrv.Serve(ll); close(done) }()
	// Registered after the IMAP server's: LMTP stops first.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lsrv.Shutdown(ctx)
		<-done
	})
	return &Node{Name: name, Server: env.Server, Env: env, LMTPAddr: ll.Addr().String()}
}

// WaitFor reads untagged lines from c until one starts with prefix, and
// returns it; it fails the test after 50 other lines or when a line takes
// longer than imaptest's read deadline.
func WaitFor(t testing.TB, c *imaptest.Conn, prefix string) string {
	t.Helper()
	var seen []string
	for range 50 {
		l := c.ReadLine()
		if strings.HasPrefix(l, prefix) {
			return l
		}
		seen = append(seen, l)
	}
	t.Fatalf("no %q among %q", prefix, seen)
	return ""
}

// Idle starts IDLE on c.
func Idle(t testing.TB, c *imaptest.Conn, tag string) {
	t.Helper()
	c.SendLine(tag + " IDLE")
	if l := WaitFor(t, c, "+"); l == "" {
		t.Fatal("no IDLE continuation")
	}
}

// Append appends body to mailbox on c and returns the tagged response.
func Append(t testing.TB, c *imaptest.Conn, tag, mailbox, body string) string {
	t.Helper()
	c.Send(fmt.Sprintf("%s APPEND %s {%d+}\r\n%s\r\n", tag, mailbox, len(body), body))
	lines := c.ReadUntilTagged(tag)
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, tag+" OK") {
		t.Fatalf("APPEND: %q", lines)
	}
	return last
}

// Deliver delivers body to the account's INBOX over LMTP at addr.
func Deliver(t testing.TB, addr, body string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	reply := func() string {
		var last string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("LMTP: %v", err)
			}
			last = strings.TrimRight(l, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	expect := func(line, code string) {
		t.Helper()
		if line != "" {
			fmt.Fprintf(nc, "%s\r\n", line)
		}
		if got := reply(); !strings.HasPrefix(got, code) {
			t.Fatalf("LMTP %q: %q, want %s", line, got, code)
		}
	}
	expect("", "220")
	expect("LHLO client.test", "250")
	expect("MAIL FROM:<sender@example.org>", "250")
	expect("RCPT TO:<"+User+"@example.org>", "250")
	expect("DATA", "354")
	fmt.Fprintf(nc, "%s\r\n.\r\n", strings.ReplaceAll(body, "\r\n.", "\r\n.."))
	expect("", "250")
	expect("QUIT", "221")
}

// Msg is a small message.
const Msg = "From: a@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

// RunCrossNode checks that IDLE on node a hears, through the bus, what
// sessions of node b do: APPEND (EXISTS), STORE (FETCH FLAGS), EXPUNGE,
// MOVE out of the mailbox, an LMTP delivery, and the DELETE of the
// selected mailbox (BYE).
func RunCrossNode(t *testing.T, a, b *Node) {
	ca := a.Env.DialLogin(t)
	cb := b.Env.DialLogin(t)
	ca.ExpectTagged("a1", "SELECT INBOX", "a1 OK")
	cb.ExpectTagged("b1", "SELECT INBOX", "b1 OK")
	Idle(t, ca, "a2")

	Append(t, cb, "b2", "INBOX", Msg)
	WaitFor(t, ca, "* 1 EXISTS")

	cb.ExpectTagged("b3", `STORE 1 +FLAGS (\Flagged)`, "b3 OK")
	if l := WaitFor(t, ca, "* 1 FETCH"); !strings.Contains(l, `\Flagged`) {
		t.Errorf("FETCH on a: %q, want \\Flagged", l)
	}

	cb.ExpectTagged("b4", `STORE 1 +FLAGS.SILENT (\Deleted)`, "b4 OK")
	if l := WaitFor(t, ca, "* 1 FETCH"); !strings.Contains(l, `\Deleted`) {
		t.Errorf("FETCH on a: %q, want \\Deleted", l)
	}
	cb.ExpectTagged("b5", "EXPUNGE", "b5 OK")
	WaitFor(t, ca, "* 1 EXPUNGE")

	// An LMTP delivery on b.
	Deliver(t, b.LMTPAddr, Msg)
	WaitFor(t, ca, "* 1 EXISTS")

	// MOVE out of the mailbox, on b: a sees the expunge of the source.
	cb.ExpectTagged("b6", "NOOP", "b6 OK") // b learns of the delivery
	cb.ExpectTagged("b7", "MOVE 1 Archive", "b7 OK")
	WaitFor(t, ca, "* 1 EXPUNGE")

	// COPY into the mailbox a has selected, from another one on b.
	cb.ExpectTagged("b8", "SELECT Archive", "b8 OK")
	cb.ExpectTagged("b9", "COPY 1 INBOX", "b9 OK")
	WaitFor(t, ca, "* 1 EXISTS")

	ca.SendLine("DONE")
	ca.ReadUntilTagged("a2")

	// DELETE of the mailbox a has selected, on b.
	ca.ExpectTagged("a3", "CREATE Work", "a3 OK")
	Append(t, ca, "a4", "Work", Msg)
	ca.ExpectTagged("a5", "SELECT Work", "a5 OK")
	Idle(t, ca, "a6")
	cb.ExpectTagged("b10", "DELETE Work", "b10 OK")
	WaitFor(t, ca, "* BYE Selected mailbox was deleted")
}

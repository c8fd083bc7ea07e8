package lmtp_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/lmtp"
	"github.com/quickimap/quickimap/store"
)

// env is an IMAP server with the account alice (imaptest) and an LMTP
// server delivering through it.
type env struct {
	*imaptest.Env
	LMTPAddr string
	LMTP     *lmtp.Server

	mu      sync.Mutex
	results []lmtp.Result
}

func start(t testing.TB, mod func(*lmtp.Options)) *env {
	t.Helper()
	e := &env{Env: imaptest.Start(t, nil)}
	opts := lmtp.Options{
		Store:     e.Store,
		Deliverer: e.Server,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hostname:  "mx.test",
		OnResult: func(r lmtp.Result) {
			e.mu.Lock()
			e.results = append(e.results, r)
			e.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&opts)
	}
	e.LMTP = lmtp.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.LMTPAddr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.LMTP.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.LMTP.Shutdown(ctx); err != nil {
			t.Errorf("lmtp shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("lmtp serve: %v", err)
		}
	})
	return e
}

func (e *env) Results() []lmtp.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]lmtp.Result(nil), e.results...)
}

// lconn is a raw LMTP client.
type lconn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialLMTP(t testing.TB, network, addr string) *lconn {
	t.Helper()
	nc, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &lconn{t: t, nc: nc, r: bufio.NewReader(nc)}
	if g := c.reply(); !strings.HasPrefix(g[0], "220 ") || !strings.Contains(g[0], "LMTP") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *lconn) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// reply reads one (possibly multi-line) reply.
func (c *lconn) reply() []string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (have %q, partial %q)", err, lines, l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return lines
		}
	}
}

// cmd sends a command and returns the last line of its reply.
func (c *lconn) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	r := c.reply()
	return r[len(r)-1]
}

func (c *lconn) expect(line, prefix string) {
	c.t.Helper()
	if got := c.cmd(line); !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%s: got %q, want %q...", line, got, prefix)
	}
}

// dotStuff turns a message into DATA's form, terminator included.
func dotStuff(msg string) string {
	var b strings.Builder
	for l := range strings.SplitAfterSeq(msg, "\r\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	if !strings.HasSuffix(msg, "\r\n") {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

// data sends DATA and the message, and returns the n replies that follow.
func (c *lconn) data(msg string, n int) []string {
	c.t.Helper()
	if got := c.cmd("DATA"); !strings.HasPrefix(got, "354 ") {
		c.t.Fatalf("DATA: %q", got)
	}
	c.send(dotStuff(msg))
	var out []string
	for range n {
		r := c.reply()
		out = append(out, r[len(r)-1])
	}
	return out
}

const msg8bit = "From: Zoë <zoe@example.net>\r\nTo: alice@example.org\r\nSubject: Grüße\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
	"Bonjour, ça va ? \xff\xfe raw 8-bit bytes\r\n.leading dot\r\n\r\nend\r\n"

// stored returns the bodies of the messages of a mailbox of user.
func stored(t *testing.T, st store.Store, user, mailbox string) [][]byte {
	t.Helper()
	ctx := context.Background()
	u, err := st.UserByName(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.MailboxByName(ctx, u.ID, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := st.MessageIndex(ctx, u.ID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range idx {
		b, err := st.MessageBody(ctx, u.ID, mb.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// splitTrace checks the trace header fields before the original message
// and returns them and the rest.
func splitTrace(t *testing.T, body []byte, from, to string) (trace string, rest []byte) {
	t.Helper()
	i := bytes.Index(body, []byte("\r\nFrom: "))
	if i < 0 {
		t.Fatalf("no From: in %q", body)
	}
	trace = string(body[:i+2])
	want := "Return-Path: <" + from + ">\r\nDelivered-To: " + to + "\r\nReceived: from "
	if !strings.HasPrefix(trace, want) {
		t.Errorf("trace header fields %q, want prefix %q", trace, want)
	}
	if !strings.Contains(trace, "by mx.test (quickimap) with LMTP\r\n\tfor <"+to+">; ") {
		t.Errorf("Received field %q", trace)
	}
	return trace, body[i+2:]
}

func TestDeliverMixedRecipients(t *testing.T) {
	e := start(t, func(o *lmtp.Options) {
		o.Domains = []string{"Example.org", " example.net"}
		o.RecipientDelimiter = "+"
	})
	ctx := context.Background()
	alice, _ := e.Store.UserByName(ctx, "alice")
	if _, err := e.Store.CreateMailbox(ctx, alice.ID, "Lists", ""); err != nil {
		t.Fatal(err)
	}
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	c.expect("MAIL FROM:<sender@example.net> BODY=8BITMIME", "250 ")
	c.expect("RCPT TO:<Alice@EXAMPLE.org>", "250 ")
	c.expect("RCPT TO:<bob@example.org>", "550 5.1.1 ")
	c.expect("RCPT TO:<alice@elsewhere.test>", "550 5.1.2 ")
	c.expect("RCPT TO:<alice+Lists@example.org>", "250 ")
	c.expect("RCPT TO:<alice+lists@example.net>", "250 ") // same mailbox, case-insensitively
	c.expect("RCPT TO:<alice+NoSuchBox@example.org>", "250 ")
	got := c.data(msg8bit, 4)
	want := []string{
		"250 2.0.0 <Alice@EXAMPLE.org> Delivered to INBOX as UID 1",
		"250 2.0.0 <alice+Lists@example.org> Delivered to Lists as UID 1",
		"250 2.0.0 <alice+lists@example.net> Delivered to Lists as UID 1",
		// One copy per mailbox: the first recipient's reply.
		"250 2.0.0 <alice+NoSuchBox@example.org> Delivered to INBOX as UID 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c.expect("QUIT", "221 ")

	inbox := stored(t, e.Store, "alice", "INBOX")
	lists := stored(t, e.Store, "alice", "Lists")
	if len(inbox) != 1 || len(lists) != 1 {
		t.Fatalf("INBOX has %d messages, Lists %d; want 1 each", len(inbox), len(lists))
	}
	for i, tc := range []struct {
		body []byte
		to   string
	}{{inbox[0], "Alice@EXAMPLE.org"}, {lists[0], "alice+Lists@example.org"}} {
		_, rest := splitTrace(t, tc.body, "sender@example.net", tc.to)
		if string(rest) != msg8bit {
			t.Errorf("message %d: stored %q, want %q", i, rest, msg8bit)
		}
	}

	// One result per recipient answered, refusals at RCPT included.
	res := e.Results()
	outcomes := map[lmtp.Outcome]int{}
	for _, r := range res {
		outcomes[r.Outcome]++
	}
	if len(res) != 6 || outcomes[lmtp.Delivered] != 4 || outcomes[lmtp.UnknownUser] != 1 || outcomes[lmtp.UnknownDomain] != 1 {
		t.Errorf("results %+v", res)
	}
	for _, r := range res {
		if r.Outcome == lmtp.Delivered && (r.User != "alice" || r.UID == 0 || r.Size <= len(msg8bit) || r.Code != 250) {
			t.Errorf("delivered result %+v", r)
		}
	}
}

// TestIMAPReadBack fetches a delivered 8-bit message over IMAP.
func TestIMAPReadBack(t *testing.T) {
	e := start(t, nil)
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	c.expect("MAIL FROM:<>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	if r := c.data(msg8bit, 1); !strings.HasPrefix(r[0], "250 2.0.0 ") {
		t.Fatalf("DATA: %q", r)
	}
	body := stored(t, e.Store, "alice", "INBOX")[0]
	if !bytes.HasPrefix(body, []byte("Return-Path: <>\r\nDelivered-To: alice@example.org\r\n")) {
		t.Errorf("trace of a null sender: %q", body[:60])
	}
	ic := e.DialLogin(t)
	ic.ExpectTagged("s", "SELECT INBOX", "s OK")
	ic.SendLine("f FETCH 1 BODY.PEEK[]")
	head := ic.ReadLine()
	wantHead := fmt.Sprintf("* 1 FETCH (BODY[] {%d}", len(body))
	if head != wantHead {
		t.Fatalf("FETCH: %q, want %q", head, wantHead)
	}
	lit := make([]byte, len(body))
	if _, err := io.ReadFull(ic.R, lit); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lit, body) {
		t.Errorf("FETCH returned %q, stored %q", lit, body)
	}
	if rest := ic.ReadUntilTagged("f"); rest[len(rest)-1] != "f OK FETCH completed" && !strings.HasPrefix(rest[len(rest)-1], "f OK") {
		t.Errorf("FETCH end: %q", rest)
	}
}

// TestIdleSeesDelivery checks that a delivery reaches an IDLE client at
// once, as an APPEND from another session does.
func TestIdleSeesDelivery(t *testing.T) {
	e := start(t, nil)
	idler := e.DialLogin(t)
	idler.ExpectTagged("s", "SELECT INBOX", "s OK")
	idler.SendLine("i IDLE")
	if l := idler.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	for i := 1; i <= 2; i++ {
		c.expect("MAIL FROM:<s@example.net>", "250 ")
		c.expect("RCPT TO:<alice@example.org>", "250 ")
		if r := c.data("Subject: hi\r\n\r\nbody\r\n", 1); !strings.HasPrefix(r[0], "250 ") {
			t.Fatalf("DATA: %q", r)
		}
		// ReadLine fails the test after 10 s; the server's IDLE
		// keepalive is 29 minutes, so only the delivery can answer.
		want := fmt.Sprintf("* %d EXISTS", i)
		l := idler.ReadLine()
		for strings.HasPrefix(l, "* ") && strings.HasSuffix(l, " RECENT") {
			l = idler.ReadLine()
		}
		if l != want {
			t.Fatalf("IDLE after delivery %d: %q, want %q", i, l, want)
		}
		if l := idler.ReadLine(); l != fmt.Sprintf("* %d RECENT", i) {
			t.Fatalf("IDLE after delivery %d: %q, want RECENT", i, l)
		}
	}
	idler.SendLine("DONE")
	if l := idler.ReadLine(); !strings.HasPrefix(l, "i OK") {
		t.Fatalf("DONE: %q", l)
	}
}

func TestCapabilitiesNoAuth(t *testing.T) {
	e := start(t, func(o *lmtp.Options) { o.MaxMessageBytes = 12345 })
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("EHLO client.test", "500 ")
	c.send("LHLO client.test\r\n")
	caps := c.reply()
	have := map[string]bool{}
	for _, l := range caps[1:] {
		have[l[4:]] = true
	}
	for _, w := range []string{"8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING", "SMTPUTF8", "SIZE 12345"} {
		if !have[w] {
			t.Errorf("LHLO lacks %s: %q", w, caps)
		}
	}
	for _, l := range caps {
		if strings.Contains(l, "AUTH") || strings.Contains(l, "BINARYMIME") || strings.Contains(l, "STARTTLS") {
			t.Errorf("LHLO advertises %q", l)
		}
	}
	c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "502 5.7.0 ")
	c.expect("MAIL FROM:<a@b> BODY=BINARYMIME", "504 ")
	c.expect("MAIL FROM:<zoë@example.net> SMTPUTF8 BODY=8BITMIME", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	if r := c.data("Subject: Grüße\r\n\r\nx\r\n", 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("SMTPUTF8 message: %q", r)
	}
	if b := stored(t, e.Store, "alice", "INBOX")[0]; !bytes.HasPrefix(b, []byte("Return-Path: <zoë@example.net>\r\n")) {
		t.Errorf("UTF-8 sender: %q", b)
	}
}

func TestTooLarge(t *testing.T) {
	const max = 1000
	e := start(t, func(o *lmtp.Options) { o.MaxMessageBytes = max })
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	c.expect(fmt.Sprintf("MAIL FROM:<s@x> SIZE=%d", max+1), "552 5.3.4 ")

	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	c.expect("RCPT TO:<ALICE@example.org>", "250 ")
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 78) + "\r\n"
	big = strings.Repeat(big, 20)
	got := c.data(big, 2)
	for _, r := range got {
		if !strings.HasPrefix(r, "552 5.3.4 ") {
			t.Errorf("too large: %q", got)
		}
	}
	// The session goes on: a message under the limit is delivered.
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	small := strings.Repeat("y", max-10) + "\r\n"
	if r := c.data(small, 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("small message: %q", r)
	}
	if n := len(stored(t, e.Store, "alice", "INBOX")); n != 1 {
		t.Errorf("INBOX has %d messages, want 1", n)
	}
	var large int
	for _, r := range e.Results() {
		if r.Outcome == lmtp.TooLarge {
			large++
		}
	}
	if large != 2 {
		t.Errorf("%d too_large results, want 2", large)
	}
}

func TestNULRefused(t *testing.T) {
	e := start(t, nil)
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	if r := c.data("Subject: nul\r\n\r\na\x00b\r\n", 1); !strings.HasPrefix(r[0], "554 5.6.1 ") {
		t.Fatalf("NUL: %q", r)
	}
	if n := len(stored(t, e.Store, "alice", "INBOX")); n != 0 {
		t.Errorf("INBOX has %d messages", n)
	}
}

// failing is a Deliverer whose store is full.
type failing struct{ err error }

func (f failing) Deliver(context.Context, int64, int64, []byte, time.Time) (uint32, uint32, error) {
	return 0, 0, f.err
}

func TestStoreFailures(t *testing.T) {
	for _, tc := range []struct {
		err     error
		reply   string
		outcome lmtp.Outcome
	}{
		{fmt.Errorf("%w: no room", store.ErrFull), "452 4.3.1 ", lmtp.StorageFull},
		{&os.PathError{Op: "write", Path: "/data/x", Err: syscall.ENOSPC}, "452 4.3.1 ", lmtp.StorageFull},
		{fmt.Errorf("append: %w", errCode(13)), "452 4.3.1 ", lmtp.StorageFull},
		{fmt.Errorf("append: %w", store.ErrInvalid), "452 4.2.2 ", lmtp.MailboxFull},
		{fmt.Errorf("disk I/O error"), "451 4.3.0 ", lmtp.TemporaryError},
	} {
		var e *env
		e = start(t, func(o *lmtp.Options) { o.Deliverer = failing{tc.err} })
		c := dialLMTP(t, "tcp", e.LMTPAddr)
		c.expect("LHLO client.test", "250 ")
		c.expect("MAIL FROM:<s@x>", "250 ")
		c.expect("RCPT TO:<alice@example.org>", "250 ")
		if r := c.data("Subject: x\r\n\r\nx\r\n", 1); !strings.HasPrefix(r[0], tc.reply) {
			t.Errorf("%v: %q, want %q", tc.err, r, tc.reply)
		}
		res := e.Results()
		if len(res) != 1 || res[0].Outcome != tc.outcome || res[0].Err == nil {
			t.Errorf("%v: results %+v", tc.err, res)
		}
	}
}

// errCode is a driver error with SQLite's result code.
type errCode int

func (e errCode) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e errCode) Code() int     { return int(e) }

func TestUnixSocket(t *testing.T) {
	e := start(t, nil)
	path := filepath.Join(t.TempDir(), "lmtp.sock")
	// A stale socket file is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := lmtp.Listen(context.Background(), "unix:"+path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want srw-rw----", fi.Mode())
	}
	// A live one is not.
	if _, err := lmtp.Listen(context.Background(), "unix:"+path, 0o660); err == nil {
		t.Error("Listen over a live socket succeeded")
	}
	srv := lmtp.New(lmtp.Options{Store: e.Store, Deliverer: e.Server, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	c := dialLMTP(t, "unix", path)
	c.expect("LHLO client.test", "250 ")
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@anywhere.test>", "250 ") // no Domains: any
	if r := c.data("Subject: unix\r\n\r\nx\r\n", 1); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("DATA: %q", r)
	}
	body := stored(t, e.Store, "alice", "INBOX")[0]
	if !bytes.Contains(body, []byte("Received: from client.test\r\n\tby ")) {
		t.Errorf("Received of a Unix socket peer: %q", body)
	}
	// Shutdown ends the idle connection with 421 and returns.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if r := c.reply(); !strings.HasPrefix(r[0], "421 ") {
		t.Errorf("after Shutdown: %q", r)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestShutdownFinishesDelivery: a message being sent when Shutdown begins
// is still delivered and answered.
func TestShutdownFinishesDelivery(t *testing.T) {
	e := start(t, nil)
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: late\r\n\r\nfirst half\r\n")
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- e.LMTP.Shutdown(ctx)
	}()
	// Wait until the listener is closed, so that Shutdown is under way.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.Dial("tcp", e.LMTPAddr)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open 5 s after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.send("second half\r\n.\r\n")
	if r := c.reply(); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("delivery during shutdown: %q", r)
	}
	if r := c.reply(); !strings.HasPrefix(r[0], "421 ") {
		t.Errorf("after the delivery: %q", r)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n := len(stored(t, e.Store, "alice", "INBOX")); n != 1 {
		t.Errorf("INBOX has %d messages, want 1", n)
	}
}

// TestShutdownTimeout: a client that stops in the middle of its message is
// cut off when Shutdown's context ends.
func TestShutdownTimeout(t *testing.T) {
	e := start(t, nil)
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: never ends\r\n\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.LMTP.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadString('\n'); err == nil || os.IsTimeout(err) {
		t.Errorf("connection still open after Shutdown's deadline: %v", err)
	}
}

// TestBDAT: CHUNKING (RFC 3030), which go-smtp always advertises, carries
// the message in counted chunks, byte for byte: no dot-stuffing, lines of
// any length.
func TestBDAT(t *testing.T) {
	e := start(t, func(o *lmtp.Options) { o.MaxMessageBytes = 8000 })
	c := dialLMTP(t, "tcp", e.LMTPAddr)
	c.expect("LHLO client.test", "250 ")
	msg := "Subject: chunks\r\n\r\n.not stuffed\r\n" + strings.Repeat("é", 2000) + "\r\nend\r\n"
	c.expect("MAIL FROM:<s@x> BODY=8BITMIME", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	c.expect("RCPT TO:<nobody@example.org>", "550 ")
	half := len(msg) / 2
	c.send(fmt.Sprintf("BDAT %d\r\n%s", half, msg[:half]))
	if r := c.reply(); !strings.HasPrefix(r[0], "250 ") {
		t.Fatalf("first chunk: %q", r)
	}
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-half, msg[half:]))
	if r := c.reply(); !strings.HasPrefix(r[0], "250 2.0.0 <alice@example.org> Delivered") {
		t.Fatalf("last chunk: %q", r)
	}
	_, rest := splitTraceAny(t, stored(t, e.Store, "alice", "INBOX")[0])
	if string(rest) != msg {
		t.Errorf("stored %q, want %q", rest, msg)
	}
	// Over the limit: 552 for the chunk that crosses it.
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", 9000, strings.Repeat("x", 9000)))
	if r := c.reply(); !strings.HasPrefix(r[0], "552 5.3.4 ") {
		t.Fatalf("chunk over the limit: %q", r)
	}
	c.expect("NOOP", "250 ")
}

// splitTraceAny cuts the three trace fields the server adds.
func splitTraceAny(t *testing.T, body []byte) (trace string, rest []byte) {
	t.Helper()
	i := bytes.Index(body, []byte("\r\n\tfor <"))
	if i < 0 || !bytes.HasPrefix(body, []byte("Return-Path: ")) {
		t.Fatalf("no trace fields in %q", body)
	}
	j := i + 2 + bytes.Index(body[i+2:], []byte("\r\n")) + 2
	return string(body[:j]), body[j:]
}

// TestMaxConnections: a connection over the limit gets 421 4.3.2; once
// one closes, a new one is served.
func TestMaxConnections(t *testing.T) {
	e := start(t, func(o *lmtp.Options) { o.MaxConnections = 2 })
	a := dialLMTP(t, "tcp", e.LMTPAddr)
	b := dialLMTP(t, "tcp", e.LMTPAddr)
	nc, err := net.Dial("tcp", e.LMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := bufio.NewReader(nc).ReadString('\n'); err != nil || !strings.HasPrefix(l, "421 4.3.2 ") {
		t.Fatalf("third connection: %q, %v", l, err)
	}
	b.expect("QUIT", "221 ")
	// The server forgets b when its goroutine closes it: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.Dial("tcp", e.LMTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, _ := bufio.NewReader(nc).ReadString('\n')
		nc.Close()
		if strings.HasPrefix(l, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused 10 s after a connection closed: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.expect("NOOP", "250 ")
}

// Package imaptest starts a real quickimap server on a loopback port for
// tests and drives it with raw protocol lines, so that tests assert the
// exact bytes a client sees.
package imaptest

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// Env is a running server with one account.
type Env struct {
	Addr     string
	Store    store.Store
	Server   *server.Server
	Dir      string
	User     string
	Password string

	panics *panicRecord
}

// panicRecord keeps the panics the server's connections recovered from.
type panicRecord struct {
	mu     sync.Mutex
	panics []string
}

func (p *panicRecord) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.panics = append(p.panics, s)
}

func (p *panicRecord) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.panics
	p.panics = nil
	return r
}

// TakePanics returns, and forgets, the panics (value and stack) that the
// server's connections recovered from so far. Whatever is not taken
// fails the test when it ends: a connection that panics costs that
// connection only, which a test would not notice otherwise.
func (e *Env) TakePanics() []string { return e.panics.take() }

// Start opens a fresh SQLite store in a temporary directory, creates the
// account "alice" with password "secret", and serves on 127.0.0.1. mod,
// if not nil, adjusts the server options. Everything stops at the end of
// the test.
func Start(t testing.TB, mod func(*server.Options)) *Env {
	t.Helper()
	return StartStore(t, sqlite.Options{}, mod)
}

// Conn is a raw client connection.
type Conn struct {
	t        testing.TB
	NC       net.Conn
	R        *bufio.Reader
	Greeting string
}

// Dial connects and reads the greeting.
func (e *Env) Dial(t testing.TB) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &Conn{t: t, NC: nc, R: bufio.NewReader(nc)}
	c.Greeting = c.ReadLine()
	return c
}

// DialLogin connects and logs in as the test account.
func (e *Env) DialLogin(t testing.TB) *Conn {
	t.Helper()
	c := e.Dial(t)
	lines := c.Cmd("L0", "LOGIN "+e.User+" "+e.Password)
	if !strings.HasPrefix(lines[len(lines)-1], "L0 OK") {
		t.Fatalf("login failed: %q", lines)
	}
	return c
}

// Send writes raw bytes.
func (c *Conn) Send(s string) {
	c.t.Helper()
	c.NC.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.NC, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// SendLine writes s followed by CRLF.
func (c *Conn) SendLine(s string) { c.t.Helper(); c.Send(s + "\r\n") }

// ReadLine reads one line without its CRLF, failing the test after 10 s.
func (c *Conn) ReadLine() string {
	c.t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.R.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (partial %q)", err, line)
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

// ReadUntilTagged reads lines up to and including the one starting with
// "tag ".
func (c *Conn) ReadUntilTagged(tag string) []string {
	c.t.Helper()
	var lines []string
	for {
		l := c.ReadLine()
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

// Cmd sends "tag cmd" and returns every line up to the tagged response.
func (c *Conn) Cmd(tag, cmd string) []string {
	c.t.Helper()
	c.SendLine(tag + " " + cmd)
	return c.ReadUntilTagged(tag)
}

// Expect sends "tag cmd" and fails the test unless the lines received are
// exactly want.
func (c *Conn) Expect(tag, cmd string, want ...string) {
	c.t.Helper()
	got := c.Cmd(tag, cmd)
	if !equal(got, want) {
		c.t.Errorf("%s %s:\n got: %s\nwant: %s", tag, cmd, fmtLines(got), fmtLines(want))
	}
}

// ExpectTagged sends "tag cmd" and checks that the tagged response starts
// with prefix (e.g. "a OK", "a NO [NONEXISTENT]"); it returns all lines.
func (c *Conn) ExpectTagged(tag, cmd, prefix string) []string {
	c.t.Helper()
	got := c.Cmd(tag, cmd)
	if last := got[len(got)-1]; !strings.HasPrefix(last, prefix) {
		c.t.Errorf("%s %s: tagged %q, want prefix %q (all: %s)", tag, cmd, last, prefix, fmtLines(got))
	}
	return got
}

// ExpectEOF checks that the server closes the connection within d.
func (c *Conn) ExpectEOF(d time.Duration) {
	c.t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(d))
	for {
		l, err := c.R.ReadString('\n')
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("connection still open after %v", d)
			}
			return
		}
		_ = l
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fmtLines(l []string) string {
	var b strings.Builder
	for _, s := range l {
		fmt.Fprintf(&b, "\n\t%q", s)
	}
	return b.String()
}

// StartStore is Start with the SQLite store opened with so (a tiny
// TombstoneMaxCount, a fake clock...).
func StartStore(t testing.TB, so sqlite.Options, mod func(*server.Options)) *Env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), dir, so)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	env := &Env{User: "alice", Password: "secret"}
	// bcrypt at its lowest cost: the server checks any cost the same way,
	// and at the production cost (auth.Cost) every LOGIN of every test
	// spends tens of milliseconds in bcrypt — seconds under the race
	// detector — measuring nothing of interest. The production cost is
	// tested in package auth and by the end-to-end tests of the binary.
	h, err := bcrypt.GenerateFromPassword([]byte(env.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), env.User, string(h), store.DefaultMailboxes()); err != nil {
		t.Fatalf("create user: %v", err)
	}
	opts := server.Options{
		Store:            st,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		FailedLoginDelay: 10 * time.Millisecond,
		Sessions:         session.New(st, session.Options{}),
	}
	if mod != nil {
		mod(&opts)
	}
	// Closed after the server has shut down (cleanups run last first).
	t.Cleanup(func() { st.Close() })
	served := Serve(t, opts, env.User, env.Password)
	// The store the test opened, even when mod wrapped it for the server.
	served.Store, served.Dir = st, dir
	return served
}

// Serve runs a server made from opts (on opts.Store, which it does not
// close; its Logger discards by default) on a free loopback port until
// the test ends, and fails the test if any of its connections panicked
// (the server recovers). user and password name an account of the store.
func Serve(t testing.TB, opts server.Options, user, password string) *Env {
	t.Helper()
	panics := &panicRecord{}
	// Registered before the cleanup that shuts the server down, so it
	// runs after it, when every connection has ended.
	t.Cleanup(func() {
		for _, p := range panics.take() {
			t.Errorf("a server connection panicked (the server recovered): %s", p)
		}
	})
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	inner := opts.OnPanic
	opts.OnPanic = func(v any) {
		// Called in the deferred recover: the stack still holds the
		// frames that panicked.
		panics.add(fmt.Sprintf("%v\n%s", v, debug.Stack()))
		if inner != nil {
			inner(v)
		}
	}
	srv := server.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &Env{Addr: l.Addr().String(), Store: opts.Store, Server: srv, User: user, Password: password, panics: panics}
}

// DialFrom connects from the local address ip (another loopback address
// such as 127.0.0.2, for per-address limits) and reads the greeting.
func (e *Env) DialFrom(t testing.TB, ip string) *Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &Conn{t: t, NC: nc, R: bufio.NewReader(nc)}
	c.Greeting = c.ReadLine()
	return c
}

// Login logs c in as the test account.
func (e *Env) Login(t testing.TB, c *Conn) {
	t.Helper()
	lines := c.Cmd("L0", "LOGIN "+e.User+" "+e.Password)
	if !strings.HasPrefix(lines[len(lines)-1], "L0 OK") {
		t.Fatalf("login failed: %q", lines)
	}
}

// Compress sends "tag COMPRESS DEFLATE" and, on its OK, compresses both
// ways from then on (RFC 4978): each Send is one sync-flushed burst, and
// lines are read through Go's inflater.
func (c *Conn) Compress(tag string) {
	c.t.Helper()
	c.SendLine(tag + " COMPRESS DEFLATE")
	if l := c.ReadLine(); !strings.HasPrefix(l, tag+" OK") {
		c.t.Fatalf("COMPRESS: %q", l)
	}
	// klauspost's stateless compressor keeps no state between writes,
	// so that many test clients cost little memory of their own.
	fc := &flateConn{Conn: c.NC}
	fc.w = kflate.NewStatelessWriter(&fc.buf)
	c.NC = fc
	c.R = bufio.NewReader(flate.NewReader(c.R))
}

// flateConn compresses what is written: each Write is compressed whole,
// flushed and sent in one write to the socket (the compressor writes its
// output in pieces, and a server that answers LOGOUT from the first piece
// closes the socket under the next).
type flateConn struct {
	net.Conn
	w   io.Writer // compresses into buf
	buf bytes.Buffer
}

func (f *flateConn) Write(p []byte) (int, error) {
	f.buf.Reset()
	if _, err := f.w.Write(p); err != nil {
		return 0, err
	}
	if _, err := f.Conn.Write(f.buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RawConn returns the socket, under compression if it is on.
func (c *Conn) RawConn() net.Conn {
	if f, ok := c.NC.(*flateConn); ok {
		return f.Conn
	}
	return c.NC
}

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// teeHandler sends every record to both handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	h.a.Handle(ctx, r.Clone())
	return h.b.Handle(ctx, r)
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(n string) slog.Handler {
	return teeHandler{h.a.WithGroup(n), h.b.WithGroup(n)}
}

// startWithLog is imaptest.Start with the server's log, at the debug
// level, kept in the returned buffer.
func startWithLog(t *testing.T, mod func(*server.Options)) (*imaptest.Env, *imaptest.SyncBuffer) {
	t.Helper()
	buf := &imaptest.SyncBuffer{}
	env := imaptest.Start(t, func(o *server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if mod != nil {
			mod(o)
		}
	})
	return env, buf
}

// trickler is a client that sends its bytes one at a time, every, until
// the server closes the connection; it records what the server said and
// when the connection closed.
type trickler struct {
	nc     net.Conn
	start  time.Time
	closed chan struct{}
	lines  []string      // the server's lines, valid once closed
	after  time.Duration // from start to the close, valid once closed
}

// startTrickle connects (from the default loopback address), reads the
// greeting and, when prefix is not "", sends it at full speed and waits
// for a line starting with wait (if not ""); then it trickles payload,
// one byte every every, repeating it as long as the connection is open.
func startTrickle(t *testing.T, addr, prefix, wait, payload string, every time.Duration) *trickler {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	g, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q, %v", g, err)
	}
	if prefix != "" {
		if _, err := nc.Write([]byte(prefix)); err != nil {
			t.Fatal(err)
		}
		for wait != "" {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", wait, err)
			}
			if strings.HasPrefix(l, wait) {
				break
			}
		}
	}
	tr := &trickler{nc: nc, start: time.Now(), closed: make(chan struct{})}
	go func() {
		defer close(tr.closed)
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				tr.after = time.Since(tr.start)
				return
			}
			tr.lines = append(tr.lines, strings.TrimRight(l, "\r\n"))
		}
	}()
	go func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-tr.closed:
				return
			case <-tk.C:
			}
			if _, err := nc.Write([]byte{payload[i%len(payload)]}); err != nil {
				return
			}
		}
	}()
	return tr
}

// expectClosed waits for every trickler to be closed by the server within
// bound of its start, with the BYE bye as its last line.
func expectClosed(t *testing.T, ts []*trickler, bye string, bound time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var worst time.Duration
	for i, tr := range ts {
		select {
		case <-tr.closed:
		case <-time.After(bound + 5*time.Second):
			t.Fatalf("trickler %d still open %v after its start", i, time.Since(tr.start))
		}
		mu.Lock()
		worst = max(worst, tr.after)
		mu.Unlock()
		if n := len(tr.lines); n == 0 || tr.lines[n-1] != bye {
			t.Errorf("trickler %d: the server said %q, want %q last", i, tr.lines, bye)
		}
		if tr.after > bound {
			t.Errorf("trickler %d closed %v after its start, want at most %v", i, tr.after, bound)
		}
	}
	t.Logf("%d trickling connections closed, the last %v after its start", len(ts), worst)
}

// served times a legitimate client: connect, LOGIN, SELECT, LOGOUT.
func served(t *testing.T, env *imaptest.Env) time.Duration {
	t.Helper()
	t0 := time.Now()
	c := env.DialLogin(t)
	c.ExpectTagged("s1", "SELECT INBOX", "s1 OK")
	c.ExpectTagged("s2", "LOGOUT", "s2 OK")
	return time.Since(t0)
}

// A slowloris before login: 300 connections (30 with -short) that trickle
// a byte every 100 ms, so that they are never silent for long, into a
// command line (or a LOGIN's literal) are closed at PreAuthTimeout after
// they were accepted, however they spread their bytes; a legitimate
// client meanwhile is served at once.
func TestSlowlorisBeforeLogin(t *testing.T) {
	const preauth = time.Second
	env, logs := startWithLog(t, func(o *server.Options) {
		o.PreAuthTimeout = preauth
		o.MinRate = -1 // only the total time to log in is under test
	})
	// As many as took a server's slots for minutes before deadlines
	// measured total time.
	n := 300
	if testing.Short() {
		n = 30
	}
	if err := raiseFDLimit(uint64(2*n + 200)); err != nil {
		t.Skipf("cannot open %d sockets: %v", 2*n, err)
	}
	var ts []*trickler
	for i := range n {
		switch i % 3 {
		case 0: // a command line that never ends
			ts = append(ts, startTrickle(t, env.Addr, "", "", "a NOOP xxxxxxxxxxxxxxxxxxxxxx", 100*time.Millisecond))
		case 1: // complete commands, one byte at a time
			ts = append(ts, startTrickle(t, env.Addr, "", "", "n NOOP\r\n", 100*time.Millisecond))
		case 2: // inside a literal of LOGIN
			ts = append(ts, startTrickle(t, env.Addr, "l LOGIN {1000}\r\n", "+", "x", 100*time.Millisecond))
		}
	}
	// Legitimate clients, while the trickle goes on.
	for i := range 3 {
		d := served(t, env)
		if d > time.Second {
			t.Errorf("legitimate client %d served in %v during the trickle", i, d)
		}
		t.Logf("legitimate client %d: connect, LOGIN, SELECT, LOGOUT in %v", i, d)
	}
	expectClosed(t, ts, "* BYE Not logged in in time; closing", preauth+500*time.Millisecond)
	for _, tr := range ts {
		if tr.after < preauth-100*time.Millisecond {
			t.Errorf("trickler closed after %v, before the preauth timeout %v", tr.after, preauth)
		}
	}
	if n := strings.Count(logs.String(), `msg="slow client disconnected" remote=127.0.0.1:`); n != len(ts) {
		t.Errorf("%d log lines for %d closed connections:\n%s", n, len(ts), logs)
	}
	if !strings.Contains(logs.String(), "reason=preauth-timeout addr=127.0.0.1") {
		t.Errorf("no preauth-timeout reason logged:\n%s", logs)
	}

	// Once logged in, the deadline is gone: the connection stays usable
	// after it.
	c := env.DialLogin(t)
	deadline := time.Now().Add(preauth + 200*time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		c.ExpectTagged(fmt.Sprint("k", i), "NOOP", fmt.Sprint("k", i, " OK"))
	}
}

// A slowloris inside a literal after login: 20 APPENDs of 10 MB whose
// literal comes a byte every 20 ms (50 bytes/s, under the configured
// minimum of 1000) are closed once they fall MinRateWindow behind, while an APPEND at full
// speed is served at once and one at a slow but steady rate (5,000
// bytes/s, with pauses shorter than the window) completes.
func TestSlowlorisInLiteral(t *testing.T) {
	const window = 500 * time.Millisecond
	env, logs := startWithLog(t, func(o *server.Options) {
		o.MinRate = 1000
		o.MinRateWindow = window
	})
	var ts []*trickler
	for range 20 {
		ts = append(ts, startTrickle(t, env.Addr, "L0 LOGIN alice secret\r\na APPEND INBOX {10000000}\r\n", "+", "x", 20*time.Millisecond))
	}
	// A honest client at full speed.
	t0 := time.Now()
	c := env.DialLogin(t)
	msg := "Subject: fast\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 1<<16) // 1.1 MB
	c.SendLine(fmt.Sprintf("f APPEND INBOX {%d}", len(msg)))
	if l := c.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	c.Send(msg + "\r\n")
	if l := c.ReadUntilTagged("f"); !strings.HasPrefix(l[len(l)-1], "f OK") {
		t.Errorf("fast APPEND: %q", l)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("legitimate APPEND of %d bytes served in %v during the trickle", len(msg), d)
	} else {
		t.Logf("legitimate client: connect, LOGIN, APPEND of %d bytes in %v", len(msg), d)
	}

	// A slow, honest one: 500 bytes every 100 ms, and one pause of half
	// the window, for 2.5 s in all (several windows).
	slow := env.DialLogin(t)
	body := "Subject: slow\r\n\r\n" + strings.Repeat("x", 12000)
	slow.SendLine(fmt.Sprintf("s APPEND INBOX {%d}", len(body)))
	if l := slow.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	for i := 0; i < len(body); i += 500 {
		slow.Send(body[i:min(i+500, len(body))])
		if i == 5000 {
			time.Sleep(window / 2) // the client's pace, not a wait for a state
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	slow.Send("\r\n")
	if l := slow.ReadUntilTagged("s"); !strings.HasPrefix(l[len(l)-1], "s OK") {
		t.Errorf("slow but steady APPEND: %q", l)
	}

	// 50 bytes/s against 1000: the allowance of 500 ms drains at 0.95 s
	// per second, so about 530 ms after the continuation.
	expectClosed(t, ts, "* BYE Command arriving too slowly; closing", window+time.Second)
	for _, tr := range ts {
		if tr.after < window {
			t.Errorf("trickler closed after %v, before the window %v ran out", tr.after, window)
		}
	}
	if !strings.Contains(logs.String(), `msg="slow client disconnected" remote=127.0.0.1:`) ||
		!strings.Contains(logs.String(), "reason=min-rate addr=127.0.0.1 min_rate=1000B/s") {
		t.Errorf("no min-rate log line:\n%s", logs)
	}
	// The trickled APPENDs stored nothing; the two honest ones are there.
	c.Expect("x", "STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 2)", "x OK STATUS completed")
}

// The minimum rate holds under COMPRESS=DEFLATE too (RFC 4978): a literal
// trickled through the compressor is cut off, with the BYE compressed.
func TestSlowlorisInCompressedLiteral(t *testing.T) {
	const window = 500 * time.Millisecond
	env, _ := startWithLog(t, func(o *server.Options) {
		o.MinRate = 1000
		o.MinRateWindow = window
	})
	c := env.DialLogin(t)
	c.Compress("z")
	c.SendLine("a APPEND INBOX {10000000}")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	start := time.Now()
	done := make(chan struct{})
	var lines []string
	go func() {
		defer close(done)
		for {
			c.NC.SetReadDeadline(time.Now().Add(5 * time.Second))
			l, err := c.R.ReadString('\n')
			if err != nil {
				return
			}
			lines = append(lines, strings.TrimSpace(l))
		}
	}()
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for open := true; open; {
		select {
		case <-done:
			open = false
		case <-tk.C:
			c.NC.Write([]byte("x")) // one sync-flushed burst each
		}
	}
	if el := time.Since(start); el < window || el > window+time.Second {
		t.Errorf("closed %v after the continuation, want about %v", el, window)
	}
	if len(lines) != 1 || lines[0] != "* BYE Command arriving too slowly; closing" {
		t.Errorf("got %q, want the min-rate BYE only", lines)
	}
}

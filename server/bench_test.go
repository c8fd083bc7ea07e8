package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
)

// Benchmarks over TCP against a real server (internal/imaptest). Run with
//
//	go test ./server -run '^$' -bench . -benchtime 3x
//
// They do nothing under a plain `go test`.

// benchConn is a raw client that returns errors instead of failing the
// benchmark, so that it can run on any goroutine.
type benchConn struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	seq int
}

func dialBench(addr, user, pass string) (*benchConn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &benchConn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	if _, err := c.r.ReadString('\n'); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := c.cmd("LOGIN " + user + " " + pass); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// cmd sends a command (LITERAL+ literals included) and reads up to its
// tagged answer, which must be OK.
func (c *benchConn) cmd(s string) ([]string, error) {
	c.seq++
	tag := "b" + strconv.Itoa(c.seq)
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return lines, fmt.Errorf("%.60s: %s", s, l)
			}
			return lines, nil
		}
	}
}

// benchFill puts n messages of about 1 KB into a mailbox directly
// through the store, 1000 per AppendMessages call, each with its parsed
// structure as APPEND would store it. Most are \Seen; the newest 1% are
// not, as in a real inbox.
func benchFill(b *testing.B, st store.Store, userID, mailboxID int64, n int) {
	b.Helper()
	ctx := context.Background()
	filler := strings.Repeat("All work and no play makes Jack a dull boy. ", 18)
	date := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for done := 0; done < n; {
		batch := make([]store.NewMessage, 0, min(1000, n-done))
		for len(batch) < cap(batch) {
			i := done + len(batch)
			body := []byte(fmt.Sprintf("From: Sender %d <sender%d@example.com>\r\nTo: alice@example.com\r\n"+
				"Subject: Message number %d\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%d@bench.example>\r\n"+
				"Content-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n", i%97, i%97, i, i, filler))
			p, err := message.Parse(body)
			if err != nil {
				b.Fatal(err)
			}
			var flags []string
			if i < n-n/100 {
				flags = append(flags, `\Seen`)
			}
			if i%10 == 0 {
				flags = append(flags, `\Flagged`)
			}
			batch = append(batch, store.NewMessage{
				Flags:        flags,
				InternalDate: date.Add(time.Duration(i) * time.Second),
				Body:         body,
				Structure:    p.Marshal(),
			})
		}
		if _, _, err := st.AppendMessages(ctx, userID, mailboxID, batch); err != nil {
			b.Fatalf("AppendMessages: %v", err)
		}
		done += len(batch)
	}
}

func benchInbox(b *testing.B, env *imaptest.Env) (userID, mailboxID int64) {
	b.Helper()
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, env.User)
	if err != nil {
		b.Fatal(err)
	}
	mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	return u.ID, mb.ID
}

// BenchmarkSelect100k measures SELECT of a 100,000-message INBOX. The
// first SELECT after a start loads the index from the store (cold, logged
// once); "reselect" is a SELECT when no session holds the mailbox but the
// server still caches its index (a phone reconnecting); "warm" when
// another connection holds it selected.
func BenchmarkSelect100k(b *testing.B) {
	const n = 100_000
	env := imaptest.Start(b, nil)
	userID, inbox := benchInbox(b, env)
	start := time.Now()
	benchFill(b, env.Store, userID, inbox, n)
	b.Logf("filled INBOX with %d messages in %v", n, time.Since(start).Round(time.Millisecond))

	c, err := dialBench(env.Addr, env.User, env.Password)
	if err != nil {
		b.Fatal(err)
	}
	defer c.nc.Close()
	// The first SELECT claims the messages as \Recent (a write); later
	// ones find nothing to claim, as in steady state.
	t0 := time.Now()
	lines, err := c.cmd("SELECT INBOX")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("cold SELECT (index loaded from the store, %d recent messages claimed): %v", n, time.Since(t0).Round(time.Millisecond))
	if !benchHas(lines, fmt.Sprintf("* %d EXISTS", n)) {
		b.Fatalf("SELECT INBOX: no \"* %d EXISTS\" in %q", n, lines)
	}
	if _, err := c.cmd("UNSELECT"); err != nil {
		b.Fatal(err)
	}

	selectLoop := func(b *testing.B, verb string) {
		for b.Loop() {
			if _, err := c.cmd(verb + " INBOX"); err != nil {
				b.Fatal(err)
			}
			// UNSELECT releases the index when this is its last holder.
			if _, err := c.cmd("UNSELECT"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("reselect", func(b *testing.B) { selectLoop(b, "SELECT") })
	b.Run("reselect-examine", func(b *testing.B) { selectLoop(b, "EXAMINE") })

	holder, err := dialBench(env.Addr, env.User, env.Password)
	if err != nil {
		b.Fatal(err)
	}
	defer holder.nc.Close()
	if _, err := holder.cmd("SELECT INBOX"); err != nil {
		b.Fatal(err)
	}
	b.Run("warm", func(b *testing.B) { selectLoop(b, "SELECT") })
	b.Run("warm-examine", func(b *testing.B) { selectLoop(b, "EXAMINE") })
}

func benchHas(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// benchAppendCommand is an APPEND of a 10 KB message with a LITERAL+ literal.
func benchAppendCommand() string {
	var body strings.Builder
	body.WriteString("From: bench@example.com\r\nTo: alice@example.com\r\nSubject: ten kilobytes\r\n" +
		"Message-ID: <append@bench.example>\r\nContent-Type: text/plain\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "abcdefgh\r\n" // 80 bytes
	for body.Len() < 10*1024-len(line) {
		body.WriteString(line)
	}
	for body.Len() < 10*1024 {
		body.WriteByte('.')
	}
	return fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s", body.Len(), body.String())
}

// BenchmarkAppend10KB measures APPEND of 10 KB messages over TCP, one
// connection at a time and with 8 connections in parallel (the store
// groups concurrent commits).
func BenchmarkAppend10KB(b *testing.B) {
	env := imaptest.Start(b, nil)
	cmd := benchAppendCommand()
	for _, conns := range []int{1, 8} {
		name := "serial"
		if conns > 1 {
			name = fmt.Sprintf("parallel-%d", conns)
		}
		b.Run(name, func(b *testing.B) {
			cs := make([]*benchConn, conns)
			for i := range cs {
				c, err := dialBench(env.Addr, env.User, env.Password)
				if err != nil {
					b.Fatal(err)
				}
				defer c.nc.Close()
				cs[i] = c
			}
			b.SetBytes(int64(len(cmd)))
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for i, c := range cs {
				share := b.N / conns
				if i < b.N%conns {
					share++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range share {
						if _, err := c.cmd(cmd); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkIdleConnectionMemory measures what an idle connection that is
// logged in, has a small INBOX selected and is in IDLE costs the process:
// heap and goroutine stacks, after GC, divided by the number of
// connections, and the two apart (heap-B/conn, stack-B/conn) with the
// goroutines per connection. The client ends are in the same process but
// hold only their net.Conn (a few hundred bytes, included in the figure).
// This counts Go's own accounting only; internal/e2e's TestIdleMemory
// measures the resident set of the real binary. The target is < 16 KB.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const conns = 1000
	env := imaptest.Start(b, nil)
	// A cheap hash: 1000 logins at the production bcrypt cost would take
	// a minute and measure nothing of interest here.
	h, err := bcrypt.GenerateFromPassword([]byte("idle-pw"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	u, err := env.Store.CreateUser(ctx, "idle", string(h), store.DefaultMailboxes())
	if err != nil {
		b.Fatal(err)
	}
	mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	benchFill(b, env.Store, u.ID, mb.ID, 20)

	var perConn, heap, stack, goroutines float64
	for b.Loop() {
		g0 := runtime.NumGoroutine()
		before := benchMem()
		ncs := make([]net.Conn, 0, conns)
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		sem := make(chan struct{}, 32)
		for range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := dialBench(env.Addr, "idle", "idle-pw")
				if err == nil {
					err = c.idle()
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ncs = append(ncs, c.nc) // drop the client's buffers
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		// Every connection has had its "+ idling"; wait until the
		// server's goroutines have settled in their wait.
		benchSettle()
		after := benchMem()
		goroutines = float64(runtime.NumGoroutine()-g0) / conns
		heap = float64(after.heap-before.heap) / conns
		stack = float64(after.stack-before.stack) / conns
		perConn = heap + stack
		for _, nc := range ncs {
			nc.Close()
		}
		// Wait for the server to notice, so the next round starts clean.
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ReportMetric(perConn, "bytes/conn")
	b.ReportMetric(heap, "heap-B/conn")
	b.ReportMetric(stack, "stack-B/conn")
	b.ReportMetric(goroutines, "goroutines/conn")
	if perConn > 16<<10 {
		b.Errorf("an idle selected connection costs %.0f bytes (heap %.0f, stacks %.0f, %.1f goroutines), above the 16 KB target",
			perConn, heap, stack, goroutines)
	}
}

// idle selects INBOX and enters IDLE.
func (c *benchConn) idle() error {
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		return err
	}
	c.seq++
	fmt.Fprintf(c.w, "b%d IDLE\r\n", c.seq)
	if err := c.w.Flush(); err != nil {
		return err
	}
	l, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "+ ") {
		return fmt.Errorf("IDLE: %q", l)
	}
	return nil
}

// benchSettle waits until the number of goroutines and the stack memory
// in use have stayed the same for 500 ms (at most 20 s): connections hand
// their wait over to a goroutine with a small stack a moment after their
// last command.
func benchSettle() {
	type state struct {
		goroutines int
		stack      uint64
	}
	read := func() state {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return state{runtime.NumGoroutine(), ms.StackInuse}
	}
	last, same := read(), 0
	for deadline := time.Now().Add(20 * time.Second); same < 10 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if s := read(); s == last {
			same++
		} else {
			last, same = s, 0
		}
	}
}

type benchMemStats struct{ heap, stack int64 }

// benchMem returns HeapInuse and StackInuse after a full GC.
func benchMem() benchMemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return benchMemStats{int64(ms.HeapInuse), int64(ms.StackInuse)}
}

// BenchmarkNoopRoundTrip is one NOOP and its answer on a logged-in
// connection with INBOX selected: the per-command cost of the connection
// loop (reading, dispatch, writing, borrowing buffers), with little
// command work.
func BenchmarkNoopRoundTrip(b *testing.B) {
	env := imaptest.Start(b, nil)
	c, err := dialBench(env.Addr, env.User, env.Password)
	if err != nil {
		b.Fatal(err)
	}
	defer c.nc.Close()
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.cmd("NOOP"); err != nil {
			b.Fatal(err)
		}
	}
}

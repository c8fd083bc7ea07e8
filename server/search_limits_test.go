package server_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

// manyFieldsMessage is a message whose header has n fields, each with a
// name of its own: SEARCH TEXT's cost used to grow with the square of the
// number of distinct names. n = 40,000 makes about 600 KB.
func manyFieldsMessage(n int) string {
	var b strings.Builder
	b.Grow(n*16 + 200)
	b.WriteString("From: a@example.org\r\nSubject: many fields\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n")
	for i := range n {
		fmt.Fprintf(&b, "H%05d: v%05d\r\n", i, i)
	}
	b.WriteString("\r\nbody text\r\n")
	return b.String()
}

// appendOverWire APPENDs raw to INBOX over c, as a client does, so that
// the server computes what it stores with it.
func appendOverWire(t testing.TB, c *imaptest.Conn, tag, raw string) {
	t.Helper()
	c.SendLine(tag + " APPEND INBOX {" + strconv.Itoa(len(raw)) + "}")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	c.Send(raw + "\r\n")
	got := c.ReadUntilTagged(tag)
	if last := got[len(got)-1]; !strings.HasPrefix(last, tag+" OK") {
		t.Fatalf("APPEND: %q", got)
	}
}

// TestSearchTextManyFieldsCPU: SEARCH TEXT over a 600 KB message of
// 40,000 distinct header fields costs well under a second of CPU (it cost
// 45 s when the header text was built name by name).
func TestSearchTextManyFieldsCPU(t *testing.T) {
	if _, ok := processCPU(); !ok {
		t.Skip("no process CPU time on this platform")
	}
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	raw := manyFieldsMessage(40000)
	if len(raw) < 600_000 {
		t.Fatalf("message of %d bytes, want 600 KB", len(raw))
	}
	appendOverWire(t, c, "A1", raw)
	selectBox(t, c, "S1", "INBOX")
	for i, tc := range []struct{ key, want string }{
		{"TEXT v39999", "* SEARCH 1"},             // the last field's value
		{"TEXT \"h20000: v20000\"", "* SEARCH 1"}, // a field, name and value
		{"TEXT nowhere-to-be-found", "* SEARCH"},
		{"HEADER H12345 v12345", "* SEARCH 1"},
	} {
		tag := "T" + strconv.Itoa(i)
		before, _ := processCPU()
		got := c.Cmd(tag, "SEARCH "+tc.key)
		after, _ := processCPU()
		if len(got) != 2 || got[0] != tc.want || !strings.HasPrefix(got[1], tag+" OK") {
			t.Fatalf("SEARCH %s: %q, want %q", tc.key, got, tc.want)
		}
		cpu := after - before
		t.Logf("SEARCH %s: %v of CPU", tc.key, cpu)
		if cpu > time.Second {
			t.Errorf("SEARCH %s took %v of CPU, want under 1 s", tc.key, cpu)
		}
	}
}

// BenchmarkSearchTextManyFields measures SEARCH TEXT over one 600 KB
// message of 40,000 distinct header fields, over TCP.
func BenchmarkSearchTextManyFields(b *testing.B) {
	env := imaptest.Start(b, nil)
	c := env.DialLogin(b)
	appendOverWire(b, c, "A1", manyFieldsMessage(40000))
	selectBox(b, c, "S1", "INBOX")
	before, _ := processCPU()
	for i := 0; b.Loop(); i++ {
		got := c.Cmd("T", "SEARCH TEXT v39999")
		if len(got) != 2 || got[0] != "* SEARCH 1" {
			b.Fatalf("SEARCH: %q", got)
		}
	}
	if after, ok := processCPU(); ok {
		b.ReportMetric(float64(after-before)/float64(b.N)/1e6, "cpu-ms/op")
	}
}

// stallingStore is a store whose first MessageBody of a search stalls
// until the context it was given ends, as a slow disk would; every read
// ignores cancellation otherwise (it runs under a context that cannot
// end), so that only the search's own checks can stop the search.
type stallingStore struct {
	store.Store
	bodies  atomic.Int64
	started chan struct{} // closed at the first MessageBody
	once    sync.Once
	// cause is the context's cause seen by the stalled read.
	cause chan error
}

func newStallingStore(st store.Store) *stallingStore {
	return &stallingStore{Store: st, started: make(chan struct{}), cause: make(chan error, 1)}
}

func (s *stallingStore) MessageBody(ctx context.Context, userID, mailboxID int64, uid uint32) ([]byte, error) {
	if s.bodies.Add(1) == 1 {
		s.once.Do(func() { close(s.started) })
		select {
		case <-ctx.Done():
			s.cause <- context.Cause(ctx)
		case <-time.After(20 * time.Second):
			s.cause <- errors.New("the stalled read's context never ended")
		}
	}
	return s.Store.MessageBody(context.WithoutCancel(ctx), userID, mailboxID, uid)
}

// startStalling starts a server over a stallingStore with n messages in
// INBOX that SEARCH TEXT must read one by one.
func startStalling(t *testing.T, n int, mod func(*server.Options)) (*imaptest.Env, *stallingStore) {
	var ss *stallingStore
	env := imaptest.Start(t, func(o *server.Options) {
		ss = newStallingStore(o.Store)
		o.Store = ss
		o.MessageCacheBytes = -1
		if mod != nil {
			mod(o)
		}
	})
	msgs := make([]testMessage, n)
	for i := range msgs {
		msgs[i] = testMessage{date: time.Now(), raw: fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)}
	}
	appendMessages(t, env, "INBOX", msgs)
	return env, ss
}

// waitCause waits for the stalled read to see its context end.
func waitCause(t *testing.T, ss *stallingStore) error {
	t.Helper()
	select {
	case err := <-ss.cause:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled read never returned")
		return nil
	}
}

// TestSearchCancelledOnDisconnect: a client that goes away during a
// SEARCH cancels it. The first message read stalls until the connection's
// context ends, which only the server noticing the disconnect does; the
// search must then stop at once, so no other message is read. The same
// over COMPRESS=DEFLATE, whose reads the watch goes through.
func TestSearchCancelledOnDisconnect(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			const n = 300
			env, ss := startStalling(t, n, nil)
			c := env.DialLogin(t)
			if compress {
				c.Compress("Z")
			}
			selectBox(t, c, "S1", "INBOX")
			c.SendLine("T1 SEARCH TEXT nothing-matches")
			<-ss.started
			c.NC.Close()
			cause := waitCause(t, ss)
			if cause == nil || !strings.Contains(cause.Error(), "client went away") {
				t.Fatalf("the search's context ended with %v, want the client going away", cause)
			}
			// Shutdown with time to spare returns once every
			// connection has ended, the cancelled search's included.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := env.Server.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v (the cancelled search did not end)", err)
			}
			if got := ss.bodies.Load(); got != 1 {
				t.Errorf("the search read %d of %d messages after its client left, want it to stop after the first", got, n)
			}
		})
	}
}

// TestSearchPipelinedDuringWatch: a command the client sends while a
// long SEARCH runs is read by the watch for the client going away, which
// must leave it for the next command, and not cancel the search.
func TestSearchPipelinedDuringWatch(t *testing.T) {
	env, ss := startStalling(t, 10, func(o *server.Options) { o.SearchTimeLimit = 300 * time.Millisecond })
	c := env.DialLogin(t)
	selectBox(t, c, "S1", "INBOX")
	c.SendLine("T1 SEARCH TEXT nothing-matches")
	<-ss.started
	c.SendLine("T2 NOOP")
	if got := c.ReadUntilTagged("T1"); len(got) != 1 || !strings.HasPrefix(got[0], "T1 NO [LIMIT] ") {
		t.Fatalf("SEARCH: %q, want NO [LIMIT]", got)
	}
	if cause := waitCause(t, ss); cause == nil || !strings.Contains(cause.Error(), "time limit") {
		t.Errorf("the search's context ended with %v, want its time limit", cause)
	}
	if got := c.ReadUntilTagged("T2"); got[len(got)-1] != "T2 OK NOOP completed" {
		t.Errorf("pipelined NOOP: %q", got)
	}
}

// TestSearchTimeLimit: a SEARCH that runs past SearchTimeLimit is answered
// NO [LIMIT], and stops there rather than at the end: here the first
// message's read stalls past the limit, and no other message is read.
func TestSearchTimeLimit(t *testing.T) {
	const n = 300
	limit := 200 * time.Millisecond
	env, ss := startStalling(t, n, func(o *server.Options) { o.SearchTimeLimit = limit })
	c := env.DialLogin(t)
	selectBox(t, c, "S1", "INBOX")
	start := time.Now()
	got := c.Cmd("T1", "SEARCH TEXT nothing-matches")
	took := time.Since(start)
	if len(got) != 1 || !strings.HasPrefix(got[0], "T1 NO [LIMIT] ") {
		t.Fatalf("SEARCH past its limit: %q, want only T1 NO [LIMIT]", got)
	}
	if cause := waitCause(t, ss); cause == nil || !strings.Contains(cause.Error(), "time limit") {
		t.Errorf("the search's context ended with %v, want its time limit", cause)
	}
	if took < limit {
		t.Errorf("answered after %v, before the limit of %v", took, limit)
	}
	if got := ss.bodies.Load(); got != 1 {
		t.Errorf("the search read %d of %d messages, want it to stop after the first", got, n)
	}
	// The connection goes on; a search within the limit is answered.
	got = c.Cmd("T2", "SEARCH UID 300")
	if len(got) != 2 || got[0] != "* SEARCH 300" || !strings.HasPrefix(got[1], "T2 OK") {
		t.Errorf("SEARCH after the limit: %q", got)
	}
}

// TestSearchTimeLimitCPU: the limit also stops a search that spends its
// time computing rather than waiting: 12 messages of 40,000 header fields
// under a 5 ms limit are answered NO [LIMIT] before all are read.
func TestSearchTimeLimitCPU(t *testing.T) {
	const n = 12
	var cs *countingStore
	env := imaptest.Start(t, func(o *server.Options) {
		cs = &countingStore{Store: o.Store}
		o.Store = cs
		o.SearchTimeLimit = 5 * time.Millisecond
		o.MessageCacheBytes = -1
	})
	raw := manyFieldsMessage(40000)
	msgs := make([]testMessage, n)
	for i := range msgs {
		msgs[i] = testMessage{date: time.Now(), raw: raw}
	}
	appendMessages(t, env, "INBOX", msgs)
	c := env.DialLogin(t)
	selectBox(t, c, "S1", "INBOX")
	got := c.Cmd("T1", "SEARCH TEXT nothing-matches")
	if len(got) != 1 || !strings.HasPrefix(got[0], "T1 NO [LIMIT] ") {
		t.Fatalf("SEARCH past its limit: %q, want only T1 NO [LIMIT]", got)
	}
	if read := cs.bodies.Load(); read >= n {
		t.Errorf("the search read all %d messages, want it stopped at its limit", read)
	}
}

// TestShutdownDeadlineCancelsSearch: Shutdown returns when its context
// ends although a SEARCH is still running, and that search's context is
// cancelled.
func TestShutdownDeadlineCancelsSearch(t *testing.T) {
	env, ss := startStalling(t, 50, nil)
	c := env.DialLogin(t)
	selectBox(t, c, "S1", "INBOX")
	c.SendLine("T1 SEARCH TEXT nothing-matches")
	<-ss.started
	grace := 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err := env.Server.Shutdown(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a search running: %v, want its context's deadline", err)
	}
	if took < grace || took > grace+2*time.Second {
		t.Errorf("Shutdown returned after %v, want at its deadline of %v", took, grace)
	}
	if cause := waitCause(t, ss); cause == nil || !strings.Contains(cause.Error(), "shut down") {
		t.Errorf("the search's context ended with %v, want the shutdown", cause)
	}
	c.ExpectEOF(10 * time.Second)
}

// TestLoginThrottleClientLeaves: a login delayed by the per-address
// throttle ends its wait when the client goes away, instead of holding
// the connection's goroutine for the whole delay.
func TestLoginThrottleClientLeaves(t *testing.T) {
	env, logs := startWithLog(t, func(o *server.Options) {
		o.LimitLoopback = true
		o.LoginThrottleFailures = 1
		o.PreAuthTimeout = time.Minute
		o.LoginThrottleDelay = 20 * time.Second
		o.LoginThrottleMaxDelay = 20 * time.Second
		o.MaxAuthFailures = 100
		o.FailedLoginDelay = time.Millisecond
	})
	bad := env.DialFrom(t, "127.0.0.2")
	bad.ExpectTagged("f", "LOGIN alice wrong", "f NO [AUTHENTICATIONFAILED]")
	bad.SendLine("g LOGIN alice wrong")
	if !waitFor(10*time.Second, func() bool { return throttledLine.MatchString(logs.String()) }) {
		t.Fatalf("no throttled line:\n%s", logs)
	}
	bad.NC.Close()
	if !waitFor(10*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="client left while its login was throttled"`)
	}) {
		t.Fatalf("the throttled login went on waiting after its client left:\n%s", logs)
	}
}

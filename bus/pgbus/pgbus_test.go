package pgbus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	hints   []bus.Hint
	resyncs int
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Hint(h bus.Hint) {
	r.mu.Lock()
	r.hints = append(r.hints, h)
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) state() ([]bus.Hint, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Hint(nil), r.hints...), r.resyncs
}

func (r *recorder) waitFor(t *testing.T, what string, cond func(hs []bus.Hint, resyncs int) bool) []bus.Hint {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		hs, n := r.state()
		if cond(hs, n) {
			return hs
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("waiting for %s: have %d resyncs, hints %+v", what, n, hs)
		}
	}
}

func has(hs []bus.Hint, want bus.Hint) bool {
	for _, h := range hs {
		if h == want {
			return true
		}
	}
	return false
}

var testOpts = Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}

// newBus returns a bus closed when the test ends (before its database
// is dropped).
func newBus(t *testing.T, dsn, node string, opts Options) *Bus {
	t.Helper()
	b, err := New(context.Background(), dsn, node, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// start runs b with r and waits until its listener is listening.
func start(t *testing.T, dsn string, b *Bus, r bus.Handler) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Run(context.Background(), r); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitListening(t, dsn, b.node)
	return done
}

// waitListening waits until node's listening connection has run LISTEN
// (pg_stat_activity shows it idle after it).
func waitListening(t *testing.T, dsn, node string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND query LIKE 'LISTEN %'`,
			ApplicationName("listen", node)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s is not listening", node)
		}
		time.Sleep(5 * time.Millisecond) // polling the state above
	}
}

func TestTwoBuses(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := newBus(t, dsn, "a", testOpts), newBus(t, dsn, "b", testOpts)
	ra, rb := newRecorder(), newRecorder()
	start(t, dsn, a, ra)
	start(t, dsn, b, rb)

	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 10})
	b.Publish(bus.Hint{Kind: bus.MailboxGone, Mailbox: 2, Gone: 1})
	b.Publish(bus.Hint{Kind: bus.SessionTaken, User: 3, Session: "sid 1", Generation: 4})
	rb.waitFor(t, "a's hint on b", func(hs []bus.Hint, _ int) bool {
		return has(hs, bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 10, Node: "a"})
	})
	ra.waitFor(t, "b's hints on a", func(hs []bus.Hint, _ int) bool {
		return has(hs, bus.Hint{Kind: bus.MailboxGone, Mailbox: 2, Gone: 1, Node: "b"}) &&
			has(hs, bus.Hint{Kind: bus.SessionTaken, User: 3, Session: "sid 1", Generation: 4, Node: "b"})
	})
	// Own hints are not delivered: a marker from the other side arrives
	// after them (one publisher, commit order), so by then they would
	// have.
	a.Publish(bus.Hint{Kind: bus.UserChanged, User: 99})
	rb.waitFor(t, "a's marker", func(hs []bus.Hint, _ int) bool {
		return has(hs, bus.Hint{Kind: bus.UserChanged, User: 99, Node: "a"})
	})
	b.Publish(bus.Hint{Kind: bus.UserChanged, User: 98})
	ra.waitFor(t, "b's marker", func(hs []bus.Hint, _ int) bool {
		return has(hs, bus.Hint{Kind: bus.UserChanged, User: 98, Node: "b"})
	})
	for name, r := range map[string]*recorder{"a": ra, "b": rb} {
		hs, resyncs := r.state()
		for _, h := range hs {
			if h.Node == name {
				t.Errorf("node %s got its own hint %+v", name, h)
			}
		}
		if resyncs != 1 {
			t.Errorf("node %s resynchronised %d times without a failure, want once (its first LISTEN)", name, resyncs)
		}
	}
}

// A node name shared by two buses (a command-line process on the node's
// host) does not make them skip each other's hints.
func TestSameNodeName(t *testing.T) {
	dsn := pgtest.DB(t)
	srv, cli := newBus(t, dsn, "host", testOpts), newBus(t, dsn, "host", testOpts)
	r := newRecorder()
	start(t, dsn, srv, r)
	cli.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 5, ModSeq: 1})
	r.waitFor(t, "the hint of the same-named bus", func(hs []bus.Hint, _ int) bool { return len(hs) == 1 })
}

func TestMerge(t *testing.T) {
	dsn := pgtest.DB(t)
	opts := testOpts
	opts.hold = make(chan struct{})
	a := newBus(t, dsn, "a", opts)
	b := newBus(t, dsn, "b", testOpts)
	rb := newRecorder()
	start(t, dsn, b, rb)
	// Queued while the publisher is held: one batch, merged.
	for i := 1; i <= 100; i++ {
		a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: int64(i % 3), ModSeq: uint64(i)})
		a.Publish(bus.Hint{Kind: bus.UserChanged, User: 7})
		a.Publish(bus.Hint{Kind: bus.SessionTaken, User: 7, Session: "s", Generation: uint64(i)})
	}
	close(opts.hold)
	want := []bus.Hint{
		{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 100, Node: "a"},
		{Kind: bus.UserChanged, User: 7, Node: "a"},
		{Kind: bus.SessionTaken, User: 7, Session: "s", Generation: 100, Node: "a"},
		{Kind: bus.MailboxChanged, Mailbox: 2, ModSeq: 98, Node: "a"},
		{Kind: bus.MailboxChanged, Mailbox: 0, ModSeq: 99, Node: "a"},
	}
	hs := rb.waitFor(t, "the merged batch", func(hs []bus.Hint, _ int) bool { return len(hs) >= len(want) })
	if fmt.Sprint(hs) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", hs, want)
	}
	a.Close() // the publisher has counted what it sent when Close returns
	a.mu.Lock()
	sent := a.sent
	a.mu.Unlock()
	if sent != 1 {
		t.Errorf("300 hints went in %d notifications, want 1", sent)
	}
}

// Many mailboxes at once: several notifications, none too large for
// PostgreSQL, all delivered.
func TestLargeBatch(t *testing.T) {
	dsn := pgtest.DB(t)
	opts := testOpts
	opts.hold = make(chan struct{})
	a := newBus(t, dsn, "a", opts)
	b := newBus(t, dsn, "b", testOpts)
	rb := newRecorder()
	start(t, dsn, b, rb)
	const n = 5000
	for i := range n {
		a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: int64(1_000_000_000 + i), ModSeq: uint64(1_000_000 + i)})
	}
	close(opts.hold)
	hs := rb.waitFor(t, "every hint", func(hs []bus.Hint, _ int) bool { return len(hs) >= n })
	for i, h := range hs {
		if h.Mailbox != int64(1_000_000_000+i) || h.ModSeq != uint64(1_000_000+i) {
			t.Fatalf("hint %d = %+v", i, h)
		}
	}
	a.Close() // the publisher has counted what it sent when Close returns
	a.mu.Lock()
	sent := a.sent
	a.mu.Unlock()
	if sent < 2 || sent > 20 {
		t.Errorf("%d hints in %d notifications", n, sent)
	}
}

// A command-line process: New, Publish, Close. Close sends what is
// pending before it returns.
func TestCloseFlushes(t *testing.T) {
	dsn := pgtest.DB(t)
	srv := newBus(t, dsn, "srv", testOpts)
	r := newRecorder()
	start(t, dsn, srv, r)
	cli, err := New(context.Background(), dsn, "cli", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	cli.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 11, ModSeq: 3})
	cli.Publish(bus.Hint{Kind: bus.UserChanged, User: 2})
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	cli.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 12}) // after Close: nothing
	cli.mu.Lock()
	sent, left := cli.sent, cli.queue.Len()
	cli.mu.Unlock()
	if sent != 1 || left != 0 {
		t.Errorf("after Close: %d notifications sent, %d hints queued; want 1 and 0", sent, left)
	}
	// A marker from another bus, sent after Close returned, arrives
	// after the command's hints.
	other := newBus(t, dsn, "other", testOpts)
	other.Publish(bus.Hint{Kind: bus.UserChanged, User: 1000})
	hs := r.waitFor(t, "the marker", func(hs []bus.Hint, _ int) bool {
		return has(hs, bus.Hint{Kind: bus.UserChanged, User: 1000, Node: "other"})
	})
	want := []bus.Hint{
		{Kind: bus.MailboxChanged, Mailbox: 11, ModSeq: 3, Node: "cli"},
		{Kind: bus.UserChanged, User: 2, Node: "cli"},
		{Kind: bus.UserChanged, User: 1000, Node: "other"},
	}
	if fmt.Sprint(hs) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", hs, want)
	}
}

func TestCloseStopsRun(t *testing.T) {
	dsn := pgtest.DB(t)
	b := newBus(t, dsn, "b", testOpts)
	done := start(t, dsn, b, newRecorder())
	b.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := b.Run(context.Background(), newRecorder()); err != nil {
		t.Errorf("Run after Close: %v", err)
	}
}

// The listener's backend is killed: the bus reconnects, says Resync, and
// hints flow again.
func TestListenerLost(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := newBus(t, dsn, "a", testOpts), newBus(t, dsn, "b", testOpts)
	rb := newRecorder()
	start(t, dsn, b, rb)
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 1})
	rb.waitFor(t, "the first hint", func(hs []bus.Hint, _ int) bool { return len(hs) == 1 })

	for round := 1; round <= 2; round++ {
		admin, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var killed int
		err = admin.QueryRow(context.Background(),
			`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) k`,
			ApplicationName("listen", "b")).Scan(&killed)
		admin.Close(context.Background())
		if err != nil || killed != 1 {
			t.Fatalf("terminating b's listener: %d backends, %v", killed, err)
		}
		rb.waitFor(t, "the Resync", func(_ []bus.Hint, n int) bool { return n == 1+round })
		// Resync comes after LISTEN: what is published now arrives.
		a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: uint64(1 + round)})
		rb.waitFor(t, "a hint after the reconnection", func(hs []bus.Hint, _ int) bool {
			return has(hs, bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: uint64(1 + round), Node: "a"})
		})
	}
}

// The publisher's connection is killed: the next hints go out on a new
// one.
func TestPublisherLost(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := newBus(t, dsn, "a", testOpts), newBus(t, dsn, "b", testOpts)
	rb := newRecorder()
	start(t, dsn, b, rb)
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	if err := admin.QueryRow(context.Background(),
		`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) k`,
		ApplicationName("publish", "a")).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating a's publisher: %d backends, %v", killed, err)
	}
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 4, ModSeq: 2})
	rb.waitFor(t, "the hint sent after a reconnection", func(hs []bus.Hint, _ int) bool { return len(hs) == 1 })
}

// A quiet listener pings its server and stays connected.
func TestQuietListenerPings(t *testing.T) {
	dsn := pgtest.DB(t)
	opts := testOpts
	opts.PingInterval = 20 * time.Millisecond
	a, b := newBus(t, dsn, "a", testOpts), newBus(t, dsn, "b", opts)
	rb := newRecorder()
	start(t, dsn, b, rb)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		var q string
		if err := conn.QueryRow(context.Background(),
			`SELECT query FROM pg_stat_activity WHERE application_name = $1`,
			ApplicationName("listen", "b")).Scan(&q); err != nil {
			t.Fatal(err)
		}
		if q != "" && q[0] == '-' { // "-- ping", pgx's Ping
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener never pinged; its last query: %q", q)
		}
		time.Sleep(5 * time.Millisecond) // polling the state above
	}
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 1})
	rb.waitFor(t, "a hint after pings", func(hs []bus.Hint, _ int) bool { return len(hs) == 1 })
	if _, n := rb.state(); n != 1 {
		t.Errorf("%d resyncs on a healthy connection, want 1 (its first LISTEN)", n)
	}
}

package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// raw is a second, independent connection that changes the mailbox and
// reads the server's truth.
type raw struct {
	t *testing.T
	c *imaptest.Conn
	n int
}

func dialRaw(t *testing.T, addr, user, pass string) *raw {
	t.Helper()
	env := &imaptest.Env{Addr: addr, User: user, Password: pass}
	r := &raw{t: t, c: env.DialLogin(t)}
	r.ok("SELECT INBOX")
	return r
}

func (r *raw) cmd(cmd string) []string {
	r.t.Helper()
	r.n++
	tag := "R" + strconv.Itoa(r.n)
	return r.c.Cmd(tag, cmd)
}

func (r *raw) ok(cmd string) []string {
	r.t.Helper()
	lines := r.cmd(cmd)
	if last := lines[len(lines)-1]; !strings.Contains(last, " OK") {
		r.t.Fatalf("%s: %q", cmd, lines)
	}
	return lines
}

// appendN appends n small messages to INBOX.
func (r *raw) appendN(n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("From: a@example.com\r\nSubject: m%d\r\n\r\nbody %d\r\n", i, i)
		r.n++
		tag := "R" + strconv.Itoa(r.n)
		r.c.SendLine(fmt.Sprintf("%s APPEND INBOX {%d+}", tag, len(msg)))
		r.c.Send(msg + "\r\n")
		lines := r.c.ReadUntilTagged(tag)
		if !strings.Contains(lines[len(lines)-1], "OK") {
			r.t.Fatalf("append: %q", lines)
		}
	}
}

var fetchRe = regexp.MustCompile(`^\* \d+ FETCH \((.*)\)$`)
var uidRe = regexp.MustCompile(`UID (\d+)`)
var flagsRe = regexp.MustCompile(`FLAGS \(([^)]*)\)`)
var uvRe = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)

// truth returns the server's UIDVALIDITY and messages, read with a plain
// SELECT and UID FETCH 1:* (FLAGS).
func (r *raw) truth() (uint32, []Message) {
	r.t.Helper()
	var uv uint32
	for _, l := range r.ok("EXAMINE INBOX") {
		if m := uvRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 32)
			uv = uint32(n)
		}
	}
	var msgs []Message
	for _, l := range r.ok("UID FETCH 1:* (FLAGS)") {
		m := fetchRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		u := uidRe.FindStringSubmatch(m[1])
		f := flagsRe.FindStringSubmatch(m[1])
		if u == nil || f == nil {
			r.t.Fatalf("bad fetch line %q", l)
		}
		n, _ := strconv.ParseUint(u[1], 10, 32)
		var flags []string
		for _, x := range strings.Fields(f[1]) {
			if x != `\Recent` {
				flags = append(flags, x)
			}
		}
		slices.Sort(flags)
		msgs = append(msgs, Message{UID: uint32(n), Flags: flags})
	}
	slices.SortFunc(msgs, func(a, b Message) int { return int(a.UID) - int(b.UID) })
	r.ok("SELECT INBOX")
	return uv, msgs
}

func sameMessages(a, b []Message) bool {
	return slices.EqualFunc(a, b, func(x, y Message) bool {
		return x.UID == y.UID && slices.Equal(x.Flags, y.Flags)
	})
}

// checkState compares the client's state with the server's.
func checkState(t *testing.T, c *Client, r *raw) {
	t.Helper()
	uv, want := r.truth()
	st := c.State()
	if st.UIDValidity != uv {
		t.Errorf("UIDVALIDITY %d, server %d", st.UIDValidity, uv)
	}
	if !sameMessages(st.Messages, want) {
		t.Errorf("state differs from server:\n got %v\nwant %v", st.Messages, want)
	}
}

// dropDialer counts dials and lets a test cut the current connection.
type dropDialer struct {
	addr  string
	mu    sync.Mutex
	dials int
	fail  int // the next fail dials fail
}

func (d *dropDialer) dial(ctx context.Context) (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	if d.fail > 0 {
		d.fail--
		d.mu.Unlock()
		return nil, fmt.Errorf("dial refused (test)")
	}
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.addr)
}

type testEnv struct {
	env   *imaptest.Env // server address and account
	store *MemoryStore
	raw   *raw
}

func startEnv(t *testing.T) *testEnv {
	env := imaptest.Start(t, nil)
	return newTestEnv(t, env.Addr, env.User, env.Password)
}

func newTestEnv(t *testing.T, addr, user, pass string) *testEnv {
	return &testEnv{
		env:   &imaptest.Env{Addr: addr, User: user, Password: pass},
		store: &MemoryStore{},
		raw:   dialRaw(t, addr, user, pass),
	}
}

func (e *testEnv) client(t *testing.T, mod func(*Options)) *Client {
	o := Options{
		Addr: e.env.Addr, Username: e.env.User, Password: e.env.Password,
		Store: e.store, Timeout: 10 * time.Second,
	}
	if testing.Verbose() {
		o.Logger = testLogger(t)
	}
	if mod != nil {
		mod(&o)
	}
	return New(o)
}

func mustSync(t *testing.T, c *Client) SyncResult {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	t.Logf("sync: strategy %v fallbacks %v dialed %v rt %d in %d out %d events %d",
		res.Strategy, res.Fallbacks, res.Dialed, res.RoundTrips, res.BytesIn, res.BytesOut, len(res.Events))
	return res
}

// mutate changes the mailbox from the raw connection: flag changes,
// expunges and new messages.
func (e *testEnv) mutate(t *testing.T) {
	e.raw.ok(`UID STORE 2 +FLAGS (\Flagged)`)
	e.raw.ok(`UID STORE 3 +FLAGS (\Deleted)`)
	e.raw.ok(`UID STORE 5 +FLAGS (\Deleted)`)
	e.raw.ok(`EXPUNGE`)
	e.raw.appendN(2)
	e.raw.ok(`UID STORE 7 +FLAGS (\Seen $Label1)`)
}

func TestFreshFullThenSIDResume(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(8)
	c := e.client(t, nil)
	res := mustSync(t, c)
	if res.Strategy != StrategyFull {
		t.Errorf("first sync strategy %v, want full", res.Strategy)
	}
	checkState(t, c, e.raw)
	if c.State().SessionID == "" {
		t.Fatal("no session created")
	}
	if len(res.Events) != 1 || len(res.Events[0].(NewMessages).Messages) != 8 {
		t.Errorf("events %v", res.Events)
	}
	c.Drop()
	e.mutate(t)
	res = mustSync(t, c)
	if res.Strategy != StrategySID || len(res.Fallbacks) != 0 {
		t.Errorf("strategy %v %v, want SID", res.Strategy, res.Fallbacks)
	}
	if res.RoundTrips != 1 {
		t.Errorf("SID resume took %d round trips, want 1", res.RoundTrips)
	}
	checkState(t, c, e.raw)
	t.Logf("events %+v", res.Events)
	var van, fl, nw int
	for _, ev := range res.Events {
		switch ev := ev.(type) {
		case Vanished:
			van += len(ev.UIDs)
		case FlagsChanged:
			fl++
		case NewMessages:
			nw += len(ev.Messages)
		}
	}
	if van != 2 || fl != 2 || nw != 2 {
		t.Errorf("events: %d vanished, %d flag changes, %d new; want 2 2 2", van, fl, nw)
	}
}

// setup makes a mailbox of n messages and a client that synchronized it
// once (with the given strategy cap), then dropped its connection.
func setup(t *testing.T, force Strategy, n int) (*testEnv, *Client) {
	return setupOn(t, startEnv(t), force, n)
}

func setupOn(t *testing.T, e *testEnv, force Strategy, n int) (*testEnv, *Client) {
	e.raw.appendN(n)
	c := e.client(t, func(o *Options) { o.ForceStrategy = force })
	mustSync(t, c)
	checkState(t, c, e.raw)
	c.Drop()
	return e, c
}

func TestStrategies(t *testing.T) {
	for _, tc := range []struct {
		force Strategy
		want  Strategy
		rt    int
	}{
		{StrategyAuto, StrategySID, 1},
		{StrategySID, StrategySID, 1},
		{StrategyQRESYNC, StrategyQRESYNC, 1},
		{StrategyCONDSTORE, StrategyCONDSTORE, 1},
		{StrategyFull, StrategyFull, 1},
	} {
		t.Run(tc.force.String(), func(t *testing.T) {
			e, c := setup(t, tc.force, 10)
			e.mutate(t)
			res := mustSync(t, c)
			if res.Strategy != tc.want || len(res.Fallbacks) != 0 {
				t.Errorf("strategy %v (fallbacks %v), want %v", res.Strategy, res.Fallbacks, tc.want)
			}
			if res.RoundTrips != tc.rt {
				t.Errorf("%d round trips, want %d", res.RoundTrips, tc.rt)
			}
			checkState(t, c, e.raw)
			// Nothing changed: a second resume.
			c.Drop()
			res = mustSync(t, c)
			if len(res.Events) != 0 {
				t.Errorf("events without changes: %v", res.Events)
			}
			checkState(t, c, e.raw)
			if tc.want != StrategySID && c.State().SessionID != "" {
				t.Errorf("session created under ForceStrategy %v", tc.force)
			}
		})
	}
}

func TestNoopOnSyncedConnection(t *testing.T) {
	e, c := setup(t, StrategyAuto, 3)
	mustSync(t, c)
	e.mutate(t)
	res := mustSync(t, c)
	// NOOP, then UID FETCH of the new messages.
	if res.Strategy != StrategyNoop || res.Dialed || res.RoundTrips != 2 {
		t.Errorf("got %v dialed %v rt %d", res.Strategy, res.Dialed, res.RoundTrips)
	}
	checkState(t, c, e.raw)
}

func TestSIDUnknownSession(t *testing.T) {
	e, c := setup(t, StrategyAuto, 5)
	st, _ := e.store.Load(context.Background())
	old := st.SessionID
	st.SessionID = "no-such-session"
	e.store.Save(context.Background(), st)
	c2 := e.client(t, nil) // loads the doctored state
	e.mutate(t)
	res := mustSync(t, c2)
	if res.Strategy != StrategyQRESYNC || !slices.Equal(res.Fallbacks, []Strategy{StrategySID}) {
		t.Errorf("strategy %v fallbacks %v, want QRESYNC after SID", res.Strategy, res.Fallbacks)
	}
	if sid := c2.State().SessionID; sid == "" || sid == old || sid == "no-such-session" {
		t.Errorf("session id %q after NEWSID", sid)
	}
	checkState(t, c2, e.raw)
	// The new session holds the selection: the next resume works.
	c2.Drop()
	e.raw.appendN(1)
	res = mustSync(t, c2)
	if res.Strategy != StrategySID {
		t.Errorf("second resume: %v %v", res.Strategy, res.Fallbacks)
	}
	checkState(t, c2, e.raw)
	_ = c
}

func TestSIDMailboxRecreated(t *testing.T) {
	e := startEnv(t)
	e.raw.ok("CREATE Box")
	c := e.client(t, func(o *Options) { o.Mailbox = "Box" })
	e.raw.ok("APPEND Box {5+}\r\nhello")
	mustSync(t, c)
	uv1 := c.State().UIDValidity
	c.Drop()
	e.raw.ok("DELETE Box")
	e.raw.ok("CREATE Box")
	e.raw.ok("APPEND Box {5+}\r\nhallo")
	e.raw.ok("APPEND Box {5+}\r\nhullo")
	res := mustSync(t, c)
	st := c.State()
	if st.UIDValidity == uv1 || len(st.Messages) != 2 {
		t.Errorf("state after recreate: uv %d (was %d), %d messages", st.UIDValidity, uv1, len(st.Messages))
	}
	if len(res.Events) == 0 {
		t.Fatal("no events")
	}
	if fr, ok := res.Events[0].(FullResync); !ok {
		t.Errorf("first event %#v, want FullResync", res.Events[0])
	} else {
		t.Logf("full resync: %s (strategy %v, fallbacks %v)", fr.Reason, res.Strategy, res.Fallbacks)
	}
	if res.Strategy != StrategyFull {
		t.Errorf("strategy %v", res.Strategy)
	}
}

func TestClosePreserveThenResume(t *testing.T) {
	e, c := setup(t, StrategyAuto, 4)
	mustSync(t, c)
	sid := c.State().SessionID
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.raw.appendN(1)
	res := mustSync(t, c)
	if res.Strategy != StrategySID || c.State().SessionID != sid {
		t.Errorf("after LOGOUT (PRESERVE): %v %v sid %q→%q", res.Strategy, res.Fallbacks, sid, c.State().SessionID)
	}
	checkState(t, c, e.raw)
}

func TestWrongPassword(t *testing.T) {
	e, c := setup(t, StrategyAuto, 1)
	_ = c
	// Stored capabilities: AUTHENTICATE and SID are pipelined; SID gets
	// BAD.
	bad := e.client(t, func(o *Options) { o.Password = "wrong" })
	_, err := bad.Sync(context.Background())
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err %v, want AuthError", err)
	}
	if bad.State().SessionID == "" {
		t.Error("session id forgotten after a failed login")
	}
}

func itoa(n uint32) string   { return strconv.FormatUint(uint64(n), 10) }
func itoa64(n uint64) string { return strconv.FormatUint(n, 10) }

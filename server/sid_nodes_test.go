package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/postgres"
)

// Resumable sessions across nodes that share one store: the session
// record's owner node and generation, the SessionTaken hint, and the
// heartbeat (docs/reconnect.md, docs/scale-out.md). The nodes are
// server instances of this process; the hints travel through nodeBus.

// nodeBus is a bus.Bus between the test's nodes: Publish hands a
// SessionTaken hint at once to every peer's server, as a real bus's
// receiving end would, unless the hints are being lost. Other hints are
// recorded and dropped.
type nodeBus struct {
	name  string
	mu    sync.Mutex
	peers []*server.Server
	lose  bool
	sent  []bus.Hint
}

func (b *nodeBus) Publish(h bus.Hint) {
	h.Node = b.name
	b.mu.Lock()
	b.sent = append(b.sent, h)
	peers := slices.Clone(b.peers)
	lose := b.lose
	b.mu.Unlock()
	if lose {
		return
	}
	if h.Kind != bus.SessionTaken {
		return
	}
	for _, p := range peers {
		p.SessionTakenHint(h)
	}
}

func (b *nodeBus) Run(ctx context.Context, _ bus.Handler) error { <-ctx.Done(); return nil }
func (b *nodeBus) Close() error                                 { return nil }

func (b *nodeBus) setLose(lose bool) {
	b.mu.Lock()
	b.lose = lose
	b.mu.Unlock()
}

// published returns the SessionTaken hints published so far (a server
// may publish others: mailbox changes).
func (b *nodeBus) published() []bus.Hint {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []bus.Hint
	for _, h := range b.sent {
		if h.Kind == bus.SessionTaken {
			out = append(out, h)
		}
	}
	return out
}

// node is one server of the test's cluster.
type node struct {
	*imaptest.Env
	reg *session.Registry
	bus *nodeBus
}

// startNode serves st as node name, with a registry configured by opts
// (its NodeID and Bus are set here). The account is user/password,
// which the caller created in st.
func startNode(t testing.TB, st store.Store, name, user, password string, opts session.Options) *node {
	t.Helper()
	b := &nodeBus{name: name}
	opts.NodeID, opts.Bus = name, b
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := session.New(st, opts)
	env := imaptest.Serve(t, server.Options{
		Store:            st,
		FailedLoginDelay: 10 * time.Millisecond,
		Sessions:         reg,
		NodeID:           name,
		Bus:              b,
	}, user, password)
	return &node{Env: env, reg: reg, bus: b}
}

// connect makes the nodes each other's bus peers.
func connect(nodes ...*node) {
	for _, n := range nodes {
		n.bus.mu.Lock()
		n.bus.peers = nil
		for _, p := range nodes {
			if p != n {
				n.bus.peers = append(n.bus.peers, p.Server)
			}
		}
		n.bus.mu.Unlock()
	}
}

// twoNodes starts nodes "a" and "b" on one SQLite store, whose INBOX
// holds n messages, and returns them with INBOX's UIDVALIDITY.
func twoNodes(t *testing.T, n int, opts session.Options) (a, b *node, uv uint32) {
	t.Helper()
	first := imaptest.Start(t, nil) // the store and the account
	st := first.Store
	uv = seed(t, first, n)
	a = startNode(t, st, "a", first.User, first.Password, opts)
	b = startNode(t, st, "b", first.User, first.Password, opts)
	connect(a, b)
	return a, b, uv
}

// hasLine reports whether lines holds l.
func hasLine(lines []string, l string) bool { return slices.Contains(lines, l) }

// A session created on node a resumes on node b with the right SELECTED
// and the changes since the client's mod-sequence (made on b), and a's
// connection, still open, gets DELETEDSID (the draft, §5.3) at its next
// command; back on a, b's connection gets it during IDLE.
func TestSIDAcrossNodes(t *testing.T) {
	a, b, uv := twoNodes(t, 5, session.Options{}) // HIGHESTMODSEQ 6
	c := a.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "a")

	w := selectedW(t, b.Env)
	w.ExpectTagged("w1", `UID STORE 2 +FLAGS (\Flagged)`, "w1 OK") // 7
	expungeUIDs(t, w, "4")                                         // 8, 9

	d := b.DialLogin(t)
	got := d.Cmd("b", fmt.Sprintf("SID %s %d 6", id, uv))
	checkLines(t, got, []string{
		"* SELECTED INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Ok`,
		"* 4 EXISTS",
		"* 0 RECENT",
		fmt.Sprintf("* OK [UIDVALIDITY %d] Ok", uv),
		"* OK [UIDNEXT 6] Ok",
		"* OK [HIGHESTMODSEQ 9] Ok",
		`* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (7))`,
		"* EXPUNGED 4",
		"b OK [READ-WRITE] Ok",
	})
	hints := b.bus.published()
	if len(hints) != 1 || hints[0].Kind != bus.SessionTaken || hints[0].Session != id || hints[0].Generation != 2 || hints[0].Node != "b" {
		t.Fatalf("b published %+v", hints)
	}
	// a's connection: DELETEDSID before its next tagged response, and
	// it holds no session any more.
	got = c.Cmd("n", "NOOP")
	if !hasLine(got, "* DELETEDSID "+id) || got[len(got)-1] != "n OK NOOP completed" {
		t.Fatalf("NOOP on a after the resume on b: %q", got)
	}
	c.Expect("d", "DELETESID", "d BAD No current session")
	if _, ok := a.reg.Holder(1, id); ok || a.reg.ActiveCount() != 0 {
		t.Error("a still holds the session")
	}
	d.Expect("c", "CHECK", "c OK CHECK completed")

	// Back to a while b's connection idles: the hint reaches b, whose
	// connection gets DELETEDSID without a command.
	d.SendLine("i IDLE")
	if l := d.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	e := a.DialLogin(t)
	got = e.Cmd("r", fmt.Sprintf("SID %s %d 9", id, uv))
	if got[0] != "* SELECTED INBOX" || got[len(got)-1] != "r OK [READ-WRITE] Ok" {
		t.Fatalf("resume back on a: %q", got)
	}
	if l := d.ReadLine(); l != "* DELETEDSID "+id {
		t.Fatalf("IDLE on b: got %q, want DELETEDSID", l)
	}
	d.SendLine("DONE")
	if l := d.ReadLine(); l != "i OK IDLE terminated" {
		t.Fatalf("IDLE end: %q", l)
	}
	e.Expect("n", "NOOP", "n OK NOOP completed")
}

// With the hint lost, a's connection still believes it holds the
// session; its next checkpoint fails, and a tells its client DELETEDSID
// rather than overwriting b's state.
func TestSIDAcrossNodesLostHint(t *testing.T) {
	a, b, uv := twoNodes(t, 3, session.Options{}) // HIGHESTMODSEQ 4
	b.bus.setLose(true)
	c := a.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "a")

	d := b.DialLogin(t)
	d.ExpectTagged("b", fmt.Sprintf("SID %s %d 4", id, uv), "b OK [READ-WRITE]")
	if _, ok := a.reg.Holder(1, id); !ok {
		t.Fatal("the hint was not lost: a no longer holds the session")
	}
	// UNSELECT checkpoints the session (nothing selected): refused, so
	// the client hears DELETEDSID with the answer.
	c.Expect("u", "UNSELECT", "* DELETEDSID "+id, "u OK UNSELECT completed")
	c.Expect("d", "DELETESID", "d BAD No current session")
	c.Expect("o", "LOGOUT (PRESERVE)", "* BYE Logging out", "o OK LOGOUT completed")

	// b's state is intact: a resume (on a, hinting b) finds INBOX
	// selected, as b left it, not a's UNSELECT.
	e := a.DialLogin(t)
	got := e.Cmd("r", fmt.Sprintf("SID %s %d 4", id, uv))
	if got[0] != "* SELECTED INBOX" || got[len(got)-1] != "r OK [READ-WRITE] Ok" {
		t.Fatalf("resume after a's refused checkpoint: %q", got)
	}
	got = d.Cmd("n", "NOOP")
	if !hasLine(got, "* DELETEDSID "+id) {
		t.Errorf("NOOP on b after the resume on a: %q", got)
	}

	// A lost hint and a SID on the connection that lost the session:
	// DELETEDSID comes first, about the session lost, and the resume of
	// that same session succeeds (it is claimed back).
	f := b.DialLogin(t)
	f.ExpectTagged("f", fmt.Sprintf("SID %s %d 4", id, uv), "f OK [READ-WRITE]")
	got = e.Cmd("g", fmt.Sprintf("SID %s %d 4", id, uv))
	if got[0] != "* DELETEDSID "+id || got[1] != "* OK [CLOSED] Previous mailbox closed" ||
		got[2] != "* SELECTED INBOX" || got[len(got)-1] != "g OK [READ-WRITE] Ok" {
		t.Fatalf("SID again on the connection that lost it: %q", got)
	}
	e.Expect("n", "NOOP", "n OK NOOP completed")
	if h, ok := a.reg.Holder(1, id); !ok || h == nil {
		t.Error("a does not hold the session it claimed back")
	}

	// DELETESID of a session taken elsewhere (hint lost) deletes
	// nothing: DELETEDSID, then BAD as with no session.
	g := a.DialLogin(t)
	id2 := newSID(t, g, "n")
	h := b.DialLogin(t)
	limitResumes(t, h, "r", id2)
	g.Expect("d", "DELETESID", "* DELETEDSID "+id2, "d BAD No current session")
	if _, err := a.Store.LoadSession(context.Background(), 1, id2); err != nil {
		t.Errorf("the session taken elsewhere was deleted: %v", err)
	}
	h.Expect("n", "NOOP", "n OK NOOP completed")
}

// The takeover through the in-process broker (bus.NewBroker) and the
// server's own bus receiver: the old connection, idling, gets
// DELETEDSID.
func TestSIDAcrossNodesBroker(t *testing.T) {
	first := imaptest.Start(t, nil)
	st := first.Store
	uv := seed(t, first, 2)
	broker := bus.NewBroker()
	start := func(name string) *imaptest.Env {
		b := broker.Node(name)
		reg := session.New(st, session.Options{NodeID: name, Bus: b})
		// Closed once the server has shut down (cleanups run last first).
		t.Cleanup(func() { b.Close() })
		return imaptest.Serve(t, server.Options{Store: st, FailedLoginDelay: 10 * time.Millisecond,
			Sessions: reg, NodeID: name, Bus: b}, first.User, first.Password)
	}
	a, b := start("a"), start("b")
	c := a.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "x")
	c.SendLine("i IDLE")
	if l := c.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	d := b.DialLogin(t)
	d.ExpectTagged("r", fmt.Sprintf("SID %s %d 3", id, uv), "r OK [READ-WRITE]")
	if l := c.ReadLine(); l != "* DELETEDSID "+id {
		t.Fatalf("IDLE on a: %q, want DELETEDSID", l)
	}
	c.SendLine("DONE")
	if l := c.ReadLine(); l != "i OK IDLE terminated" {
		t.Fatalf("IDLE end: %q", l)
	}
}

// With the hint lost, a connection that idles learns of the takeover at
// the next resync of the bus (its reconnection, its safety poll).
func TestSIDAcrossNodesResync(t *testing.T) {
	a, b, uv := twoNodes(t, 2, session.Options{})
	b.bus.setLose(true)
	c := a.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "x")
	keep := a.DialLogin(t) // holds another session, not taken
	other := newSID(t, keep, "y")
	c.SendLine("i IDLE")
	if l := c.ReadLine(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	d := b.DialLogin(t)
	d.ExpectTagged("r", fmt.Sprintf("SID %s %d 3", id, uv), "r OK [READ-WRITE]")
	a.Server.SessionsResync()
	if l := c.ReadLine(); l != "* DELETEDSID "+id {
		t.Fatalf("IDLE on a after the resync: %q, want DELETEDSID", l)
	}
	c.SendLine("DONE")
	if l := c.ReadLine(); l != "i OK IDLE terminated" {
		t.Fatalf("IDLE end: %q", l)
	}
	keep.Expect("n", "NOOP", "n OK NOOP completed")
	if _, ok := a.reg.Holder(1, other); !ok {
		t.Error("the resync dropped a session nobody took")
	}
}

// A node that stops heartbeating (hung, cut off) leaves the sessions
// its connections hold resumable elsewhere and evictable under the
// per-user limit; its connections then lose them.
func TestSIDAcrossNodesDeadNode(t *testing.T) {
	clock := newLimitClock()
	a, b, _ := twoNodes(t, 1, session.Options{Now: clock.Now, MaxPerUser: 2})
	c1, c2 := a.DialLogin(t), a.DialLogin(t)
	s1, s2 := newSID(t, c1, "a"), newSID(t, c2, "a")
	d := b.DialLogin(t)
	d.Expect("n", "SID", limitNO("n")) // both active on a live node

	a.reg.Stop()
	clock.Advance(session.DeadAfter * session.DefaultHeartbeat)
	// Resumable: b claims s1 (its hint reaches a, whose c1 loses it).
	limitResumes(t, d, "r", s1)
	c1.Expect("n", "NOOP", "* DELETEDSID "+s1, "n OK NOOP completed")
	// Evictable: s2, held on the dead node, is the user's oldest
	// inactive session and makes room for a new one.
	e := b.DialLogin(t)
	s3 := newSID(t, e, "s")
	if s3 == s1 || s3 == s2 {
		t.Fatal("SID reused an id")
	}
	if _, err := a.Store.LoadSession(context.Background(), 1, s2); err == nil {
		t.Error("the dead node's session was not evicted")
	}
	// a's connection finds out at its next checkpoint.
	c2.Expect("x", "ENABLE CONDSTORE", "* ENABLED CONDSTORE", "* DELETEDSID "+s2, "x OK ENABLE completed")
}

// The takeover across nodes on PostgreSQL: each node with its own
// connection pool, as separate processes would have.
func TestSIDAcrossNodesPostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u, err := stA.CreateUser(context.Background(), "alice", string(h), store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, stA, "a", "alice", "secret", session.Options{})
	b := startNode(t, stB, "b", "alice", "secret", session.Options{})
	connect(a, b)
	uv := seed(t, a.Env, 3) // HIGHESTMODSEQ 4

	c := a.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "a")
	w := selectedW(t, b.Env)
	w.ExpectTagged("w1", `UID STORE 2 +FLAGS (\Flagged)`, "w1 OK") // 5
	d := b.DialLogin(t)
	got := d.Cmd("b", fmt.Sprintf("SID %s %d 4", id, uv))
	checkLines(t, got, []string{
		"* SELECTED INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Ok`,
		"* 3 EXISTS",
		"* 0 RECENT",
		fmt.Sprintf("* OK [UIDVALIDITY %d] Ok", uv),
		"* OK [UIDNEXT 4] Ok",
		"* OK [HIGHESTMODSEQ 5] Ok",
		`* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (5))`,
		"b OK [READ-WRITE] Ok",
	})
	got = c.Cmd("n", "NOOP")
	if !hasLine(got, "* DELETEDSID "+id) || got[len(got)-1] != "n OK NOOP completed" {
		t.Fatalf("NOOP on a after the resume on b: %q", got)
	}
	rec, err := stA.LoadSession(context.Background(), u.ID, id)
	if err != nil || rec.Owner != "b" || rec.Generation != 2 {
		t.Errorf("stored: owner %q generation %d, %v; want b, 2", rec.Owner, rec.Generation, err)
	}
	// The hint lost: b's stale checkpoint is refused there too.
	a.bus.setLose(true)
	e := a.DialLogin(t)
	e.ExpectTagged("r", fmt.Sprintf("SID %s %d 5", id, uv), "r OK [READ-WRITE]")
	d.Expect("u", "UNSELECT", "* DELETEDSID "+id, "u OK UNSELECT completed")
}

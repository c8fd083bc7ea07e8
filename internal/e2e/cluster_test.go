//go:build linux

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/bus/pgbus"
	"github.com/quickimap/quickimap/client"
	"github.com/quickimap/quickimap/internal/cluster"
	"github.com/quickimap/quickimap/internal/imaptest"
)

// The tests of this file run three quickimap processes on one
// PostgreSQL database (internal/cluster): what one node does, the
// others must show.

// startCluster starts three nodes with the account alice (and bob).
func startCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	return cluster.Start(t, cluster.Options{Bin: buildBinary(t), Users: []string{"alice", "bob"}})
}

// appendMsg appends a small message and returns its UID.
func appendMsg(t *testing.T, c *imaptest.Conn, tag, subject string) uint32 {
	t.Helper()
	body := "Subject: " + subject + "\r\n\r\nbody of " + subject + "\r\n"
	lines := c.ExpectTagged(tag, fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body), tag+" OK [APPENDUID ")
	_, uids, ok := parseAppendUID(lines[len(lines)-1])
	if !ok || len(uids) != 1 {
		t.Fatalf("APPEND: %q", lines)
	}
	return uids[0]
}

// waitLine reads lines until one matches re (each read fails the test
// after 10 s) and returns it with the lines before it.
func waitLine(t *testing.T, c *imaptest.Conn, re string) (string, []string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	var before []string
	for {
		l := c.ReadLine()
		if rx.MatchString(l) {
			return l, before
		}
		before = append(before, l)
		if len(before) > 100 {
			t.Fatalf("no line matching %q in %q", re, before)
		}
	}
}

// TestClusterIdle: a connection in IDLE on node1 is told of an APPEND,
// a flag change and an EXPUNGE made on node2 and on node3, and of an
// LMTP delivery to node3 (RFC 2177:
// the EXISTS, FETCH and EXPUNGE responses of changes made elsewhere).
// The nodes' safety poll is a minute: the 10 s each wait allows can
// only be met by the change hints between the nodes.
func TestClusterIdle(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Bin: buildBinary(t), LMTP: true})
	a := c.Env(0, "").DialLogin(t)
	b := c.Env(1, "").DialLogin(t)
	d := c.Env(2, "").DialLogin(t)
	a.ExpectTagged("a1", "SELECT INBOX", "a1 OK [READ-WRITE]")
	b.ExpectTagged("b0", "SELECT INBOX", "b0 OK")
	d.ExpectTagged("d0", "SELECT INBOX", "d0 OK")
	a.SendLine("a2 IDLE")
	if l := a.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	var lat []string
	step := func(what, want string, change func()) {
		t.Helper()
		start := time.Now()
		change()
		l, _ := waitLine(t, a, want)
		lat = append(lat, fmt.Sprintf("%s %v", what, time.Since(start).Round(100*time.Microsecond)))
		t.Logf("%s: node1 got %q", what, l)
	}
	// A session addresses only the messages it was told of, and news
	// from another node reaches a session asynchronously: a writer
	// SELECTs again (which reads the store) before it changes a message
	// another node appended.
	reselect := func(c *imaptest.Conn, tag string) { c.ExpectTagged(tag, "SELECT INBOX", tag+" OK") }
	var u1, u2, u3 uint32
	step("APPEND on node2", `^\* 1 EXISTS$`, func() { u1 = appendMsg(t, b, "b1", "one") })
	step("APPEND on node3", `^\* 2 EXISTS$`, func() { u2 = appendMsg(t, d, "d1", "two") })
	step("STORE on node3", `^\* 1 FETCH \(.*FLAGS \(\\Flagged`, func() {
		reselect(d, "d1s")
		d.ExpectTagged("d2", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Flagged)`, u1), "d2 OK")
	})
	step("STORE on node2", `^\* 2 FETCH \(.*FLAGS \(.*\\Seen`, func() {
		reselect(b, "b1s")
		b.ExpectTagged("b2", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Seen)`, u2), "b2 OK")
	})
	step("APPEND on node2 again", `^\* 3 EXISTS$`, func() { u3 = appendMsg(t, b, "b3", "three") })
	step("EXPUNGE on node2", `^\* 1 EXPUNGE$`, func() {
		b.ExpectTagged("b4", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u1), "b4 OK")
		b.ExpectTagged("b5", fmt.Sprintf("UID EXPUNGE %d", u1), "b5 OK")
	})
	step("EXPUNGE on node3", `^\* 2 EXPUNGE$`, func() {
		reselect(d, "d2s")
		d.ExpectTagged("d3", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u3), "d3 OK")
		d.ExpectTagged("d4", fmt.Sprintf("UID EXPUNGE %d", u3), "d4 OK")
	})
	step("LMTP delivery on node3", `^\* 2 EXISTS$`, func() { deliverLMTP(t, c.Node(2).LMTPAddr, "alice@example.org", "four") })
	a.SendLine("DONE")
	a.ReadUntilTagged("a2")
	got := a.ExpectTagged("a3", "FETCH 1:* (UID FLAGS)", "a3 OK")
	if len(got) != 3 || !strings.HasPrefix(got[0], fmt.Sprintf(`* 1 FETCH (UID %d FLAGS (\Seen`, u2)) ||
		!strings.HasPrefix(got[1], fmt.Sprintf("* 2 FETCH (UID %d FLAGS (", u3+1)) {
		t.Errorf("node1's view after the changes: %q\nwant UID %d (\\Seen) and the delivery, UID %d", got, u2, u3+1)
	}
	t.Logf("change on another node to the IDLE response on node1: %s", strings.Join(lat, ", "))
}

// deliverLMTP delivers a small message to rcpt over LMTP at addr.
func deliverLMTP(t *testing.T, addr, rcpt, subject string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := smtp.NewClientLMTP(nc)
	if err := c.Hello("cluster.test"); err != nil {
		t.Fatalf("LHLO: %v", err)
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	fmt.Fprintf(w, "Subject: %s\r\n\r\nbody of %s\r\n", subject, subject)
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatalf("delivery to %s: %v", rcpt, err)
	}
}

// sidSession is a resumable session a test created: its id and the
// mailbox state the client saw.
type sidSession struct {
	id                  string
	uidValidity, modSeq string
}

var (
	uidValidityRE = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	highestRE     = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
)

// newSession selects INBOX with CONDSTORE on c and makes the connection's
// session resumable (SID, draft-ietf-lemonade-reconnect-07 §3.2).
func newSession(t testing.TB, c *imaptest.Conn) sidSession {
	t.Helper()
	var s sidSession
	for _, l := range c.ExpectTagged("s1", "SELECT INBOX (CONDSTORE)", "s1 OK [READ-WRITE]") {
		if m := uidValidityRE.FindStringSubmatch(l); m != nil {
			s.uidValidity = m[1]
		}
		if m := highestRE.FindStringSubmatch(l); m != nil {
			s.modSeq = m[1]
		}
	}
	got := c.Cmd("s2", "SID")
	if len(got) != 2 || !strings.HasPrefix(got[0], "* NEWSID ") || !strings.HasPrefix(got[1], "s2 OK") {
		t.Fatalf("SID: %q", got)
	}
	s.id = strings.TrimPrefix(got[0], "* NEWSID ")
	if s.uidValidity == "" || s.modSeq == "" {
		t.Fatalf("SELECT (CONDSTORE) without UIDVALIDITY or HIGHESTMODSEQ")
	}
	return s
}

// resume resumes s on c (§3.3) and returns the untagged responses after
// checking that INBOX came back selected read-write.
func resume(t *testing.T, c *imaptest.Conn, tag string, s sidSession) []string {
	t.Helper()
	got := c.Cmd(tag, fmt.Sprintf("SID %s %s %s", s.id, s.uidValidity, s.modSeq))
	if got[0] != "* SELECTED INBOX" || !strings.HasPrefix(got[len(got)-1], tag+" OK [READ-WRITE]") {
		t.Fatalf("SID resume: %q", got)
	}
	return got[1 : len(got)-1]
}

// wantLines fails unless every want is a substring of some line of got
// and no line contains any of the unwanted.
func wantLines(t *testing.T, what string, got []string, want, unwanted []string) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, w) }) {
			t.Errorf("%s: no %q in %q", what, w, got)
		}
	}
	for _, u := range unwanted {
		if slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, u) }) {
			t.Errorf("%s: %q in %q", what, u, got)
		}
	}
}

// TestClusterSIDTakeover: a session created on node1 resumes on node2
// with INBOX selected and only what changed meanwhile, changes made on
// node3 (§3.3); node1's connection, still open in IDLE, is told
// DELETEDSID (§5.3: a session is active on one connection only), and
// the session is resumable again on node1 afterwards.
func TestClusterSIDTakeover(t *testing.T) {
	c := startCluster(t)
	w := c.Env(2, "").DialLogin(t)
	var uids []uint32
	for i := 1; i <= 3; i++ {
		uids = append(uids, appendMsg(t, w, "w"+strconv.Itoa(i), "m"+strconv.Itoa(i)))
	}

	a := c.Env(0, "").DialLogin(t)
	s := newSession(t, a)
	a.SendLine("a1 IDLE")
	if l := a.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}

	// Changes on node3 while the client is "away" (its connection to
	// node1 still open, as after a silent loss of coverage).
	w.ExpectTagged("w4", "SELECT INBOX", "w4 OK")
	w.ExpectTagged("w5", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Flagged)`, uids[1]), "w5 OK")
	w.ExpectTagged("w6", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uids[2]), "w6 OK")
	w.ExpectTagged("w7", fmt.Sprintf("UID EXPUNGE %d", uids[2]), "w7 OK")
	u4 := appendMsg(t, w, "w8", "m4")
	// node1's IDLE sees the last of them before the takeover, so that
	// what it reports after is the DELETEDSID alone.
	waitLine(t, a, `^\* 3 EXISTS$`)

	b := c.Env(1, "").DialLogin(t)
	start := time.Now()
	got := resume(t, b, "r1", s)
	took := time.Since(start)
	wantLines(t, "resume on node2", got,
		[]string{"* 3 EXISTS", fmt.Sprintf("* EXPUNGED %d", uids[2]),
			fmt.Sprintf(`FETCH (UID %d FLAGS (\Flagged \Recent) MODSEQ (`, uids[1]),
			fmt.Sprintf("FETCH (UID %d FLAGS (", u4)},
		[]string{fmt.Sprintf("UID %d ", uids[0])})

	l, before := waitLine(t, a, `^\* DELETEDSID `)
	if l != "* DELETEDSID "+s.id {
		t.Errorf("node1 got %q, want * DELETEDSID %s", l, s.id)
	}
	t.Logf("resume on node2 took %v; node1 said %q after %q", took, l, before)
	a.SendLine("DONE")
	a.ReadUntilTagged("a1")

	// The session lives on in node2's connection: node2 sees changes,
	// and is told DELETEDSID in turn when the client comes back to
	// node1.
	b.ExpectTagged("r2", fmt.Sprintf(`UID STORE %d +FLAGS (\Answered)`, uids[0]), "r2 OK")
	b.SendLine("r3 IDLE")
	if l := b.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	a2 := c.Env(0, "").DialLogin(t)
	s2 := s
	s2.modSeq = "1"
	got = resume(t, a2, "r4", s2)
	wantLines(t, "resume back on node1", got,
		[]string{"* 3 EXISTS", fmt.Sprintf(`FETCH (UID %d FLAGS (\Answered`, uids[0])}, nil)
	if l, _ := waitLine(t, b, `^\* DELETEDSID `); l != "* DELETEDSID "+s.id {
		t.Errorf("node2 got %q", l)
	}
}

// TestClusterNodeKilled: the sessions of a node killed with SIGKILL
// resume on the other nodes, with what changed after the kill; once
// restarted, the node serves again and takes a session back.
func TestClusterNodeKilled(t *testing.T) {
	c := startCluster(t)
	type user struct {
		name string
		uids []uint32
		s    sidSession
	}
	users := []*user{{name: "alice"}, {name: "bob"}}
	for _, u := range users {
		w := c.Env(1, u.name).DialLogin(t)
		for i := range 3 {
			u.uids = append(u.uids, appendMsg(t, w, "w"+strconv.Itoa(i), u.name+strconv.Itoa(i)))
		}
		a := c.Env(0, u.name).DialLogin(t)
		u.s = newSession(t, a)
		a.ExpectTagged("a1", fmt.Sprintf(`UID STORE %d +FLAGS (\Seen)`, u.uids[0]), "a1 OK")
		// The connection stays open: node1 holds the session when it
		// dies.
	}
	c.Kill(0)

	for i, u := range users {
		w := c.Env(1, u.name).DialLogin(t)
		w.ExpectTagged("w1", "SELECT INBOX", "w1 OK")
		w.ExpectTagged("w2", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Flagged)`, u.uids[1]), "w2 OK")
		w.ExpectTagged("w3", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u.uids[2]), "w3 OK")
		w.ExpectTagged("w4", fmt.Sprintf("UID EXPUNGE %d", u.uids[2]), "w4 OK")

		// alice comes back on node2, bob on node3.
		r := c.Env(1+i, u.name).DialLogin(t)
		got := resume(t, r, "r1", u.s)
		// The \Seen the session set after its SELECT, on node1 before
		// the kill, is part of the delta too.
		wantLines(t, u.name+" resumes on "+c.Node(1+i).Name, got,
			[]string{"* 2 EXISTS", fmt.Sprintf("* EXPUNGED %d", u.uids[2]),
				fmt.Sprintf(`FETCH (UID %d FLAGS (\Seen \Recent) MODSEQ (`, u.uids[0]),
				fmt.Sprintf(`FETCH (UID %d FLAGS (\Flagged \Recent) MODSEQ (`, u.uids[1])}, nil)
		// The client goes away without LOGOUT (which would end the
		// session).
		r.NC.Close()
	}

	c.Restart(0)
	for _, u := range users {
		a := c.Env(0, u.name).DialLogin(t)
		s := u.s
		s.modSeq = "1"
		got := resume(t, a, "r4", s)
		wantLines(t, u.name+" back on the restarted node1", got, []string{"* 2 EXISTS"}, nil)
	}
}

// TestClusterReconnectChaos is TestReconnectChaos with three nodes:
// every reconnection of the client goes to a node chosen at random
// through a proxy that cuts it at random points, while connections to
// every node change the mailbox. After each cycle the client's state
// equals the store's. The client's last sync runs on a connection that
// stayed open, so the changes made on other nodes reach it through the
// nodes' hints: it polls (NOOP) until it has them, 10 s at most.
func TestClusterReconnectChaos(t *testing.T) {
	cycles := 500
	if testing.Short() { // not reached today: buildBinary skips in -short mode
		cycles = 50
	}
	runClusterChaos(t, cycles, 0)
}

// TestClusterReconnectChaosNodeKills is TestClusterReconnectChaos with
// 200 cycles in which, every 40 cycles, a node (each in turn) is killed
// with SIGKILL at the start of a cycle and restarted at its end: the
// client, whose session the dead node may hold, reconnects to the nodes
// still up and resumes there.
func TestClusterReconnectChaosNodeKills(t *testing.T) {
	runClusterChaos(t, 200, 40)
}

// runClusterChaos runs the chaos cycles on three nodes; with killEvery
// > 0, one cycle in killEvery runs with a node killed.
func runClusterChaos(t *testing.T, cycles, killEvery int) {
	c := startCluster(t)
	var lastNode string
	var crossNode atomic.Int64
	proxy := newCutProxyPick(t, func() string {
		a := c.RandomAddr()
		if lastNode != "" && a != lastNode {
			crossNode.Add(1)
		}
		lastNode = a
		return a
	})

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	dial := func(addr string) *imapclient.Client {
		mc, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mc.Close() })
		if err := mc.Login("alice", c.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		return mc
	}
	// One mutator per node, sharing a generator; a step picks one of
	// the nodes up.
	mrng := rand.New(rand.NewPCG(seed, 1))
	var muts []*mutator
	for i, addr := range c.Addrs() {
		muts = append(muts, &mutator{c: dial(addr), rng: mrng, n: i * 1_000_000})
	}
	down := -1 // the node killed for the current cycle
	step := func() error {
		i := mrng.IntN(len(muts))
		if i == down {
			i = (i + 1) % len(muts)
		}
		return muts[i].step()
	}
	for range 40 {
		if err := muts[0].append(); err != nil {
			t.Fatal(err)
		}
	}
	// The truth: a fresh SELECT reads the store (on a node that is up).
	checkers := make([]*imapclient.Client, len(muts))
	for i, addr := range c.Addrs() {
		checkers[i] = dial(addr)
	}
	truth := func() ([]client.Message, error) {
		checker := checkers[0]
		if down == 0 {
			checker = checkers[1]
		}
		if _, err := checker.Select("INBOX", nil).Wait(); err != nil {
			return nil, err
		}
		return serverMessages(checker)
	}
	kills := 0

	cl := client.New(client.Options{
		Addr:     c.Node(0).Addr,
		Username: "alice",
		Password: c.Password,
		Timeout:  5 * time.Second,
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", proxy.l.Addr().String())
		},
	})
	ctx := context.Background()
	strategies := map[string]int{}
	failed, polls := 0, 0
	var slowest, slowestConverge time.Duration
	t0 := time.Now()
	for cycle := range cycles {
		start := time.Now()
		cl.Drop()
		if killEvery > 0 && cycle%killEvery == killEvery/2 {
			down = kills % len(muts)
			kills++
			c.Kill(down)
		}
		for range rng.IntN(4) {
			if err := step(); err != nil {
				t.Fatalf("cycle %d: change: %v", cycle, err)
			}
		}
		if rng.IntN(10) < 7 {
			proxy.arm(&cutPlan{toClient: rng.IntN(3) > 0, after: rng.Int64N(3000)})
		}
		stop := make(chan struct{})
		mutErr := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					mutErr <- nil
					return
				default:
				}
				if err := step(); err != nil {
					mutErr <- err
					return
				}
			}
		}()
		var res client.SyncResult
		var err error
		for attempt := 0; ; attempt++ {
			res, err = cl.Sync(ctx)
			if err == nil {
				break
			}
			failed++
			if attempt == 5 {
				close(stop)
				<-mutErr
				t.Fatalf("cycle %d: sync keeps failing: %v", cycle, err)
			}
		}
		close(stop)
		if err := <-mutErr; err != nil {
			t.Fatalf("cycle %d: change: %v", cycle, err)
		}
		strategies[res.Strategy.String()]++
		want, err := truth()
		if err != nil {
			t.Fatalf("cycle %d: server state: %v", cycle, err)
		}
		// Quiet now: the client catches up with what the mutators did
		// during its sync, on whichever node it is.
		converge := time.Now()
		for fails := 0; ; {
			if _, err := cl.Sync(ctx); err != nil {
				// (The armed cut may land here: the link dies whenever
				// it dies; the retry runs on a whole one.)
				failed++
				if fails++; fails > 5 {
					t.Fatalf("cycle %d: final sync keeps failing: %v", cycle, err)
				}
				continue
			}
			d := diffMessages(cl.State().Messages, want)
			if d == "" {
				break
			}
			polls++
			if time.Since(converge) > 10*time.Second {
				t.Fatalf("cycle %d (seed %d): client state still differs from the store's after 10 s:\n%s\nrecent traffic:\n%s",
					cycle, seed, d, proxy.transcript())
			}
		}
		slowestConverge = max(slowestConverge, time.Since(converge))
		if down >= 0 {
			// Back up, with new connections of its mutator and checker.
			c.Restart(down)
			muts[down].c = dial(c.Node(down).Addr)
			checkers[down] = dial(c.Node(down).Addr)
			down = -1
		}
		if d := time.Since(start); d > slowest {
			slowest = d
			if d > time.Second {
				t.Logf("cycle %d took %v", cycle, d)
			}
		}
	}
	var dials []string
	for _, n := range c.Nodes() {
		dials = append(dials, fmt.Sprintf("%s %d", n.Name, n.Dials()))
		if n.Dials() < cycles/8 {
			t.Errorf("%s got only %d connections in %d cycles", n.Name, n.Dials(), cycles)
		}
	}
	t.Logf("%d cycles in %v, %d with a node killed: %d connections cut, %d failed syncs retried, %d extra polls to converge (slowest %v); strategies %v; connections %s, %d to another node than the last; slowest cycle %v",
		cycles, time.Since(t0).Round(time.Millisecond), kills, proxy.cuts.Load(), failed, polls, slowestConverge, strategies,
		strings.Join(dials, ", "), crossNode.Load(), slowest)
	if proxy.cuts.Load() < int64(cycles/3) {
		t.Errorf("only %d cuts in %d cycles: the proxy is not cutting", proxy.cuts.Load(), cycles)
	}
	if strategies[client.StrategySID.String()] < cycles/2 {
		t.Errorf("SID used in only %d of %d cycles: %v", strategies[client.StrategySID.String()], cycles, strategies)
	}
}

// TestClusterBusReconnect: the connection on which node1 listens for
// the other nodes' change hints is terminated by PostgreSQL; a change
// made on node2 meanwhile, whose hint node1 cannot have heard, still
// reaches node1's IDLE client (the bus reconnects and resynchronises
// every open mailbox) well before the minute of the safety poll.
func TestClusterBusReconnect(t *testing.T) {
	c := startCluster(t)
	a := c.Env(0, "").DialLogin(t)
	a.ExpectTagged("a1", "SELECT INBOX", "a1 OK")
	a.SendLine("a2 IDLE")
	if l := a.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	b := c.Env(1, "").DialLogin(t)
	appendMsg(t, b, "b1", "before")
	waitLine(t, a, `^\* 1 EXISTS$`)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		pgbus.ApplicationName("listen", c.Node(0).Name)).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening connections of node1, want 1", killed)
	}
	start := time.Now()
	appendMsg(t, b, "b2", "while node1 is deaf")
	waitLine(t, a, `^\* 2 EXISTS$`)
	t.Logf("node1 saw the APPEND made while its bus was cut after %v", time.Since(start).Round(time.Millisecond))
	// The bus is back: the next change arrives as a hint again.
	appendMsg(t, b, "b3", "after")
	waitLine(t, a, `^\* 3 EXISTS$`)
	a.SendLine("DONE")
	a.ReadUntilTagged("a2")
	if !strings.Contains(c.Node(0).Log(), "reconnecting") {
		t.Errorf("node1 did not log the loss of its listening connection")
	}
}

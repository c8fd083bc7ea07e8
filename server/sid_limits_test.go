package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
)

// Resumable-session limits, expiry and races (draft-ietf-lemonade-
// reconnect-07 §3.2, §3.3, §7), with the registry's clock injected: no
// test sleeps.

// limitClock is a settable clock, safe for the server's goroutines.
type limitClock struct {
	mu  sync.Mutex
	now time.Time
}

func newLimitClock() *limitClock {
	return &limitClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *limitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *limitClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// limitEnv starts a server whose session registry has opts (and the
// clock, when not nil), and returns the registry too.
func limitEnv(t *testing.T, clock *limitClock, opts session.Options) (*imaptest.Env, *session.Registry) {
	t.Helper()
	if clock != nil {
		opts.Now = clock.Now
	}
	var reg *session.Registry
	env := imaptest.Start(t, func(o *server.Options) {
		reg = session.New(o.Store, opts)
		o.Sessions = reg
	})
	return env, reg
}

// limitUser creates another account (password "pw").
func limitUser(t *testing.T, env *imaptest.Env, name string) store.User {
	t.Helper()
	h, err := auth.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	u, err := env.Store.CreateUser(context.Background(), name, h, store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func limitCount(t *testing.T, env *imaptest.Env) int {
	t.Helper()
	n, err := env.Store.CountSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// limitNO is the answer to a SID that would create a session over a
// limit: RFC 5530 LIMIT.
func limitNO(tag string) string { return tag + " NO [LIMIT] Too many sessions" }

// limitResumes checks that SID id resumes the session (nothing selected).
func limitResumes(t *testing.T, c *imaptest.Conn, tag, id string) {
	t.Helper()
	c.Expect(tag, "SID "+id+" 1 1", "* SELECTED", tag+" OK SID completed: session resumed")
}

// §3.2: "In order to limit Denial of Service attacks a server
// implementation SHOULD have a per-user limit ... When this limit is
// reached the server SHOULD expire the oldest inactive (not associated
// with an active TCP connection) session associated with the same user.
// If no inactive session associated with the same user is available, the
// server MUST return the tagged NO response to the SID command." A SID
// with an unknown id creates a session, so it is subject to the limit
// too. Another user is not affected.
func TestSIDLimitPerUser(t *testing.T) {
	clock := newLimitClock()
	env, _ := limitEnv(t, clock, session.Options{MaxPerUser: 3})

	c1 := env.DialLogin(t)
	s1 := newSID(t, c1, "a")
	draftPreserve(t, c1) // inactive, oldest
	clock.Advance(time.Minute)
	c2 := env.DialLogin(t)
	s2 := newSID(t, c2, "a")
	draftPreserve(t, c2) // inactive
	clock.Advance(time.Minute)
	c3 := env.DialLogin(t)
	s3 := newSID(t, c3, "a") // active
	clock.Advance(time.Minute)

	// At the limit: s1, the oldest inactive, makes room.
	c4 := env.DialLogin(t)
	newSID(t, c4, "a")
	if n := limitCount(t, env); n != 3 {
		t.Errorf("%d sessions after an eviction, want 3", n)
	}
	clock.Advance(time.Minute)
	c5 := env.DialLogin(t)
	limitResumes(t, c5, "b", s2) // s2 survived
	// All three (s2, s3, s4) are active now: NO, for a new session and
	// for an unknown id (s1 is gone) alike.
	c6 := env.DialLogin(t)
	c6.Expect("c", "SID", limitNO("c"))
	c6.Expect("d", "SID "+s1+" 1 1", limitNO("d"))
	c6.Expect("e", "DELETESID", "e BAD No current session")

	// Another user has a limit of its own.
	limitUser(t, env, "bob")
	b := env.Dial(t)
	b.ExpectTagged("l", "LOGIN bob pw", "l OK")
	newSID(t, b, "b")

	// s3 becomes inactive: it is the one evicted for the next session.
	draftPreserve(t, c3)
	clock.Advance(time.Minute)
	draftNewID(t, c6.Cmd("f", "SID "+s1+" 1 1"), "f", s1)
	c7 := env.DialLogin(t)
	c7.Expect("g", "SID "+s3+" 1 1", limitNO("g"))
	// The survivors are still held where they were.
	c4.Expect("n4", "NOOP", "n4 OK NOOP completed")
	c5.Expect("n5", "NOOP", "n5 OK NOOP completed")
}

// §7: "a server implementation should consider imposing a limit on the
// maximum number of resumable sessions associated with ... a particular
// IP address/network. Once this limit has been reached, the oldest
// inactive session must be destroyed and the new one can be created."
// Sessions created from one address count together, all users alike, as
// for phones behind one carrier NAT. At the cap the creating user's own
// oldest inactive session there goes first, then the address's oldest
// inactive one of any user; only when every session from the address is
// active is SID refused. Resuming is not creating, and another address is
// not affected.
func TestSIDLimitPerIP(t *testing.T) {
	clock := newLimitClock()
	env, _ := limitEnv(t, clock, session.Options{MaxPerIP: 3})
	bob := limitUser(t, env, "bob")
	limitUser(t, env, "carol")
	limitUser(t, env, "dave")
	alice, err := env.Store.UserByName(context.Background(), env.User)
	if err != nil {
		t.Fatal(err)
	}
	login := func(name string) *imaptest.Conn {
		c := env.Dial(t)
		c.ExpectTagged("l", "LOGIN "+name+" pw", "l OK")
		return c
	}
	exists := func(u store.User, id string) bool {
		t.Helper()
		_, err := env.Store.LoadSession(context.Background(), u.ID, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	b1 := login("bob")
	sb := newSID(t, b1, "a")
	draftPreserve(t, b1) // inactive, the address's oldest
	clock.Advance(time.Minute)
	c1 := env.DialLogin(t)
	s1 := newSID(t, c1, "b")
	draftPreserve(t, c1) // inactive
	clock.Advance(time.Minute)
	c2 := env.DialLogin(t)
	s2 := newSID(t, c2, "c") // active; the address is at its cap
	clock.Advance(time.Minute)

	// The user's own oldest inactive session makes room, not bob's
	// older one.
	c3 := env.DialLogin(t)
	newSID(t, c3, "d")
	if exists(alice, s1) || !exists(bob, sb) || !exists(alice, s2) {
		t.Errorf("after alice's new session: s1 %v, bob's %v, s2 %v", exists(alice, s1), exists(bob, sb), exists(alice, s2))
	}
	clock.Advance(time.Minute)
	// carol has none there: the address's oldest inactive one, bob's,
	// makes room.
	newSID(t, login("carol"), "e")
	if exists(bob, sb) {
		t.Error("bob's inactive session survived carol's")
	}
	if n := limitCount(t, env); n != 3 {
		t.Errorf("%d sessions, want 3", n)
	}
	// Every session from the address is active now: NO, for a new
	// session and for an unknown id alike.
	d := login("dave")
	d.Expect("f", "SID", limitNO("f"))
	d.Expect("g", "SID "+strings.Repeat("b", 26)+" 1 1", limitNO("g"))
	// Resuming is not creating.
	c4 := env.DialLogin(t)
	limitResumes(t, c4, "h", s2)
	// Another address has a cap of its own.
	other := env.DialFrom(t, "127.0.0.2")
	env.Login(t, other)
	newSID(t, other, "i")
	if n := limitCount(t, env); n != 4 {
		t.Errorf("%d sessions, want 4", n)
	}
}

// §3.2: "A server implementation might also have a per-server limit on
// maximum number of resumable sessions ... If the server has reached the
// limit, it MUST return the tagged NO response to the SID command."
// Resuming is not creating: it still works at the limit; deleting one
// session makes room.
func TestSIDLimitGlobal(t *testing.T) {
	env, _ := limitEnv(t, nil, session.Options{MaxTotal: 2})
	limitUser(t, env, "bob")
	a := env.DialLogin(t)
	sa := newSID(t, a, "a")
	draftPreserve(t, a)
	b := env.Dial(t)
	b.ExpectTagged("l", "LOGIN bob pw", "l OK")
	newSID(t, b, "b")

	c := env.DialLogin(t)
	c.Expect("c", "SID", limitNO("c"))
	limitResumes(t, c, "d", sa)
	b.Expect("e", "DELETESID", "e OK DELETESID completed")
	d := env.DialLogin(t)
	newSID(t, d, "f")
}

// §7: "Inactive sessions SHOULD have an expiration timeout"; §3.1: "Upon
// session expiration the session ID becomes invalid and its associated
// state is deleted"; §2 case b: a resume after the timeout "creates a new
// session". An active session never expires, however long it is held.
func TestSIDLimitExpiry(t *testing.T) {
	clock := newLimitClock()
	env, reg := limitEnv(t, clock, session.Options{Timeout: time.Hour})
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, env.User)
	if err != nil {
		t.Fatal(err)
	}

	c1 := env.DialLogin(t)
	s1 := newSID(t, c1, "a")
	draftPreserve(t, c1)
	clock.Advance(59 * time.Minute)
	c2 := env.DialLogin(t)
	limitResumes(t, c2, "b", s1) // just in time
	draftPreserve(t, c2)         // inactive again from now
	clock.Advance(61 * time.Minute)
	c3 := env.DialLogin(t)
	held := draftNewID(t, c3.Cmd("c", "SID "+s1+" 1 1"), "c", s1) // expired
	if _, err := env.Store.LoadSession(ctx, u.ID, s1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session %s still stored: %v", s1, err)
	}

	// The sweep deletes an expired row without anybody resuming it, and
	// keeps the one held on c3.
	c4 := env.DialLogin(t)
	s2 := newSID(t, c4, "d")
	draftPreserve(t, c4)
	if n := limitCount(t, env); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	clock.Advance(30 * time.Minute)
	if n, err := reg.Expire(ctx); err != nil || n != 0 {
		t.Errorf("Expire before the timeout: %d, %v", n, err)
	}
	clock.Advance(31 * time.Minute)
	if n, err := reg.Expire(ctx); err != nil || n != 1 {
		t.Errorf("Expire after the timeout: %d, %v; want 1", n, err)
	}
	if _, err := env.Store.LoadSession(ctx, u.ID, s2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("swept session still stored: %v", err)
	}
	if n := limitCount(t, env); n != 1 {
		t.Errorf("%d sessions after the sweep, want 1 (the active one)", n)
	}
	clock.Advance(5 * time.Hour)
	if _, err := reg.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	c3.Expect("n", "NOOP", "n OK NOOP completed")
	draftPreserve(t, c3)
	c5 := env.DialLogin(t)
	limitResumes(t, c5, "e", held)
}

// limitRawCmd is Conn.Cmd for other goroutines: errors are returned, not
// reported through t.
func limitRawCmd(c *imaptest.Conn, tag, cmd string) ([]string, error) {
	c.NC.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.NC, tag+" "+cmd+"\r\n"); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := c.R.ReadString('\n')
		if err != nil {
			return lines, fmt.Errorf("after %q: %w", lines, err)
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines, nil
		}
	}
}

// limitAll runs cmd on every connection at once (released together) and
// returns the answers.
func limitAll(t *testing.T, conns []*imaptest.Conn, tag, cmd string) [][]string {
	t.Helper()
	out := make([][]string, len(conns))
	errs := make([]error, len(conns))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = limitRawCmd(c, tag, cmd)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	return out
}

// §3.3: "a session can only be active on a single TCP connection. An
// attempt to resume an active session on a different TCP connection
// forces the server to close the session on the other connection"; §5.3
// DELETEDSID. N connections resume one session at once: every SID
// succeeds (each resumes it in turn), and in the end exactly one
// connection holds it; every other one has been told DELETEDSID exactly
// once, and none was told NEWSID.
func TestSIDRaceTakeover(t *testing.T) {
	const n = 20
	env, uv, _ := seeded(t, 2) // HIGHESTMODSEQ 3
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	draftPreserve(t, a)

	conns := make([]*imaptest.Conn, n)
	for i := range conns {
		conns[i] = env.DialLogin(t)
	}
	answers := limitAll(t, conns, "r", fmt.Sprintf("SID %s %d 3", id, uv))
	deleted := make([]int, n)
	for i, got := range answers {
		// The tagged text agrees with a DELETEDSID sent before it: the
		// session was resumed here, then elsewhere.
		wantTagged := "r OK [READ-WRITE] Ok"
		if draftCount(got, "* DELETEDSID "+id) > 0 {
			wantTagged = "r OK [READ-WRITE] SID completed, then the session was resumed on another connection"
		}
		if got[0] != "* SELECTED INBOX" || got[len(got)-1] != wantTagged {
			t.Errorf("connection %d: %q", i, got)
		}
		if draftCount(got, "* NEWSID") != 0 {
			t.Errorf("connection %d got NEWSID: %q", i, got)
		}
		deleted[i] += draftCount(got, "* DELETEDSID "+id)
	}
	for i, c := range conns {
		got := c.Cmd("n", "NOOP")
		deleted[i] += draftCount(got, "* DELETEDSID "+id)
		if draftCount(got, "* NEWSID") != 0 || got[len(got)-1] != "n OK NOOP completed" {
			t.Errorf("connection %d NOOP: %q", i, got)
		}
	}
	holder := -1
	for i, d := range deleted {
		switch {
		case d == 0 && holder < 0:
			holder = i
		case d == 0:
			t.Errorf("connections %d and %d both hold the session", holder, i)
		case d > 1:
			t.Errorf("connection %d got DELETEDSID %d times", i, d)
		}
	}
	if holder < 0 {
		t.Fatal("no connection holds the session")
	}
	for i, c := range conns {
		if i != holder {
			c.Expect("d", "DELETESID", "d BAD No current session")
		}
	}
	conns[holder].Expect("d", "DELETESID", "d OK DELETESID completed")
	if n := limitCount(t, env); n != 0 {
		t.Errorf("%d sessions left", n)
	}
}

// §3.2 under concurrency: N connections each create a session at once
// against a per-user limit of 5 with nothing inactive to evict: exactly 5
// get NEWSID, the others NO [LIMIT]; then the same with the global limit.
func TestSIDRaceCreateAtLimit(t *testing.T) {
	const n, limit = 20, 5
	for _, opts := range []session.Options{{MaxPerUser: limit}, {MaxTotal: limit}} {
		env, reg := limitEnv(t, nil, opts)
		conns := make([]*imaptest.Conn, n)
		for i := range conns {
			conns[i] = env.DialLogin(t)
		}
		created := 0
		for i, got := range limitAll(t, conns, "r", "SID") {
			switch {
			case len(got) == 2 && strings.HasPrefix(got[0], "* NEWSID ") && got[1] == "r OK SID completed: session created":
				created++
			case len(got) == 1 && got[0] == limitNO("r"):
			default:
				t.Errorf("%+v: connection %d: %q", opts, i, got)
			}
		}
		if created != limit || limitCount(t, env) != limit || reg.ActiveCount() != limit {
			t.Errorf("%+v: %d created, %d stored, %d active; want %d", opts, created, limitCount(t, env), reg.ActiveCount(), limit)
		}
	}
}

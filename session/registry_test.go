package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// conn stands for a server connection: the owner token.
type conn struct{ n int }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a registry over one backend with a fake clock.
type env struct {
	t     *testing.T
	st    store.Sessions
	clk   *clock
	reg   *Registry
	users func(name string) int64
}

type backend struct {
	name string
	open func(t *testing.T) (store.Sessions, func(name string) int64)
}

func openSQLite(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sqliteUsers(t *testing.T, s *sqlite.Store) func(string) int64 {
	return func(name string) int64 {
		t.Helper()
		u, err := s.CreateUser(context.Background(), name, "h", nil)
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
}

var backends = []backend{
	{"mem", func(t *testing.T) (store.Sessions, func(string) int64) {
		var mu sync.Mutex
		next := int64(0)
		return newMemStore(), func(string) int64 {
			mu.Lock()
			defer mu.Unlock()
			next++
			return next
		}
	}},
	{"sqlite", func(t *testing.T) (store.Sessions, func(string) int64) {
		s := openSQLite(t, t.TempDir())
		t.Cleanup(func() { s.Close() })
		return s, sqliteUsers(t, s)
	}},
}

// run runs fn against every backend with a registry configured by opts
// (its clock is replaced by a fake one).
func run(t *testing.T, opts Options, fn func(e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, users := b.open(t)
			clk := newClock()
			o := opts
			o.Now = clk.Now
			fn(&env{t: t, st: st, clk: clk, reg: New(st, o), users: users})
		})
	}
}

var ctx = context.Background()

func (e *env) create(user int64, ip string, owner Owner) string {
	e.t.Helper()
	id, err := e.reg.Create(ctx, user, ip, owner)
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return id
}

func (e *env) detach(owner Owner, state string) {
	e.t.Helper()
	if err := e.reg.Detach(ctx, owner, []byte(state)); err != nil {
		e.t.Fatalf("Detach: %v", err)
	}
}

func (e *env) exists(user int64, id string) bool {
	e.t.Helper()
	_, err := e.st.LoadSession(ctx, user, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func TestLifecycle(t *testing.T) {
	run(t, Options{}, func(e *env) {
		t := e.t
		u := e.users("alice")
		c1, c2, c3 := &conn{1}, &conn{2}, &conn{3}
		id := e.create(u, "192.0.2.1", c1)
		if h, ok := e.reg.Holder(u, id); !ok || h != c1 {
			t.Fatalf("after Create: holder %v, %v", h, ok)
		}
		if gu, gid, ok := e.reg.Held(c1); !ok || gu != u || gid != id {
			t.Errorf("Held(c1) = %d %s %v", gu, gid, ok)
		}
		rec, err := e.st.LoadSession(ctx, u, id)
		if err != nil || rec.ClientIP != "192.0.2.1" || !rec.Created.Equal(e.clk.Now()) || len(rec.State) != 0 {
			t.Errorf("stored after Create: %+v, %v", rec, err)
		}
		must(t, e.reg.Save(ctx, c1, []byte("checkpoint")))
		e.clk.Advance(time.Minute)
		e.detach(c1, "state-1") // LOGOUT (PRESERVE) or a dropped connection
		if _, ok := e.reg.Holder(u, id); ok || e.reg.ActiveCount() != 0 {
			t.Errorf("still active after Detach")
		}
		wantErr(t, e.reg.Detach(ctx, c1, nil), ErrNotOwner, "Detach twice")
		wantErr(t, e.reg.Save(ctx, c1, nil), ErrNotOwner, "Save after Detach")
		wantErr(t, e.reg.Delete(ctx, c1), ErrNotOwner, "Delete after Detach")

		e.clk.Advance(time.Minute)
		rec, prev, err := e.reg.Attach(ctx, u, id, c2)
		if err != nil || prev != nil || string(rec.State) != "state-1" || rec.ID != id || rec.UserID != u {
			t.Fatalf("Attach inactive: %+v, %v, %v", rec, prev, err)
		}
		// Detached a minute ago: the stored LastActive is fresh enough
		// and Attach writes nothing (TestAttachTouch).
		if got, _ := e.st.LoadSession(ctx, u, id); !got.LastActive.Equal(e.clk.Now().Add(-time.Minute)) {
			t.Errorf("Attach rewrote a fresh LastActive: %v, detached at %v", got.LastActive, e.clk.Now().Add(-time.Minute))
		}
		// Re-attaching what one holds changes nothing.
		if _, prev, err := e.reg.Attach(ctx, u, id, c2); err != nil || prev != nil {
			t.Errorf("re-Attach by the holder: %v, %v", prev, err)
		}
		must(t, e.reg.Save(ctx, c2, []byte("state-2")))
		// Takeover: c3 resumes while c2 holds it.
		rec, prev, err = e.reg.Attach(ctx, u, id, c3)
		if err != nil || prev != c2 || string(rec.State) != "state-2" {
			t.Fatalf("takeover: %q, %v, %v", rec.State, prev, err)
		}
		wantErr(t, e.reg.Detach(ctx, c2, []byte("stale")), ErrNotOwner, "Detach by the displaced owner")
		if got, _ := e.st.LoadSession(ctx, u, id); string(got.State) != "state-2" {
			t.Errorf("displaced owner overwrote the state: %q", got.State)
		}
		// DELETESID.
		must(t, e.reg.Delete(ctx, c3))
		if e.exists(u, id) {
			t.Error("session still stored after Delete")
		}
		_, _, err = e.reg.Attach(ctx, u, id, c1)
		wantErr(t, err, ErrNotFound, "Attach after Delete")
		wantErr(t, e.reg.Delete(ctx, c3), ErrNotOwner, "Delete twice")
		if e.reg.ActiveCount() != 0 {
			t.Errorf("ActiveCount %d", e.reg.ActiveCount())
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUnknownIDs(t *testing.T) {
	run(t, Options{}, func(e *env) {
		u := e.users("alice")
		for _, id := range []string{"", "x", NewID(), "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxy1", "P1234567890"} {
			_, _, err := e.reg.Attach(ctx, u, id, &conn{})
			wantErr(e.t, err, ErrNotFound, fmt.Sprintf("Attach(%q)", id))
		}
	})
}

func TestUserIsolation(t *testing.T) {
	run(t, Options{}, func(e *env) {
		t := e.t
		alice, bob := e.users("alice"), e.users("bob")
		ca, cb := &conn{1}, &conn{2}
		id := e.create(alice, "192.0.2.1", ca)
		e.detach(ca, "alice's")
		_, _, err := e.reg.Attach(ctx, bob, id, cb)
		wantErr(t, err, ErrNotFound, "Attach of alice's id by bob")
		if _, ok := e.reg.Holder(bob, id); ok {
			t.Error("bob holds alice's id")
		}
		// Alice's session is untouched, and her active one cannot be
		// taken over by bob either.
		rec, _, err := e.reg.Attach(ctx, alice, id, ca)
		if err != nil || string(rec.State) != "alice's" {
			t.Fatalf("alice's Attach: %q, %v", rec.State, err)
		}
		_, prev, err := e.reg.Attach(ctx, bob, id, cb)
		wantErr(t, err, ErrNotFound, "Attach of alice's active id by bob")
		if prev != nil {
			t.Errorf("bob displaced %v", prev)
		}
		if h, _ := e.reg.Holder(alice, id); h != ca {
			t.Errorf("holder after bob's attempt: %v", h)
		}
	})
}

func TestOwnerHoldsOne(t *testing.T) {
	run(t, Options{}, func(e *env) {
		t := e.t
		u := e.users("alice")
		c1, c2 := &conn{1}, &conn{2}
		a := e.create(u, "ip", c1)
		must(t, e.reg.Save(ctx, c1, []byte("a-state")))
		b := e.create(u, "ip", c1) // a second SID: a becomes inactive (§3.2)
		if _, ok := e.reg.Holder(u, a); ok {
			t.Error("first session still active after the owner created another")
		}
		if h, _ := e.reg.Holder(u, b); h != c1 {
			t.Errorf("holder of the new session %v", h)
		}
		rec, prev, err := e.reg.Attach(ctx, u, a, c2)
		if err != nil || prev != nil || string(rec.State) != "a-state" {
			t.Errorf("resume of the first session: %q, %v, %v", rec.State, prev, err)
		}
		// c1 resumes a: it loses b (inactive) and displaces c2.
		_, prev, err = e.reg.Attach(ctx, u, a, c1)
		if err != nil || prev != c2 {
			t.Errorf("Attach: %v, %v", prev, err)
		}
		if _, ok := e.reg.Holder(u, b); ok {
			t.Error("b still active")
		}
		if e.reg.ActiveCount() != 1 {
			t.Errorf("ActiveCount %d, want 1", e.reg.ActiveCount())
		}
	})
}

func TestPerUserLimit(t *testing.T) {
	run(t, Options{MaxPerUser: 3}, func(e *env) {
		t := e.t
		u, other := e.users("alice"), e.users("bob")
		c := []*conn{{0}, {1}, {2}, {3}, {4}}
		var ids []string
		for i := range 3 {
			ids = append(ids, e.create(u, "ip", c[i]))
			e.clk.Advance(time.Second)
		}
		// All three active: NO.
		_, err := e.reg.Create(ctx, u, "ip", c[3])
		wantErr(t, err, ErrLimit, "Create with all sessions active")
		if _, _, ok := e.reg.Held(c[3]); ok {
			t.Error("failed Create left the owner holding something")
		}
		// Another user is not affected.
		e.create(other, "ip", &conn{9})

		// Detach 1 then 0: 1 is the oldest inactive (LastActive).
		e.detach(c[1], "one")
		e.clk.Advance(time.Second)
		e.detach(c[0], "zero")
		e.clk.Advance(time.Second)
		id3 := e.create(u, "ip", c[3])
		if e.exists(u, ids[1]) {
			t.Error("the oldest inactive session was not evicted")
		}
		if !e.exists(u, ids[0]) || !e.exists(u, ids[2]) {
			t.Error("a session other than the oldest inactive was evicted")
		}
		_, _, err = e.reg.Attach(ctx, u, ids[1], c[4])
		wantErr(t, err, ErrNotFound, "Attach of the evicted session")
		// Next: 0 is the only inactive one.
		id4 := e.create(u, "ip", c[4])
		if e.exists(u, ids[0]) {
			t.Error("session 0 not evicted")
		}
		for _, id := range []string{ids[2], id3, id4} {
			if !e.exists(u, id) {
				t.Errorf("active session %s evicted", Redact(id))
			}
		}
		_, err = e.reg.Create(ctx, u, "ip", &conn{5})
		wantErr(t, err, ErrLimit, "Create with all sessions active again")
		// The creator's own session counts as inactive once it creates
		// another: it is evicted rather than refused.
		id5, err := e.reg.Create(ctx, u, "ip", c[4])
		if err != nil {
			t.Fatalf("Create by an owner at the limit: %v", err)
		}
		if e.exists(u, id4) || !e.exists(u, id5) {
			t.Error("the owner's previous session should make room")
		}
		if n, _ := e.st.CountSessions(ctx); n != 4 {
			t.Errorf("CountSessions %d, want 4", n)
		}
	})
}

func TestPerIPLimit(t *testing.T) {
	run(t, Options{MaxPerIP: 2}, func(e *env) {
		t := e.t
		a, b, c := e.users("a"), e.users("b"), e.users("c")
		e.create(a, "192.0.2.1", &conn{1})
		e.create(b, "192.0.2.1", &conn{2})
		wantErr(t, e.reg.Detach(ctx, &conn{}, nil), ErrNotOwner, "Detach by an unknown owner")
		_, err := e.reg.Create(ctx, c, "192.0.2.1", &conn{3})
		wantErr(t, err, ErrLimit, "Create over the per-address limit")
		e.create(c, "192.0.2.2", &conn{4})
	})
}

// At the per-address cap the address's oldest inactive session is
// destroyed (the draft, §7): the creating user's own first, then any
// user's; a user whose sessions are busy keeps them; when every session
// from the address is active, NO [LIMIT].
func TestPerIPLimitEvicts(t *testing.T) {
	run(t, Options{MaxPerIP: 3}, func(e *env) {
		t := e.t
		const ip = "192.0.2.1"
		cs := []*conn{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}
		a, b, c, d, f := e.users("a"), e.users("b"), e.users("c"), e.users("d"), e.users("f")
		sb := e.create(b, ip, cs[1])
		e.detach(cs[1], "b")
		e.clk.Advance(time.Minute)
		a1 := e.create(a, ip, cs[2])
		e.detach(cs[2], "a1")
		e.clk.Advance(time.Minute)
		a2 := e.create(a, ip, cs[3])
		e.detach(cs[3], "a2")
		e.clk.Advance(time.Minute)

		// a at the cap: a's own oldest goes, not b's older one.
		a3 := e.create(a, ip, cs[4])
		if e.exists(a, a1) || !e.exists(a, a2) || !e.exists(b, sb) || !e.exists(a, a3) {
			t.Errorf("after a's third session: a1 %v a2 %v b %v", e.exists(a, a1), e.exists(a, a2), e.exists(b, sb))
		}
		// c has none there: the address's oldest inactive (b's) goes.
		e.clk.Advance(time.Minute)
		c1 := e.create(c, ip, cs[5])
		if e.exists(b, sb) || !e.exists(a, a2) || !e.exists(c, c1) {
			t.Errorf("after c's session: b %v a2 %v", e.exists(b, sb), e.exists(a, a2))
		}
		// a is busy with its sessions (its lock is held): d cannot take
		// a2, and a3 and c1 are active, so d is refused.
		unlock := e.reg.locks.lock(a)
		_, err := e.reg.Create(ctx, d, ip, cs[6])
		unlock()
		wantErr(t, err, ErrLimit, "Create while the only inactive session's user is busy")
		if !e.exists(a, a2) {
			t.Error("a busy user's session was deleted")
		}
		// Once a is idle, d takes a2's place.
		d1 := e.create(d, ip, cs[6])
		if e.exists(a, a2) || !e.exists(d, d1) {
			t.Errorf("after d's session: a2 %v", e.exists(a, a2))
		}
		// a3, c1 and d1 are all active: NO.
		_, err = e.reg.Create(ctx, f, ip, cs[7])
		wantErr(t, err, ErrLimit, "Create when every session from the address is active")
		if n, _ := e.st.CountIPSessions(ctx, ip); n != 3 {
			t.Errorf("CountIPSessions %d, want 3", n)
		}
	})
}

func TestGlobalLimit(t *testing.T) {
	run(t, Options{MaxTotal: 3}, func(e *env) {
		t := e.t
		cs := []*conn{{0}, {1}, {2}}
		for i, c := range cs {
			e.create(e.users(fmt.Sprint("u", i)), fmt.Sprint("ip", i), c)
		}
		u := e.users("late")
		_, err := e.reg.Create(ctx, u, "ip9", &conn{9})
		wantErr(t, err, ErrLimit, "Create over the global limit")
		must(t, e.reg.Delete(ctx, cs[0]))
		e.create(u, "ip9", &conn{9})
	})
}

func TestExpire(t *testing.T) {
	timeout := time.Hour
	run(t, Options{Timeout: timeout}, func(e *env) {
		t := e.t
		u := e.users("alice")
		c1, c2, c3, held := &conn{1}, &conn{2}, &conn{3}, &conn{4}
		a := e.create(u, "ip", c1)
		b := e.create(u, "ip", c2)
		long := e.create(u, "ip", held) // stays active throughout
		e.detach(c1, "a")
		e.detach(c2, "b")

		e.clk.Advance(timeout - time.Second)
		if n, err := e.reg.Expire(ctx); err != nil || n != 0 {
			t.Errorf("Expire before the timeout: %d, %v", n, err)
		}
		// Resuming a just before its timeout works and restarts its clock.
		if _, _, err := e.reg.Attach(ctx, u, a, c3); err != nil {
			t.Fatalf("Attach before the timeout: %v", err)
		}
		e.detach(c3, "a2")

		e.clk.Advance(2 * time.Second) // b: timeout+1s inactive
		// Refused at once, even before a sweep.
		_, _, err := e.reg.Attach(ctx, u, b, c2)
		wantErr(t, err, ErrNotFound, "Attach of an expired session")
		if e.exists(u, b) {
			t.Error("expired session still stored after a refused Attach")
		}

		e.clk.Advance(timeout)
		n, err := e.reg.Expire(ctx)
		if err != nil || n != 1 {
			t.Errorf("Expire: %d, %v; want 1 (a)", n, err)
		}
		if e.exists(u, a) {
			t.Error("a still stored")
		}
		// The session held all along survives any number of sweeps.
		for range 5 {
			e.clk.Advance(timeout * 3 / 4)
			if _, err := e.reg.Expire(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if h, _ := e.reg.Holder(u, long); h != held || !e.exists(u, long) {
			t.Fatalf("active session expired")
		}
		// Once detached it expires like any other.
		e.detach(held, "x")
		e.clk.Advance(timeout + time.Nanosecond)
		if n, err := e.reg.Expire(ctx); err != nil || n != 1 {
			t.Errorf("Expire after detaching: %d, %v", n, err)
		}
		if n, _ := e.st.CountSessions(ctx); n != 0 {
			t.Errorf("%d sessions left", n)
		}
	})
}

// TestAttachTouch: Attach rewrites the stored LastActive only when it is
// older than Timeout/2, and Expire keeps a held session's LastActive
// within that bound either way, so that a crash while it is held leaves
// it resumable for at least Timeout/2.
func TestAttachTouch(t *testing.T) {
	timeout := time.Hour
	run(t, Options{Timeout: timeout}, func(e *env) {
		t := e.t
		u := e.users("alice")
		c1, c2 := &conn{1}, &conn{2}
		id := e.create(u, "ip", c1)
		e.detach(c1, "s")
		detached := e.clk.Now()
		stored := func() time.Time {
			rec, err := e.st.LoadSession(ctx, u, id)
			must(t, err)
			return rec.LastActive
		}

		e.clk.Advance(timeout / 2)
		if _, _, err := e.reg.Attach(ctx, u, id, c2); err != nil {
			t.Fatal(err)
		}
		if got := stored(); !got.Equal(detached) {
			t.Errorf("Attach at Timeout/2 after the detach wrote LastActive %v, want it kept at %v", got, detached)
		}
		// Held on: the next sweep finds it stale and refreshes it.
		e.clk.Advance(time.Second)
		if _, err := e.reg.Expire(ctx); err != nil {
			t.Fatal(err)
		}
		if got := stored(); !got.Equal(e.clk.Now()) {
			t.Errorf("Expire did not refresh a held session's LastActive: %v, now %v", got, e.clk.Now())
		}
		e.detach(c2, "s2")

		e.clk.Advance(timeout/2 + time.Second)
		if _, _, err := e.reg.Attach(ctx, u, id, c1); err != nil {
			t.Fatal(err)
		}
		if got := stored(); !got.Equal(e.clk.Now()) {
			t.Errorf("Attach more than Timeout/2 after the detach kept LastActive %v, want %v", got, e.clk.Now())
		}
	})
}

// TestTakeoverRace: 100 connections resume the same session at once.
// Exactly one holds it at the end; every other owner was displaced
// (returned as prev exactly once) and can no longer save.
func TestTakeoverRace(t *testing.T) {
	run(t, Options{}, func(e *env) {
		t := e.t
		u := e.users("alice")
		creator := &conn{-1}
		id := e.create(u, "ip", creator)
		const n = 100
		owners := make([]*conn, n)
		prevs := make([]Owner, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			owners[i] = &conn{i}
			wg.Go(func() {
				<-start
				_, prevs[i], errs[i] = e.reg.Attach(ctx, u, id, owners[i])
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Attach %d: %v", i, err)
			}
		}
		holder, ok := e.reg.Holder(u, id)
		if !ok {
			t.Fatal("nobody holds the session")
		}
		seen := map[Owner]int{}
		for _, p := range prevs {
			if p != nil {
				seen[p]++
			}
		}
		// The displacements form one chain: creator -> ... -> holder.
		if len(seen) != n {
			t.Errorf("%d distinct displaced owners, want %d", len(seen), n)
		}
		for o, k := range seen {
			if k != 1 {
				t.Errorf("owner %v displaced %d times", o, k)
			}
		}
		if seen[holder] != 0 {
			t.Error("the holder was reported displaced")
		}
		if seen[creator] != 1 {
			t.Error("the creator was not displaced")
		}
		for _, o := range owners {
			err := e.reg.Save(ctx, o, []byte("x"))
			if o == holder {
				must(t, err)
			} else {
				wantErr(t, err, ErrNotOwner, "Save by a displaced owner")
			}
		}
		if e.reg.ActiveCount() != 1 {
			t.Errorf("ActiveCount %d", e.reg.ActiveCount())
		}
	})
}

// TestConcurrentMixed runs Attach, Save, Detach and Delete on a few
// sessions from many goroutines (for -race) and checks the invariants.
func TestConcurrentMixed(t *testing.T) {
	run(t, Options{MaxPerUser: 50}, func(e *env) {
		t := e.t
		u := e.users("alice")
		var ids []string
		for i := range 4 {
			c := &conn{1000 + i}
			ids = append(ids, e.create(u, "ip", c))
			e.detach(c, "s")
		}
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				c := &conn{g}
				for i := range 20 {
					id := ids[(g+i)%len(ids)]
					if _, _, err := e.reg.Attach(ctx, u, id, c); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
					switch i % 3 {
					case 0:
						_ = e.reg.Save(ctx, c, []byte(fmt.Sprint(g)))
					case 1:
						_ = e.reg.Detach(ctx, c, []byte(fmt.Sprint(g)))
					}
					if g == 0 && i == 10 {
						_ = e.reg.Delete(ctx, c)
					}
				}
				_ = e.reg.Detach(ctx, c, nil)
			})
		}
		wg.Wait()
		if e.reg.ActiveCount() != 0 {
			t.Errorf("ActiveCount %d after every owner detached", e.reg.ActiveCount())
		}
		e.reg.mu.Lock()
		defer e.reg.mu.Unlock()
		if len(e.reg.owners) != 0 || len(e.reg.active) != 0 {
			t.Errorf("maps not empty: %d owners, %d active", len(e.reg.owners), len(e.reg.active))
		}
		e.reg.locks.mu.Lock()
		if len(e.reg.locks.m) != 0 {
			t.Errorf("%d user locks left", len(e.reg.locks.m))
		}
		e.reg.locks.mu.Unlock()
	})
}

// TestPersistence: sessions survive a restart of the process, both
// detached ones and ones held when the process died (those come back
// inactive, with the last saved state).
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s := openSQLite(t, dir)
	u := sqliteUsers(t, s)("alice")
	clk := newClock()
	reg := New(s, Options{Now: clk.Now})
	c1, c2 := &conn{1}, &conn{2}
	detached, err := reg.Create(ctx, u, "192.0.2.1", c1)
	must(t, err)
	must(t, reg.Detach(ctx, c1, []byte("detached state")))
	held, err := reg.Create(ctx, u, "192.0.2.1", c2)
	must(t, err)
	must(t, reg.Save(ctx, c2, []byte("checkpoint")))
	must(t, s.Close()) // "crash": c2 never detaches

	s = openSQLite(t, dir)
	defer s.Close()
	clk.Advance(time.Hour)
	reg = New(s, Options{Now: clk.Now})
	if reg.ActiveCount() != 0 {
		t.Errorf("ActiveCount %d after restart", reg.ActiveCount())
	}
	for id, want := range map[string]string{detached: "detached state", held: "checkpoint"} {
		c := &conn{}
		rec, prev, err := reg.Attach(ctx, u, id, c)
		if err != nil || prev != nil || !bytes.Equal(rec.State, []byte(want)) || rec.ClientIP != "192.0.2.1" {
			t.Errorf("Attach %s after restart: %+v, %v, %v", Redact(id), rec, prev, err)
		}
	}
}

type sqliteStore = sqlite.Store

func openSQLiteStore(dir string) (*sqlite.Store, error) {
	return sqlite.Open(context.Background(), dir, sqlite.Options{})
}

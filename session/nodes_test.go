package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/store"
)

// hintLog is a bus.Bus that records what is published and delivers
// nothing: the tests hand hints over (or lose them) themselves.
type hintLog struct {
	mu    sync.Mutex
	hints []bus.Hint
}

func (b *hintLog) Publish(h bus.Hint) {
	b.mu.Lock()
	b.hints = append(b.hints, h)
	b.mu.Unlock()
}

func (b *hintLog) Run(ctx context.Context, _ bus.Handler) error { <-ctx.Done(); return nil }
func (b *hintLog) Close() error                                 { return nil }

func (b *hintLog) take() []bus.Hint {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hints
	b.hints = nil
	return h
}

// nodes is two registries, "a" and "b", over one store and one clock.
type nodes struct {
	*env
	a, b   *Registry
	ba, bb *hintLog
}

func runNodes(t *testing.T, opts Options, fn func(n *nodes)) {
	run(t, opts, func(e *env) {
		o := e.reg.opts
		n := &nodes{env: e, ba: &hintLog{}, bb: &hintLog{}}
		oa, ob := o, o
		oa.NodeID, oa.Bus = "a", n.ba
		ob.NodeID, ob.Bus = "b", n.bb
		n.a, n.b = New(e.st, oa), New(e.st, ob)
		must(e.t, n.a.Start(ctx))
		must(e.t, n.b.Start(ctx))
		e.t.Cleanup(func() { n.a.Stop(); n.b.Stop() })
		fn(n)
	})
}

func stored(t *testing.T, st store.Sessions, user int64, id string) store.SessionRecord {
	t.Helper()
	rec, err := st.LoadSession(ctx, user, id)
	must(t, err)
	return rec
}

// A session created on one node resumes on the other, which claims it
// and hints the first; the first's holder drops it on the hint, and
// until then (or if the hint is lost) cannot write it.
func TestNodesTakeover(t *testing.T) {
	runNodes(t, Options{}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		ca, cb := &conn{1}, &conn{2}
		id, err := n.a.Create(ctx, u, "192.0.2.1", ca)
		must(t, err)
		must(t, n.a.Save(ctx, ca, []byte("on a")))
		if rec := stored(t, n.st, u, id); rec.Owner != "a" || rec.Generation != 1 {
			t.Fatalf("after Create on a: owner %q generation %d", rec.Owner, rec.Generation)
		}
		rec, prev, err := n.b.Attach(ctx, u, id, cb)
		if err != nil || prev != nil || string(rec.State) != "on a" || rec.Owner != "b" || rec.Generation != 2 {
			t.Fatalf("Attach on b: %+v, %v, %v", rec, prev, err)
		}
		hints := n.bb.take()
		want := bus.Hint{Kind: bus.SessionTaken, User: u, Session: id, Generation: 2}
		if len(hints) != 1 || hints[0] != want {
			t.Fatalf("b published %+v, want %+v", hints, want)
		}
		if h := n.ba.take(); len(h) != 0 {
			t.Errorf("a published %+v", h)
		}
		// The hint has not arrived: a's holder still thinks it holds the
		// session, but cannot write it.
		if h, ok := n.a.Holder(u, id); !ok || h != ca {
			t.Fatalf("a's holder before the hint: %v, %v", h, ok)
		}
		err = n.a.Save(ctx, ca, []byte("stale"))
		wantErr(t, err, ErrNotOwner, "Save on a after b's claim")
		wantErr(t, err, store.ErrStale, "Save on a after b's claim")
		if _, ok := n.a.Holder(u, id); ok {
			t.Error("a still holds the session after a refused Save")
		}
		if rec := stored(t, n.st, u, id); string(rec.State) != "on a" || rec.Owner != "b" {
			t.Errorf("a's stale Save wrote: %q, owner %q", rec.State, rec.Owner)
		}
		must(t, n.b.Save(ctx, cb, []byte("on b")))

		// Back to a: a claims it again; the hint goes to b, whose
		// holder drops it on Taken.
		ca2 := &conn{3}
		rec, prev, err = n.a.Attach(ctx, u, id, ca2)
		if err != nil || prev != nil || string(rec.State) != "on b" || rec.Generation != 3 {
			t.Fatalf("Attach back on a: %+v, %v, %v", rec, prev, err)
		}
		h := n.ba.take()
		if len(h) != 1 || h[0].Generation != 3 {
			t.Fatalf("a published %+v", h)
		}
		if o, ok := n.b.Taken(h[0].User, h[0].Session, h[0].Generation); !ok || o != cb {
			t.Errorf("Taken on b: %v, %v; want its holder", o, ok)
		}
		if _, ok := n.b.Holder(u, id); ok {
			t.Error("b still holds after Taken")
		}
		if o, ok := n.b.Taken(u, id, 3); ok {
			t.Errorf("a duplicated hint displaced %v", o)
		}
		// A late hint (an older generation) leaves the newer holder.
		if o, ok := n.a.Taken(u, id, 2); ok {
			t.Errorf("a late hint displaced %v", o)
		}
		wantErr(t, n.b.Detach(ctx, cb, []byte("x")), ErrNotOwner, "Detach on b after Taken")
		// Detach on a releases it: inactive, at its generation.
		must(t, n.a.Detach(ctx, ca2, []byte("done")))
		if rec := stored(t, n.st, u, id); rec.Owner != "" || rec.Generation != 3 || string(rec.State) != "done" {
			t.Errorf("after Detach: %+v", rec)
		}
		// Resuming an inactive session hints nobody.
		if _, _, err := n.b.Attach(ctx, u, id, cb); err != nil {
			t.Fatal(err)
		}
		if h := n.bb.take(); len(h) != 0 {
			t.Errorf("claim of an inactive session published %+v", h)
		}
	})
}

// A displaced holder's Detach and Delete write nothing.
func TestNodesStaleDetachDelete(t *testing.T) {
	runNodes(t, Options{}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		ca, ca2, cb := &conn{1}, &conn{2}, &conn{3}
		id, err := n.a.Create(ctx, u, "ip", ca)
		must(t, err)
		id2, err := n.a.Create(ctx, u, "ip", ca2)
		must(t, err)
		_, _, err = n.b.Attach(ctx, u, id, cb)
		must(t, err)
		_, _, err = n.b.Attach(ctx, u, id2, &conn{4})
		must(t, err)
		wantErr(t, n.a.Detach(ctx, ca, []byte("stale")), ErrNotOwner, "Detach by a displaced holder")
		if rec := stored(t, n.st, u, id); rec.Owner != "b" || len(rec.State) != 0 {
			t.Errorf("after a's stale Detach: owner %q state %q", rec.Owner, rec.State)
		}
		wantErr(t, n.a.Delete(ctx, ca2), ErrNotOwner, "Delete by a displaced holder")
		if !n.exists(u, id2) {
			t.Error("a displaced holder deleted the session")
		}
		if n.a.ActiveCount() != 0 {
			t.Errorf("a still holds %d", n.a.ActiveCount())
		}
	})
}

// The per-user limit holds across nodes: a session another live node
// holds is active; once that node stops beating it is inactive and is
// evicted; the dead node's holder then cannot write.
func TestNodesDeadOwner(t *testing.T) {
	runNodes(t, Options{MaxPerUser: 1}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		ca := &conn{1}
		id, err := n.a.Create(ctx, u, "ip", ca)
		must(t, err)
		_, err = n.b.Create(ctx, u, "ip", &conn{2})
		wantErr(t, err, ErrLimit, "Create on b while a holds the user's only session")

		n.a.Stop() // a hangs: no more heartbeats
		n.clk.Advance(DeadAfter*DefaultHeartbeat - time.Nanosecond)
		_, err = n.b.Create(ctx, u, "ip", &conn{2})
		wantErr(t, err, ErrLimit, "Create on b just before a counts as dead")
		n.clk.Advance(time.Nanosecond)
		must(t, n.b.Start(ctx)) // running: does nothing
		idb, err := n.b.Create(ctx, u, "ip", &conn{2})
		if err != nil {
			t.Fatalf("Create on b once a is dead: %v", err)
		}
		if n.exists(u, id) || !n.exists(u, idb) {
			t.Error("a's session was not the one evicted")
		}
		wantErr(t, n.a.Save(ctx, ca, []byte("x")), ErrNotOwner, "Save by the dead node's holder")
	})
}

// A dead node's session resumes elsewhere even when expired-looking
// LastActive would not matter: it is claimed, with its state.
func TestNodesDeadOwnerResume(t *testing.T) {
	runNodes(t, Options{Timeout: time.Hour}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		ca := &conn{1}
		id, err := n.a.Create(ctx, u, "ip", ca)
		must(t, err)
		must(t, n.a.Save(ctx, ca, []byte("held on a")))
		n.a.Stop()
		n.clk.Advance(time.Minute)
		rec, _, err := n.b.Attach(ctx, u, id, &conn{2})
		if err != nil || string(rec.State) != "held on a" {
			t.Fatalf("resume of a dead node's session: %q, %v", rec.State, err)
		}
		// a's session held on a live node is never expired by b's
		// Attach; one held by a dead node past the timeout is.
		ca2 := &conn{3}
		_, _, err = n.a.Attach(ctx, u, id, ca2) // a is back, unbeaten
		must(t, err)
		n.clk.Advance(2 * time.Hour)
		_, _, err = n.b.Attach(ctx, u, id, &conn{4})
		wantErr(t, err, ErrNotFound, "Attach of a dead node's session past the timeout")
		if n.exists(u, id) {
			t.Error("expired session still stored")
		}
	})
}

// A node starting again releases the sessions recorded as its own.
func TestNodesRestartReleases(t *testing.T) {
	runNodes(t, Options{MaxPerUser: 1}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		id, err := n.a.Create(ctx, u, "ip", &conn{1})
		must(t, err)
		n.a.Stop()
		// "a" restarts: a new registry under the same name.
		a2 := New(n.st, n.a.opts)
		must(t, a2.Start(ctx))
		defer a2.Stop()
		if rec := stored(t, n.st, u, id); rec.Owner != "" {
			t.Errorf("owner %q after a restarted", rec.Owner)
		}
		// Inactive now, though a beats: b may evict it.
		if _, err := n.b.Create(ctx, u, "ip", &conn{2}); err != nil {
			t.Errorf("Create on b after a restarted: %v", err)
		}
		if n.exists(u, id) {
			t.Error("the released session was not evicted")
		}
	})
}

// The per-user limit and the takeover race hold across nodes: creates
// on both nodes at once never exceed the limit, and of many resumes of
// one session on both nodes at once exactly one holder can write.
func TestNodesRaces(t *testing.T) {
	runNodes(t, Options{MaxPerUser: 3}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		for i := range 20 {
			reg := n.a
			if i%2 == 1 {
				reg = n.b
			}
			wg.Go(func() {
				_, err := reg.Create(ctx, u, "ip", &conn{100 + i})
				if err != nil && !errors.Is(err, ErrLimit) {
					t.Error(err)
				}
				mu.Lock()
				if err == nil {
					created++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if c, _ := n.st.CountSessions(ctx); created != 3 || c != 3 {
			t.Fatalf("%d creates succeeded, %d stored; want 3", created, c)
		}

		list, err := n.st.UserSessions(ctx, u)
		must(t, err)
		id := list[0].ID
		const k = 30
		owners := make([]*conn, k)
		for i := range k {
			owners[i] = &conn{200 + i}
			reg := n.a
			if i%2 == 1 {
				reg = n.b
			}
			wg.Go(func() {
				if _, _, err := reg.Attach(ctx, u, id, owners[i]); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		ok := 0
		for i, o := range owners {
			reg := n.a
			if i%2 == 1 {
				reg = n.b
			}
			err := reg.Save(ctx, o, []byte("x"))
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrNotOwner):
				t.Error(err)
			}
		}
		if ok != 1 {
			t.Errorf("%d holders could write the session, want 1", ok)
		}
		if rec := stored(t, n.st, u, id); rec.Generation != 1+k {
			t.Errorf("generation %d after %d claims, want %d", rec.Generation, k, 1+k)
		}
	})
}

// A connection that creates or resumes another session leaves the one it
// held inactive (§3.2) for every node: released in the store.
func TestNodesOwnerMovesOn(t *testing.T) {
	runNodes(t, Options{MaxPerUser: 2}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		ca := &conn{1}
		s1, err := n.a.Create(ctx, u, "ip", ca)
		must(t, err)
		s2, err := n.a.Create(ctx, u, "ip", ca)
		must(t, err)
		if rec := stored(t, n.st, u, s1); rec.Owner != "" || rec.Generation != 1 {
			t.Errorf("s1 after its owner created s2: owner %q generation %d", rec.Owner, rec.Generation)
		}
		// b sees s1 inactive: at the limit, it is evicted for b's session.
		if _, err := n.b.Create(ctx, u, "ip", &conn{2}); err != nil {
			t.Fatalf("Create on b: %v", err)
		}
		if n.exists(u, s1) || !n.exists(u, s2) {
			t.Error("b did not evict the inactive s1")
		}
		// Resuming another session releases s2 likewise.
		s3, err := n.b.Create(ctx, u, "ip", &conn{3})
		if err == nil {
			t.Fatalf("Create over the limit with every session active: %s", s3)
		}
		list, err := n.st.UserSessions(ctx, u)
		must(t, err)
		var other string
		for _, r := range list {
			if r.ID != s2 {
				other = r.ID
			}
		}
		if _, _, err := n.a.Attach(ctx, u, other, ca); err != nil {
			t.Fatal(err)
		}
		if rec := stored(t, n.st, u, s2); rec.Owner != "" {
			t.Errorf("s2 after its owner resumed another: owner %q", rec.Owner)
		}
	})
}

// Recheck finds the holdings whose takeover hints were lost, and only
// those.
func TestNodesRecheck(t *testing.T) {
	runNodes(t, Options{}, func(n *nodes) {
		t := n.t
		u := n.users("alice")
		c1, c2, c3 := &conn{1}, &conn{2}, &conn{3}
		s1, err := n.a.Create(ctx, u, "ip", c1)
		must(t, err)
		s2, err := n.a.Create(ctx, u, "ip", c2)
		must(t, err)
		s3, err := n.a.Create(ctx, u, "ip", c3)
		must(t, err)
		if lost, err := n.a.Recheck(ctx); err != nil || len(lost) != 0 {
			t.Fatalf("Recheck with nothing lost: %+v, %v", lost, err)
		}
		// b takes s1 (hint lost); s2 is deleted under a (its record gone).
		if _, _, err := n.b.Attach(ctx, u, s1, &conn{4}); err != nil {
			t.Fatal(err)
		}
		must(t, n.st.DeleteSession(ctx, u, s2))
		lost, err := n.a.Recheck(ctx)
		must(t, err)
		got := map[string]Owner{}
		for _, l := range lost {
			if l.UserID != u {
				t.Errorf("lost %+v", l)
			}
			got[l.ID] = l.Owner
		}
		if len(got) != 2 || got[s1] != c1 || got[s2] != c2 {
			t.Errorf("Recheck lost %+v, want s1 of c1 and s2 of c2", lost)
		}
		if h, ok := n.a.Holder(u, s3); !ok || h != c3 {
			t.Error("Recheck dropped a session still held")
		}
		if _, ok := n.a.Holder(u, s1); ok {
			t.Error("a still holds s1")
		}
		if lost, err := n.a.Recheck(ctx); err != nil || len(lost) != 0 {
			t.Errorf("second Recheck: %+v, %v", lost, err)
		}
		// b's own holding is intact.
		if lost, err := n.b.Recheck(ctx); err != nil || len(lost) != 0 {
			t.Errorf("Recheck on b: %+v, %v", lost, err)
		}
	})
}

// The heartbeat loop writes the node's heartbeat every interval until
// Stop, in the registry's clock.
func TestHeartbeatLoop(t *testing.T) {
	run(t, Options{}, func(e *env) {
		t := e.t
		u := e.users("alice")
		o := e.reg.opts
		o.NodeID, o.Heartbeat = "n", 5*time.Millisecond
		reg := New(e.st, o)
		must(t, reg.Start(ctx))
		id, err := reg.Create(ctx, u, "ip", &conn{1})
		must(t, err)
		beat := func() time.Time {
			t.Helper()
			return stored(t, e.st, u, id).OwnerBeat
		}
		if !beat().Equal(e.clk.Now()) {
			t.Fatalf("beat after Start %v, want %v", beat(), e.clk.Now())
		}
		e.clk.Advance(time.Hour)
		deadline := time.Now().Add(10 * time.Second)
		for !beat().Equal(e.clk.Now()) {
			if time.Now().After(deadline) {
				t.Fatalf("the loop did not beat: %v, now %v", beat(), e.clk.Now())
			}
			time.Sleep(time.Millisecond) // polling for the loop's write
		}
		reg.Stop()
		reg.Stop() // twice is harmless
	})
}

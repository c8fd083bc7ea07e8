package tracker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// waitFor polls cond until it holds, failing the test after a generous
// bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// within runs fn and reports whether it returned within a generous bound
// (it keeps running otherwise).
func within(fn func()) bool {
	done := make(chan struct{})
	go func() {
		fn()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

func (f *fixture) shared() *sharedMailbox {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	return f.hub.boxes[testBox]
}

// A refresh reads the store without the lock readers take: FETCH FLAGS,
// SEARCH and updates of other sessions go on meanwhile, and see the index
// as it was until the refresh publishes.
func TestReadersDoNotWaitForARefreshsStoreRead(t *testing.T) {
	f := newFixture(t, 3, Options{})
	f.open(false) // a writer's session: the index has a read-write view
	b := f.open(false)
	var armed atomic.Bool
	var seen []string
	f.st.afterRead = func(method string) {
		if method != "ChangesSince" || !armed.CompareAndSwap(true, false) {
			return
		}
		// The refresh after a's write has read the store and not
		// published yet.
		if !within(func() {
			m, _, _ := b.Meta(1)
			seen = m.Flags
			b.Scan(func(uint32, *store.MessageMeta) (bool, bool) { return true, false })
			b.Updates(context.Background(), true)
		}) {
			t.Error("a reader waited for a refresh's store read")
		}
	}
	armed.Store(true)
	f.setFlagsElsewhere(store.FlagsAdd, []string{`\Seen`}, 1)
	if armed.Load() {
		t.Fatal("the write's refresh did not read the store")
	}
	if len(seen) != 0 {
		t.Fatalf("reader saw %v before the refresh published", seen)
	}
	if m, _, _ := b.Meta(1); !slices.Equal(m.Flags, []string{`\Seen`}) {
		t.Fatalf("after the refresh: %v", m.Flags)
	}
}

// Writes that land while a refresh runs share the one refresh after it.
func TestConcurrentChangesShareOneRefresh(t *testing.T) {
	const writers = 8
	f := newFixture(t, writers, Options{})
	views := make([]*View, writers)
	for i := range views {
		views[i] = f.open(false)
	}
	reader := f.open(true)
	sm := f.shared()
	release := make(chan struct{})
	var armed atomic.Bool
	f.st.afterRead = func(method string) {
		if method == "ChangesSince" && armed.CompareAndSwap(true, false) {
			<-release
		}
	}
	calls := f.st.changesCalls.Load()
	armed.Store(true)
	var wg sync.WaitGroup
	write := func(i int) {
		wg.Go(func() {
			if i == 0 {
				f.setFlagsElsewhere(store.FlagsAdd, []string{"$Done"}, 1)
				return
			}
			// The waiting writers' own results must not stand in for
			// the shared refresh: it serves the others too.
			if _, _, err := views[i].UpdateFlags(context.Background(), []uint32{uint32(i + 1)}, store.FlagsAdd, []string{"$Done"}, 0); err != nil {
				t.Error(err)
			}
		})
	}
	// The first writer's refresh reads the store and is held there.
	write(0)
	waitFor(t, "the first refresh to read the store", func() bool { return !armed.Load() })
	// The others write and ask for a refresh meanwhile.
	for i := 1; i < writers; i++ {
		write(i)
	}
	waitFor(t, "the other writers to wait", func() bool {
		sm.rmu.Lock()
		defer sm.rmu.Unlock()
		return sm.waiters == writers-1
	})
	close(release)
	wg.Wait()
	if n := f.st.changesCalls.Load() - calls; n != 2 {
		t.Fatalf("%d writers made %d store reads, want 2", writers, n)
	}
	for u := uint32(1); u <= writers; u++ {
		if m, _, _ := reader.Meta(u); !slices.Equal(m.Flags, []string{"$Done"}) {
			t.Fatalf("UID %d: flags %v after every Changed returned", u, m.Flags)
		}
	}
	if u := reader.Updates(context.Background(), true); len(u.Flags) != writers {
		t.Fatalf("reader update: %d flag changes, want %d", len(u.Flags), writers)
	}
}

// A mailbox deleted while a refresh reads the store: the views learn it
// is gone, and the next Open loads a fresh index.
func TestGoneDuringARefresh(t *testing.T) {
	f := newFixture(t, 3, Options{})
	a := f.open(false)
	old := f.shared()
	var armed atomic.Bool
	f.st.afterRead = func(method string) {
		if method == "ChangesSince" && armed.CompareAndSwap(true, false) {
			if !within(func() { f.hub.Gone(testBox, Renamed) }) {
				t.Error("Gone waited for a refresh's store read")
			}
		}
	}
	armed.Store(true)
	f.setFlagsElsewhere(store.FlagsAdd, []string{"$X"}, 2)
	if u := a.Updates(context.Background(), true); u.Gone != Renamed {
		t.Fatalf("update after Gone: %+v", u)
	}
	b := f.open(false)
	if f.shared() == old {
		t.Fatal("Open after Gone reused the dropped index")
	}
	if m, _, _ := b.Meta(2); !slices.Equal(m.Flags, []string{"$X"}) {
		t.Fatalf("fresh index: flags %v", m.Flags)
	}
	if kw := b.Keywords(); !slices.Equal(kw, []string{"$X"}) {
		t.Fatalf("fresh index: keywords %v", kw)
	}
}

// A mailbox deleted between the load of its index and the first refresh:
// Open fails and the index is not kept.
func TestDeletedWhileOpening(t *testing.T) {
	f := newFixture(t, 3, Options{})
	var armed atomic.Bool
	f.st.afterRead = func(method string) {
		if method == "MessageIndex" && armed.CompareAndSwap(true, false) {
			f.st.deleteMailbox(testBox)
		}
	}
	armed.Store(true)
	if _, err := f.hub.Open(context.Background(), testUser, testBox, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open: %v", err)
	}
	if sm := f.shared(); sm != nil {
		t.Fatal("index of a deleted mailbox kept")
	}
}

// A caller waiting for a refresh gives up when its context ends.
func TestRefreshWaitHonoursContext(t *testing.T) {
	f := newFixture(t, 1, Options{})
	f.open(false)
	sm := f.shared()
	release := make(chan struct{})
	var armed atomic.Bool
	f.st.afterRead = func(method string) {
		if method == "ChangesSince" && armed.CompareAndSwap(true, false) {
			<-release
		}
	}
	armed.Store(true)
	var wg sync.WaitGroup
	wg.Go(func() { f.hub.Changed(context.Background(), testBox) })
	waitFor(t, "the refresh to read the store", func() bool { return !armed.Load() })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- sm.refresh(ctx, nil) }()
	waitFor(t, "the second caller to wait", func() bool {
		sm.rmu.Lock()
		defer sm.rmu.Unlock()
		return sm.waiters == 1
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting refresh: %v", err)
	}
	close(release)
	wg.Wait()
}

// diffIndex, the comparison after a full reload.
func TestDiffIndex(t *testing.T) {
	all := []store.MessageMeta{{UID: 2, ModSeq: 3}, {UID: 4, ModSeq: 9}, {UID: 5, ModSeq: 2}, {UID: 8, ModSeq: 9}}
	ch := diffIndex([]uint32{1, 2, 3, 4, 5, 6}, 5, all, 9)
	var changed []uint32
	for _, m := range ch.Changed {
		changed = append(changed, m.UID)
	}
	if !slices.Equal(ch.Vanished, []uint32{1, 3, 6}) || !slices.Equal(changed, []uint32{4, 8}) || !ch.Complete || ch.HighestModSeq != 9 {
		t.Fatalf("diffIndex: vanished %v changed %v %+v", ch.Vanished, changed, ch)
	}
}

// A view's own flag change, next in MODSEQ order, is applied from the
// write's result without reading the store; one that is not (another
// write came first, unseen by the index) makes the refresh read it.
func TestOwnFlagChangeWithoutStoreRead(t *testing.T) {
	f := newFixture(t, 3, Options{})
	a := f.open(false)
	b := f.open(true)
	calls := f.st.changesCalls.Load()
	changed := f.setFlags(a, store.FlagsAdd, []string{`\Seen`}, 1, 2)
	if n := f.st.changesCalls.Load() - calls; n != 0 {
		t.Errorf("own flag change next in order: %d store reads, want 0", n)
	}
	u := b.Updates(context.Background(), true)
	if len(u.Flags) != 2 || u.Flags[0].Seq != 1 || u.Flags[1].Seq != 2 || !slices.Equal(u.Flags[1].Meta.Flags, []string{`\Seen`}) {
		t.Fatalf("other view's update: %+v", u.Flags)
	}
	if highest := b.HighestModSeq(); highest != changed[0].ModSeq {
		t.Fatalf("view HIGHESTMODSEQ %d, want the write's %d", highest, changed[0].ModSeq)
	}

	// A change the index has not seen: the own change is not next.
	if _, _, err := f.st.UpdateFlags(context.Background(), testUser, testBox, []uint32{3}, store.FlagsAdd, []string{"$Hidden"}, 0); err != nil {
		t.Fatal(err)
	}
	calls = f.st.changesCalls.Load()
	f.setFlags(a, store.FlagsAdd, []string{`\Flagged`}, 1)
	if n := f.st.changesCalls.Load() - calls; n != 1 {
		t.Errorf("own flag change after an unseen one: %d store reads, want 1", n)
	}
	u = b.Updates(context.Background(), true)
	if len(u.Flags) != 2 || u.Flags[0].Seq != 1 || u.Flags[1].Seq != 3 || !slices.Equal(u.Flags[1].Meta.Flags, []string{"$Hidden"}) {
		t.Fatalf("other view's update after the fallback: %+v", u.Flags)
	}
}

// Changed is called after a write has committed: the index learns of it
// and the other views are told even when the writer's context has ended
// meanwhile (its client went away).
func TestChangedWithEndedContext(t *testing.T) {
	f := newFixture(t, 3, Options{})
	f.open(false)
	b := f.open(false)
	uids, _, err := f.st.AppendMessages(context.Background(), testUser, testBox, make([]store.NewMessage, 2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.hub.Changed(ctx, testBox)
	if u := updates(b, true); !u.NewMessages || u.Count != 5 {
		t.Errorf("after appending UIDs %v under an ended context, the view has %d messages (new: %v), want 5", uids, u.Count, u.NewMessages)
	}
}

// Held tells whether a mailbox's index is held, and how far it is.
func TestHeld(t *testing.T) {
	f := newFixture(t, 3, Options{})
	if _, held := f.hub.Held(testBox); held {
		t.Fatal("an index nobody opened is held")
	}
	v := f.open(false)
	ms, held := f.hub.Held(testBox)
	if !held || ms != v.HighestModSeq() {
		t.Fatalf("Held = %d, %v; want %d, true", ms, held, v.HighestModSeq())
	}
	_, mb, err := f.st.AppendMessages(context.Background(), testUser, testBox, make([]store.NewMessage, 1))
	if err != nil {
		t.Fatal(err)
	}
	if ms2, _ := f.hub.Held(testBox); ms2 != ms {
		t.Errorf("Held moved to %d before a refresh", ms2)
	}
	f.hub.Changed(context.Background(), testBox)
	if ms2, _ := f.hub.Held(testBox); ms2 != mb.HighestModSeq {
		t.Errorf("Held = %d after the refresh, want %d", ms2, mb.HighestModSeq)
	}
	v.Close()
	if _, held := f.hub.Held(testBox); held {
		t.Error("an index whose views all closed is held")
	}
}

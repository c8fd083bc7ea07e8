package tracker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/quickimap/quickimap/store"
)

const (
	testUser = 1
	testBox  = 10
)

// fixture is a hub over an in-memory store holding one mailbox.
type fixture struct {
	t   *testing.T
	st  *memStore
	hub *Hub
}

func newFixture(t *testing.T, messages int, opts Options) *fixture {
	t.Helper()
	st := newMemStore()
	st.addMailbox(testUser, testBox)
	f := &fixture{t: t, st: st, hub: NewHub(st, opts)}
	if messages > 0 {
		f.appendN(messages)
	}
	return f
}

func (f *fixture) open(readOnly bool) *View {
	f.t.Helper()
	v, err := f.hub.Open(context.Background(), testUser, testBox, readOnly)
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	f.t.Cleanup(v.Close)
	return v
}

// appendN appends n messages (with flags) as a session's APPEND does:
// store first, then Changed.
func (f *fixture) appendN(n int, flags ...string) []uint32 {
	f.t.Helper()
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i].Flags = flags
	}
	uids, _, err := f.st.AppendMessages(context.Background(), testUser, testBox, msgs)
	if err != nil {
		f.t.Fatal(err)
	}
	f.hub.Changed(context.Background(), testBox)
	return uids
}

// expunge expunges uids as another session's EXPUNGE does.
func (f *fixture) expunge(uids ...uint32) {
	f.t.Helper()
	if _, err := f.st.Expunge(context.Background(), testUser, testBox, uids); err != nil {
		f.t.Fatal(err)
	}
	f.hub.Changed(context.Background(), testBox)
}

// setFlagsElsewhere changes flags as a write outside the views does
// (another process, or a command without a view): the refresh after it
// reads the store.
func (f *fixture) setFlagsElsewhere(op store.FlagOp, flags []string, uids ...uint32) {
	f.t.Helper()
	if _, _, err := f.st.UpdateFlags(context.Background(), testUser, testBox, uids, op, flags, 0); err != nil {
		f.t.Fatal(err)
	}
	f.hub.Changed(context.Background(), testBox)
}

func (f *fixture) setFlags(v *View, op store.FlagOp, flags []string, uids ...uint32) []store.MessageMeta {
	f.t.Helper()
	changed, _, err := v.UpdateFlags(context.Background(), uids, op, flags, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return changed
}

func updates(v *View, allowExpunge bool) Update {
	return v.Updates(context.Background(), allowExpunge)
}

func TestOpenShowsTheMailbox(t *testing.T) {
	f := newFixture(t, 3, Options{})
	v := f.open(false)
	if got := v.UIDs(); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Fatalf("UIDs = %v", got)
	}
	if v.Count() != 3 || v.UIDNext() != 4 || v.UIDValidity() != 7 || v.MailboxID() != testBox || v.ReadOnly() {
		t.Fatalf("Count %d UIDNext %d UIDValidity %d MailboxID %d ReadOnly %v", v.Count(), v.UIDNext(), v.UIDValidity(), v.MailboxID(), v.ReadOnly())
	}
	_, modseq := f.st.snapshot(testBox)
	if v.HighestModSeq() != modseq {
		t.Fatalf("HighestModSeq = %d, store has %d", v.HighestModSeq(), modseq)
	}
	if u := updates(v, true); u.NewMessages || u.Expunged != nil || u.Flags != nil || u.Keywords != nil || u.Gone != 0 {
		t.Fatalf("update right after Open: %+v", u)
	}
	if _, err := f.hub.Open(context.Background(), testUser, 99, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open of a missing mailbox: %v", err)
	}
	if _, err := f.hub.Open(context.Background(), testUser+1, testBox, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open of another user's mailbox: %v", err)
	}
}

func TestRecentIsClaimedOnce(t *testing.T) {
	f := newFixture(t, 2, Options{})
	ro := f.open(true) // before any read-write session: sees both as recent
	a := f.open(false) // claims 1 and 2
	b := f.open(false)
	if !slices.Equal(a.Recent(), []uint32{1, 2}) || b.RecentCount() != 0 || !slices.Equal(ro.Recent(), []uint32{1, 2}) {
		t.Fatalf("recent after open: a %v b %v ro %v", a.Recent(), b.Recent(), ro.Recent())
	}

	f.appendN(2) // UIDs 3, 4
	// The read-only view learns of them before any read-write view
	// claims them: recent there too.
	if u := updates(ro, true); !u.NewMessages || u.Count != 4 || u.Recent != 4 {
		t.Fatalf("read-only update: %+v", u)
	}
	// b reports first and claims them; a gets none.
	if u := updates(b, true); !u.NewMessages || u.Count != 4 || u.Recent != 2 || u.ClaimErr != nil {
		t.Fatalf("b update: %+v", u)
	}
	if u := updates(a, true); !u.NewMessages || u.Count != 4 || u.Recent != 2 {
		t.Fatalf("a update: %+v", u)
	}
	if !a.IsRecent(1) || a.IsRecent(3) || !b.IsRecent(4) || b.IsRecent(1) {
		t.Fatalf("IsRecent: a %v b %v", a.Recent(), b.Recent())
	}
	// A read-only view opened now sees nothing unclaimed.
	if late := f.open(true); late.RecentCount() != 0 {
		t.Fatalf("late read-only view recent = %v", late.Recent())
	}

	// An expunged recent message stops being recent.
	f.expunge(1)
	updates(a, true)
	if !slices.Equal(a.Recent(), []uint32{2}) {
		t.Fatalf("a recent after expunge = %v", a.Recent())
	}
	if n := b.RecentBelow(100); n != 2 {
		t.Fatalf("b RecentBelow = %d", n)
	}
	if n := a.RecentBelow(2); n != 0 {
		t.Fatalf("a RecentBelow(2) = %d", n)
	}

	// A resumed session gets its \Recent messages back.
	c := f.open(false)
	c.RestoreRecent(func(u uint32) (bool, bool) { return u == 3 || u == 1, true })
	if !slices.Equal(c.Recent(), []uint32{3}) {
		t.Fatalf("restored recent = %v", c.Recent())
	}
	// The walk ends where saved says so.
	d := f.open(false)
	var asked []uint32
	d.RestoreRecent(func(u uint32) (bool, bool) {
		asked = append(asked, u)
		return true, u < 3
	})
	if !slices.Equal(d.Recent(), []uint32{2}) || !slices.Equal(asked, []uint32{2, 3}) {
		t.Fatalf("restored recent = %v, asked about %v", d.Recent(), asked)
	}
}

func TestExpungeHeldBackUntilAllowed(t *testing.T) {
	f := newFixture(t, 5, Options{})
	a := f.open(false)
	before := a.HighestModSeq()
	snapshot := a.UIDs()
	kept := slices.Clone(snapshot)

	f.expunge(2, 4)
	// During FETCH, STORE or SEARCH the expunged messages keep their
	// sequence numbers (RFC 3501 §7.4.1), and HIGHESTMODSEQ stays
	// below the expunges.
	u := updates(a, false)
	if u.Expunged != nil || u.ExpungedSeqs != nil || !a.HoldsExpunges() {
		t.Fatalf("held update: %+v, holds %v", u, a.HoldsExpunges())
	}
	if !slices.Equal(a.UIDs(), []uint32{1, 2, 3, 4, 5}) || a.HighestModSeq() != before {
		t.Fatalf("while held: UIDs %v HighestModSeq %d (was %d)", a.UIDs(), a.HighestModSeq(), before)
	}
	// A flag change meanwhile is numbered in the old numbering.
	other := f.open(false)
	f.setFlags(other, store.FlagsAdd, []string{`\Seen`}, 5)
	u = updates(a, false)
	if len(u.Flags) != 1 || u.Flags[0].Seq != 5 || u.Flags[0].Meta.UID != 5 {
		t.Fatalf("flag change while held: %+v", u.Flags)
	}
	if a.HighestModSeq() != before {
		t.Fatalf("HighestModSeq moved past a held expunge: %d", a.HighestModSeq())
	}

	u = updates(a, true)
	if !slices.Equal(u.Expunged, []uint32{2, 4}) || !slices.Equal(u.ExpungedSeqs, []uint32{4, 2}) {
		t.Fatalf("released: Expunged %v ExpungedSeqs %v", u.Expunged, u.ExpungedSeqs)
	}
	_, modseq := f.st.snapshot(testBox)
	if !slices.Equal(a.UIDs(), []uint32{1, 3, 5}) || a.HoldsExpunges() || a.HighestModSeq() != modseq {
		t.Fatalf("after release: UIDs %v holds %v HighestModSeq %d, store %d", a.UIDs(), a.HoldsExpunges(), a.HighestModSeq(), modseq)
	}
	// The slice handed out before is unchanged: arrays are replaced,
	// not modified, when messages go.
	if !slices.Equal(snapshot, kept) {
		t.Fatalf("old UIDs slice changed: %v", snapshot)
	}
	// A message that came and went unseen is never reported.
	uids := f.appendN(1)
	f.expunge(uids...)
	if u := updates(a, true); u.Expunged != nil || u.NewMessages {
		t.Fatalf("unseen message reported: %+v", u)
	}
}

func TestFlagChangesOfOthersOnly(t *testing.T) {
	f := newFixture(t, 3, Options{})
	a := f.open(false)
	b := f.open(false)
	changed := f.setFlags(a, store.FlagsAdd, []string{`\Flagged`}, 2, 3)
	if len(changed) != 2 {
		t.Fatalf("changed = %v", changed)
	}
	// a reported its own change itself.
	if u := updates(a, true); u.Flags != nil {
		t.Fatalf("own change reported again: %+v", u.Flags)
	}
	u := updates(b, true)
	if len(u.Flags) != 2 || u.Flags[0].Seq != 2 || u.Flags[1].Seq != 3 {
		t.Fatalf("b flags: %+v", u.Flags)
	}
	for _, fc := range u.Flags {
		if !slices.Equal(fc.Meta.Flags, []string{`\Flagged`}) || fc.Meta.ModSeq != changed[0].ModSeq {
			t.Fatalf("b flag change %+v, want modseq %d", fc, changed[0].ModSeq)
		}
	}
	// Two changes of one message come as one, with the newer flags.
	f.setFlags(a, store.FlagsAdd, []string{`\Seen`}, 1)
	f.setFlags(a, store.FlagsRemove, []string{`\Seen`}, 1)
	f.setFlags(a, store.FlagsAdd, []string{`\Draft`}, 1)
	u = updates(b, true)
	if len(u.Flags) != 1 || u.Flags[0].Seq != 1 || !slices.Equal(u.Flags[0].Meta.Flags, []string{`\Draft`}) {
		t.Fatalf("coalesced flags: %+v", u.Flags)
	}
	m, ok, newKW := b.Meta(1)
	if !ok || newKW || !slices.Equal(m.Flags, []string{`\Draft`}) {
		t.Fatalf("Meta(1) = %+v %v %v", m, ok, newKW)
	}
	if _, ok, _ := b.Meta(99); ok {
		t.Fatal("Meta of a missing UID is ok")
	}
}

func TestKeywordsGrow(t *testing.T) {
	f := newFixture(t, 2, Options{})
	f.appendN(1, "$Old")
	a := f.open(false)
	b := f.open(false)
	if kw := a.Keywords(); !slices.Equal(kw, []string{"$Old"}) {
		t.Fatalf("Keywords = %v", kw)
	}
	b.Keywords()
	if a.NewKeywords() != nil {
		t.Fatal("NewKeywords right after Keywords")
	}
	f.setFlags(b, store.FlagsAdd, []string{"$New"}, 1)
	// Meta tells a that a keyword it was not told of exists.
	if _, _, newKW := a.Meta(1); !newKW {
		t.Fatal("Meta: no newKW after a keyword was added")
	}
	u := updates(a, true)
	if !slices.Equal(u.Keywords, []string{"$New", "$Old"}) || len(u.Flags) != 1 {
		t.Fatalf("update: keywords %v flags %+v", u.Keywords, u.Flags)
	}
	if u := updates(a, true); u.Keywords != nil {
		t.Fatalf("keywords reported twice: %v", u.Keywords)
	}
	// The keyword stays known after the last message with it goes.
	f.expunge(1)
	updates(a, true)
	if kw := a.Keywords(); !slices.Contains(kw, "$New") {
		t.Fatalf("Keywords after expunge = %v", kw)
	}
	// b set it itself: its own update still lists the grown set.
	if kw := b.NewKeywords(); !slices.Equal(kw, []string{"$New", "$Old"}) {
		t.Fatalf("b NewKeywords = %v", kw)
	}
}

func TestLogOverflowFallsBackToFullComparison(t *testing.T) {
	f := newFixture(t, 20, Options{LogLimit: 4})
	a := f.open(false)
	b := f.open(false)
	start := a.HighestModSeq()
	// More changes than the log holds, b keeping up, a not.
	for u := uint32(1); u <= 10; u++ {
		f.setFlags(b, store.FlagsAdd, []string{`\Seen`}, u)
		updates(b, true)
	}
	f.expunge(15, 16)
	updates(b, true)
	f.hub.mu.Lock()
	sm := f.hub.boxes[testBox]
	f.hub.mu.Unlock()
	sm.mu.RLock()
	logLen, behind := len(sm.log), a.pos < sm.logBase
	sm.mu.RUnlock()
	if logLen > 4 || !behind {
		t.Fatalf("log holds %d entries, a behind: %v", logLen, behind)
	}
	u := updates(a, true)
	if !slices.Equal(u.Expunged, []uint32{15, 16}) || !slices.Equal(u.ExpungedSeqs, []uint32{16, 15}) {
		t.Fatalf("full comparison expunges: %v %v", u.Expunged, u.ExpungedSeqs)
	}
	if len(u.Flags) != 10 {
		t.Fatalf("full comparison flags: %d changes, want 10", len(u.Flags))
	}
	for i, fc := range u.Flags {
		if fc.Seq != uint32(i+1) || fc.Meta.ModSeq <= start || !slices.Contains(fc.Meta.Flags, `\Seen`) {
			t.Fatalf("flag change %d: %+v", i, fc)
		}
	}
	// b, which kept up, read the log the normal way and is current.
	if u := updates(b, true); u.Flags != nil || u.Expunged != nil {
		t.Fatalf("b: %+v", u)
	}
}

func TestPurgedTombstonesReloadTheIndex(t *testing.T) {
	f := newFixture(t, 6, Options{})
	a := f.open(false)
	idle := f.open(false) // keeps the index loaded; does not matter here
	_ = idle
	// Expunge while the hub does not look (no Changed), then lose the
	// tombstones: ChangesSince is incomplete and the hub reloads.
	if _, err := f.st.Expunge(context.Background(), testUser, testBox, []uint32{2, 5}); err != nil {
		t.Fatal(err)
	}
	f.st.purgeTombstones(testBox)
	calls := f.st.indexCalls.Load()
	f.hub.Changed(context.Background(), testBox)
	if f.st.indexCalls.Load() != calls+1 {
		t.Fatalf("MessageIndex calls: %d, want %d", f.st.indexCalls.Load(), calls+1)
	}
	u := updates(a, true)
	if !slices.Equal(u.Expunged, []uint32{2, 5}) {
		t.Fatalf("expunged after reload: %v", u.Expunged)
	}
	_, modseq := f.st.snapshot(testBox)
	if !slices.Equal(a.UIDs(), []uint32{1, 3, 4, 6}) || a.HighestModSeq() != modseq {
		t.Fatalf("after reload: %v %d (store %d)", a.UIDs(), a.HighestModSeq(), modseq)
	}
}

func TestGone(t *testing.T) {
	f := newFixture(t, 2, Options{})
	a := f.open(false)
	b := f.open(true)
	aChanged := notifyChan(a)
	f.hub.Gone(testBox, Deleted)
	select {
	case <-aChanged:
	default:
		t.Fatal("a not woken by Gone")
	}
	if a.Gone() != Deleted || b.Gone() != Deleted {
		t.Fatalf("Gone: %v %v", a.Gone(), b.Gone())
	}
	if u := updates(a, true); u.Gone != Deleted || u.NewMessages || u.Flags != nil {
		t.Fatalf("update after Gone: %+v", u)
	}
	// The next Open loads a fresh index.
	c := f.open(false)
	if c.Gone() != 0 || c.Count() != 2 {
		t.Fatalf("reopened: gone %v count %d", c.Gone(), c.Count())
	}
	// Deleted in the store: Open fails, and leaves nothing cached.
	f.hub.Gone(testBox, Renamed)
	if c.Gone() != Renamed {
		t.Fatalf("c.Gone = %v", c.Gone())
	}
	f.st.deleteMailbox(testBox)
	if _, err := f.hub.Open(context.Background(), testUser, testBox, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open of a deleted mailbox: %v", err)
	}
	f.hub.mu.Lock()
	n := len(f.hub.boxes)
	f.hub.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d indexes cached after a failed Open", n)
	}
}

func TestIdleIndexesAreEvicted(t *testing.T) {
	st := newMemStore()
	h := NewHub(st, Options{MaxIdleIndexes: 2})
	for id := int64(1); id <= 4; id++ {
		st.addMailbox(testUser, id)
		v, err := h.Open(context.Background(), testUser, id, false)
		if err != nil {
			t.Fatal(err)
		}
		v.Close()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.boxes) != 2 || h.boxes[3] == nil || h.boxes[4] == nil {
		t.Fatalf("cached indexes: %v", h.boxes)
	}
}

func TestNewHighestModSeqOnce(t *testing.T) {
	f := newFixture(t, 1, Options{})
	a := f.open(false)
	f.appendN(1)
	updates(a, true)
	m, ok := a.NewHighestModSeq()
	if !ok || m != a.HighestModSeq() {
		t.Fatalf("NewHighestModSeq = %d %v", m, ok)
	}
	if _, ok := a.NewHighestModSeq(); ok {
		t.Fatal("NewHighestModSeq reported the same value twice")
	}
}

func TestScan(t *testing.T) {
	f := newFixture(t, 5, Options{})
	a := f.open(false)
	b := f.open(false)
	f.setFlags(b, store.FlagsAdd, []string{`\Seen`}, 1, 3)
	f.expunge(2)
	// a has not applied the expunge: 2 is skipped, numbering unchanged.
	got := a.Scan(func(u uint32, m *store.MessageMeta) (bool, bool) {
		return !slices.Contains(m.Flags, `\Seen`), false
	})
	if len(got) != 2 || got[0].Seq != 4 || got[1].Seq != 5 {
		t.Fatalf("Scan: %+v", got)
	}
	got = a.Scan(func(u uint32, m *store.MessageMeta) (bool, bool) { return true, true })
	if len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("Scan with stop: %+v", got)
	}
	cur, uidNext := a.Index()
	if !slices.Equal(cur, []uint32{1, 3, 4, 5}) || uidNext != 6 {
		t.Fatalf("Index = %v %d", cur, uidNext)
	}
}

// chanWaker is a Waker that signals a one-slot channel.
type chanWaker chan struct{}

func (c chanWaker) Wake() {
	select {
	case c <- struct{}{}:
	default:
	}
}

// notifyChan makes v signal the returned channel when its mailbox
// changes.
func notifyChan(v *View) <-chan struct{} {
	c := make(chanWaker, 1)
	v.SetWaker(c)
	return c
}

// Package tracker keeps one shared in-memory index per mailbox that some
// session has open, and each session's sequence-number view of it.
//
// It speaks UIDs, sequence numbers, flags and MODSEQs, never IMAP syntax:
// a View produces typed updates (expunged sequence numbers or UIDs, the
// new message count, flag changes, keywords that appeared, the mailbox
// going away) that the IMAP server encodes. It depends on the store
// interface only.
package tracker

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"

	"github.com/quickimap/quickimap/store"
)

// Hub keeps one shared in-memory index per mailbox that some session has
// selected, so that SELECT, FETCH FLAGS and SEARCH on flags need no store
// access, and tells the sessions of a mailbox when it changes.
//
// Every change goes through the store first; the hub then refreshes the
// index from the store with ChangesSince, in MODSEQ order, whatever order
// concurrent writers returned in. The same refresh will serve notifications
// from other nodes when the store is shared.
//
// Locks: Hub.mu guards the set of indexes. Each index has two: refreshes
// of it run one at a time under its refresh state (sharedMailbox.rmu),
// read the store holding no lock that readers need, and take the index's
// sharedMailbox.mu for writing only to publish what they read. Views read
// under sharedMailbox.mu held for reading. Hub.mu is never taken while
// an index's locks are held.
type Hub struct {
	st   store.Store
	opts Options

	mu    sync.Mutex
	boxes map[int64]*sharedMailbox
	clock uint64 // orders releases, for eviction
}

// Options tune a Hub; the zero value gives the defaults.
type Options struct {
	// LogLimit bounds the change log of a shared mailbox. A view further
	// behind than this compares itself with the whole index instead.
	// Default 4096.
	LogLimit int
	// Indexes nobody holds are kept for a while, so that a phone that
	// reconnects (or a client that switches folders and back) finds its
	// mailbox's index warm: loading 100,000 messages from the store
	// takes ~70 ms, a warm SELECT under 1 ms. They are bounded in number
	// (MaxIdleIndexes, default 256) and in total messages
	// (MaxIdleMessages, default 2,000,000); the least recently released
	// go first.
	MaxIdleIndexes  int
	MaxIdleMessages int
}

// NewHub returns a Hub that reads and writes st.
func NewHub(st store.Store, opts Options) *Hub {
	if opts.LogLimit <= 0 {
		opts.LogLimit = 4096
	}
	if opts.MaxIdleIndexes <= 0 {
		opts.MaxIdleIndexes = 256
	}
	if opts.MaxIdleMessages <= 0 {
		opts.MaxIdleMessages = 2_000_000
	}
	return &Hub{st: st, opts: opts, boxes: make(map[int64]*sharedMailbox)}
}

// change is one entry of a shared mailbox's change log.
type change struct {
	uid    uint32
	modseq uint64
	kind   changeKind
}

type changeKind uint8

const (
	changeNew changeKind = iota
	changeFlags
	changeExpunge
)

// sharedMailbox is the in-memory index of one mailbox.
type sharedMailbox struct {
	hub    *Hub
	id     int64
	userID int64

	// mu guards what follows up to the refresh state; readers hold it
	// for reading, a refresh publishing its result for writing. Only
	// refreshes write uids, metas, mb, log and logBase, and they run one
	// at a time, so a refresh may read those before taking mu.
	mu sync.RWMutex
	// uids and metas are parallel and ascending by UID. They are replaced,
	// not modified, when messages go; new messages are appended, so a
	// view's snapshot (a shorter slice of the same array) stays valid.
	uids  []uint32
	metas []store.MessageMeta
	mb    store.Mailbox // UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ as of the last refresh
	// keywords seen in the mailbox, for the FLAGS response, and the same
	// sorted. The set only grows while the index lives, so its size is
	// its version: a view compares it with the count it has told its
	// client (View.kwTold) and reports the list again when it grew.
	keywords map[string]struct{}
	kwSorted []string
	// log holds the changes from position logBase on.
	log     []change
	logBase uint64
	// recentUpTo: UIDs below it have been handed out as \Recent.
	recentUpTo uint32
	// gone, when not 0, says why the mailbox can no longer be shown to
	// the sessions that have it open (deleted, or INBOX renamed): their
	// next update says so. The index is no longer in Hub.boxes.
	gone Gone

	// The refresh state, guarded by rmu. Refreshes are numbered as they
	// start; finished is the number of the last one that finished, with
	// its error; refreshed is closed when the running one finishes.
	rmu        sync.Mutex
	running    bool
	started    uint64
	finished   uint64
	refreshErr error
	refreshed  chan struct{}
	waiters    int // callers waiting for a refresh (for tests)

	refs     int    // views holding it (guarded by Hub.mu)
	released uint64 // Hub.clock when refs last dropped to 0 (Hub.mu)
	views    map[*View]struct{}
}

func (sm *sharedMailbox) logEnd() uint64 { return sm.logBase + uint64(len(sm.log)) }

// Gone says why a mailbox can no longer be shown to the sessions that
// have it open.
type Gone uint8

const (
	// Deleted: the mailbox was deleted.
	Deleted Gone = iota + 1
	// Renamed: INBOX was renamed. Its messages, id and UIDVALIDITY now
	// belong to another name, and INBOX is a new mailbox.
	Renamed
)

// open returns the shared index of a mailbox, loading it on first use.
func (h *Hub) open(ctx context.Context, userID, mailboxID int64) (*sharedMailbox, error) {
	h.mu.Lock()
	sm := h.boxes[mailboxID]
	if sm != nil && sm.userID == userID {
		sm.refs++
		h.mu.Unlock()
		// Catch up with changes made while nobody was looking (another
		// node, or a write that raced with the load).
		return h.refreshOpened(ctx, sm)
	}
	h.mu.Unlock()

	metas, mb, err := h.st.MessageIndex(ctx, userID, mailboxID)
	if err != nil {
		return nil, err
	}
	loaded := &sharedMailbox{
		hub:        h,
		id:         mailboxID,
		userID:     userID,
		metas:      metas,
		uids:       make([]uint32, len(metas)),
		mb:         mb,
		keywords:   map[string]struct{}{},
		recentUpTo: mb.FirstRecentUID,
		views:      map[*View]struct{}{},
	}
	for i := range metas {
		loaded.uids[i] = metas[i].UID
		loaded.noteKeywords(metas[i].Flags)
	}
	h.mu.Lock()
	if sm = h.boxes[mailboxID]; sm == nil {
		sm = loaded
		h.boxes[mailboxID] = sm
	}
	sm.refs++
	h.mu.Unlock()
	// The refresh also catches a delete that raced with the load: the
	// store then answers ErrNotFound (or ErrNoSelect) here.
	return h.refreshOpened(ctx, sm)
}

// refreshOpened refreshes an index just opened; on failure it drops the
// hold open took, so that the caller has nothing to release.
func (h *Hub) refreshOpened(ctx context.Context, sm *sharedMailbox) (*sharedMailbox, error) {
	if err := sm.refresh(ctx, nil); err != nil {
		h.release(sm)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoSelect) {
			// Deleted after the load: do not keep the index cached.
			h.mu.Lock()
			if h.boxes[sm.id] == sm && sm.refs == 0 {
				delete(h.boxes, sm.id)
			}
			h.mu.Unlock()
		}
		return nil, err
	}
	return sm, nil
}

// release drops a view's hold; the index stays cached while it fits the
// idle bounds.
func (h *Hub) release(sm *sharedMailbox) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sm.refs--
	if sm.refs > 0 || h.boxes[sm.id] != sm {
		return
	}
	h.clock++
	sm.released = h.clock
	h.evictIdle()
}

// evictIdle drops the least recently released idle indexes beyond the
// bounds. It runs with h.mu held.
func (h *Hub) evictIdle() {
	for {
		n, msgs := 0, 0
		var oldest *sharedMailbox
		for _, b := range h.boxes {
			if b.refs > 0 {
				continue
			}
			n++
			msgs += b.size()
			if oldest == nil || b.released < oldest.released {
				oldest = b
			}
		}
		if oldest == nil || (n <= h.opts.MaxIdleIndexes && msgs <= h.opts.MaxIdleMessages) {
			return
		}
		delete(h.boxes, oldest.id)
	}
}

func (sm *sharedMailbox) size() int {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return len(sm.uids)
}

// Changed is called after a write to a mailbox: it refreshes the index if
// it is loaded and wakes the views of the mailbox. When it returns, the
// index holds every change the store had made when it was called. Calls
// that land while a refresh runs share the one refresh after it.
func (h *Hub) Changed(ctx context.Context, mailboxID int64) {
	h.changed(ctx, mailboxID, nil)
}

// changed is Changed for a write whose result is known: own, when not
// nil, is what the write did (see refreshOnce).
func (h *Hub) changed(ctx context.Context, mailboxID int64, own *store.Changes) {
	// The write is done: the index must learn of it, and the other views
	// be woken, even when the writer's context has ended since (its
	// client went away, the server is shutting down).
	ctx = context.WithoutCancel(ctx)
	h.mu.Lock()
	sm := h.boxes[mailboxID]
	idle := sm != nil && sm.refs == 0
	h.mu.Unlock()
	if sm == nil || idle {
		// Nobody is looking: open() catches up when someone does.
		return
	}
	sm.refresh(ctx, own)
}

// Held reports whether some view holds the index of a mailbox, and the
// HIGHESTMODSEQ the index has reached: a hint from another node about a
// mailbox nobody here has open, or about a MODSEQ the index already has,
// needs no refresh.
func (h *Hub) Held(mailboxID int64) (modseq uint64, held bool) {
	h.mu.Lock()
	sm := h.boxes[mailboxID]
	held = sm != nil && sm.refs > 0
	h.mu.Unlock()
	if !held {
		return 0, false
	}
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return sm.mb.HighestModSeq, true
}

// RefreshAll refreshes every index some view holds and wakes the views
// that see changes, as Changed does for one mailbox: for writes the hub
// was not told of (another process writing the same store). Indexes
// nobody holds catch up when they are next opened.
func (h *Hub) RefreshAll(ctx context.Context) {
	h.mu.Lock()
	held := make([]*sharedMailbox, 0, len(h.boxes))
	for _, sm := range h.boxes {
		if sm.refs > 0 {
			held = append(held, sm)
		}
	}
	h.mu.Unlock()
	for _, sm := range held {
		if ctx.Err() != nil {
			return
		}
		sm.refresh(ctx, nil)
	}
}

// Gone drops the index of a mailbox that sessions can no longer be shown:
// deleted, or INBOX renamed. Its views are woken, and their next update
// says why; the next Open of the id loads a fresh index.
func (h *Hub) Gone(mailboxID int64, why Gone) {
	h.mu.Lock()
	sm := h.boxes[mailboxID]
	delete(h.boxes, mailboxID)
	h.mu.Unlock()
	if sm == nil {
		return
	}
	sm.mu.Lock()
	sm.gone = why
	for v := range sm.views {
		v.wake()
	}
	sm.mu.Unlock()
}

// noteKeywords adds the keywords of flags to the mailbox's set. It runs
// with sm.mu held for writing.
func (sm *sharedMailbox) noteKeywords(flags []string) {
	for _, f := range flags {
		if isKeyword(f) {
			if _, ok := sm.keywords[f]; !ok {
				sm.keywords[f] = struct{}{}
				i := sort.SearchStrings(sm.kwSorted, f)
				sm.kwSorted = slices.Insert(sm.kwSorted, i, f)
			}
		}
	}
}

func isKeyword(f string) bool { return f != "" && f[0] != '\\' }

// refresh brings the index up to date with the store: when it returns
// (without error), every change the store had made when it was called is
// in the index.
//
// A refresh that is already running may have read the store before that
// change, so the caller waits for it to end and then for one that starts
// after the call; all callers that arrive while one runs share the next
// one: N concurrent writers cost at most two store reads in a row, not N.
//
// own, when not nil, is what the caller's own write did; it stands in for
// the store read when the caller runs the refresh alone (no other caller
// waits to share it) and refreshOnce finds it next in MODSEQ order.
func (sm *sharedMailbox) refresh(ctx context.Context, own *store.Changes) error {
	sm.rmu.Lock()
	want := sm.started + 1
	for {
		if sm.finished >= want {
			err := sm.refreshErr
			if err == nil || ctx.Err() != nil || !isContextErr(err) {
				sm.rmu.Unlock()
				return err
			}
			// The refresh that served us ended with its own caller's
			// context: ours is still alive, so try again.
			want = sm.started + 1
			continue
		}
		if !sm.running {
			break
		}
		done := sm.refreshed
		sm.waiters++
		sm.rmu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			sm.rmu.Lock()
			sm.waiters--
			sm.rmu.Unlock()
			return ctx.Err()
		}
		sm.rmu.Lock()
		sm.waiters--
	}
	sm.running = true
	sm.started++
	n := sm.started
	done := make(chan struct{})
	sm.refreshed = done
	if sm.waiters > 0 {
		// Callers woken from the last refresh may count on this one for
		// their own writes: read the store.
		own = nil
	}
	sm.rmu.Unlock()

	err := sm.refreshOnce(ctx, own)

	sm.rmu.Lock()
	sm.running = false
	sm.finished = n
	sm.refreshErr = err
	close(done)
	sm.rmu.Unlock()
	return err
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// refreshOnce reads what changed since the index's HIGHESTMODSEQ and
// applies it, logging each change for the views. It runs with no lock
// held and is never run twice at once for one index (see refresh): the
// store is read and the arrays without expunged messages are built
// without sm.mu; sm.mu is taken for writing only to publish.
//
// own, when not nil, is a write's result: flag changes at one MODSEQ. When
// that MODSEQ is the one after the index's HIGHESTMODSEQ, nothing else
// happened in the mailbox in between (a write takes one new MODSEQ, one
// more than the mailbox's last), and own is applied without reading the
// store; otherwise the store is read.
func (sm *sharedMailbox) refreshOnce(ctx context.Context, own *store.Changes) error {
	st := sm.hub.st
	sm.mu.RLock()
	since, gone := sm.mb.HighestModSeq, sm.gone
	uids, metas := sm.uids, sm.metas
	sm.mu.RUnlock()
	if gone != 0 {
		return nil // no view will read it again
	}
	var ch store.Changes
	if own != nil && nextFlagChanges(own, since, uids) {
		ch = *own
	} else {
		var err error
		if ch, err = st.ChangesSince(ctx, sm.userID, sm.id, since); err != nil {
			return err
		}
	}
	if !ch.Complete {
		// Tombstones we needed were purged: reload the whole index and
		// compare.
		all, mb, err := st.MessageIndex(ctx, sm.userID, sm.id)
		if err != nil {
			return err
		}
		ch = diffIndex(uids, since, all, mb.HighestModSeq)
	}
	if ch.HighestModSeq <= since && len(ch.Changed) == 0 && len(ch.Vanished) == 0 {
		return nil
	}
	// Expunges first: new arrays without them (the views keep the old
	// ones, which do not change).
	var expunged []change
	if len(ch.Vanished) > 0 {
		keepUIDs := make([]uint32, 0, len(uids))
		keepMetas := make([]store.MessageMeta, 0, len(uids))
		j := 0
		for i, u := range uids {
			for j < len(ch.Vanished) && ch.Vanished[j] < u {
				j++
			}
			if j < len(ch.Vanished) && ch.Vanished[j] == u {
				expunged = append(expunged, change{uid: u, modseq: ch.HighestModSeq, kind: changeExpunge})
				continue
			}
			keepUIDs = append(keepUIDs, u)
			keepMetas = append(keepMetas, metas[i])
		}
		uids, metas = keepUIDs, keepMetas
	}

	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.gone != 0 || ch.HighestModSeq < sm.mb.HighestModSeq {
		// Gone while the store was read; or an answer older than the
		// index (HIGHESTMODSEQ never goes back).
		return nil
	}
	if len(expunged) > 0 {
		sm.uids, sm.metas = uids, metas
		sm.log = append(sm.log, expunged...)
	}
	last := uint32(0)
	if n := len(sm.uids); n > 0 {
		last = sm.uids[n-1]
	}
	for _, m := range ch.Changed {
		sm.noteKeywords(m.Flags)
		if m.UID > last {
			// New message (ChangesSince is by ascending UID).
			sm.uids = append(sm.uids, m.UID)
			sm.metas = append(sm.metas, m)
			last = m.UID
			sm.log = append(sm.log, change{uid: m.UID, modseq: m.ModSeq, kind: changeNew})
			continue
		}
		if i := sm.index(m.UID); i >= 0 {
			sm.metas[i] = m
			sm.log = append(sm.log, change{uid: m.UID, modseq: m.ModSeq, kind: changeFlags})
		}
	}
	sm.mb.HighestModSeq = ch.HighestModSeq
	if len(sm.uids) > 0 && sm.uids[len(sm.uids)-1] >= sm.mb.UIDNext {
		sm.mb.UIDNext = sm.uids[len(sm.uids)-1] + 1
	}
	sm.trimLog()
	for v := range sm.views {
		v.wake()
	}
	return nil
}

// nextFlagChanges reports whether own can be applied to an index at
// HIGHESTMODSEQ since holding uids as it is: complete, no expunge, at
// MODSEQ since+1 only, by ascending UID, and only messages the index
// holds.
func nextFlagChanges(own *store.Changes, since uint64, uids []uint32) bool {
	if !own.Complete || len(own.Vanished) > 0 || len(own.Changed) == 0 || own.HighestModSeq != since+1 {
		return false
	}
	j := 0
	for i, m := range own.Changed {
		if m.ModSeq != own.HighestModSeq || (i > 0 && m.UID <= own.Changed[i-1].UID) {
			return false
		}
		for j < len(uids) && uids[j] < m.UID {
			j++
		}
		if j == len(uids) || uids[j] != m.UID {
			return false
		}
	}
	return true
}

// diffIndex turns a full reload of the index (all, by ascending UID, at
// HIGHESTMODSEQ highest) into the Changes since modseq from an index that
// held cur: the UIDs of cur that are gone, and the messages that are new
// or changed after modseq.
func diffIndex(cur []uint32, modseq uint64, all []store.MessageMeta, highest uint64) store.Changes {
	ch := store.Changes{Complete: true, HighestModSeq: highest}
	i := 0
	for _, m := range all {
		for i < len(cur) && cur[i] < m.UID {
			ch.Vanished = append(ch.Vanished, cur[i])
			i++
		}
		known := i < len(cur) && cur[i] == m.UID
		if known {
			i++
		}
		if !known || m.ModSeq > modseq {
			ch.Changed = append(ch.Changed, m)
		}
	}
	ch.Vanished = append(ch.Vanished, cur[i:]...)
	return ch
}

// trimLog drops entries every view has seen, and the oldest ones beyond
// the limit whatever the views (those views then fall back to a full
// comparison).
func (sm *sharedMailbox) trimLog() {
	limit := sm.hub.opts.LogLimit
	if len(sm.log) <= limit {
		return
	}
	min := sm.logEnd()
	for v := range sm.views {
		if v.pos < min {
			min = v.pos
		}
	}
	if floor := sm.logEnd() - uint64(limit); min < floor {
		min = floor
	}
	drop := int(min - sm.logBase)
	sm.log = append([]change(nil), sm.log[drop:]...)
	sm.logBase = min
}

// index returns the position of uid in the index, or -1.
func (sm *sharedMailbox) index(uid uint32) int {
	i := sort.Search(len(sm.uids), func(i int) bool { return sm.uids[i] >= uid })
	if i < len(sm.uids) && sm.uids[i] == uid {
		return i
	}
	return -1
}

package server

import (
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/quickimap/quickimap/store"
)

// hub keeps one shared in-memory index per mailbox that some session has
// selected, so that SELECT, FETCH FLAGS and SEARCH on flags need no store
// access, and tells the sessions of a mailbox when it changes.
//
// Every change goes through the store first; the hub then refreshes the
// index from the store with ChangesSince, in MODSEQ order, whatever order
// concurrent writers returned in. The same refresh will serve notifications
// from other nodes when the store is shared.
type hub struct {
	st store.Store

	mu    sync.Mutex
	boxes map[int64]*sharedMailbox
	clock uint64 // orders releases, for eviction
}

func newHub(st store.Store) *hub {
	return &hub{st: st, boxes: make(map[int64]*sharedMailbox)}
}

// logLimit bounds the change log of a shared mailbox. A session further
// behind than this compares its whole view with the index instead.
const logLimit = 4096

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
	id     int64
	userID int64

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
	// client (view.kwTold) and sends FLAGS again when it grew.
	keywords map[string]struct{}
	kwSorted []string
	// log holds the changes from position logBase on.
	log     []change
	logBase uint64
	// recentUpTo: UIDs below it have been handed out as \Recent.
	recentUpTo uint32
	// gone, when not "", says why the mailbox can no longer be shown to
	// the sessions that have it selected (deleted, or INBOX renamed):
	// they are told with a BYE (view.go). The index is no longer in
	// hub.boxes.
	gone string

	refs     int    // sessions holding it (guarded by hub.mu)
	released uint64 // hub.clock when refs last dropped to 0 (hub.mu)
	views    map[*view]struct{}
}

func (sm *sharedMailbox) logEnd() uint64 { return sm.logBase + uint64(len(sm.log)) }

// open returns the shared index of a mailbox, loading it on first use.
func (h *hub) open(ctx context.Context, userID, mailboxID int64) (*sharedMailbox, error) {
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
		id:         mailboxID,
		userID:     userID,
		metas:      metas,
		uids:       make([]uint32, len(metas)),
		mb:         mb,
		keywords:   map[string]struct{}{},
		recentUpTo: mb.FirstRecentUID,
		views:      map[*view]struct{}{},
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
func (h *hub) refreshOpened(ctx context.Context, sm *sharedMailbox) (*sharedMailbox, error) {
	if err := sm.refresh(ctx, h.st); err != nil {
		h.release(sm)
		return nil, err
	}
	return sm, nil
}

// Indexes nobody holds are kept for a while, so that a phone that
// reconnects (or a client that switches folders and back) finds its
// mailbox's index warm: loading 100,000 messages from the store takes
// ~70 ms, a warm SELECT under 1 ms. They are bounded in number and in
// total messages; the least recently released go first.
const (
	maxIdleIndexes  = 256
	maxIdleMessages = 2_000_000
)

// release drops a session's hold; the index stays cached while it fits
// the idle bounds.
func (h *hub) release(sm *sharedMailbox) {
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
func (h *hub) evictIdle() {
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
		if oldest == nil || (n <= maxIdleIndexes && msgs <= maxIdleMessages) {
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

// changed is called after a write to a mailbox: it refreshes the index if
// it is loaded and wakes the sessions that have the mailbox selected.
func (h *hub) changed(ctx context.Context, mailboxID int64) {
	h.mu.Lock()
	sm := h.boxes[mailboxID]
	idle := sm != nil && sm.refs == 0
	h.mu.Unlock()
	if sm == nil || idle {
		// Nobody is looking: open() catches up when someone does.
		return
	}
	sm.refresh(ctx, h.st)
}

// Why a selected mailbox went away, as the BYE (other sessions) or
// CLOSED (the session that did it) text says it.
const (
	goneDeleted = "Selected mailbox was deleted"
	goneRenamed = "Selected mailbox was renamed"
)

// gone drops the index of a mailbox that sessions can no longer be shown:
// deleted, or INBOX renamed (its messages, id and UIDVALIDITY now belong
// to another name, and INBOX is a new mailbox). The sessions that have it
// selected are woken and end with "* BYE why" at their next chance (see
// reportUpdates); the next open of the id loads a fresh index.
func (h *hub) gone(mailboxID int64, why string) {
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
		if len(f) > 0 && f[0] != '\\' {
			if _, ok := sm.keywords[f]; !ok {
				sm.keywords[f] = struct{}{}
				i := sort.SearchStrings(sm.kwSorted, f)
				sm.kwSorted = slices.Insert(sm.kwSorted, i, f)
			}
		}
	}
}

// sortedKeywords lists the keywords in use (a copy). It runs with sm.mu
// held.
func (sm *sharedMailbox) sortedKeywords() []string {
	return slices.Clone(sm.kwSorted)
}

// refresh reads what changed since the index's HIGHESTMODSEQ and applies
// it, logging each change for the views.
func (sm *sharedMailbox) refresh(ctx context.Context, st store.Store) error {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	ch, err := st.ChangesSince(ctx, sm.userID, sm.id, sm.mb.HighestModSeq)
	if err != nil {
		return err
	}
	if !ch.Complete {
		// Tombstones we needed were purged: reload the whole index.
		metas, mb, err := st.MessageIndex(ctx, sm.userID, sm.id)
		if err != nil {
			return err
		}
		ch = store.Changes{Changed: metas, Complete: true, HighestModSeq: mb.HighestModSeq}
		gone := map[uint32]bool{}
		for _, u := range sm.uids {
			gone[u] = true
		}
		for _, m := range metas {
			delete(gone, m.UID)
		}
		for u := range gone {
			ch.Vanished = append(ch.Vanished, u)
		}
		sort.Slice(ch.Vanished, func(i, j int) bool { return ch.Vanished[i] < ch.Vanished[j] })
	}
	if ch.HighestModSeq <= sm.mb.HighestModSeq && len(ch.Changed) == 0 && len(ch.Vanished) == 0 {
		return nil
	}
	// Expunges first: the arrays are rebuilt without them.
	if len(ch.Vanished) > 0 {
		gone := make(map[uint32]bool, len(ch.Vanished))
		for _, u := range ch.Vanished {
			if sm.index(u) >= 0 {
				gone[u] = true
				sm.log = append(sm.log, change{uid: u, modseq: ch.HighestModSeq, kind: changeExpunge})
			}
		}
		if len(gone) > 0 {
			uids := make([]uint32, 0, len(sm.uids)-len(gone))
			metas := make([]store.MessageMeta, 0, len(sm.uids)-len(gone))
			for i, u := range sm.uids {
				if !gone[u] {
					uids = append(uids, u)
					metas = append(metas, sm.metas[i])
				}
			}
			sm.uids, sm.metas = uids, metas
		}
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

// trimLog drops entries every view has seen, and the oldest ones beyond
// the limit whatever the views (those views then fall back to a full
// comparison).
func (sm *sharedMailbox) trimLog() {
	if len(sm.log) <= logLimit {
		return
	}
	min := sm.logEnd()
	for v := range sm.views {
		if v.pos < min {
			min = v.pos
		}
	}
	if floor := sm.logEnd() - logLimit; min < floor {
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

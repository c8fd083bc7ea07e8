package tracker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/quickimap/quickimap/store"
)

// View is one session's view of an open mailbox: the sequence-number ↔
// UID map it has told its client about (RFC 3501 §2.3.1.2), the messages
// that are \Recent for it, and how far it has read the shared mailbox's
// change log. It is plain data apart from the shared index it points to.
//
// A View belongs to one session: its methods must not be called
// concurrently with each other. Any number of views of one mailbox may be
// used concurrently.
type View struct {
	sm       *sharedMailbox
	readOnly bool
	// uids maps sequence number n to uids[n-1]. In the common case it is
	// a prefix of the shared index's array: a session costs no copy.
	uids []uint32
	// pos is the shared change log position this view has applied.
	pos uint64
	// pendingExpunge holds UIDs expunged that the client has not been told
	// about yet (they keep their sequence numbers until then).
	pendingExpunge []uint32
	// recent holds this session's \Recent UIDs, ascending. A read-write
	// view claims them (RFC 3501 §2.3.2: recent in this session and no
	// other); a read-only view claims nothing and shows as recent the
	// messages no read-write session had claimed when it learnt of them
	// (so other sessions see them as recent too).
	recent []uint32
	// claimErr is the failure of Open's claim that it tolerated.
	claimErr error
	// kwTold is how many keywords of the shared index (sm.kwSorted) the
	// client has been told; when the index has more, the update reports
	// them (the IMAP server sends FLAGS again, RFC 3501 §7.2.6).
	kwTold int
	// ownModSeqs are MODSEQs of flag changes this session made and
	// reported itself; the log's entries for them are not reported again.
	ownModSeqs []uint64
	// modseq is the mailbox's HIGHESTMODSEQ as of log position pos: the
	// view has applied every change up to it. heldModSeq, while
	// pendingExpunge is not empty, is modseq from before the first of
	// those expunges arrived (each has a greater MODSEQ): see
	// HighestModSeq.
	modseq     uint64
	heldModSeq uint64
	// toldModSeq is the highest value NewHighestModSeq returned.
	toldModSeq uint64
	// uidNext is UIDNEXT as of the open, consistent with uids and modseq.
	uidNext uint32
	// waker, when set, is told when the mailbox changes or goes away
	// (the session is waiting for input, as in IDLE).
	waker atomic.Pointer[wakerBox]
}

// A Waker is told when a view's mailbox changes or goes away. Wake must
// not block; it is called with the mailbox's lock held.
type Waker interface{ Wake() }

type wakerBox struct{ w Waker }

func (v *View) wake() {
	if b := v.waker.Load(); b != nil {
		b.w.Wake()
	}
}

// SetWaker sets who is told of changes, nil for nobody.
func (v *View) SetWaker(w Waker) {
	if w == nil {
		v.waker.Store(nil)
		return
	}
	v.waker.Store(&wakerBox{w})
}

// Open opens a view of a mailbox for a session, loading the mailbox's
// shared index on first use. A read-write view claims the messages no
// session has seen yet as its \Recent ones (RFC 3501 §2.3.2: recent in
// this session and no other); a read-only view claims nothing and shows
// as \Recent what no read-write session has claimed yet (RFC 3501
// §6.3.2). ErrNotFound when the mailbox is gone.
func (h *Hub) Open(ctx context.Context, userID, mailboxID int64, readOnly bool) (*View, error) {
	sm, err := h.open(ctx, userID, mailboxID)
	if err != nil {
		return nil, err
	}
	v := &View{sm: sm, readOnly: readOnly}
	sm.mu.Lock()
	if sm.gone != 0 {
		// Deleted (or INBOX renamed) between the caller's lookup and now.
		sm.mu.Unlock()
		h.release(sm)
		return nil, fmt.Errorf("%w: mailbox %d is gone", store.ErrNotFound, mailboxID)
	}
	v.uids = sm.uids[:len(sm.uids):len(sm.uids)]
	v.pos = sm.logEnd()
	v.modseq = sm.mb.HighestModSeq
	v.uidNext = sm.mb.UIDNext
	if readOnly {
		v.recent = slices.Clone(v.uids[sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= sm.recentUpTo }):])
	}
	sm.views[v] = struct{}{}
	sm.mu.Unlock()
	if !readOnly {
		from, to, err := h.st.ClaimRecent(ctx, userID, mailboxID)
		if err != nil && claimFatal(err) {
			v.Close()
			return nil, err
		}
		if err != nil {
			// The claim is a write, which a full disk may refuse:
			// the mailbox opens all the same, with no \Recent
			// messages of its own this time (a later refresh claims
			// them again).
			v.claimErr = err
			return v, nil
		}
		v.addRecent(from, to)
		sm.mu.Lock()
		if to > sm.recentUpTo {
			sm.recentUpTo = to
		}
		sm.mu.Unlock()
	}
	return v, nil
}

// claimFatal reports whether a failed claim means the mailbox cannot be
// opened (it is gone, not selectable, or the caller gave up) rather than
// that the write failed.
func claimFatal(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoSelect) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// OpenClaimErr returns the failure of the \Recent claim of Open that did
// not stop the view from opening, or nil.
func (v *View) OpenClaimErr() error { return v.claimErr }

func (v *View) addRecent(from, to uint32) {
	for _, u := range v.uids {
		if u >= from && u < to {
			v.recent = append(v.recent, u)
		}
	}
}

// RestoreRecent makes UIDs of the view recent again: a resumed session
// keeps the \Recent messages it owned (RFC 3501 §2.3.2: recent in this
// session and no other). saved is called with the view's UIDs in
// ascending order and says whether each was the session's; more false
// ends the walk (so that a caller can merge with sorted ranges).
func (v *View) RestoreRecent(saved func(uid uint32) (recent, more bool)) {
	// v.uids ascend: added to an empty set, the UIDs need no sorting.
	merge := len(v.recent) > 0
	for _, u := range v.uids {
		recent, more := saved(u)
		if !more {
			break
		}
		if recent {
			v.recent = append(v.recent, u)
		}
	}
	if merge {
		slices.Sort(v.recent)
		v.recent = slices.Compact(v.recent)
	}
}

// Close releases the view. A nil View may be closed.
func (v *View) Close() {
	if v == nil {
		return
	}
	v.sm.mu.Lock()
	delete(v.sm.views, v)
	v.sm.mu.Unlock()
	v.sm.hub.release(v.sm)
}

// IsRecent reports whether a message is \Recent in this view.
func (v *View) IsRecent(uid uint32) bool {
	i := sort.Search(len(v.recent), func(i int) bool { return v.recent[i] >= uid })
	return i < len(v.recent) && v.recent[i] == uid
}

// Meta returns a message's current meta from the shared index; ok is
// false when it has been expunged. newKW says whether the mailbox has
// keywords the session has not been told of (read under the same lock,
// so every keyword of the meta is among them).
func (v *View) Meta(uid uint32) (m store.MessageMeta, ok, newKW bool) {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	newKW = len(v.sm.kwSorted) > v.kwTold
	if i := v.sm.index(uid); i >= 0 {
		return v.sm.metas[i], true, newKW
	}
	return store.MessageMeta{}, false, newKW
}

// Gone reports why the mailbox went away under the view (see Hub.Gone),
// or 0.
func (v *View) Gone() Gone {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	return v.sm.gone
}

// UpdateFlags changes flags in the store, refreshes the shared index and
// wakes the other views. It returns the messages whose flags changed and,
// with unchangedSince, the UIDs that failed the UNCHANGEDSINCE test (see
// store.Messages.UpdateFlags). The caller reports the changed flags to
// its session; later updates of this view leave them out.
func (v *View) UpdateFlags(ctx context.Context, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MessageMeta, []uint32, error) {
	sm := v.sm
	changed, failed, err := sm.hub.st.UpdateFlags(ctx, sm.userID, sm.id, uids, op, flags, unchangedSince)
	if err != nil {
		return nil, nil, err
	}
	if len(changed) > 0 {
		v.ownModSeqs = append(v.ownModSeqs, changed[0].ModSeq)
		// All changed messages have one new MODSEQ (store.Messages).
		sm.hub.changed(ctx, sm.id, &store.Changes{Changed: changed, Complete: true, HighestModSeq: changed[0].ModSeq})
		if op != store.FlagsRemove && slices.ContainsFunc(flags, isKeyword) {
			// The refresh noted the new keywords, unless a message was
			// expunged before it read them; its meta may still be
			// reported (FETCH after setting \Seen falls back to it).
			sm.mu.Lock()
			var last []string
			for _, m := range changed {
				if len(m.Flags) > 0 && (len(last) == 0 || &m.Flags[0] != &last[0]) {
					sm.noteKeywords(m.Flags) // once per shared flag list
					last = m.Flags
				}
			}
			sm.mu.Unlock()
		}
	}
	return changed, failed, nil
}

// Update is what changed in a view's mailbox since its last update, in
// the order a session reports it.
type Update struct {
	// Gone, when not 0, says the mailbox went away; nothing else is set.
	Gone Gone
	// Keywords, when not nil, lists every keyword in the mailbox, sorted:
	// the set grew since the session was last told. It is to be reported
	// before any message data that may carry a new keyword.
	Keywords []string
	// Expunged lists the UIDs whose expunge is reported now, ascending,
	// and ExpungedSeqs their sequence numbers in the order to report
	// them one at a time: descending, so that each is still right after
	// the ones before it. Both are empty while expunges are held back.
	Expunged     []uint32
	ExpungedSeqs []uint32
	// NewMessages: messages arrived. Count is then the view's number of
	// messages and Recent the number of them that are \Recent in it.
	NewMessages   bool
	Count, Recent uint32
	// ClaimErr is the store's failure to claim newly arrived messages as
	// \Recent for this view; the rest of the update holds.
	ClaimErr error
	// Flags lists the messages whose flags others changed, ascending by
	// sequence number.
	Flags []FlagChange
}

// FlagChange is a message whose flags changed.
type FlagChange struct {
	Seq  uint32
	Meta store.MessageMeta
}

// Updates applies to the view what changed in the mailbox since its last
// update and returns it. Expunges are reported only when allowExpunge
// (RFC 3501 §7.4.1 forbids them during FETCH, STORE and SEARCH); until
// then they are held back, and the expunged messages keep their sequence
// numbers. Only messages the session was told of are reported expunged:
// one that came and went unseen is never announced. Messages that
// arrived become \Recent in a read-write view unless another session
// claimed them first.
//
// The log entries, the flags reported and the view's new HIGHESTMODSEQ
// are read under one lock, so that no MODSEQ reported is above a change
// the session has not been told of, except held-back expunges (see
// HighestModSeq).
func (v *View) Updates(ctx context.Context, allowExpunge bool) Update {
	var u Update
	sm := v.sm
	sm.mu.RLock()
	if why := sm.gone; why != 0 {
		sm.mu.RUnlock()
		u.Gone = why
		return u
	}
	if len(sm.kwSorted) > v.kwTold {
		u.Keywords = slices.Clone(sm.kwSorted)
		v.kwTold = len(sm.kwSorted)
	}
	var expunged []uint32
	var flagged []store.MessageMeta
	full := v.pos < sm.logBase
	if !full {
		for _, ch := range sm.log[v.pos-sm.logBase:] {
			switch ch.kind {
			case changeExpunge:
				expunged = append(expunged, ch.uid)
			case changeFlags:
				if !containsModSeq(v.ownModSeqs, ch.modseq) {
					if i := sm.index(ch.uid); i >= 0 {
						flagged = append(flagged, sm.metas[i])
					}
				}
			}
		}
	} else {
		// Too far behind the log: compare the whole view with the index;
		// only messages changed after the view's MODSEQ are reported.
		for _, u := range v.uids {
			if i := sm.index(u); i < 0 {
				expunged = append(expunged, u)
			} else if sm.metas[i].ModSeq > v.modseq {
				flagged = append(flagged, sm.metas[i])
			}
		}
	}
	cur := sm.uids[:len(sm.uids):len(sm.uids)]
	end := sm.logEnd()
	highest := sm.mb.HighestModSeq
	var known uint32
	if n := len(v.uids); n > 0 {
		known = v.uids[n-1]
	}
	i := sort.Search(len(cur), func(i int) bool { return cur[i] > known })
	newUIDs := cur[i:]
	recentUpTo := sm.recentUpTo
	// Under the lock: trimLog reads every view's position (holding the
	// lock for writing, so no other reader can be at it).
	v.pos = end
	sm.mu.RUnlock()
	v.ownModSeqs = v.ownModSeqs[:0]

	w := 0
	for _, u := range expunged {
		if seqOf(v.uids, u) > 0 {
			expunged[w] = u
			w++
		}
	}
	expunged = expunged[:w]
	if len(expunged) > 0 && len(v.pendingExpunge) == 0 {
		v.heldModSeq = v.modseq
	}
	v.modseq = highest
	v.pendingExpunge = mergeUIDs(v.pendingExpunge, expunged)
	if allowExpunge && len(v.pendingExpunge) > 0 {
		u.Expunged = v.pendingExpunge
		u.ExpungedSeqs = make([]uint32, len(u.Expunged))
		for j := range u.Expunged {
			u.ExpungedSeqs[j] = seqOf(v.uids, u.Expunged[len(u.Expunged)-1-j])
		}
		v.recent = removeUIDs(v.recent, v.pendingExpunge)
		v.pendingExpunge = nil
		// The view now equals the shared index: share its array again.
		v.uids = cur
	} else if len(newUIDs) > 0 {
		v.uids = append(v.uids[:len(v.uids):len(v.uids)], newUIDs...)
	}
	if len(newUIDs) > 0 {
		switch {
		case !v.readOnly && newUIDs[len(newUIDs)-1] >= recentUpTo:
			u.ClaimErr = v.claimRecent(ctx)
		case v.readOnly:
			// Recent here too while no read-write session has claimed
			// them; above every UID the view had, so still ascending.
			for _, u := range newUIDs {
				if u >= recentUpTo {
					v.recent = append(v.recent, u)
				}
			}
		}
		u.NewMessages = true
		u.Count = uint32(len(v.uids))
		u.Recent = uint32(len(v.recent))
	}
	if len(flagged) == 0 {
		return u
	}
	// One change per message, in sequence order; the later entry of a
	// message holds its newer flags.
	sort.SliceStable(flagged, func(i, j int) bool { return flagged[i].UID < flagged[j].UID })
	u.Flags = make([]FlagChange, 0, len(flagged))
	for j, m := range flagged {
		if j+1 < len(flagged) && flagged[j+1].UID == m.UID {
			continue
		}
		if s := seqOf(v.uids, m.UID); s > 0 {
			u.Flags = append(u.Flags, FlagChange{Seq: s, Meta: m})
		}
	}
	return u
}

// claimRecent makes messages that arrived while the view was open recent
// in it, unless another session took them first.
func (v *View) claimRecent(ctx context.Context) error {
	sm := v.sm
	from, to, err := sm.hub.st.ClaimRecent(ctx, sm.userID, sm.id)
	if err != nil {
		return err
	}
	v.addRecent(from, to)
	slices.Sort(v.recent)
	sm.mu.Lock()
	if to > sm.recentUpTo {
		sm.recentUpTo = to
	}
	sm.mu.Unlock()
	return nil
}

func containsModSeq(l []uint64, m uint64) bool {
	for _, x := range l {
		if x == m {
			return true
		}
	}
	return false
}

// seqOf returns the sequence number of uid in uids, or 0.
func seqOf(uids []uint32, uid uint32) uint32 {
	i := sort.Search(len(uids), func(i int) bool { return uids[i] >= uid })
	if i < len(uids) && uids[i] == uid {
		return uint32(i + 1)
	}
	return 0
}

// mergeUIDs returns the sorted union of two ascending lists.
func mergeUIDs(a, b []uint32) []uint32 {
	if len(b) == 0 {
		return a
	}
	out := append(append([]uint32(nil), a...), b...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	w := 0
	for i, u := range out {
		if i == 0 || u != out[w-1] {
			out[w] = u
			w++
		}
	}
	return out[:w]
}

// removeUIDs returns a without the UIDs in b (both ascending).
func removeUIDs(a, b []uint32) []uint32 {
	if len(a) == 0 || len(b) == 0 {
		return a
	}
	out := a[:0:0]
	for _, u := range a {
		if seqOf(b, u) == 0 {
			out = append(out, u)
		}
	}
	return out
}

// SeqMeta is a message of a view with its current meta.
type SeqMeta struct {
	Seq  uint32
	Meta store.MessageMeta
}

// Scan walks the view's messages in sequence order with their current
// metas under one read lock, merging the view's UIDs with the shared
// index (both ascending) instead of searching for each: a pass over
// 100,000 messages costs well under a millisecond. keep says whether to
// collect a message; stop ends the walk early. Messages expunged from the
// index but still in the view are skipped. keep must not block: the
// lock is held (release it before writing to the network).
func (v *View) Scan(keep func(uid uint32, m *store.MessageMeta) (collect, stop bool)) []SeqMeta {
	sm := v.sm
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	var out []SeqMeta
	j := 0
	for i, u := range v.uids {
		for j < len(sm.uids) && sm.uids[j] < u {
			j++
		}
		if j == len(sm.uids) {
			break
		}
		if sm.uids[j] != u {
			continue
		}
		collect, stop := keep(u, &sm.metas[j])
		if collect {
			out = append(out, SeqMeta{Seq: uint32(i + 1), Meta: sm.metas[j]})
		}
		if stop {
			break
		}
	}
	return out
}

// MailboxID is the stable id of the view's mailbox.
func (v *View) MailboxID() int64 { return v.sm.id }

// ReadOnly says whether the view was opened read-only.
func (v *View) ReadOnly() bool { return v.readOnly }

// UIDs maps sequence numbers to UIDs: sequence number n is UIDs()[n-1].
// The slice is the view's own and must not be modified; it stays valid
// (a later update replaces it rather than changing it).
func (v *View) UIDs() []uint32 { return v.uids }

// Count is the number of messages in the view.
func (v *View) Count() uint32 { return uint32(len(v.uids)) }

// UIDNext is UIDNEXT as of the open, consistent with the UIDs and the
// HIGHESTMODSEQ the view had then.
func (v *View) UIDNext() uint32 { return v.uidNext }

// UIDValidity is the mailbox's UIDVALIDITY.
func (v *View) UIDValidity() uint32 {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	return v.sm.mb.UIDValidity
}

// Recent lists the UIDs that are \Recent in this view, ascending. The
// slice must not be modified.
func (v *View) Recent() []uint32 { return v.recent }

// RecentCount is the number of \Recent messages in the view.
func (v *View) RecentCount() uint32 { return uint32(len(v.recent)) }

// RecentBelow counts the view's \Recent messages with a UID below uid that
// still exist in the mailbox.
func (v *View) RecentBelow(uid uint32) uint32 {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	n := uint32(0)
	for _, u := range v.recent {
		if u < uid && v.sm.index(u) >= 0 {
			n++
		}
	}
	return n
}

// HighestModSeq is the HIGHESTMODSEQ this view's session may be told: the
// mailbox's value as of the last change applied to the view, or, while
// expunges wait to be reported (RFC 3501 §7.4.1 forbids them during
// FETCH, STORE and SEARCH), the value from before the first of them. A
// client that caches it and reconnects then learns of those expunges
// again (RFC 7162 §3.2, §6).
func (v *View) HighestModSeq() uint64 {
	if len(v.pendingExpunge) > 0 {
		return v.heldModSeq
	}
	return v.modseq
}

// NewHighestModSeq returns HighestModSeq and true when it is above every
// value it returned before for this view.
func (v *View) NewHighestModSeq() (uint64, bool) {
	m := v.HighestModSeq()
	if m <= v.toldModSeq {
		return m, false
	}
	v.toldModSeq = m
	return m, true
}

// HoldsExpunges reports whether expunges wait to be reported.
func (v *View) HoldsExpunges() bool { return len(v.pendingExpunge) > 0 }

// Keywords lists every keyword in the mailbox, sorted (a copy), and notes
// that the session has been told of them.
func (v *View) Keywords() []string {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	v.kwTold = len(v.sm.kwSorted)
	return slices.Clone(v.sm.kwSorted)
}

// NewKeywords is Keywords when the mailbox has keywords the session has
// not been told of, and nil otherwise.
func (v *View) NewKeywords() []string {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	if len(v.sm.kwSorted) <= v.kwTold {
		return nil
	}
	v.kwTold = len(v.sm.kwSorted)
	return slices.Clone(v.sm.kwSorted)
}

// Index returns the shared index's current UIDs (ascending, not to be
// modified) and UIDNEXT: unlike UIDs, messages the view has not applied
// yet are in it, and expunged ones are not.
func (v *View) Index() (uids []uint32, uidNext uint32) {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	return v.sm.uids[:len(v.sm.uids):len(v.sm.uids)], v.sm.mb.UIDNext
}

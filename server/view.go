package server

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
)

// view is one session's view of its selected mailbox: the sequence-number
// ↔ UID map it has told its client about (RFC 3501 §2.3.1.2), the
// messages that are \Recent for it, and how far it has read the shared
// mailbox's change log. It is plain data apart from the shared index it
// points to, so that a resumable session can carry it across connections.
type view struct {
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
	// kwTold is how many keywords of the shared index (sm.kwSorted) the
	// client has been told in a FLAGS response; when the index has more,
	// FLAGS and PERMANENTFLAGS go out again before any response that
	// could carry a new keyword (RFC 3501 §7.2.6).
	kwTold int
	// ownModSeqs are MODSEQs of flag changes this session made and
	// reported itself; the log's entries for them are not reported again.
	ownModSeqs []uint64
	// modseq is the mailbox's HIGHESTMODSEQ as of log position pos: the
	// view has applied every change up to it. heldModSeq, while
	// pendingExpunge is not empty, is modseq from before the first of
	// those expunges arrived (each has a greater MODSEQ): see
	// highestModSeq.
	modseq     uint64
	heldModSeq uint64
	// toldModSeq is the highest HIGHESTMODSEQ sent to the client in an
	// untagged OK after new or vanished messages.
	toldModSeq uint64
	// uidNext is UIDNEXT as of the open, consistent with uids and modseq
	// (SELECT reports it).
	uidNext uint32
	// waker, when set, is kicked when the mailbox changes: the view's
	// connection is idling (see cmdIdle).
	waker atomic.Pointer[waker]
}

func (v *view) wake() {
	if w := v.waker.Load(); w != nil {
		w.kick()
	}
}

// setWaker sets the waker kicked on changes, nil for none.
func (v *view) setWaker(w *waker) { v.waker.Store(w) }

// openView selects a mailbox for a session.
func (c *conn) openView(ctx context.Context, mb store.Mailbox, readOnly bool) (*view, error) {
	sm, err := c.s.hub.open(ctx, c.sess.UserID, mb.ID)
	if err != nil {
		return nil, err
	}
	v := &view{sm: sm, readOnly: readOnly}
	sm.mu.Lock()
	if sm.gone != "" {
		// Deleted (or INBOX renamed) between the name lookup and now.
		sm.mu.Unlock()
		c.s.hub.release(sm)
		return nil, fmt.Errorf("%w: mailbox %d is gone", store.ErrNotFound, mb.ID)
	}
	v.uids = sm.uids[:len(sm.uids):len(sm.uids)]
	v.pos = sm.logEnd()
	v.modseq = sm.mb.HighestModSeq
	v.uidNext = sm.mb.UIDNext
	if readOnly {
		// RFC 3501 §6.3.2: EXAMINE claims nothing, and shows as \Recent
		// what no read-write session has claimed yet.
		v.recent = slices.Clone(v.uids[sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= sm.recentUpTo }):])
	}
	sm.views[v] = struct{}{}
	sm.mu.Unlock()
	if !readOnly {
		// RFC 3501 §2.3.2: the messages no session has seen yet become
		// recent in this one, and in no other.
		from, to, err := c.s.store.ClaimRecent(ctx, c.sess.UserID, mb.ID)
		if err != nil {
			c.closeView(v)
			return nil, err
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

func (v *view) addRecent(from, to uint32) {
	for _, u := range v.uids {
		if u >= from && u < to {
			v.recent = append(v.recent, u)
		}
	}
}

// restoreRecent makes the UIDs of saved that are still in the view
// recent again: a resumed session keeps the \Recent messages it owned
// (RFC 3501 §2.3.2: recent in this session and no other).
func (v *view) restoreRecent(saved imap.SeqSet) {
	ranges := saved.Resolve(0) // sorted, disjoint: one merged walk
	j := 0
	for _, u := range v.uids {
		for j < len(ranges) && ranges[j].Stop < u {
			j++
		}
		if j == len(ranges) {
			break
		}
		if ranges[j].Start <= u {
			v.recent = append(v.recent, u)
		}
	}
	slices.Sort(v.recent)
	v.recent = slices.Compact(v.recent)
}

// closeView releases a session's view.
func (c *conn) closeView(v *view) {
	if v == nil {
		return
	}
	v.sm.mu.Lock()
	delete(v.sm.views, v)
	v.sm.mu.Unlock()
	c.s.hub.release(v.sm)
}

func (v *view) isRecent(uid uint32) bool {
	i := sort.Search(len(v.recent), func(i int) bool { return v.recent[i] >= uid })
	return i < len(v.recent) && v.recent[i] == uid
}

// resolve implements conn.resolveSet.
func (v *view) resolve(set imap.SeqSet, isUID bool) ([]msgRef, *status) {
	n := uint32(len(v.uids))
	if !isUID {
		if n == 0 {
			return nil, bad("No messages in the mailbox")
		}
		ranges := set.Resolve(n)
		total := 0
		for _, r := range ranges {
			if r.Stop > n || r.Start == 0 {
				return nil, bad("Invalid message sequence number")
			}
			total += int(r.Stop-r.Start) + 1
		}
		refs := make([]msgRef, 0, total)
		for _, r := range ranges {
			for s := r.Start; s <= r.Stop; s++ {
				refs = append(refs, msgRef{Seq: s, UID: v.uids[s-1]})
			}
		}
		return refs, nil
	}
	if n == 0 {
		return nil, nil
	}
	max := v.uids[n-1]
	var refs []msgRef
	for _, r := range set.Resolve(max) {
		lo := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= r.Start })
		for i := lo; i < len(v.uids) && v.uids[i] <= r.Stop; i++ {
			refs = append(refs, msgRef{Seq: uint32(i + 1), UID: v.uids[i]})
		}
	}
	return refs, nil
}

func (v *view) all() []msgRef {
	refs := make([]msgRef, len(v.uids))
	for i, u := range v.uids {
		refs[i] = msgRef{Seq: uint32(i + 1), UID: u}
	}
	return refs
}

// meta returns a message's current meta from the shared index; newKW
// says whether the index has keywords the client has not been told of
// (read under the same lock, so every keyword of the meta is among them).
func (v *view) meta(uid uint32) (m store.MessageMeta, ok, newKW bool) {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	newKW = len(v.sm.kwSorted) > v.kwTold
	if i := v.sm.index(uid); i >= 0 {
		return v.sm.metas[i], true, newKW
	}
	return store.MessageMeta{}, false, newKW
}

// dead reports whether the mailbox went away under the view (see
// hub.gone).
func (v *view) dead() bool {
	v.sm.mu.RLock()
	defer v.sm.mu.RUnlock()
	return v.sm.gone != ""
}

func (v *view) updateFlags(c *conn, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MessageMeta, []uint32, error) {
	ctx := context.Background()
	changed, failed, err := c.s.store.UpdateFlags(ctx, c.sess.UserID, v.sm.id, uids, op, flags, unchangedSince)
	if err != nil {
		return nil, nil, err
	}
	if len(changed) > 0 {
		v.ownModSeqs = append(v.ownModSeqs, changed[0].ModSeq)
		c.s.hub.changed(ctx, v.sm.id)
		if op != store.FlagsRemove && slices.ContainsFunc(flags, isKeyword) {
			// The refresh noted the new keywords, unless a message was
			// expunged before it read them; its meta may still be
			// written (FETCH after setting \Seen falls back to it).
			v.sm.mu.Lock()
			var last []string
			for _, m := range changed {
				if len(m.Flags) > 0 && (len(last) == 0 || &m.Flags[0] != &last[0]) {
					v.sm.noteKeywords(m.Flags) // once per shared flag list
					last = m.Flags
				}
			}
			v.sm.mu.Unlock()
		}
	}
	return changed, failed, nil
}

func isKeyword(f string) bool { return f != "" && f[0] != '\\' }

// reportKeywords sends FLAGS and PERMANENTFLAGS again when the mailbox
// has keywords the client has not been told of (RFC 3501 §7.2.6: the
// FLAGS response lists the flags applicable to the mailbox). It must run
// between responses, never inside one, after the metas about to be
// written were read.
func (c *conn) reportKeywords() {
	v := c.view
	v.sm.mu.RLock()
	var keywords []string
	if len(v.sm.kwSorted) > v.kwTold {
		keywords = v.sm.sortedKeywords()
	}
	v.sm.mu.RUnlock()
	if keywords != nil {
		c.writeFlagsResponses(keywords, false)
	}
}

// writeFlagsResponses writes the FLAGS response and the PERMANENTFLAGS
// response code for the mailbox's keywords, as SELECT does (selecting)
// and again when keywords were added. A read-only mailbox permits no
// flags; it says so once, at the selection, as Dovecot does.
func (c *conn) writeFlagsResponses(keywords []string, selecting bool) {
	v := c.view
	v.kwTold = len(keywords)
	flags := append(append(make([]string, 0, len(systemFlags)+len(keywords)+1), systemFlags...), keywords...)
	c.enc.Star().Atom("FLAGS").SP().Flags(flags).CRLF()
	switch {
	case !v.readOnly:
		c.enc.Star().Atom("OK").SP().CodeStart("PERMANENTFLAGS").SP().Flags(append(flags, `\*`)).CodeEnd().Text("Flags permitted").CRLF()
	case selecting:
		c.enc.Star().Atom("OK").SP().Atom("[PERMANENTFLAGS ()] ").Text("No permanent flags permitted").CRLF()
	}
}

// endGone ends the connection of a session whose selected mailbox went
// away under it (another session deleted it, or renamed INBOX): RFC 2180
// §3.2's choice, as Dovecot does, "* BYE why" and the connection closes
// at once, without the tagged response of the command under way (RFC
// 3501 §7.1.5: only the BYE of LOGOUT is followed by one). The session
// leaves the selected state first, so that a resumable session is
// detached (kept, as after a dropped connection) with nothing selected:
// a resume answers a nameless SELECTED (docs/reconnect.md).
//
// An IDLE ends with it: the connection's loop stops at the logout state.
func (c *conn) endGone(why string) {
	c.enc.Star().Atom("BYE").SP().Text(why).CRLF()
	c.enc.Flush()
	c.sess.Selected = nil
	c.sess.State = imap.StateAuthenticated
	// Now, not when the connection's goroutine ends: a resume that the
	// client sends as soon as it sees the connection close must find
	// the session detached with nothing selected.
	c.detachSession()
	c.sess.State = imap.StateLogout
	c.nc.Close()
	c.log.Debug("selected mailbox gone; connection closed", "user", c.sess.UserName, "why", why)
}

// reportUpdates tells the client what changed in the selected mailbox
// since it was last told: expunges (only when allowExpunge: RFC 3501
// §7.4.1 forbids them during FETCH, STORE and SEARCH) as EXPUNGE, or
// VANISHED after ENABLE QRESYNC (RFC 7162 §3.2.10.2), or EXPUNGED after
// REPORTEXPUNGES (draft-melnikov-imap-expunged-01 §3.2); FLAGS and
// PERMANENTFLAGS when the mailbox has new keywords (RFC 3501 §7.2.6);
// EXISTS and RECENT for new messages; FETCH FLAGS (with MODSEQ once
// CONDSTORE is enabled) for flag changes made by others. When the mailbox
// went away (deleted, INBOX renamed) it ends the connection instead (see
// endGone).
//
// The log entries, the flags reported and the view's new modseq are read
// under one lock, so that no MODSEQ sent is above a change the session has
// not been told of, except held-back expunges (see view.highestModSeq).
func (c *conn) reportUpdates(allowExpunge bool) {
	v := c.view
	if v == nil || c.sess.State == imap.StateLogout {
		return
	}
	sm := v.sm
	sm.mu.RLock()
	if why := sm.gone; why != "" {
		sm.mu.RUnlock()
		c.endGone(why)
		return
	}
	var keywords []string
	if len(sm.kwSorted) > v.kwTold {
		keywords = sm.sortedKeywords()
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
	sm.mu.RUnlock()
	v.pos = end
	v.ownModSeqs = v.ownModSeqs[:0]
	if keywords != nil {
		// Before any EXISTS or FETCH that may carry a new keyword.
		c.writeFlagsResponses(keywords, false)
	}

	// Only messages the client was told of can be expunged for it; one
	// that came and went unseen is simply never announced.
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
		switch {
		case c.sess.IsEnabled(extQresync):
			c.enc.Star().Atom("VANISHED ").SeqSet(imap.UIDSetFromSorted(v.pendingExpunge)).CRLF()
		case c.sess.IsEnabled(extExpunged):
			c.enc.Star().Atom("EXPUNGED ").SeqSet(imap.UIDSetFromSorted(v.pendingExpunge)).CRLF()
		default:
			// Descending sequence numbers, so that each EXPUNGE's
			// number is still right after the ones sent before it.
			for j := len(v.pendingExpunge) - 1; j >= 0; j-- {
				c.enc.Star().Number(seqOf(v.uids, v.pendingExpunge[j])).SP().Atom("EXPUNGE").CRLF()
			}
		}
		v.recent = removeUIDs(v.recent, v.pendingExpunge)
		v.pendingExpunge = v.pendingExpunge[:0]
		// The view now equals the shared index: share its array again.
		v.uids = cur
	} else if len(newUIDs) > 0 {
		v.uids = append(v.uids[:len(v.uids):len(v.uids)], newUIDs...)
	}
	if len(newUIDs) > 0 {
		switch {
		case !v.readOnly && newUIDs[len(newUIDs)-1] >= recentUpTo:
			c.claimRecentLive(v)
		case v.readOnly:
			// Recent here too while no read-write session has claimed
			// them; above every UID the view had, so still ascending.
			for _, u := range newUIDs {
				if u >= recentUpTo {
					v.recent = append(v.recent, u)
				}
			}
		}
		c.enc.Star().Number(uint32(len(v.uids))).SP().Atom("EXISTS").CRLF()
		c.enc.Star().Number(uint32(len(v.recent))).SP().Atom("RECENT").CRLF()
	}
	if len(newUIDs) > 0 && c.sess.IsEnabled(extCondstore) && v.highestModSeq() > v.toldModSeq {
		// New messages come with no MODSEQ of their own: without the
		// new HIGHESTMODSEQ a client that caches it (e.g.
		// interimap) would fetch its own appends again as changes on
		// the next resync.
		v.toldModSeq = v.highestModSeq()
		c.enc.Star().Atom("OK").SP().Code("HIGHESTMODSEQ", v.toldModSeq).Text("Highest").CRLF()
	}
	if len(flagged) == 0 {
		return
	}
	// One response per message, in sequence order.
	sort.SliceStable(flagged, func(i, j int) bool { return flagged[i].UID < flagged[j].UID })
	condstore := c.sess.IsEnabled(extCondstore)
	for j, m := range flagged {
		if j+1 < len(flagged) && flagged[j+1].UID == m.UID {
			continue // the later entry holds the newer flags
		}
		s := seqOf(v.uids, m.UID)
		if s == 0 {
			continue
		}
		c.enc.Star().Number(s).SP().Atom("FETCH (UID ").Number(m.UID).SP().Atom("FLAGS ")
		c.writeFlags(m)
		if condstore {
			c.enc.SP()
			c.writeModSeq(m.ModSeq)
		}
		c.enc.Special(')').CRLF()
	}
}

// claimRecentLive makes messages that arrived while the session had the
// mailbox selected recent in it, unless another session took them first.
func (c *conn) claimRecentLive(v *view) {
	from, to, err := c.s.store.ClaimRecent(context.Background(), c.sess.UserID, v.sm.id)
	if err != nil {
		c.log.Warn("claiming recent messages", "err", err)
		return
	}
	v.addRecent(from, to)
	sort.Slice(v.recent, func(i, j int) bool { return v.recent[i] < v.recent[j] })
	v.sm.mu.Lock()
	if to > v.sm.recentUpTo {
		v.sm.recentUpTo = to
	}
	v.sm.mu.Unlock()
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

// metaAt is a message of the view with its current meta.
type metaAt struct {
	seq  uint32
	meta store.MessageMeta
}

// scanMetas walks the view's messages in sequence order with their
// current metas under one read lock, merging the view's UIDs with the
// shared index (both ascending) instead of searching for each: a pass
// over 100,000 messages costs well under a millisecond. keep says whether
// to collect a message; stop ends the walk early. Messages expunged from
// the index but still in the view are skipped. The lock is released
// before the caller writes anything to the network.
func (v *view) scanMetas(keep func(uid uint32, m *store.MessageMeta) (collect, stop bool)) []metaAt {
	sm := v.sm
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	var out []metaAt
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
			out = append(out, metaAt{seq: uint32(i + 1), meta: sm.metas[j]})
		}
		if stop {
			break
		}
	}
	return out
}

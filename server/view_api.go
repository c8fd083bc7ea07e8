package server

import (
	"context"
	"errors"
	"sort"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server/tracker"
	"github.com/quickimap/quickimap/store"
)

// The selected mailbox is a tracker.View of the mailbox's shared index
// (package tracker); this file is the session's side of it: sequence
// sets resolved against the view, flags written with \Recent.

// openView selects a mailbox for a session.
func (c *conn) openView(ctx context.Context, mb store.Mailbox, readOnly bool) (*tracker.View, error) {
	if ctx.Err() == nil && !readOnly {
		// Opening read-write claims \Recent: a write (writeContext).
		ctx = context.WithoutCancel(ctx)
	}
	v, err := c.s.hub.Open(ctx, c.sess.UserID, mb.ID, readOnly)
	if err == nil && v.OpenClaimErr() != nil {
		if cerr := v.OpenClaimErr(); errors.Is(cerr, store.ErrFull) {
			c.s.full.log(c.log, cerr)
		} else {
			c.log.Warn("claiming recent messages", "err", cerr)
		}
	}
	return v, err
}

// closeView releases a session's view (nil: none).
func (c *conn) closeView(v *tracker.View) { v.Close() }

// msgRef names one message of the selected mailbox as this session knows
// it: its sequence number in the session's view and its UID.
type msgRef struct {
	Seq, UID uint32
}

// resolveSet turns a sequence set (isUID false) or UID set (isUID true)
// into the messages of this session's view, ascending. For a UID set,
// UIDs that are not in the view are left out and "*" is the highest UID
// in the view (RFC 3501 §6.4.8); for a sequence set, a number above the
// view's message count, or "*" in an empty mailbox, is an error answered
// with the returned BAD status (RFC 3501 §9, seq-number).
//
// When the mailbox went away under the session (deleted, or INBOX
// renamed, by another session) there are no messages: the command does
// nothing, and the update report that follows it ends the connection with
// a BYE (report.go, endGone), so the status returned is never sent.
func (c *conn) resolveSet(set imap.SeqSet, isUID bool) ([]msgRef, *status) {
	if c.view.Gone() != 0 {
		return nil, no("NONEXISTENT", "Selected mailbox is gone")
	}
	return resolveRefs(c.view.UIDs(), set, isUID)
}

// resolveRefs implements resolveSet on a view's UIDs (uids[n-1] is
// sequence number n).
func resolveRefs(uids []uint32, set imap.SeqSet, isUID bool) ([]msgRef, *status) {
	n := uint32(len(uids))
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
				refs = append(refs, msgRef{Seq: s, UID: uids[s-1]})
			}
		}
		return refs, nil
	}
	if n == 0 {
		return nil, nil
	}
	max := uids[n-1]
	var refs []msgRef
	for _, r := range set.Resolve(max) {
		lo := sort.Search(len(uids), func(i int) bool { return uids[i] >= r.Start })
		for i := lo; i < len(uids) && uids[i] <= r.Stop; i++ {
			refs = append(refs, msgRef{Seq: uint32(i + 1), UID: uids[i]})
		}
	}
	return refs, nil
}

// allRefs returns every message of the view, ascending (none when the
// mailbox went away, see resolveSet).
func (c *conn) allRefs() []msgRef {
	if c.view.Gone() != 0 {
		return nil
	}
	uids := c.view.UIDs()
	refs := make([]msgRef, len(uids))
	for i, u := range uids {
		refs[i] = msgRef{Seq: uint32(i + 1), UID: u}
	}
	return refs
}

// messageMeta returns the current flags and MODSEQ of a message from the
// shared in-memory index (no store access); ok is false when the message
// has been expunged meanwhile.
//
// When the mailbox has keywords this client has not been told of yet, it
// first writes FLAGS and PERMANENTFLAGS again (RFC 3501 §7.2.6), so that
// no keyword appears in a FETCH before it was in a FLAGS response: call it
// between responses, never while writing one.
func (c *conn) messageMeta(uid uint32) (store.MessageMeta, bool) {
	m, ok, newKW := c.view.Meta(uid)
	if newKW {
		c.reportKeywords()
	}
	return m, ok
}

// writeFlags writes a message's flag list, with \Recent when it is recent
// in this session, without allocating.
func (c *conn) writeFlags(m store.MessageMeta) {
	c.enc.Special('(')
	for i, f := range m.Flags {
		if i > 0 {
			c.enc.SP()
		}
		c.enc.Atom(f)
	}
	if c.view.IsRecent(m.UID) {
		if len(m.Flags) > 0 {
			c.enc.SP()
		}
		c.enc.Atom(imap.FlagRecent)
	}
	c.enc.Special(')')
}

// isRecent reports whether a message is \Recent in this session.
func (c *conn) isRecent(uid uint32) bool { return c.view.IsRecent(uid) }

// mailboxID returns the selected mailbox's stable id.
func (c *conn) mailboxID() int64 { return c.view.MailboxID() }

// updateFlags changes flags in the store, updates the shared index and
// tells the other sessions that have the mailbox selected. It returns the
// messages whose flags changed and, with unchangedSince, the UIDs that
// failed the UNCHANGEDSINCE test. The caller reports the changed flags to
// its own client (unless .SILENT).
func (c *conn) updateFlags(uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) (changed []store.MessageMeta, failed []uint32, err error) {
	changed, failed, err = c.view.UpdateFlags(c.writeContext(), uids, op, flags, unchangedSince)
	if len(changed) > 0 {
		// All changed messages have the write's one new MODSEQ.
		c.s.publishChanged(c.view.MailboxID(), changed[0].ModSeq)
	}
	return changed, failed, err
}

// seqOf returns the sequence number of uid in uids (ascending), or 0.
func seqOf(uids []uint32, uid uint32) uint32 {
	i := sort.Search(len(uids), func(i int) bool { return uids[i] >= uid })
	if i < len(uids) && uids[i] == uid {
		return uint32(i + 1)
	}
	return 0
}

package server

import (
	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
)

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
// a BYE (view.go, endGone), so the status returned is never sent.
func (c *conn) resolveSet(set imap.SeqSet, isUID bool) ([]msgRef, *status) {
	if c.view.dead() {
		return nil, no("NONEXISTENT", "Selected mailbox is gone")
	}
	return c.view.resolve(set, isUID)
}

// allRefs returns every message of the view, ascending (none when the
// mailbox went away, see resolveSet).
func (c *conn) allRefs() []msgRef {
	if c.view.dead() {
		return nil
	}
	return c.view.all()
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
	m, ok, newKW := c.view.meta(uid)
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
	if c.view.isRecent(m.UID) {
		if len(m.Flags) > 0 {
			c.enc.SP()
		}
		c.enc.Atom(imap.FlagRecent)
	}
	c.enc.Special(')')
}

// isRecent reports whether a message is \Recent in this session.
func (c *conn) isRecent(uid uint32) bool { return c.view.isRecent(uid) }

// mailboxID returns the selected mailbox's stable id.
func (c *conn) mailboxID() int64 { return c.view.sm.id }

// updateFlags changes flags in the store, updates the shared index and
// tells the other sessions that have the mailbox selected. It returns the
// messages whose flags changed and, with unchangedSince, the UIDs that
// failed the UNCHANGEDSINCE test. The caller reports the changed flags to
// its own client (unless .SILENT).
func (c *conn) updateFlags(uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) (changed []store.MessageMeta, failed []uint32, err error) {
	return c.view.updateFlags(c, uids, op, flags, unchangedSince)
}

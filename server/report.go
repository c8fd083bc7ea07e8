package server

import (
	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server/tracker"
)

// Why a selected mailbox went away, as the BYE (other sessions) or
// CLOSED (the session that did it) text says it.
const (
	goneDeleted = "Selected mailbox was deleted"
	goneRenamed = "Selected mailbox was renamed"
)

func goneText(why tracker.Gone) string {
	if why == tracker.Renamed {
		return goneRenamed
	}
	return goneDeleted
}

// reportKeywords sends FLAGS and PERMANENTFLAGS again when the mailbox
// has keywords the client has not been told of (RFC 3501 §7.2.6: the
// FLAGS response lists the flags applicable to the mailbox). It must run
// between responses, never inside one, after the metas about to be
// written were read.
func (c *conn) reportKeywords() {
	if keywords := c.view.NewKeywords(); keywords != nil {
		c.writeFlagsResponses(keywords, false)
	}
}

// writeFlagsResponses writes the FLAGS response and the PERMANENTFLAGS
// response code for the mailbox's keywords, as SELECT does (selecting)
// and again when keywords were added. A read-only mailbox permits no
// flags; it says so once, at the selection, as Dovecot does.
func (c *conn) writeFlagsResponses(keywords []string, selecting bool) {
	v := c.view
	flags := append(append(make([]string, 0, len(systemFlags)+len(keywords)+1), systemFlags...), keywords...)
	c.enc.Star().Atom("FLAGS").SP().Flags(flags).CRLF()
	switch {
	case !v.ReadOnly():
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
// Closing the socket is also what ends an IDLE: its reader fails.
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
	c.setEnd("selected mailbox gone")
	c.nc.Close()
	c.log.Debug("selected mailbox gone; connection closed", "why", why)
}

// reportUpdates tells the client what changed in the selected mailbox
// since it was last told (tracker.View.Updates): expunges (only when
// allowExpunge: RFC 3501 §7.4.1 forbids them during FETCH, STORE and
// SEARCH) as EXPUNGE, or VANISHED after ENABLE QRESYNC (RFC 7162
// §3.2.10.2), or EXPUNGED after REPORTEXPUNGES
// (draft-melnikov-imap-expunged-01 §3.2); FLAGS and PERMANENTFLAGS when
// the mailbox has new keywords (RFC 3501 §7.2.6); EXISTS and RECENT for
// new messages; FETCH FLAGS (with MODSEQ once CONDSTORE is enabled) for
// flag changes made by others. When the mailbox went away (deleted,
// INBOX renamed) it ends the connection instead (see endGone).
func (c *conn) reportUpdates(allowExpunge bool) {
	v := c.view
	if v == nil || c.sess.State == imap.StateLogout {
		return
	}
	u := v.Updates(c.writeContext(), allowExpunge) // it may claim \Recent: a write
	if u.Gone != 0 {
		c.endGone(goneText(u.Gone))
		return
	}
	if u.Keywords != nil {
		// Before any EXISTS or FETCH that may carry a new keyword.
		c.writeFlagsResponses(u.Keywords, false)
	}
	if len(u.Expunged) > 0 {
		switch {
		case c.sess.IsEnabled(extQresync):
			c.writeVanished(false, imap.UIDSetFromSorted(u.Expunged))
		case c.sess.IsEnabled(extExpunged):
			c.writeExpunged(imap.UIDSetFromSorted(u.Expunged))
		default:
			for _, s := range u.ExpungedSeqs {
				c.writeExpunge(s)
			}
		}
	}
	if u.ClaimErr != nil {
		c.log.Warn("claiming recent messages", "err", u.ClaimErr)
	}
	if u.NewMessages {
		c.writeExists(u.Count)
		c.writeRecent(u.Recent)
		if c.sess.IsEnabled(extCondstore) {
			// New messages come with no MODSEQ of their own: without
			// the new HIGHESTMODSEQ a client that caches it (e.g.
			// interimap) would fetch its own appends again as changes
			// on the next resync.
			if m, ok := v.NewHighestModSeq(); ok {
				c.enc.Star().Atom("OK").SP().Code("HIGHESTMODSEQ", m).Text("Highest").CRLF()
			}
		}
	}
	items := itemsUIDFlags
	if c.sess.IsEnabled(extCondstore) {
		items = itemsUIDFlagsModSeq
	}
	for i := range u.Flags {
		c.writeMetaFetch(u.Flags[i].Seq, &u.Flags[i].Meta, items)
	}
}

package server

import (
	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
)

// Writers of the untagged responses that report a mailbox's messages:
// the FETCH of a message's flags, EXISTS, RECENT, EXPUNGE, VANISHED and
// EXPUNGED. Each writes one whole response line through the Encoder,
// without allocating.

// metaItems lists the data items of a FETCH response about a message's
// index entry, in the order they are written: UID, FLAGS and MODSEQ, each
// at most once. A zero kind ends the list.
type metaItems [3]fetchKind

// The lists the update reports use (RFC 7162 §3.2.4: UID and, with
// CONDSTORE, MODSEQ in every such FETCH).
var (
	itemsUIDFlags       = metaItems{fetchUID, fetchFlags}
	itemsUIDFlagsModSeq = metaItems{fetchUID, fetchFlags, fetchModSeq}
)

// add returns the list with k appended.
func (l metaItems) add(k fetchKind) metaItems {
	for i := range l {
		if l[i] == 0 {
			l[i] = k
			return l
		}
	}
	panic("metaItems: more than three items")
}

// metaItemsOf returns the items of a FETCH that asks for UID, FLAGS and
// MODSEQ only (deduplicated by the parser), in the order asked.
func metaItemsOf(atts []fetchAtt) metaItems {
	var l metaItems
	for _, a := range atts {
		l = l.add(a.kind)
	}
	return l
}

// writeMetaFetch writes "* seq FETCH (...)" with the items of l for the
// message m of the selected mailbox: FLAGS with \Recent when the message
// is recent in this session, MODSEQ noting that this command told the
// client a mod-sequence (see writeModSeq).
func (c *conn) writeMetaFetch(seq uint32, m *store.MessageMeta, l metaItems) {
	c.enc.Star().Number(seq).SP().Atom("FETCH (")
	for i, k := range l {
		if k == 0 {
			break
		}
		if i > 0 {
			c.enc.SP()
		}
		switch k {
		case fetchUID:
			c.enc.Atom("UID ").Number(m.UID)
		case fetchFlags:
			c.enc.Atom("FLAGS ")
			c.writeFlags(*m)
		case fetchModSeq:
			c.writeModSeq(m.ModSeq)
		}
	}
	c.enc.Special(')').CRLF()
}

// writeExists writes "* n EXISTS" (RFC 3501 §7.3.1).
func (c *conn) writeExists(n uint32) { c.enc.Star().Number(n).SP().Atom("EXISTS").CRLF() }

// writeRecent writes "* n RECENT" (RFC 3501 §7.3.2).
func (c *conn) writeRecent(n uint32) { c.enc.Star().Number(n).SP().Atom("RECENT").CRLF() }

// writeExpunge writes "* seq EXPUNGE" (RFC 3501 §7.4.1).
func (c *conn) writeExpunge(seq uint32) { c.enc.Star().Number(seq).SP().Atom("EXPUNGE").CRLF() }

// writeVanished writes "* VANISHED uids" (RFC 7162 §3.2.10), or with
// earlier "* VANISHED (EARLIER) uids": expunges that happened before
// the command, reported without sequence numbers.
func (c *conn) writeVanished(earlier bool, uids imap.SeqSet) {
	c.enc.Star().Atom("VANISHED ")
	if earlier {
		c.enc.Atom("(EARLIER) ")
	}
	c.enc.SeqSet(uids).CRLF()
}

// writeExpunged writes "* EXPUNGED uids"
// (draft-melnikov-imap-expunged-01 §3.2).
func (c *conn) writeExpunged(uids imap.SeqSet) { c.enc.Star().Atom("EXPUNGED ").SeqSet(uids).CRLF() }

package server

import (
	"context"
	"slices"
	"strings"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server/tracker"
	"github.com/quickimap/quickimap/store"
)

// systemFlags are the flags every mailbox supports (RFC 3501 §2.3.2).
var systemFlags = []string{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

func (c *conn) cmdSelect(tag string) (*status, error)  { return c.selectMailbox(false) }
func (c *conn) cmdExamine(tag string) (*status, error) { return c.selectMailbox(true) }

// qresyncParam is the QRESYNC SELECT/EXAMINE parameter (RFC 7162 §3.2.5).
type qresyncParam struct {
	uidValidity uint32
	modseq      uint64
	knownUIDs   imap.SeqSet // nil: 1:UIDNEXT-1
	// seqs and uids are the sequence match data, or nil.
	seqs, uids imap.SeqSet
}

// readSelectParams reads RFC 4466 select-params: "(" select-param *(SP
// select-param) ")", with CONDSTORE (RFC 7162 §3.1.8) and QRESYNC
// (§3.2.5); any other is unknown and BAD (RFC 4466 §2.1).
func (c *conn) readSelectParams() (condstore bool, q *qresyncParam, err error) {
	err = c.dec.List(func() error {
		p, err := c.dec.Atom()
		if err != nil {
			return err
		}
		switch p = strings.ToUpper(p); p {
		case "CONDSTORE":
			if condstore {
				return syntaxErr("SELECT parameter CONDSTORE given twice")
			}
			condstore = true
			return nil
		case "QRESYNC":
			if q != nil {
				return syntaxErr("SELECT parameter QRESYNC given twice")
			}
			if err := c.dec.SP(); err != nil {
				return err
			}
			q, err = c.readQresyncParam()
			return err
		}
		return syntaxErr("unknown SELECT parameter " + printable(p))
	})
	return condstore, q, err
}

// readQresyncParam reads "(" uidvalidity SP mod-sequence-value [SP
// known-uids] [SP seq-match-data] ")". "*" is not allowed in the sets.
func (c *conn) readQresyncParam() (*qresyncParam, error) {
	d := c.dec
	q := &qresyncParam{}
	var err error
	if err = d.Special('('); err != nil {
		return nil, err
	}
	if q.uidValidity, err = d.NzNumber(); err != nil {
		return nil, err
	}
	if err = d.SP(); err != nil {
		return nil, err
	}
	if q.modseq, err = d.Number64(); err != nil {
		return nil, err
	}
	if d.Maybe(' ') && d.Peek() != '(' {
		if q.knownUIDs, err = d.SeqSet(); err != nil {
			return nil, err
		}
		if q.knownUIDs.Dynamic() {
			return nil, syntaxErr("* is not allowed in QRESYNC known UIDs")
		}
		if !d.Maybe(' ') {
			return q, d.Special(')')
		}
	}
	if d.Peek() == '(' {
		d.Special('(')
		if q.seqs, err = d.SeqSet(); err != nil {
			return nil, err
		}
		if err = d.SP(); err != nil {
			return nil, err
		}
		if q.uids, err = d.SeqSet(); err != nil {
			return nil, err
		}
		if err = d.Special(')'); err != nil {
			return nil, err
		}
		if q.seqs.Dynamic() || q.uids.Dynamic() {
			return nil, syntaxErr("* is not allowed in QRESYNC sequence match data")
		}
		if setSize(q.seqs) != setSize(q.uids) {
			return nil, syntaxErr("QRESYNC sequence match data: the two sets differ in size")
		}
	}
	return q, d.Special(')')
}

// readSelectArgs reads SELECT's and EXAMINE's arguments through the CRLF:
// SP mailbox [SP select-params].
func (c *conn) readSelectArgs() (raw, name string, condstore bool, q *qresyncParam, err error) {
	if err = c.dec.SP(); err != nil {
		return
	}
	if raw, name, err = c.readMailbox(); err != nil {
		return
	}
	if !c.dec.AtEOL() {
		if err = c.dec.SP(); err != nil {
			return
		}
		if condstore, q, err = c.readSelectParams(); err != nil {
			return
		}
	}
	err = c.dec.CRLF()
	return
}

func (c *conn) selectMailbox(readOnly bool) (*status, error) {
	raw, name, condstore, q, err := c.readSelectArgs()
	// RFC 3501 §6.3.1: a SELECT first deselects the current mailbox; if
	// the new one cannot be selected the connection stays unselected.
	// That holds for a SELECT refused with BAD too: RFC 7162 §3.2.5
	// says the mailbox "remains unselected" after a BAD for invalid
	// parameters, and Dovecot closes the mailbox before it answers BAD.
	// RFC 7162 §3.2.11: a server that advertises CONDSTORE or QRESYNC
	// marks the boundary with CLOSED, whatever the client enabled.
	wasSelected := c.view != nil
	c.deselect()
	if wasSelected {
		c.enc.Star().Atom("OK").SP().Atom("[CLOSED] ").Text("Previous mailbox closed").CRLF()
	}
	if err != nil {
		return nil, err // BAD, after the rest of the line is skipped
	}
	verb := "SELECT"
	if readOnly {
		verb = "EXAMINE"
	}
	if q != nil && !c.sess.IsEnabled(extQresync) {
		// RFC 7162 §3.2.5.
		return bad("QRESYNC parameter needs ENABLE QRESYNC first"), nil
	}
	if condstore {
		c.enableCondstore() // nothing selected: no HIGHESTMODSEQ of its own
	}

	ctx := c.commandContext()
	mb, err := c.s.store.MailboxByName(ctx, c.sess.UserID, name)
	if err != nil {
		return c.storeFailure(err), nil
	}
	if mb.NoSelect {
		return no("CANNOT", "Mailbox is not selectable"), nil
	}
	if st := c.openSelected(ctx, mb, raw, readOnly); st != nil {
		return st, nil
	}
	defer c.saveSession()
	if q != nil && q.uidValidity == c.sess.Selected.UIDValidity {
		// RFC 7162 §3.2.5.1: what changed since the client's modseq,
		// as UID FETCH known-uids (FLAGS) (CHANGEDSINCE m VANISHED).
		if err := c.qresyncReport(q, nil, false); err != nil {
			return c.storeFailure(err), nil
		}
	}
	if readOnly {
		return okCode("READ-ONLY", verb+" completed"), nil
	}
	return okCode("READ-WRITE", verb+" completed"), nil
}

// openSelected opens mb as the selected mailbox (raw: its name as the
// client spelled it) and writes the untagged responses of a SELECT or
// EXAMINE (RFC 3501 §6.3.1), HIGHESTMODSEQ included once CONDSTORE is
// enabled. It returns nil on success, else the failure to answer.
func (c *conn) openSelected(ctx context.Context, mb store.Mailbox, raw string, readOnly bool) *status {
	v, err := c.openSelection(ctx, mb, readOnly, nil)
	if err != nil {
		return c.storeFailure(err)
	}
	c.writeSelected(v, mb.ID, raw, readOnly, false)
	return nil
}

// openSelection opens mb for the session, taking the view's snapshot of
// the mailbox (openView), and writes nothing.
//
// savedRecent, for a resumed session, holds the \Recent UIDs it owned;
// those still in the mailbox are recent again.
func (c *conn) openSelection(ctx context.Context, mb store.Mailbox, readOnly bool, savedRecent imap.SeqSet) (*tracker.View, error) {
	v, err := c.openView(ctx, mb, readOnly)
	if err != nil {
		return nil, err
	}
	if len(savedRecent) > 0 && !readOnly {
		ranges := savedRecent.Resolve(0) // sorted, disjoint: one merged walk
		j := 0
		v.RestoreRecent(func(u uint32) (bool, bool) {
			for j < len(ranges) && ranges[j].Stop < u {
				j++
			}
			if j == len(ranges) {
				return false, false
			}
			return ranges[j].Start <= u, true
		})
	}
	return v, nil
}

// resumeText is the text of the untagged and tagged OK responses of a
// SID resume that reports changes: the client reads the codes, and a
// reconnect is counted in bytes (docs/reconnect.md, "What a resume
// sends"). RFC 3501's resp-text needs at least one character.
const resumeText = "Ok"

// writeSelected makes v the selected mailbox and writes the untagged
// responses of a SELECT or EXAMINE from the view's snapshot, so that
// EXISTS, UIDNEXT and HIGHESTMODSEQ agree (a message that came meanwhile
// is announced with EXISTS later).
//
// resumed is a SID resume that reports the changes since the client's
// mod-sequence next (draft-ietf-lemonade-reconnect-07 §3.3): the client
// has every message's flags, so UNSEEN, which §3.1 lists as OPTIONAL,
// is left out (and with it a pass over the mailbox), and the texts are
// short.
func (c *conn) writeSelected(v *tracker.View, mailboxID int64, raw string, readOnly, resumed bool) {
	firstUnseen := uint32(0)
	if !resumed {
		if first := v.Scan(func(_ uint32, m *store.MessageMeta) (bool, bool) {
			unseen := !hasFlag(m.Flags, imap.FlagSeen)
			return unseen, unseen
		}); len(first) > 0 {
			firstUnseen = first[0].Seq
		}
	}
	keywords := v.Keywords()
	uidValidity := v.UIDValidity()
	// EXAMINE claimed nothing: its recent messages are those still
	// unclaimed (tracker.Hub.Open).
	recent := v.RecentCount()

	c.view = v
	if resumed {
		c.writeResumeFlags(keywords)
	} else {
		c.writeFlagsResponses(keywords, true)
	}
	c.writeExists(v.Count())
	c.writeRecent(recent)
	if firstUnseen > 0 {
		c.enc.Star().Atom("OK").SP().Code("UNSEEN", firstUnseen).Text("First unseen message").CRLF()
	}
	validityText, nextText := "UIDs valid", "Predicted next UID"
	if resumed {
		validityText, nextText = resumeText, resumeText
	}
	c.enc.Star().Atom("OK").SP().Code("UIDVALIDITY", uidValidity).Text(validityText).CRLF()
	c.enc.Star().Atom("OK").SP().Code("UIDNEXT", v.UIDNext()).Text(nextText).CRLF()

	c.sess.Selected = &Selected{
		MailboxID:   mailboxID,
		Name:        raw,
		ReadOnly:    readOnly,
		UIDValidity: uidValidity,
	}
	c.sess.State = imap.StateSelected
	if c.sess.IsEnabled(extCondstore) {
		// RFC 7162 §3.1.2.1: we keep mod-sequences for every mailbox,
		// so never NOMODSEQ.
		if resumed {
			c.enc.Star().Atom("OK").SP().Code("HIGHESTMODSEQ", v.HighestModSeq()).Text(resumeText).CRLF()
		} else {
			c.writeHighestModSeq()
		}
	}
}

// writeResumeFlags is writeFlagsResponses(keywords, true) with the text
// of a resume. PERMANENTFLAGS lists every flag of FLAGS (RFC 3501 §7.1:
// one in FLAGS but not in PERMANENTFLAGS "can not be set permanently"),
// and nothing for a read-only mailbox.
func (c *conn) writeResumeFlags(keywords []string) {
	v := c.view
	flags := append(append(make([]string, 0, len(systemFlags)+len(keywords)+1), systemFlags...), keywords...)
	c.enc.Star().Atom("FLAGS").SP().Flags(flags).CRLF()
	c.enc.Star().Atom("OK").SP().CodeStart("PERMANENTFLAGS").SP()
	if v.ReadOnly() {
		c.enc.Atom("()")
	} else {
		c.enc.Flags(append(flags, `\*`))
	}
	c.enc.CodeEnd().Text(resumeText).CRLF()
}

// qresyncReport sends the VANISHED (EARLIER) and FETCH responses of a
// SELECT/EXAMINE with a QRESYNC parameter whose UIDVALIDITY matches.
//
// ch is what the store says changed since q.modseq, read after the view's
// snapshot (nil: read it here). With expunged (a SID resume,
// draft-ietf-lemonade-reconnect-07 §3.3) the expunged UIDs go out as
// "* EXPUNGED uid-set" instead.
func (c *conn) qresyncReport(q *qresyncParam, ch *store.UIDChanges, expunged bool) error {
	v := c.view
	if ch == nil {
		uc, err := c.s.store.UIDChangesSince(c.ctx, c.sess.UserID, v.MailboxID(), q.modseq, true)
		if err != nil {
			return err
		}
		ch = &uc
	}
	vq := vanishedQuery{set: q.knownUIDs, all: q.knownUIDs == nil, since: q.modseq, useSince: true, minUID: 1}
	if q.seqs != nil {
		vq.minUID = seqMatchFloor(q.seqs, q.uids, v.UIDs())
	}
	gone := c.vanishedFrom(vq, ch.Vanished, ch.Complete)
	// RFC 7162 §3.2.5.1: VANISHED (EARLIER) before the FETCH responses;
	// the reconnect draft's §3.3 example puts EXPUNGED after them. None
	// of these UIDs has a sequence number, so the order only follows the
	// examples.
	if len(gone) > 0 && !expunged {
		c.writeVanished(true, gone)
	}
	var known []imap.NumRange
	if q.knownUIDs != nil {
		known = q.knownUIDs.Resolve(0)
	}
	changed := c.changedSince(q.modseq, known, ch.Changed)
	c.reportKeywords() // one added since the FLAGS of the SELECT
	for i := range changed {
		c.writeMetaFetch(changed[i].Seq, &changed[i].Meta, itemsUIDFlagsModSeq)
		if err := c.enc.Err(); err != nil {
			return nil // the connection is failing; the loop ends it
		}
	}
	if len(gone) > 0 && expunged {
		c.writeExpunged(gone)
	}
	return nil
}

// changedSince returns the view's messages whose meta in the shared index
// has a MODSEQ above modseq, within known (nil: every UID), in sequence
// order.
//
// candidates are the UIDs the store says changed since modseq, read
// after the view's snapshot: every message the index shows changed since
// modseq (up to the snapshot) is among them, unless expunged since, in
// which case the view reports it gone later. So a few candidates are
// looked up one by one instead of walking the whole view; many (a client
// far behind) make the walk the cheaper.
func (c *conn) changedSince(modseq uint64, known []imap.NumRange, candidates []uint32) []tracker.SeqMeta {
	v := c.view
	keep := func(u uint32, m *store.MessageMeta) bool {
		return m.ModSeq > modseq && (known == nil || inRanges(known, u))
	}
	uids := v.UIDs()
	if len(candidates) > len(uids)/32 {
		return v.Scan(func(u uint32, m *store.MessageMeta) (bool, bool) { return keep(u, m), false })
	}
	var out []tracker.SeqMeta
	for _, u := range candidates {
		seq := seqOf(uids, u)
		if seq == 0 {
			continue
		}
		if m, ok, _ := v.Meta(u); ok && keep(u, &m) {
			out = append(out, tracker.SeqMeta{Seq: seq, Meta: m})
		}
	}
	return out
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// deselect leaves the selected state without expunging.
func (c *conn) deselect() {
	c.closeView(c.view)
	c.view = nil
	c.sess.Selected = nil
	if c.sess.State == imap.StateSelected {
		c.sess.State = imap.StateAuthenticated
	}
}

func (c *conn) cmdClose(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	// RFC 3501 §6.4.2: CLOSE silently expunges \Deleted messages of a
	// read-write mailbox, without EXPUNGE responses. A mailbox that went
	// away under the session (deleted, INBOX renamed) is just closed:
	// the client leaves it, so it needs no BYE (see endGone).
	if c.view != nil && !c.view.ReadOnly() && c.view.Gone() == 0 {
		if _, err := c.expungeDeleted(nil); err != nil {
			c.deselect()
			return c.storeFailure(err), nil
		}
	}
	c.deselect()
	c.saveSession()
	return ok("CLOSE completed"), nil
}

func (c *conn) cmdUnselect(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	// RFC 3691: like CLOSE, without the expunge.
	c.deselect()
	c.saveSession()
	return ok("UNSELECT completed"), nil
}

func (c *conn) cmdCheck(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	// Every change is durable when its command completes, so there is
	// nothing to checkpoint (RFC 3501 §6.4.1).
	return ok("CHECK completed"), nil
}

func (c *conn) cmdNamespace(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	// RFC 2342: one personal namespace with the "/" delimiter; no
	// other users' or shared namespaces.
	c.enc.Star().Atom(`NAMESPACE (("" "/")) NIL NIL`).CRLF()
	return ok("NAMESPACE completed"), nil
}

// enableable lists the extensions ENABLE can turn on (RFC 5161): CONDSTORE
// and QRESYNC (RFC 7162 §3.1, §3.2.3), which implies CONDSTORE.
var enableable = map[string]bool{extCondstore: true, extQresync: true}

func (c *conn) cmdEnable(tag string) (*status, error) {
	var exts []string
	for !c.dec.AtEOL() {
		if err := c.dec.SP(); err != nil {
			return nil, err
		}
		a, err := c.dec.Atom()
		if err != nil {
			return nil, err
		}
		exts = append(exts, strings.ToUpper(a))
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if len(exts) == 0 {
		return bad("ENABLE needs at least one capability"), nil
	}
	// RFC 5161 §3.1: the ENABLED response lists what this command newly
	// enabled (each name once); unknown names are ignored. "ENABLE
	// QRESYNC" and "ENABLE QRESYNC CONDSTORE" have the same effect
	// (RFC 7162 §3.2.3).
	before := map[string]bool{extCondstore: c.sess.IsEnabled(extCondstore), extQresync: c.sess.IsEnabled(extQresync)}
	var newly []string
	for _, e := range exts {
		if !enableable[e] || before[e] || slices.Contains(newly, e) {
			continue
		}
		newly = append(newly, e)
		c.sess.enable(e)
		if e == extQresync {
			c.sess.enable(extCondstore)
		}
	}
	c.enc.Star().Atom("ENABLED")
	for _, e := range newly {
		c.enc.SP().Atom(e)
	}
	c.enc.CRLF()
	c.saveSession()
	return ok("ENABLE completed"), nil
}

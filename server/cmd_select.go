package server

import (
	"context"
	"strings"

	"github.com/quickimap/quickimap/imap"
)

// systemFlags are the flags every mailbox supports (RFC 3501 §2.3.2).
var systemFlags = []string{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

func (c *conn) cmdSelect(tag string) (*status, error)  { return c.selectMailbox(false) }
func (c *conn) cmdExamine(tag string) (*status, error) { return c.selectMailbox(true) }

func (c *conn) selectMailbox(readOnly bool) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	raw, name, err := c.readMailbox()
	if err != nil {
		return nil, err
	}
	if !c.dec.AtEOL() {
		// RFC 4466 select-params; none is supported yet, so any is
		// unknown and BAD (RFC 4466 §2.1).
		if err := c.dec.SP(); err != nil {
			return nil, err
		}
		err := c.dec.List(func() error {
			p, err := c.dec.Atom()
			if err != nil {
				return err
			}
			return syntaxErr("unknown SELECT parameter " + printable(p))
		})
		if err != nil {
			return nil, err
		}
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	verb := "SELECT"
	if readOnly {
		verb = "EXAMINE"
	}

	// RFC 3501 §6.3.1: a SELECT first deselects the current mailbox; if
	// the new one cannot be selected the connection stays unselected.
	c.deselect()

	ctx := context.Background()
	mb, err := c.s.store.MailboxByName(ctx, c.sess.UserID, name)
	if err != nil {
		return c.storeFailure(err), nil
	}
	if mb.NoSelect {
		return no("CANNOT", "Mailbox is not selectable"), nil
	}
	v, err := c.openView(ctx, mb, readOnly)
	if err != nil {
		return c.storeFailure(err), nil
	}
	sm := v.sm
	sm.mu.RLock()
	keywords := sm.sortedKeywords()
	info := sm.mb
	firstUnseen := uint32(0)
	for i := range v.uids { // v.uids is a prefix of sm.uids just after open
		if !hasFlag(sm.metas[i].Flags, imap.FlagSeen) {
			firstUnseen = uint32(i + 1)
			break
		}
	}
	recent := uint32(len(v.recent))
	if readOnly {
		// EXAMINE claims nothing; it reports what is still unclaimed.
		for _, u := range v.uids {
			if u >= sm.recentUpTo {
				recent++
			}
		}
	}
	sm.mu.RUnlock()

	flags := append(append([]string(nil), systemFlags...), keywords...)
	c.enc.Star().Atom("FLAGS").SP().Flags(flags).CRLF()
	c.enc.Star().Atom("OK").SP()
	if readOnly {
		c.enc.Atom("[PERMANENTFLAGS ()] ").Text("No permanent flags permitted")
	} else {
		c.enc.CodeStart("PERMANENTFLAGS").SP().Flags(append(flags, `\*`)).CodeEnd().Text("Flags permitted")
	}
	c.enc.CRLF()
	c.enc.Star().Number(uint32(len(v.uids))).SP().Atom("EXISTS").CRLF()
	c.enc.Star().Number(recent).SP().Atom("RECENT").CRLF()
	if firstUnseen > 0 {
		c.enc.Star().Atom("OK").SP().Code("UNSEEN", firstUnseen).Text("First unseen message").CRLF()
	}
	c.enc.Star().Atom("OK").SP().Code("UIDVALIDITY", info.UIDValidity).Text("UIDs valid").CRLF()
	c.enc.Star().Atom("OK").SP().Code("UIDNEXT", info.UIDNext).Text("Predicted next UID").CRLF()

	c.view = v
	c.sess.Selected = &Selected{
		MailboxID:   mb.ID,
		Name:        raw,
		ReadOnly:    readOnly,
		UIDValidity: info.UIDValidity,
	}
	c.sess.State = imap.StateSelected
	if readOnly {
		return okCode("READ-ONLY", verb+" completed"), nil
	}
	return okCode("READ-WRITE", verb+" completed"), nil
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
	// read-write mailbox, without EXPUNGE responses.
	if c.view != nil && !c.view.readOnly {
		if _, err := c.expungeDeleted(nil); err != nil {
			c.deselect()
			return c.storeFailure(err), nil
		}
	}
	c.deselect()
	return ok("CLOSE completed"), nil
}

func (c *conn) cmdUnselect(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	// RFC 3691: like CLOSE, without the expunge.
	c.deselect()
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

// enableable lists the extensions ENABLE can turn on (RFC 5161). Later
// issues add CONDSTORE and QRESYNC.
var enableable = map[string]bool{}

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
	// enabled; unknown names are ignored.
	var newly []string
	for _, e := range exts {
		if enableable[e] && !c.sess.IsEnabled(e) {
			c.sess.Enabled = append(c.sess.Enabled, e)
			newly = append(newly, e)
		}
	}
	c.enc.Star().Atom("ENABLED")
	for _, e := range newly {
		c.enc.SP().Atom(e)
	}
	c.enc.CRLF()
	return ok("ENABLE completed"), nil
}

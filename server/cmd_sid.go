package server

// Resumable sessions, draft-ietf-lemonade-reconnect-07 (capability
// X-DRAFT-W07-RECONNECT): SID (§3), DELETESID (§3.4), LOGOUT (PRESERVE)
// (§4, in cmd_any.go), the SELECTED, NEWSID and DELETEDSID responses (§5).
// The registry (package session) keeps the sessions; this file moves a
// connection's Session in and out of it (encodeSession, decodeSession).

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
)

const capReconnect = "X-DRAFT-W07-RECONNECT"

// sessionState serializes what a resume needs: the Session (state,
// selected mailbox id, its name as spelled, read-only flag, UIDVALIDITY,
// enabled extensions). The view is rebuilt like a fresh SELECT's.
func (c *conn) sessionState() []byte {
	c.syncRecent()
	b, err := encodeSession(&c.sess)
	if err != nil { // plain data: cannot happen
		c.log.Error("serializing session", "err", err)
		return nil
	}
	return b
}

// syncRecent copies the view's \Recent UIDs into the session.
func (c *conn) syncRecent() {
	if c.view != nil && c.sess.Selected != nil {
		c.sess.Selected.Recent = imap.UIDSetFromSorted(c.view.Recent())
	}
}

// saveSession checkpoints the held session after a command that changed
// it (SELECT, EXAMINE, CLOSE, UNSELECT, ENABLE, SID).
func (c *conn) saveSession() {
	if c.s.opts.Sessions == nil || c.sid == "" {
		return
	}
	c.saveState(c.sessionState())
}

// saveSessionChanged is saveSession after a resume, skipped when the
// session is the one the registry's store holds (saved, decoded from the
// state the resume started from): a client that reconnects again and
// again to the same mailbox then costs no durable write.
func (c *conn) saveSessionChanged(saved *Session) {
	if c.s.opts.Sessions == nil || c.sid == "" {
		return
	}
	c.syncRecent()
	if !sameSession(&c.sess, saved) {
		c.saveState(c.sessionState())
	}
}

// sessionContext is the context of the writes that keep a resumable
// session's record: they are not cancelled with the connection (the
// client going away is exactly when its session must be kept), only
// bounded in time.
func (c *conn) sessionContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(c.ctx), sessionWriteTimeout)
}

// sessionWriteTimeout bounds a write of a session record.
const sessionWriteTimeout = 10 * time.Second

func (c *conn) saveState(state []byte) {
	ctx, cancel := c.sessionContext()
	defer cancel()
	err := c.s.opts.Sessions.Save(ctx, c, state)
	if errors.Is(err, session.ErrNotOwner) {
		// Resumed elsewhere: by a connection of this node, which told
		// this one already, or of another node whose hint has not come
		// (or was lost). Either way nothing was written, and the client
		// is told DELETEDSID as for a takeover here (§5.3).
		c.takeSession(c.sid)
		return
	}
	if err != nil {
		c.log.Warn("saving session", "err", err)
	}
}

// detachSession leaves the held session resumable (LOGOUT (PRESERVE),
// the end of the connection).
func (c *conn) detachSession() {
	reg := c.s.opts.Sessions
	if reg == nil || c.sid == "" {
		return
	}
	ctx, cancel := c.sessionContext()
	defer cancel()
	if err := reg.Detach(ctx, c, c.sessionState()); err != nil && !errors.Is(err, session.ErrNotOwner) {
		c.log.Warn("detaching session", "err", err)
	}
	c.sid = ""
}

// deleteSession ends the held session (plain LOGOUT).
func (c *conn) deleteSession() {
	reg := c.s.opts.Sessions
	if reg == nil || c.sid == "" {
		return
	}
	ctx, cancel := c.sessionContext()
	defer cancel()
	if err := reg.Delete(ctx, c); err != nil && !errors.Is(err, session.ErrNotOwner) {
		c.log.Warn("deleting session", "err", err)
	}
	c.sid = ""
}

// takeSession is called, on the resuming connection's goroutine, for the
// connection whose session it took: that one learns it from its own
// goroutine (noteLostSession), never through this one's writes.
func (c *conn) takeSession(id string) {
	c.lostSID.Store(&id)
	c.waker.kick()
}

// noteLostSession sends "* DELETEDSID id" (§5.3) when another connection
// resumed this one's session. Called before each tagged response and
// during IDLE.
// It reports whether the session lost was the one the connection held.
func (c *conn) noteLostSession() bool {
	p := c.lostSID.Swap(nil)
	if p == nil {
		return false
	}
	c.enc.Star().Atom("DELETEDSID").SP().Astring(*p).CRLF()
	if c.sid == *p {
		c.sid = ""
		return true
	}
	return false
}

// clientIP is the client's address without the port, for the registry's
// per-address limit.
func (c *conn) clientIP() string {
	if h, _, err := net.SplitHostPort(c.remote); err == nil {
		return h
	}
	return c.remote
}

// maxSessionIDLen bounds a session id argument. Ours are 26 characters;
// a longer one is refused before its literal is read (BAD: it can name
// no session).
const maxSessionIDLen = 64

// sidArgs are the arguments of SID with a session id (§3.3, §6):
// session-id SP uidvalidity SP mod-sequence-value [SP known-uids].
type sidArgs struct {
	id          string
	uidValidity uint32
	modseq      uint64
	knownUIDs   imap.SeqSet
}

// readSIDArgs reads the SID arguments after the command name through the
// CRLF; nil when SID has none. The session id is read as an astring: the
// ABNF says string, every example sends an atom (docs/reconnect.md).
func (c *conn) readSIDArgs() (*sidArgs, error) {
	d := c.dec
	if d.AtEOL() {
		return nil, d.CRLF()
	}
	a := &sidArgs{}
	var err error
	if err = d.SP(); err != nil {
		return nil, err
	}
	if a.id, err = d.AstringMax(maxSessionIDLen, "session id"); err != nil {
		return nil, err
	}
	if err = d.SP(); err != nil {
		return nil, err
	}
	if a.uidValidity, err = d.NzNumber(); err != nil {
		return nil, err
	}
	if err = d.SP(); err != nil {
		return nil, err
	}
	if a.modseq, err = d.Number64(); err != nil {
		return nil, err
	}
	if !d.AtEOL() {
		if err = d.SP(); err != nil {
			return nil, err
		}
		if a.knownUIDs, err = d.SeqSet(); err != nil {
			return nil, err
		}
		if a.knownUIDs.Dynamic() {
			return nil, syntaxErr("* is not allowed in SID known UIDs")
		}
	}
	return a, d.CRLF()
}

func (c *conn) cmdSID(tag string) (*status, error) {
	reg := c.s.opts.Sessions
	if reg == nil {
		if !c.discardAnd(tag, "BAD", "", "Unknown command SID") {
			return nil, errEnded
		}
		return nil, nil
	}
	args, err := c.readSIDArgs()
	if err != nil {
		return nil, err
	}
	ctx := c.ctx
	// The session this connection holds, if any, becomes inactive
	// (§3.2): keep its state. If it was lost meanwhile, DELETEDSID says
	// so now, before this SID's responses: the loss is about the
	// session held before, even when this SID resumes that same one.
	c.saveSession()
	c.noteLostSession()
	if args == nil {
		return c.newSession(ctx), nil
	}
	rec, prev, err := reg.Attach(ctx, c.sess.UserID, args.id, c)
	if errors.Is(err, session.ErrNotFound) {
		// §3.3: an unknown or expired SID creates a new session.
		c.countResume(ResumeNoSession)
		return c.newSession(ctx), nil
	}
	if err != nil {
		c.countResume(ResumeError)
		return c.storeFailure(err), nil
	}
	if p, ok := prev.(*conn); ok && p != c {
		p.takeSession(args.id)
	}
	c.sid = args.id
	st, outcome := c.resume(ctx, rec, args)
	c.countResume(outcome)
	if st.typ == "OK" {
		// Another connection may resume the session before this answer
		// goes out: DELETEDSID comes first, and the text must agree.
		st.lostText = "SID completed, then the session was resumed on another connection"
	}
	return st, nil
}

// newSession creates a session held by this connection (§3.2).
func (c *conn) newSession(ctx context.Context) *status {
	id, err := c.s.opts.Sessions.Create(ctx, c.sess.UserID, c.clientIP(), c)
	if errors.Is(err, session.ErrLimit) {
		return no("LIMIT", "Too many sessions")
	}
	if err != nil {
		return c.storeFailure(err)
	}
	c.sid = id
	c.enc.Star().Atom("NEWSID").SP().Astring(id).CRLF()
	c.saveSession()
	return ok("SID completed: session created")
}

// resume restores the session state of rec on this connection and
// reports it (§3.3).
func (c *conn) resume(ctx context.Context, rec store.SessionRecord, a *sidArgs) (*status, ResumeOutcome) {
	var saved Session
	if len(rec.State) > 0 {
		if err := decodeSession(rec.State, &saved); err != nil {
			c.log.Warn("unreadable session state", "err", err)
			saved = Session{}
		}
	}
	if c.view != nil {
		// The connection's own selection ends; a server that advertises
		// CONDSTORE marks the boundary as SELECT does (RFC 7162
		// §3.2.11, docs/reconnect.md).
		c.deselect()
		c.enc.Star().Atom("OK").SP().Atom("[CLOSED] ").Text("Previous mailbox closed").CRLF()
	}
	// The session's extensions, and those this connection enabled before
	// SID: ENABLE cannot be undone (RFC 5161 §3.1).
	for _, e := range saved.Enabled {
		c.sess.enable(e)
	}
	// The SID arguments carry a mod-sequence: the client uses CONDSTORE,
	// and the draft's examples send HIGHESTMODSEQ.
	c.sess.enable(extCondstore)
	// §3.3: a resume "is semantically equivalent to" UID FETCH ...
	// (CHANGEDSINCE m REPORTEXPUNGES), after which the EXPUNGED draft
	// (§3.2) reports live expunges as EXPUNGED too (VANISHED when QRESYNC
	// is on).
	c.sess.enable(extExpunged)

	var mb store.Mailbox
	found := false
	if sel := saved.Selected; sel != nil {
		m, err := c.s.store.MailboxByID(ctx, c.sess.UserID, sel.MailboxID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return c.storeFailure(err), ResumeError
		}
		found = err == nil && !m.NoSelect
		// A mailbox renamed while the client was away is not resumed:
		// SELECTED would repeat a name that is gone or, worse, now names
		// another mailbox, and the client would file what follows under
		// it (docs/reconnect.md). RENAME INBOX (RFC 3501 §6.3.5) is such
		// a rename: it moves INBOX's id and messages to the new name and
		// leaves a new, empty INBOX.
		if found && canonicalName(sel.Name) != m.Name {
			found = false
		}
		mb = m
	}
	if !found {
		// §3.3: nothing selected ("the remaining arguments MUST be
		// ignored"), or the mailbox is gone (deleted, even if another
		// now has its name: the draft's second choice, docs/reconnect.md):
		// SELECTED with no name, and the authenticated state (the
		// draft's "unauthenticated" is a slip).
		return c.resumedUnselected(), ResumeResumed
	}
	sel := saved.Selected
	match := a.uidValidity == mb.UIDValidity
	// The view's snapshot first, then one read of the store: every
	// expunge up to the snapshot has its tombstone among those read, or
	// the read says tombstones since the client's mod-sequence were
	// purged. An expunge after the snapshot that the view still holds
	// is reported live later; vanishedFrom leaves it out. (Reading the
	// store before the snapshot would miss an expunge that came in
	// between: it would be in neither, yet below the HIGHESTMODSEQ
	// sent.) Nothing is written before the choice between resuming and
	// NEWSID is made.
	v, err := c.openSelection(ctx, mb, sel.ReadOnly, sel.Recent)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoSelect) {
		return c.resumedUnselected(), ResumeResumed
	}
	if err != nil {
		return c.storeFailure(err), ResumeError
	}
	// A mod-sequence above the mailbox's HIGHESTMODSEQ was never sent
	// by this server for this mailbox: the client's cache is not ours to
	// trust, and a delta from it would be empty for good.
	beyond := match && a.modseq > v.HighestModSeq()
	var changes *store.UIDChanges
	if match && !beyond {
		ch, err := c.s.store.UIDChangesSince(ctx, c.sess.UserID, mb.ID, a.modseq, true)
		if err != nil {
			c.closeView(v)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoSelect) {
				return c.resumedUnselected(), ResumeResumed
			}
			return c.storeFailure(err), ResumeError
		}
		changes = &ch
	}
	resync := ""
	switch {
	case !match:
		// §3.3: "the server MUST send the NEWSID response containing the
		// SID of the resumed session", after SELECTED as in the
		// example; then the SELECT responses, the mailbox stays selected
		// in the same mode, and the other arguments are ignored.
		c.enc.Star().Atom("SELECTED").SP().Astring(sel.Name).CRLF()
		c.enc.Star().Atom("NEWSID").SP().Astring(c.sid).CRLF()
		resync = "UIDVALIDITY changed"
	case beyond:
		// §3.3's NEWSID for "unable to cache all events since the
		// MODSEQ", as below: the client must resynchronize.
		c.enc.Star().Atom("NEWSID").SP().Astring(c.sid).CRLF()
		c.enc.Star().Atom("SELECTED").SP().Astring(sel.Name).CRLF()
		resync = "the client's mod-sequence is above the mailbox's"
	case !changes.Complete:
		// §3.3: "If the server was unable to cache all events since the
		// MODSEQ ... the server MUST return the NEWSID response"; it "MAY
		// contain the same SID": we keep the session (its selection and
		// \Recent stay useful) and, as in that example, send NEWSID
		// first, then SELECTED and the SELECT responses, no changes.
		c.enc.Star().Atom("NEWSID").SP().Astring(c.sid).CRLF()
		c.enc.Star().Atom("SELECTED").SP().Astring(sel.Name).CRLF()
		resync = "changes since the mod-sequence are no longer known"
	default:
		c.enc.Star().Atom("SELECTED").SP().Astring(sel.Name).CRLF()
	}
	// With NEWSID the server "behaves as if SELECT/EXAMINE command for
	// the mailbox was issued" (§3.3): the full SELECT responses. A
	// resume that reports changes sends §3.1's required responses and
	// short texts (writeSelected).
	c.writeSelected(v, mb.ID, sel.Name, sel.ReadOnly, resync == "")
	if resync == "" && c.sess.Selected.UIDValidity == a.uidValidity {
		// §3.3: the changes since the client's mod-sequence, "FETCH
		// responses that MUST contain UIDs" (with FLAGS and MODSEQ), and
		// expunged UIDs as "* EXPUNGED uid-set", limited to the known
		// UIDs when given ("1:*" otherwise).
		q := &qresyncParam{uidValidity: a.uidValidity, modseq: a.modseq, knownUIDs: a.knownUIDs}
		if err := c.qresyncReport(q, changes, true); err != nil {
			return c.storeFailure(err), ResumeError
		}
	}
	if resync != "" {
		c.saveSession()
		c.log.Info("session resumed with a resync", "reason", resync)
		if sel.ReadOnly {
			return okCode("READ-ONLY", "SID completed: resync required"), ResumeNewSID
		}
		return okCode("READ-WRITE", "SID completed: resync required"), ResumeNewSID
	}
	c.saveSessionChanged(&saved)
	if sel.ReadOnly {
		return okCode("READ-ONLY", resumeText), ResumeResumed
	}
	return okCode("READ-WRITE", resumeText), ResumeResumed
}

// resumedUnselected answers a resume whose session had a mailbox that is
// gone: SELECTED with no name, and the authenticated state (§3.3).
func (c *conn) resumedUnselected() *status {
	c.enc.Star().Atom("SELECTED").CRLF()
	c.saveSession()
	return ok("SID completed: session resumed")
}

func (c *conn) cmdDeleteSID(tag string) (*status, error) {
	reg := c.s.opts.Sessions
	if reg == nil {
		if !c.discardAnd(tag, "BAD", "", "Unknown command DELETESID") {
			return nil, errEnded
		}
		return nil, nil
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	c.noteLostSession()
	if c.sid == "" {
		return bad("No current session"), nil
	}
	sid := c.sid
	err := reg.Delete(c.ctx, c)
	c.sid = ""
	if errors.Is(err, session.ErrNotOwner) {
		if errors.Is(err, store.ErrStale) {
			// Another node resumed it and its hint has not come: the
			// session is not this connection's to delete (§5.3).
			c.takeSession(sid)
			c.noteLostSession()
		}
		return bad("No current session"), nil
	}
	if err != nil {
		return c.storeFailure(err), nil
	}
	return ok("DELETESID completed"), nil
}

// readLogoutParams reads RFC 4466 logout parameters: [SP "(" param *(SP
// param) ")"]. PRESERVE (§4) is the only one known, and only with
// resumable sessions on; any other is BAD.
func (c *conn) readLogoutParams() (preserve bool, err error) {
	if c.dec.AtEOL() {
		return false, nil
	}
	if err := c.dec.SP(); err != nil {
		return false, err
	}
	n := 0
	err = c.dec.List(func() error {
		n++
		p, err := c.dec.Atom()
		if err != nil {
			return err
		}
		if strings.EqualFold(p, "PRESERVE") && c.s.opts.Sessions != nil {
			preserve = true
			return nil
		}
		return syntaxErr("unknown LOGOUT parameter " + printable(p))
	})
	if err == nil && n == 0 {
		// §6: logout-param-data = logout-param *(SP logout-param).
		return false, syntaxErr("empty LOGOUT parameter list")
	}
	return preserve, err
}

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/wire"
)

// readFlagList reads "(" [flag *(SP flag)] ")". \Recent and \* may not be
// set by a client (RFC 3501 §2.3.2, §6.4.6).
func (c *conn) readFlagList() ([]string, error) {
	var flags []string
	err := c.dec.List(func() error {
		f, err := c.dec.Flag()
		if err != nil {
			return err
		}
		flags = append(flags, f)
		return nil
	})
	return flags, err
}

// checkFlags refuses flags a client may not store.
func checkFlags(flags []string) *status {
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) {
			continue
		}
		switch strings.ToLower(f) {
		case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
		default:
			return bad("Flag " + printable(f) + " cannot be set")
		}
	}
	return nil
}

func (c *conn) cmdAppend(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	_, name, err := c.readMailbox()
	if err != nil {
		return nil, err
	}
	var msgs []store.NewMessage
	// spooled[i] holds the body of msgs[i] when it went to a temporary
	// file (membudget.go).
	var spooled []*spoolFile
	var refused *status
	// MULTIAPPEND (RFC 3502): one or more messages, each with optional
	// flags and date, all or none appended.
	for len(msgs) == 0 || !c.dec.AtEOL() {
		if err := c.dec.SP(); err != nil {
			return nil, err
		}
		var m store.NewMessage
		if c.dec.Peek() == '(' {
			if m.Flags, err = c.readFlagList(); err != nil {
				return nil, err
			}
			if err := c.dec.SP(); err != nil {
				return nil, err
			}
		}
		if c.dec.Peek() == '"' {
			if m.InternalDate, err = c.dec.DateTime(); err != nil {
				return nil, err
			}
			if err := c.dec.SP(); err != nil {
				return nil, err
			}
		}
		var sp *spoolFile
		m.Body, err = c.dec.LiteralTo(func(n int64) (io.Writer, error) {
			f, err := c.appendSink(n)
			if f == nil {
				return nil, err // in memory, or refused
			}
			sp = f
			return f, nil
		})
		if err != nil {
			return nil, err
		}
		if len(msgs) >= c.s.opts.MaxAppendMessages {
			return nil, &wire.LimitError{Code: "LIMIT", Msg: "Too many messages in one APPEND"}
		}
		if st := checkFlags(m.Flags); st != nil && refused == nil {
			refused = st
		}
		if len(m.Body) == 0 && sp == nil && refused == nil {
			refused = no("", "Empty message refused")
		}
		if (bytes.IndexByte(m.Body, 0) >= 0 || sp != nil && sp.nul) && refused == nil {
			// RFC 3501 §4.3, §9: a literal is CHAR8, which excludes
			// NUL, and without BINARY (RFC 3516, not offered) FETCH
			// could only send the message back in such a literal.
			// The command parsed, the message text is refused: NO
			// (RFC 3501 §6.3.11). One such message refuses a
			// MULTIAPPEND as a whole (RFC 3502: all or none).
			refused = no("CANNOT", "Message contains NUL bytes; IMAP cannot carry them without BINARY (RFC 3516)")
		}
		msgs = append(msgs, m)
		spooled = append(spooled, sp)
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if refused != nil {
		return refused, nil
	}
	// A spooled message may wait for memory (loadSpooled): watch for
	// the client leaving.
	ctx := c.commandContext()
	mb, err := c.s.store.MailboxByName(ctx, c.sess.UserID, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// RFC 3501 §6.3.11: TRYCREATE tells the client CREATE may help.
			return no("TRYCREATE", "No such mailbox"), nil
		}
		return c.storeFailure(err), nil
	}
	if st := c.loadSpooled(ctx, msgs, spooled); st != nil {
		return st, nil
	}
	uids, after, err := c.s.appendMessages(c.writeContext(), c.sess.UserID, mb.ID, msgs)
	if err != nil {
		return c.storeFailure(err), nil
	}
	// RFC 4315 APPENDUID.
	return okCode("APPENDUID "+itoa(after.UIDValidity)+" "+imap.UIDSetFromSorted(uids).String(), "APPEND completed"), nil
}

// appendSink chooses where the bytes of an APPEND literal of n bytes go
// (wire.Decoder.LiteralTo): into memory, counted against the budget,
// when it is no larger than Options.SpoolLiteral and fits (nil, nil);
// else into a new temporary file. A literal that fits neither is
// refused with NO [LIMIT].
func (c *conn) appendSink(n int64) (*spoolFile, error) {
	if n <= c.s.opts.SpoolLiteral && c.tryTakeMemory(n) {
		return nil, nil
	}
	sp, err := newSpoolFile(c.s.mem, c.s.opts.SpoolDir)
	if err != nil {
		c.log.Warn("cannot make a temporary file for a literal", "err", err)
		if c.tryTakeMemory(n) {
			return nil, nil
		}
		return nil, errMemoryBusy()
	}
	c.cmem.spools = append(c.cmem.spools, sp)
	return sp, nil
}

// loadSpooled reads the spooled bodies of an APPEND into msgs, once
// their bytes fit the memory budget (waiting up to the literal timeout),
// and removes their files. A failure is the command's answer.
func (c *conn) loadSpooled(ctx context.Context, msgs []store.NewMessage, spooled []*spoolFile) *status {
	var total int64
	for _, sp := range spooled {
		if sp != nil {
			total += sp.n
		}
	}
	if total == 0 {
		return nil
	}
	if c.cmem.taken > 0 && c.cmem.taken+total > c.s.mem.limit {
		// A MULTIAPPEND larger than the whole budget: no wait would
		// make it fit.
		return no("LIMIT", "Messages too large together for the server's memory; append them one by one")
	}
	if err := c.takeMemory(ctx, total); err != nil {
		c.log.Info("APPEND waited too long for memory", "bytes", total)
		return no("LIMIT", "Server memory busy; try again later")
	}
	for i, sp := range spooled {
		if sp == nil {
			continue
		}
		b, err := sp.load()
		sp.close()
		if errors.Is(err, syscall.ENOSPC) {
			// The spool shares the store's disk (by default): the
			// operator's "mail store is full" line and OVERQUOTA.
			return c.storeFailure(fmt.Errorf("%w: spooling a literal: %w", store.ErrFull, err))
		}
		if err != nil {
			c.log.Warn("cannot read back a spooled literal", "err", err)
			return no("UNAVAILABLE", "Cannot store the message now; try again later")
		}
		msgs[i].Body = b
	}
	return nil
}

// cacheAppended puts what FETCH and SEARCH will ask of the messages just
// appended into the message cache, as the store keeps it (whole seconds
// of the internal date, the bytes as given): clients list the newest
// messages right after they arrive.
func (s *Server) cacheAppended(mailboxID int64, validity uint32, uids []uint32, msgs []store.NewMessage) {
	if s.msgs == nil || len(uids) != len(msgs) {
		return
	}
	for i, uid := range uids {
		m := &msgs[i]
		s.msgs.put(msgKey{mailboxID, validity, uid, msgInfo}, &msgData{
			date: m.InternalDate.Truncate(time.Second), size: int64(len(m.Body)), structure: m.Structure})
		if m.HeaderLen > 0 && m.HeaderLen <= len(m.Body) {
			s.msgs.put(msgKey{mailboxID, validity, uid, msgHeader}, &msgData{body: bytes.Clone(m.Body[:m.HeaderLen])})
		}
	}
}

func itoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// readSetCRLF reads " sequence-set" and returns it; more arguments may
// follow.
func (c *conn) readSet() (imap.SeqSet, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	return c.dec.SeqSet()
}

func (c *conn) cmdStore(tag string) (*status, error)    { return c.store(false) }
func (c *conn) cmdUIDStore(tag string) (*status, error) { return c.store(true) }

func (c *conn) store(isUID bool) (*status, error) {
	set, err := c.readSet()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	// RFC 4466 store-modifiers; RFC 7162 §3.1.3 UNCHANGEDSINCE.
	var unchangedSince uint64
	conditional := false
	if c.dec.Peek() == '(' {
		err := c.dec.List(func() error {
			name, err := c.dec.Atom()
			if err != nil {
				return err
			}
			if name = strings.ToUpper(name); name != "UNCHANGEDSINCE" {
				return syntaxErr("unknown STORE modifier " + printable(name))
			}
			if conditional {
				return syntaxErr("UNCHANGEDSINCE given twice")
			}
			if err := c.dec.SP(); err != nil {
				return err
			}
			conditional = true
			unchangedSince, err = c.dec.Number64()
			return err
		})
		if err != nil {
			return nil, err
		}
		if err := c.dec.SP(); err != nil {
			return nil, err
		}
	}
	item, err := c.dec.Atom()
	if err != nil {
		return nil, err
	}
	item = strings.ToUpper(item)
	var op store.FlagOp
	switch {
	case strings.HasPrefix(item, "+"):
		op, item = store.FlagsAdd, item[1:]
	case strings.HasPrefix(item, "-"):
		op, item = store.FlagsRemove, item[1:]
	default:
		op = store.FlagsSet
	}
	silent := false
	switch item {
	case "FLAGS":
	case "FLAGS.SILENT":
		silent = true
	default:
		return nil, syntaxErr("expected FLAGS, +FLAGS or -FLAGS")
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	var flags []string
	if c.dec.Peek() == '(' {
		flags, err = c.readFlagList()
	} else {
		// RFC 3501 also allows flags without parentheses.
		for err == nil {
			var f string
			if f, err = c.dec.Flag(); err == nil {
				flags = append(flags, f)
				if c.dec.AtEOL() {
					break
				}
				err = c.dec.SP()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if conditional {
		c.enableCondstore()
	}
	if st := checkFlags(flags); st != nil {
		return st, nil
	}
	if c.view.ReadOnly() {
		return no("READ-ONLY", "Mailbox is read-only"), nil
	}
	refs, st := c.resolveSet(set, isUID)
	if st != nil {
		return st, nil
	}
	// A message named by sequence number that another session has
	// expunged (this one has not been told yet) is left out: nothing is
	// stored for it and no FETCH sent, and the STORE answers OK
	// [EXPUNGEISSUED] once the others are done (RFC 2180 §4.2.1's OK,
	// as Dovecot answers, with RFC 5530's hint that a NOOP will tell
	// more; docs/multiaccess.md says why not NO). UID STORE leaves out
	// UIDs that no longer exist without complaint, like UID FETCH (RFC
	// 3501 §6.4.8).
	gone := !isUID && c.refsGone(refs)
	uids := make([]uint32, len(refs))
	for i, r := range refs {
		uids[i] = r.UID
	}
	var changed []store.MessageMeta
	var failed []uint32
	switch {
	case len(uids) == 0:
	case conditional && unchangedSince == 0:
		// RFC 7162 §3.1.3: UNCHANGEDSINCE 0 fails for every message,
		// since each has a MODSEQ of at least 1 (and the store reads 0
		// as "no condition").
		for _, u := range uids {
			if _, ok := c.messageMeta(u); ok {
				failed = append(failed, u)
			}
		}
	default:
		if changed, failed, err = c.updateFlags(uids, op, flags, unchangedSince); err != nil {
			return c.storeFailure(err), nil
		}
	}
	condstore := c.sess.IsEnabled(extCondstore)
	var changedUIDs []uint32
	if silent && condstore && !conditional {
		changedUIDs = make([]uint32, len(changed))
		for i := range changed {
			changedUIDs[i] = changed[i].UID
		}
		slices.Sort(changedUIDs)
	}
	var items metaItems
	if isUID || condstore {
		// RFC 7162 §3.2.4: with CONDSTORE enabled on a QRESYNC
		// server, UID and MODSEQ in every such FETCH.
		items = items.add(fetchUID)
	}
	if !silent {
		items = items.add(fetchFlags)
	}
	if condstore {
		items = items.add(fetchModSeq)
	}
	for _, r := range refs {
		isFailed := seqOf(failed, r.UID) > 0
		switch {
		case !silent:
			// RFC 3501 §6.4.6: the flags of each message, also those
			// whose flags did not change or that failed the
			// UNCHANGEDSINCE test (RFC 7162 §3.1.3, examples 7 and 10:
			// the client learns why).
		case condstore && !isFailed && (conditional || seqOf(changedUIDs, r.UID) > 0):
			// RFC 7162 §3.1.3: even .SILENT reports the new MODSEQ of
			// a conditional store; with CONDSTORE enabled a plain one
			// reports the messages it changed (example 14).
		default:
			continue
		}
		m, ok := c.messageMeta(r.UID)
		if !ok {
			continue
		}
		c.writeMetaFetch(r.Seq, &m, items)
	}
	if len(failed) > 0 {
		// RFC 7162 §3.1.3: MODIFIED lists UIDs for UID STORE, sequence
		// numbers for STORE.
		nums := failed
		if !isUID {
			nums = make([]uint32, 0, len(failed))
			for _, r := range refs {
				if seqOf(failed, r.UID) > 0 {
					nums = append(nums, r.Seq)
				}
			}
		}
		// One response code only: MODIFIED, which the client must
		// have, also when a message was gone (RFC 7162 §3.1.3 allows
		// it in a NO, example 11, or an OK, examples 8 to 10).
		return okCode("MODIFIED "+imap.UIDSetFromSorted(nums).String(), "Conditional STORE failed"), nil
	}
	if gone {
		return okCode("EXPUNGEISSUED", "Some of the requested messages no longer exist"), nil
	}
	return ok("STORE completed"), nil
}

// refsGone reports whether a message of refs (ascending, from the view)
// has been expunged from the mailbox while the session has not been told
// yet. One pass over the view under one lock.
func (c *conn) refsGone(refs []msgRef) bool {
	if len(refs) == 0 {
		return false
	}
	k, present := 0, 0
	c.view.Scan(func(u uint32, _ *store.MessageMeta) (bool, bool) {
		for k < len(refs) && refs[k].UID < u {
			k++
		}
		if k == len(refs) {
			return false, true
		}
		if refs[k].UID == u {
			present++
			k++
		}
		return false, k == len(refs)
	})
	return present < len(refs)
}

func (c *conn) cmdExpunge(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	return c.expunge(nil)
}

func (c *conn) cmdUIDExpunge(tag string) (*status, error) {
	set, err := c.readSet()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	refs, st := c.resolveSet(set, true)
	if st != nil {
		return st, nil
	}
	limit := make([]uint32, len(refs))
	for i, r := range refs {
		limit[i] = r.UID
	}
	if len(limit) == 0 {
		return ok("UID EXPUNGE completed"), nil
	}
	return c.expunge(limit)
}

func (c *conn) expunge(limit []uint32) (*status, error) {
	if c.view.ReadOnly() {
		return no("READ-ONLY", "Mailbox is read-only"), nil
	}
	gone, err := c.expungeDeleted(limit)
	if err != nil {
		return c.storeFailure(err), nil
	}
	// The EXPUNGE (or VANISHED) responses go out with the update report
	// before the tagged OK, which then carries HIGHESTMODSEQ with QRESYNC
	// (RFC 7162 §3.2.7).
	st := ok("EXPUNGE completed")
	st.highestModSeq = len(gone) > 0
	return st, nil
}

// expungeDeleted removes the messages of the view that have \Deleted
// (only those in limit, when it is not nil: UID EXPUNGE, RFC 4315).
func (c *conn) expungeDeleted(limit []uint32) ([]uint32, error) {
	id := c.view.MailboxID()
	var uids []uint32
	c.view.Scan(func(u uint32, m *store.MessageMeta) (bool, bool) {
		if (limit == nil || seqOf(limit, u) > 0) && hasFlag(m.Flags, imap.FlagDeleted) {
			uids = append(uids, u)
		}
		return false, false
	})
	if len(uids) == 0 {
		return nil, nil
	}
	ctx := c.writeContext()
	gone, err := c.s.store.Expunge(ctx, c.sess.UserID, id, uids)
	if err != nil {
		return nil, err
	}
	c.s.changed(ctx, id, 0)
	return gone, nil
}

func (c *conn) cmdCopy(tag string) (*status, error)    { return c.copyMove(false, false) }
func (c *conn) cmdUIDCopy(tag string) (*status, error) { return c.copyMove(true, false) }
func (c *conn) cmdMove(tag string) (*status, error)    { return c.copyMove(false, true) }
func (c *conn) cmdUIDMove(tag string) (*status, error) { return c.copyMove(true, true) }

func (c *conn) copyMove(isUID, move bool) (*status, error) {
	set, err := c.readSet()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	_, name, err := c.readMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	verb := "COPY"
	if move {
		verb = "MOVE"
		if c.view.ReadOnly() {
			return no("READ-ONLY", "Mailbox is read-only"), nil
		}
	}
	refs, st := c.resolveSet(set, isUID)
	if st != nil {
		return st, nil
	}
	ctx := c.ctx
	if len(refs) > 1 {
		ctx = c.commandContext() // may take a while: watch for the client leaving
	}
	dst, err := c.s.store.MailboxByName(ctx, c.sess.UserID, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return no("TRYCREATE", "No such mailbox"), nil
		}
		return c.storeFailure(err), nil
	}
	if len(refs) == 0 {
		return ok(verb + " completed"), nil
	}
	if c.refsGone(refs) {
		// A message the client named, by sequence number or by a UID
		// the view still lists, has been expunged by another session:
		// nothing is copied (RFC 2180 §4.4.1, COPY is all or nothing;
		// RFC 6851 §3.3, MOVE answers like COPY). The EXPUNGE goes out
		// before the tagged NO (RFC 3501 §7.4.1 allows it here).
		return expungeIssued(), nil
	}
	uids := make([]uint32, len(refs))
	for i, r := range refs {
		uids[i] = r.UID
	}
	var src, dsts []uint32
	var after store.Mailbox
	if move {
		src, dsts, after, err = c.s.store.MoveMessages(c.writeContext(), c.sess.UserID, c.view.MailboxID(), dst.ID, uids)
	} else {
		src, dsts, after, err = c.s.store.CopyMessages(c.writeContext(), c.sess.UserID, c.view.MailboxID(), dst.ID, uids)
	}
	if err != nil {
		return c.storeFailure(err), nil
	}
	c.s.changed(ctx, dst.ID, after.HighestModSeq)
	code := ""
	if len(src) > 0 {
		// RFC 4315 COPYUID; for MOVE it comes untagged before the
		// EXPUNGEs (RFC 6851 §4.3).
		code = "COPYUID " + itoa(after.UIDValidity) + " " + imap.UIDSetFromSorted(src).String() + " " + imap.UIDSetFromSorted(dsts).String()
	}
	if move {
		c.s.changed(ctx, c.view.MailboxID(), 0)
		if code != "" {
			c.enc.Star().Atom("OK").SP().Atom("[" + code + "] ").Text("Moved").CRLF()
		}
		// RFC 6851 §4.4: "If at least one message was moved, the server
		// MUST send the updated per-mailbox modification sequence using
		// the HIGHESTMODSEQ response code"; the loop adds it to the
		// tagged OK, after the EXPUNGE/VANISHED responses, for clients
		// that enabled CONDSTORE (RFC 7162 §3.1.2).
		st := ok("MOVE completed")
		st.highestModSeq = len(src) > 0
		return st, nil
	}
	return okCode(code, "COPY completed"), nil
}

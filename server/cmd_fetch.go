package server

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"slices"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/server/imapmime"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/wire"
)

// fetchChunk is the number of messages whose data is loaded from the store
// at a time: responses stream out chunk by chunk, memory stays bounded.
const fetchChunk = 256

func (c *conn) cmdFetch(tag string) (*status, error)    { return c.fetch(false) }
func (c *conn) cmdUIDFetch(tag string) (*status, error) { return c.fetch(true) }

// fetchNeeds says what a FETCH must load for each message.
type fetchNeeds struct {
	info      bool // MessageInfos: date, size or structure
	structure bool // the part tree (ENVELOPE, BODY, BODYSTRUCTURE, sections)
	bytes     bool // the raw message (sections)
	seen      bool // a non-PEEK section sets \Seen
	flags     bool // FLAGS asked for
}

func (r *fetchRequest) needs() fetchNeeds {
	var n fetchNeeds
	for _, a := range r.atts {
		switch a.kind {
		case fetchFlags:
			n.flags = true
		case fetchInternalDate, fetchRFC822Size:
			n.info = true
		case fetchEnvelope, fetchBody, fetchBodyStructure:
			n.info, n.structure = true, true
		case fetchSection:
			n.bytes = true
			if !wholeMessage(a.section) {
				n.info, n.structure = true, true
			}
			if !a.peek {
				n.seen = true
			}
		}
	}
	return n
}

// wholeMessage reports whether section s is the whole message (BODY[],
// RFC822), which is read without the part tree.
func wholeMessage(s message.Section) bool {
	return s.Specifier == message.SpecNone && len(s.Path) == 0
}

func (c *conn) fetch(isUID bool) (*status, error) {
	req, err := parseFetch(c.dec)
	if err != nil {
		return nil, err
	}
	// RFC 7162 §3.2.6, draft-melnikov-imap-expunged-01 §3.1.
	if (req.vanished || req.reportExpunges) && !isUID {
		return bad("VANISHED and REPORTEXPUNGES are allowed with UID FETCH only"), nil
	}
	if req.vanished && !c.sess.IsEnabled(extQresync) {
		return bad("VANISHED needs ENABLE QRESYNC first"), nil
	}
	if req.vanished && !req.hasChangedSince {
		return bad("VANISHED needs CHANGEDSINCE"), nil
	}
	hasUID, hasModSeq := false, false
	for _, a := range req.atts {
		hasUID = hasUID || a.kind == fetchUID
		hasModSeq = hasModSeq || a.kind == fetchModSeq
	}
	if req.hasChangedSince && !hasModSeq {
		// RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
		req.atts = append(req.atts, fetchAtt{kind: fetchModSeq, name: "MODSEQ"})
		hasModSeq = true
	}
	refs, st := c.resolveSet(req.set, isUID)
	if st != nil {
		return st, nil // a refused command enables nothing
	}
	if hasModSeq {
		c.enableCondstore()
	}
	if req.reportExpunges {
		c.sess.enable(extExpunged)
	}
	if isUID && !hasUID {
		// RFC 3501 §6.4.8: UID FETCH always reports the UID.
		req.atts = append([]fetchAtt{{kind: fetchUID, name: "UID"}}, req.atts...)
		hasUID = true
	}
	var gone imap.SeqSet
	if req.vanished || req.reportExpunges {
		// "*" is UIDNEXT-1 here, not the highest UID in the view, so
		// that the expunge of the last message is reported.
		q := vanishedQuery{set: req.set, since: req.changedSince, useSince: req.hasChangedSince, minUID: 1}
		if gone, err = c.vanished(q); err != nil {
			return c.storeFailure(err), nil
		}
	}
	if req.vanished && len(gone) > 0 {
		// Before any FETCH response (RFC 7162 §3.2.6).
		c.writeVanished(true, gone)
	}
	// lost: a message of refs has been expunged by another session and
	// this one has not been told yet (see below).
	lost := false
	if req.hasChangedSince {
		// One pass under one lock; refs ascend like the view.
		k, present := 0, 0
		changed := c.view.Scan(func(u uint32, m *store.MessageMeta) (bool, bool) {
			for k < len(refs) && refs[k].UID < u {
				k++
			}
			if k == len(refs) {
				return false, true
			}
			if refs[k].UID != u {
				return false, false
			}
			present++
			return m.ModSeq > req.changedSince, false
		})
		lost = present < len(refs)
		refs = refs[:0]
		for _, ch := range changed {
			refs = append(refs, msgRef{Seq: ch.Seq, UID: ch.Meta.UID})
		}
	}
	need := req.needs()
	if c.sess.Selected == nil || c.sess.Selected.ReadOnly {
		need.seen = false // EXAMINE: nothing changes (RFC 3501 §6.3.2)
	}
	if !need.info && !need.seen && !need.bytes {
		var metaGone bool
		st, metaGone, err = c.fetchMeta(req, refs)
		lost = lost || metaGone
	} else {
		f := fetcher{c: c, req: req, need: need, ctx: context.Background(),
			condstore: c.sess.IsEnabled(extCondstore), hasUID: hasUID, hasModSeq: hasModSeq}
		// Deferred: the buffer's share of the memory budget comes back
		// even after a panic.
		defer f.release()
		for len(refs) > 0 && st == nil && err == nil {
			n := min(len(refs), fetchChunk)
			st, err = f.chunk(refs[:n])
			refs = refs[n:]
		}
		if st == nil && err == nil {
			st = ok("FETCH completed")
		}
		lost = lost || f.gone
	}
	if err == nil && st.typ == "OK" && lost && !isUID {
		// RFC 2180 §4.1, RFC 5530 EXPUNGEISSUED: the data of the
		// messages that still exist went out; the client learns that
		// the others are gone, and the EXPUNGE comes after a later
		// command (never during FETCH, RFC 3501 §7.4.1). A UID FETCH
		// simply leaves out UIDs that do not exist (RFC 3501 §6.4.8).
		st = expungeIssued()
	}
	if err == nil && st.typ == "OK" && req.reportExpunges && len(gone) > 0 {
		// After the FETCH responses, as in the draft's examples; no
		// UID in it is in the session's view (see docs/reconnect.md).
		c.writeExpunged(gone)
	}
	return st, err
}

// expungeIssued is the answer to a command that named, by sequence
// number, a message another session has expunged and this one has not
// been told of yet (RFC 2180 §4, RFC 5530).
func expungeIssued() *status {
	return no("EXPUNGEISSUED", "Some of the requested messages no longer exist")
}

// fetchMeta answers a FETCH of UID and FLAGS only, from the in-memory
// index, without allocating per message. gone says whether a message of
// refs was left out because it has been expunged.
func (c *conn) fetchMeta(req *fetchRequest, refs []msgRef) (st *status, gone bool, err error) {
	items := metaItemsOf(req.atts)
	for _, r := range refs {
		m, ok := c.messageMeta(r.UID)
		if !ok {
			gone = true // expunged by another session, not yet reported
			continue
		}
		c.writeMetaFetch(r.Seq, &m, items)
		if err := c.enc.Err(); err != nil {
			return nil, gone, err
		}
	}
	return ok("FETCH completed"), gone, c.enc.Err()
}

// fetcher runs a FETCH that needs more than the index.
type fetcher struct {
	c    *conn
	req  *fetchRequest
	need fetchNeeds
	ctx  context.Context
	// condstore: CONDSTORE is enabled, so a message whose \Seen this
	// FETCH sets is reported with UID and MODSEQ too (RFC 7162 §3.2.4);
	// hasUID, hasModSeq: the request has them.
	condstore, hasUID, hasModSeq bool
	// gone: a message was left out because it has been expunged.
	gone bool

	// per chunk, reused
	msgs []fetchMsg
	uids []uint32
	buf  *[]byte // for bodies read in pieces (buffer)
	// bufTaken: buf is a pooled buffer counted against the memory
	// budget (else a small one of its own).
	bufTaken bool
}

// fetchMsg is one message of a chunk.
type fetchMsg struct {
	ref          msgRef
	meta         store.MessageMeta
	info         *msgData // date, size, structure (when need.info)
	flagsChanged bool     // \Seen was just set: FLAGS go in the response
}

func (f *fetcher) chunk(refs []msgRef) (*status, error) {
	c := f.c
	f.msgs = f.msgs[:0]
	for _, r := range refs {
		m, ok := c.messageMeta(r.UID)
		if !ok {
			f.gone = true // expunged by another session, not yet reported
			continue
		}
		f.msgs = append(f.msgs, fetchMsg{ref: r, meta: m})
	}
	if len(f.msgs) == 0 {
		return nil, nil
	}
	if f.need.seen {
		// RFC 3501 §6.4.5: BODY[...] sets \Seen, and the changed flags
		// SHOULD be in the FETCH response; set before answering.
		f.uids = f.uids[:0]
		for _, m := range f.msgs {
			if !hasFlag(m.meta.Flags, imap.FlagSeen) {
				f.uids = append(f.uids, m.ref.UID)
			}
		}
		if len(f.uids) > 0 {
			changed, _, err := c.updateFlags(f.uids, store.FlagsAdd, []string{imap.FlagSeen}, 0)
			if err != nil {
				return c.storeFailure(err), nil
			}
			// Ascending by the store's contract; the merge below needs it.
			slices.SortFunc(changed, func(a, b store.MessageMeta) int { return cmp.Compare(a.UID, b.UID) })
			j := 0
			for i := range f.msgs {
				m := &f.msgs[i]
				for j < len(changed) && changed[j].UID < m.ref.UID {
					j++
				}
				if j < len(changed) && changed[j].UID == m.ref.UID {
					m.flagsChanged = true
					if cur, ok := c.messageMeta(m.ref.UID); ok {
						m.meta = cur
					} else {
						m.meta = changed[j]
					}
				}
			}
		}
	}
	if f.need.info {
		// The message cache first; the store for the rest.
		cache, sel := c.s.msgs, c.sess.Selected
		f.uids = f.uids[:0]
		for i := range f.msgs {
			m := &f.msgs[i]
			if m.info = cache.get(msgKey{sel.MailboxID, sel.UIDValidity, m.ref.UID, msgInfo}); m.info == nil {
				f.uids = append(f.uids, m.ref.UID)
			}
		}
		if len(f.uids) > 0 {
			infos, err := c.s.store.MessageInfos(f.ctx, c.sess.UserID, sel.MailboxID, f.uids)
			if err != nil {
				return c.storeFailure(err), nil
			}
			j := 0
			for i := range f.msgs {
				m := &f.msgs[i]
				if m.info != nil {
					continue
				}
				for j < len(infos) && infos[j].UID < m.ref.UID {
					j++
				}
				if j < len(infos) && infos[j].UID == m.ref.UID {
					in := &infos[j]
					// A copy of its own: the store's structures share
					// one buffer per call, which an entry must not pin.
					m.info = &msgData{date: in.InternalDate, size: in.Size, structure: bytes.Clone(in.Structure)}
					cache.put(msgKey{sel.MailboxID, sel.UIDValidity, m.ref.UID, msgInfo}, m.info)
				}
			}
		}
	}
	for i := range f.msgs {
		m := &f.msgs[i]
		if f.need.info && m.info == nil {
			f.gone = true // expunged meanwhile
			continue
		}
		if storeErr, err := f.write(m); storeErr != nil || err != nil {
			var lim *wire.LimitError
			if errors.As(storeErr, &lim) {
				return no(lim.Code, lim.Msg), nil
			}
			if storeErr != nil {
				return c.storeFailure(storeErr), nil
			}
			return nil, err
		}
	}
	return nil, c.enc.Err()
}

// write answers one message. A store failure (before anything is written)
// comes back in storeErr, a write failure in err.
func (f *fetcher) write(m *fetchMsg) (storeErr, err error) {
	c, enc := f.c, f.c.enc
	var (
		root     *message.Part
		body     store.Body // the raw message, open (sections)
		bodyGone bool       // the body could not be read: sections are NIL
	)
	if f.need.structure && len(m.info.structure) > 0 {
		if p, err := c.s.parts.get(m.info.structure); err == nil {
			root = p
		} else {
			c.log.Warn("unreadable cached structure", "uid", m.ref.UID, "err", err)
		}
	}
	if f.need.bytes || (f.need.structure && root == nil) {
		b, err := f.openBody(m.ref.UID)
		switch {
		case err == nil:
			body = b
			defer b.Close()
		case errors.Is(err, store.ErrNotFound):
			if m.info == nil {
				// Expunged meanwhile, as a missing info says when
				// infos are loaded: no answer for the message.
				f.gone = true
				return nil, nil
			}
			bodyGone = true
		default:
			return err, nil
		}
		if root == nil && f.need.structure && !bodyGone {
			// Parsed whole: the bytes wait for their share of the
			// memory budget.
			give, err := f.holdMemory(body.Size())
			if err != nil {
				return err, nil
			}
			raw, err := readBody(body)
			if err != nil {
				give()
				return err, nil
			}
			root = parseOrEmpty(raw)
			give()
		}
	}
	if root == nil && f.need.structure {
		root = parseOrEmpty(nil)
	}
	if body != nil && !bodyGone {
		// Headers filtered by HEADER.FIELDS are read whole: their
		// share of the budget is had before the response begins.
		give, err := f.holdMemory(f.filteredBytes(root, body.Size()))
		if err != nil {
			return err, nil
		}
		defer give()
	}

	enc.Star().Number(m.ref.Seq).Atom(" FETCH (")
	// Items the client did not ask for that report setting \Seen come
	// first, after the UID that UID FETCH puts first: FLAGS, and with
	// CONDSTORE also UID and MODSEQ.
	extraUID := m.flagsChanged && f.condstore && !f.hasUID
	extraFlags := m.flagsChanged && !f.need.flags
	extraModSeq := m.flagsChanged && f.condstore && !f.hasModSeq
	extraAt := 0
	if f.req.atts[0].kind == fetchUID {
		extraAt = 1
	}
	for i := range f.req.atts {
		a := &f.req.atts[i]
		if i > 0 {
			enc.SP()
		}
		if i == extraAt {
			if extraUID {
				enc.Atom("UID ").Number(m.ref.UID).SP()
			}
			if extraFlags {
				enc.Atom("FLAGS ")
				c.writeFlags(m.meta)
				enc.SP()
			}
			if extraModSeq {
				c.writeModSeq(m.meta.ModSeq)
				enc.SP()
			}
		}
		if a.kind == fetchModSeq {
			c.writeModSeq(m.meta.ModSeq)
			continue
		}
		enc.Atom(a.name).SP()
		switch a.kind {
		case fetchUID:
			enc.Number(m.ref.UID)
		case fetchFlags:
			c.writeFlags(m.meta)
		case fetchInternalDate:
			enc.DateTime(m.info.date)
		case fetchRFC822Size:
			enc.Number64(uint64(m.info.size))
		case fetchEnvelope:
			imapmime.WriteEnvelope(enc, root)
		case fetchBody:
			imapmime.WriteBodyStructure(enc, root, false)
		case fetchBodyStructure:
			imapmime.WriteBodyStructure(enc, root, true)
		case fetchSection:
			if bodyGone {
				enc.NIL()
				break
			}
			if storeErr := f.writeSection(m, a, body, &root); storeErr != nil {
				// Mid-response: the line cannot be taken back.
				return nil, storeErr
			}
		}
	}
	enc.Special(')').CRLF()
	return nil, enc.Err()
}

// openBody opens the body of message uid of the selected mailbox: from
// the message cache, or from the store, keeping a small body in the cache.
func (f *fetcher) openBody(uid uint32) (store.Body, error) {
	c := f.c
	sel := c.sess.Selected
	k := msgKey{sel.MailboxID, sel.UIDValidity, uid, msgBody}
	if d := c.s.msgs.get(k); d != nil {
		return cachedBody(d.body), nil
	}
	b, err := c.s.store.OpenBody(f.ctx, c.sess.UserID, sel.MailboxID, uid)
	if err == nil && c.s.msgs != nil && b.Size() <= maxCachedBody {
		if all := b.Bytes(); all != nil {
			// Copied: Bytes is valid until Close only.
			c.s.msgs.put(k, &msgData{body: bytes.Clone(all)})
		}
	}
	return b, err
}

// writeSection writes BODY[section]<partial> of an open body as a
// literal, reading only the bytes it needs: the section's range, sent in
// pieces (a large message is never in memory whole), or the header for
// HEADER.FIELDS. root may be replaced by a fresh parse when the cached
// one does not fit the bytes. An error is a failure to read the body.
func (f *fetcher) writeSection(m *fetchMsg, a *fetchAtt, body store.Body, root **message.Part) error {
	c, enc := f.c, f.c.enc
	size := body.Size()
	var sp message.Span
	var err error
	if wholeMessage(a.section) {
		sp = message.Span{Start: 0, End: int(size)}
	} else {
		sp, err = message.Locate(*root, a.section, int(size))
	}
	if errors.Is(err, message.ErrMismatch) {
		// The cached tree does not fit the bytes: parse them.
		c.log.Warn("cached structure does not match the message", "uid", m.ref.UID)
		raw, rerr := readBody(body)
		if rerr != nil {
			return rerr
		}
		*root = parseOrEmpty(raw)
		sp, err = message.Locate(*root, a.section, int(size))
	}
	if err != nil {
		c.log.Warn("extracting section", "uid", m.ref.UID, "err", err)
		sp = message.Span{}
	}
	if sp.Fields {
		hdr := make([]byte, sp.End-sp.Start)
		if _, err := body.ReadAt(hdr, int64(sp.Start)); err != nil && !(err == io.EOF && sp.End == int(size)) {
			return err
		}
		data := message.FilterFields(hdr, a.section)
		if a.partial {
			data = partialBytes(data, a.origin, a.count)
		}
		if len(data) == 0 {
			enc.Atom(`""`)
		} else {
			enc.Literal(data)
		}
		return nil
	}
	start, end := int64(sp.Start), int64(sp.End)
	if a.partial {
		// RFC 3501 §6.4.5: <origin.count>, empty past the end.
		start = min(start+int64(a.origin), end)
		end = min(start+int64(a.count), end)
	}
	switch {
	case start == end:
		enc.Atom(`""`)
	case body.Bytes() != nil:
		enc.Literal(body.Bytes()[start:end])
	default:
		enc.LiteralFrom(body, start, end-start, f.buffer())
	}
	return nil
}

// buffer returns the fetch's buffer for reading bodies in pieces, taken
// from the server's pool on first use (release gives it back) and
// counted against the memory budget; when the budget is spent, a small
// buffer of its own, so that a FETCH never waits for memory to send a
// body.
func (f *fetcher) buffer() []byte {
	if f.buf == nil {
		if !f.c.s.mem.tryTake(bodyBufSize) {
			b := make([]byte, smallBodyBufSize)
			f.buf = &b
			return b
		}
		f.bufTaken = true
		if b, ok := f.c.s.bodyBufs.Get().(*[]byte); ok {
			f.buf = b
		} else {
			b := make([]byte, bodyBufSize)
			f.buf = &b
		}
	}
	return *f.buf
}

// release returns the buffer to the pool.
func (f *fetcher) release() {
	if f.buf != nil && f.bufTaken {
		f.c.s.bodyBufs.Put(f.buf)
		f.c.s.mem.give(bodyBufSize)
	}
	f.buf, f.bufTaken = nil, false
}

// bodyBufSize is the piece in which a body kept outside memory is read
// and written to the client: large enough that a 2 MB message takes 16
// reads and writes, small enough to pool. smallBodyBufSize is the piece
// when the memory budget is spent.
const (
	bodyBufSize      = 128 << 10
	smallBodyBufSize = 8 << 10
)

// wholeFree is the size up to which a FETCH reads a body or header
// whole without asking the memory budget (message cache entries and
// bodies kept in the database are of that order).
const wholeFree = 64 << 10

// holdMemory takes n bytes of the memory budget for a body or header
// read whole, waiting up to the write timeout (a NO [LIMIT] for the
// FETCH then), and returns the function that gives them back.
func (f *fetcher) holdMemory(n int64) (give func(), err error) {
	if n <= wholeFree {
		return func() {}, nil
	}
	// The fetch's own buffer is given back first: a FETCH alone may
	// have more than the whole budget (memBudget.take), not one that
	// holds a part of it already.
	f.release()
	mem := f.c.s.mem
	if err := mem.takeWithin(f.ctx, n, f.c.s.opts.WriteTimeout); err != nil {
		return nil, err
	}
	return func() { mem.give(n) }, nil
}

// filteredBytes is the memory the HEADER.FIELDS sections of the request
// take for a message of size bytes: each header is read whole, and what
// is kept of it is held until it is written.
func (f *fetcher) filteredBytes(root *message.Part, size int64) int64 {
	var n int64
	for i := range f.req.atts {
		a := &f.req.atts[i]
		if a.kind != fetchSection || root == nil {
			continue
		}
		if sp := a.section.Specifier; sp != message.SpecHeaderFields && sp != message.SpecHeaderFieldsNot {
			continue
		}
		if span, err := message.Locate(root, a.section, int(size)); err == nil && span.Fields {
			n += 2 * int64(span.End-span.Start)
		}
	}
	return n
}

// readBody reads all of an open body.
func readBody(b store.Body) ([]byte, error) {
	if all := b.Bytes(); all != nil {
		return all, nil
	}
	raw := make([]byte, b.Size())
	n, err := b.ReadAt(raw, 0)
	if n == len(raw) {
		return raw, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// partialBytes returns the <origin.count> substring of data (RFC 3501
// §6.4.5): empty when origin is beyond the end.
func partialBytes(data []byte, origin, count uint32) []byte {
	if uint64(origin) >= uint64(len(data)) {
		return nil
	}
	data = data[origin:]
	if uint64(count) < uint64(len(data)) {
		data = data[:count]
	}
	return data
}

// parseOrEmpty parses raw; an empty message (or none) gets the tree of an
// empty text/plain message, so that ENVELOPE and BODYSTRUCTURE still
// answer.
func parseOrEmpty(raw []byte) *message.Part {
	if p, err := message.Parse(raw); err == nil {
		return p
	}
	p, _ := message.Parse([]byte("\r\n"))
	if p == nil {
		p = &message.Part{Type: "TEXT", Subtype: "PLAIN", Encoding: "7BIT"}
	}
	p.End, p.BodyStart, p.Lines = 0, 0, 0
	return p
}

package server

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
)

// SEARCH evaluation.
//
// A search runs in up to three stages per chunk of messages, each with
// more data than the one before, so that the costly data is loaded only
// for messages the cheaper keys have not already decided:
//
//   - costMem: flags, \Recent, sequence numbers and UIDs, from the shared
//     in-memory index (no store access);
//   - costInfo: internal date, size and the cached MIME structure (whose
//     envelope holds the Date: header), from store.MessageInfos for the
//     whole chunk in one call;
//   - costHeader: the message's header fields, from the message cache
//     (msgcache.go) or store.MessagePrefixes for the chunk in one call:
//     FROM, SUBJECT or HEADER read the header, not the message. The headers the store keeps apart are asked for
//     first, before the infos; the others are cut at the length the
//     cached structure gives, after them;
//   - costBody: the text, and the header when the structure is not
//     cached, from store.MessageBody, one message at a time.
//
// Keys evaluate to true, false or unknown (Kleene logic): a key whose data
// is not loaded yet is unknown, NOT unknown is unknown, AND with a false
// key is false and OR with a true key is true whatever the unknowns. Only
// the messages still unknown after a stage go on to the next.

// tri is a three-valued truth value.
type tri uint8

const (
	tFalse tri = iota
	tTrue
	tUnknown
)

func triOf(b bool) tri {
	if b {
		return tTrue
	}
	return tFalse
}

// Evaluation costs, in the order the stages load data.
const (
	costMem = iota
	costInfo
	costHeader
	costBody
)

// searchChunk is how many messages a stage handles at once: one
// MessageInfos call each, and a bound on the memory a search holds.
const searchChunk = 512

// keyCost is the stage from which k can be decided.
func keyCost(k *searchKey) int {
	switch k.op {
	case opBefore, opOn, opSince, opSentBefore, opSentOn, opSentSince, opLarger, opSmaller:
		return costInfo
	case opHeader:
		return costHeader
	case opBody, opText:
		return costBody
	case opAnd, opOr, opNot:
		c := costMem
		for _, kid := range k.kids {
			c = max(c, keyCost(kid))
		}
		return c
	}
	return costMem
}

// usesRecent reports whether k needs to know which messages are \Recent.
func usesRecent(k *searchKey) bool { return usesOp(k, opRecent) }

// usesOp reports whether op occurs in k.
func usesOp(k *searchKey, op searchOp) bool {
	if k.op == op {
		return true
	}
	for _, kid := range k.kids {
		if usesOp(kid, op) {
			return true
		}
	}
	return false
}

// prepareSearch readies a parsed search for a view of maxSeq messages
// whose highest UID is maxUID: sets are resolved ("*" included) and AND
// lists are flattened and ordered cheapest key first, so that matching
// stops at a cheap false before it looks at a costly key.
func prepareSearch(k *searchKey, maxSeq, maxUID uint32) {
	switch k.op {
	case opSeq:
		k.ranges = k.set.Resolve(maxSeq)
	case opUID:
		k.ranges = k.set.Resolve(maxUID)
	case opAnd:
		var flat []*searchKey
		for _, kid := range k.kids {
			if kid.op == opAnd {
				flat = append(flat, kid.kids...)
			} else {
				flat = append(flat, kid)
			}
		}
		k.kids = flat
		for _, kid := range k.kids {
			prepareSearch(kid, maxSeq, maxUID)
		}
		slices.SortStableFunc(k.kids, func(a, b *searchKey) int { return keyCost(a) - keyCost(b) })
	default:
		for _, kid := range k.kids {
			prepareSearch(kid, maxSeq, maxUID)
		}
	}
}

// inRanges reports whether n is in ranges (sorted, merged, resolved).
func inRanges(ranges []imap.NumRange, n uint32) bool {
	i := sort.Search(len(ranges), func(i int) bool { return ranges[i].Stop >= n })
	return i < len(ranges) && ranges[i].Start <= n
}

// searchMsg is one message being matched, with what has been loaded for
// it so far and the values derived from that, computed at most once.
type searchMsg struct {
	seq, uid uint32
	meta     store.MessageMeta
	recent   bool
	// level is the costliest stage whose data is loaded.
	level int
	info  *store.MessageInfo // from costInfo
	hdr   []byte             // from costHeader: the top-level header
	raw   []byte             // from costBody
	res   tri

	part     *message.Part
	partDone bool
	sent     int64 // civil date of the Date: header, -1 when unusable
	sentDone bool
	headers  map[string][]string // folded header values by lower-case name
	hdrText  string              // folded header text, for TEXT
	hdrDone  bool
	body     []string // folded text parts
	bodyDone bool
}

// getPart returns the message's MIME structure: the cached one when the
// infos are loaded, else parsed from the raw message. known is false when
// neither is loaded yet.
func (m *searchMsg) getPart() (p *message.Part, known bool) {
	if m.partDone {
		return m.part, true
	}
	if m.info != nil && m.info.Structure != nil {
		if p, err := message.Unmarshal(m.info.Structure); err == nil {
			m.part, m.partDone = p, true
			return p, true
		}
	}
	if m.raw == nil {
		return nil, false
	}
	m.part, _ = message.Parse(m.raw)
	m.partDone = true
	return m.part, true
}

// sentDate returns the civil date of the message's Date: header in its
// own zone, or -1 when the message has none or it does not parse.
func (m *searchMsg) sentDate() (int64, bool) {
	if m.sentDone {
		return m.sent, true
	}
	p, known := m.getPart()
	if !known {
		return 0, false
	}
	m.sent, m.sentDone = -1, true
	if p != nil && p.Envelope != nil && p.Envelope.Date != "" {
		t, err := mail.ParseDate(p.Envelope.Date)
		if err != nil {
			// A date without a zone is common enough; the zone does
			// not matter here.
			t, err = mail.ParseDate(p.Envelope.Date + " +0000")
		}
		if err == nil {
			m.sent = civilDate(t)
		}
	}
	return m.sent, true
}

// headerValues returns the folded, decoded values of the fields called
// name.
func (m *searchMsg) headerValues(p *message.Part, name string) []string {
	key := strings.ToLower(name)
	if vs, ok := m.headers[key]; ok {
		return vs
	}
	// An address field also matches its addresses without comments
	// and folding (message.AddressValues).
	values := message.HeaderValues
	if message.IsAddressField(name) {
		values = message.AddressValues
	}
	var vs []string
	if p != nil {
		vs = values(m.raw, p, name)
	} else {
		// m.hdr is the bytes of the message's header and no more.
		vs = values(m.hdr, &message.Part{BodyStart: len(m.hdr), End: len(m.hdr)}, name)
	}
	for i, v := range vs {
		vs[i] = foldString(v)
	}
	if m.headers == nil {
		m.headers = make(map[string][]string)
	}
	m.headers[key] = vs
	return vs
}

// headerText returns the folded text of the message's header and of the
// headers of the messages it encapsulates: raw, and each field again
// with its RFC 2047 words decoded.
func (m *searchMsg) headerText(root *message.Part) string {
	if m.hdrDone {
		return m.hdrText
	}
	m.hdrDone = true
	var b strings.Builder
	root.Walk(func(p *message.Part) bool {
		if p != root && p.Envelope == nil {
			return true // a MIME part: only message headers count
		}
		if p.Start < 0 || p.Start > p.BodyStart || p.BodyStart > len(m.raw) {
			return true
		}
		hdr := m.raw[p.Start:p.BodyStart]
		b.Write(hdr)
		for _, name := range fieldNames(hdr) {
			for _, v := range message.HeaderValues(m.raw, p, name) {
				b.WriteString("\n")
				b.WriteString(name)
				b.WriteString(": ")
				b.WriteString(v)
			}
		}
		b.WriteString("\n")
		return true
	})
	m.hdrText = foldString(b.String())
	return m.hdrText
}

// fieldNames returns the distinct field names of a raw header.
func fieldNames(hdr []byte) []string {
	var names []string
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i], hdr[i+1:]
		} else {
			hdr = nil
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		name := strings.TrimRight(string(line[:i]), " \t")
		if name == "" || slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) }) {
			continue
		}
		names = append(names, name)
	}
	return names
}

// bodyTexts returns the folded decoded text parts.
func (m *searchMsg) bodyTexts(p *message.Part) []string {
	if !m.bodyDone {
		m.bodyDone = true
		m.body = message.TextContent(m.raw, p)
		for i, t := range m.body {
			m.body[i] = foldString(t)
		}
	}
	return m.body
}

// matchKey evaluates k for m with what is loaded.
func matchKey(k *searchKey, m *searchMsg) tri {
	switch k.op {
	case opAll:
		return tTrue
	case opAnd:
		res := tTrue
		for _, kid := range k.kids {
			switch matchKey(kid, m) {
			case tFalse:
				return tFalse
			case tUnknown:
				res = tUnknown
			}
		}
		return res
	case opOr:
		res := tFalse
		for _, kid := range k.kids {
			switch matchKey(kid, m) {
			case tTrue:
				return tTrue
			case tUnknown:
				res = tUnknown
			}
		}
		return res
	case opNot:
		switch matchKey(k.kids[0], m) {
		case tTrue:
			return tFalse
		case tFalse:
			return tTrue
		}
		return tUnknown
	case opSeq:
		return triOf(inRanges(k.ranges, m.seq))
	case opUID:
		return triOf(inRanges(k.ranges, m.uid))
	case opFlag:
		return triOf(hasFlagFold(m.meta.Flags, k.flag))
	case opModSeq:
		return triOf(m.meta.ModSeq >= uint64(k.num))
	case opRecent:
		return triOf(m.recent)
	case opBefore, opOn, opSince:
		if m.info == nil {
			return tUnknown
		}
		return compareDate(k.op, civilDate(m.info.InternalDate), k.num)
	case opSentBefore, opSentOn, opSentSince:
		d, known := m.sentDate()
		if !known {
			return tUnknown
		}
		if d < 0 {
			return tFalse
		}
		return compareDate(k.op, d, k.num)
	case opLarger, opSmaller:
		if m.info == nil {
			return tUnknown
		}
		if k.op == opLarger {
			return triOf(m.info.Size > k.num)
		}
		return triOf(m.info.Size < k.num)
	case opHeader, opBody, opText:
		if m.raw == nil && (k.op != opHeader || m.hdr == nil) {
			return tUnknown
		}
		var p *message.Part // nil: the header alone is loaded (m.hdr)
		if m.raw != nil {
			if p, _ = m.getPart(); p == nil {
				return tFalse
			}
		}
		switch k.op {
		case opHeader:
			vs := m.headerValues(p, k.field)
			if k.value == "" {
				return triOf(len(vs) > 0)
			}
			return triOf(containsAny(vs, k.value))
		case opBody:
			return triOf(k.value == "" || containsAny(m.bodyTexts(p), k.value))
		default:
			return triOf(k.value == "" || strings.Contains(m.headerText(p), k.value) || containsAny(m.bodyTexts(p), k.value))
		}
	}
	return tFalse
}

func compareDate(op searchOp, d, ref int64) tri {
	switch op {
	case opBefore, opSentBefore:
		return triOf(d < ref)
	case opOn, opSentOn:
		return triOf(d == ref)
	}
	return triOf(d >= ref)
}

func containsAny(hay []string, needle string) bool {
	for _, h := range hay {
		if strings.Contains(h, needle) {
			return true
		}
	}
	return false
}

// hasFlagFold reports whether flags holds f: system flags in their
// canonical case as the store keeps them, keywords ASCII case-insensitively.
func hasFlagFold(flags []string, f string) bool {
	for _, x := range flags {
		if x == f || (len(x) == len(f) && strings.EqualFold(x, f)) {
			return true
		}
	}
	return false
}

// foldString maps s to a canonical form under Unicode simple case folding:
// each rune becomes the smallest rune of its folding orbit (so "k", "K"
// and KELVIN SIGN all become "K", "ſ" and "s" become "S"). Two strings
// match case-insensitively when their folded forms are equal, and a
// folded needle is a substring of a folded text when the needle occurs in
// the text case-insensitively.
func foldString(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf || ('a' <= c && c <= 'z') {
			break
		}
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune returns the smallest rune of r's simple case folding orbit.
func foldRune(r rune) rune {
	low := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < low {
			low = f
		}
	}
	return low
}

// searchMessages returns the messages of the view that match k, ascending,
// or the status to answer when the store fails.
func (c *conn) searchMessages(k *searchKey) ([]msgRef, *status) {
	refs := c.allRefs()
	if len(refs) == 0 {
		return nil, nil
	}
	prepareSearch(k, uint32(len(refs)), refs[len(refs)-1].UID)
	need := keyCost(k)
	recent := usesRecent(k)
	var out []msgRef
	if need == costMem {
		// Flags, sets and \Recent only: the in-memory index answers.
		var m searchMsg
		for _, r := range refs {
			meta, ok := c.messageMeta(r.UID)
			if !ok {
				continue // expunged meanwhile
			}
			m = searchMsg{seq: r.Seq, uid: r.UID, meta: meta}
			if recent {
				m.recent = c.isRecent(meta.UID)
			}
			if matchKey(k, &m) == tTrue {
				out = append(out, r)
			}
		}
		return out, nil
	}
	ctx := context.Background()
	sel := c.sess.Selected
	msgs := make([]searchMsg, 0, searchChunk)
	pending := make([]uint32, 0, searchChunk)
	var reqs []store.PrefixRequest // the header stage's
	var idx []int
	for start := 0; start < len(refs); start += searchChunk {
		chunk := refs[start:min(start+searchChunk, len(refs))]
		msgs, pending = msgs[:0], pending[:0]
		for _, r := range chunk {
			meta, ok := c.messageMeta(r.UID)
			if !ok {
				continue
			}
			m := searchMsg{seq: r.Seq, uid: r.UID, meta: meta}
			if recent {
				m.recent = c.isRecent(meta.UID)
			}
			m.res = matchKey(k, &m)
			if m.res == tUnknown {
				pending = append(pending, r.UID)
			}
			msgs = append(msgs, m)
		}
		if need == costHeader && len(pending) > 0 {
			// Headers the store keeps apart, asked for before any
			// infos: a header key alone is then decided without them.
			// The message cache answers for the headers it holds.
			reqs, idx = reqs[:0], idx[:0]
			for i := range msgs {
				m := &msgs[i]
				if m.res != tUnknown {
					continue
				}
				if d := c.s.msgs.get(msgHeaderKey(sel, m.uid)); d != nil {
					m.hdr, m.level = d.body, costHeader
					m.res = matchKey(k, m)
					continue
				}
				reqs = append(reqs, store.PrefixRequest{UID: m.uid, N: -1})
				idx = append(idx, i)
			}
			var hdrs [][]byte
			if len(reqs) > 0 {
				var err error
				if hdrs, err = c.s.store.MessagePrefixes(ctx, c.sess.UserID, sel.MailboxID, reqs); err != nil {
					return nil, c.storeFailure(err)
				}
			}
			for j, i := range idx {
				m := &msgs[i]
				if hdrs[j] != nil {
					m.hdr, m.level = hdrs[j], costHeader
					m.res = matchKey(k, m)
					c.s.msgs.put(msgHeaderKey(sel, m.uid), &msgData{body: bytes.Clone(hdrs[j])})
				}
			}
			pending = pending[:0]
			for i := range msgs {
				if msgs[i].res == tUnknown {
					pending = append(pending, msgs[i].uid)
				}
			}
		}
		if len(pending) > 0 {
			infos, err := c.s.store.MessageInfos(ctx, c.sess.UserID, sel.MailboxID, pending)
			if err != nil {
				return nil, c.storeFailure(err)
			}
			j := 0
			for i := range msgs {
				m := &msgs[i]
				if m.res != tUnknown {
					continue
				}
				for j < len(infos) && infos[j].UID < m.uid {
					j++
				}
				if j == len(infos) || infos[j].UID != m.uid {
					m.res = tFalse // expunged meanwhile
					continue
				}
				m.info, m.level = &infos[j], costInfo
				m.res = matchKey(k, m)
			}
		}
		if need == costHeader {
			// The header alone decides, when its length is known.
			reqs, idx = reqs[:0], idx[:0]
			for i := range msgs {
				m := &msgs[i]
				if m.res != tUnknown || m.hdr != nil {
					continue
				}
				// The length from the cached structure, without
				// decoding the rest of it.
				if m.info == nil {
					continue
				}
				if n, ok := message.HeaderLen(m.info.Structure); ok {
					reqs = append(reqs, store.PrefixRequest{UID: m.uid, N: int64(n)})
					idx = append(idx, i)
				}
			}
			if len(reqs) > 0 {
				hdrs, err := c.s.store.MessagePrefixes(ctx, c.sess.UserID, sel.MailboxID, reqs)
				if err != nil {
					return nil, c.storeFailure(err)
				}
				for j, i := range idx {
					m := &msgs[i]
					if hdrs[j] == nil {
						m.res = tFalse // expunged meanwhile
						continue
					}
					c.s.msgs.put(msgHeaderKey(sel, m.uid), &msgData{body: bytes.Clone(hdrs[j])})
					m.hdr, m.level = hdrs[j], costHeader
					if m.res = matchKey(k, m); m.res != tUnknown {
						*m = searchMsg{seq: m.seq, uid: m.uid, res: m.res}
					}
				}
			}
		}
		for i := range msgs {
			m := &msgs[i]
			if m.res != tUnknown {
				continue
			}
			raw, err := c.s.store.MessageBody(ctx, c.sess.UserID, sel.MailboxID, m.uid)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					m.res = tFalse
					continue
				}
				return nil, c.storeFailure(err)
			}
			if raw == nil {
				raw = []byte{}
			}
			m.raw, m.level = raw, costBody
			if m.res = matchKey(k, m); m.res == tUnknown {
				m.res = tFalse
			}
			// Let the body and what was derived from it go.
			*m = searchMsg{seq: m.seq, uid: m.uid, res: m.res}
		}
		for i := range msgs {
			if msgs[i].res == tTrue {
				out = append(out, msgRef{Seq: msgs[i].seq, UID: msgs[i].uid})
			}
		}
	}
	return out, nil
}

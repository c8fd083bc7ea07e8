package pgbus

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/quickimap/quickimap/bus"
)

// A notification's payload is text (PostgreSQL requires it, and it must
// stay under 8000 bytes): a header and the hints, separated by spaces.
//
//	q1 <instance> <node> <hint> <hint> ...
//
// "q1" names the format. instance is the publishing Bus's random
// identity, by which a Bus skips its own notifications (a node name may
// be shared by mistake, or by a command-line process on the node's host).
// node is the publishing node's name, query-escaped. A hint is one of
//
//	c<mailbox>.<modseq>              MailboxChanged
//	g<mailbox>.<gone>                MailboxGone
//	s<user>.<generation>.<session>   SessionTaken (session query-escaped)
//	u<user>                          UserChanged
//
// with numbers in decimal. A receiver skips what it does not understand.

const (
	format = "q1"
	// maxPayload is the payload size aimed at: PostgreSQL's limit is
	// 8000 bytes, less a margin.
	maxPayload = 7900
)

// appendHint appends h's encoding to b.
func appendHint(b []byte, h bus.Hint) []byte {
	switch h.Kind {
	case bus.MailboxChanged:
		b = append(b, 'c')
		b = strconv.AppendInt(b, h.Mailbox, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, h.ModSeq, 10)
	case bus.MailboxGone:
		b = append(b, 'g')
		b = strconv.AppendInt(b, h.Mailbox, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(h.Gone), 10)
	case bus.SessionTaken:
		b = append(b, 's')
		b = strconv.AppendInt(b, h.User, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, h.Generation, 10)
		b = append(b, '.')
		b = append(b, url.QueryEscape(h.Session)...)
	case bus.UserChanged:
		b = append(b, 'u')
		b = strconv.AppendInt(b, h.User, 10)
	}
	return b
}

// encode packs hints into as few payloads as fit maxPayload each.
func encode(instance, node string, hints []bus.Hint) []string {
	header := format + " " + instance + " " + url.QueryEscape(node)
	var out []string
	b := []byte(header)
	n := 0 // hints in b
	var one []byte
	for _, h := range hints {
		one = appendHint(one[:0], h)
		if len(one) == 0 || len(header)+1+len(one) > maxPayload {
			continue // an unknown kind, or a session id no payload can hold
		}
		if len(b)+1+len(one) > maxPayload {
			out = append(out, string(b))
			b, n = append(b[:0], header...), 0
		}
		b = append(b, ' ')
		b = append(b, one...)
		n++
	}
	if n > 0 {
		out = append(out, string(b))
	}
	return out
}

// decode parses a payload. It returns the publisher's instance and the
// hints, with Node set; ok is false when the payload is not of this
// format.
func decode(payload string) (instance string, hints []bus.Hint, ok bool) {
	f := strings.Fields(payload)
	if len(f) < 3 || f[0] != format {
		return "", nil, false
	}
	instance = f[1]
	node, err := url.QueryUnescape(f[2])
	if err != nil {
		return "", nil, false
	}
	for _, t := range f[3:] {
		if h, ok := decodeHint(t); ok {
			h.Node = node
			hints = append(hints, h)
		}
	}
	return instance, hints, true
}

func decodeHint(t string) (bus.Hint, bool) {
	if t == "" {
		return bus.Hint{}, false
	}
	kind, rest := t[0], t[1:]
	switch kind {
	case 'c', 'g':
		a, b, ok := strings.Cut(rest, ".")
		if !ok {
			return bus.Hint{}, false
		}
		id, err1 := strconv.ParseInt(a, 10, 64)
		if kind == 'c' {
			ms, err2 := strconv.ParseUint(b, 10, 64)
			if err1 != nil || err2 != nil {
				return bus.Hint{}, false
			}
			return bus.Hint{Kind: bus.MailboxChanged, Mailbox: id, ModSeq: ms}, true
		}
		g, err2 := strconv.ParseUint(b, 10, 8)
		if err1 != nil || err2 != nil {
			return bus.Hint{}, false
		}
		return bus.Hint{Kind: bus.MailboxGone, Mailbox: id, Gone: uint8(g)}, true
	case 's':
		a, rest, ok1 := strings.Cut(rest, ".")
		g, sess, ok2 := strings.Cut(rest, ".")
		if !ok1 || !ok2 {
			return bus.Hint{}, false
		}
		user, err1 := strconv.ParseInt(a, 10, 64)
		gen, err2 := strconv.ParseUint(g, 10, 64)
		s, err3 := url.QueryUnescape(sess)
		if err1 != nil || err2 != nil || err3 != nil {
			return bus.Hint{}, false
		}
		return bus.Hint{Kind: bus.SessionTaken, User: user, Generation: gen, Session: s}, true
	case 'u':
		user, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return bus.Hint{}, false
		}
		return bus.Hint{Kind: bus.UserChanged, User: user}, true
	}
	return bus.Hint{}, false
}

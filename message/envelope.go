package message

import "strings"

// Envelope is the ENVELOPE of a message (RFC 3501 §7.4.2). Strings are the
// unfolded header values as they are in the message (RFC 2047 encoded
// words left encoded); "" means absent (written NIL) unless Empty says the
// field is present but empty (written ""). An address list that holds no
// address, absent or not, is empty (written NIL: RFC 3501 has no empty
// list). Sender and ReplyTo are empty when the message has none; the
// writer (server/imapmime) then uses From.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string

	// Empty holds the Env* bits of the fields among Date, Subject,
	// InReplyTo and MessageID that are in the header with an empty value
	// (only white space).
	Empty uint8
}

// Bits of Envelope.Empty.
const (
	EnvDate = 1 << iota
	EnvSubject
	EnvInReplyTo
	EnvMessageID
)

// Address kinds.
const (
	AddrMailbox    = 0
	AddrGroupStart = 1 // Mailbox holds the group name
	AddrGroupEnd   = 2
)

// Address is one element of an ENVELOPE address list: a mailbox, or a
// group start or end marker (RFC 3501 group syntax).
type Address struct {
	Kind    uint8
	Name    string // display name, raw; "" is NIL
	ADL     string // source route, "" is NIL
	Mailbox string // local part, or the group name for AddrGroupStart
	Host    string // domain ("" for a missing one, not NIL)
}

// maxAddrs bounds an address list.
const maxAddrs = 1000

// envelopeFields collects the envelope header fields of a message (the
// first of each).
type envelopeFields struct {
	date, subject, from, sender, replyTo, to, cc, bcc, inReplyTo, messageID []byte
}

func (e *envelopeFields) add(name, value []byte) {
	if name == nil {
		return
	}
	var dst *[]byte
	switch len(name) {
	case 2:
		if equalFoldBytes(name, "to") {
			dst = &e.to
		} else if equalFoldBytes(name, "cc") {
			dst = &e.cc
		}
	case 3:
		if equalFoldBytes(name, "bcc") {
			dst = &e.bcc
		}
	case 4:
		if equalFoldBytes(name, "date") {
			dst = &e.date
		} else if equalFoldBytes(name, "from") {
			dst = &e.from
		}
	case 6:
		if equalFoldBytes(name, "sender") {
			dst = &e.sender
		}
	case 7:
		if equalFoldBytes(name, "subject") {
			dst = &e.subject
		}
	case 8:
		if equalFoldBytes(name, "reply-to") {
			dst = &e.replyTo
		}
	case 10:
		if equalFoldBytes(name, "message-id") {
			dst = &e.messageID
		}
	case 11:
		if equalFoldBytes(name, "in-reply-to") {
			dst = &e.inReplyTo
		}
	}
	if dst != nil && *dst == nil {
		*dst = value
	}
}

func (e *envelopeFields) envelope() *Envelope {
	env := &Envelope{
		Date:      unfold(e.date),
		Subject:   unfold(e.subject),
		From:      parseAddressList(unfold(e.from)),
		Sender:    parseAddressList(unfold(e.sender)),
		ReplyTo:   parseAddressList(unfold(e.replyTo)),
		To:        parseAddressList(unfold(e.to)),
		Cc:        parseAddressList(unfold(e.cc)),
		Bcc:       parseAddressList(unfold(e.bcc)),
		InReplyTo: unfold(e.inReplyTo),
		MessageID: unfold(e.messageID),
	}
	// A field is present when its value is non-nil (scanHeader gives a
	// non-nil value, maybe empty, for every field).
	for _, f := range [...]struct {
		raw []byte
		v   string
		bit uint8
	}{
		{e.date, env.Date, EnvDate},
		{e.subject, env.Subject, EnvSubject},
		{e.inReplyTo, env.InReplyTo, EnvInReplyTo},
		{e.messageID, env.MessageID, EnvMessageID},
	} {
		if f.raw != nil && f.v == "" {
			env.Empty |= f.bit
		}
	}
	return env
}

// parseAddressList parses an RFC 5322 address list leniently: mailboxes
// ("Name" <a@b>, a@b (Name), <@route:a@b>), groups (name: a@b, c@d;) and
// whatever garbage comes its way, never failing. Display names stay raw
// (quotes removed, encoded words kept); a mailbox without a display name
// takes the last comment as its name.
func parseAddressList(s string) []Address {
	if s == "" {
		return nil
	}
	var (
		out     []Address
		words   []string // phrase words
		spec    strings.Builder
		comment string
		inGroup bool
	)
	reset := func() {
		words = words[:0]
		spec.Reset()
		comment = ""
	}
	// flush emits the pending addr-spec (a mailbox without angle brackets).
	flush := func() {
		if spec.Len() > 0 {
			mbox, host := splitAddrSpec(spec.String())
			out = append(out, Address{Name: comment, Mailbox: mbox, Host: host})
		}
		reset()
	}
	i := 0
	for i < len(s) && len(out) < maxAddrs {
		c := s[i]
		switch c {
		case ' ', '\t', '\r', '\n':
			i++
		case '(':
			var cm string
			cm, i = readComment(s, i)
			if cm = strings.TrimSpace(cm); cm != "" {
				comment = cm
			}
		case '"':
			var q string
			q, i = readQuoted(s, i)
			words = append(words, q)
			spec.WriteString(quoteLocal(q))
		case '<':
			j := i + 1
			for j < len(s) && s[j] != '>' {
				if s[j] == '"' {
					_, j = readQuoted(s, j)
					continue
				}
				j++
			}
			inner := stripComments(s[i+1 : min(j, len(s))])
			i = min(j+1, len(s))
			var adl string
			inner = strings.TrimSpace(inner)
			if strings.HasPrefix(inner, "@") {
				if k := strings.IndexByte(inner, ':'); k >= 0 {
					adl, inner = strings.TrimSpace(inner[:k]), inner[k+1:]
				}
			}
			mbox, host := splitAddrSpec(removeWSP(inner))
			out = append(out, Address{Name: strings.Join(words, " "), ADL: adl, Mailbox: mbox, Host: host})
			reset()
		case ':':
			i++
			if inGroup {
				continue
			}
			out = append(out, Address{Kind: AddrGroupStart, Mailbox: strings.Join(words, " ")})
			inGroup = true
			reset()
		case ';':
			i++
			flush()
			if inGroup {
				out = append(out, Address{Kind: AddrGroupEnd})
				inGroup = false
			}
		case ',':
			i++
			flush()
		case '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				j = len(s) - i - 1
			}
			spec.WriteString(s[i : i+j+1])
			words = append(words, s[i:i+j+1])
			i += j + 1
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\r\n()<>\",:;[", s[j]) < 0 {
				j++
			}
			if j == i { // a lone '>' or similar
				j++
			}
			words = append(words, s[i:j])
			spec.WriteString(s[i:j])
			i = j
		}
	}
	flush()
	if inGroup && len(out) < maxAddrs+1 {
		out = append(out, Address{Kind: AddrGroupEnd})
	}
	return out
}

// splitAddrSpec splits local@domain at the last '@'.
func splitAddrSpec(s string) (mbox, host string) {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func removeWSP(s string) string {
	if strings.IndexAny(s, " \t\r\n") < 0 {
		return s
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			quoted = !quoted
		}
		if !quoted && (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// quoteLocal re-quotes a quoted-string word for use in an addr-spec.
func quoteLocal(q string) string {
	// A loop, not strings.NewReplacer: a Replacer built per call costs an
	// allocation-heavy build on its first use (1 to 2% of an APPEND).
	var b strings.Builder
	b.Grow(len(q) + 2)
	b.WriteByte('"')
	for i := 0; i < len(q); i++ {
		if q[i] == '\\' || q[i] == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(q[i])
	}
	b.WriteByte('"')
	return b.String()
}

// readQuoted reads the quoted string at s[i] == '"' and returns its
// content (escapes resolved) and the index after it.
func readQuoted(s string, i int) (string, int) {
	var b strings.Builder
	i++
	for i < len(s) && s[i] != '"' {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
		i++
	}
	if i < len(s) {
		i++
	}
	return b.String(), i
}

// readComment reads the (nested) comment at s[i] == '(' and returns its
// content and the index after it.
func readComment(s string, i int) (string, int) {
	depth := 0
	start := i + 1
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[start:i], i + 1
			}
		}
	}
	return s[min(start, len(s)):], len(s)
}

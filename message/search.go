package message

import (
	"strings"
	"unicode/utf8"
)

// HeaderValues returns the values of the header fields called name (case-
// insensitive) of the message or part p, in order: unfolded, trimmed, with
// RFC 2047 encoded words decoded, as UTF-8 (raw 8-bit text is read in the
// charset of p's text, see decodeHeader). It is meant for SEARCH HEADER,
// FROM, SUBJECT and the like. p may be a bare header (a Part with only
// Start and BodyStart set): its Content-Type is then read from raw.
func HeaderValues(raw []byte, p *Part, name string) []string {
	if !p.fits(len(raw)) {
		return nil
	}
	var vs []string
	fallback, known := "", false
	scanHeader(raw, p.Start, p.BodyStart, func(n, v []byte, _, _ int) {
		if n == nil || !equalFoldBytes(n, name) {
			return
		}
		if !known && !utf8.Valid(v) {
			fallback, known = textCharset(raw, p), true
		}
		vs = append(vs, decodeHeader(unfold(v), fallback))
	})
	return vs
}

// AddressValues is HeaderValues for an address field (From, To, Cc...):
// after each value it adds the field's mailboxes as "name <local@domain>"
// (display names decoded), so that a search for an address matches
// however the header wrote it, comments (RFC 5322 §3.2.2 CFWS, allowed
// even around the "@") and folding included:
// "<user (c)@ (c) example.org>" gives "<user@example.org>".
func AddressValues(raw []byte, p *Part, name string) []string {
	if !p.fits(len(raw)) {
		return nil
	}
	var vs []string
	fallback, known := "", false
	scanHeader(raw, p.Start, p.BodyStart, func(n, v []byte, _, _ int) {
		if n == nil || !equalFoldBytes(n, name) {
			return
		}
		if !known && !utf8.Valid(v) {
			fallback, known = textCharset(raw, p), true
		}
		u := unfold(v)
		vs = append(vs, decodeHeader(u, fallback))
		var b strings.Builder
		for _, a := range parseAddressList(u) {
			if a.Kind != AddrMailbox || a.Mailbox == "" && a.Host == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			if a.Name != "" {
				b.WriteString(decodeHeader(a.Name, fallback))
				b.WriteByte(' ')
			}
			b.WriteByte('<')
			b.WriteString(rawText(a.Mailbox, fallback))
			if a.Host != "" {
				b.WriteByte('@')
				b.WriteString(rawText(a.Host, fallback))
			}
			b.WriteByte('>')
		}
		vs = append(vs, b.String())
	})
	return vs
}

// IsAddressField reports whether the header field name holds an address
// list (RFC 5322 §3.6.2, §3.6.3, §3.6.6).
func IsAddressField(name string) bool {
	for _, f := range []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc",
		"Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		if equalFoldASCII(name, f) {
			return true
		}
	}
	return false
}

// textCharset returns the charset of p when it is a text part, "" when it
// is not or has none.
func textCharset(raw []byte, p *Part) string {
	typ, params := p.Type, p.Params
	if typ == "" {
		scanHeader(raw, p.Start, p.BodyStart, func(n, v []byte, _, _ int) {
			if n != nil && typ == "" && equalFoldBytes(n, "Content-Type") {
				typ, _, params = parseContentType(unfold(v))
			}
		})
	}
	if typ != "TEXT" {
		return ""
	}
	cs, _ := lookupParam(params, "CHARSET")
	return cs
}

// TextContent returns the decoded text of the TEXT/* parts of the message
// p (encapsulated messages included), one string per part, in part order:
// the transfer encoding is undone and the charset converted to UTF-8. It
// is meant for SEARCH BODY and TEXT.
func TextContent(raw []byte, p *Part) []string {
	var out []string
	p.Walk(func(q *Part) bool {
		if q.Type != "TEXT" || q.IsMultipart() || !q.fits(len(raw)) {
			return true
		}
		charset, _ := q.Param("CHARSET")
		out = append(out, toUTF8(charset, decodeTransfer(q.Encoding, raw[q.BodyStart:q.End])))
		return true
	})
	return out
}

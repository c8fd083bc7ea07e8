package message

import "unicode/utf8"

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

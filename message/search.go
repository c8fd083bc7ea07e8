package message

// HeaderValues returns the values of the header fields called name (case-
// insensitive) of the message or part p, in order: unfolded, trimmed, with
// RFC 2047 encoded words decoded, as UTF-8 (raw 8-bit text read in the
// part's charset when it is a text part, see decodeHeader). It is meant for SEARCH HEADER,
// FROM, SUBJECT and the like.
func HeaderValues(raw []byte, p *Part, name string) []string {
	if !p.fits(len(raw)) {
		return nil
	}
	var vs []string
	fallback := ""
	if p.Type == "TEXT" {
		fallback, _ = p.Param("CHARSET")
	}
	scanHeader(raw, p.Start, p.BodyStart, func(n, v []byte, _, _ int) {
		if n != nil && equalFoldBytes(n, name) {
			vs = append(vs, decodeHeader(unfold(v), fallback))
		}
	})
	return vs
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

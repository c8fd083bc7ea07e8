package message

import "unicode/utf8"

// HeaderFields calls fn for every field of the header of the message or
// part p, in order, with its name as written and its value as
// HeaderValues returns it (unfolded, trimmed, RFC 2047 encoded words
// decoded, raw 8-bit text read in the charset of p's text, as UTF-8). The
// header is scanned once, so the cost is linear in its size whatever the
// number of fields (HeaderValues for each distinct name would be
// quadratic in it). Once fn returns false it is not called again. name
// is only valid during the call.
func HeaderFields(raw []byte, p *Part, fn func(name []byte, value string) bool) {
	if !p.fits(len(raw)) {
		return
	}
	more := true
	fallback, known := "", false
	scanHeader(raw, p.Start, p.BodyStart, func(n, v []byte, _, _ int) {
		if !more || n == nil {
			return
		}
		if !known && !utf8.Valid(v) {
			fallback, known = textCharset(raw, p), true
		}
		more = fn(n, decodeHeader(unfold(v), fallback))
	})
}

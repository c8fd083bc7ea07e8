// Package message computes, once at APPEND time, everything FETCH and
// SEARCH need to know about a message's MIME structure: the part tree with
// exact byte offsets into the raw message, the BODYSTRUCTURE fields of every
// part and the ENVELOPE of the message and of every encapsulated
// message/rfc822 part.
//
// The tree is serialised with Marshal, kept by the store as opaque bytes and
// restored with Unmarshal, so FETCH ENVELOPE and BODYSTRUCTURE never look at
// the message again and BODY[section] reads only the bytes it returns.
// The package holds the data only; package server/imapmime writes it in
// IMAP syntax.
//
// Parsing never fails on a malformed message: whatever cannot be understood
// falls back to the RFC 3501 default (text/plain; charset=us-ascii), a
// multipart without a boundary or delimiter lines gets one empty text/plain
// part, and the nesting depth and the number of parts are bounded so that
// hostile input cannot blow up the tree.
package message

import (
	"bytes"
	"errors"
)

// Limits on hostile input. Deeper nesting and further parts are not split:
// the part where a limit is reached is treated as text/plain.
const (
	MaxDepth = 100   // nesting levels of multipart and message/rfc822
	MaxParts = 10000 // parts in one message, encapsulated ones included
)

// ErrEmpty is returned by Parse for an empty message.
var ErrEmpty = errors.New("message: empty message")

// Part is one entity of a message: the message itself (the root), a part of
// a multipart or the message encapsulated in a message/rfc822 part.
//
// Offsets are byte offsets into the raw message: the header is
// raw[Start:BodyStart] (including the blank line that ends it, when there
// is one) and the body is raw[BodyStart:End]. The line break before a
// multipart boundary belongs to the boundary, not to the part.
type Part struct {
	Start, BodyStart, End int

	// Lines is the number of lines of the body (a last line without a
	// line break counts).
	Lines int

	// Type and Subtype are upper case, e.g. "TEXT" and "PLAIN". A part
	// with no or an unusable Content-Type is TEXT/PLAIN (or MESSAGE/RFC822
	// in a multipart/digest).
	Type, Subtype string
	// Params are the Content-Type parameters in their original order,
	// names upper case, RFC 2231 continuations joined and extended values
	// decoded to UTF-8. A TEXT/PLAIN part without a charset gets
	// CHARSET=US-ASCII.
	Params []Param

	ID          string // Content-ID
	Description string // Content-Description, RFC 2047 words left encoded
	Encoding    string // Content-Transfer-Encoding, upper case, default "7BIT"
	MD5         string // Content-MD5
	Disposition string // Content-Disposition type, upper case, "" for none
	DispParams  []Param
	Language    []string // Content-Language tags
	Location    string   // Content-Location

	// Children are the parts of a multipart (Type "MULTIPART"; there is
	// always at least one: an empty TEXT/PLAIN part, at End, when the
	// body has no boundary parameter or delimiter line).
	Children []*Part
	// Message is the encapsulated message of a MESSAGE/RFC822 part.
	Message *Part
	// Envelope is set on the root and on encapsulated messages.
	Envelope *Envelope
}

// Param is a MIME parameter.
type Param struct {
	Name, Value string
}

// Size is the size of the body in bytes.
func (p *Part) Size() int { return p.End - p.BodyStart }

// IsMultipart reports whether p is a multipart with children.
func (p *Part) IsMultipart() bool { return len(p.Children) > 0 }

// Param returns the value of the Content-Type parameter name (case-
// insensitive) and whether it exists.
func (p *Part) Param(name string) (string, bool) { return lookupParam(p.Params, name) }

func lookupParam(ps []Param, name string) (string, bool) {
	for _, q := range ps {
		if equalFoldASCII(q.Name, name) {
			return q.Value, true
		}
	}
	return "", false
}

// Walk calls fn for p and every part below it, depth first in part order,
// encapsulated messages included, until fn returns false.
func (p *Part) Walk(fn func(*Part) bool) bool {
	if !fn(p) {
		return false
	}
	for _, c := range p.Children {
		if !c.Walk(fn) {
			return false
		}
	}
	if p.Message != nil {
		return p.Message.Walk(fn)
	}
	return true
}

// Parse builds the part tree of the RFC 5322 / MIME message raw. It fails
// only on an empty message; anything else gives a tree.
func Parse(raw []byte) (*Part, error) {
	if len(raw) == 0 {
		return nil, ErrEmpty
	}
	ps := parser{raw: raw}
	return ps.entity(0, len(raw), 0, false, true), nil
}

type parser struct {
	raw    []byte
	nparts int
}

// entity parses raw[start:end] as one entity at nesting level depth.
// digest selects the multipart/digest default type; isMessage says the
// entity is a message (root or encapsulated) and gets an envelope.
func (ps *parser) entity(start, end, depth int, digest, isMessage bool) *Part {
	ps.nparts++
	p := &Part{Start: start, End: end}
	var (
		ctype, cdisp, clang []byte
		haveCType           bool
		env                 *envelopeFields
	)
	if isMessage {
		env = &envelopeFields{}
	}
	p.BodyStart = scanHeader(ps.raw, start, end, func(name, value []byte, _, _ int) {
		if len(name) > 8 && equalFoldBytes(name[:8], "content-") {
			switch n := name[8:]; {
			case equalFoldBytes(n, "type"):
				if !haveCType {
					ctype, haveCType = value, true
				}
			case equalFoldBytes(n, "transfer-encoding"):
				if p.Encoding == "" {
					p.Encoding = parseEncoding(unfold(value))
				}
			case equalFoldBytes(n, "id"):
				if p.ID == "" {
					p.ID = unfold(value)
				}
			case equalFoldBytes(n, "description"):
				if p.Description == "" {
					p.Description = unfold(value)
				}
			case equalFoldBytes(n, "md5"):
				if p.MD5 == "" {
					p.MD5 = unfold(value)
				}
			case equalFoldBytes(n, "disposition"):
				if cdisp == nil {
					cdisp = value
				}
			case equalFoldBytes(n, "language"):
				if clang == nil {
					clang = value
				}
			case equalFoldBytes(n, "location"):
				if p.Location == "" {
					p.Location = unfold(value)
				}
			}
			return
		}
		if env != nil {
			env.add(name, value)
		}
	})
	p.Lines = countLines(ps.raw[p.BodyStart:end])
	if p.Encoding == "" {
		p.Encoding = "7BIT"
	}
	if haveCType {
		p.Type, p.Subtype, p.Params = parseContentType(unfold(ctype))
	}
	if p.Type == "" {
		if digest {
			p.Type, p.Subtype = "MESSAGE", "RFC822"
		} else {
			p.Type, p.Subtype, p.Params = "TEXT", "PLAIN", nil
		}
	}
	if cdisp != nil {
		p.Disposition, p.DispParams = parseDisposition(unfold(cdisp))
	}
	if clang != nil {
		p.Language = parseLanguage(unfold(clang))
	}
	if env != nil {
		p.Envelope = env.envelope()
	}

	switch {
	case p.Type == "MULTIPART":
		if depth >= MaxDepth || ps.nparts >= MaxParts {
			p.toTextPlain()
			break
		}
		// No boundary parameter, or no delimiter line: still a
		// multipart (its body all preamble), with one empty text/plain
		// part since BODYSTRUCTURE needs one (RFC 3501 body-type-mpart),
		// as Dovecot does.
		if b, _ := p.Param("BOUNDARY"); b == "" || !ps.multipart(p, b, depth, p.Subtype == "DIGEST") {
			ps.nparts++
			p.Children = []*Part{emptyPart(p.End)}
		}
	case p.Type == "MESSAGE" && p.Subtype == "RFC822":
		if depth >= MaxDepth || ps.nparts >= MaxParts {
			p.toTextPlain()
		} else {
			p.Message = ps.entity(p.BodyStart, end, depth+1, false, true)
		}
	}
	if p.Type == "TEXT" && p.Subtype == "PLAIN" {
		if _, ok := p.Param("CHARSET"); !ok {
			p.Params = append(p.Params, Param{"CHARSET", "US-ASCII"})
		}
	}
	return p
}

// emptyPart returns the empty text/plain part, at offset at, that stands
// in for the parts of a multipart without any.
func emptyPart(at int) *Part {
	return &Part{
		Start: at, BodyStart: at, End: at,
		Type: "TEXT", Subtype: "PLAIN", Params: []Param{{"CHARSET", "US-ASCII"}},
		Encoding: "7BIT",
	}
}

// toTextPlain demotes a part that cannot be split to text/plain.
func (p *Part) toTextPlain() {
	p.Type, p.Subtype, p.Params = "TEXT", "PLAIN", nil
	p.Children, p.Message = nil, nil
}

// multipart splits the body of p at the delimiter lines of boundary b and
// parses each part. It reports false when it found no part (no delimiter
// line, or only a closing one).
func (ps *parser) multipart(p *Part, b string, depth int, digest bool) bool {
	raw := ps.raw
	delim := make([]byte, 0, len(b)+2)
	delim = append(append(delim, "--"...), b...)
	pos, end := p.BodyStart, p.End
	partStart := -1 // start of the current part, -1 before the first delimiter
	for pos < end {
		i := bytes.Index(raw[pos:end], delim)
		if i < 0 {
			break
		}
		at := pos + i
		pos = at + 1
		if at > p.BodyStart && raw[at-1] != '\n' {
			continue
		}
		// Delimiter line: delim ["--"] *(SP / HTAB) [CR] LF, or at the end.
		j := at + len(delim)
		closing := false
		if j+1 < end && raw[j] == '-' && raw[j+1] == '-' {
			closing, j = true, j+2
		}
		for j < end && (raw[j] == ' ' || raw[j] == '\t') {
			j++
		}
		if j < end && raw[j] == '\r' {
			j++
		}
		if j < end {
			if raw[j] != '\n' {
				continue
			}
			j++
		}
		if partStart >= 0 {
			ps.addChild(p, partStart, lineBreakStart(raw, p.BodyStart, partStart, at), depth, digest)
		}
		if closing {
			partStart = -1
			break
		}
		partStart = j
		pos = j
		if ps.nparts+1 >= MaxParts {
			// The part limit: this last part runs to the end.
			break
		}
	}
	if partStart >= 0 {
		// No closing delimiter: the last part runs to the end.
		ps.addChild(p, partStart, end, depth, digest)
	}
	return len(p.Children) > 0
}

func (ps *parser) addChild(p *Part, start, end, depth int, digest bool) {
	p.Children = append(p.Children, ps.entity(start, end, depth+1, digest, false))
}

// lineBreakStart returns where the line break before the delimiter line at
// at begins (the break belongs to the delimiter), but not before min.
func lineBreakStart(raw []byte, bodyStart, min, at int) int {
	e := at
	if e > bodyStart && raw[e-1] == '\n' {
		e--
		if e > bodyStart && raw[e-1] == '\r' {
			e--
		}
	}
	if e < min {
		e = min
	}
	return e
}

// countLines counts the lines of b: its line feeds, plus one for a last
// line without one.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

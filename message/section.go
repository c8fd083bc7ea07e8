package message

import (
	"errors"
	"fmt"
)

// Section specifiers (RFC 3501 §6.4.5).
const (
	SpecNone            = ""
	SpecHeader          = "HEADER"
	SpecHeaderFields    = "HEADER.FIELDS"
	SpecHeaderFieldsNot = "HEADER.FIELDS.NOT"
	SpecText            = "TEXT"
	SpecMIME            = "MIME"
)

// Section is a BODY[section] of RFC 3501 §6.4.5 without the partial:
// Path holds the part numbers (1-based; empty for the whole message) and
// Specifier one of the Spec constants; Fields are the field names of
// HEADER.FIELDS and HEADER.FIELDS.NOT.
type Section struct {
	Path      []int
	Specifier string
	Fields    []string
}

// ErrMismatch is returned by Extract when the part tree does not fit the
// message (a tree parsed from other bytes).
var ErrMismatch = errors.New("message: part tree does not match the message")

// Extract returns the bytes of section s of the message raw whose tree is
// root:
//
//   - BODY[] the whole message, BODY[HEADER] its header with the blank
//     line, BODY[TEXT] its body, BODY[HEADER.FIELDS (...)] and .NOT the
//     (un)selected fields in their original order followed by the blank
//     line, which is left out when the header has none (a message with
//     no blank line is all header and has no body: RFC 3501 §6.4.5);
//   - BODY[n.m...] the body of a part: for a non-multipart message part 1
//     is its body; the parts of a message/rfc822 part are those of the
//     encapsulated message, whose header and body HEADER, HEADER.FIELDS
//     and TEXT address (BODY[2.HEADER], BODY[2.1]);
//   - BODY[n.MIME] the MIME header of part n.
//
// A part that does not exist, or HEADER/TEXT of a part that is not a
// message, gives an empty result (RFC 3501 returns an empty string), not an
// error. Errors are for an unknown specifier, MIME without a part number,
// and a tree that does not fit raw. The result may share memory with raw.
func Extract(raw []byte, root *Part, s Section) ([]byte, error) {
	sp, err := Locate(root, s, len(raw))
	if err != nil || sp.Start == sp.End {
		return nil, err
	}
	if sp.Fields {
		return FilterFields(raw[sp.Start:sp.End], s), nil
	}
	return raw[sp.Start:sp.End], nil
}

// Span is where a section lies in a message: its bytes [Start, End), or,
// when Fields is set, the header there from which FilterFields selects
// the section (HEADER.FIELDS and HEADER.FIELDS.NOT). Start == End is an
// empty section.
type Span struct {
	Start, End int
	Fields     bool
}

// Locate finds section s (see Extract) of a message of size bytes whose
// tree is root, without the message's bytes, so that a caller can read
// just that range: Extract(raw, root, s) is raw[Start:End], or
// FilterFields(raw[Start:End], s) when Fields is set. Errors are
// Extract's; ErrMismatch when the tree does not fit size bytes.
func Locate(root *Part, s Section, size int) (Span, error) {
	switch s.Specifier {
	case SpecNone, SpecHeader, SpecHeaderFields, SpecHeaderFieldsNot, SpecText:
	case SpecMIME:
		if len(s.Path) == 0 {
			return Span{}, errors.New("message: MIME section without a part number")
		}
	default:
		return Span{}, fmt.Errorf("message: unknown section specifier %q", s.Specifier)
	}
	if root.End > size || root.Start != 0 {
		return Span{}, ErrMismatch
	}
	p := Resolve(root, s.Path)
	if p == nil {
		return Span{}, nil
	}
	if !p.fits(size) {
		return Span{}, ErrMismatch
	}
	// The message whose header and text the specifier addresses.
	msg := p
	if len(s.Path) > 0 {
		msg = p.Message
	}
	switch s.Specifier {
	case SpecNone:
		if len(s.Path) == 0 {
			return Span{p.Start, p.End, false}, nil
		}
		return Span{p.BodyStart, p.End, false}, nil
	case SpecMIME:
		return Span{p.Start, p.BodyStart, false}, nil
	}
	if msg == nil || !msg.fits(size) {
		return Span{}, nil
	}
	switch s.Specifier {
	case SpecHeader:
		return Span{msg.Start, msg.BodyStart, false}, nil
	case SpecText:
		return Span{msg.BodyStart, msg.End, false}, nil
	}
	return Span{msg.Start, msg.BodyStart, true}, nil
}

// FilterFields returns the HEADER.FIELDS (or .NOT) section s of the
// message header hdr (as Locate finds it): the fields named in s.Fields
// (or the others) in their original order, then the blank line if hdr
// ends with one.
func FilterFields(hdr []byte, s Section) []byte {
	return headerFields(hdr, &Part{End: len(hdr), BodyStart: len(hdr)}, s.Fields, s.Specifier == SpecHeaderFieldsNot)
}

func (p *Part) fits(n int) bool {
	return 0 <= p.Start && p.Start <= p.BodyStart && p.BodyStart <= p.End && p.End <= n
}

// Resolve returns the part with the given path (nil path: the message
// itself) or nil when there is none. For a non-multipart message (root or
// encapsulated) part 1 is the message itself; the parts of a
// message/rfc822 part are those of the message it encapsulates.
func Resolve(root *Part, path []int) *Part {
	cur := root
	container := root // whose parts the next number selects
	msgLevel := true  // container is a message (root or encapsulated)
	for _, n := range path {
		if container == nil || n < 1 {
			return nil
		}
		switch {
		case container.IsMultipart():
			if n > len(container.Children) {
				return nil
			}
			cur = container.Children[n-1]
		case msgLevel && n == 1:
			cur = container
		default:
			return nil
		}
		switch {
		case cur.Message != nil:
			container, msgLevel = cur.Message, true
		case cur.IsMultipart():
			container, msgLevel = cur, false
		default:
			container = nil
		}
	}
	return cur
}

// headerFields returns the fields of msg's header whose names are (not, for
// not) among names, in their original order, each ending with a line
// break, followed by CRLF when the header ends with an empty line. Lines
// that are not fields count as fields no name matches.
func headerFields(raw []byte, msg *Part, names []string, not bool) []byte {
	var out []byte
	scanHeader(raw, msg.Start, msg.BodyStart, func(name, _ []byte, fstart, fend int) {
		match := false
		if name != nil {
			for _, n := range names {
				if equalFoldBytes(name, n) {
					match = true
					break
				}
			}
		}
		if match != not {
			out = append(out, raw[fstart:fend]...)
			if fend > fstart && raw[fend-1] != '\n' {
				out = append(out, '\r', '\n')
			}
		}
	})
	if endsWithEmptyLine(raw[msg.Start:msg.BodyStart]) {
		out = append(out, '\r', '\n')
	}
	return out
}

// endsWithEmptyLine reports whether the header h ends with the empty line
// (LF, CRLF, or a CR at the very end) that scanHeader ends a header at.
func endsWithEmptyLine(h []byte) bool {
	n := len(h)
	if n > 0 && h[n-1] == '\n' {
		n--
	}
	if n > 0 && h[n-1] == '\r' {
		n--
	}
	return n < len(h) && (n == 0 || h[n-1] == '\n')
}

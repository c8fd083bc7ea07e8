package client

// The client's IMAP response reader (RFC 3501 §7, §9 "response"). It is
// deliberately small: it turns one response into a generic tree of values
// (atoms, strings, NIL, lists) and leaves the meaning to the caller. Every
// input size is bounded, and malformed input is an error, never a panic.

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits bound what the response reader accepts from a server.
type Limits struct {
	// MaxLine is the longest response line in bytes, literals not
	// counted. Default 8 MiB (a UID SEARCH answer for a very large
	// mailbox is one line).
	MaxLine int
	// MaxLiteral is the largest literal. Default 1 MiB: the client
	// fetches no message bodies.
	MaxLiteral int
	// MaxDepth bounds the nesting of parenthesized lists. Default 16.
	MaxDepth int
	// MaxItems bounds the number of values in one response. Default
	// 1<<20.
	MaxItems int
}

func (l Limits) withDefaults() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = 8 << 20
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = 1 << 20
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 16
	}
	if l.MaxItems <= 0 {
		l.MaxItems = 1 << 20
	}
	return l
}

// ProtocolError is a response the client could not parse, or one that
// breaks the protocol. The connection is not usable after it.
type ProtocolError struct {
	Msg string
}

func (e *ProtocolError) Error() string { return "imap client: protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

type valueKind uint8

const (
	vAtom   valueKind = iota // atom, number, flag, sequence set
	vString                  // quoted string or literal
	vNIL
	vList
)

// value is one token of a response.
type value struct {
	kind valueKind
	s    string
	list []value
}

// isAtom reports whether v is the atom name (case-insensitive).
func (v value) isAtom(name string) bool { return v.kind == vAtom && strings.EqualFold(v.s, name) }

// number parses v as a 32-bit number.
func (v value) number() (uint32, bool) {
	if v.kind != vAtom {
		return 0, false
	}
	n, err := strconv.ParseUint(v.s, 10, 32)
	return uint32(n), err == nil && isDigits(v.s)
}

// number64 parses v as a 63-bit number (RFC 7162 mod-sequence-value).
func (v value) number64() (uint64, bool) {
	if v.kind != vAtom {
		return 0, false
	}
	n, err := strconv.ParseUint(v.s, 10, 63)
	return n, err == nil && isDigits(v.s)
}

// astring returns the text of an atom or a string.
func (v value) astring() (string, bool) {
	if v.kind == vAtom || v.kind == vString {
		return v.s, true
	}
	return "", false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// response is one server response.
type response struct {
	// tag is "*" for untagged, "+" for a continuation request, else the
	// command tag.
	tag string
	// num is the number of "* n EXISTS" / "* n FETCH" and the like.
	num    uint32
	hasNum bool
	// name is the upper-cased response name: OK, NO, BAD, BYE, PREAUTH,
	// CAPABILITY, EXISTS, FETCH, VANISHED, ... (empty for "+").
	name string
	// code and codeArg are a status response's code ("UIDNEXT") and the
	// raw text after its name ("57"), RFC 3501 resp-text-code.
	code    string
	codeArg string
	hasCode bool
	// text is the human-readable text of a status or continuation.
	text string
	// args are the values after name, for data responses.
	args []value
}

func (r *response) isStatus() bool {
	switch r.name {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return true
	}
	return false
}

// reader reads responses.
type reader struct {
	br    *bufio.Reader
	lim   Limits
	line  int // bytes of the current line so far
	items int // values in the current response
}

func newReader(br *bufio.Reader, lim Limits) *reader {
	return &reader{br: br, lim: lim.withDefaults()}
}

func (r *reader) byte() (byte, error) {
	if r.line >= r.lim.MaxLine {
		return 0, protoErr("response line longer than %d bytes", r.lim.MaxLine)
	}
	c, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.line++
	return c, nil
}

func (r *reader) peek() (byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) expect(c byte) error {
	got, err := r.byte()
	if err != nil {
		return err
	}
	if got != c {
		return protoErr("expected %q, got %q", c, got)
	}
	return nil
}

// crlf reads the line end (a bare LF is accepted).
func (r *reader) crlf() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	if c == '\r' {
		c, err = r.byte()
		if err != nil {
			return err
		}
	}
	if c != '\n' {
		return protoErr("expected end of line, got %q", c)
	}
	r.line = 0
	return nil
}

func (r *reader) atEOL() bool {
	c, err := r.peek()
	return err == nil && (c == '\r' || c == '\n')
}

// atomChar reports whether c may be part of an atom as this reader reads
// it: liberal (it accepts "[", "]", "%", "*", "\" and 8-bit bytes) so that
// flags, sequence sets and section specs read as one token.
func atomChar(c byte) bool {
	return c > ' ' && c != 0x7f && c != '(' && c != ')' && c != '"'
}

// atom reads 1*atomChar, stopping also at stop (0 for none).
func (r *reader) atom(stop byte) (string, error) {
	var b []byte
	for {
		c, err := r.peek()
		if err != nil {
			return "", err
		}
		if !atomChar(c) || (stop != 0 && c == stop) {
			break
		}
		if _, err := r.byte(); err != nil {
			return "", err
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		c, _ := r.peek()
		return "", protoErr("expected an atom, got %q", c)
	}
	return string(b), nil
}

// sp reads one space.
func (r *reader) sp() error { return r.expect(' ') }

// read reads one whole response, including its CRLF.
func (r *reader) read() (*response, error) {
	r.line, r.items = 0, 0
	resp := &response{}
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	if c == '+' {
		r.byte()
		resp.tag = "+"
		if c, err := r.peek(); err == nil && c == ' ' {
			r.byte()
		}
		if resp.text, err = r.text(); err != nil {
			return nil, err
		}
		return resp, r.crlf()
	}
	if resp.tag, err = r.atom(0); err != nil {
		return nil, err
	}
	if err := r.sp(); err != nil {
		return nil, err
	}
	name, err := r.atom(0)
	if err != nil {
		return nil, err
	}
	if resp.tag == "*" && isDigits(name) {
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return nil, protoErr("bad number %q", name)
		}
		resp.num, resp.hasNum = uint32(n), true
		if err := r.sp(); err != nil {
			return nil, err
		}
		if name, err = r.atom(0); err != nil {
			return nil, err
		}
	}
	resp.name = strings.ToUpper(name)
	if resp.tag != "*" && !resp.isStatus() {
		return nil, protoErr("tagged response %q is not a status", resp.name)
	}
	if resp.isStatus() && !resp.hasNum {
		if err := r.respText(resp); err != nil {
			return nil, err
		}
		return resp, r.crlf()
	}
	for !r.atEOL() {
		if err := r.sp(); err != nil {
			return nil, err
		}
		if r.atEOL() { // a trailing space, as some servers send
			break
		}
		v, err := r.value(0)
		if err != nil {
			return nil, err
		}
		resp.args = append(resp.args, v)
	}
	return resp, r.crlf()
}

// respText reads [SP ["[" code [SP text] "]" SP] text] (RFC 3501
// resp-text; the text is optional in practice).
func (r *reader) respText(resp *response) error {
	if r.atEOL() {
		return nil
	}
	if err := r.sp(); err != nil {
		return err
	}
	if c, err := r.peek(); err == nil && c == '[' {
		r.byte()
		name, err := r.atom(']')
		if err != nil {
			return err
		}
		resp.code, resp.hasCode = strings.ToUpper(name), true
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c == ' ' {
			var b []byte
			for {
				c, err := r.byte()
				if err != nil {
					return err
				}
				if c == ']' {
					break
				}
				if c == '\r' || c == '\n' {
					return protoErr("unterminated response code")
				}
				b = append(b, c)
			}
			resp.codeArg = string(b)
		} else if c != ']' {
			return protoErr("bad response code")
		}
		if c, err := r.peek(); err == nil && c == ' ' {
			r.byte()
		}
	}
	var err error
	resp.text, err = r.text()
	return err
}

// text reads up to the line end.
func (r *reader) text() (string, error) {
	var b []byte
	for {
		c, err := r.peek()
		if err != nil {
			return "", err
		}
		if c == '\r' || c == '\n' {
			return string(b), nil
		}
		r.byte()
		b = append(b, c)
	}
}

// value reads one value: atom, quoted string, literal, literal8, NIL or a
// parenthesized list.
func (r *reader) value(depth int) (value, error) {
	r.items++
	if r.items > r.lim.MaxItems {
		return value{}, protoErr("more than %d values in a response", r.lim.MaxItems)
	}
	c, err := r.peek()
	if err != nil {
		return value{}, err
	}
	switch c {
	case '(':
		if depth >= r.lim.MaxDepth {
			return value{}, protoErr("lists nested deeper than %d", r.lim.MaxDepth)
		}
		r.byte()
		v := value{kind: vList}
		for {
			c, err := r.peek()
			if err != nil {
				return value{}, err
			}
			if c == ')' {
				r.byte()
				return v, nil
			}
			if len(v.list) > 0 {
				if err := r.sp(); err != nil {
					return value{}, err
				}
			}
			e, err := r.value(depth + 1)
			if err != nil {
				return value{}, err
			}
			v.list = append(v.list, e)
		}
	case '"':
		s, err := r.quoted()
		return value{kind: vString, s: s}, err
	case '{':
		s, err := r.literal()
		return value{kind: vString, s: s}, err
	case '~':
		r.byte()
		if c, err := r.peek(); err != nil || c != '{' {
			// "~" alone is an atom character.
			a, err := r.atomRest("~")
			return value{kind: vAtom, s: a}, err
		}
		s, err := r.literal()
		return value{kind: vString, s: s}, err
	}
	a, err := r.atom(0)
	if err != nil {
		return value{}, err
	}
	if strings.EqualFold(a, "NIL") {
		return value{kind: vNIL}, nil
	}
	return value{kind: vAtom, s: a}, nil
}

func (r *reader) atomRest(prefix string) (string, error) {
	c, err := r.peek()
	if err != nil || !atomChar(c) {
		return prefix, err
	}
	a, err := r.atom(0)
	return prefix + a, err
}

// quoted reads a quoted string with \" and \\ escapes.
func (r *reader) quoted() (string, error) {
	if err := r.expect('"'); err != nil {
		return "", err
	}
	var b []byte
	for {
		c, err := r.byte()
		if err != nil {
			return "", err
		}
		switch c {
		case '"':
			return string(b), nil
		case '\\':
			if c, err = r.byte(); err != nil {
				return "", err
			}
			if c != '"' && c != '\\' {
				return "", protoErr("bad escape in quoted string")
			}
		case '\r', '\n', 0:
			return "", protoErr("unterminated quoted string")
		}
		b = append(b, c)
	}
}

// literal reads "{n}" CRLF and n bytes (also "{n+}", which servers do
// not send but costs nothing to accept).
func (r *reader) literal() (string, error) {
	if err := r.expect('{'); err != nil {
		return "", err
	}
	var n int
	digits := 0
	for {
		c, err := r.byte()
		if err != nil {
			return "", err
		}
		if c >= '0' && c <= '9' {
			digits++
			n = n*10 + int(c-'0')
			if n > r.lim.MaxLiteral {
				return "", protoErr("literal larger than %d bytes", r.lim.MaxLiteral)
			}
			continue
		}
		if c == '+' {
			c, err = r.byte()
			if err != nil {
				return "", err
			}
		}
		if c != '}' || digits == 0 {
			return "", protoErr("bad literal header")
		}
		break
	}
	if err := r.crlf(); err != nil {
		return "", err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return "", err
	}
	return string(b), nil
}

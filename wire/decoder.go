package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/quickimap/quickimap/imap"
)

// Decoder reads IMAP commands (server side) from a buffered stream, one token
// at a time. Each method consumes the token it names or returns an error
// that is a *SyntaxError or *LimitError (or the I/O error of the stream, in
// which case the connection is gone).
//
// Keywords are compared case-insensitively by the caller (Atom returns the
// atom as sent; use strings.EqualFold or ToUpper).
//
// Literals: when a synchronizing literal "{n}" ends a line, the Decoder calls
// the continuation function set with SetContinuation before it reads the
// literal's bytes, so that the server can send "+ Ready". When the function
// returns an error (for example because the literal is too big and the
// server chose to refuse it) the error is returned by the method that was
// reading. Non-synchronizing literals "{n+}" (RFC 7888, LITERAL+) are read
// without a continuation. A literal larger than Limits.MaxLiteral gives a
// *LimitError with Code "TOOBIG" before any "+" is sent; for a synchronizing
// literal the connection stays usable (the client has not sent the bytes).
// At the same point the caller may refuse a large literal (SetAdmit), or
// choose where a literal's bytes go instead of memory (LiteralTo), so
// that what many connections hold together stays bounded.
//
// A method that fails never consumes the line end that follows the
// offending token, so that Discard can find it. The Decoder never reads
// beyond the end of the current command, except for what the
// *bufio.Reader already holds.
type Decoder struct {
	r     *bufio.Reader
	lim   Limits
	cont  func() error
	admit func(n int64) error

	line  int   // bytes of the current physical line consumed, without line ends
	cmd   int64 // bytes of the current command consumed, literals included
	depth int   // nesting of List calls
	// done is set when the final line end of the command has been
	// consumed (CRLF or Line succeeded), so that Discard has nothing to do.
	done bool
	// lit is a literal announcement consumed up to its "}" whose line end
	// has not been consumed because the literal was refused.
	lit   pendingLit
	fatal *LimitError // a fatal error of this command, returned by Discard

	buf []byte // scratch for tokens that span buffer refills
}

type pendingLit struct {
	n    int64
	sync bool
	ok   bool
}

// maxScratch bounds the literals read into the reusable scratch buffer by
// String and friends.
const maxScratch = 64 << 10

// NewDecoder returns a Decoder reading from r with the given limits.
func NewDecoder(r *bufio.Reader, lim Limits) *Decoder {
	return &Decoder{r: r, lim: lim.WithDefaults()}
}

// maxKeptScratch is the largest scratch buffer Reset keeps.
const maxKeptScratch = 1 << 10

// Reset makes the Decoder read from r, which may be another buffer over
// the same stream (the caller moves nothing: bytes r holds are the next
// ones read). It keeps the limits and the continuation, and drops a
// scratch buffer grown large by a long token, so that a connection that
// waits holds little.
func (d *Decoder) Reset(r *bufio.Reader) {
	d.r = r
	if cap(d.buf) > maxKeptScratch {
		d.buf = nil
	}
}

// SetContinuation sets the function called before the bytes of a
// synchronizing literal are read.
func (d *Decoder) SetContinuation(fn func() error) { d.cont = fn }

// SetAdmit sets the function asked, with its size, whether a literal
// larger than the scratch buffer (64 KiB) may be read into memory by
// Literal, String, Astring, NString or ListMailbox, so that the caller
// can bound the memory literals take. It is called after the limits are
// checked and before the continuation; an error refuses the literal as
// a too-big one is refused (for a synchronizing literal no "+" is sent;
// a non-synchronizing one is skipped by Discard).
func (d *Decoder) SetAdmit(fn func(n int64) error) { d.admit = fn }

// SetLimits changes the limits (for example after authentication).
func (d *Decoder) SetLimits(lim Limits) { d.lim = lim.WithDefaults() }

// Begin starts a new command: it resets the per-command counters (MaxCommand
// and the line length) and must be called before Tag.
func (d *Decoder) Begin() {
	d.line, d.cmd, d.depth = 0, 0, 0
	d.done = false
	d.lit = pendingLit{}
	d.fatal = nil
}

// ---- low-level helpers ----

func syntaxError(msg string) error { return &SyntaxError{Msg: msg} }

func (d *Decoder) setFatal(code, msg string) error {
	d.fatal = &LimitError{Code: code, Msg: msg, Fatal: true}
	return d.fatal
}

// unexpected builds the SyntaxError for byte c where want was expected.
func unexpected(c byte, want string) error {
	var found string
	switch {
	case c == '\r' || c == '\n':
		found = "end of line"
	case c == ' ':
		found = "SP"
	case c > ' ' && c < 0x7f:
		found = "'" + string(rune(c)) + "'"
	default:
		found = fmt.Sprintf("byte 0x%02X", c)
	}
	return &SyntaxError{Msg: "expected " + want + ", found " + found}
}

// avail returns the buffered bytes, reading if none are buffered. It
// never returns an empty slice without an error.
func (d *Decoder) avail() ([]byte, error) {
	n := d.r.Buffered()
	if n == 0 {
		if _, err := d.r.Peek(1); err != nil {
			return nil, err
		}
		n = d.r.Buffered()
	}
	b, _ := d.r.Peek(n)
	return b, nil
}

// peekByte returns the next byte without consuming it.
func (d *Decoder) peekByte() (byte, error) {
	b, err := d.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// advance consumes n bytes of the current line (already buffered), checking
// the line and command limits first.
func (d *Decoder) advance(n int) error {
	if d.line+n > d.lim.MaxLine {
		return &LimitError{Code: "LIMIT", Msg: "command line too long"}
	}
	if d.cmd+int64(n) > d.lim.MaxCommand {
		return d.setFatal("LIMIT", "command too long")
	}
	d.r.Discard(n)
	d.line += n
	d.cmd += int64(n)
	d.done = false
	return nil
}

// peekEOL returns the length of the line end (1 for LF, 2 for CRLF) that
// comes next, or 0 if the next bytes are not a line end.
func (d *Decoder) peekEOL() (int, error) {
	b, err := d.r.Peek(1)
	if err != nil {
		return 0, err
	}
	switch b[0] {
	case '\n':
		return 1, nil
	case '\r':
		b, err = d.r.Peek(2)
		if len(b) == 2 && b[1] == '\n' {
			return 2, nil
		}
		return 0, err
	}
	return 0, nil
}

// consumeEOL consumes a line end of n bytes found by peekEOL.
func (d *Decoder) consumeEOL(n int) error {
	if d.cmd+int64(n) > d.lim.MaxCommand {
		return d.setFatal("LIMIT", "command too long")
	}
	d.r.Discard(n)
	d.cmd += int64(n)
	d.line = 0
	return nil
}

// scan reads 1*c for the characters c of t, after prefix (which may be
// empty and does not count as a character of the token).
func (d *Decoder) scan(t *charTable, prefix, what string) (string, error) {
	acc := append(d.buf[:0], prefix...)
	defer func() { d.buf = acc[:0] }()
	for {
		b, err := d.avail()
		if err != nil {
			if len(acc) > len(prefix) {
				return string(acc), nil // the error comes back next time
			}
			return "", err
		}
		i := 0
		for i < len(b) && t[b[i]] {
			i++
		}
		if i == len(b) {
			acc = append(acc, b...)
			if err := d.advance(i); err != nil {
				return "", err
			}
			continue
		}
		if b[i] >= 0x80 {
			return "", syntaxError("8-bit character in " + what)
		}
		if i == 0 && len(acc) == len(prefix) {
			return "", unexpected(b[0], what)
		}
		var s string
		if len(acc) == 0 {
			s = string(b[:i])
		} else {
			acc = append(acc, b[:i]...)
			s = string(acc)
		}
		if err := d.advance(i); err != nil {
			return "", err
		}
		return s, nil
	}
}

// digits reads 1*DIGIT as a number no larger than max. When saturate is
// set, a larger number gives max instead of an error.
func (d *Decoder) digits(max uint64, saturate bool, what string) (uint64, error) {
	var v uint64
	n := 0
	for {
		b, err := d.avail()
		if err != nil {
			if n > 0 {
				return v, nil
			}
			return 0, err
		}
		i := 0
		for ; i < len(b); i++ {
			c := b[i]
			if c < '0' || c > '9' {
				break
			}
			dg := uint64(c - '0')
			if v > (max-dg)/10 {
				if !saturate {
					return 0, syntaxError(what + " too large")
				}
				v = max
				continue
			}
			v = v*10 + dg
		}
		if i == 0 && n == 0 {
			return 0, unexpected(b[0], what)
		}
		more := i == len(b)
		if err := d.advance(i); err != nil {
			return 0, err
		}
		n += i
		if !more {
			return v, nil
		}
	}
}

// ---- tokens ----

// Tag reads a command tag (RFC 3501 "tag": 1*<any ASTRING-CHAR except "+">).
func (d *Decoder) Tag() (string, error) { return d.scan(tagChars, "", "tag") }

// SP reads exactly one space.
func (d *Decoder) SP() error {
	c, err := d.peekByte()
	if err != nil {
		return err
	}
	if c != ' ' {
		return unexpected(c, "SP")
	}
	return d.advance(1)
}

// CRLF reads the end of the command line. Being liberal, a bare LF is
// accepted as well.
func (d *Decoder) CRLF() error {
	n, err := d.peekEOL()
	if err != nil {
		return err
	}
	if n == 0 {
		c, _ := d.peekByte()
		if c == '\r' {
			return syntaxError("expected LF after CR")
		}
		return unexpected(c, "end of line")
	}
	if err := d.consumeEOL(n); err != nil {
		return err
	}
	d.done = true
	return nil
}

// AtEOL reports whether the next bytes are the end of the line (CRLF or LF),
// without consuming them. (A CR alone is taken for the start of a CRLF.)
func (d *Decoder) AtEOL() bool {
	c, err := d.peekByte()
	return err == nil && (c == '\r' || c == '\n')
}

// Peek returns the next byte without consuming it (0 at end of input).
func (d *Decoder) Peek() byte {
	c, _ := d.peekByte()
	return c
}

// Special consumes the byte c (such as '(' or ')') or fails.
func (d *Decoder) Special(c byte) error {
	got, err := d.peekByte()
	if err != nil {
		return err
	}
	if got != c {
		return unexpected(got, "'"+string(rune(c))+"'")
	}
	return d.advance(1)
}

// Maybe consumes the byte c if it is next and reports whether it did.
// (If consuming it would exceed a limit, Maybe reports false and the next
// method fails.)
func (d *Decoder) Maybe(c byte) bool {
	ok, _ := d.maybe(c)
	return ok
}

func (d *Decoder) maybe(c byte) (bool, error) {
	got, err := d.peekByte()
	if err != nil || got != c {
		return false, nil
	}
	if err := d.advance(1); err != nil {
		return false, err
	}
	return true, nil
}

// Atom reads an atom: 1*ATOM-CHAR (RFC 3501 §9).
//
// Note that "[" is an ATOM-CHAR: on "BODY.PEEK[HEADER]" Atom returns
// "BODY.PEEK[HEADER"; use AtomUntil('[') for fetch attributes.
func (d *Decoder) Atom() (string, error) { return d.scan(atomChars, "", "atom") }

// AtomUntil reads an atom that also ends before the byte stop, for example
// a fetch attribute name before its section ("BODY.PEEK" of
// "BODY.PEEK[HEADER]", with stop '[').
func (d *Decoder) AtomUntil(stop byte) (string, error) {
	if stop == '[' {
		return d.scan(fetchAttChars, "", "atom")
	}
	if !atomChars[stop] {
		return d.scan(atomChars, "", "atom")
	}
	t := *atomChars
	t[stop] = false
	return d.scan(&t, "", "atom")
}

// Quoted reads a quoted string, with \" and \\ escapes. An unterminated
// quoted string (CRLF before the closing quote) is a SyntaxError. 8-bit
// bytes are accepted as they are (UTF-8, RFC 6855); NUL is an error.
func (d *Decoder) Quoted() (string, error) {
	if err := d.Special('"'); err != nil {
		if _, ok := err.(*SyntaxError); ok {
			c, _ := d.peekByte()
			return "", unexpected(c, "quoted string")
		}
		return "", err
	}
	acc := d.buf[:0]
	defer func() { d.buf = acc[:0] }()
	for {
		b, err := d.avail()
		if err != nil {
			return "", err
		}
		i := 0
		for i < len(b) {
			c := b[i]
			if c == '"' || c == '\\' || c == '\r' || c == '\n' || c == 0 {
				break
			}
			i++
		}
		if i > 0 {
			if len(acc) == 0 && i < len(b) && b[i] == '"' {
				s := string(b[:i])
				if err := d.advance(i + 1); err != nil {
					return "", err
				}
				return s, nil
			}
			acc = append(acc, b[:i]...)
			if err := d.advance(i); err != nil {
				return "", err
			}
			continue
		}
		switch b[0] {
		case '"':
			if err := d.advance(1); err != nil {
				return "", err
			}
			return string(acc), nil
		case '\\':
			e, err := d.r.Peek(2)
			if err != nil {
				return "", err
			}
			if e[1] != '"' && e[1] != '\\' {
				if e[1] == '\r' || e[1] == '\n' {
					return "", syntaxError("unterminated quoted string")
				}
				return "", syntaxError("invalid escape in quoted string")
			}
			acc = append(acc, e[1])
			if err := d.advance(2); err != nil {
				return "", err
			}
		case 0:
			return "", syntaxError("NUL in quoted string")
		default: // CR or LF
			return "", syntaxError("unterminated quoted string")
		}
	}
}

// Literal reads a literal ("{n}" CRLF or "{n+}" CRLF, then n bytes). Being
// liberal, it also reads a literal8 ("~{n}" or "~{n+}", RFC 3516/RFC 4466).
func (d *Decoder) Literal() ([]byte, error) {
	n, err := d.literalStart(0, "", d.admitLarge)
	if err != nil {
		return nil, err
	}
	return d.literalData(n, false)
}

// LiteralTo reads a literal like Literal, but lets sink choose, from the
// literal's size, where its bytes go: sink is called after the limits
// are checked and before the continuation of a synchronizing literal.
// When it returns a nil Writer the literal is read into memory and
// returned, as Literal does (without asking the SetAdmit function);
// otherwise the bytes are written to w as they arrive, through a buffer
// of the decoder's reader, and LiteralTo returns nil data. An error from
// sink refuses the literal as a too-big one is refused; an error from w
// is returned as it is (the literal is then only partly read).
func (d *Decoder) LiteralTo(sink func(n int64) (io.Writer, error)) ([]byte, error) {
	var w io.Writer
	n, err := d.literalStart(0, "", func(n int64) error {
		var err error
		w, err = sink(n)
		return err
	})
	if err != nil {
		return nil, err
	}
	if w == nil {
		return d.literalData(n, false)
	}
	d.cmd += n
	d.done = false
	for n > 0 {
		b, err := d.avail()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		k := int(min(int64(len(b)), n))
		if _, err := w.Write(b[:k]); err != nil {
			return nil, err
		}
		d.r.Discard(k)
		n -= int64(k)
	}
	return nil, nil
}

// admitLarge asks the SetAdmit function about a literal that does not
// fit the scratch buffer.
func (d *Decoder) admitLarge(n int64) error {
	if d.admit == nil || n <= maxScratch {
		return nil
	}
	return d.admit(n)
}

// literalString reads a literal, which must be next, as a string.
func (d *Decoder) literalString() (string, error) {
	n, err := d.literalStart(0, "", d.admitLarge)
	if err != nil {
		return "", err
	}
	b, err := d.literalData(n, true)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// literalStart reads a literal announcement through its line end, checks
// the limits and calls the continuation function for a synchronizing
// literal, after asking admit (when not nil) whether the literal may be
// read. It returns the size of the literal, whose bytes come next.
// On failure the line end is left unconsumed and d.lit tells Discard what
// the announcement was. A max above zero is a bound of the caller's,
// checked with the limits (before the continuation); what names the value
// in the error.
func (d *Decoder) literalStart(max int64, what string, admit func(n int64) error) (int64, error) {
	c, err := d.peekByte()
	if err != nil {
		return 0, err
	}
	switch c {
	case '~':
		b, err := d.r.Peek(2)
		if err != nil {
			return 0, err
		}
		if b[1] != '{' {
			return 0, unexpected(b[1], "'{'")
		}
		if err := d.advance(2); err != nil {
			return 0, err
		}
	case '{':
		if err := d.advance(1); err != nil {
			return 0, err
		}
	default:
		return 0, unexpected(c, "literal")
	}
	v, err := d.digits(math.MaxInt64, true, "literal size")
	if err != nil {
		return 0, err
	}
	n := int64(v)
	nonSync, err := d.maybe('+')
	if err != nil {
		return 0, err
	}
	if err := d.Special('}'); err != nil {
		return 0, err
	}
	d.lit = pendingLit{n: n, sync: !nonSync, ok: true}
	eol, err := d.peekEOL()
	if err != nil {
		return 0, err
	}
	if eol == 0 {
		c, _ := d.peekByte()
		return 0, unexpected(c, "CRLF after literal size")
	}
	if max > 0 && n > max && (!nonSync || n <= d.lim.MaxNonSyncLiteral && d.cmd+int64(eol)+n <= d.lim.MaxCommand) {
		// Not fatal: a synchronizing literal is never sent, and a
		// non-synchronizing one within the limits is skipped (beyond
		// them, the checks below make it fatal).
		return 0, &LimitError{Code: "LIMIT", Msg: what + " too long"}
	}
	if nonSync {
		if n > d.lim.MaxNonSyncLiteral || d.cmd+int64(eol)+n > d.lim.MaxCommand {
			return 0, d.setFatal("TOOBIG", "non-synchronizing literal too big")
		}
		if n > d.lim.MaxLiteral {
			return 0, &LimitError{Code: "TOOBIG", Msg: "literal too big"}
		}
		if admit != nil {
			if err := admit(n); err != nil {
				return 0, err
			}
		}
	} else {
		if n > d.lim.MaxLiteral || d.cmd+int64(eol)+n > d.lim.MaxCommand {
			return 0, &LimitError{Code: "TOOBIG", Msg: "literal too big"}
		}
		if admit != nil {
			if err := admit(n); err != nil {
				return 0, err
			}
		}
		if d.cont != nil {
			if err := d.cont(); err != nil {
				return 0, err
			}
		}
	}
	if err := d.consumeEOL(eol); err != nil {
		return 0, err
	}
	d.lit = pendingLit{}
	return n, nil
}

// literalData reads the n bytes of a literal whose announcement
// literalStart has consumed. With scratch, a small literal is read into
// the decoder's scratch buffer, valid until the next call.
func (d *Decoder) literalData(n int64, scratch bool) ([]byte, error) {
	d.cmd += n
	d.done = false
	const chunk = 1 << 20
	var buf []byte
	switch {
	case scratch && n <= maxScratch:
		d.buf = slices.Grow(d.buf[:0], int(n))[:n]
		buf = d.buf
	case n <= chunk:
		buf = make([]byte, n)
	default:
		// Grow with the data actually received, not with the promise.
		buf = make([]byte, 0, chunk)
		for int64(len(buf)) < n {
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, int(min(n-int64(len(buf)), int64(len(buf)))))
			}
			end := min(int64(cap(buf)), n)
			k, err := io.ReadFull(d.r, buf[len(buf):end])
			buf = buf[:len(buf)+k]
			if err != nil {
				return nil, unexpectedEOF(err)
			}
		}
		return buf, nil
	}
	if _, err := io.ReadFull(d.r, buf); err != nil {
		return nil, unexpectedEOF(err)
	}
	return buf, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// String reads a quoted string or a literal.
func (d *Decoder) String() (string, error) {
	c, err := d.peekByte()
	if err != nil {
		return "", err
	}
	switch c {
	case '"':
		return d.Quoted()
	case '{':
		return d.literalString()
	}
	return "", unexpected(c, "string")
}

// Astring reads an astring: 1*ASTRING-CHAR (atom chars and "]") or a string.
func (d *Decoder) Astring() (string, error) {
	return d.stringOr(astringChars, "astring")
}

func (d *Decoder) stringOr(t *charTable, what string) (string, error) {
	c, err := d.peekByte()
	if err != nil {
		return "", err
	}
	switch c {
	case '"':
		return d.Quoted()
	case '{':
		return d.literalString()
	}
	return d.scan(t, "", what)
}

// AstringMax reads an astring of at most max bytes, for values with a
// small bound of their own (what names it in errors): a longer literal is
// refused before its continuation request, so its bytes are never read,
// and a literal with NUL is a syntax error (CHAR8 excludes it, RFC 3501
// §9; atoms and quoted strings cannot hold one either).
func (d *Decoder) AstringMax(max int, what string) (string, error) {
	c, err := d.peekByte()
	if err != nil {
		return "", err
	}
	var s string
	switch c {
	case '"':
		s, err = d.Quoted()
	case '{', '~':
		var n int64
		if n, err = d.literalStart(int64(max), what, nil); err != nil {
			return "", err
		}
		var b []byte
		if b, err = d.literalData(n, true); err != nil {
			return "", err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return "", syntaxError("NUL in " + what)
		}
		s = string(b)
	default:
		s, err = d.scan(astringChars, "", what)
	}
	if err != nil {
		return "", err
	}
	if len(s) > max {
		return "", syntaxError(what + " too long")
	}
	return s, nil
}

// NString reads a string or NIL; ok is false for NIL.
func (d *Decoder) NString() (s string, ok bool, err error) {
	c, err := d.peekByte()
	if err != nil {
		return "", false, err
	}
	switch c {
	case '"':
		s, err = d.Quoted()
		return s, err == nil, err
	case '{':
		s, err = d.literalString()
		return s, err == nil, err
	}
	a, err := d.scan(atomChars, "", "string or NIL")
	if err != nil {
		return "", false, err
	}
	if !strings.EqualFold(a, "NIL") {
		return "", false, syntaxError("expected string or NIL")
	}
	return "", false, nil
}

// ListMailbox reads a list-mailbox (RFC 3501): 1*(ATOM-CHAR / "%" / "*" /
// "]") or a string.
func (d *Decoder) ListMailbox() (string, error) {
	return d.stringOr(listChars, "list-mailbox")
}

// Number reads a 32-bit number (RFC 3501 "number").
func (d *Decoder) Number() (uint32, error) {
	v, err := d.digits(math.MaxUint32, false, "number")
	return uint32(v), err
}

// NzNumber reads a non-zero 32-bit number.
func (d *Decoder) NzNumber() (uint32, error) {
	v, err := d.digits(math.MaxUint32, false, "number")
	if err == nil && v == 0 {
		return 0, syntaxError("expected non-zero number")
	}
	return uint32(v), err
}

// Number64 reads a 63-bit number (RFC 7162 mod-sequence-value / RFC 9051
// number64).
func (d *Decoder) Number64() (uint64, error) {
	return d.digits(math.MaxInt64, false, "number")
}

// SeqSet reads a sequence-set ("1:3,5,*"). Zero is rejected. The number of
// ranges is bounded by Limits.MaxItems. Being liberal, "$" (RFC 5182) is
// returned as a SyntaxError here; callers that support SEARCHRES check Peek
// first.
func (d *Decoder) SeqSet() (imap.SeqSet, error) {
	var set imap.SeqSet
	for {
		start, err := d.seqNumber()
		if err != nil {
			return nil, err
		}
		r := imap.NumRange{Start: start, Stop: start}
		colon, err := d.maybe(':')
		if err != nil {
			return nil, err
		}
		if colon {
			if r.Stop, err = d.seqNumber(); err != nil {
				return nil, err
			}
		}
		if len(set) >= d.lim.MaxItems {
			return nil, &LimitError{Code: "LIMIT", Msg: "too many ranges in sequence set"}
		}
		set = append(set, r)
		comma, err := d.maybe(',')
		if err != nil {
			return nil, err
		}
		if !comma {
			return set, nil
		}
	}
}

func (d *Decoder) seqNumber() (uint32, error) {
	c, err := d.peekByte()
	if err != nil {
		return 0, err
	}
	switch c {
	case '*':
		return 0, d.advance(1)
	case '$':
		return 0, syntaxError("$ (SEARCHRES) not allowed here")
	}
	v, err := d.digits(math.MaxUint32, false, "sequence number")
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, syntaxError("zero in sequence set")
	}
	return uint32(v), nil
}

// List reads a parenthesized list "(" [elem *(SP elem)] ")", calling elem
// for each element. Nesting is bounded by Limits.MaxDepth and the element
// count by Limits.MaxItems.
func (d *Decoder) List(elem func() error) error {
	if d.depth >= d.lim.MaxDepth {
		return &LimitError{Code: "LIMIT", Msg: "lists nested too deeply"}
	}
	if err := d.Special('('); err != nil {
		return err
	}
	d.depth++
	defer func() { d.depth-- }()
	if end, err := d.maybe(')'); end || err != nil {
		return err
	}
	for n := 1; ; n++ {
		if n > d.lim.MaxItems {
			return &LimitError{Code: "LIMIT", Msg: "too many list elements"}
		}
		if err := elem(); err != nil {
			return err
		}
		more, err := d.maybe(' ')
		if err != nil {
			return err
		}
		if !more {
			return d.Special(')')
		}
	}
}

// Flag reads a flag: "\" atom (a system flag or \* ) or an atom (keyword).
func (d *Decoder) Flag() (string, error) {
	c, err := d.peekByte()
	if err != nil {
		return "", err
	}
	if c != '\\' {
		return d.scan(atomChars, "", "flag")
	}
	if err := d.advance(1); err != nil {
		return "", err
	}
	if star, err := d.maybe('*'); star || err != nil {
		return `\*`, err
	}
	return d.scan(atomChars, `\`, "flag")
}

// DateTime reads a date-time (RFC 3501: quoted "dd-Mon-yyyy hh:mm:ss +zzzz",
// day may be space-padded). Being liberal, a one-digit day without padding
// is accepted too.
func (d *Decoder) DateTime() (time.Time, error) {
	c, err := d.peekByte()
	if err != nil {
		return time.Time{}, err
	}
	if c != '"' {
		return time.Time{}, unexpected(c, "date-time")
	}
	s, err := d.Quoted()
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseDateTime(s)
	if !ok {
		return time.Time{}, syntaxError("invalid date-time")
	}
	return t, nil
}

// Date reads a date (RFC 3501 "date": d-Mon-yyyy, quoted or not). The time
// is midnight UTC.
func (d *Decoder) Date() (time.Time, error) {
	c, err := d.peekByte()
	if err != nil {
		return time.Time{}, err
	}
	var s string
	if c == '"' {
		s, err = d.Quoted()
	} else {
		s, err = d.scan(atomChars, "", "date")
	}
	if err != nil {
		return time.Time{}, err
	}
	day, month, year, rest, ok := parseDateText(s)
	if !ok || rest != "" {
		return time.Time{}, syntaxError("invalid date")
	}
	return time.Date(year, month, day, 0, 0, 0, 0, time.UTC), nil
}

var monthNames = [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// parseDateText parses d-Mon-yyyy (day of one or two digits) at the start
// of s and checks that the day exists.
func parseDateText(s string) (day int, month time.Month, year int, rest string, ok bool) {
	i := 0
	for i < len(s) && i < 2 && isDigit(s[i]) {
		day = day*10 + int(s[i]-'0')
		i++
	}
	if i == 0 || len(s) < i+9 || s[i] != '-' || s[i+4] != '-' {
		return
	}
	mon := s[i+1 : i+4]
	for m, name := range monthNames {
		if strings.EqualFold(mon, name) {
			month = time.Month(m + 1)
		}
	}
	if month == 0 {
		return
	}
	y := s[i+5 : i+9]
	for j := 0; j < 4; j++ {
		if !isDigit(y[j]) {
			return
		}
		year = year*10 + int(y[j]-'0')
	}
	if day < 1 || day > daysIn(month, year) {
		return
	}
	return day, month, year, s[i+9:], true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// twoDigits parses exactly two digits.
func twoDigits(s string) (int, bool) {
	if len(s) < 2 || !isDigit(s[0]) || !isDigit(s[1]) {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// parseDateTime parses "dd-Mon-yyyy hh:mm:ss +zzzz" (day also " d" or "d").
func parseDateTime(s string) (time.Time, bool) {
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
		if len(s) < 2 || !isDigit(s[0]) || s[1] != '-' {
			return time.Time{}, false
		}
	}
	day, month, year, rest, ok := parseDateText(s)
	// rest: " hh:mm:ss +zzzz"
	if !ok || len(rest) != 15 || rest[0] != ' ' || rest[3] != ':' || rest[6] != ':' || rest[9] != ' ' {
		return time.Time{}, false
	}
	hh, ok1 := twoDigits(rest[1:])
	mm, ok2 := twoDigits(rest[4:])
	ss, ok3 := twoDigits(rest[7:])
	zh, ok4 := twoDigits(rest[11:])
	zm, ok5 := twoDigits(rest[13:])
	sign := rest[10]
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || (sign != '+' && sign != '-') ||
		hh > 23 || mm > 59 || ss > 60 || zm > 59 {
		return time.Time{}, false
	}
	if ss == 60 {
		ss = 59 // leap second: time.Time cannot hold it
	}
	off := (zh*60 + zm) * 60
	if sign == '-' {
		off = -off
	}
	loc := time.UTC
	if off != 0 {
		loc = time.FixedZone("", off)
	}
	return time.Date(year, month, day, hh, mm, ss, 0, loc), true
}

// Line reads a raw line up to CRLF (used for AUTHENTICATE continuation
// responses and IDLE's DONE) bounded by Limits.MaxLine, without the CRLF.
// A bare LF ends the line too.
func (d *Decoder) Line() (string, error) {
	d.done = false
	acc := d.buf[:0]
	defer func() { d.buf = acc[:0] }()
	for {
		b, err := d.avail()
		if err != nil {
			return "", err
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			// Keep a final CR, which may start the CRLF, unconsumed.
			n := len(b)
			if b[n-1] == '\r' {
				n--
			}
			if n == 0 {
				if _, err := d.r.Peek(2); err != nil {
					return "", err
				}
				continue
			}
			acc = append(acc, b[:n]...)
			if err := d.advance(n); err != nil {
				return "", err
			}
			continue
		}
		j := i
		if j > 0 && b[j-1] == '\r' {
			j--
		}
		acc = append(acc, b[:j]...)
		if err := d.advance(j); err != nil {
			return "", err
		}
		if err := d.consumeEOL(i + 1 - j); err != nil {
			return "", err
		}
		d.done = true
		return string(acc), nil
	}
}

// Discard skips the rest of the current command after an error: it reads to
// the end of the line; if the line ends with a non-synchronizing literal
// announcement "{n+}" it skips the n bytes (bounded by MaxNonSyncLiteral,
// else a fatal *LimitError) and goes on with the next line; if it ends with
// a synchronizing "{n}" it stops, since the client waits for a "+" that will
// not come. It returns a fatal *LimitError when the command cannot be
// skipped within the limits, and the I/O error if the stream fails.
//
// The bytes skipped count toward MaxCommand, not MaxLine. After the
// command's last line end has been read (CRLF or Line succeeded), Discard
// does nothing.
func (d *Decoder) Discard() error {
	if d.fatal != nil {
		return d.fatal
	}
	if d.done {
		return nil
	}
	if lit := d.lit; lit.ok {
		// A literal announcement was read and refused: its line end is
		// next unless the announcement was malformed.
		d.lit = pendingLit{}
		eol, err := d.peekEOL()
		if err != nil {
			return err
		}
		if eol > 0 {
			if err := d.consumeEOL(eol); err != nil {
				return err
			}
			if lit.sync {
				d.done = true
				return nil
			}
			if err := d.skipLiteral(lit.n); err != nil {
				return err
			}
		}
	}
	for {
		lit, err := d.skipLine()
		if err != nil {
			return err
		}
		if !lit.ok || lit.sync {
			d.done = true
			return nil
		}
		if err := d.skipLiteral(lit.n); err != nil {
			return err
		}
	}
}

// skipLine skips through the next LF and reports the literal announcement
// that ends the line, if any.
func (d *Decoder) skipLine() (pendingLit, error) {
	var tail [32]byte
	nt := 0
	for {
		b, err := d.avail()
		if err != nil {
			return pendingLit{}, err
		}
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i+1]
		}
		if d.cmd+int64(len(chunk)) > d.lim.MaxCommand {
			return pendingLit{}, d.setFatal("LIMIT", "command too long")
		}
		if len(chunk) >= len(tail) {
			nt = copy(tail[:], chunk[len(chunk)-len(tail):])
		} else {
			if nt+len(chunk) > len(tail) {
				keep := len(tail) - len(chunk)
				copy(tail[:], tail[nt-keep:nt])
				nt = keep
			}
			nt += copy(tail[nt:], chunk)
		}
		d.r.Discard(len(chunk))
		d.cmd += int64(len(chunk))
		d.done = false
		if i >= 0 {
			d.line = 0
			return parseTail(tail[:nt]), nil
		}
	}
}

// parseTail recognises a literal announcement at the end of a line (t ends
// with LF).
func parseTail(t []byte) pendingLit {
	t = t[:len(t)-1]
	if n := len(t); n > 0 && t[n-1] == '\r' {
		t = t[:n-1]
	}
	n := len(t)
	if n < 3 || t[n-1] != '}' {
		return pendingLit{}
	}
	n--
	lit := pendingLit{sync: true, ok: true}
	if t[n-1] == '+' {
		lit.sync = false
		n--
	}
	end := n
	for n > 0 && isDigit(t[n-1]) {
		n--
	}
	if n == end || n == 0 || t[n-1] != '{' {
		return pendingLit{}
	}
	for _, c := range t[n:end] {
		dg := int64(c - '0')
		if lit.n > (math.MaxInt64-dg)/10 {
			lit.n = math.MaxInt64
			break
		}
		lit.n = lit.n*10 + dg
	}
	return lit
}

// skipLiteral skips the n bytes of a refused non-synchronizing literal.
func (d *Decoder) skipLiteral(n int64) error {
	if n > d.lim.MaxNonSyncLiteral || d.cmd+n > d.lim.MaxCommand {
		return d.setFatal("TOOBIG", "non-synchronizing literal too big to skip")
	}
	for n > 0 {
		k := int(min(n, 1<<30))
		m, err := d.r.Discard(k)
		d.cmd += int64(m)
		n -= int64(m)
		if err != nil {
			return unexpectedEOF(err)
		}
	}
	d.line = 0
	d.done = false
	return nil
}

package wire

import (
	"bufio"
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
type Decoder struct {
	// unexported fields
}

// NewDecoder returns a Decoder reading from r with the given limits.
func NewDecoder(r *bufio.Reader, lim Limits) *Decoder { panic("unimplemented") }

// SetContinuation sets the function called before the bytes of a
// synchronizing literal are read.
func (d *Decoder) SetContinuation(fn func() error) { panic("unimplemented") }

// SetLimits changes the limits (for example after authentication).
func (d *Decoder) SetLimits(lim Limits) { panic("unimplemented") }

// Begin starts a new command: it resets the per-command counters (MaxCommand
// and the line length) and must be called before Tag.
func (d *Decoder) Begin() { panic("unimplemented") }

// Tag reads a command tag (RFC 3501 "tag": 1*<any ASTRING-CHAR except "+">).
func (d *Decoder) Tag() (string, error) { panic("unimplemented") }

// SP reads exactly one space.
func (d *Decoder) SP() error { panic("unimplemented") }

// CRLF reads the end of the command line. Being liberal, a bare LF is
// accepted as well.
func (d *Decoder) CRLF() error { panic("unimplemented") }

// AtEOL reports whether the next bytes are the end of the line (CRLF or LF),
// without consuming them.
func (d *Decoder) AtEOL() bool { panic("unimplemented") }

// Peek returns the next byte without consuming it (0 at end of input).
func (d *Decoder) Peek() byte { panic("unimplemented") }

// Special consumes the byte c (such as '(' or ')') or fails.
func (d *Decoder) Special(c byte) error { panic("unimplemented") }

// Maybe consumes the byte c if it is next and reports whether it did.
func (d *Decoder) Maybe(c byte) bool { panic("unimplemented") }

// Atom reads an atom: 1*ATOM-CHAR (RFC 3501 §9).
func (d *Decoder) Atom() (string, error) { panic("unimplemented") }

// Quoted reads a quoted string, with \" and \\ escapes. An unterminated
// quoted string (CRLF before the closing quote) is a SyntaxError.
func (d *Decoder) Quoted() (string, error) { panic("unimplemented") }

// Literal reads a literal ("{n}" CRLF or "{n+}" CRLF, then n bytes).
func (d *Decoder) Literal() ([]byte, error) { panic("unimplemented") }

// String reads a quoted string or a literal.
func (d *Decoder) String() (string, error) { panic("unimplemented") }

// Astring reads an astring: 1*ASTRING-CHAR (atom chars and "]") or a string.
func (d *Decoder) Astring() (string, error) { panic("unimplemented") }

// NString reads a string or NIL; ok is false for NIL.
func (d *Decoder) NString() (s string, ok bool, err error) { panic("unimplemented") }

// ListMailbox reads a list-mailbox (RFC 3501): 1*(ATOM-CHAR / "%" / "*" /
// "]") or a string.
func (d *Decoder) ListMailbox() (string, error) { panic("unimplemented") }

// Number reads a 32-bit number (RFC 3501 "number").
func (d *Decoder) Number() (uint32, error) { panic("unimplemented") }

// NzNumber reads a non-zero 32-bit number.
func (d *Decoder) NzNumber() (uint32, error) { panic("unimplemented") }

// Number64 reads a 63-bit number (RFC 7162 mod-sequence-value / RFC 9051
// number64).
func (d *Decoder) Number64() (uint64, error) { panic("unimplemented") }

// SeqSet reads a sequence-set ("1:3,5,*"). Zero is rejected. The number of
// ranges is bounded by Limits.MaxItems. Being liberal, "$" (RFC 5182) is
// returned as a SyntaxError here; callers that support SEARCHRES check Peek
// first.
func (d *Decoder) SeqSet() (imap.SeqSet, error) { panic("unimplemented") }

// List reads a parenthesized list "(" [elem *(SP elem)] ")", calling elem
// for each element. Nesting is bounded by Limits.MaxDepth and the element
// count by Limits.MaxItems.
func (d *Decoder) List(elem func() error) error { panic("unimplemented") }

// Flag reads a flag: "\" atom (a system flag or \* ) or an atom (keyword).
func (d *Decoder) Flag() (string, error) { panic("unimplemented") }

// DateTime reads a date-time (RFC 3501: quoted "dd-Mon-yyyy hh:mm:ss +zzzz",
// day may be space-padded).
func (d *Decoder) DateTime() (time.Time, error) { panic("unimplemented") }

// Date reads a date (RFC 3501 "date": d-Mon-yyyy, quoted or not).
func (d *Decoder) Date() (time.Time, error) { panic("unimplemented") }

// Line reads a raw line up to CRLF (used for AUTHENTICATE continuation
// responses and IDLE's DONE) bounded by Limits.MaxLine, without the CRLF.
func (d *Decoder) Line() (string, error) { panic("unimplemented") }

// Discard skips the rest of the current command after an error: it reads to
// the end of the line; if the line ends with a non-synchronizing literal
// announcement "{n+}" it skips the n bytes (bounded by MaxNonSyncLiteral,
// else a fatal *LimitError) and goes on with the next line; if it ends with
// a synchronizing "{n}" it stops, since the client waits for a "+" that will
// not come. It returns a fatal *LimitError when the command cannot be
// skipped within the limits, and the I/O error if the stream fails.
func (d *Decoder) Discard() error { panic("unimplemented") }

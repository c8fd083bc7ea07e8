package wire

import (
	"bufio"
	"time"

	"github.com/quickimap/quickimap/imap"
)

// Encoder writes IMAP responses with exact syntax. Its methods chain and
// remember the first write error, which Flush (and Err) return:
//
//	enc.Star().Atom("OK").SP().Code("UIDNEXT", 5).Text("Predicted next UID").CRLF()
//
// Strings are written as atoms only through Atom (the caller vouches for
// the characters); String, Astring and NString choose between a quoted
// string and a literal so that the output is always valid: a literal when
// the value has CR, LF, NUL or 8-bit bytes or is long, a quoted string with
// \" and \\ escapes otherwise.
type Encoder struct {
	// unexported fields
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w *bufio.Writer) *Encoder { panic("unimplemented") }

// Star writes "* ".
func (e *Encoder) Star() *Encoder { panic("unimplemented") }

// Plus writes "+ " (a continuation request).
func (e *Encoder) Plus() *Encoder { panic("unimplemented") }

// Tag writes the tag and a space.
func (e *Encoder) Tag(tag string) *Encoder { panic("unimplemented") }

// Atom writes s verbatim. Use it for keywords, flags and other tokens whose
// characters the caller controls.
func (e *Encoder) Atom(s string) *Encoder { panic("unimplemented") }

// SP writes a space.
func (e *Encoder) SP() *Encoder { panic("unimplemented") }

// Special writes one byte such as '(' or ')'.
func (e *Encoder) Special(c byte) *Encoder { panic("unimplemented") }

// Number writes a decimal number.
func (e *Encoder) Number(n uint32) *Encoder { panic("unimplemented") }

// Number64 writes a 64-bit decimal number.
func (e *Encoder) Number64(n uint64) *Encoder { panic("unimplemented") }

// String writes s as a quoted string or, when quoting cannot carry it, as a
// literal.
func (e *Encoder) String(s string) *Encoder { panic("unimplemented") }

// Quoted is String for callers that hold a plain string; same rules.
// Astring writes s as an atom when every byte is an ASTRING-CHAR and s is
// not empty and not "NIL" (case-insensitive), else as String.
func (e *Encoder) Astring(s string) *Encoder { panic("unimplemented") }

// NString writes NIL when ok is false, else String(s).
func (e *Encoder) NString(s string, ok bool) *Encoder { panic("unimplemented") }

// NIL writes NIL.
func (e *Encoder) NIL() *Encoder { panic("unimplemented") }

// Literal writes b as a literal "{n}" CRLF b.
func (e *Encoder) Literal(b []byte) *Encoder { panic("unimplemented") }

// Mailbox writes a UTF-8 mailbox name in modified UTF-7 as an astring
// ("INBOX" for the inbox, whatever its spelling). When utf8 is true (after
// ENABLE UTF8=ACCEPT) the name is sent as UTF-8 instead.
func (e *Encoder) Mailbox(name string, utf8 bool) *Encoder { panic("unimplemented") }

// Flags writes a parenthesized list of flags, e.g. (\Seen $Forwarded).
func (e *Encoder) Flags(flags []string) *Encoder { panic("unimplemented") }

// DateTime writes a quoted date-time "dd-Mon-yyyy hh:mm:ss +zzzz".
func (e *Encoder) DateTime(t time.Time) *Encoder { panic("unimplemented") }

// SeqSet writes a sequence set.
func (e *Encoder) SeqSet(s imap.SeqSet) *Encoder { panic("unimplemented") }

// Code writes a response code "[NAME]" or "[NAME args...]" followed by a
// space: args are written with fmt-like rules: string as Atom, uint32/
// uint64/int as numbers, []string as a parenthesized list of atoms.
// Use CodeStart/CodeEnd for codes whose arguments need other encodings.
func (e *Encoder) Code(name string, args ...any) *Encoder { panic("unimplemented") }

// CodeStart writes "[" name; CodeEnd writes "] ".
func (e *Encoder) CodeStart(name string) *Encoder { panic("unimplemented") }
func (e *Encoder) CodeEnd() *Encoder              { panic("unimplemented") }

// Text writes human-readable resp-text. CR and LF (and other control
// characters) in text are replaced by spaces so the line stays valid; an
// empty text is written as a single word so that "text = 1*TEXT-CHAR" holds.
func (e *Encoder) Text(s string) *Encoder { panic("unimplemented") }

// CRLF ends the response line.
func (e *Encoder) CRLF() *Encoder { panic("unimplemented") }

// Flush writes buffered data to the underlying writer and returns the first
// error seen.
func (e *Encoder) Flush() error { panic("unimplemented") }

// Err returns the first error seen.
func (e *Encoder) Err() error { panic("unimplemented") }

// Buffered reports the bytes waiting to be flushed.
func (e *Encoder) Buffered() int { panic("unimplemented") }

package wire

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
// the value has CR, LF, NUL (or any other control character) or 8-bit bytes
// or is long (over 1024 bytes), a quoted string with \" and \\ escapes
// otherwise.
type Encoder struct {
	// w is the buffer being written; with a pool, nil between a Flush
	// and the next write.
	w    *bufio.Writer
	pool *WriterPool
	dst  io.Writer // what a pooled buffer writes to

	err     error
	scratch [64]byte
}

// maxQuoted is the longest string written as a quoted string.
const maxQuoted = 1024

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w *bufio.Writer) *Encoder { return &Encoder{w: w} }

// NewPooledEncoder returns an Encoder writing to dst through a buffer
// borrowed from pool at the first write and given back by Flush, so that
// a connection holds no write buffer while it waits.
func NewPooledEncoder(dst io.Writer, pool *WriterPool) *Encoder {
	return &Encoder{pool: pool, dst: dst}
}

// WriterPool lends write buffers of one size to Encoders. It is safe for
// concurrent use.
type WriterPool struct {
	size int
	p    sync.Pool
}

// NewWriterPool returns a pool of buffers of size bytes.
func NewWriterPool(size int) *WriterPool { return &WriterPool{size: size} }

func (p *WriterPool) get(dst io.Writer) *bufio.Writer {
	if w, _ := p.p.Get().(*bufio.Writer); w != nil {
		w.Reset(dst)
		return w
	}
	return bufio.NewWriterSize(dst, p.size)
}

func (p *WriterPool) put(w *bufio.Writer) {
	w.Reset(nil) // holds no reference to the connection
	p.p.Put(w)
}

// buf returns the buffer to write to, borrowing one if needed.
func (e *Encoder) buf() *bufio.Writer {
	if e.w == nil {
		e.w = e.pool.get(e.dst)
	}
	return e.w
}

func (e *Encoder) writeString(s string) {
	if e.err == nil {
		_, e.err = e.buf().WriteString(s)
	}
}

func (e *Encoder) writeByte(c byte) {
	if e.err == nil {
		e.err = e.buf().WriteByte(c)
	}
}

func (e *Encoder) write(b []byte) {
	if e.err == nil {
		_, e.err = e.buf().Write(b)
	}
}

// Star writes "* ".
func (e *Encoder) Star() *Encoder { e.writeString("* "); return e }

// Plus writes "+ " (a continuation request).
func (e *Encoder) Plus() *Encoder { e.writeString("+ "); return e }

// Tag writes the tag and a space.
func (e *Encoder) Tag(tag string) *Encoder {
	e.writeString(tag)
	e.writeByte(' ')
	return e
}

// Atom writes s verbatim. Use it for keywords, flags and other tokens whose
// characters the caller controls.
func (e *Encoder) Atom(s string) *Encoder { e.writeString(s); return e }

// SP writes a space.
func (e *Encoder) SP() *Encoder { e.writeByte(' '); return e }

// Special writes one byte such as '(' or ')'.
func (e *Encoder) Special(c byte) *Encoder { e.writeByte(c); return e }

// Number writes a decimal number.
func (e *Encoder) Number(n uint32) *Encoder {
	e.write(strconv.AppendUint(e.scratch[:0], uint64(n), 10))
	return e
}

// Number64 writes a 64-bit decimal number.
func (e *Encoder) Number64(n uint64) *Encoder {
	e.write(strconv.AppendUint(e.scratch[:0], n, 10))
	return e
}

// quotable reports whether s can be a quoted string: at most maxQuoted
// bytes of printable US-ASCII (with utf8, valid UTF-8 too, RFC 6855).
// escapes says whether it has a quote or a backslash to escape.
func quotable(s string, utf8ok bool) (ok, escapes bool) {
	if len(s) > maxQuoted {
		return false, false
	}
	high := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return false, false
		case c >= 0x80:
			if !utf8ok {
				return false, false
			}
			high = true
		case c == '"' || c == '\\':
			escapes = true
		}
	}
	if high && !utf8.ValidString(s) {
		return false, false
	}
	return true, escapes
}

// String writes s as a quoted string or, when quoting cannot carry it, as a
// literal.
func (e *Encoder) String(s string) *Encoder { return e.string(s, false) }

func (e *Encoder) string(s string, utf8ok bool) *Encoder {
	ok, escapes := quotable(s, utf8ok)
	if !ok {
		return e.literalString(s)
	}
	if e.err != nil {
		return e
	}
	if w := e.buf(); !escapes && len(s)+2 <= w.Available() {
		// The common case, straight into the buffer.
		b := append(w.AvailableBuffer(), '"')
		b = append(b, s...)
		_, e.err = w.Write(append(b, '"'))
		return e
	}
	e.writeByte('"')
	for {
		i := strings.IndexAny(s, `"\`)
		if i < 0 {
			break
		}
		e.writeString(s[:i])
		e.writeByte('\\')
		e.writeByte(s[i])
		s = s[i+1:]
	}
	e.writeString(s)
	e.writeByte('"')
	return e
}

// Quoted is String for callers that hold a plain string; same rules.
func (e *Encoder) Quoted(s string) *Encoder { return e.String(s) }

// isAstringAtom reports whether s can be sent as an astring atom.
func isAstringAtom(s string) bool {
	if s == "" || strings.EqualFold(s, "NIL") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !astringChars[s[i]] {
			return false
		}
	}
	return true
}

// Astring writes s as an atom when every byte is an ASTRING-CHAR and s is
// not empty and not "NIL" (case-insensitive), else as String.
func (e *Encoder) Astring(s string) *Encoder {
	if isAstringAtom(s) {
		e.writeString(s)
		return e
	}
	return e.String(s)
}

// NString writes NIL when ok is false, else String(s).
func (e *Encoder) NString(s string, ok bool) *Encoder {
	if !ok {
		return e.NIL()
	}
	return e.String(s)
}

// NIL writes NIL.
func (e *Encoder) NIL() *Encoder { e.writeString("NIL"); return e }

func (e *Encoder) literalHeader(n int) {
	b := append(e.scratch[:0], '{')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '}', '\r', '\n')
	e.write(b)
}

// Literal writes b as a literal "{n}" CRLF b.
func (e *Encoder) Literal(b []byte) *Encoder {
	e.literalHeader(len(b))
	e.write(b)
	return e
}

// LiteralFrom writes a literal "{n}" CRLF of the n bytes of r at off,
// read in pieces through buf (which it needs to be non-empty), so that a
// large literal is never in memory whole. Should r end before n bytes,
// the Encoder's error is set: the literal's length is already on the
// wire, so the response cannot be completed.
func (e *Encoder) LiteralFrom(r io.ReaderAt, off, n int64, buf []byte) *Encoder {
	e.literalHeader64(n)
	for n > 0 && e.err == nil {
		p := buf[:min(int64(len(buf)), n)]
		k, err := r.ReadAt(p, off)
		if k < len(p) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			e.err = fmt.Errorf("wire: literal source: %w", err)
			break
		}
		// A piece at least as long as the buffer goes to the writer
		// without a copy into it (bufio.Writer.Write).
		e.write(p)
		off += int64(k)
		n -= int64(k)
	}
	return e
}

func (e *Encoder) literalHeader64(n int64) {
	b := append(e.scratch[:0], '{')
	b = strconv.AppendInt(b, n, 10)
	b = append(b, '}', '\r', '\n')
	e.write(b)
}

func (e *Encoder) literalString(s string) *Encoder {
	e.literalHeader(len(s))
	e.writeString(s)
	return e
}

// Mailbox writes a UTF-8 mailbox name in modified UTF-7 as an astring.
// The inbox is the name "INBOX" exactly (the store canonicalises its
// spelling), so no case folding happens here. When utf8 is true (after
// ENABLE UTF8=ACCEPT) the name is sent as UTF-8 instead, in a quoted
// string if it is not an atom (RFC 6855 §3).
func (e *Encoder) Mailbox(name string, utf8 bool) *Encoder {
	if !utf8 {
		return e.Astring(imap.EncodeMailboxName(name))
	}
	if isAstringAtom(name) {
		e.writeString(name)
		return e
	}
	return e.string(name, true)
}

// Flags writes a parenthesized list of flags, e.g. (\Seen $Forwarded).
func (e *Encoder) Flags(flags []string) *Encoder {
	e.writeByte('(')
	for i, f := range flags {
		if i > 0 {
			e.writeByte(' ')
		}
		e.writeString(f)
	}
	e.writeByte(')')
	return e
}

// DateTime writes a quoted date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (the day
// with two digits).
func (e *Encoder) DateTime(t time.Time) *Encoder {
	b := append(e.scratch[:0], '"')
	b = t.AppendFormat(b, "02-Jan-2006 15:04:05 -0700")
	b = append(b, '"')
	e.write(b)
	return e
}

// SeqSet writes a sequence set, without allocating: two ranges at a time
// through the scratch buffer (at most 2×21+2 bytes).
func (e *Encoder) SeqSet(s imap.SeqSet) *Encoder {
	for i := 0; i < len(s); i += 2 {
		b := e.scratch[:0]
		if i > 0 {
			b = append(b, ',')
		}
		e.write(s[i:min(i+2, len(s))].AppendTo(b))
	}
	return e
}

// Code writes a response code "[NAME]" or "[NAME args...]" followed by a
// space: args are written with fmt-like rules: string as Atom, uint32/
// uint64/int (and the other integer types) as numbers, []string as a
// parenthesized list of atoms, imap.SeqSet as a sequence set. An argument of
// another type sets the Encoder's error.
// Use CodeStart/CodeEnd for codes whose arguments need other encodings.
func (e *Encoder) Code(name string, args ...any) *Encoder {
	e.CodeStart(name)
	for _, a := range args {
		e.writeByte(' ')
		switch v := a.(type) {
		case string:
			e.writeString(v)
		case uint32:
			e.Number64(uint64(v))
		case uint64:
			e.Number64(v)
		case uint:
			e.Number64(uint64(v))
		case uint16:
			e.Number64(uint64(v))
		case int:
			e.int64(int64(v))
		case int64:
			e.int64(v)
		case int32:
			e.int64(int64(v))
		case []string:
			e.Flags(v)
		case imap.SeqSet:
			e.SeqSet(v)
		default:
			if e.err == nil {
				e.err = fmt.Errorf("wire: unsupported response code argument type %T", a)
			}
		}
	}
	return e.CodeEnd()
}

func (e *Encoder) int64(n int64) {
	e.write(strconv.AppendInt(e.scratch[:0], n, 10))
}

// CodeStart writes "[" name; CodeEnd writes "] ".
func (e *Encoder) CodeStart(name string) *Encoder {
	e.writeByte('[')
	e.writeString(name)
	return e
}
func (e *Encoder) CodeEnd() *Encoder { e.writeString("] "); return e }

// Text writes human-readable resp-text. CR and LF (and other control
// characters) in text are replaced by spaces so the line stays valid; an
// empty text is written as a single word ("done") so that
// "text = 1*TEXT-CHAR" holds. 8-bit bytes (UTF-8) are written as they are.
func (e *Encoder) Text(s string) *Encoder {
	if s == "" {
		e.writeString("done")
		return e
	}
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] >= 0x20 && s[i] != 0x7f {
			i++
		}
		e.writeString(s[:i])
		if i == len(s) {
			break
		}
		e.writeByte(' ')
		s = s[i+1:]
	}
	return e
}

// CRLF ends the response line.
func (e *Encoder) CRLF() *Encoder { e.writeString("\r\n"); return e }

// Flush writes buffered data to the underlying writer and returns the first
// error seen.
// A pooled Encoder gives its buffer back.
func (e *Encoder) Flush() error {
	if e.w == nil {
		return e.err
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	// A destination that buffers too (a compressor: RFC 4978) sends
	// what it holds.
	if f, ok := e.dst.(interface{ Flush() error }); ok && e.err == nil {
		e.err = f.Flush()
	}
	if e.pool != nil {
		e.pool.put(e.w)
		e.w = nil
	}
	return e.err
}

// Err returns the first error seen.
func (e *Encoder) Err() error { return e.err }

// Buffered reports the bytes waiting to be flushed.
func (e *Encoder) Buffered() int {
	if e.w == nil {
		return 0
	}
	return e.w.Buffered()
}

// Package wire reads IMAP commands and writes IMAP responses: the syntax of
// RFC 3501 §9 (with RFC 4466's extensions and RFC 7888 literals), and
// nothing of the semantics. The server and the client both use it.
package wire

import "fmt"

// Limits bound what one command may make the reader hold. Zero fields take
// the defaults of DefaultLimits.
type Limits struct {
	// MaxLine is the longest line (bytes up to CRLF, not counting
	// literals) of a command. Default 64 KiB.
	MaxLine int
	// MaxLiteral is the largest literal accepted. Default 64 MiB.
	MaxLiteral int64
	// MaxNonSyncLiteral is the largest non-synchronizing literal ({n+})
	// accepted; a larger one is LITERAL- territory (RFC 7888 §4). Default
	// MaxLiteral (we advertise LITERAL+).
	MaxNonSyncLiteral int64
	// MaxCommand bounds all the bytes of one command (lines and literals).
	// Default 80 MiB.
	MaxCommand int64
	// MaxDepth bounds the nesting of parenthesized lists. Default 16.
	MaxDepth int
	// MaxItems bounds the number of elements in one list and of ranges in
	// one sequence set. Default 100000.
	MaxItems int
}

// DefaultLimits are the limits used where a field of Limits is zero.
var DefaultLimits = Limits{
	MaxLine:           64 << 10,
	MaxLiteral:        64 << 20,
	MaxNonSyncLiteral: 64 << 20,
	MaxCommand:        80 << 20,
	MaxDepth:          16,
	MaxItems:          100000,
}

// WithDefaults returns l with its zero fields set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxLine > 0 {
		d.MaxLine = l.MaxLine
	}
	if l.MaxLiteral > 0 {
		d.MaxLiteral = l.MaxLiteral
		if l.MaxNonSyncLiteral == 0 {
			d.MaxNonSyncLiteral = l.MaxLiteral
		}
	}
	if l.MaxNonSyncLiteral > 0 {
		d.MaxNonSyncLiteral = l.MaxNonSyncLiteral
	}
	if l.MaxCommand > 0 {
		d.MaxCommand = l.MaxCommand
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxItems > 0 {
		d.MaxItems = l.MaxItems
	}
	return d
}

// SyntaxError is a command that does not parse. The server answers it with a
// tagged BAD carrying Msg, discards the rest of the command and goes on.
type SyntaxError struct {
	Msg string
}

func (e *SyntaxError) Error() string { return "syntax error: " + e.Msg }

// LimitError is a command that parses but exceeds a limit. Code is the
// RFC 5530 response code to send ("TOOBIG" for a literal, "LIMIT" for the
// rest). Fatal means the reader could not skip the offending input (for
// example a non-synchronizing literal larger than MaxNonSyncLiteral, or a
// line longer than MaxLine whose end could not be found within bounds), so
// the server must send a BYE and close the connection after the tagged
// response.
type LimitError struct {
	Code  string
	Msg   string
	Fatal bool
	// NO says that the command is well formed and refused for now (the
	// server's memory is spent, say): the tagged response is NO rather
	// than BAD. A TOOBIG is always a NO.
	NO bool
}

func (e *LimitError) Error() string { return fmt.Sprintf("[%s] %s", e.Code, e.Msg) }

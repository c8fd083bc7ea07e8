package message

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"

	"github.com/quickimap/quickimap/wire"
)

// render runs fn with an Encoder and returns what it wrote.
func render(fn func(enc *wire.Encoder)) string {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := wire.NewEncoder(w)
	fn(enc)
	if err := enc.Flush(); err != nil {
		panic(err)
	}
	return buf.String()
}

func envelopeString(p *Part) string {
	return render(func(enc *wire.Encoder) { WriteEnvelope(enc, p) })
}

func bodyString(p *Part, ext bool) string {
	return render(func(enc *wire.Encoder) { WriteBodyStructure(enc, p, ext) })
}

// checkSexp checks that s is one IMAP value built of parenthesized lists,
// NIL, numbers, quoted strings and literals, with single spaces between the
// elements of a list, except that lists may follow lists directly (body-
// type-mpart: 1*body SP media-subtype).
func checkSexp(s string) error {
	c := sexpChecker{s: s}
	if err := c.value(0); err != nil {
		return err
	}
	if c.i != len(s) {
		return fmt.Errorf("trailing data at %d: %q", c.i, s[c.i:])
	}
	return nil
}

type sexpChecker struct {
	s string
	i int
}

func (c *sexpChecker) errf(format string, a ...any) error {
	return fmt.Errorf("at %d: %s (near %q)", c.i, fmt.Sprintf(format, a...), c.s[max(0, c.i-20):min(len(c.s), c.i+20)])
}

func (c *sexpChecker) value(depth int) error {
	if depth > 500 {
		return c.errf("too deep")
	}
	if c.i >= len(c.s) {
		return c.errf("unexpected end")
	}
	switch ch := c.s[c.i]; {
	case ch == '(':
		c.i++
		if c.i < len(c.s) && c.s[c.i] == ')' {
			return c.errf("empty list")
		}
		prevList := false
		for first := true; ; first = false {
			if c.i >= len(c.s) {
				return c.errf("unclosed list")
			}
			if c.s[c.i] == ')' {
				c.i++
				return nil
			}
			if !first {
				if c.s[c.i] == ' ' {
					c.i++
				} else if !(prevList && c.s[c.i] == '(') {
					return c.errf("missing space")
				}
			}
			prevList = c.i < len(c.s) && c.s[c.i] == '('
			if err := c.value(depth + 1); err != nil {
				return err
			}
		}
	case ch == '"':
		c.i++
		for c.i < len(c.s) && c.s[c.i] != '"' {
			b := c.s[c.i]
			if b == '\\' {
				c.i++
				if c.i >= len(c.s) || (c.s[c.i] != '"' && c.s[c.i] != '\\') {
					return c.errf("bad escape")
				}
			} else if b < 0x20 || b >= 0x7f {
				return c.errf("bad char %q in quoted string", b)
			}
			c.i++
		}
		if c.i >= len(c.s) {
			return c.errf("unclosed quoted string")
		}
		c.i++
	case ch == '{':
		j := c.i + 1
		for j < len(c.s) && c.s[j] >= '0' && c.s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(c.s[c.i+1 : j])
		if err != nil || j+3 > len(c.s) || c.s[j:j+3] != "}\r\n" || j+3+n > len(c.s) {
			return c.errf("bad literal")
		}
		c.i = j + 3 + n
	case ch >= '0' && ch <= '9':
		for c.i < len(c.s) && c.s[c.i] >= '0' && c.s[c.i] <= '9' {
			c.i++
		}
	case len(c.s)-c.i >= 3 && c.s[c.i:c.i+3] == "NIL":
		c.i += 3
	default:
		return c.errf("unexpected %q", ch)
	}
	return nil
}

package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// conn is one lock-step IMAP connection on raw protocol lines: one
// command is written, then its responses are read up to the tagged one.
// It reads with bufio.Reader.ReadSlice and skips literals with Discard,
// so reading a response allocates nothing but the text of a NO or BAD.
// Only what the generator needs is parsed: EXISTS and EXPUNGE (to know the
// mailbox size), FETCH and SEARCH (counted), BYE, CAPABILITY, and the
// APPENDUID code of a tagged OK.
type conn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer

	timeout time.Duration
	tagN    uint64
	tag     []byte // the current command's tag, "a123"
	cmd     []byte // the command being built (tag included)
	long    []byte // a line longer than the reader's buffer, reassembled

	// From the responses since the last command was sent:
	exists    int // the mailbox size as the server last told it; -1 unknown
	fetches   int // untagged FETCH responses
	searchN   int // numbers in SEARCH responses
	bye       string
	caps      []string // from a CAPABILITY response or response code
	appendUID uint32   // from [APPENDUID v uid] in the tagged OK
	text      string   // tagged text of a NO or BAD
}

// Response status of a command.
const (
	statusOK   = 'O'
	statusNO   = 'N'
	statusBAD  = 'B'
	statusCont = '+' // a continuation request
)

// serverError is a tagged NO or BAD; its text is the server's.
type serverError struct {
	status string // "NO" or "BAD"
	text   string
}

func (e *serverError) Error() string { return e.status + " " + e.text }

// disconnectError is a connection that ended or failed under a command.
type disconnectError struct{ err error }

func (e *disconnectError) Error() string { return "disconnected: " + e.err.Error() }
func (e *disconnectError) Unwrap() error { return e.err }

// dial connects, reads the greeting and, as asked, starts TLS. It
// returns the greeting line.
func dial(ctx context.Context, cfg *Config, addr string) (*conn, string, error) {
	d := net.Dialer{Timeout: cfg.CommandTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	if cfg.TLS {
		tc := tls.Client(nc, cfg.tlsConfig(addr))
		_ = tc.SetDeadline(time.Now().Add(cfg.CommandTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, "", fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	c := &conn{
		nc:      nc,
		r:       bufio.NewReaderSize(nc, 32<<10),
		w:       bufio.NewWriterSize(nc, 16<<10),
		timeout: cfg.CommandTimeout,
		exists:  -1,
		tag:     make([]byte, 0, 16),
		cmd:     make([]byte, 0, 256),
	}
	_ = nc.SetReadDeadline(time.Now().Add(c.timeout))
	line, err := c.readSegment()
	if err != nil {
		nc.Close()
		return nil, "", &disconnectError{fmt.Errorf("reading greeting: %w", err)}
	}
	greeting := strings.TrimRight(string(line), "\r\n")
	if !strings.HasPrefix(greeting, "* OK") && !strings.HasPrefix(greeting, "* PREAUTH") {
		nc.Close()
		return nil, greeting, fmt.Errorf("greeting: %s", greeting)
	}
	c.parseCodeCaps(line)
	if cfg.StartTLS != StartTLSNever && !cfg.TLS {
		if err := c.startTLS(ctx, cfg, addr); err != nil {
			nc.Close()
			return nil, greeting, err
		}
	}
	return c, greeting, nil
}

// startTLS runs STARTTLS (RFC 3501 §6.2.1) when the server offers it,
// failing when it does not and TLS is required.
func (c *conn) startTLS(ctx context.Context, cfg *Config, addr string) error {
	if c.caps == nil {
		if err := c.simple("CAPABILITY"); err != nil {
			return fmt.Errorf("CAPABILITY: %w", err)
		}
	}
	if !hasCap(c.caps, "STARTTLS") {
		if cfg.StartTLS == StartTLSRequired {
			return errors.New("server does not offer STARTTLS")
		}
		return nil
	}
	if err := c.simple("STARTTLS"); err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	if c.r.Buffered() > 0 {
		// RFC 3501 §6.2.1 and RFC 2595: nothing may follow the OK in
		// clear text.
		return errors.New("STARTTLS: data after the tagged OK")
	}
	tc := tls.Client(c.nc, cfg.tlsConfig(addr))
	_ = tc.SetDeadline(time.Now().Add(c.timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.nc = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
	// RFC 3501 §6.2.1: capabilities learnt before TLS are discarded.
	c.caps = nil
	return nil
}

func (c *conn) close() error { return c.nc.Close() }

// begin starts a command: a new tag and the command buffer holding it.
func (c *conn) begin() {
	c.tagN++
	c.tag = append(c.tag[:0], 'a')
	c.tag = strconv.AppendUint(c.tag, c.tagN, 10)
	c.cmd = append(append(c.cmd[:0], c.tag...), ' ')
	c.fetches, c.searchN, c.appendUID, c.text = 0, 0, 0, ""
}

// send writes the command buffer with CRLF and reads the responses up to
// the tagged one or a continuation request. A NO or BAD is returned as a
// *serverError, a broken connection as a *disconnectError.
func (c *conn) send() (byte, error) {
	c.cmd = append(c.cmd, '\r', '\n')
	if err := c.write(c.cmd); err != nil {
		return 0, err
	}
	return c.read()
}

func (c *conn) write(p []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.w.Write(p); err != nil {
		return &disconnectError{err}
	}
	if err := c.w.Flush(); err != nil {
		return &disconnectError{err}
	}
	return nil
}

// simple runs a command that takes no literal.
func (c *conn) simple(cmd string) error {
	c.begin()
	c.cmd = append(c.cmd, cmd...)
	st, err := c.send()
	if err == nil && st == statusCont {
		err = fmt.Errorf("unexpected continuation request")
	}
	return err
}

// read reads responses up to the tagged response of the current command
// or a continuation request.
func (c *conn) read() (byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		line, err := c.readSegment()
		if err != nil {
			return 0, &disconnectError{err}
		}
		first := true
		for {
			lit, hasLit := literalSize(line)
			if first {
				if st, done, err := c.inspect(line); done || err != nil {
					return st, err
				}
				first = false
			}
			if !hasLit {
				break
			}
			if _, err := c.r.Discard(lit); err != nil {
				return 0, &disconnectError{err}
			}
			if line, err = c.readSegment(); err != nil {
				return 0, &disconnectError{err}
			}
		}
	}
}

// inspect looks at the first segment of a response line. done reports a
// tagged response or a continuation request.
func (c *conn) inspect(line []byte) (st byte, done bool, err error) {
	switch {
	case len(line) >= 2 && line[0] == '*' && line[1] == ' ':
		c.untagged(line[2:])
		return 0, false, nil
	case len(line) >= 1 && line[0] == '+':
		return statusCont, true, nil
	case len(line) > len(c.tag) && bytes.HasPrefix(line, c.tag) && line[len(c.tag)] == ' ':
		rest := line[len(c.tag)+1:]
		switch {
		case hasPrefixFold(rest, "OK"):
			c.parseCodeCaps(rest)
			if i := bytes.Index(rest, []byte("[APPENDUID ")); i >= 0 {
				f := bytes.Fields(rest[i+len("[APPENDUID "):])
				if len(f) >= 2 {
					u, _ := strconv.ParseUint(string(bytes.TrimRight(f[1], "]")), 10, 32)
					c.appendUID = uint32(u)
				}
			}
			return statusOK, true, nil
		case hasPrefixFold(rest, "NO"):
			c.text = trimCRLF(string(rest[min(3, len(rest)):]))
			return statusNO, true, &serverError{"NO", c.text}
		case hasPrefixFold(rest, "BAD"):
			c.text = trimCRLF(string(rest[min(4, len(rest)):]))
			return statusBAD, true, &serverError{"BAD", c.text}
		}
		return 0, true, fmt.Errorf("malformed tagged response %q", trimCRLF(string(line)))
	}
	// Another tag: not ours in lock step.
	return 0, true, fmt.Errorf("unexpected response %q", trimCRLF(string(line)))
}

// untagged handles the rest of an untagged response after "* ".
func (c *conn) untagged(s []byte) {
	if len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
		i := 0
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + int(s[i]-'0')
			i++
		}
		if i >= len(s) || s[i] != ' ' {
			return
		}
		kw := s[i+1:]
		switch {
		case hasPrefixFold(kw, "EXISTS"):
			c.exists = n
		case hasPrefixFold(kw, "EXPUNGE"):
			if c.exists > 0 {
				c.exists--
			}
		case hasPrefixFold(kw, "FETCH"):
			c.fetches++
		}
		return
	}
	switch {
	case hasPrefixFold(s, "SEARCH"):
		c.searchN += len(bytes.Fields(s[len("SEARCH"):]))
	case hasPrefixFold(s, "BYE"):
		c.bye = trimCRLF(string(s))
	case hasPrefixFold(s, "CAPABILITY"):
		c.caps = strings.Fields(string(s[len("CAPABILITY"):]))
	case hasPrefixFold(s, "OK"):
		c.parseCodeCaps(s)
	}
}

// parseCodeCaps takes the capabilities from a [CAPABILITY ...] response
// code in s.
func (c *conn) parseCodeCaps(s []byte) {
	i := bytes.Index(s, []byte("[CAPABILITY "))
	if i < 0 {
		return
	}
	rest := s[i+len("[CAPABILITY "):]
	if j := bytes.IndexByte(rest, ']'); j >= 0 {
		c.caps = strings.Fields(string(rest[:j]))
	}
}

// readSegment reads up to and including the next LF. The result is valid
// until the next read.
func (c *conn) readSegment() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == nil {
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	c.long = append(c.long[:0], line...)
	for {
		line, err = c.r.ReadSlice('\n')
		c.long = append(c.long, line...)
		if err == nil {
			return c.long, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// literalSize reports whether line ends with a literal's announcement
// "{N}" and returns N.
func literalSize(line []byte) (int, bool) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[i+1 : len(line)-1]))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// login authenticates with LOGIN or AUTHENTICATE PLAIN (RFC 4616; with
// SASL-IR, RFC 4959, when the server offers it).
func (c *conn) login(method AuthMethod, user, password string, saslIR bool) error {
	c.begin()
	if method == AuthPlain {
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
		c.cmd = append(c.cmd, "AUTHENTICATE PLAIN"...)
		if saslIR {
			c.cmd = append(append(c.cmd, ' '), resp...)
			return c.expectOK()
		}
		st, err := c.send()
		if err != nil {
			return err
		}
		if st != statusCont {
			return errors.New("AUTHENTICATE PLAIN: no continuation request")
		}
		if err := c.write([]byte(resp + "\r\n")); err != nil {
			return err
		}
		st, err = c.read()
		if err == nil && st == statusCont {
			err = errors.New("AUTHENTICATE PLAIN: a second continuation request")
		}
		return err
	}
	c.cmd = append(c.cmd, "LOGIN "...)
	c.cmd = appendAString(c.cmd, user)
	c.cmd = append(c.cmd, ' ')
	c.cmd = appendAString(c.cmd, password)
	return c.expectOK()
}

// expectOK sends the command buffer and wants a tagged OK.
func (c *conn) expectOK() error {
	st, err := c.send()
	if err == nil && st == statusCont {
		err = errors.New("unexpected continuation request")
	}
	return err
}

// appendAString appends s as an IMAP quoted string. The configuration
// checks that user names and passwords are quotable.
func appendAString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// quotable reports whether s can be sent as a quoted string: no CR, LF,
// NUL or 8-bit bytes.
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] == '\r' || s[i] == '\n' || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendLiteral sends the command buffer, which ends just before a
// literal, the literal's announcement and its bytes (parts), and empties
// the buffer for the rest of the command, which send completes. With
// nonSync it announces a LITERAL+ literal (RFC 7888) and writes on;
// otherwise it waits for the continuation request (RFC 3501 §7.5).
func (c *conn) appendLiteral(nonSync bool, size int, parts ...[]byte) error {
	c.cmd = append(c.cmd, '{')
	c.cmd = strconv.AppendInt(c.cmd, int64(size), 10)
	if nonSync {
		c.cmd = append(c.cmd, '+', '}', '\r', '\n')
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
		if _, err := c.w.Write(c.cmd); err != nil {
			return &disconnectError{err}
		}
	} else {
		c.cmd = append(c.cmd, '}', '\r', '\n')
		if err := c.write(c.cmd); err != nil {
			return err
		}
		st, err := c.read()
		if err != nil {
			return err
		}
		if st != statusCont {
			return errors.New("no continuation request for a literal")
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	for _, p := range parts {
		if _, err := c.w.Write(p); err != nil {
			return &disconnectError{err}
		}
	}
	c.cmd = c.cmd[:0]
	return nil
}

func hasCap(caps []string, name string) bool {
	for _, c := range caps {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s []byte, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a := s[i]
		if a >= 'a' && a <= 'z' {
			a -= 'a' - 'A'
		}
		if a != prefix[i] {
			return false
		}
	}
	return len(s) == len(prefix) || !isAtomChar(s[len(prefix)])
}

func isAtomChar(b byte) bool {
	return b > ' ' && b < 0x7f && !strings.ContainsRune(`(){%*"\]`, rune(b))
}

func trimCRLF(s string) string { return strings.TrimRight(s, "\r\n") }

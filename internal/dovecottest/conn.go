package dovecottest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const cmdTimeout = 10 * time.Second

// Conn is a minimal line-oriented IMAP connection for setting up and
// inspecting server state in tests (appending from "another client",
// expunging behind a client's back, ...). It is not the client under test.
type Conn struct {
	// Greeting is the server's first line, without CRLF.
	Greeting string

	t   testing.TB
	nc  net.Conn
	r   *bufio.Reader
	env *Env
	tag int
}

// Response is the outcome of one command.
type Response struct {
	Untagged []string // untagged and continuation lines, literals inlined
	Status   string   // "OK", "NO" or "BAD"
	Text     string   // the rest of the tagged line after the status
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection without LOGOUT.
func (c *Conn) Close() error { return c.nc.Close() }

// Write sends raw bytes.
func (c *Conn) Write(p []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(cmdTimeout))
	_, err := c.nc.Write(p)
	return err
}

var literalRE = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

// ReadLine reads one response line without its CRLF. Literals are read
// and inlined, so a FETCH with a body comes back as one string.
func (c *Conn) ReadLine() (string, error) {
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if b.Len() > 0 || line != "" {
				return b.String() + line, err
			}
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		b.WriteString(line)
		m := literalRE.FindStringSubmatch(line)
		if m == nil {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return b.String(), err
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// Do sends "TAG " + the formatted command and reads up to its tagged
// response. A continuation request ("+ ...") ends with an error, since Do
// has nothing to send; use LITERAL+ ({N+}) for literals.
func (c *Conn) Do(format string, args ...any) (*Response, error) {
	c.tag++
	tag := fmt.Sprintf("T%d", c.tag)
	cmd := fmt.Sprintf(format, args...)
	if err := c.Write([]byte(tag + " " + cmd + "\r\n")); err != nil {
		return nil, err
	}
	return c.readResponse(tag)
}

func (c *Conn) readResponse(tag string) (*Response, error) {
	resp := &Response{}
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(cmdTimeout))
		line, err := c.ReadLine()
		if err != nil {
			return resp, fmt.Errorf("reading response to %s: %w (so far: %q)", tag, err, resp.Untagged)
		}
		if strings.HasPrefix(line, tag+" ") {
			rest := line[len(tag)+1:]
			status, text, _ := strings.Cut(rest, " ")
			resp.Status, resp.Text = strings.ToUpper(status), text
			return resp, nil
		}
		resp.Untagged = append(resp.Untagged, line)
		if strings.HasPrefix(line, "+") {
			return resp, errors.New("unexpected continuation request: " + line)
		}
	}
}

// MustOK runs a command and fails the test unless it ends in OK. It
// returns the untagged lines.
func (c *Conn) MustOK(format string, args ...any) []string {
	c.t.Helper()
	resp, err := c.Do(format, args...)
	cmd := fmt.Sprintf(format, args...)
	if err != nil {
		c.t.Fatalf("dovecottest: %s: %v\n%s", cmd, err, c.logTail())
	}
	if resp.Status != "OK" {
		c.t.Fatalf("dovecottest: %s: %s %s (untagged %q)\n%s", cmd, resp.Status, resp.Text, resp.Untagged, c.logTail())
	}
	return resp.Untagged
}

func (c *Conn) logTail() string {
	if c.env == nil {
		return ""
	}
	return "--- dovecot log (tail)\n" + c.env.LogTail(15)
}

var appendUIDRE = regexp.MustCompile(`\[APPENDUID \d+ (\d+)\]`)

// Append APPENDs msg to mailbox with a LITERAL+ literal and returns the
// UID from APPENDUID. Bare LF line endings in msg become CRLF.
func (c *Conn) Append(mailbox, msg string) uint32 {
	c.t.Helper()
	msg = CRLF(msg)
	c.tag++
	tag := fmt.Sprintf("T%d", c.tag)
	if err := c.Write([]byte(fmt.Sprintf("%s APPEND %s {%d+}\r\n%s\r\n", tag, Quote(mailbox), len(msg), msg))); err != nil {
		c.t.Fatalf("dovecottest: APPEND: %v", err)
	}
	resp, err := c.readResponse(tag)
	if err != nil || resp.Status != "OK" {
		c.t.Fatalf("dovecottest: APPEND %s: %v %+v\n%s", mailbox, err, resp, c.logTail())
	}
	m := appendUIDRE.FindStringSubmatch(resp.Text)
	if m == nil {
		c.t.Fatalf("dovecottest: APPEND: no APPENDUID in %q", resp.Text)
	}
	uid, _ := strconv.ParseUint(m[1], 10, 32)
	return uint32(uid)
}

// CRLF converts bare LF line endings to CRLF.
func CRLF(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// Quote returns s as an IMAP quoted string.
func Quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

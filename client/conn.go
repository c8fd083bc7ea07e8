package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/quickimap/quickimap/wire"
)

// countConn counts bytes and round trips on the raw connection. A round
// trip is counted when the client reads after having written: it sent
// commands and now waits for their answers.
type countConn struct {
	net.Conn
	mu      sync.Mutex
	in, out int64
	rt      int
	wrote   bool
}

func (c *countConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.wrote {
		c.rt++
		c.wrote = false
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.out += int64(n)
	if n > 0 {
		c.wrote = true
	}
	c.mu.Unlock()
	return n, err
}

func (c *countConn) counts() (in, out int64, rt int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in, c.out, c.rt
}

// conn is one connection to the server.
type conn struct {
	raw     net.Conn // what Dial returned (closed by Drop)
	nc      net.Conn // raw or TLS over a countConn
	cc      *countConn
	br      *bufio.Reader
	bw      *bufio.Writer
	r       *reader
	timeout time.Duration
	dropped atomic.Bool

	// setupRT are the round trips counted while opening the connection,
	// until the client may send its first command after the greeting
	// (over TLS after STARTTLS); tlsRT those that TLS adds to a plain
	// connection's (see SyncResult.TLSRoundTrips).
	setupRT, tlsRT int

	tagN    int
	authTag string // the AUTHENTICATE/LOGIN in flight
	// done holds the tagged responses not yet claimed by wait.
	done map[string]*response
	// preCaps are the capabilities before authentication (greeting),
	// caps after; literalPlus says {n+} may be sent (RFC 7888).
	preCaps map[string]bool
	caps    map[string]bool
	authed  bool

	// Mailbox tracking.
	selected  bool
	exists    uint32
	qresync   bool // ENABLED QRESYNC seen
	condstore bool // a CONDSTORE enabling command succeeded
	bye       string
	loggedOut bool

	// zw compresses what bw holds after COMPRESS (compress.go).
	zw         *flate.Writer
	compressed bool
}

// setTransport reads and writes through nc (at the start, and after
// STARTTLS).
func (cn *conn) setTransport(nc net.Conn, l Limits) {
	cn.nc = nc
	cn.br = bufio.NewReaderSize(nc, 32<<10)
	cn.bw = bufio.NewWriterSize(nc, 16<<10)
	cn.r = newReader(cn.br, l)
}

func (cn *conn) hasCap(name string) bool {
	if cn.authed {
		return cn.caps[name]
	}
	return cn.preCaps[name]
}

func (cn *conn) literalPlus() bool {
	return cn.caps["LITERAL+"] || cn.preCaps["LITERAL+"]
}

func (cn *conn) nextTag() string {
	cn.tagN++
	return "a" + strconv.Itoa(cn.tagN)
}

// errConnClosed is returned when the connection was dropped.
var errConnClosed = errors.New("imap client: connection closed")

// byeError is a BYE that ended the connection.
type byeError struct{ text string }

func (e *byeError) Error() string { return "imap client: server said BYE: " + e.text }

// command builds one command with the wire package's Encoder, so that the
// client quotes exactly as the server's responses do (one source of truth
// for atom/quoted/literal choice). It returns the bytes, each synchronizing
// literal's header ending a segment.
func buildCommand(tag string, build func(e *wire.Encoder)) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	e := wire.NewEncoder(w)
	e.Tag(tag)
	build(e)
	e.CRLF()
	e.Flush() // writes into a bytes.Buffer cannot fail
	return buf.Bytes()
}

// splitLiterals splits an encoded command after each literal header
// "{n}\r\n". The Encoder never puts CR or LF in atoms or quoted strings,
// so every CRLF but the last ends a literal header; the n bytes after it
// are skipped (a literal may hold CRLF). With literalPlus the headers are
// rewritten to the non-synchronizing "{n+}" (RFC 7888) and there is one
// segment.
func splitLiterals(b []byte, literalPlus bool) ([][]byte, error) {
	var segs [][]byte
	var cur []byte
	for {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 || i+2 == len(b) {
			cur = append(cur, b...)
			return append(segs, cur), nil
		}
		open := bytes.LastIndexByte(b[:i], '{')
		if open < 0 || b[i-1] != '}' {
			return nil, fmt.Errorf("imap client: unexpected line break in a command")
		}
		n, err := strconv.Atoi(string(b[open+1 : i-1]))
		if err != nil || n < 0 || i+2+n > len(b) {
			return nil, fmt.Errorf("imap client: bad literal in a command")
		}
		if literalPlus {
			cur = append(cur, b[:i-1]...)
			cur = append(cur, "+}\r\n"...)
		} else {
			cur = append(cur, b[:i+2]...)
			segs = append(segs, cur)
			cur = nil
		}
		cur = append(cur, b[i+2:i+2+n]...)
		b = b[i+2+n:]
	}
}

// queue writes a command into the output buffer (not flushed) and
// returns its tag. A command with a synchronizing literal is sent up to
// the literal, flushed, and continued after the server's "+" (RFC 3501
// §7.5), which costs a round trip; with LITERAL+ it is not.
func (c *Client) queue(ctx context.Context, build func(e *wire.Encoder)) (string, error) {
	cn := c.cn
	tag := cn.nextTag()
	segs, err := splitLiterals(buildCommand(tag, build), cn.literalPlus())
	if err != nil {
		return "", err
	}
	for i, s := range segs {
		if _, err := cn.bw.Write(s); err != nil {
			return "", err
		}
		if i < len(segs)-1 {
			if err := c.flush(); err != nil {
				return "", err
			}
			if err := c.waitContinuation(ctx, tag); err != nil {
				return "", err
			}
		}
	}
	if c.opts.Logger.Enabled(ctx, levelTrace) {
		c.opts.Logger.Log(ctx, levelTrace, "C:", "line", string(segs[0]))
	}
	return tag, nil
}

func (c *Client) flush() error {
	c.cn.nc.SetWriteDeadline(time.Now().Add(c.cn.timeout))
	if err := c.cn.bw.Flush(); err != nil || c.cn.zw == nil {
		return err
	}
	return c.cn.zw.Flush()
}

// readResponse reads one response with the response timeout.
func (c *Client) readResponse(ctx context.Context) (*response, error) {
	cn := c.cn
	if cn.dropped.Load() {
		return nil, errConnClosed
	}
	cn.nc.SetReadDeadline(time.Now().Add(cn.timeout))
	// Checked after the deadline is set: a cancellation from now on
	// moves the deadline to the past (watchContext) and ends the read.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := cn.r.read()
	if err != nil {
		if cn.bye != "" {
			return nil, &byeError{cn.bye}
		}
		if cn.dropped.Load() {
			return nil, errConnClosed
		}
		return nil, err
	}
	return resp, nil
}

// dispatch handles one response: untagged ones update the state, tagged
// ones are kept for wait.
func (c *Client) dispatch(resp *response) error {
	switch resp.tag {
	case "*":
		return c.handleUntagged(resp)
	case "+":
		return nil
	}
	c.onTagged(resp)
	c.cn.done[resp.tag] = resp
	return nil
}

// wait reads responses until the tagged response of tag, and returns it.
func (c *Client) wait(ctx context.Context, tag string) (*response, error) {
	cn := c.cn
	for {
		if r, ok := cn.done[tag]; ok {
			delete(cn.done, tag)
			return r, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := c.readResponse(ctx)
		if err != nil {
			return nil, c.ctxErr(ctx, err)
		}
		if resp.tag == "+" {
			return nil, protoErr("unexpected continuation request")
		}
		if err := c.dispatch(resp); err != nil {
			return nil, err
		}
	}
}

// waitOK waits for the tagged response of tag and turns anything but OK
// into a *CommandError for the command name.
func (c *Client) waitOK(ctx context.Context, tag, name string) error {
	r, err := c.wait(ctx, tag)
	if err != nil {
		return err
	}
	if r.name != "OK" {
		return cmdErr(name, r)
	}
	return nil
}

// waitContinuation reads until the "+" for tag's literal or
// AUTHENTICATE; a tagged response for tag first is an error.
func (c *Client) waitContinuation(ctx context.Context, tag string) error {
	for {
		resp, err := c.readResponse(ctx)
		if err != nil {
			return c.ctxErr(ctx, err)
		}
		if resp.tag == "+" {
			return nil
		}
		if err := c.dispatch(resp); err != nil {
			return err
		}
		if r, ok := c.cn.done[tag]; ok {
			return &CommandError{Status: r.name, Text: r.text}
		}
	}
}

// ctxErr prefers the context's error to the I/O error it caused.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// CommandError is a NO or BAD answer to a command the client needed.
type CommandError struct {
	Command string
	Status  string // NO or BAD
	Code    string
	Text    string
}

func (e *CommandError) Error() string {
	s := "imap client: " + e.Command + ": " + e.Status
	if e.Code != "" {
		s += " [" + e.Code + "]"
	}
	return s + " " + e.Text
}

func cmdErr(cmd string, r *response) *CommandError {
	return &CommandError{Command: cmd, Status: r.name, Code: r.code, Text: r.text}
}

// AuthError is a rejected authentication. Run does not retry it.
type AuthError struct{ CommandError }

// MailboxError is a failure to select the mailbox (it does not exist, or
// access is denied). Run does not retry it.
type MailboxError struct{ CommandError }

// watchContext makes blocking I/O on cn end when ctx is done; call the
// returned function when the operation is over.
func watchContext(ctx context.Context, cn *conn) func() bool {
	return context.AfterFunc(ctx, func() {
		// raw, not nc, which STARTTLS replaces: the deadline is the
		// same, set on the socket.
		cn.raw.SetDeadline(time.Unix(1, 0))
	})
}

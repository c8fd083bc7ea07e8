package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/wire"
)

// Buffer sizes per connection: small, because an idle phone connection
// should cost little memory; bufio grows nothing, large literals are read
// through the Decoder into their own slices.
const (
	readBufSize  = 4096
	writeBufSize = 4096
)

// preAuthLiteral tightens the wire limits before authentication, so that an
// anonymous peer cannot make the server hold much memory.
const preAuthLiteral = 64 << 10

// conn is one client connection: the transport (socket, TLS, buffers,
// deadlines) and the Session it carries.
type conn struct {
	s   *Server
	log *slog.Logger

	nc       *deadlineConn
	br       *bufio.Reader
	bw       *bufio.Writer
	dec      *wire.Decoder
	enc      *wire.Encoder
	isTLS    bool
	loopback bool
	remote   string

	sess Session
	// view is the selected mailbox's view, nil outside the selected state.
	view         *view
	authFailures int
	// byeAfter, when set, is sent as a BYE after the current command's
	// tagged response, and the connection ends.
	byeAfter string
	closing  atomic.Bool // Shutdown asked this connection to end

	// sid is the resumable session this connection holds (it is the
	// registry Owner), "" when none (draft-ietf-lemonade-reconnect-07).
	sid string
	// lostSID is set by another connection that resumed this one's
	// session; this connection sends DELETEDSID for it from its own
	// goroutine (see noteLostSession). wake is signalled with it, so an
	// IDLE notices.
	lostSID atomic.Pointer[string]
	wake    chan struct{}

	// Per command, reset before each:
	// sentModSeq: a MODSEQ FETCH data item went out (see readCommand).
	sentModSeq bool
	// holdExpunge: the handler forbids expunge reports for this command
	// (a UID SEARCH with sequence numbers, RFC 7162 §3.2.10.2).
	holdExpunge bool
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, remote: nc.RemoteAddr().String(), wake: make(chan struct{}, 1)}
	if tcp, ok := nc.RemoteAddr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() && !s.opts.DistrustLoopback {
		c.loopback = true
	}
	_, c.isTLS = nc.(*tls.Conn)
	c.log = s.log.With("remote", c.remote)
	c.setTransport(nc)
	return c
}

// setTransport (re)builds the buffered reader and writer over nc, at the
// start and after STARTTLS.
func (c *conn) setTransport(nc net.Conn) {
	c.nc = &deadlineConn{Conn: nc, closing: &c.closing, writeTimeout: c.s.opts.WriteTimeout}
	c.nc.readTimeout.Store(int64(c.s.opts.PreAuthTimeout))
	c.br = bufio.NewReaderSize(c.nc, readBufSize)
	c.bw = bufio.NewWriterSize(c.nc, writeBufSize)
	lim := c.s.opts.Limits
	if c.sess.State == imap.StateNotAuthenticated && lim.MaxLiteral > preAuthLiteral {
		lim.MaxLiteral = preAuthLiteral
		lim.MaxNonSyncLiteral = preAuthLiteral
	}
	c.dec = wire.NewDecoder(c.br, lim)
	c.dec.SetContinuation(c.continueLiteral)
	c.enc = wire.NewEncoder(c.bw)
}

// continueLiteral answers a synchronizing literal with "+" (RFC 3501 §7.5)
// and gives the client LiteralTimeout to send it.
func (c *conn) continueLiteral() error {
	c.nc.readTimeout.Store(int64(c.s.opts.LiteralTimeout))
	c.enc.Plus().Text("Ready for literal data").CRLF()
	return c.enc.Flush()
}

// interrupt wakes the connection from a blocked read so that it notices
// Shutdown.
func (c *conn) interrupt() {
	c.closing.Store(true)
	c.nc.Conn.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.s.untrack(c)
	defer c.nc.Close()
	defer func() { c.closeView(c.view); c.view = nil }()
	// A connection that ends (EOF, timeout, shutdown) with a session
	// leaves it resumable (draft-ietf-lemonade-reconnect-07 §1). Runs
	// before the view closes: the state is plain data.
	defer c.detachSession()
	defer func() {
		if r := recover(); r != nil {
			// A bug must cost one connection, never the server.
			c.log.Error("panic in connection", "panic", r, "stack", stack())
		}
	}()

	if tc, ok := c.nc.Conn.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.PreAuthTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
	}
	c.log.Debug("connection opened", "tls", c.isTLS)
	c.enc.Star().Atom("OK").SP()
	c.writeCapabilityCode()
	c.enc.Text("quickimap ready").CRLF()
	if c.enc.Flush() != nil {
		return
	}
	for c.sess.State != imap.StateLogout {
		more := c.readCommand()
		if c.enc.Flush() != nil || !more {
			break
		}
	}
	c.log.Debug("connection closed", "user", c.sess.UserName)
}

// readCommand reads and executes one command. It returns false when the
// connection must end.
func (c *conn) readCommand() bool {
	timeout := c.s.opts.AutoLogoutTimeout
	if c.sess.State == imap.StateNotAuthenticated {
		timeout = c.s.opts.PreAuthTimeout
	}
	c.nc.readTimeout.Store(int64(timeout))
	c.dec.Begin()

	tag, err := c.dec.Tag()
	if err != nil {
		return c.commandError("*", err)
	}
	if err := c.dec.SP(); err != nil {
		if !c.dec.AtEOL() {
			// The tag ran into a character tags may not hold: the
			// client's tag is not what we read, so answer untagged.
			tag = "*"
		}
		return c.commandError(tag, err)
	}
	name, err := c.dec.Atom()
	if err != nil {
		return c.commandError(tag, err)
	}
	name = strings.ToUpper(name)
	if name == "UID" {
		sub, err := c.readUIDSubcommand()
		if err != nil {
			return c.commandError(tag, err)
		}
		name += " " + sub
	}
	// A command has begun: its remaining bytes (literals) must come
	// within LiteralTimeout, not the idle timeout.
	c.nc.readTimeout.Store(int64(c.s.opts.LiteralTimeout))

	cmd, ok := commands[name]
	if !ok {
		c.discardAnd(tag, "BAD", "", "Unknown command "+printable(name))
		return true
	}
	if !cmd.allowed(c.sess.State) {
		c.discardAnd(tag, "BAD", "", name+" not allowed in the "+c.sess.State.String()+" state")
		return true
	}
	c.sentModSeq, c.holdExpunge = false, false
	st, err := cmd.fn(c, tag)
	if err != nil {
		return c.commandError(tag, err)
	}
	if st != nil {
		if c.view != nil && c.sess.State == imap.StateSelected {
			held := len(c.view.pendingExpunge) > 0
			c.reportUpdates(!cmd.noExpunge && !c.holdExpunge)
			if held && len(c.view.pendingExpunge) == 0 && c.sess.IsEnabled(extCondstore) {
				// Expunges held back earlier went out now: tell the
				// client it may move its HIGHESTMODSEQ past them
				// (RFC 7162 §6, the example's last response).
				st.highestModSeq = true
			}
			if c.sentModSeq && len(c.view.pendingExpunge) > 0 {
				// MODSEQs went out while expunges with lower ones are
				// held back: a client computing its HIGHESTMODSEQ from
				// them would skip those expunges after a reconnect
				// (RFC 7162 §3.2, §6). This caps it.
				c.writeHighestModSeq()
			}
			if st.highestModSeq && c.sess.IsEnabled(extCondstore) && st.typ == "OK" && st.code == "" {
				// RFC 7162 §3.2.7, §3.2.9: after EXPUNGE and UID
				// EXPUNGE that removed messages. Every expunge has just
				// been reported, so the value covers them.
				st.code = "HIGHESTMODSEQ " + strconv.FormatUint(c.view.highestModSeq(), 10)
			}
		}
		c.noteLostSession()
		c.writeStatus(tag, st)
	}
	if c.byeAfter != "" {
		c.enc.Star().Atom("BYE").SP().Text(c.byeAfter).CRLF()
		c.sess.State = imap.StateLogout
	}
	return c.sess.State != imap.StateLogout
}

func (c *conn) readUIDSubcommand() (string, error) {
	if err := c.dec.SP(); err != nil {
		return "", err
	}
	sub, err := c.dec.Atom()
	return strings.ToUpper(sub), err
}

// discardAnd skips the rest of a command that will not run and answers it.
func (c *conn) discardAnd(tag, typ, code, text string) {
	if err := c.dec.Discard(); err != nil {
		c.commandError(tag, err)
		return
	}
	c.writeStatus(tag, &status{typ: typ, code: code, text: text})
}

// commandError answers a command that failed to parse or whose connection
// failed. It returns false when the connection must end.
func (c *conn) commandError(tag string, err error) bool {
	var syn *wire.SyntaxError
	var lim *wire.LimitError
	switch {
	case errors.As(err, &syn):
		if derr := c.dec.Discard(); derr != nil {
			if !errors.As(derr, &lim) {
				return c.ioError(derr)
			}
			c.writeStatus(tag, &status{typ: "BAD", text: "Syntax error: " + syn.Msg})
			return c.fatal(lim)
		}
		c.writeStatus(tag, &status{typ: "BAD", text: "Syntax error: " + syn.Msg})
		return true
	case errors.As(err, &lim):
		if !lim.Fatal {
			if derr := c.dec.Discard(); derr != nil {
				if !errors.As(derr, &lim) {
					return c.ioError(derr)
				}
			}
		}
		typ := "BAD"
		if lim.Code == "TOOBIG" {
			typ = "NO"
		}
		c.writeStatus(tag, &status{typ: typ, code: lim.Code, text: lim.Msg})
		if lim.Fatal {
			return c.fatal(lim)
		}
		return true
	default:
		return c.ioError(err)
	}
}

func (c *conn) fatal(lim *wire.LimitError) bool {
	c.enc.Star().Atom("BYE").SP().Text("Cannot recover from oversized input; closing").CRLF()
	c.enc.Flush()
	c.log.Info("closing after oversized input", "err", lim.Msg)
	return false
}

// ioError ends a connection whose stream failed: a timeout gets a BYE
// (RFC 3501 §5.4 autologout), as does a server shutdown.
func (c *conn) ioError(err error) bool {
	if c.closing.Load() {
		c.enc.Star().Atom("BYE").SP().Text("Server shutting down").CRLF()
		c.enc.Flush()
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.enc.Star().Atom("BYE").SP().Text("Autologout; idle for too long").CRLF()
		c.enc.Flush()
		c.log.Debug("autologout", "user", c.sess.UserName)
		return false
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("connection error", "err", err)
	}
	return false
}

// status is a tagged command completion.
type status struct {
	typ  string // OK, NO or BAD
	code string // response code with its arguments, already formatted, or ""
	text string
	// highestModSeq: with CONDSTORE enabled, an OK and no other code,
	// the session's HIGHESTMODSEQ goes in the response code, computed
	// after the update report.
	highestModSeq bool
}

func ok(text string) *status           { return &status{typ: "OK", text: text} }
func no(code, text string) *status     { return &status{typ: "NO", code: code, text: text} }
func bad(text string) *status          { return &status{typ: "BAD", text: text} }
func okCode(code, text string) *status { return &status{typ: "OK", code: code, text: text} }
func (c *conn) writeStatus(tag string, st *status) {
	if tag == "" {
		tag = "*"
	}
	if tag == "*" {
		c.enc.Star()
	} else {
		c.enc.Tag(tag)
	}
	c.enc.Atom(st.typ).SP()
	if st.code != "" {
		c.enc.Atom("[" + st.code + "] ")
	}
	c.enc.Text(st.text).CRLF()
}

// printable shortens and cleans client input echoed in a response text.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// deadlineConn sets a deadline before every read and write, so that a
// client that stops reading or stops sending cannot hold a goroutine
// forever.
type deadlineConn struct {
	net.Conn
	closing *atomic.Bool
	// halt stops a read that another goroutine is doing to watch for
	// the client going away (see peerContext), as closing does.
	halt         atomic.Bool
	readTimeout  atomic.Int64 // time.Duration
	writeTimeout time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.Conn.SetReadDeadline(time.Now().Add(time.Duration(d.readTimeout.Load())))
	// Checked after setting the deadline: interrupt sets the flag, then a
	// past deadline, so one of the two always wins. Likewise halt.
	if d.closing.Load() || d.halt.Load() {
		d.Conn.SetReadDeadline(time.Now())
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(time.Now().Add(d.writeTimeout))
	return d.Conn.Write(p)
}

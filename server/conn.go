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
	"sync"
	"sync/atomic"
	"time"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server/tracker"
	"github.com/quickimap/quickimap/wire"
)

// Buffer sizes: small, because many connections read and write at once;
// bufio grows nothing, large literals are read through the Decoder into
// their own slices. A connection borrows its buffers from the Server's
// pools only while it has something to read or write: an idle one holds
// none (see loop).
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

	// ctx is the context of the connection's work, derived from the
	// Server's base context; cancel ends it (see peerwatch.go). watch
	// watches for the client going away during a command, nil when none.
	ctx    context.Context
	cancel context.CancelCauseFunc
	wctx   context.Context // ctx without its cancellation (writeContext)
	watch  *peerWatch

	nc *deadlineConn
	// br is the read buffer, borrowed from s.readers while a command is
	// read, nil while the connection waits (the Decoder has it too).
	br       *bufio.Reader
	dec      *wire.Decoder
	enc      *wire.Encoder
	isTLS    bool
	loopback bool
	remote   string
	ca       clientAddr // for the per-address limits

	sess Session
	// view is the selected mailbox's view, nil outside the selected state.
	view         *tracker.View
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
	// goroutine (see noteLostSession). waker is kicked with it, so an
	// IDLE notices.
	lostSID atomic.Pointer[string]
	waker   waker
	// loginBy is when a connection not yet authenticated is closed
	// (PreAuthTimeout after it was accepted; see slowclient.go).
	loginBy time.Time
	// idle is the IDLE command in progress, nil when none (cmd_idle.go).
	idle *idling
	// wait is the current or last wait for the client (see loop).
	wait waiting

	// cmem is what the current command holds of the memory budget
	// (membudget.go), given back when it ends.
	cmem cmdMemory

	// Per command, reset before each:
	// sentModSeq: a MODSEQ FETCH data item went out (see readCommand).
	sentModSeq bool
	// holdExpunge: the handler forbids expunge reports for this command
	// (a UID SEARCH with sequence numbers, RFC 7162 §3.2.10.2).
	holdExpunge bool

	// For the log line and the metrics (metrics.go): when the connection
	// opened, why it ended ("" until known), the bytes received and sent
	// (counted by deadlineConn, also by the goroutine of peerContext).
	opened            time.Time
	endReason         string
	bytesIn, bytesOut atomic.Int64
	// The command being run (cmdName: a dispatch table key or
	// UnknownCommand; cmdResult: its tagged result so far), and what
	// Metrics was last told of the state and the bytes.
	cmdStart                time.Time
	cmdName                 string
	cmdResult               Result
	metricState             imap.State
	reportedIn, reportedOut int64
}

func newConn(s *Server, nc net.Conn, ca clientAddr) *conn {
	now := time.Now()
	c := &conn{s: s, remote: nc.RemoteAddr().String(), ca: ca, loginBy: now.Add(s.opts.PreAuthTimeout), opened: now}
	c.ctx, c.cancel = context.WithCancelCause(s.base)
	c.wctx = context.WithoutCancel(c.ctx)
	if tcp, ok := nc.RemoteAddr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() && !s.opts.DistrustLoopback {
		c.loopback = true
	}
	_, c.isTLS = nc.(*tls.Conn)
	c.log = s.log.With("remote", c.remote)
	c.setTransport(nc)
	return c
}

// setTransport (re)builds the decoder and encoder over nc, at the start
// and after STARTTLS. Whatever was buffered from the old transport is
// dropped.
func (c *conn) setTransport(nc net.Conn) {
	c.nc = &deadlineConn{Conn: nc, closing: &c.closing, writeTimeout: c.s.opts.WriteTimeout, in: &c.bytesIn, out: &c.bytesOut}
	c.nc.readTimeout.Store(int64(c.s.opts.PreAuthTimeout))
	c.nc.rate = rateClock{min: max(c.s.opts.MinRate, 0), window: c.s.opts.MinRateWindow}
	if c.sess.State == imap.StateNotAuthenticated {
		c.nc.loginBy.Store(c.loginBy.UnixNano())
	}
	if c.br != nil {
		c.br.Reset(nil)
		c.s.readers.Put(c.br)
		c.br = nil
	}
	lim := c.s.opts.Limits
	if c.sess.State == imap.StateNotAuthenticated && lim.MaxLiteral > preAuthLiteral {
		lim.MaxLiteral = preAuthLiteral
		lim.MaxNonSyncLiteral = preAuthLiteral
	}
	c.dec = wire.NewDecoder(nil, lim)
	c.dec.SetContinuation(c.continueLiteral)
	c.dec.SetAdmit(c.admitLiteral)
	c.enc = wire.NewPooledEncoder(c.nc, c.s.writers)
}

// buffered reports whether the client's next bytes are already read.
func (c *conn) buffered() bool {
	return c.br != nil && c.br.Buffered() > 0 || c.nc.npending > 0 || c.nc.z != nil && c.nc.z.ready()
}

// borrowReader gives the decoder a read buffer.
func (c *conn) borrowReader() {
	if c.br != nil {
		return
	}
	c.br, _ = c.s.readers.Get().(*bufio.Reader)
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, readBufSize)
	} else {
		c.br.Reset(c.nc)
	}
	c.dec.Reset(c.br)
}

// returnReader gives the read buffer back; the caller has checked that it
// holds nothing.
func (c *conn) returnReader() {
	if c.br == nil {
		return
	}
	c.br.Reset(nil)
	c.s.readers.Put(c.br)
	c.br = nil
	c.dec.Reset(nil)
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

// serve runs the connection on its first goroutine: the TLS handshake and
// the greeting, then loop.
func (c *conn) serve() {
	ended := true
	defer c.exit(&ended)
	if tc, ok := c.nc.Conn.(*tls.Conn); ok {
		ctx, cancel := context.WithDeadline(c.ctx, c.loginBy)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.setEnd("TLS handshake failed")
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
	}
	c.log.Debug("connection opened", "tls", c.isTLS)
	c.enc.Star().Atom("OK").SP()
	c.writeCapabilityCode()
	c.enc.Text("ready").CRLF()
	if c.enc.Flush() != nil {
		c.setEnd("write error")
		return
	}
	ended = c.loop()
}

// exit is deferred by each goroutine that runs the connection (serve,
// run): a panic is logged and costs this connection only, never the
// server; the connection ends unless *ended says the goroutine handed it
// over.
func (c *conn) exit(ended *bool) {
	if r := recover(); r != nil {
		c.setEnd("panic")
		c.log.Error("panic in connection", "panic", r, "stack", stack())
		if h := c.s.opts.OnPanic; h != nil {
			h(r)
		}
	}
	if *ended {
		c.end()
	}
}

// handoffDelay is how long a goroutine that has run a command waits for
// the next one itself before a new goroutine takes over the wait (see
// loop). Longer than a client's pause between the commands of a burst,
// so that busy connections do not pay for the hand-off (starting a
// goroutine wakes another thread), and short against the time
// connections spend idle.
const handoffDelay = 100 * time.Millisecond

// loop reads and runs commands until the connection ends (it returns
// true) or it hands the connection to a new goroutine (false).
//
// Whenever the client has sent nothing more, the connection gives its
// buffers back and waits; if nothing comes within handoffDelay, it waits
// on a new goroutine (run). This one's stack may have grown deep in a
// command (the store, a large FETCH), and Go keeps a grown stack until
// garbage collections shrink it, half at a time; the new goroutine starts
// with a small one. So an idle connection costs a small stack, no buffers
// and no other goroutine, also in IDLE (cmd_idle.go).
func (c *conn) loop() (ended bool) {
	for c.sess.State != imap.StateLogout {
		if !c.buffered() {
			if !c.beginWait(false) {
				return true
			}
			switch c.endWait(c.nc.await(c.wait.until, c.wait.waker)) {
			case waitAgain:
				continue
			case waitHandoff:
				c.compressRelease()
				go c.run()
				return false
			case waitEnd:
				return true
			}
		}
		c.borrowReader()
		c.resetInflateBudget()
		var more bool
		// The command's bytes must arrive at MinRate (slowclient.go).
		c.nc.rate.begin()
		if c.idle != nil {
			more = c.idleDone()
		} else {
			c.beginCommand()
			more = c.readCommand()
		}
		c.nc.rate.stop()
		ferr := c.enc.Flush()
		c.endCommand()
		if ferr != nil {
			c.setEnd("write error")
			return true
		}
		if !more {
			return true
		}
		if cause := context.Cause(c.ctx); cause != nil {
			// The client went away during the command, or Shutdown's
			// deadline passed: nothing is left to serve.
			if errors.Is(cause, errClientGone) {
				c.setEnd("client closed")
			} else {
				c.setEnd("shutdown")
			}
			return true
		}
	}
	return true
}

// run is the goroutine that takes over a connection's wait (see loop),
// until the client's next bytes, then runs loop. While it waits its stack
// holds only run and await (the rest of the wait is in beginWait and
// endWait): under 1 KB, because Go starts goroutines with the average
// stack in use, and halves a stack less than a quarter used.
func (c *conn) run() {
	ended := true
	defer c.exit(&ended)
	if !c.beginWait(true) {
		return
	}
	if c.endWait(c.nc.await(c.wait.until, c.wait.waker)) == waitEnd {
		return
	}
	ended = c.loop()
}

// waiting is the wait for a client's next bytes (see loop).
type waiting struct {
	// end is when the silence ends the connection: the autologout (RFC
	// 3501 §5.4), the pre-authentication timeout, or during IDLE the
	// next keepalive or the autologout.
	end time.Time
	// until is the deadline of the read: end, or the hand-off if earlier.
	until time.Time
	// waker is the idling connection's, nil when not idling.
	waker *waker
}

// beginWait prepares the wait for the client's next bytes: it gives the
// read buffer back and flushes. fresh says that the wait is run's, which
// goes on from where loop's left off without a hand-off. It returns false
// when the connection must end.
func (c *conn) beginWait(fresh bool) bool {
	c.returnReader()
	if c.enc.Flush() != nil {
		c.setEnd("write error")
		return false
	}
	now := time.Now()
	switch {
	case c.idle != nil:
		// IDLE may last for hours: hold no compressor meanwhile.
		c.compressRelease()
		c.wait.end = earliest(c.idle.end, c.idle.keepalive)
		c.wait.waker = &c.waker
	case !fresh:
		// The silence is timed from here, across a hand-off.
		timeout := c.commandTimeout()
		c.nc.readTimeout.Store(int64(timeout))
		c.wait.end = now.Add(timeout)
		if c.sess.State == imap.StateNotAuthenticated {
			c.wait.end = earliest(c.wait.end, c.loginBy)
		}
		c.wait.waker = nil
	}
	c.wait.until = c.wait.end
	if !fresh {
		c.wait.until = earliest(c.wait.end, now.Add(handoffDelay))
	}
	return true
}

// waitNext is what loop does after a wait.
type waitNext uint8

const (
	waitInput   waitNext = iota // the client sent something: read it
	waitAgain                   // wait again (updates or a keepalive went out)
	waitHandoff                 // wait on a new goroutine
	waitEnd                     // the connection ends
)

// errKicked ends an await that a waker cut short.
var errKicked = errors.New("woken")

// endWait handles the end of a wait with await's error.
func (c *conn) endWait(err error) waitNext {
	if err == nil {
		return waitInput
	}
	if errors.Is(err, errKicked) {
		c.idleReport()
		return waitAgain
	}
	if !isTimeout(err) || c.closing.Load() {
		c.ioError(err)
		return waitEnd
	}
	now := time.Now()
	if c.wait.until.Before(c.wait.end) && now.Before(c.wait.end) {
		return waitHandoff
	}
	if c.idle != nil && now.Before(c.idle.end) {
		if !now.Before(c.idle.keepalive) {
			c.idleKeepalive(now)
		}
		return waitAgain
	}
	c.ioError(err) // autologout
	return waitEnd
}

// end releases what the connection holds, on its last goroutine.
func (c *conn) end() {
	defer c.s.untrack(c)
	defer c.cancel(errConnEnded)
	defer c.nc.Close()
	defer func() { c.closeView(c.view); c.view = nil }()
	// A connection that ends (EOF, timeout, shutdown) with a session
	// leaves it resumable (draft-ietf-lemonade-reconnect-07 §1). Runs
	// before the view closes: the state is plain data.
	defer c.detachSession()
	defer c.compressEnd()
	// The buffers are not given back: after a panic they may hold half
	// a response, and a connection ends rarely enough.
	c.endIdle()
	c.logEnd()
	if m := c.s.metrics; m != nil {
		c.noteMetrics()
		m.ConnClosed(c.metricState)
	}
}

// setEnd records why the connection ends, unless a reason is known
// already (the first cause wins: a shutdown's BYE before the write that
// fails after it).
func (c *conn) setEnd(reason string) {
	if c.endReason == "" {
		c.endReason = reason
	}
}

// logEnd writes the one line that every connection ends with. The user,
// once logged in, is an attribute of c.log.
func (c *conn) logEnd() {
	reason := c.endReason
	if reason == "" {
		reason = "closed"
	}
	c.log.Info("connection closed", "reason", reason,
		"duration", time.Since(c.opened).Round(time.Millisecond),
		"bytes_in", c.bytesIn.Load(), "bytes_out", c.bytesOut.Load())
}

// commandTimeout is how long the client may stay silent before its next
// command.
func (c *conn) commandTimeout() time.Duration {
	if c.sess.State == imap.StateNotAuthenticated {
		return c.s.opts.PreAuthTimeout
	}
	return c.s.opts.AutoLogoutTimeout
}

// readCommand reads and executes one command. It returns false when the
// connection must end.
func (c *conn) readCommand() bool {
	defer c.releaseMemory()
	c.nc.readTimeout.Store(int64(c.commandTimeout()))
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
	if ok {
		c.cmdName = name
	}
	if !ok {
		return c.discardAnd(tag, "BAD", "", "Unknown command "+printable(name))
	}
	if !cmd.allowed(c.sess.State) {
		return c.discardAnd(tag, "BAD", "", name+" not allowed in the "+c.sess.State.String()+" state")
	}
	c.sentModSeq, c.holdExpunge = false, false
	st, err := cmd.fn(c, tag)
	c.stopWatch()
	if err != nil {
		return c.commandError(tag, err)
	}
	return c.complete(tag, !cmd.noExpunge, st)
}

// complete ends a command with its tagged response st (none when nil,
// as while IDLE goes on): updates of the selected mailbox first, with
// expunges when allowExpunge. It returns false when the connection must
// end.
func (c *conn) complete(tag string, allowExpunge bool, st *status) bool {
	if st != nil {
		if c.view != nil && c.sess.State == imap.StateSelected {
			held := c.view.HoldsExpunges()
			c.reportUpdates(allowExpunge && !c.holdExpunge)
			if held && !c.view.HoldsExpunges() && c.sess.IsEnabled(extCondstore) {
				// Expunges held back earlier went out now: tell the
				// client it may move its HIGHESTMODSEQ past them
				// (RFC 7162 §6, the example's last response).
				st.highestModSeq = true
			}
			if c.sentModSeq && c.view.HoldsExpunges() {
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
				st.code = "HIGHESTMODSEQ " + strconv.FormatUint(c.view.HighestModSeq(), 10)
			}
		}
		if c.noteLostSession() && st.lostText != "" {
			st.text = st.lostText
		}
		c.writeStatus(tag, st)
	}
	if c.byeAfter != "" {
		c.enc.Star().Atom("BYE").SP().Text(c.byeAfter).CRLF()
		c.sess.State = imap.StateLogout
		c.setEnd(strings.ToLower(c.byeAfter))
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
// It returns false when the connection must end (the rest could not be
// read; commandError has answered).
func (c *conn) discardAnd(tag, typ, code, text string) bool {
	if err := c.dec.Discard(); err != nil {
		return c.commandError(tag, err)
	}
	c.writeStatus(tag, &status{typ: typ, code: code, text: text})
	return true
}

// errEnded is returned by a command whose connection has already been
// answered and must end.
var errEnded = errors.New("connection ended")

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
		if lim.Code == "TOOBIG" || lim.NO {
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
	c.setEnd("oversized input")
	c.log.Info("closing after oversized input", "err", lim.Msg)
	return false
}

// ioError ends a connection whose stream failed: a timeout gets a BYE
// (RFC 3501 §5.4 autologout), as does a server shutdown.
func (c *conn) ioError(err error) bool {
	if errors.Is(err, errEnded) {
		return false
	}
	if c.closing.Load() {
		c.enc.Star().Atom("BYE").SP().Text("Server shutting down").CRLF()
		c.enc.Flush()
		c.setEnd("shutdown")
		return false
	}
	var le *limitError
	if errors.As(err, &le) {
		c.enc.Star().Atom("BYE").SP().Text(le.bye).CRLF()
		c.enc.Flush()
		c.setEnd(le.reason)
		// A stable line for operators (docs/security.md).
		c.log.Info("slow client disconnected", append([]any{"reason", le.reason, "addr", c.ca.ip}, le.attrs...)...)
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.enc.Star().Atom("BYE").SP().Text("Autologout; idle for too long").CRLF()
		c.enc.Flush()
		c.setEnd("autologout")
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		c.setEnd("client closed")
		return false
	}
	c.setEnd("read error")
	c.log.Debug("connection error", "err", err)
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
	// lostText replaces text when the connection's session was resumed
	// on another connection before this response (DELETEDSID precedes
	// it).
	lostText string
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
	c.cmdResult = resultOf(st.typ)
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
	// loginBy (Unix nanoseconds, 0: none) ends every read, whatever its
	// timeout, until the client has logged in; rate bounds the time a
	// command takes to arrive (see slowclient.go). rate is used by one
	// goroutine at a time: the connection's, or peerContext's watch,
	// which stops it first.
	loginBy atomic.Int64
	rate    rateClock

	// pending holds the first bytes of a command, read by await into
	// this small array rather than a borrowed buffer; Read returns them
	// first.
	pending  [64]byte
	poff     uint8
	npending uint8

	// z is the compression layer after COMPRESS (compress.go), nil
	// before.
	z *zlayer

	// in and out count the bytes read and written on the connection
	// (compressed after COMPRESS; the connection's counters).
	in, out *atomic.Int64
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.z != nil {
		return d.zread(p)
	}
	if d.npending > 0 {
		n := copy(p, d.pending[d.poff:d.poff+d.npending])
		d.poff += uint8(n)
		d.npending -= uint8(n)
		if d.rate.on {
			d.rate.account(n, 0)
		}
		return n, nil
	}
	now := time.Now()
	d.Conn.SetReadDeadline(d.readDeadline(now))
	// Checked after setting the deadline: interrupt sets the flag, then a
	// past deadline, so one of the two always wins. Likewise halt.
	if d.closing.Load() || d.halt.Load() {
		d.Conn.SetReadDeadline(time.Now())
	}
	n, err := d.Conn.Read(p)
	d.in.Add(int64(n))
	if d.rate.on {
		d.rate.account(n, time.Since(now))
	}
	if err != nil && isTimeout(err) && !d.closing.Load() && !d.halt.Load() {
		err = d.limitErr(err)
	}
	return n, err
}

// await blocks until the client sends something and keeps its first
// bytes for Read. It fails with a timeout at until, and with errKicked
// when w is set and kicked.
func (d *deadlineConn) await(until time.Time, w *waker) error {
	if d.z != nil {
		return d.zawait(until, w)
	}
	if w == nil {
		d.Conn.SetReadDeadline(until)
	} else if !w.arm(d.Conn, until) {
		return errKicked
	}
	// Checked after setting the deadline, as in Read.
	if d.closing.Load() {
		d.Conn.SetReadDeadline(time.Now())
	}
	n, err := d.Conn.Read(d.pending[:])
	d.in.Add(int64(n))
	d.poff, d.npending = 0, uint8(n)
	if n > 0 {
		if w != nil {
			w.disarm(false)
		}
		return nil
	}
	if w != nil && w.disarm(true) && isTimeout(err) && !d.closing.Load() {
		return errKicked
	}
	if isTimeout(err) && !d.closing.Load() {
		err = d.limitErr(err)
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// waker wakes a connection blocked in await from another goroutine (a
// change to its selected mailbox, its session taken over).
type waker struct {
	mu      sync.Mutex
	waiting net.Conn // the connection being read by await, or nil
	kicked  bool     // a kick not yet seen by await
}

// arm sets the deadline of the wait on nc, unless a kick came first
// (false).
func (w *waker) arm(nc net.Conn, until time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kicked {
		w.kicked = false
		return false
	}
	// Set under the lock, so that a kick's past deadline cannot be
	// overwritten by this one.
	nc.SetReadDeadline(until)
	w.waiting = nc
	return true
}

// disarm ends the wait and reports whether a kick came; consume takes
// it (when the wait got no input: the kick is handled now).
func (w *waker) disarm(consume bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting = nil
	kicked := w.kicked
	if consume {
		w.kicked = false
	}
	return kicked
}

// Wake kicks: the waker is told of changes to the selected mailbox
// (tracker.Waker).
func (w *waker) Wake() { w.kick() }

// kick makes the connection's current or next await return errKicked.
func (w *waker) kick() {
	w.mu.Lock()
	w.kicked = true
	if w.waiting != nil {
		w.waiting.SetReadDeadline(time.Now())
	}
	w.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.z != nil {
		return d.z.out.Write(p)
	}
	d.Conn.SetWriteDeadline(time.Now().Add(d.writeTimeout))
	n, err := d.Conn.Write(p)
	d.out.Add(int64(n))
	return n, err
}

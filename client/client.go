package client

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/wire"
)

const (
	capReconnect = "X-DRAFT-W07-RECONNECT"
	levelTrace   = slog.Level(-8)
)

// Options configure a Client.
type Options struct {
	// Addr is the server's host:port, used by the default Dial and for
	// the TLS server name.
	Addr string
	// TLSConfig, when not nil, makes the connection implicit TLS (port
	// 993 style), or with StartTLS a plain connection that STARTTLS
	// upgrades.
	TLSConfig *tls.Config
	// StartTLS: connect in plain text and upgrade with STARTTLS (RFC
	// 3501 §6.2.1) before authenticating, using TLSConfig (an empty
	// one when nil). A server that does not offer STARTTLS is an error.
	StartTLS bool
	// Username and Password authenticate with AUTHENTICATE PLAIN (RFC
	// 4616), or LOGIN when the server lacks AUTH=PLAIN.
	Username, Password string
	// Mailbox is the mailbox to keep synchronized (UTF-8); default
	// INBOX.
	Mailbox string
	// Store persists the state; default a MemoryStore.
	Store StateStore
	// Dial opens the TCP connection; default net.Dialer to Addr. Tests
	// and benchmarks put a proxy here.
	Dial func(ctx context.Context) (net.Conn, error)
	// Logger receives the client's logs; default discards. Protocol
	// lines sent are logged at level -8.
	Logger *slog.Logger
	// ForceStrategy is the best strategy the client may use (for
	// benchmarks): StrategyQRESYNC never uses SID, StrategyCONDSTORE
	// neither SID nor QRESYNC, StrategyFull nothing but SELECT and
	// UID FETCH. The client still falls back below it.
	ForceStrategy Strategy
	// Backoff paces Run's reconnections.
	Backoff Backoff
	// Timeout bounds each wait for the server (default 60s).
	Timeout time.Duration
	// IdleRefresh is how long Run stays in one IDLE before renewing it
	// (default 25m: RFC 2177 §3 asks clients to re-issue IDLE at least
	// every 29 minutes).
	IdleRefresh time.Duration
	// PollInterval is the NOOP interval of Run when the server lacks
	// IDLE (default 1m).
	PollInterval time.Duration
	// Limits bound the responses the client accepts.
	Limits Limits
	// Compress turns on COMPRESS=DEFLATE (RFC 4978) after login when the
	// server offers it. It costs a round trip: nothing may follow
	// COMPRESS until its answer (§3), so a SID resume that would ride
	// with AUTHENTICATE waits for it.
	Compress bool
}

// Client keeps one mailbox synchronized with an IMAP server. Sync, Run
// and Close must not be called concurrently with each other; State and
// Drop may be called at any time from any goroutine. To stop Run, cancel
// its context; then Close.
type Client struct {
	opts Options

	mu  sync.Mutex   // guards pub and cn (for Drop)
	pub MailboxState // the state as last published

	st       MailboxState // the working state
	loaded   bool
	cn       *conn
	sync     *syncCtx
	live     *liveCtx
	ms       modseqTracker
	nomodseq bool
	dirty    bool
	synced   bool // the current connection is synchronized

	search    uidSet // the answer of the last UID SEARCH
	sawSearch bool
	// expunges counts the sequence-number EXPUNGE responses received,
	// so that reconcile can tell whether one came during its SEARCH.
	expunges uint64
}

// New returns a Client; it does not connect.
func New(opts Options) *Client {
	if opts.Mailbox == "" {
		opts.Mailbox = "INBOX"
	}
	if opts.Store == nil {
		opts.Store = &MemoryStore{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.IdleRefresh <= 0 {
		opts.IdleRefresh = 25 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Minute
	}
	if opts.Dial == nil {
		addr := opts.Addr
		opts.Dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	return &Client{opts: opts}
}

// State returns a copy of the synchronized state as of the last
// completed Sync or live update.
func (c *Client) State() MailboxState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub.Clone()
}

func (c *Client) publish() {
	p := c.st.Clone()
	c.mu.Lock()
	c.pub = p
	c.mu.Unlock()
}

// Drop cuts the connection without logging out, as a network failure
// would; the session stays resumable. Safe to call concurrently with Run.
func (c *Client) Drop() {
	c.mu.Lock()
	cn := c.cn
	c.mu.Unlock()
	if cn != nil {
		cn.dropped.Store(true)
		cn.raw.Close()
	}
}

func (c *Client) setConn(cn *conn) {
	c.mu.Lock()
	c.cn = cn
	c.mu.Unlock()
}

// closeConn closes and forgets the connection.
func (c *Client) closeConn() {
	if c.cn != nil {
		c.cn.raw.Close()
		c.setConn(nil)
	}
	c.synced = false
}

// load reads the state store once. A corrupt state is logged and
// replaced by a fresh one: a full synchronization is always correct.
func (c *Client) load(ctx context.Context) error {
	if c.loaded {
		return nil
	}
	st, err := c.opts.Store.Load(ctx)
	if errors.Is(err, ErrCorruptState) {
		c.opts.Logger.Warn("state store corrupt, starting fresh", "err", err)
		st, err = MailboxState{}, nil
	}
	if err != nil {
		return err
	}
	if st.Mailbox != c.opts.Mailbox {
		caps := st.Capabilities
		st = MailboxState{Mailbox: c.opts.Mailbox, Capabilities: caps}
	}
	c.st = st
	c.loaded = true
	c.publish()
	return nil
}

func (c *Client) save(ctx context.Context) {
	c.publish()
	if err := c.opts.Store.Save(ctx, c.st); err != nil {
		c.opts.Logger.Warn("saving state", "err", err)
		return
	}
	c.dirty = false
}

// connect dials and reads the greeting.
func (c *Client) connect(ctx context.Context) error {
	raw, err := c.opts.Dial(ctx)
	if err != nil {
		return err
	}
	cc := &countConn{Conn: raw}
	var nc net.Conn = cc
	implicitTLS := c.opts.TLSConfig != nil && !c.opts.StartTLS
	if implicitTLS {
		tc, err := c.handshake(ctx, cc)
		if err != nil {
			raw.Close()
			return err
		}
		nc = tc
	}
	cn := &conn{
		raw: raw, cc: cc,
		timeout: c.opts.Timeout,
		done:    map[string]*response{},
		preCaps: map[string]bool{},
		caps:    map[string]bool{},
	}
	cn.setTransport(nc, c.opts.Limits)
	c.setConn(cn)
	c.synced = false
	stop := watchContext(ctx, cn)
	defer stop()
	g, err := c.readResponse(ctx)
	if err != nil {
		return err
	}
	if g.tag != "*" {
		return protoErr("bad greeting")
	}
	switch g.name {
	case "OK":
	case "PREAUTH":
		cn.authed = true
	case "BYE":
		return &byeError{g.text}
	default:
		return protoErr("bad greeting %q", g.name)
	}
	if g.hasCode {
		c.handleCode(g)
	}
	if c.opts.StartTLS {
		if err := c.startTLS(ctx); err != nil {
			return err
		}
	}
	// A plain connection counts no round trip up to here: the greeting
	// comes unasked. Over implicit TLS, one is the wait for the greeting
	// after the client's last handshake flight, which the plain
	// connection also waits, uncounted; the others are TLS's.
	_, _, cn.setupRT = cc.counts()
	cn.tlsRT = cn.setupRT
	if implicitTLS && cn.tlsRT > 0 {
		cn.tlsRT--
	}
	return nil
}

// handshake runs the TLS client handshake over nc.
func (c *Client) handshake(ctx context.Context, nc net.Conn) (*tls.Conn, error) {
	var cfg *tls.Config
	if c.opts.TLSConfig != nil {
		cfg = c.opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(c.opts.Addr); err == nil {
			cfg.ServerName = h
		}
	}
	tc := tls.Client(nc, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return nil, err
	}
	return tc, nil
}

// startTLS upgrades the connection with STARTTLS (RFC 3501 §6.2.1).
func (c *Client) startTLS(ctx context.Context) error {
	cn := c.cn
	if cn.authed {
		return errors.New("imap client: STARTTLS asked for, but the server greeted with PREAUTH")
	}
	if len(cn.preCaps) == 0 {
		if err := c.simple(ctx, "CAPABILITY", func(e *wire.Encoder) { e.Atom("CAPABILITY") }); err != nil {
			return err
		}
	}
	if !cn.preCaps["STARTTLS"] {
		return errors.New("imap client: the server does not offer STARTTLS")
	}
	if err := c.simple(ctx, "STARTTLS", func(e *wire.Encoder) { e.Atom("STARTTLS") }); err != nil {
		return err
	}
	if cn.br.Buffered() > 0 {
		// Sent before the handshake, in clear text: possibly injected
		// (RFC 3501 §11.1).
		return protoErr("data after the STARTTLS response, before TLS")
	}
	tc, err := c.handshake(ctx, cn.cc)
	if err != nil {
		return err
	}
	cn.setTransport(tc, c.opts.Limits)
	// §6.2.1: the capabilities learnt before TLS are discarded; the
	// login asks for them again.
	clear(cn.preCaps)
	return nil
}

// allow reports whether ForceStrategy permits s.
func (c *Client) allow(s Strategy) bool {
	f := c.opts.ForceStrategy
	return f == StrategyAuto || f == StrategyNoop || s >= f
}

// capsKnown returns the capability test for choosing the commands to
// pipeline: the live ones once authenticated, else the stored ones.
func (c *Client) capsKnown() func(string) bool {
	if c.cn.authed && len(c.cn.caps) > 0 {
		return func(s string) bool { return c.cn.caps[s] }
	}
	return c.st.hasCap
}

// Sync connects if needed and brings the state up to date with the
// server, choosing the best strategy the server offers (see the package
// documentation). On an already synchronized connection it sends one
// NOOP.
func (c *Client) Sync(ctx context.Context) (SyncResult, error) {
	start := time.Now()
	var res SyncResult
	if err := c.load(ctx); err != nil {
		return res, err
	}
	if c.cn != nil && c.cn.dropped.Load() {
		c.closeConn()
	}
	var in0, out0 int64
	var rt0 int
	if c.cn == nil {
		res.Dialed = true
		if err := c.connect(ctx); err != nil {
			c.closeConn()
			return res, err
		}
		// The round trips of opening the connection are reported apart.
		rt0 = c.cn.setupRT
		res.TLSRoundTrips = c.cn.tlsRT
	} else {
		in0, out0, rt0 = c.cn.cc.counts()
	}
	cn := c.cn
	stop := watchContext(ctx, cn)
	err := c.syncConn(ctx, &res)
	stop()
	in, out, rt := cn.cc.counts()
	res.BytesIn, res.BytesOut, res.RoundTrips = in-in0, out-out0, rt-rt0
	res.Duration = time.Since(start)
	res.Compressed = cn.compressed
	if err != nil {
		c.closeConn()
		if c.dirty {
			c.save(ctx)
		}
		return res, err
	}
	return res, nil
}

// syncConn runs the synchronization on the open connection.
func (c *Client) syncConn(ctx context.Context, res *SyncResult) (err error) {
	if c.synced && c.cn.selected {
		res.Strategy = StrategyNoop
		c.live = &liveCtx{}
		defer func() {
			res.Events = mergeEvents(c.live.events)
			c.live = nil
		}()
		if err := c.simple(ctx, "NOOP", func(e *wire.Encoder) { e.Atom("NOOP") }); err != nil {
			return err
		}
		return c.catchUp(ctx)
	}
	s := &syncCtx{old: c.st.Clone(), modseq: c.st.HighestModSeq}
	c.sync = s
	c.ms = modseqTracker{}
	defer func() {
		c.sync = nil
		if err != nil {
			// Roll back everything but what the server told us about
			// the session and itself.
			sid, caps := c.st.SessionID, c.st.Capabilities
			c.st = s.old
			c.st.SessionID, c.st.Capabilities = sid, caps
		}
	}()
	cn := c.cn
	if !cn.authed {
		if err := c.authenticate(ctx, res); err != nil {
			return err
		}
	}
	if !cn.authed {
		return errors.New("imap client: not authenticated")
	}
	if res.Strategy == StrategyAuto {
		strat := c.choose(c.capsKnown(), true)
		p, err := c.queuePlan(ctx, strat)
		if err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		if err := c.finishPlan(ctx, p, res); err != nil {
			return err
		}
	}
	if err := c.reconcile(ctx); err != nil {
		return err
	}
	// Commit.
	st := &c.st
	st.Mailbox = c.opts.Mailbox
	if s.uidValidity != 0 {
		st.UIDValidity = s.uidValidity
	}
	st.HighestModSeq = s.modseq
	if s.nomodseq {
		st.HighestModSeq = 0
	}
	st.UIDNext = s.uidNext
	if n := len(st.Messages); n > 0 && st.Messages[n-1].UID >= st.UIDNext {
		st.UIDNext = st.Messages[n-1].UID + 1
	}
	res.Events = diffEvents(&s.old, st, s.fullReason)
	c.synced = true
	c.save(ctx)
	return nil
}

// simple sends one command and waits for its OK.
func (c *Client) simple(ctx context.Context, name string, build func(e *wire.Encoder)) error {
	tag, err := c.queue(ctx, build)
	if err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	return c.waitOK(ctx, tag, name)
}

// authenticate logs in. When the server supports SASL-IR (RFC 4959) the
// AUTHENTICATE command is one line, and the commands of the
// synchronization are pipelined behind it when the stored capabilities
// say the server supports them: one round trip in all. In that case the
// plan is finished here and res.Strategy set.
func (c *Client) authenticate(ctx context.Context, res *SyncResult) error {
	cn := c.cn
	if len(cn.preCaps) == 0 {
		// The greeting had no CAPABILITY code (RFC 3501 §7.1 makes it
		// optional): ask.
		if err := c.simple(ctx, "CAPABILITY", func(e *wire.Encoder) { e.Atom("CAPABILITY") }); err != nil {
			return err
		}
	}
	if cn.preCaps["STARTTLS"] && c.opts.TLSConfig == nil && cn.preCaps["LOGINDISABLED"] {
		return errors.New("imap client: server requires STARTTLS, which this client does not do; use TLSConfig")
	}
	ir := cn.preCaps["AUTH=PLAIN"] && cn.preCaps["SASL-IR"]
	pipeline := ir && len(c.st.Capabilities) > 0
	var tag string
	var err error
	switch {
	case ir:
		tag, err = c.queue(ctx, func(e *wire.Encoder) {
			e.Atom("AUTHENTICATE PLAIN ").Atom(c.plainIR())
		})
	case cn.preCaps["AUTH=PLAIN"]:
		// RFC 4959 §3: without SASL-IR the response goes after the
		// server's empty challenge.
		tag, err = c.queue(ctx, func(e *wire.Encoder) { e.Atom("AUTHENTICATE PLAIN") })
		if err == nil {
			if err = c.flush(); err == nil {
				if err = c.waitContinuation(ctx, tag); err == nil {
					cn.bw.WriteString(c.plainIR() + "\r\n")
				}
			}
		}
	default:
		tag, err = c.queue(ctx, func(e *wire.Encoder) {
			e.Atom("LOGIN ").Astring(c.opts.Username).SP().Astring(c.opts.Password)
		})
	}
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			return &AuthError{*ce}
		}
		return err
	}
	cn.authTag = tag
	var p *plan
	ztag := ""
	switch {
	case pipeline && c.opts.Compress && c.st.hasCap(capCompress):
		// RFC 4978 §3: nothing may follow COMPRESS until its answer.
		// It rides with AUTHENTICATE; the plan waits for it.
		if ztag, err = c.queue(ctx, func(e *wire.Encoder) { e.Atom("COMPRESS DEFLATE") }); err != nil {
			return err
		}
	case pipeline:
		strat := c.choose(c.st.hasCap, true)
		if p, err = c.queuePlan(ctx, strat); err != nil {
			return err
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	r, err := c.wait(ctx, tag)
	if err != nil {
		return err
	}
	if r.name != "OK" {
		if p != nil {
			// The pipelined commands fail too (BAD: not authenticated);
			// read their answers so the connection stays in step.
			for _, t := range p.tags() {
				c.wait(ctx, t)
			}
		}
		if ztag != "" {
			c.wait(ctx, ztag)
		}
		return &AuthError{*cmdErr("AUTHENTICATE", r)}
	}
	cn.authed = true
	if ztag != "" {
		if err := c.compressed(ctx, ztag); err != nil {
			return err
		}
		strat := c.choose(c.st.hasCap, true)
		if p, err = c.queuePlan(ctx, strat); err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		return c.finishPlan(ctx, p, res)
	}
	if r.code != "CAPABILITY" && len(cn.caps) == 0 && p == nil {
		if err := c.simple(ctx, "CAPABILITY", func(e *wire.Encoder) { e.Atom("CAPABILITY") }); err != nil {
			return err
		}
	}
	if p != nil {
		return c.finishPlan(ctx, p, res)
	}
	if c.opts.Compress && cn.caps[capCompress] {
		tag, err := c.queue(ctx, func(e *wire.Encoder) { e.Atom("COMPRESS DEFLATE") })
		if err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		return c.compressed(ctx, tag)
	}
	return nil
}

// plainIR is the base64 PLAIN response (RFC 4616 §2: authzid NUL authcid
// NUL passwd, empty authzid).
func (c *Client) plainIR() string {
	b := base64.StdEncoding.EncodeToString([]byte("\x00" + c.opts.Username + "\x00" + c.opts.Password))
	if b == "" {
		return "=" // RFC 4959 §3: an empty initial response
	}
	return b
}

// hasReconnect reports whether the server offers resumable sessions, by
// the draft's capability name or by the plain RECONNECT a published
// version would have (quickimap's reconnect-plain-name option).
func hasReconnect(has func(string) bool) bool {
	return has(capReconnect) || has("RECONNECT")
}

// choose picks the best strategy permitted, given the capabilities.
// resume says a SID resume is still possible.
func (c *Client) choose(has func(string) bool, resume bool) Strategy {
	st := &c.st
	if resume && c.allow(StrategySID) && hasReconnect(has) && st.SessionID != "" &&
		st.UIDValidity != 0 && st.HighestModSeq != 0 && st.Mailbox == c.opts.Mailbox {
		return StrategySID
	}
	cached := st.UIDValidity != 0 && st.HighestModSeq != 0
	if cached && c.allow(StrategyQRESYNC) && has("QRESYNC") {
		return StrategyQRESYNC
	}
	if cached && c.allow(StrategyCONDSTORE) && has("CONDSTORE") {
		return StrategyCONDSTORE
	}
	return StrategyFull
}

// plan is a set of queued commands for one strategy.
type plan struct {
	strategy                   Strategy
	enable, sel, fetch, search string
	sidCreate, resume          string
	full                       bool // fetch is UID FETCH 1:* (FLAGS)
}

func (p *plan) tags() []string {
	var t []string
	for _, s := range []string{p.enable, p.sel, p.fetch, p.search, p.sidCreate, p.resume} {
		if s != "" {
			t = append(t, s)
		}
	}
	return t
}

// mailbox writes the mailbox name (modified UTF-7 astring, RFC 3501
// §5.1.3).
func (c *Client) mailbox(e *wire.Encoder) *wire.Encoder {
	return e.Mailbox(c.opts.Mailbox, false)
}

// queuePlan queues the commands of strategy s (not flushed).
func (c *Client) queuePlan(ctx context.Context, s Strategy) (*plan, error) {
	has := c.capsKnown()
	p := &plan{strategy: s}
	st := &c.st
	q := func(dst *string, build func(e *wire.Encoder)) error {
		t, err := c.queue(ctx, build)
		*dst = t
		return err
	}
	var err error
	switch s {
	case StrategySID:
		// Reconnect draft §3.3 with no known-uids: the session already
		// knows what this client saw.
		c.sync.inResume = true
		err = q(&p.resume, func(e *wire.Encoder) {
			e.Atom("SID ").Astring(st.SessionID).SP().Number(st.UIDValidity).SP().Number64(st.HighestModSeq)
		})
		return p, err
	case StrategyQRESYNC:
		if !c.cn.qresync {
			// RFC 7162 §3.2.3: "A client making use of QRESYNC MUST
			// issue ENABLE QRESYNC once it is authenticated"; RFC 5161
			// §3 puts no limit on pipelining it before SELECT.
			if err = q(&p.enable, func(e *wire.Encoder) { e.Atom("ENABLE QRESYNC") }); err != nil {
				return p, err
			}
		}
		known := formatUIDs(st.uids())
		err = q(&p.sel, func(e *wire.Encoder) {
			c.mailbox(e.Atom("SELECT ")).Atom(" (QRESYNC (").Number(st.UIDValidity).SP().Number64(st.HighestModSeq)
			if known != "" {
				e.SP().Atom(known)
			}
			e.Atom("))")
		})
		if err != nil {
			return p, err
		}
		// The QRESYNC parameter reports changes to known messages only
		// (RFC 7162 §6: "the client is in sync with the server regarding
		// old messages"); new ones are fetched in the same round trip.
		// "n:*" returns the last message when none is above n (RFC 3501
		// §6.4.8): a few bytes, no harm.
		next := st.UIDNext
		if n := len(st.Messages); n > 0 && st.Messages[n-1].UID >= next {
			next = st.Messages[n-1].UID + 1
		}
		next = max(next, 1)
		err = q(&p.fetch, func(e *wire.Encoder) {
			e.Atom("UID FETCH ").Number(next).Atom(":* (FLAGS)")
		})
	case StrategyCONDSTORE:
		if err = q(&p.sel, func(e *wire.Encoder) { c.mailbox(e.Atom("SELECT ")).Atom(" (CONDSTORE)") }); err != nil {
			return p, err
		}
		if err = q(&p.fetch, func(e *wire.Encoder) {
			e.Atom("UID FETCH 1:* (FLAGS) (CHANGEDSINCE ").Number64(st.HighestModSeq).Atom(")")
		}); err != nil {
			return p, err
		}
		err = c.queueSearch(ctx, &p.search, has)
	case StrategyFull:
		switch {
		case c.allow(StrategyQRESYNC) && has("QRESYNC"):
			if !c.cn.qresync {
				if err = q(&p.enable, func(e *wire.Encoder) { e.Atom("ENABLE QRESYNC") }); err != nil {
					return p, err
				}
			}
			err = q(&p.sel, func(e *wire.Encoder) { c.mailbox(e.Atom("SELECT ")) })
		case c.allow(StrategyCONDSTORE) && has("CONDSTORE"):
			err = q(&p.sel, func(e *wire.Encoder) { c.mailbox(e.Atom("SELECT ")).Atom(" (CONDSTORE)") })
		default:
			err = q(&p.sel, func(e *wire.Encoder) { c.mailbox(e.Atom("SELECT ")) })
		}
		if err != nil {
			return p, err
		}
		p.full = true
		c.sync.modseq = 0 // unless the SELECT reports HIGHESTMODSEQ
		c.sync.fullSeen = map[uint32]struct{}{}
		err = q(&p.fetch, func(e *wire.Encoder) { e.Atom("UID FETCH 1:* (FLAGS)") })
	}
	if err != nil {
		return p, err
	}
	// Reconnect draft §3.2: a new session, created after SELECT so that
	// it holds the selection.
	if c.allow(StrategySID) && hasReconnect(has) && st.SessionID == "" {
		err = q(&p.sidCreate, func(e *wire.Encoder) { e.Atom("SID") })
	}
	return p, err
}

// queueSearch queues a search for every UID (RFC 4731 ESEARCH when
// available: one compact set instead of one number per message).
func (c *Client) queueSearch(ctx context.Context, dst *string, has func(string) bool) error {
	c.search, c.sawSearch = nil, false
	t, err := c.queue(ctx, func(e *wire.Encoder) {
		if has("ESEARCH") {
			e.Atom("UID SEARCH RETURN (ALL) ALL")
		} else {
			e.Atom("UID SEARCH ALL")
		}
	})
	*dst = t
	return err
}

// finishPlan reads the answers of a queued plan and falls back when a
// step fails.
func (c *Client) finishPlan(ctx context.Context, p *plan, res *SyncResult) error {
	cn := c.cn
	s := c.sync
	fallback := func(next Strategy) error {
		res.Fallbacks = append(res.Fallbacks, p.strategy)
		c.opts.Logger.Info("falling back", "from", p.strategy, "to", next)
		q, err := c.queuePlan(ctx, next)
		if err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		return c.finishPlan(ctx, q, res)
	}
	if p.resume != "" {
		r, err := c.wait(ctx, p.resume)
		s.inResume = false
		if err != nil {
			return err
		}
		if r.name != "OK" {
			// NO (no session available) or BAD (the server no longer
			// knows SID): carry on without a session.
			c.opts.Logger.Info("SID resume refused", "status", r.name, "text", r.text)
			c.st.SessionID = ""
			return fallback(c.choose(c.capsKnown(), false))
		}
		switch {
		case !s.sawSelected, !s.selHasName, !c.sameMailbox(s.selName):
			// NEWSID alone: unknown or expired session, a new one was
			// created (§3.3 → §3.2); SELECTED without a name: the
			// mailbox is gone (§3.3). Either way nothing (of ours) is
			// selected: select it, the session holds the selection.
			return fallback(c.choose(c.capsKnown(), false))
		}
		cn.selected = true
		if s.fullReason != "" || s.modseq == 0 {
			// NEWSID with a new UIDVALIDITY (§3.3): the cache is gone;
			// fetch everything within the selection.
			res.Fallbacks = append(res.Fallbacks, StrategySID)
			res.Strategy = StrategyFull
			return c.fetchAll(ctx)
		}
		if s.sawNewSID {
			// NEWSID with the same UIDVALIDITY: the server could not
			// tell the changes (§3.3 "state-comparison based
			// synchronization"); compare within the selection as
			// CONDSTORE does.
			res.Fallbacks = append(res.Fallbacks, StrategySID)
			res.Strategy = StrategyCONDSTORE
			return c.changedSince(ctx)
		}
		res.Strategy = StrategySID
		return nil
	}
	if p.enable != "" {
		r, err := c.wait(ctx, p.enable)
		if err != nil {
			return err
		}
		if r.name == "OK" {
			// ENABLED lists only newly enabled extensions (RFC 5161
			// §3.1); OK is enough.
			cn.qresync, cn.condstore = true, true
		}
	}
	r, err := c.wait(ctx, p.sel)
	if err != nil {
		return err
	}
	if r.name != "OK" {
		for _, t := range []string{p.fetch, p.search, p.sidCreate} {
			if t != "" {
				if _, err := c.wait(ctx, t); err != nil {
					return err
				}
			}
		}
		c.sync.fullSeen = nil
		if r.name == "BAD" && p.strategy != StrategyFull {
			next := StrategyFull
			if p.strategy == StrategyQRESYNC && c.capsKnown()("CONDSTORE") && c.allow(StrategyCONDSTORE) {
				next = StrategyCONDSTORE
			}
			return fallback(next)
		}
		return &MailboxError{*cmdErr("SELECT", r)}
	}
	cn.selected = true
	if p.fetch != "" {
		r, err := c.wait(ctx, p.fetch)
		if err != nil {
			return err
		}
		if r.name != "OK" {
			return cmdErr("UID FETCH", r)
		}
		if p.full {
			c.dropUnseen()
		}
	}
	if p.search != "" {
		r, err := c.wait(ctx, p.search)
		if err != nil {
			return err
		}
		switch {
		case s.fullReason != "":
		case r.name == "OK":
			c.keepOnly(c.search)
		default:
			// Without the list of UIDs the expunges are unknown:
			// rebuild the view before trusting it.
			s.viewSuspect = true
		}
	}
	if p.sidCreate != "" {
		r, err := c.wait(ctx, p.sidCreate)
		if err != nil {
			return err
		}
		if r.name != "OK" {
			c.opts.Logger.Info("SID refused", "status", r.name, "text", r.text)
		}
	}
	res.Strategy = p.strategy
	if s.fullReason != "" && !p.full {
		// UIDVALIDITY changed under a QRESYNC or CONDSTORE select: the
		// server ignored the cached values; fetch everything.
		res.Fallbacks = append(res.Fallbacks, p.strategy)
		res.Strategy = StrategyFull
		return c.fetchAll(ctx)
	}
	return nil
}

func (c *Client) sameMailbox(name string) bool {
	want := imap.EncodeMailboxName(c.opts.Mailbox)
	if strings.EqualFold(want, "INBOX") {
		return strings.EqualFold(name, "INBOX")
	}
	return name == want
}

// fetchAll fetches every message's flags within the selection.
func (c *Client) fetchAll(ctx context.Context) error {
	c.sync.fullSeen = map[uint32]struct{}{}
	if err := c.simple(ctx, "UID FETCH", func(e *wire.Encoder) { e.Atom("UID FETCH 1:* (FLAGS)") }); err != nil {
		return err
	}
	c.dropUnseen()
	return nil
}

// changedSince is the CONDSTORE comparison within a selection: the flags
// changed since the cached HIGHESTMODSEQ and the list of UIDs, in one
// round trip.
func (c *Client) changedSince(ctx context.Context) error {
	has := c.capsKnown()
	ft, err := c.queue(ctx, func(e *wire.Encoder) {
		e.Atom("UID FETCH 1:* (FLAGS) (CHANGEDSINCE ").Number64(c.sync.old.HighestModSeq).Atom(")")
	})
	if err != nil {
		return err
	}
	var stag string
	if err := c.queueSearch(ctx, &stag, has); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.waitOK(ctx, ft, "UID FETCH"); err != nil {
		return err
	}
	if err := c.waitOK(ctx, stag, "UID SEARCH"); err != nil {
		return err
	}
	c.keepOnly(c.search)
	return nil
}

// dropUnseen removes the messages a full fetch did not return.
func (c *Client) dropUnseen() {
	seen := c.sync.fullSeen
	c.sync.fullSeen = nil
	if seen == nil {
		return
	}
	c.st.Messages = slices.DeleteFunc(c.st.Messages, func(m Message) bool {
		_, ok := seen[m.UID]
		return !ok
	})
}

// keepOnly removes the messages whose UID is not in set. Live (a
// reconcile after a Sync) the removal is reported and saved; during a
// Sync, events come from comparing the states.
func (c *Client) keepOnly(set uidSet) {
	var gone []uint32
	c.st.Messages = slices.DeleteFunc(c.st.Messages, func(m Message) bool {
		if set.contains(m.UID) {
			return false
		}
		gone = append(gone, m.UID)
		return true
	})
	if len(gone) > 0 {
		c.dirty = true
		c.emit(Vanished{UIDs: gone})
	}
}

// reconcile checks that the state matches the server's message count
// and, when it does not (a sequence-number EXPUNGE arrived before the
// view was known, or a server reported less than it should), rebuilds the
// list of UIDs with a UID SEARCH and fetches the flags of the UIDs it
// lacks. Another connection may change the mailbox meanwhile: an EXPUNGE
// that arrives during the repair (possibly after the SEARCH answer, which
// then still lists its UID) makes it run again, a few times at most.
func (c *Client) reconcile(ctx context.Context) error {
	cn := c.cn
	suspect := c.sync != nil && c.sync.viewSuspect
	if !suspect && int(cn.exists) == len(c.st.Messages) {
		return nil
	}
	c.opts.Logger.Warn("message count differs from the server's, reconciling",
		"exists", cn.exists, "known", len(c.st.Messages))
	const attempts = 3
	for attempt := 1; ; attempt++ {
		expunges := c.expunges
		if err := c.reconcileOnce(ctx); err != nil {
			return err
		}
		if c.expunges == expunges && int(cn.exists) == len(c.st.Messages) {
			if c.sync != nil {
				c.sync.viewSuspect = false
			}
			return nil
		}
		if attempt == attempts {
			return fmt.Errorf("imap client: server reports %d messages, UID SEARCH and FETCH give %d", cn.exists, len(c.st.Messages))
		}
	}
}

// reconcileOnce is one UID SEARCH and the FETCH of the UIDs it adds.
func (c *Client) reconcileOnce(ctx context.Context) error {
	var tag string
	if err := c.queueSearch(ctx, &tag, c.capsKnown()); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.waitOK(ctx, tag, "UID SEARCH"); err != nil {
		return err
	}
	set := c.search
	c.keepOnly(set)
	var missing []uint32
	for _, rg := range set {
		for u := uint64(rg.Start); u <= uint64(rg.Stop); u++ {
			if _, ok := c.st.find(uint32(u)); !ok {
				missing = append(missing, uint32(u))
			}
			if len(missing) > 10_000_000 {
				return protoErr("UID SEARCH answer too large")
			}
		}
	}
	if len(missing) > 0 {
		m := formatUIDs(missing)
		if err := c.simple(ctx, "UID FETCH", func(e *wire.Encoder) { e.Atom("UID FETCH " + m + " (FLAGS)") }); err != nil {
			return err
		}
	}
	return nil
}

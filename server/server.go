// Package server implements IMAP command semantics over the wire package's
// syntax and the store package's data. One file per command family:
// cmd_any.go (any state), cmd_auth.go (not authenticated), cmd_mailbox.go
// and cmd_list.go (authenticated), cmd_select.go (selection).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/server/tracker"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/wire"
)

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	Store  store.Store
	Logger *slog.Logger // default: slog.Default()

	// NodeID names this node among those sharing one store, in logs and
	// as the owner of the resumable sessions its connections hold.
	// Default: the host name.
	NodeID string
	// Bus carries change hints to and from the other nodes that share
	// the store (package bus). Nil: this node is alone with its store.
	// The server runs it (Bus.Run) from its first Serve until Shutdown;
	// the caller closes it after Shutdown returns, before the store.
	Bus bus.Bus
	// BusPollInterval is the safety poll of a node with a Bus: this
	// often every mailbox some session has open is refreshed from the
	// store, whatever the bus said, in case a hint was lost without the
	// bus noticing. Default DefaultBusPollInterval; negative: never.
	// Unused without a Bus.
	BusPollInterval time.Duration

	// TLSConfig enables STARTTLS on plain listeners and is required by
	// ServeTLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth lets LOGIN and AUTHENTICATE through on a
	// connection that is neither TLS nor from a loopback address.
	AllowInsecureAuth bool
	// DistrustLoopback treats loopback clients like remote ones for the
	// TLS requirement above (for a TLS-terminating proxy on the same
	// host that is not trusted, and for tests).
	DistrustLoopback bool
	// ProxyProtocolFrom lists the networks of trusted TCP load balancers
	// (HAProxy and the like). A connection from one of them must begin
	// with a PROXY protocol header (version 1 or 2), whose client
	// address the server then uses for everything it does per address:
	// limits, login throttling, loopback trust, session caps, logs. A
	// connection without a valid header within 5 seconds is closed.
	// Connections from elsewhere are taken as they come.
	ProxyProtocolFrom []netip.Prefix

	Limits wire.Limits
	// AutoLogoutTimeout ends a connection silent for this long (RFC 3501
	// §5.4: at least 30 minutes). Default 30 minutes.
	AutoLogoutTimeout time.Duration
	// PreAuthTimeout ends a connection that has not authenticated within
	// this long of its acceptance, however it spreads its bytes (the TLS
	// handshake included). Default 60 seconds.
	PreAuthTimeout time.Duration
	// WriteTimeout bounds every write to a client. Default 60 seconds.
	WriteTimeout time.Duration
	// LiteralTimeout bounds the wait for a literal's bytes. Default 60 s.
	LiteralTimeout time.Duration
	// MinRate is the average rate, in bytes per second, at which the
	// bytes of a command (lines and literals) must arrive, measured on
	// the time the server waits for them; a client that falls behind
	// by more than MinRateWindow is told BYE and disconnected (see
	// rateClock). Default DefaultMinRate; negative: no minimum.
	MinRate int64
	// MinRateWindow is the grace and the longest pause MinRate allows.
	// Default 60 seconds.
	MinRateWindow time.Duration
	// FailedLoginDelay is the pause before answering a failed login.
	// Default 2 seconds.
	FailedLoginDelay time.Duration
	// AuthCacheTTL is how long a password verified by bcrypt is
	// remembered (as an HMAC, see auth.Cache), so that logins with it
	// skip bcrypt. Default 1 hour; negative: no cache.
	AuthCacheTTL time.Duration
	// AuthCacheMaxUsers bounds the accounts the cache remembers; the
	// oldest entry goes first. Default auth.DefaultCacheMaxUsers.
	AuthCacheMaxUsers int
	// MaxConnections bounds open connections (default 20000); more are
	// greeted with BYE and closed.
	MaxConnections int
	// MaxConnectionsPerIP bounds the open connections of one client
	// address (an IPv4 address, an IPv6 /64); more are greeted with BYE
	// and closed. Default DefaultMaxConnectionsPerIP; negative: no
	// bound. Loopback clients are exempt unless LimitLoopback.
	MaxConnectionsPerIP int
	// LimitLoopback applies the per-address limits (MaxConnectionsPerIP
	// and login throttling) to loopback clients too. Off by default: a
	// proxy or webmail on the same host brings every user from one
	// loopback address.
	LimitLoopback bool
	// MaxAuthFailures closes a connection after this many failed logins
	// (default 3).
	MaxAuthFailures int
	// LoginThrottleFailures is the number of failed logins from one
	// client address (see MaxConnectionsPerIP) after which its further
	// LOGIN and AUTHENTICATE attempts are delayed, LoginThrottleDelay
	// for the first, twice as long for each further failure, up to
	// LoginThrottleMaxDelay, and spaced by that delay (see
	// loginThrottle). The count is forgotten after LoginThrottleWindow
	// without a failure. Defaults: 5 failures, 15 minutes, 1 s, 30 s;
	// LoginThrottleFailures negative: no throttling. Loopback clients
	// are exempt unless LimitLoopback.
	LoginThrottleFailures int
	LoginThrottleWindow   time.Duration
	LoginThrottleDelay    time.Duration
	LoginThrottleMaxDelay time.Duration
	// loginThrottleMaxAddrs bounds the addresses the throttle remembers.
	loginThrottleMaxAddrs int
	// MaxMailboxes bounds the mailboxes of one account (default 10000).
	MaxMailboxes int
	// IdleKeepalive is the interval of "* OK" keepalives during IDLE.
	// Default 29 minutes: often enough for NAT bindings and RFC 2177's
	// 30-minute client timer, rarely enough not to wake a phone's radio.
	IdleKeepalive time.Duration
	// ReconnectPlainName advertises resumable sessions as RECONNECT too,
	// next to the draft's X-DRAFT-W07-RECONNECT (when Sessions is set).
	ReconnectPlainName bool
	// MaxAppendMessages bounds the messages of one MULTIAPPEND (default
	// 1000).
	MaxAppendMessages int
	// MessageCacheBytes bounds, in bytes, the server-wide cache of what
	// FETCH reads of a message that never changes (internal date, size,
	// stored structure, bodies up to 64 KiB), which spares the store
	// repeated reads. Default DefaultMessageCache(); negative: no
	// cache.
	MessageCacheBytes int64
	// SearchTimeLimit bounds the time one SEARCH (or UID SEARCH) may
	// spend evaluating, store reads included; past it the command is
	// answered NO [LIMIT]. Default DefaultSearchTimeLimit; negative: no
	// limit.
	SearchTimeLimit time.Duration
	// MemoryBudget bounds, in bytes, the memory the server spends at
	// once on literals being received and on FETCH responses being
	// written, over all connections (see membudget.go). Default
	// DefaultMemoryBudget(), derived from the machine's memory.
	MemoryBudget int64
	// SpoolLiteral is the size above which an APPEND literal is written
	// to a temporary file as it arrives instead of being held in memory
	// (smaller ones too, when the budget is spent). Default
	// DefaultSpoolLiteral.
	SpoolLiteral int64
	// SpoolDir is the directory of those temporary files, made (mode
	// 0700) when missing. Default os.TempDir(); quickimap serve uses
	// spool/ in the data directory.
	SpoolDir string
	// CompressLevel is the DEFLATE level of COMPRESS=DEFLATE (RFC 4978)
	// responses, 1 (fastest) to 9 (smallest); default 5.
	CompressLevel int
	// MaxCompressed caps the connections compressed at once; beyond it
	// COMPRESS answers NO [LIMIT]. Default DefaultMaxCompressed; negative:
	// COMPRESS is not offered.
	MaxCompressed int
	// Sessions, when not nil, enables resumable sessions
	// (draft-ietf-lemonade-reconnect-07: SID, DELETESID, LOGOUT
	// (PRESERVE)) and the X-DRAFT-W07-RECONNECT capability. The caller
	// runs its Expire periodically.
	Sessions *session.Registry
	// Metrics, when not nil, receives the server's measurements
	// (connections, commands, logins, resumes, bytes).
	Metrics Metrics
	// ExternalPollInterval is how often the store is asked whether
	// another process (quickimap import) wrote to it, when it can tell
	// (external.go); sessions with a mailbox open then learn of the
	// changes. Default 2 seconds; negative: never.
	ExternalPollInterval time.Duration
	// OnPanic, when not nil, is called with the value a connection
	// recovered from a panic, after the panic is logged and before the
	// connection ends: for a metric, and for tests, which fail on it.
	OnPanic func(recovered any)
}

// DefaultMinRate is the default of Options.MinRate, in bytes per second:
// far below what a phone on a 2G (GPRS) network sends, some kilobytes
// per second, and far above a slowloris trickle of a byte every few
// seconds.
const DefaultMinRate = 256

// DefaultMaxConnectionsPerIP is the default of Options.MaxConnectionsPerIP:
// a household or small office behind one NAT address, each device with a
// few connections (one per watched mailbox), stays far below it.
const DefaultMaxConnectionsPerIP = 100

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Limits = o.Limits.WithDefaults()
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.AutoLogoutTimeout, 30*time.Minute)
	def(&o.PreAuthTimeout, 60*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	def(&o.LiteralTimeout, 60*time.Second)
	if o.MinRate == 0 {
		o.MinRate = DefaultMinRate
	}
	def(&o.MinRateWindow, 60*time.Second)
	def(&o.FailedLoginDelay, 2*time.Second)
	if o.AuthCacheTTL == 0 {
		o.AuthCacheTTL = time.Hour
	}
	if o.AuthCacheMaxUsers <= 0 {
		o.AuthCacheMaxUsers = auth.DefaultCacheMaxUsers
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 20000
	}
	if o.MaxConnectionsPerIP == 0 {
		o.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if o.MaxAuthFailures <= 0 {
		o.MaxAuthFailures = 3
	}
	if o.LoginThrottleFailures == 0 {
		o.LoginThrottleFailures = 5
	}
	def(&o.LoginThrottleWindow, 15*time.Minute)
	def(&o.LoginThrottleDelay, time.Second)
	def(&o.LoginThrottleMaxDelay, 30*time.Second)
	if o.loginThrottleMaxAddrs <= 0 {
		o.loginThrottleMaxAddrs = 10000
	}
	if o.MaxCompressed == 0 {
		o.MaxCompressed = DefaultMaxCompressed
	}
	def(&o.IdleKeepalive, 29*time.Minute)
	if o.ExternalPollInterval == 0 {
		o.ExternalPollInterval = 2 * time.Second
	}
	if o.BusPollInterval == 0 {
		o.BusPollInterval = DefaultBusPollInterval
	}
	if o.MaxAppendMessages <= 0 {
		o.MaxAppendMessages = 1000
	}
	if o.MaxMailboxes <= 0 {
		o.MaxMailboxes = 10000
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = DefaultMemoryBudget()
	}
	if o.SpoolLiteral <= 0 {
		o.SpoolLiteral = DefaultSpoolLiteral
	}
	if o.MessageCacheBytes == 0 {
		o.MessageCacheBytes = DefaultMessageCache()
	}
	if o.SearchTimeLimit == 0 {
		o.SearchTimeLimit = DefaultSearchTimeLimit
	}
	return o
}

// Server serves IMAP connections.
type Server struct {
	opts  Options
	log   *slog.Logger
	store store.Store

	hub *tracker.Hub

	// ctx ends, with the cause errClosing, when Shutdown begins: waits
	// that have not begun work (a login queued for a bcrypt slot) give up.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// base is the context every connection's derives from (see
	// conn.ctx), as net/http's BaseContext: it ends, with the cause
	// errShutdownDeadline, when Shutdown's own context ends, cancelling
	// the store work and searches still running then.
	base     context.Context
	stopBase context.CancelCauseFunc

	// authCache remembers verified passwords; gate bounds the bcrypt
	// checks running at once (see authGate).
	authCache *auth.Cache
	gate      *authGate

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perAddr   map[string]int // open connections by clientAddr.key, not exempt ones
	closing   bool
	done      chan struct{} // closed when Shutdown begins
	wg        sync.WaitGroup

	dummyOnce sync.Once
	dummy     string

	// rechecking is set while a recheck of the held sessions runs
	// (sessionsResync): resyncs that come meanwhile are covered by it.
	rechecking atomic.Bool

	watchOnce sync.Once // starts watchExternal
	busOnce   sync.Once // starts the bus (startBus)

	// readers and writers lend connections their buffers (see
	// conn.loop): *bufio.Reader of readBufSize bytes, and write buffers
	// of writeBufSize.
	readers sync.Pool
	writers *wire.WriterPool

	spare    spareFD        // see spareFD
	fullLog  floodLog       // "connection refused" at max-connections
	fdLog    floodLog       // "connection refused" out of descriptors
	throttle *loginThrottle // nil: no login throttling

	bodyBufs sync.Pool // *[]byte of bodyBufSize, for FETCH (cmd_fetch.go)
	parts    *partCache
	msgs     *msgCache      // nil when disabled
	compress *compressState // nil when COMPRESS is not offered
	mem      *memBudget
	full     fullLog // the "mail store is full" line (full.go)

	// metrics is Options.Metrics (nil: none), cmdMetrics its recorder
	// of each command name.
	metrics    Metrics
	cmdMetrics map[string]CommandMetrics
}

// DefaultMaxCompressed is the default of Options.MaxCompressed.
const DefaultMaxCompressed = 10000

// New returns a Server.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	// The server's root: nothing above it can cancel a server; Shutdown
	// does, through these.
	base, stopBase := context.WithCancelCause(context.Background())
	ctx, cancel := context.WithCancelCause(base)
	var throttle *loginThrottle
	if opts.LoginThrottleFailures > 0 {
		throttle = newLoginThrottle(opts)
	}
	s := &Server{
		throttle:  throttle,
		opts:      opts,
		log:       opts.Logger,
		store:     opts.Store,
		hub:       tracker.NewHub(opts.Store, tracker.Options{}),
		ctx:       ctx,
		cancel:    cancel,
		base:      base,
		stopBase:  stopBase,
		authCache: auth.NewCache(auth.CacheOptions{TTL: opts.AuthCacheTTL, MaxUsers: opts.AuthCacheMaxUsers}),
		gate:      newAuthGate(authSlots(runtime.GOMAXPROCS(0))),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		perAddr:   make(map[string]int),
		done:      make(chan struct{}),
		writers:   wire.NewWriterPool(writeBufSize),
		parts:     newPartCache(),
		msgs:      newMsgCache(opts.MessageCacheBytes),
		mem:       newMemBudget(opts.MemoryBudget),
		compress:  newCompressState(opts),

		metrics:    opts.Metrics,
		cmdMetrics: newCmdMetrics(opts.Metrics),
	}
	s.startSessions()
	return s
}

// startSessions starts the session registry's heartbeat, which tells the
// other nodes sharing the store that this node's sessions are held; its
// first start releases those an earlier run of the node left recorded as
// its own. A failure is logged: the node then serves, and its sessions
// count as inactive elsewhere until a heartbeat gets through.
func (s *Server) startSessions() {
	if s.opts.Sessions == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, sessionWriteTimeout)
	defer cancel()
	if err := s.opts.Sessions.Start(ctx); err != nil {
		s.log.Error("starting the session heartbeat", "err", err)
	}
}

// stopSessions stops the heartbeat, once the connections have detached
// their sessions (or Shutdown gave up waiting for them).
func (s *Server) stopSessions() {
	if s.opts.Sessions != nil {
		s.opts.Sessions.Stop()
	}
}

// AuthStats is a snapshot of the password checking of a Server.
type AuthStats struct {
	// Slots is how many bcrypt checks may run at once; Waiting is the
	// number of logins queued for a slot, Running the number of checks
	// in progress.
	Slots, Waiting, Running int
	// Checks counts the bcrypt checks begun since the start.
	Checks uint64
	// Cache is the credential cache's counters.
	Cache auth.CacheStats
}

// AuthStats returns the current figures of the password checking.
func (s *Server) AuthStats() AuthStats {
	return AuthStats{
		Slots:   cap(s.gate.slots),
		Waiting: int(s.gate.waiting.Load()),
		Running: len(s.gate.slots),
		Checks:  s.gate.checks.Load(),
		Cache:   s.authCache.Stats(),
	}
}

// closingCh is closed when Shutdown begins, to cut waits short.
func (s *Server) closingCh() <-chan struct{} { return s.done }

// dummyHash is a password hash that matches nothing, checked against when a
// user does not exist so that a failed login takes the same time either way.
// It is made by the first such login, in a slot of the gate, at the cost of
// the stored hashes (auth.Cost).
func (s *Server) dummyHash() string {
	s.dummyOnce.Do(func() {
		h, err := auth.HashPassword("quickimap-no-such-user")
		if err == nil {
			s.dummy = h
		}
	})
	return s.dummy
}

// errClosing refuses new connections once Shutdown has begun.
var errClosing = errors.New("server closing")

// errShutdownDeadline cancels the work still running when Shutdown's
// context ends.
var errShutdownDeadline = errors.New("server shut down before the command finished")

// Serve accepts plain connections (STARTTLS offered when TLSConfig is set)
// on l until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeTLS accepts implicit-TLS connections (port 993 style) on l.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("server: ServeTLS needs Options.TLSConfig")
	}
	return s.serve(l, true)
}

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.startWatch()
	s.startBus()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	s.spare.reserve()
	var tempDelay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			if outOfFDs(err) {
				bye := "* BYE Server out of resources, try again later\r\n"
				if implicitTLS {
					bye = ""
				}
				if s.spare.shed(l, bye) {
					if s.metrics != nil {
						s.metrics.ConnRejected(RejectOutOfFDs)
					}
					// A stable line for operators (docs/security.md).
					if ok, skipped := s.fdLog.allow(time.Now()); ok {
						s.log.Warn("connection refused", "reason", "out-of-file-descriptors", "err", err, "not_logged", skipped)
					}
					tempDelay = 0
					continue
				}
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, as
				// net/http does, instead of spinning.
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else if tempDelay *= 2; tempDelay > time.Second {
					tempDelay = time.Second
				}
				s.log.Warn("accept failed; retrying", "err", err, "delay", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		if s.fromProxy(nc) {
			// The header is read on the connection's own goroutine: a
			// slow proxy must not hold up the accept loop.
			go s.acceptProxied(nc, implicitTLS)
			continue
		}
		s.start(nc, implicitTLS)
	}
}

// start serves a new connection on a goroutine of its own, or refuses it.
func (s *Server) start(nc net.Conn, implicitTLS bool) {
	if implicitTLS {
		nc = tls.Server(nc, s.opts.TLSConfig)
	}
	c, bye := s.track(nc)
	if c == nil {
		// Over a connection limit or shutting down: a BYE, best
		// effort and bounded by a short deadline.
		nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		nc.Write([]byte("* BYE " + bye + "\r\n"))
		nc.Close()
		return
	}
	go c.serve()
}

// acceptProxied reads the PROXY header of a connection from a trusted
// proxy, then serves it as the client it names.
func (s *Server) acceptProxied(nc net.Conn, implicitTLS bool) {
	timeout := min(proxyHeaderTimeout, s.opts.PreAuthTimeout)
	pc, err := readProxyHeader(nc, timeout)
	if err != nil {
		s.log.Warn("connection refused", "reason", "proxy-header", "proxy", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	s.start(pc, implicitTLS)
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers a new connection, or returns the text of the BYE that
// refuses it.
func (s *Server) track(nc net.Conn) (*conn, string) {
	ca := newClientAddr(nc.RemoteAddr(), s.opts.LimitLoopback)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, "Server shutting down"
	}
	if len(s.conns) >= s.opts.MaxConnections {
		if ok, skipped := s.fullLog.allow(time.Now()); ok {
			s.log.Warn("connection refused", "reason", "max-connections", "addr", ca.ip, "limit", s.opts.MaxConnections, "not_logged", skipped)
		}
		if s.metrics != nil {
			s.metrics.ConnRejected(RejectMaxConnections)
		}
		return nil, "Too many connections, try again later"
	}
	if !ca.exempt && s.opts.MaxConnectionsPerIP > 0 && s.perAddr[ca.key] >= s.opts.MaxConnectionsPerIP {
		// A stable line for operators (docs/security.md).
		s.log.Warn("connection refused", "reason", "max-connections-per-ip", "addr", ca.ip, "limit", s.opts.MaxConnectionsPerIP)
		if s.metrics != nil {
			s.metrics.ConnRejected(RejectMaxConnectionsPerIP)
		}
		return nil, "Too many connections from your address, try again later"
	}
	c := newConn(s, nc, ca)
	s.conns[c] = struct{}{}
	if s.metrics != nil {
		s.metrics.ConnOpened()
	}
	if !ca.exempt {
		s.perAddr[ca.key]++
	}
	s.wg.Add(1)
	return c, ""
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if !c.ca.exempt {
		if s.perAddr[c.ca.key]--; s.perAddr[c.ca.key] <= 0 {
			delete(s.perAddr, c.ca.key)
		}
	}
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting, sends "* BYE" to every open connection, closes
// them and waits for their goroutines to end or ctx to be done. A command
// in progress is given until then to finish; when ctx ends first, the
// context of every connection is cancelled (store work and searches in
// progress stop), every connection is closed and Shutdown returns
// ctx.Err() at once, without waiting for the cancelled work to unwind. It
// does not close the store; the caller does, after Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.done)
	}
	s.closing = true
	// Logins waiting for a bcrypt slot give up.
	s.cancel(errClosing)
	for l := range s.listeners {
		l.Close()
	}
	s.spare.close()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	// Wake every connection blocked in a read; it sees the server closing,
	// says BYE and ends. A connection in the middle of a command finishes
	// it first, so no command is cut half-way unless ctx ends.
	for _, c := range conns {
		c.interrupt()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	defer s.stopSessions()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// Commands still running and connections stuck writing to
		// clients that do not read: cancel the one, close the other.
		s.stopBase(errShutdownDeadline)
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

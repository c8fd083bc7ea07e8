// Package lmtp receives mail from a mail transfer agent (Postfix, Exim,
// OpenSMTPD...) over LMTP (RFC 2033) and delivers it into the accounts of
// the store: each recipient's copy is appended, durably, to a mailbox of
// the account and shown at once to the IMAP sessions that watch that
// mailbox, before the recipient's 250 reply is sent.
//
// A recipient names an account by its local part, case-insensitively
// (alice@example.org and Alice@example.org are the account "alice"); an
// account named by the whole address ("alice@example.org") is found too.
// With a recipient delimiter ("+"), alice+Lists@example.org delivers to
// alice's mailbox "Lists" when it exists, to INBOX otherwise. The domain
// must be one of Options.Domains when that list is not empty.
//
// The protocol is github.com/emersion/go-smtp's server in LMTP mode; this
// package is its backend. No AUTH is offered or accepted: the peer is the
// local MTA, and who may connect is decided by the listener (a loopback
// address, or the mode of a Unix socket).
package lmtp

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/quickimap/quickimap/store"
)

// Deliverer appends a delivered message to a mailbox: when Deliver
// returns without error the message is durable and the IMAP sessions that
// have the mailbox selected have been told. *server.Server is one.
type Deliverer interface {
	Deliver(ctx context.Context, userID, mailboxID int64, body []byte, date time.Time) (uid, uidValidity uint32, err error)
}

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	// Store is where accounts and mailboxes are looked up.
	Store store.Store
	// Deliverer appends the messages (the IMAP server, so that its
	// sessions see them at once).
	Deliverer Deliverer
	Logger    *slog.Logger // default: slog.Default()

	// Hostname names this server in the greeting and the Received
	// header. Default: os.Hostname().
	Hostname string
	// Domains are the domains accepted in recipient addresses,
	// compared case-insensitively; empty accepts any domain.
	Domains []string
	// RecipientDelimiter holds the characters that separate a local
	// part from its detail ("+" for alice+Lists); each character of it
	// is a delimiter, as in Postfix's recipient_delimiter. Empty: none.
	RecipientDelimiter string

	// MaxMessageBytes is the largest message accepted, advertised as
	// SIZE (RFC 1870). Default 64 MiB.
	MaxMessageBytes int64
	// MaxConnections bounds the connections open at once (default 100;
	// Postfix opens 20 per destination by default); more are answered
	// "421 4.3.2" and closed, and the client tries again later. Each
	// may hold a message of up to MaxMessageBytes in memory.
	MaxConnections int
	// MaxRecipients bounds the recipients of one transaction (default
	// 1000); more get 452 4.5.3 and are sent again by the client.
	MaxRecipients int
	// MaxLineLength bounds a command line and a line of the message
	// (default 1 MiB: mail in the wild has lines far longer than RFC
	// 5322's 998).
	MaxLineLength int
	// ReadTimeout bounds the wait for a command or for the message's
	// bytes (default 5 minutes); WriteTimeout every reply (default 1
	// minute).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// DeliveryTimeout bounds the store's work for one recipient
	// (default 2 minutes); beyond it the recipient gets a temporary
	// failure and the client tries again later.
	DeliveryTimeout time.Duration

	// OnResult, when not nil, is called once for every recipient the
	// server answers, refused at RCPT or answered after the message (for
	// metrics), before the reply is sent. It runs on the connection's
	// goroutine: keep it quick.
	OnResult func(Result)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 20
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 100
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = 1000
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = 1 << 20
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadTimeout, 5*time.Minute)
	def(&o.WriteTimeout, time.Minute)
	def(&o.DeliveryTimeout, 2*time.Minute)
	doms := make([]string, 0, len(o.Domains))
	for _, d := range o.Domains {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			doms = append(doms, d)
		}
	}
	o.Domains = doms
	return o
}

// Outcome classifies a recipient's result.
type Outcome string

const (
	Delivered      Outcome = "delivered"         // 250
	UnknownUser    Outcome = "unknown_user"      // 550 5.1.1
	UnknownDomain  Outcome = "unknown_domain"    // 550 5.1.2
	TooLarge       Outcome = "too_large"         // 552 5.3.4
	StorageFull    Outcome = "storage_full"      // 452 4.3.1
	MailboxFull    Outcome = "mailbox_full"      // 452 4.2.2
	Refused        Outcome = "refused"           // 554 5.6.1: NUL bytes
	TemporaryError Outcome = "temporary_failure" // 451 4.3.0 and the like
)

// Result is what happened to one recipient.
type Result struct {
	// From is the envelope sender ("" for the null sender <>), To the
	// recipient as the client gave it.
	From, To string
	// User and Mailbox are where the message went or would have gone
	// ("" when the recipient was not resolved).
	User, Mailbox string
	// UID is the new message's UID when delivered.
	UID uint32
	// Size is the bytes stored (trace headers included), or received
	// when the message was refused.
	Size int
	// Code and Enhanced are the reply sent: 250 and "2.0.0", 550 and
	// "5.1.1"...
	Code     int
	Enhanced string
	Outcome  Outcome
	// Err is the underlying error of a failure, if any.
	Err error
	// Duration is the time the delivery took (0 for a refusal at RCPT).
	Duration time.Duration
}

// Server is an LMTP server delivering into a store.
type Server struct {
	opts  Options
	log   *slog.Logger
	smtp  *smtp.Server
	doms  map[string]bool
	delim string

	// ctx is the parent of deliveries: it is not cancelled by Shutdown,
	// so that a delivery under way finishes and is answered.
	ctx context.Context

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
}

// New returns a Server.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:  opts,
		log:   opts.Logger,
		delim: opts.RecipientDelimiter,
		ctx:   context.Background(),
		conns: make(map[*trackedConn]struct{}),
	}
	if len(opts.Domains) > 0 {
		s.doms = make(map[string]bool, len(opts.Domains))
		for _, d := range opts.Domains {
			s.doms[d] = true
		}
	}
	ss := smtp.NewServer(backend{s})
	ss.LMTP = true
	ss.Domain = opts.Hostname
	ss.MaxMessageBytes = opts.MaxMessageBytes
	ss.MaxRecipients = opts.MaxRecipients
	ss.MaxLineLength = opts.MaxLineLength
	ss.ReadTimeout = opts.ReadTimeout
	ss.WriteTimeout = opts.WriteTimeout
	// UTF-8 in addresses and headers is stored as the bytes it is, like
	// any 8-bit header (8BITMIME is always advertised by go-smtp).
	ss.EnableSMTPUTF8 = true
	// BINARYMIME is not offered: IMAP cannot hand a message with NUL
	// bytes back to a client without BINARY (RFC 3516), so a sender must
	// encode such a body (RFC 3030 §3) rather than have it refused here.
	ss.EnableBINARYMIME = false
	// No AUTH mechanism is ever advertised (session.AuthMechanisms is
	// empty) and AUTH gets "502 5.7.0 Authentication not supported"
	// (session.Auth). go-smtp answers "TLS is required" before asking the
	// session unless this is set, which would wrongly suggest that AUTH
	// could work over TLS.
	ss.AllowInsecureAuth = true
	ss.ErrorLog = log.New(slogWriter{s.log}, "", 0)
	s.smtp = ss
	return s
}

// slogWriter turns go-smtp's internal error log (panics, broken
// connections) into warnings of the server's logger.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("lmtp: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// Serve accepts LMTP connections on l until Shutdown or Close; it returns
// nil then.
func (s *Server) Serve(l net.Listener) error {
	err := s.smtp.Serve(&trackedListener{Listener: l, s: s})
	if s.closing.Load() {
		return nil
	}
	return err
}

// Shutdown stops accepting, ends every connection that waits for a
// command (with "421 4.4.2"), lets a delivery under way finish and be
// answered, and waits for the connections to end or ctx to be done; then
// it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(ctx) }()
	// Wake connections blocked reading a command, unless they have a
	// transaction with recipients: the message may be on its way (go-smtp
	// sets a read deadline only before reading a command line, never
	// while reading the message). Those end at their next command read,
	// which trackedConn makes time out at once.
	s.mu.Lock()
	for c := range s.conns {
		if !c.busy.Load() {
			c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	err := <-done
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		// go-smtp's Close does nothing once Shutdown has begun: close
		// what is left here.
		s.closeConns()
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	err := s.smtp.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	s.closeConns()
	return err
}

// closeConns closes every accepted connection.
func (s *Server) closeConns() {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// trackedListener wraps the accepted connections in trackedConn.
type trackedListener struct {
	net.Listener
	s *Server
}

func (l *trackedListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &trackedConn{Conn: nc, s: l.s}
		l.s.mu.Lock()
		full := len(l.s.conns) >= l.s.opts.MaxConnections
		if !full {
			l.s.conns[c] = struct{}{}
		}
		l.s.mu.Unlock()
		if !full {
			return c, nil
		}
		// Best effort, bounded by a short deadline.
		nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		nc.Write([]byte("421 4.3.2 Too many connections, try again later\r\n"))
		nc.Close()
		l.s.log.Warn("lmtp: connection refused: too many connections", "max", l.s.opts.MaxConnections)
	}
}

// trackedConn is an accepted connection that Shutdown can reach: once the
// server is closing, any read deadline set on it (go-smtp sets one before
// reading each command) is in the past, so that the connection ends after
// answering what it was doing instead of waiting for another command.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
	// busy is set from the first accepted recipient of a transaction to
	// its end (the replies after the message, or RSET).
	busy atomic.Bool
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.s.closing.Load() {
		t = time.Unix(1, 0)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// backend makes sessions for go-smtp.
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc, _ := c.Conn().(*trackedConn)
	return &session{s: b.s, conn: c, tc: tc}, nil
}

// report logs the result of one recipient and passes it to OnResult.
func (s *Server) report(r Result) {
	lvl := slog.LevelInfo
	switch {
	case r.Code/100 == 4:
		lvl = slog.LevelWarn
	case r.Outcome == TemporaryError:
		lvl = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("from", logText(r.From)), slog.String("to", logText(r.To)),
		slog.Int("code", r.Code), slog.String("status", r.Enhanced), slog.String("result", string(r.Outcome)),
	}
	if r.User != "" {
		attrs = append(attrs, slog.String("user", r.User))
	}
	if r.Mailbox != "" {
		attrs = append(attrs, slog.String("mailbox", r.Mailbox))
	}
	if r.UID != 0 {
		attrs = append(attrs, slog.Any("uid", r.UID))
	}
	if r.Size > 0 {
		attrs = append(attrs, slog.Int("size", r.Size))
	}
	if r.Duration > 0 {
		attrs = append(attrs, slog.Duration("duration", r.Duration))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("err", r.Err.Error()))
	}
	s.log.LogAttrs(context.Background(), lvl, "lmtp delivery", attrs...)
	if s.opts.OnResult != nil {
		s.opts.OnResult(r)
	}
}

// maxLogText bounds an address in the log: one command must not be able
// to write a megabyte line (MaxLineLength) into the operator's log.
const maxLogText = 256

// logText is s for the log: at most maxLogText bytes, cut with "...",
// control characters and invalid UTF-8 as '?'.
func logText(s string) string {
	cut := false
	if len(s) > maxLogText {
		s, cut = s[:maxLogText], true
	}
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if cut {
		s += "..."
	}
	return s
}

// replyError is an SMTP reply with its classification.
func replyError(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

func enhanced(e smtp.EnhancedCode) string { return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]) }

// errReadFailed reports the reading of the message's bytes failing for
// another reason than its size (the client went away, a timeout).
var errReadFailed = replyError(451, smtp.EnhancedCode{4, 4, 2}, "Error reading the message; try again later")

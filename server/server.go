// Package server implements IMAP command semantics over the wire package's
// syntax and the store package's data. One file per command family.
package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/wire"
)

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	Store  store.Store
	Logger *slog.Logger // default: slog.Default()

	// TLSConfig enables STARTTLS on plain listeners and is required by
	// ServeTLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth lets LOGIN and AUTHENTICATE through on a
	// connection that is neither TLS nor from a loopback address.
	AllowInsecureAuth bool

	Limits wire.Limits
	// AutoLogoutTimeout ends a connection silent for this long (RFC 3501
	// §5.4: at least 30 minutes). Default 30 minutes.
	AutoLogoutTimeout time.Duration
	// PreAuthTimeout ends a connection that has not authenticated within
	// this long of silence. Default 60 seconds.
	PreAuthTimeout time.Duration
	// WriteTimeout bounds every write to a client. Default 60 seconds.
	WriteTimeout time.Duration
	// LiteralTimeout bounds the wait for a literal's bytes. Default 60 s.
	LiteralTimeout time.Duration
	// FailedLoginDelay is the pause before answering a failed login.
	// Default 2 seconds.
	FailedLoginDelay time.Duration
	// MaxConnections bounds open connections (default 20000); more are
	// greeted with BYE and closed.
	MaxConnections int
	// MaxAuthFailures closes a connection after this many failed logins
	// (default 3).
	MaxAuthFailures int
}

// Server serves IMAP connections.
type Server struct {
	// unexported fields
}

// New returns a Server.
func New(opts Options) *Server { panic("unimplemented") }

// Serve accepts plain connections (STARTTLS offered when TLSConfig is set)
// on l until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error { panic("unimplemented") }

// ServeTLS accepts implicit-TLS connections (port 993 style) on l.
func (s *Server) ServeTLS(l net.Listener) error { panic("unimplemented") }

// Shutdown stops accepting, sends "* BYE" to every open connection, closes
// them and waits for their goroutines to end or ctx to be done. It does not
// close the store; the caller does, after Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error { panic("unimplemented") }

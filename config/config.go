// Package config holds every setting of a quickimap server, their
// defaults and a parser for the configuration file. It is a leaf: it knows
// no other package of quickimap, and "quickimap serve" turns a Config into
// the options of the server, the store and the session registry.
//
// The file format is one "key = value" setting per line. Blank lines and
// lines whose first non-blank character is '#' are ignored; so is the rest
// of a line from a '#' that follows a blank. A value may be written in
// double quotes (Go syntax) to keep a '#' or surrounding blanks. Keys are
// the names of the command-line flags of "quickimap serve" (see Keys).
// Durations use Go syntax ("29m", "1m30s"); sizes are a whole number with
// an optional unit (see ParseSize).
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// Durability policies of the embedded store (the fsync key).
const (
	FsyncAlways    = "always"
	FsyncOptimized = "optimized"
)

// Config is the whole configuration of a server.
type Config struct {
	// DataDir is the directory of the embedded store.
	DataDir string
	// Postgres is the connection string (DSN) of a PostgreSQL database
	// that holds the store instead of the embedded one in DataDir; empty:
	// the embedded store. Several servers may share one database.
	Postgres string
	// NodeID names this process among the nodes that share a store, in
	// its log lines and as the owner of the resumable sessions its
	// connections hold. Empty: the host name and the port of the first
	// listener ("mail1:143"). See ValidNodeID.
	NodeID string
	// BusPollInterval is how often a node sharing the PostgreSQL store
	// refreshes every mailbox its sessions have open, whatever the other
	// nodes' change hints said: the safety net under a lost hint (0:
	// never).
	BusPollInterval time.Duration
	// Listen is the address of the plain listener (STARTTLS when a
	// certificate is configured). Empty disables it.
	Listen string
	// TLSListen is the address of the implicit-TLS listener (port 993
	// style). Empty disables it; it needs CertFile and KeyFile.
	TLSListen string
	// CertFile and KeyFile are PEM files of the TLS certificate (chain)
	// and its private key.
	CertFile string
	KeyFile  string
	// AllowInsecureAuth lets clients log in over a connection that is
	// neither TLS nor from a loopback address.
	AllowInsecureAuth bool
	// ProxyProtocolFrom is the comma-separated list of the networks
	// (CIDR prefixes or single addresses) of trusted TCP load balancers,
	// whose connections begin with a PROXY protocol header naming the
	// client; empty: none.
	ProxyProtocolFrom string
	// MetricsListen is the address of the HTTP listener of the
	// Prometheus metrics (/metrics) and health checks (/healthz,
	// /readyz). Empty disables it.
	MetricsListen string

	// LMTPListen is the address of the LMTP delivery listener: host:port,
	// or unix:/path for a Unix socket created with LMTPSocketMode. Empty
	// disables it.
	LMTPListen     string
	LMTPSocketMode fs.FileMode
	// Domains is the comma-separated list of the domains whose
	// recipients LMTP accepts; empty accepts any (see DomainList).
	Domains string
	// RecipientDelimiter holds the characters that end an LMTP
	// recipient's account name and begin its mailbox ("+" delivers
	// alice+Lists to alice's Lists); empty: none.
	RecipientDelimiter string

	LogLevel  slog.Level
	LogFormat string // LogText or LogJSON

	// MaxLine is the longest command line, MaxLiteral the largest literal
	// (and so the largest message that APPEND accepts).
	MaxLine    int
	MaxLiteral int64
	// MaxConnections bounds the open connections.
	MaxConnections int
	// MaxAuthFailures closes a connection after that many failed logins.
	MaxAuthFailures int
	// MaxConnectionsPerIP bounds the open connections of one client
	// address (IPv4 address, IPv6 /64); loopback clients are exempt
	// unless LimitLoopback.
	MaxConnectionsPerIP int
	// LimitLoopback applies the per-address limits to loopback clients.
	LimitLoopback bool
	// MinRate is the average rate in bytes per second at which a
	// command's bytes must arrive (0: no minimum); MinRateWindow is the
	// grace and the longest pause it allows.
	MinRate       int64
	MinRateWindow time.Duration
	// After LoginThrottleFailures failed logins from one client address
	// (0: never), its further attempts wait LoginThrottleDelay, doubling
	// with each failure up to LoginThrottleMaxDelay; the count is
	// forgotten after LoginThrottleWindow without a failure.
	LoginThrottleFailures int
	LoginThrottleWindow   time.Duration
	LoginThrottleDelay    time.Duration
	LoginThrottleMaxDelay time.Duration

	AutoLogoutTimeout time.Duration
	PreAuthTimeout    time.Duration
	WriteTimeout      time.Duration
	LiteralTimeout    time.Duration
	FailedLoginDelay  time.Duration
	// AuthCacheTTL is how long a password verified by bcrypt is
	// remembered, as an HMAC, so that logins with it skip bcrypt (0: not
	// at all); AuthCacheMaxUsers bounds the accounts remembered.
	AuthCacheTTL      time.Duration
	AuthCacheMaxUsers int
	// MessageCacheSize bounds the bytes of the server-wide cache of
	// per-message FETCH data .
	MessageCacheSize int64
	// MemoryBudget bounds the memory all connections together spend on
	// literals being received and FETCH responses being written; 0
	// derives it from the machine's memory (an eighth of it, within
	// 64 MiB and 1 GiB; see docs/security.md). SpoolLiteral is the size
	// above which an APPEND literal is written to a temporary file in
	// SpoolDir as it arrives ("" : spool/ in the data directory).
	MemoryBudget int64
	SpoolLiteral int64
	SpoolDir     string
	// CompressLevel is the DEFLATE level of COMPRESS=DEFLATE responses
	// (RFC 4978), 1 fastest to 9 smallest; MaxCompressed caps the
	// connections compressed at once (0: COMPRESS is not offered).
	CompressLevel int
	MaxCompressed int
	// IdleKeepalive is the interval of the untagged keepalive responses
	// sent during IDLE, just under the 30 minutes after which NATs and
	// clients give up on a silent connection (RFC 2177).
	IdleKeepalive time.Duration
	// SearchTimeLimit bounds the time one SEARCH may take; past it the
	// client is answered NO [LIMIT] (0: no limit).
	SearchTimeLimit time.Duration
	// TCPKeepalive is the silence after which the kernel probes a
	// client's connection with TCP keepalives (0: never). The default,
	// an hour, is longer than IdleKeepalive and AutoLogoutTimeout, so a
	// live client is never probed: an IDLE connection hears from the
	// server every IdleKeepalive, any other is closed after
	// AutoLogoutTimeout of silence. Go's default (15 s) would wake a
	// sleeping phone's radio four times a minute during IDLE.
	TCPKeepalive time.Duration

	// TombstoneMaxAge and TombstoneMaxCount bound how long and how many
	// expunged UIDs are remembered per mailbox for QRESYNC/VANISHED; a
	// client whose last sync is older gets a full answer instead.
	TombstoneMaxAge   time.Duration
	TombstoneMaxCount int
	// DiskReserve is the size of the file the store keeps in the data
	// directory and gives back when the disk fills, so that deletes can
	// still commit (0: none).
	DiskReserve int64
	// Fsync is the embedded store's durability policy (FsyncAlways or
	// FsyncOptimized): whether flag changes and expunges wait for an
	// fsync before they are acknowledged. New mail always does.
	Fsync string

	// Resumable sessions (draft-ietf-lemonade-reconnect-07): how long an
	// inactive session stays resumable, and the caps on a user's
	// sessions, on those created from one client address, and on all.
	SessionTimeout    time.Duration
	SessionMaxPerUser int
	SessionMaxPerIP   int
	SessionMaxTotal   int
	// SessionHeartbeat is the interval of the node's heartbeat in the
	// store; the other nodes sharing it count the sessions of a node
	// silent for three intervals as inactive.
	SessionHeartbeat time.Duration
	// ReconnectPlainName also advertises the capability as RECONNECT,
	// the name the draft would have as an RFC, next to
	// X-DRAFT-W07-RECONNECT.
	ReconnectPlainName bool

	// NoInitialUser stops "quickimap serve" from creating an account in
	// a store that has none.
	NoInitialUser bool
}

// Default returns the default configuration.
func Default() Config {
	return Config{
		DataDir:           "./quickimap-data",
		Listen:            "127.0.0.1:1143",
		LMTPSocketMode:    0o660,
		LogLevel:          slog.LevelInfo,
		LogFormat:         LogText,
		MaxLine:           64 << 10,
		MaxLiteral:        64 << 20,
		MaxConnections:    20000,
		MaxAuthFailures:   3,
		AutoLogoutTimeout: 30 * time.Minute,
		PreAuthTimeout:    60 * time.Second,
		WriteTimeout:      60 * time.Second,
		LiteralTimeout:    60 * time.Second,
		FailedLoginDelay:  2 * time.Second,
		AuthCacheTTL:      time.Hour,
		AuthCacheMaxUsers: 100_000,
		MessageCacheSize:  0, // automatic
		SpoolLiteral:      1 << 20,
		CompressLevel:     5,
		MaxCompressed:     10000,
		IdleKeepalive:     29 * time.Minute,
		SearchTimeLimit:   30 * time.Second,
		TCPKeepalive:      time.Hour,
		BusPollInterval:   60 * time.Second,
		TombstoneMaxAge:   30 * 24 * time.Hour,
		TombstoneMaxCount: 100000,
		DiskReserve:       8 << 20,
		Fsync:             FsyncAlways,
		SessionTimeout:    24 * time.Hour,
		SessionMaxPerUser: 20,
		SessionMaxPerIP:   10000,
		SessionMaxTotal:   1000000,
		SessionHeartbeat:  5 * time.Second,

		// Limits on hostile clients (docs/security.md).
		MaxConnectionsPerIP:   100,
		MinRate:               256,
		MinRateWindow:         60 * time.Second,
		LoginThrottleFailures: 5,
		LoginThrottleWindow:   15 * time.Minute,
		LoginThrottleDelay:    time.Second,
		LoginThrottleMaxDelay: 30 * time.Second,
	}
}

// Validate checks the settings that depend on each other.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data: no data directory"))
	}
	if c.Listen == "" && c.TLSListen == "" {
		errs = append(errs, errors.New("no listener: set listen or tls-listen"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("cert and key must be given together"))
	}
	if c.TLSListen != "" && (c.CertFile == "" || c.KeyFile == "") {
		errs = append(errs, errors.New("tls-listen needs cert and key"))
	}
	if _, err := c.ProxyPrefixes(); err != nil {
		errs = append(errs, err)
	}
	if c.Fsync != FsyncAlways && c.Fsync != FsyncOptimized {
		errs = append(errs, fmt.Errorf("fsync: %q is neither %q nor %q", c.Fsync, FsyncAlways, FsyncOptimized))
	}
	if c.LogFormat != LogText && c.LogFormat != LogJSON {
		errs = append(errs, fmt.Errorf("log-format: %q is neither %q nor %q", c.LogFormat, LogText, LogJSON))
	}
	for _, k := range keys {
		if k.check != nil {
			if err := k.check(c); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ProxyPrefixes returns ProxyProtocolFrom as prefixes; a single address
// is a prefix of its full length.
func (c *Config) ProxyPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes(c.ProxyProtocolFrom)
}

func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("proxy-protocol-from: %q is neither an address nor a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// DomainList returns Domains as a list: lower-cased, without blanks or
// empty entries.
func (c *Config) DomainList() []string { return splitDomains(c.Domains) }

func splitDomains(s string) []string {
	var out []string
	for d := range strings.SplitSeq(s, ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// HasTLS reports whether a certificate is configured.
func (c *Config) HasTLS() bool { return c.CertFile != "" && c.KeyFile != "" }

// TLSConfig loads the certificate and key and returns a TLS configuration
// for the server (TLS 1.2 at least). It returns nil, nil when no
// certificate is configured.
func (c *Config) TLSConfig() (*tls.Config, error) {
	if c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("cert and key must be given together")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// NewLogger returns a logger that writes to w in the configured format and
// at the configured level.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == LogJSON {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// String returns c in the file format, one line per key, which Parse
// reads back into the same Config.
func (c *Config) String() string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k.Name, quoteValue(k.get(c)))
	}
	return b.String()
}

func quoteValue(v string) string {
	if v == "" || strings.ContainsAny(v, "#\"") || strings.TrimSpace(v) != v {
		return fmt.Sprintf("%q", v)
	}
	return v
}

package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/lmtp"
	"github.com/quickimap/quickimap/metrics"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/postgres"
	"github.com/quickimap/quickimap/store/sqlite"
	"github.com/quickimap/quickimap/wire"
)

// The configuration package knows no other layer; this file turns a
// config.Config into the options of each layer it configures.

// storeOptions returns the embedded store's options.
func storeOptions(c *config.Config) sqlite.Options {
	reserve := c.DiskReserve
	if reserve == 0 {
		reserve = -1 // sqlite.Options: 0 is the default, negative none
	}
	fsync := sqlite.FsyncAlways
	if c.Fsync == config.FsyncOptimized {
		fsync = sqlite.FsyncOptimized
	}
	return sqlite.Options{TombstoneMaxAge: c.TombstoneMaxAge, TombstoneMaxCount: c.TombstoneMaxCount, ReserveBytes: reserve, Fsync: fsync}
}

// postgresOptions returns the PostgreSQL store's options.
func postgresOptions(c *config.Config) postgres.Options {
	return postgres.Options{TombstoneMaxAge: c.TombstoneMaxAge, TombstoneMaxCount: c.TombstoneMaxCount}
}

// sessionOptions returns the resumable-session registry's options (its
// clock is the real one).
func sessionOptions(c *config.Config) session.Options {
	return session.Options{
		Timeout:    c.SessionTimeout,
		MaxPerUser: c.SessionMaxPerUser,
		MaxPerIP:   c.SessionMaxPerIP,
		MaxTotal:   c.SessionMaxTotal,
		Heartbeat:  c.SessionHeartbeat,
	}
}

// wireLimits returns the wire limits of the configuration.
func wireLimits(c *config.Config) wire.Limits {
	l := wire.Limits{MaxLine: c.MaxLine, MaxLiteral: c.MaxLiteral}
	// One command must be able to hold the largest literal and its line.
	if need := c.MaxLiteral + int64(c.MaxLine); need > wire.DefaultLimits.MaxCommand {
		l.MaxCommand = need
	}
	return l
}

// serverOptions validates c, loads its TLS certificate, if any, and
// returns the server options for the store st and the logger.
func serverOptions(c *config.Config, st store.Store, logger *slog.Logger) (server.Options, error) {
	if err := c.Validate(); err != nil {
		return server.Options{}, err
	}
	tc, err := c.TLSConfig()
	if err != nil {
		return server.Options{}, err
	}
	proxies, err := c.ProxyPrefixes()
	if err != nil {
		return server.Options{}, err
	}
	cacheTTL := c.AuthCacheTTL
	if cacheTTL == 0 {
		cacheTTL = -1 // server.Options: negative turns the cache off
	}
	searchLimit := c.SearchTimeLimit
	if searchLimit == 0 {
		searchLimit = -1 // server.Options: negative is no limit
	}
	minRate := c.MinRate
	if minRate == 0 {
		minRate = -1 // server.Options: negative turns it off
	}
	throttleFailures := c.LoginThrottleFailures
	if throttleFailures == 0 {
		throttleFailures = -1 // likewise
	}
	busPoll := c.BusPollInterval
	if busPoll == 0 {
		busPoll = -1 // server.Options: negative is never
	}
	maxCompressed := c.MaxCompressed
	if maxCompressed == 0 {
		maxCompressed = -1 // server.Options: negative turns COMPRESS off
	}
	return server.Options{
		SearchTimeLimit:    searchLimit,
		BusPollInterval:    busPoll,
		CompressLevel:      c.CompressLevel,
		MaxCompressed:      maxCompressed,
		AuthCacheTTL:       cacheTTL,
		AuthCacheMaxUsers:  c.AuthCacheMaxUsers,
		MessageCacheBytes:  c.MessageCacheSize,
		Store:              st,
		Logger:             logger,
		NodeID:             c.NodeID,
		TLSConfig:          tc,
		AllowInsecureAuth:  c.AllowInsecureAuth,
		ProxyProtocolFrom:  proxies,
		Limits:             wireLimits(c),
		AutoLogoutTimeout:  c.AutoLogoutTimeout,
		PreAuthTimeout:     c.PreAuthTimeout,
		WriteTimeout:       c.WriteTimeout,
		LiteralTimeout:     c.LiteralTimeout,
		FailedLoginDelay:   c.FailedLoginDelay,
		MaxConnections:     c.MaxConnections,
		MaxAuthFailures:    c.MaxAuthFailures,
		IdleKeepalive:      c.IdleKeepalive,
		ReconnectPlainName: c.ReconnectPlainName,
		MemoryBudget:       c.MemoryBudget,
		SpoolLiteral:       c.SpoolLiteral,
		SpoolDir:           spoolDir(c),

		MinRate:             minRate,
		MinRateWindow:       c.MinRateWindow,
		MaxConnectionsPerIP: c.MaxConnectionsPerIP,
		LimitLoopback:       c.LimitLoopback,

		LoginThrottleFailures: throttleFailures,
		LoginThrottleWindow:   c.LoginThrottleWindow,
		LoginThrottleDelay:    c.LoginThrottleDelay,
		LoginThrottleMaxDelay: c.LoginThrottleMaxDelay,
	}, nil
}

// newMetrics returns the metrics of a server, nil when the configuration
// has no metrics-listen address, and the store options with the store's
// transactions measured. /readyz and quickimap_sessions_stored read the
// store that st returns, once it is open (counting the stored sessions is
// one query of the store's read pool).
func newMetrics(c *config.Config, st func() store.Store) (*metrics.Metrics, sqlite.Options) {
	so := storeOptions(c)
	if c.MetricsListen == "" {
		return nil, so
	}
	version, revision := buildVersion()
	m := metrics.New(metrics.Options{
		Version:  version,
		Revision: revision,
		Ready: func(ctx context.Context) error {
			_, err := st().CountSessions(ctx)
			return err
		},
		SessionsStored: func(ctx context.Context) (int, error) { return st().CountSessions(ctx) },
	})
	so.ObserveTransaction = m.StoreTransaction
	return m, so
}

// lmtpOptions returns the LMTP server's options: it looks accounts up in
// st and delivers through d (the IMAP server, whose sessions then see the
// new messages at once). Its size limit is max-literal, the largest
// message APPEND takes.
func lmtpOptions(c *config.Config, st store.Store, d lmtp.Deliverer, logger *slog.Logger) lmtp.Options {
	return lmtp.Options{
		Store:              st,
		Deliverer:          d,
		Logger:             logger,
		Domains:            c.DomainList(),
		RecipientDelimiter: c.RecipientDelimiter,
		MaxMessageBytes:    c.MaxLiteral,
	}
}

// nodeID returns the node's name: the node-id setting, or else the host
// name and the port of addr, the first listener's bound address
// ("mail1:143"), which tells apart two nodes on one host.
func nodeID(c *config.Config, hostname string, addr net.Addr) string {
	if c.NodeID != "" {
		return c.NodeID
	}
	if hostname == "" {
		hostname = "localhost"
	}
	id := hostname
	if addr != nil {
		if _, port, err := net.SplitHostPort(addr.String()); err == nil {
			id = net.JoinHostPort(hostname, port)
		}
	}
	if config.ValidNodeID(id) != nil {
		// A host name no resolver would return: the port alone still
		// names the node on this host.
		id = "node" + strings.TrimPrefix(id, hostname)
	}
	return id
}

// spoolDir is the directory of the temporary files of large literals:
// by default in the data directory, on the store's file system rather
// than in a temporary directory that may be held in memory (tmpfs).
func spoolDir(c *config.Config) string {
	if c.SpoolDir != "" {
		return c.SpoolDir
	}
	return filepath.Join(c.DataDir, "spool")
}

package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store/sqlite"
	"github.com/quickimap/quickimap/wire"
)

// The configuration's defaults are written out in package config, which
// knows no layer; they must stay those of the layers themselves.
func TestConfigDefaultsMatchLayers(t *testing.T) {
	c := config.Default()
	if c.MaxLine != wire.DefaultLimits.MaxLine || c.MaxLiteral != wire.DefaultLimits.MaxLiteral {
		t.Errorf("max-line %d, max-literal %d; wire defaults %+v", c.MaxLine, c.MaxLiteral, wire.DefaultLimits)
	}
	if c.AuthCacheMaxUsers != auth.DefaultCacheMaxUsers {
		t.Errorf("auth-cache-max-users %d, auth default %d", c.AuthCacheMaxUsers, auth.DefaultCacheMaxUsers)
	}
	if c.SearchTimeLimit != server.DefaultSearchTimeLimit {
		t.Errorf("search-time-limit %v, server default %v", c.SearchTimeLimit, server.DefaultSearchTimeLimit)
	}
	if c.SessionMaxPerIP != session.DefaultMaxPerIP {
		t.Errorf("session-max-per-ip %d, registry default %d", c.SessionMaxPerIP, session.DefaultMaxPerIP)
	}
	if c.MaxCompressed != server.DefaultMaxCompressed {
		t.Errorf("max-compressed %d, server default %d", c.MaxCompressed, server.DefaultMaxCompressed)
	}
	if c.DiskReserve != sqlite.DefaultReserveBytes {
		t.Errorf("disk-reserve %d, store default %d", c.DiskReserve, sqlite.DefaultReserveBytes)
	}
	if c.MessageCacheSize != 0 {
		t.Errorf("message-cache-size %d, want 0 (the server's automatic default)", c.MessageCacheSize)
	}
	if c.BusPollInterval != server.DefaultBusPollInterval {
		t.Errorf("bus-poll-interval %v, server default %v", c.BusPollInterval, server.DefaultBusPollInterval)
	}
	if c.SpoolLiteral != server.DefaultSpoolLiteral {
		t.Errorf("spool-literal %d, server default %d", c.SpoolLiteral, server.DefaultSpoolLiteral)
	}
}

func TestMemoryBudgetOptions(t *testing.T) {
	c := config.Default()
	c.DataDir = "/srv/mail"
	o, err := serverOptions(&c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 0: the server derives the budget from the machine's memory.
	if o.MemoryBudget != 0 || o.SpoolLiteral != 1<<20 || o.SpoolDir != filepath.Join("/srv/mail", "spool") {
		t.Errorf("defaults: budget %d, spool literal %d, spool dir %q", o.MemoryBudget, o.SpoolLiteral, o.SpoolDir)
	}
	c.MemoryBudget, c.SpoolLiteral, c.SpoolDir = 300<<20, 8<<20, "/var/tmp/q"
	if o, err = serverOptions(&c, nil, nil); err != nil {
		t.Fatal(err)
	}
	if o.MemoryBudget != 300<<20 || o.SpoolLiteral != 8<<20 || o.SpoolDir != "/var/tmp/q" {
		t.Errorf("set: budget %d, spool literal %d, spool dir %q", o.MemoryBudget, o.SpoolLiteral, o.SpoolDir)
	}
}

func TestServerOptions(t *testing.T) {
	dir := t.TempDir()
	c := config.Default()
	c.MaxLiteral = 200 << 20
	c.AllowInsecureAuth = true
	opts, err := serverOptions(&c, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if opts.TLSConfig != nil {
		t.Error("TLS config without a certificate")
	}
	if !opts.AllowInsecureAuth || opts.MaxConnections != 20000 || opts.MaxAuthFailures != 3 ||
		opts.AutoLogoutTimeout != 30*time.Minute || opts.PreAuthTimeout != time.Minute ||
		opts.WriteTimeout != time.Minute || opts.LiteralTimeout != time.Minute ||
		opts.FailedLoginDelay != 2*time.Second || opts.IdleKeepalive != 29*time.Minute || opts.Logger != slog.Default() ||
		opts.AuthCacheTTL != time.Hour || opts.AuthCacheMaxUsers != 100000 {
		t.Errorf("options %+v", opts)
	}
	l := opts.Limits.WithDefaults()
	if l.MaxLiteral != 200<<20 || l.MaxNonSyncLiteral != 200<<20 || l.MaxLine != 64<<10 || l.MaxCommand < l.MaxLiteral+int64(l.MaxLine) {
		t.Errorf("limits %+v", l)
	}

	c.CertFile, c.KeyFile, _ = writeCert(t, dir)
	c.TLSListen = "127.0.0.1:0"
	if opts, err = serverOptions(&c, nil, nil); err != nil {
		t.Fatal(err)
	}
	if opts.TLSConfig == nil || len(opts.TLSConfig.Certificates) != 1 {
		t.Fatalf("TLS config %+v", opts.TLSConfig)
	}
	c.KeyFile = ""
	if _, err := serverOptions(&c, nil, nil); err == nil {
		t.Error("cert without key accepted")
	}

	c = config.Default()
	c.AuthCacheTTL = 0
	c.AuthCacheMaxUsers = 5000
	c.ReconnectPlainName = true
	if o, err := serverOptions(&c, nil, nil); err != nil || !o.ReconnectPlainName {
		t.Errorf("ReconnectPlainName %v, err %v", o.ReconnectPlainName, err)
	} else if o.AuthCacheTTL >= 0 || o.AuthCacheMaxUsers != 5000 {
		// server.Options takes 0 for its default and a negative TTL
		// for none.
		t.Errorf("auth-cache-ttl 0 gave AuthCacheTTL %v, max users %d", o.AuthCacheTTL, o.AuthCacheMaxUsers)
	}
}

func TestServerOptionsClientLimits(t *testing.T) {
	c := config.Default()
	o, err := serverOptions(&c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxConnectionsPerIP != 100 || o.LimitLoopback || o.MinRate != 256 || o.MinRateWindow != time.Minute {
		t.Errorf("defaults: %+v", o)
	}
	if c.MaxConnectionsPerIP != server.DefaultMaxConnectionsPerIP || c.MinRate != server.DefaultMinRate {
		t.Errorf("config defaults %d, %d; server defaults %d, %d", c.MaxConnectionsPerIP, c.MinRate,
			server.DefaultMaxConnectionsPerIP, server.DefaultMinRate)
	}
	if o.LoginThrottleFailures != 5 || o.LoginThrottleWindow != 15*time.Minute || o.LoginThrottleDelay != time.Second || o.LoginThrottleMaxDelay != 30*time.Second {
		t.Errorf("throttle defaults: %+v", o)
	}
	c.MaxConnectionsPerIP, c.LimitLoopback, c.MinRate, c.MinRateWindow = 7, true, 0, 5*time.Second
	c.LoginThrottleFailures, c.LoginThrottleWindow, c.LoginThrottleDelay, c.LoginThrottleMaxDelay = 0, time.Hour, 2*time.Second, time.Minute
	if o, err = serverOptions(&c, nil, nil); err != nil {
		t.Fatal(err)
	}
	// login-throttle-failures 0 is "never": negative in server.Options.
	if o.LoginThrottleFailures >= 0 || o.LoginThrottleWindow != time.Hour || o.LoginThrottleDelay != 2*time.Second || o.LoginThrottleMaxDelay != time.Minute {
		t.Errorf("throttle set: %+v", o)
	}
	// min-rate 0 is "no minimum", which server.Options spells negative.
	if o.MaxConnectionsPerIP != 7 || !o.LimitLoopback || o.MinRate >= 0 || o.MinRateWindow != 5*time.Second {
		t.Errorf("set: %+v", o)
	}
}

func TestCompressOptions(t *testing.T) {
	c := config.Default()
	o, err := serverOptions(&c, nil, nil)
	if err != nil || o.CompressLevel != 5 || o.MaxCompressed != 10000 {
		t.Fatalf("defaults: level %d, max %d, %v", o.CompressLevel, o.MaxCompressed, err)
	}
	c.MaxCompressed, c.CompressLevel = 0, 1
	if o, err = serverOptions(&c, nil, nil); err != nil || o.MaxCompressed >= 0 || o.CompressLevel != 1 {
		t.Fatalf("max-compressed 0: %d, %v", o.MaxCompressed, err)
	}
	c.CompressLevel = 10
	if _, err := serverOptions(&c, nil, nil); err == nil {
		t.Fatal("compress-level 10 accepted")
	}
}

// disk-reserve reaches the store; 0 is none, which the store spells
// negative.
func TestStoreReserveOption(t *testing.T) {
	c := config.Default()
	if got := storeOptions(&c).ReserveBytes; got != 8<<20 {
		t.Errorf("default ReserveBytes %d", got)
	}
	if err := c.Set("disk-reserve", "64MiB"); err != nil {
		t.Fatal(err)
	}
	if got := storeOptions(&c).ReserveBytes; got != 64<<20 {
		t.Errorf("disk-reserve 64MiB: ReserveBytes %d", got)
	}
	if err := c.Set("disk-reserve", "0"); err != nil || c.Validate() != nil {
		t.Fatalf("disk-reserve 0: %v, %v", err, c.Validate())
	}
	if got := storeOptions(&c).ReserveBytes; got >= 0 {
		t.Errorf("disk-reserve 0: ReserveBytes %d, want negative (none)", got)
	}
	c.DiskReserve = -1
	if c.Validate() == nil {
		t.Error("negative disk-reserve accepted")
	}
}

func TestSessionOptions(t *testing.T) {
	c := config.Default()
	c.SessionTimeout, c.SessionMaxPerUser, c.SessionMaxPerIP, c.SessionMaxTotal = 12*time.Hour, 5, 200, 50000
	c.SessionHeartbeat = 2 * time.Second
	so := sessionOptions(&c)
	if so.Timeout != 12*time.Hour || so.MaxPerUser != 5 || so.MaxPerIP != 200 || so.MaxTotal != 50000 || so.Heartbeat != 2*time.Second {
		t.Errorf("sessionOptions: %+v", so)
	}
}

func TestSearchTimeLimitOption(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want time.Duration
	}{
		{"", 30 * time.Second},
		{"search-time-limit = 5s\n", 5 * time.Second},
		{"search-time-limit = 0\n", -1}, // server.Options: negative is none
	} {
		c := config.Default()
		if err := c.Parse(strings.NewReader(tc.conf), "f"); err != nil {
			t.Fatal(err)
		}
		o, err := serverOptions(&c, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o.SearchTimeLimit != tc.want {
			t.Errorf("%q: SearchTimeLimit %v, want %v", tc.conf, o.SearchTimeLimit, tc.want)
		}
	}
}

func TestLMTPOptions(t *testing.T) {
	c := config.Default()
	if err := c.Set("domains", "Example.org, example.net"); err != nil {
		t.Fatal(err)
	}
	c.RecipientDelimiter = "+"
	c.MaxLiteral = 10 << 20
	lo := lmtpOptions(&c, nil, nil, slog.Default())
	if len(lo.Domains) != 2 || lo.Domains[0] != "example.org" || lo.Domains[1] != "example.net" ||
		lo.RecipientDelimiter != "+" || lo.MaxMessageBytes != 10<<20 || lo.Logger != slog.Default() {
		t.Errorf("lmtpOptions: %+v", lo)
	}
}

// fsync reaches the store; anything but always or optimized is refused.
func TestStoreFsyncOption(t *testing.T) {
	c := config.Default()
	if got := storeOptions(&c).Fsync; got != sqlite.FsyncAlways {
		t.Errorf("default Fsync %v", got)
	}
	if err := c.Set("fsync", "Optimized"); err != nil {
		t.Fatal(err)
	}
	if got := storeOptions(&c).Fsync; got != sqlite.FsyncOptimized {
		t.Errorf("fsync optimized: Fsync %v", got)
	}
	if err := c.Set("fsync", "sometimes"); err == nil {
		t.Error("fsync sometimes accepted")
	}
	c.Fsync = "never"
	if c.Validate() == nil {
		t.Error("Validate accepts fsync never")
	}
}

// proxy-protocol-from reaches the server as prefixes; a single address is
// a full-length prefix; garbage is refused.
func TestProxyProtocolOption(t *testing.T) {
	c := config.Default()
	if err := c.Set("proxy-protocol-from", "10.1.0.0/16, 192.0.2.7 ,::ffff:198.51.100.1, 2001:db8::/32"); err != nil {
		t.Fatal(err)
	}
	o, err := serverOptions(&c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.1.0.0/16", "192.0.2.7/32", "198.51.100.1/32", "2001:db8::/32"}
	if len(o.ProxyProtocolFrom) != len(want) {
		t.Fatalf("ProxyProtocolFrom %v, want %v", o.ProxyProtocolFrom, want)
	}
	for i, p := range o.ProxyProtocolFrom {
		if p.String() != want[i] {
			t.Errorf("ProxyProtocolFrom[%d] = %v, want %s", i, p, want[i])
		}
	}
	if err := c.Set("proxy-protocol-from", "10.0.0.0/8, haproxy"); err == nil {
		t.Error("proxy-protocol-from with a host name accepted")
	}
	if c.ProxyProtocolFrom != "10.1.0.0/16, 192.0.2.7/32, 198.51.100.1/32, 2001:db8::/32" {
		t.Errorf("a refused value changed the setting to %q", c.ProxyProtocolFrom)
	}
}

// bus-poll-interval reaches the server; 0 turns the safety poll off.
func TestBusPollIntervalOption(t *testing.T) {
	c := config.Default()
	o, err := serverOptions(&c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.BusPollInterval != 60*time.Second {
		t.Errorf("default: %v", o.BusPollInterval)
	}
	if err := c.Set("bus-poll-interval", "15s"); err != nil {
		t.Fatal(err)
	}
	if o, err = serverOptions(&c, nil, nil); err != nil || o.BusPollInterval != 15*time.Second {
		t.Errorf("15s: %v, %v", o.BusPollInterval, err)
	}
	if err := c.Set("bus-poll-interval", "0"); err != nil {
		t.Fatal(err)
	}
	if o, err = serverOptions(&c, nil, nil); err != nil || o.BusPollInterval >= 0 {
		t.Errorf("0: %v, %v; want negative (never)", o.BusPollInterval, err)
	}
	c.BusPollInterval = -time.Second
	if c.Validate() == nil {
		t.Error("negative bus-poll-interval accepted")
	}
}

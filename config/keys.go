package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is the type of a setting's value.
type Kind int

const (
	KindString Kind = iota
	KindBool
	KindInt
	KindSize
	KindDuration
	KindLevel
)

// Key describes one setting: its name in the file and as a flag of
// "quickimap serve", and a one-line description.
type Key struct {
	Name string
	Kind Kind
	Help string

	get   func(*Config) string
	set   func(*Config, string) error
	check func(*Config) error
}

// Keys returns the descriptions of every setting, in the order of the
// documentation.
func Keys() []Key { return append([]Key(nil), keys...) }

// Get returns the value of a setting in the file format's syntax.
func (c *Config) Get(key string) (string, error) {
	k, ok := lookup(key)
	if !ok {
		return "", fmt.Errorf("unknown key %q", key)
	}
	return k.get(c), nil
}

// Set sets one setting from its text form, as in the file or on the
// command line. Errors name the key.
func (c *Config) Set(key, value string) error {
	k, ok := lookup(key)
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	if err := k.set(c, value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func lookup(name string) (Key, bool) {
	for _, k := range keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// withCheck adds a validity check to k, run by Validate.
func withCheck(k Key, check func(*Config) error) Key {
	k.check = check
	return k
}

func stringKey(name, help string, f func(*Config) *string) Key {
	return Key{Name: name, Kind: KindString, Help: help,
		get: func(c *Config) string { return *f(c) },
		set: func(c *Config, v string) error { *f(c) = v; return nil },
	}
}

func boolKey(name, help string, f func(*Config) *bool) Key {
	return Key{Name: name, Kind: KindBool, Help: help,
		get: func(c *Config) string { return strconv.FormatBool(*f(c)) },
		set: func(c *Config, v string) error {
			b, err := ParseBool(v)
			if err != nil {
				return err
			}
			*f(c) = b
			return nil
		},
	}
}

func intKey(name, help string, f func(*Config) *int) Key {
	return Key{Name: name, Kind: KindInt, Help: help,
		get: func(c *Config) string { return strconv.Itoa(*f(c)) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			*f(c) = n
			return nil
		},
		check: func(c *Config) error { return positive(int64(*f(c))) },
	}
}

func sizeKey(name, help string, max int64, get func(*Config) int64, put func(*Config, int64)) Key {
	return Key{Name: name, Kind: KindSize, Help: help,
		get: func(c *Config) string { return FormatSize(get(c)) },
		set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			if n > max {
				return fmt.Errorf("%s is more than the maximum %s", v, FormatSize(max))
			}
			put(c, n)
			return nil
		},
		check: func(c *Config) error { return positive(get(c)) },
	}
}

// autoSizeKey is a size key for which 0 means "derived automatically".
func autoSizeKey(name, help string, max int64, get func(*Config) int64, put func(*Config, int64)) Key {
	k := sizeKey(name, help, max, get, put)
	k.check = func(c *Config) error {
		if get(c) < 0 {
			return errors.New("must not be negative (0 derives it automatically)")
		}
		return nil
	}
	return k
}

func durationKey(name, help string, f func(*Config) *time.Duration) Key {
	return Key{Name: name, Kind: KindDuration, Help: help,
		get: func(c *Config) string { return FormatDuration(*f(c)) },
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 90s, 29m or 1h30m", v)
			}
			*f(c) = d
			return nil
		},
		check: func(c *Config) error {
			if *f(c) <= 0 {
				return errors.New("must be a positive duration")
			}
			return nil
		},
	}
}

// offDurationKey is a duration key for which 0 means "off".
func offDurationKey(name, help string, f func(*Config) *time.Duration) Key {
	k := durationKey(name, help, f)
	k.check = func(c *Config) error {
		if *f(c) < 0 {
			return errors.New("must not be negative (0 turns it off)")
		}
		return nil
	}
	return k
}

// offSizeKey is a size key for which 0 means "none".
func offSizeKey(name, help string, max int64, get func(*Config) int64, put func(*Config, int64)) Key {
	k := sizeKey(name, help, max, get, put)
	k.check = func(c *Config) error {
		if get(c) < 0 {
			return errors.New("must not be negative (0 turns it off)")
		}
		return nil
	}
	return k
}

func positive(n int64) error {
	if n <= 0 {
		return errors.New("must be positive")
	}
	return nil
}

var keys = []Key{
	stringKey("data", "directory of the embedded store", func(c *Config) *string { return &c.DataDir }),
	stringKey("postgres", "PostgreSQL connection string (DSN) of a shared store used instead of the embedded one; empty: the embedded store in data", func(c *Config) *string { return &c.Postgres }),
	{Name: "node-id", Kind: KindString, Help: "name of this node among those sharing a store, in logs and session ownership; empty: host name and the first listener's port (mail1:143)",
		get: func(c *Config) string { return c.NodeID },
		set: func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if v != "" {
				if err := ValidNodeID(v); err != nil {
					return err
				}
			}
			c.NodeID = v
			return nil
		},
	},
	offDurationKey("bus-poll-interval", "with postgres: how often every mailbox a session has open is refreshed from the store whatever the other nodes' change hints said; 0: never", func(c *Config) *time.Duration { return &c.BusPollInterval }),
	stringKey("listen", "address of the plain IMAP listener (STARTTLS with cert and key); empty: none", func(c *Config) *string { return &c.Listen }),
	stringKey("tls-listen", "address of the implicit-TLS listener (needs cert and key); empty: none", func(c *Config) *string { return &c.TLSListen }),
	stringKey("cert", "PEM file of the TLS certificate chain", func(c *Config) *string { return &c.CertFile }),
	stringKey("key", "PEM file of the TLS private key", func(c *Config) *string { return &c.KeyFile }),
	boolKey("allow-insecure-auth", "allow logins without TLS from non-loopback addresses", func(c *Config) *bool { return &c.AllowInsecureAuth }),
	withCheck(stringKey("metrics-listen", "address of the HTTP listener of Prometheus metrics (/metrics) and health checks (/healthz, /readyz); unauthenticated, so keep it private; empty: none", func(c *Config) *string { return &c.MetricsListen }),
		func(c *Config) error {
			if c.MetricsListen == "" {
				return nil
			}
			_, _, err := net.SplitHostPort(c.MetricsListen)
			return err
		}),
	{Name: "lmtp-listen", Kind: KindString, Help: "address of the LMTP delivery listener: host:port, or unix:/path for a Unix socket; empty: none",
		get: func(c *Config) string { return c.LMTPListen },
		set: func(c *Config, v string) error { c.LMTPListen = strings.TrimSpace(v); return nil },
		check: func(c *Config) error {
			if c.LMTPListen == "" {
				return nil
			}
			if path, ok := strings.CutPrefix(c.LMTPListen, "unix:"); ok {
				if !filepath.IsAbs(path) {
					return fmt.Errorf("%q: a Unix socket needs an absolute path (unix:/run/quickimap/lmtp.sock)", c.LMTPListen)
				}
				return nil
			}
			if _, _, err := net.SplitHostPort(c.LMTPListen); err != nil {
				return fmt.Errorf("%q is neither host:port nor unix:/path", c.LMTPListen)
			}
			return nil
		},
	},
	{Name: "lmtp-socket-mode", Kind: KindString, Help: "permission bits (octal) of the LMTP Unix socket: who may connect may deliver mail",
		get: func(c *Config) string { return fmt.Sprintf("%04o", uint32(c.LMTPSocketMode.Perm())) },
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil || n > 0o777 {
				return fmt.Errorf("%q is not an octal mode such as 0660", v)
			}
			c.LMTPSocketMode = fs.FileMode(n)
			return nil
		},
	},
	{Name: "proxy-protocol-from", Kind: KindString, Help: "comma-separated networks (CIDR) or addresses of trusted TCP load balancers whose connections begin with a PROXY protocol header (v1 or v2) giving the client's address; empty: none",
		get: func(c *Config) string { return c.ProxyProtocolFrom },
		set: func(c *Config, v string) error {
			ps, err := parsePrefixes(v)
			if err != nil {
				return err
			}
			parts := make([]string, len(ps))
			for i, p := range ps {
				parts[i] = p.String()
			}
			c.ProxyProtocolFrom = strings.Join(parts, ", ")
			return nil
		},
	},
	{Name: "domains", Kind: KindString, Help: "comma-separated domains whose recipients LMTP accepts; empty: any",
		get: func(c *Config) string { return c.Domains },
		set: func(c *Config, v string) error {
			for d := range strings.SplitSeq(v, ",") {
				if d = strings.TrimSpace(d); strings.ContainsAny(d, " \t@<>") {
					return fmt.Errorf("%q is not a domain name", d)
				}
			}
			c.Domains = strings.Join(splitDomains(v), ", ")
			return nil
		},
	},
	{Name: "recipient-delimiter", Kind: KindString, Help: "characters that separate an LMTP recipient's account from a mailbox (+: alice+Lists delivers to alice's Lists); empty: none",
		get: func(c *Config) string { return c.RecipientDelimiter },
		set: func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if strings.ContainsAny(v, "@ \t\"<>") {
				return fmt.Errorf("%q: a delimiter cannot be @, a blank, a quote or an angle bracket", v)
			}
			c.RecipientDelimiter = v
			return nil
		},
	},
	{Name: "log-level", Kind: KindLevel, Help: "debug, info, warn or error",
		get: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
		set: func(c *Config, v string) error {
			var l slog.Level
			if err := l.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
				return fmt.Errorf("%q is not one of debug, info, warn, error", v)
			}
			c.LogLevel = l
			return nil
		},
	},
	{Name: "log-format", Kind: KindString, Help: "text or json",
		get: func(c *Config) string { return c.LogFormat },
		set: func(c *Config, v string) error {
			v = strings.ToLower(strings.TrimSpace(v))
			if v != LogText && v != LogJSON {
				return fmt.Errorf("%q is neither text nor json", v)
			}
			c.LogFormat = v
			return nil
		},
	},
	{Name: "fsync", Kind: KindString, Help: "always: every change waits for an fsync; optimized: new mail does, flag changes and expunges are synced within a second (as Dovecot's mail_fsync = optimized)",
		get: func(c *Config) string { return c.Fsync },
		set: func(c *Config, v string) error {
			v = strings.ToLower(strings.TrimSpace(v))
			if v != FsyncAlways && v != FsyncOptimized {
				return fmt.Errorf("%q is neither always nor optimized", v)
			}
			c.Fsync = v
			return nil
		},
	},
	sizeKey("max-line", "longest command line", 1<<30,
		func(c *Config) int64 { return int64(c.MaxLine) }, func(c *Config, n int64) { c.MaxLine = int(n) }),
	sizeKey("max-literal", "largest literal, and so largest message APPEND accepts", 1<<40,
		func(c *Config) int64 { return c.MaxLiteral }, func(c *Config, n int64) { c.MaxLiteral = n }),
	intKey("max-connections", "most connections open at once", func(c *Config) *int { return &c.MaxConnections }),
	intKey("max-connections-per-ip", "most connections open at once from one client address (an IPv4 address, an IPv6 /64)", func(c *Config) *int { return &c.MaxConnectionsPerIP }),
	boolKey("limit-loopback", "apply the per-address limits (max-connections-per-ip, login throttling) to loopback clients too", func(c *Config) *bool { return &c.LimitLoopback }),
	intKey("max-auth-failures", "failed logins after which a connection is closed", func(c *Config) *int { return &c.MaxAuthFailures }),
	durationKey("autologout-timeout", "silence after which an authenticated connection is closed", func(c *Config) *time.Duration { return &c.AutoLogoutTimeout }),
	durationKey("preauth-timeout", "time from connecting by which a client must have logged in, or be closed", func(c *Config) *time.Duration { return &c.PreAuthTimeout }),
	{Name: "min-rate", Kind: KindSize, Help: "average bytes per second at which a command (its lines and literals) must arrive; 0: no minimum",
		get: func(c *Config) string { return FormatSize(c.MinRate) },
		set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			c.MinRate = n
			return nil
		},
		check: func(c *Config) error {
			if c.MinRate < 0 {
				return errors.New("must not be negative (0 turns it off)")
			}
			return nil
		},
	},
	durationKey("min-rate-window", "grace of min-rate: a command may fall this far behind it, or pause this long", func(c *Config) *time.Duration { return &c.MinRateWindow }),
	{Name: "login-throttle-failures", Kind: KindInt, Help: "failed logins from one client address after which its further attempts are delayed; 0: never",
		get: func(c *Config) string { return strconv.Itoa(c.LoginThrottleFailures) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			c.LoginThrottleFailures = n
			return nil
		},
		check: func(c *Config) error {
			if c.LoginThrottleFailures < 0 {
				return errors.New("must not be negative (0 turns it off)")
			}
			return nil
		},
	},
	durationKey("login-throttle-window", "time without a failed login after which an address's failures are forgotten", func(c *Config) *time.Duration { return &c.LoginThrottleWindow }),
	durationKey("login-throttle-delay", "delay of the first throttled login attempt; it doubles with each further failure", func(c *Config) *time.Duration { return &c.LoginThrottleDelay }),
	durationKey("login-throttle-max-delay", "longest delay of a throttled login attempt", func(c *Config) *time.Duration { return &c.LoginThrottleMaxDelay }),
	durationKey("write-timeout", "limit of every write to a client", func(c *Config) *time.Duration { return &c.WriteTimeout }),
	durationKey("literal-timeout", "limit of the wait for a literal's bytes", func(c *Config) *time.Duration { return &c.LiteralTimeout }),
	durationKey("failed-login-delay", "pause before answering a failed login", func(c *Config) *time.Duration { return &c.FailedLoginDelay }),
	offDurationKey("auth-cache-ttl", "how long a password verified by bcrypt is remembered (as an HMAC) so that logins with it skip bcrypt; 0: not at all", func(c *Config) *time.Duration { return &c.AuthCacheTTL }),
	offSizeKey("disk-reserve", "space kept in the data directory and given back when the disk fills, so that deleting mail still works; 0: none", 1<<40,
		func(c *Config) int64 { return c.DiskReserve }, func(c *Config, n int64) { c.DiskReserve = n }),
	autoSizeKey("message-cache-size", "bytes of the cache of what FETCH reads of messages (date, size, structure, bodies up to 64KiB); 0: a sixteenth of the machine's memory, within 64MiB and 1GiB", 1<<40,
		func(c *Config) int64 { return c.MessageCacheSize }, func(c *Config, n int64) { c.MessageCacheSize = n }),
	autoSizeKey("memory-budget", "bytes all connections may hold at once of literals being received and FETCH responses being written; 0: an eighth of the machine's memory, within 64MiB and 1GiB", 1<<40,
		func(c *Config) int64 { return c.MemoryBudget }, func(c *Config, n int64) { c.MemoryBudget = n }),
	sizeKey("spool-literal", "size above which an APPEND literal is written to a temporary file as it arrives instead of being held in memory", 1<<40,
		func(c *Config) int64 { return c.SpoolLiteral }, func(c *Config, n int64) { c.SpoolLiteral = n }),
	stringKey("spool-dir", "directory of the temporary files of large literals; empty: spool in the data directory", func(c *Config) *string { return &c.SpoolDir }),
	{Name: "compress-level", Kind: KindInt, Help: "DEFLATE level of COMPRESS responses, 1 (fastest) to 9 (smallest)",
		get: func(c *Config) string { return strconv.Itoa(c.CompressLevel) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			c.CompressLevel = n
			return nil
		},
		check: func(c *Config) error {
			if c.CompressLevel < 1 || c.CompressLevel > 9 {
				return errors.New("must be 1 to 9")
			}
			return nil
		},
	},
	{Name: "max-compressed", Kind: KindInt, Help: "connections that may use COMPRESS=DEFLATE at once (NO [LIMIT] beyond); 0: COMPRESS is not offered",
		get: func(c *Config) string { return strconv.Itoa(c.MaxCompressed) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			c.MaxCompressed = n
			return nil
		},
		check: func(c *Config) error {
			if c.MaxCompressed < 0 {
				return errors.New("must not be negative")
			}
			return nil
		},
	},
	intKey("auth-cache-max-users", "most accounts whose verified password is remembered; the oldest goes first", func(c *Config) *int { return &c.AuthCacheMaxUsers }),
	durationKey("idle-keepalive", "interval of keepalive responses during IDLE", func(c *Config) *time.Duration { return &c.IdleKeepalive }),
	offDurationKey("search-time-limit", "longest time one SEARCH may take before it is answered NO [LIMIT]; 0: no limit", func(c *Config) *time.Duration { return &c.SearchTimeLimit }),
	offDurationKey("tcp-keepalive", "silence after which TCP keepalive probes check a client connection; 0: none (longer than idle-keepalive and autologout-timeout, a live client is never probed)", func(c *Config) *time.Duration { return &c.TCPKeepalive }),
	durationKey("tombstone-max-age", "how long expunged UIDs are remembered for QRESYNC", func(c *Config) *time.Duration { return &c.TombstoneMaxAge }),
	intKey("tombstone-max-count", "how many expunged UIDs are remembered per mailbox", func(c *Config) *int { return &c.TombstoneMaxCount }),
	durationKey("session-timeout", "how long an inactive resumable session (SID) stays resumable", func(c *Config) *time.Duration { return &c.SessionTimeout }),
	intKey("session-max-per-user", "resumable sessions per user; the oldest inactive one goes first", func(c *Config) *int { return &c.SessionMaxPerUser }),
	intKey("session-max-per-ip", "resumable sessions created from one client address", func(c *Config) *int { return &c.SessionMaxPerIP }),
	intKey("session-max-total", "resumable sessions of the whole server", func(c *Config) *int { return &c.SessionMaxTotal }),
	durationKey("session-heartbeat", "interval of the node's heartbeat; other nodes sharing the store count its sessions inactive after three missed", func(c *Config) *time.Duration { return &c.SessionHeartbeat }),
	boolKey("reconnect-plain-name", "also advertise quick reconnect as RECONNECT", func(c *Config) *bool { return &c.ReconnectPlainName }),
	boolKey("no-initial-user", "do not create an account when the store has none", func(c *Config) *bool { return &c.NoInitialUser }),
}

// MaxNodeIDLen bounds the length of a node's name in bytes: a host name
// (at most 253 bytes) and a port fit.
const MaxNodeIDLen = 260

// ValidNodeID checks a node's name: not empty, at most MaxNodeIDLen
// bytes of UTF-8, printable and without blanks, so that it stays one
// token in log lines and session records.
func ValidNodeID(id string) error {
	if id == "" {
		return errors.New("empty node name")
	}
	if len(id) > MaxNodeIDLen {
		return fmt.Errorf("node name is %d bytes, more than %d", len(id), MaxNodeIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("node name %q is not UTF-8", id)
	}
	for _, r := range id {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return fmt.Errorf("node name %q holds a blank or an unprintable character (%U)", id, r)
		}
	}
	return nil
}

// ParseBool accepts true/false, yes/no, on/off and 1/0, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true or false)", s)
}

// FormatDuration writes d in the shortest Go syntax: "29m" rather than
// "29m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

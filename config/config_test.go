package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.DataDir != "./quickimap-data" || c.Listen != "127.0.0.1:1143" {
		t.Errorf("data %q listen %q", c.DataDir, c.Listen)
	}
	if c.IdleKeepalive != 29*time.Minute {
		t.Errorf("idle keepalive %v", c.IdleKeepalive)
	}
	if c.MaxLiteral != 64<<20 || c.MaxLine != 64<<10 {
		t.Errorf("limits %d %d", c.MaxLine, c.MaxLiteral)
	}
	if c.LogLevel != slog.LevelInfo || c.LogFormat != LogText {
		t.Errorf("log %v %q", c.LogLevel, c.LogFormat)
	}
}

const example = `
# quickimap configuration
data = /var/lib/quickimap
listen = 0.0.0.0:143   # plain, STARTTLS
tls-listen = ":993"
cert = /etc/quickimap/cert.pem
key = "/etc/quickimap/key #1.pem"
allow-insecure-auth = no
lmtp-listen = unix:/run/quickimap/lmtp
lmtp-socket-mode = 0600
domains = Example.org,example.net ,
recipient-delimiter = +-
log-level = debug
log-format = JSON
max-line = 8 KiB
max-literal = 32MiB
max-connections = 500
max-auth-failures = 5
autologout-timeout = 45m
preauth-timeout = 30s
write-timeout = 1m30s
literal-timeout = 2m
failed-login-delay = 500ms
auth-cache-ttl = 0
auth-cache-max-users = 5000
idle-keepalive = 10m
tcp-keepalive = 20m
bus-poll-interval = 2m
disk-reserve = 16MiB
session-timeout = 12h
session-max-per-user = 5
session-max-per-ip = 200
session-max-total = 50000
session-heartbeat = 2s
reconnect-plain-name = yes
no-initial-user = true
`

func TestParseExample(t *testing.T) {
	c := Default()
	if err := c.Parse(strings.NewReader(example), "example.conf"); err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir:            "/var/lib/quickimap",
		Listen:             "0.0.0.0:143",
		TLSListen:          ":993",
		CertFile:           "/etc/quickimap/cert.pem",
		KeyFile:            "/etc/quickimap/key #1.pem",
		LMTPListen:         "unix:/run/quickimap/lmtp",
		LMTPSocketMode:     0o600,
		Domains:            "example.org, example.net",
		RecipientDelimiter: "+-",
		LogLevel:           slog.LevelDebug,
		LogFormat:          LogJSON,
		MaxLine:            8 << 10,
		MaxLiteral:         32 << 20,
		MaxConnections:     500,
		MaxAuthFailures:    5,
		AutoLogoutTimeout:  45 * time.Minute,
		PreAuthTimeout:     30 * time.Second,
		WriteTimeout:       90 * time.Second,
		LiteralTimeout:     2 * time.Minute,
		FailedLoginDelay:   500 * time.Millisecond,
		AuthCacheTTL:       0,
		AuthCacheMaxUsers:  5000,
		MessageCacheSize:   0,
		SpoolLiteral:       1 << 20,
		CompressLevel:      5,
		MaxCompressed:      10000,
		IdleKeepalive:      10 * time.Minute,
		SearchTimeLimit:    30 * time.Second,
		TCPKeepalive:       20 * time.Minute,
		BusPollInterval:    2 * time.Minute,
		DiskReserve:        16 << 20,
		TombstoneMaxAge:    30 * 24 * time.Hour,
		TombstoneMaxCount:  100000,
		SessionTimeout:     12 * time.Hour,
		SessionMaxPerUser:  5,
		SessionMaxPerIP:    200,
		SessionMaxTotal:    50000,
		SessionHeartbeat:   2 * time.Second,
		ReconnectPlainName: true,
		NoInitialUser:      true,

		// Not in the example: the defaults.
		Fsync:                 FsyncAlways,
		MaxConnectionsPerIP:   100,
		MinRate:               256,
		MinRateWindow:         time.Minute,
		LoginThrottleFailures: 5,
		LoginThrottleWindow:   15 * time.Minute,
		LoginThrottleDelay:    time.Second,
		LoginThrottleMaxDelay: 30 * time.Second,
	}
	if c != want {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestLMTPKeys(t *testing.T) {
	c := Default()
	if got, _ := c.Get("lmtp-socket-mode"); got != "0660" {
		t.Errorf("default lmtp-socket-mode %q", got)
	}
	if l := c.DomainList(); l != nil {
		t.Errorf("default domains %q", l)
	}
	if err := c.Set("domains", " A.example , b.example"); err != nil {
		t.Fatal(err)
	}
	if l := c.DomainList(); len(l) != 2 || l[0] != "a.example" || l[1] != "b.example" {
		t.Errorf("domains %q", l)
	}
	for _, addr := range []string{"127.0.0.1:24", "[::1]:24", "unix:/run/quickimap/lmtp.sock"} {
		d := Default()
		d.LMTPListen = addr
		if err := d.Validate(); err != nil {
			t.Errorf("lmtp-listen %s: %v", addr, err)
		}
	}
	for _, addr := range []string{"unix:", "unix:lmtp.sock", "localhost"} {
		d := Default()
		d.LMTPListen = addr
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "lmtp-listen") {
			t.Errorf("lmtp-listen %s: %v, want an error naming the key", addr, err)
		}
	}
	for _, bad := range [][2]string{
		{"lmtp-socket-mode", "0999"}, {"lmtp-socket-mode", "01777"}, {"lmtp-socket-mode", "rw"},
		{"domains", "alice@example.org"}, {"recipient-delimiter", "@"},
	} {
		if err := c.Set(bad[0], bad[1]); err == nil {
			t.Errorf("%s = %s accepted", bad[0], bad[1])
		}
	}
}

func TestParseKeepsUnsetDefaults(t *testing.T) {
	c := Default()
	if err := c.Parse(strings.NewReader("listen = 127.0.0.1:0\n"), "f"); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Listen = "127.0.0.1:0"
	if c != want {
		t.Errorf("got %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"listen = x\nbogus = 1\n", `f.conf:2: unknown key "bogus"`},
		{"# c\n\nlisten\n", "f.conf:3: expected key = value"},
		{" = 3\n", "f.conf:1: missing key"},
		{"max-line = 12 parsecs\n", `f.conf:1: max-line: "12 parsecs": unknown unit`},
		{"max-line = 2GiB\n", "f.conf:1: max-line: 2GiB is more than the maximum 1GiB"},
		{"max-literal = lots\n", `f.conf:1: max-literal: "lots" is not a size`},
		{"autologout-timeout = 30\n", `f.conf:1: autologout-timeout: "30" is not a duration`},
		{"max-connections = 1e3\n", `f.conf:1: max-connections: "1e3" is not a whole number`},
		{"allow-insecure-auth = maybe\n", `f.conf:1: allow-insecure-auth: "maybe" is not a boolean`},
		{"log-level = loud\n", `f.conf:1: log-level: "loud" is not one of`},
		{"log-format = xml\n", `f.conf:1: log-format: "xml" is neither text nor json`},
		{"listen = a\nlisten = b\n", "f.conf:2: listen is already set on line 1"},
		{`cert = "abc` + "\n", "f.conf:1: cert: unterminated"},
		{`cert = "abc" def` + "\n", `f.conf:1: cert: unexpected "def"`},
		{strings.Repeat("x", 70000) + "\n", "f.conf:1: line too long"},
	}
	for _, tt := range tests {
		c := Default()
		err := c.Parse(strings.NewReader(tt.in), "f.conf")
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%.40q) = %v, want prefix %q", tt.in, err, tt.want)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%.40q): %T is not a *ParseError", tt.in, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"tls-listen": ":993"}, "tls-listen needs cert and key"},
		{map[string]string{"cert": "c.pem"}, "cert and key must be given together"},
		{map[string]string{"listen": ""}, "no listener"},
		{map[string]string{"data": ""}, "no data directory"},
		{map[string]string{"max-connections": "0"}, "max-connections: must be positive"},
		{map[string]string{"write-timeout": "-1s"}, "write-timeout: must be a positive duration"},
		{map[string]string{"max-literal": "0"}, "max-literal: must be positive"},
		{map[string]string{"auth-cache-ttl": "-1m"}, "auth-cache-ttl: must not be negative"},
		{map[string]string{"auth-cache-max-users": "0"}, "auth-cache-max-users: must be positive"},
	}
	for _, tt := range tests {
		c := Default()
		for k, v := range tt.set {
			if err := c.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: Validate() = %v, want %q", tt.set, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "100000": 100000, "1B": 1, "64KiB": 64 << 10, "64 kib": 64 << 10,
		"64k": 64 << 10, "64MiB": 64 << 20, "64M": 64 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40,
		"1kB": 1000, "5MB": 5e6, "1GB": 1e9, " 7 MiB ": 7 << 20,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1 XB", "99999999999TiB", "99999999999999999999"} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", in, n)
		}
	}
	for _, n := range []int64{0, 1, 1000, 1024, 64 << 20, 3 << 30, 5 << 40, 1<<20 + 1} {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q, parses back as %d, %v", n, s, back, err)
		}
	}
	if s := FormatSize(64 << 20); s != "64MiB" {
		t.Errorf("FormatSize(64MiB) = %q", s)
	}
}

func TestStringRoundTrip(t *testing.T) {
	c := Default()
	if err := c.Parse(strings.NewReader(example), "example.conf"); err != nil {
		t.Fatal(err)
	}
	text := c.String()
	d := Default()
	if err := d.Parse(strings.NewReader(text), "out"); err != nil {
		t.Fatalf("%v in\n%s", err, text)
	}
	if c != d {
		t.Errorf("round trip changed the config:\n%s", text)
	}
	def := Default()
	if !strings.Contains(def.String(), "idle-keepalive = 29m\n") {
		t.Errorf("default text:\n%s", def.String())
	}
}

func TestGetSetUnknown(t *testing.T) {
	c := Default()
	if err := c.Set("nope", "1"); err == nil {
		t.Error("Set of an unknown key succeeded")
	}
	if _, err := c.Get("nope"); err == nil {
		t.Error("Get of an unknown key succeeded")
	}
	for _, k := range Keys() {
		v, err := c.Get(k.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(k.Name, v); err != nil {
			t.Errorf("Set(%s, Get(%s) = %q): %v", k.Name, k.Name, v, err)
		}
		if k.Help == "" {
			t.Errorf("%s has no help", k.Name)
		}
	}
	if c != Default() {
		t.Error("setting every key to its value changed the config")
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestNewLogger(t *testing.T) {
	var b strings.Builder
	c := Default()
	c.LogFormat = LogJSON
	c.LogLevel = slog.LevelWarn
	lg := c.NewLogger(&b)
	lg.Info("hidden")
	lg.Warn("shown", "addr", "x")
	if got := b.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown","addr":"x"`) {
		t.Errorf("log output %q", got)
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	c := Default()
	if tc, err := c.TLSConfig(); tc != nil || err != nil {
		t.Fatalf("no certificate: %v, %v", tc, err)
	}
	c.CertFile, c.KeyFile = writeCert(t, dir)
	tc, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc == nil || tc.MinVersion != tls.VersionTLS12 || len(tc.Certificates) != 1 {
		t.Fatalf("TLS config %+v", tc)
	}
	c.KeyFile = filepath.Join(dir, "missing.pem")
	if _, err := c.TLSConfig(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing key: %v", err)
	}
	c.KeyFile = ""
	if _, err := c.TLSConfig(); err == nil {
		t.Error("cert without key accepted")
	}
}

func TestSearchTimeLimitKey(t *testing.T) {
	c := Default()
	if c.SearchTimeLimit != 30*time.Second {
		t.Errorf("default search-time-limit %v", c.SearchTimeLimit)
	}
	if err := c.Parse(strings.NewReader("search-time-limit = 2m\n"), "f"); err != nil || c.SearchTimeLimit != 2*time.Minute {
		t.Errorf("search-time-limit = 2m: %v, %v", c.SearchTimeLimit, err)
	}
	if err := c.Parse(strings.NewReader("search-time-limit = 0\n"), "f"); err != nil || c.SearchTimeLimit != 0 || c.Validate() != nil {
		t.Errorf("search-time-limit = 0: %v, %v, %v", c.SearchTimeLimit, err, c.Validate())
	}
	c.SearchTimeLimit = -time.Second
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "search-time-limit") {
		t.Errorf("negative search-time-limit: %v", err)
	}
}

package main

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// tlsServer is a server with a self-signed certificate, as the README
// makes one: a plain listener that offers STARTTLS and an implicit-TLS
// one; certFile is the certificate to trust.
type tlsServer struct {
	env              *imaptest.Env
	plain, implicit  string
	certFile, pwFile string
}

func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	certFile, keyFile, _ := writeCert(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	env := imaptest.Start(t, func(o *server.Options) {
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.Server.ServeTLS(l)
	return &tlsServer{env: env, plain: env.Addr, implicit: l.Addr().String(),
		certFile: certFile, pwFile: passwordFile(t, env.Password)}
}

// bench reconnect over implicit TLS and STARTTLS, trusting the server's
// self-signed certificate with --ca-file: the SID resume is one round
// trip after the greeting, as over a plain connection, and what TLS adds
// is reported apart and in the model.
func TestBenchReconnectTLS(t *testing.T) {
	s := startTLSServer(t)
	for _, c := range []struct {
		name       string
		addr, mode string
		rt, tlsRT  int
	}{
		// TLS 1.3: the handshake costs one round trip.
		{"implicit", s.implicit, "--tls", 1, 1},
		// STARTTLS and the handshake; after it the capabilities are
		// asked again (RFC 3501 §6.2.1), a round trip of its own.
		{"starttls", s.plain, "--starttls", 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := benchJSON(t, "--addr", c.addr, "--user", s.env.User, "--password-file", s.pwFile,
				c.mode, "--ca-file", s.certFile, "--messages", "20", "--strategies", "sid")
			sid := checkBench(t, rep, "sid")["sid"]
			if sid.RoundTrips != c.rt || sid.TLSRoundTrips != c.tlsRT {
				t.Errorf("SID: %d round trips + %d TLS, want %d + %d", sid.RoundTrips, sid.TLSRoundTrips, c.rt, c.tlsRT)
			}
			wantMs := float64(sid.RoundTrips+sid.TLSRoundTrips+1)*300 + float64(sid.BytesIn+sid.BytesOut)*8/1e6*1000
			if d := sid.ModelledMs - wantMs; d > 0.01 || d < -0.01 {
				t.Errorf("SID modelled %v ms, want %v", sid.ModelledMs, wantMs)
			}
		})
	}
	// The table shows TLS's round trips apart.
	r := quickimap(t, "", "bench", "reconnect", "--addr", s.implicit, "--user", s.env.User, "--password-file", s.pwFile,
		"--tls", "--ca-file", s.certFile, "--messages", "20", "--strategies", "sid")
	r.want(t, exitOK, "1 + 1 TLS", "")

	// Without --ca-file the self-signed certificate is refused.
	r = quickimap(t, "", "bench", "reconnect", "--addr", s.implicit, "--user", s.env.User, "--password-file", s.pwFile,
		"--tls", "--messages", "20", "--strategies", "sid")
	if r.code == exitOK || !strings.Contains(r.stdout+r.stderr, "certificate") {
		t.Errorf("untrusted certificate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestSyncTLS(t *testing.T) {
	s := startTLSServer(t)
	for _, c := range []struct{ name, addr, mode, tls string }{
		{"implicit", s.implicit, "--tls", "(+1 for TLS)"},
		{"starttls", s.plain, "--starttls", "(+2 for TLS)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "Maildir")
			quickimap(t, "", "sync", "--addr", c.addr, "--user", s.env.User, "--password-file", s.pwFile,
				c.mode, "--ca-file", s.certFile, "--mailbox", "Archive", "--maildir", dir).
				want(t, exitOK, c.tls, "")
		})
	}
}

func TestTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, _, _ := writeCert(t, dir)
	common := []string{"--addr", "127.0.0.1:1", "--user", "u", "--maildir", filepath.Join(dir, "m")}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--tls", "--starttls"}, "exclude each other"},
		{[]string{"--ca-file", certFile}, "--ca-file needs --tls or --starttls"},
		{[]string{"--tls", "--ca-file", filepath.Join(dir, "none.pem")}, "no such file"},
		{[]string{"--starttls", "--ca-file", filepath.Join(dir, "m")}, "--ca-file"},
	} {
		quickimap(t, "", append(append([]string{"sync"}, common...), c.args...)...).want(t, exitUsage, "", c.err)
		quickimap(t, "", append([]string{"bench", "reconnect", "--addr", "127.0.0.1:1", "--user", "u"}, c.args...)...).
			want(t, exitUsage, "", c.err)
	}
	quickimap(t, "", "bench", "load", "--addr", "127.0.0.1:1", "--ca-file", certFile).
		want(t, exitUsage, "", "--ca-file needs --tls or --starttls")
}

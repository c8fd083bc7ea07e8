package client

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// A SID resume costs one round trip after the greeting over implicit TLS
// and STARTTLS as over a plain connection; what TLS adds to opening the
// connection is reported apart (TLSRoundTrips), for both TLS 1.3 and 1.2.
func TestRoundTripsOverTLS(t *testing.T) {
	for _, v := range []struct {
		name string
		max  uint16
		// hs: the round trips of the handshake after STARTTLS. Over
		// implicit TLS 1.2 the second is the wait for the greeting,
		// which the server sends after its Finished.
		hs int
	}{{"TLS1.3", tls.VersionTLS13, 1}, {"TLS1.2", tls.VersionTLS12, 2}} {
		t.Run(v.name, func(t *testing.T) {
			srvTLS, cliTLS := imaptest.TLSConfigs(t)
			srvTLS.MaxVersion = v.max
			env := imaptest.Start(t, func(o *server.Options) { o.TLSConfig = srvTLS })
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go env.Server.ServeTLS(l)

			for _, mode := range []struct {
				name     string
				addr     string
				startTLS bool
				tlsRT    int // TLS's round trips in opening
				rt       int // after the greeting
			}{
				// Implicit TLS: the handshake's round trip.
				{"implicit", l.Addr().String(), false, 1, 1},
				// STARTTLS and the handshake; then CAPABILITY again
				// (RFC 3501 §6.2.1) before the pipelined login and SID.
				{"starttls", env.Addr, true, 1 + v.hs, 2},
			} {
				t.Run(mode.name, func(t *testing.T) {
					e := newTestEnv(t, env.Addr, env.User, env.Password)
					e.raw.appendN(3)
					mod := func(o *Options) {
						o.Addr, o.TLSConfig, o.StartTLS = mode.addr, cliTLS, mode.startTLS
						o.Mailbox = "INBOX"
					}
					c := e.client(t, mod)
					first := mustSync(t, c)
					if !first.Dialed || first.TLSRoundTrips != mode.tlsRT {
						t.Errorf("first sync: dialed %v, TLS round trips %d, want %d", first.Dialed, first.TLSRoundTrips, mode.tlsRT)
					}
					c.Drop()
					e.mutate(t)
					res := mustSync(t, c)
					if res.Strategy != StrategySID {
						t.Fatalf("strategy %v %v, want SID", res.Strategy, res.Fallbacks)
					}
					if res.RoundTrips != mode.rt || res.TLSRoundTrips != mode.tlsRT {
						t.Errorf("resume: %d round trips + %d for TLS, want %d + %d", res.RoundTrips, res.TLSRoundTrips, mode.rt, mode.tlsRT)
					}
					checkState(t, c, e.raw)
					// On the open connection: a NOOP, no TLS.
					res = mustSync(t, c)
					if res.Dialed || res.TLSRoundTrips != 0 || res.RoundTrips != 1 {
						t.Errorf("sync on the open connection: dialed %v, %d + %d round trips", res.Dialed, res.RoundTrips, res.TLSRoundTrips)
					}
					c.Close(t.Context())
				})
			}
		})
	}
}

// STARTTLS against a server that does not offer it fails, and the client
// does not log in in clear text.
func TestStartTLSNotOffered(t *testing.T) {
	e := startEnv(t)
	_, cliTLS := imaptest.TLSConfigs(t)
	c := e.client(t, func(o *Options) { o.TLSConfig, o.StartTLS = cliTLS, true })
	if _, err := c.Sync(t.Context()); err == nil {
		t.Fatal("sync without STARTTLS offered succeeded")
	}
}

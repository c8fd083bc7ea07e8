package server_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// A client that is not on loopback (simulated with DistrustLoopback) must
// not send a password in clear: LOGINDISABLED until STARTTLS.
func TestLoginDisabledAndStartTLS(t *testing.T) {
	srvTLS, cliTLS := imaptest.TLSConfigs(t)
	env := imaptest.Start(t, func(o *server.Options) {
		o.TLSConfig = srvTLS
		o.DistrustLoopback = true
	})
	c := env.Dial(t)
	const plainCaps = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE STARTTLS LOGINDISABLED"
	if want := "* OK [CAPABILITY " + plainCaps + "] ready"; c.Greeting != want {
		t.Fatalf("greeting %q", c.Greeting)
	}
	c.Expect("a1", "LOGIN alice secret", "a1 NO [PRIVACYREQUIRED] Plaintext LOGIN is disabled here; use STARTTLS or TLS")
	c.Expect("a2", "AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "a2 NO [PRIVACYREQUIRED] Plaintext authentication is disabled here; use STARTTLS or TLS")
	// Bytes pipelined after STARTTLS in clear text are dropped, not run
	// inside the TLS session (command injection).
	c.Send("a3 STARTTLS\r\na4 LOGIN alice secret\r\n")
	if l := c.ReadLine(); l != "a3 OK Begin TLS negotiation now" {
		t.Fatalf("got %q", l)
	}
	c.StartTLSUpgrade(cliTLS)
	c.Expect("a5", "CAPABILITY", "* CAPABILITY "+preAuthCaps, "a5 OK CAPABILITY completed")
	c.Expect("a6", "STARTTLS", "a6 BAD TLS is already active")
	c.ExpectTagged("a7", "LOGIN alice secret", "a7 OK [CAPABILITY")
}

func TestStartTLSUnavailable(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	c.Expect("a1", "STARTTLS", "a1 BAD STARTTLS is not available: no certificate configured")
}

func TestImplicitTLS(t *testing.T) {
	srvTLS, cliTLS := imaptest.TLSConfigs(t)
	env := imaptest.Start(t, func(o *server.Options) { o.TLSConfig = srvTLS; o.DistrustLoopback = true })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.Server.ServeTLS(l)
	nc, err := tls.Dial("tcp", l.Addr().String(), cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	greet, _ := r.ReadString('\n')
	if !strings.Contains(greet, "AUTH=PLAIN") || strings.Contains(greet, "STARTTLS") || strings.Contains(greet, "LOGINDISABLED") {
		t.Fatalf("TLS greeting %q", greet)
	}
	nc.Write([]byte("a1 LOGIN alice secret\r\n"))
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "a1 OK [CAPABILITY") {
		t.Fatalf("login over TLS: %q", l)
	}
}

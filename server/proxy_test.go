package server_test

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/quickimap/quickimap/server"
)

// proxyV1 is a version 1 header for a TCP4 client.
func proxyV1(src string, srcPort int) string {
	return "PROXY TCP4 " + src + " 127.0.0.1 " + strconv.Itoa(srcPort) + " 143\r\n"
}

// proxyV2 is a version 2 header made by the library HAProxy's side would
// use; local: the LOCAL command of a health check.
func proxyV2(t *testing.T, src string, local bool) []byte {
	t.Helper()
	h := &proxyproto.Header{
		Version:           2,
		Command:           proxyproto.PROXY,
		TransportProtocol: proxyproto.TCPv4,
		SourceAddr:        &net.TCPAddr{IP: net.ParseIP(src), Port: 40000},
		DestinationAddr:   &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 143},
	}
	if local {
		h.Command = proxyproto.LOCAL
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxyClient is a raw connection that began with a PROXY header.
type proxyClient struct {
	nc net.Conn
	r  *bufio.Reader
}

func dialProxied(t *testing.T, addr string, header []byte) *proxyClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if header != nil {
		if _, err := nc.Write(header); err != nil {
			t.Fatal(err)
		}
	}
	return &proxyClient{nc: nc, r: bufio.NewReader(nc)}
}

func (c *proxyClient) line() (string, error) {
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// cmd sends a command with tag "a" and returns its tagged response.
func (c *proxyClient) cmd(t *testing.T, command string) string {
	t.Helper()
	if _, err := c.nc.Write([]byte("a " + command + "\r\n")); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := c.line()
		if err != nil {
			t.Fatalf("%s: %v", command, err)
		}
		if strings.HasPrefix(l, "a ") {
			return l
		}
	}
}

func startProxied(t *testing.T, mod func(*server.Options)) (addr string, logs interface{ String() string }) {
	env, buf := startWithLog(t, func(o *server.Options) {
		o.ProxyProtocolFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		if mod != nil {
			mod(o)
		}
	})
	return env.Addr, buf
}

// Behind a balancer, the address in the PROXY header is the client's for
// every per-address rule: here the loopback trust (LOGIN on a plain
// connection) and the per-address connection cap.
func TestProxyProtocolClientAddress(t *testing.T) {
	addr, logs := startProxied(t, func(o *server.Options) {
		o.MaxConnectionsPerIP = 2
	})

	// A remote client, through the proxy: no plain-text LOGIN.
	c := dialProxied(t, addr, []byte(proxyV1("203.0.113.7", 5555)))
	if g, _ := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	if got := c.cmd(t, "LOGIN user password"); !strings.HasPrefix(got, "a NO [PRIVACYREQUIRED]") {
		t.Errorf("plain LOGIN from a remote client behind the proxy: %q, want NO [PRIVACYREQUIRED]", got)
	}
	// A client on loopback, through the proxy (v2): trusted as loopback.
	c2 := dialProxied(t, addr, proxyV2(t, "127.0.0.5", false))
	if g, _ := c2.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	if got := c2.cmd(t, "LOGIN nosuchuser password"); !strings.HasPrefix(got, "a NO [AUTHENTICATIONFAILED]") {
		t.Errorf("LOGIN from 127.0.0.5 behind the proxy: %q, want a failed password check", got)
	}

	// The cap counts 203.0.113.7, not the proxy: a second connection
	// from it is served, a third refused, another client still served.
	c3 := dialProxied(t, addr, []byte(proxyV1("203.0.113.7", 5556)))
	if g, _ := c3.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("second connection of 203.0.113.7: %q", g)
	}
	c4 := dialProxied(t, addr, []byte(proxyV1("203.0.113.7", 5557)))
	if g, _ := c4.line(); !strings.HasPrefix(g, "* BYE") {
		t.Errorf("third connection of 203.0.113.7: %q, want BYE", g)
	}
	c5 := dialProxied(t, addr, []byte(proxyV1("203.0.113.8", 5558)))
	if g, _ := c5.line(); !strings.HasPrefix(g, "* OK") {
		t.Errorf("first connection of 203.0.113.8: %q", g)
	}
	if !strings.Contains(logs.String(), "addr=203.0.113.7 limit=2") {
		t.Errorf("the refusal is not logged with the client's address:\n%s", logs)
	}
}

// The bytes after the header are the client's: a command sent in the same
// segment as the header is read as a command.
func TestProxyProtocolSameSegment(t *testing.T) {
	addr, _ := startProxied(t, nil)
	for _, h := range [][]byte{[]byte(proxyV1("198.51.100.1", 1)), proxyV2(t, "198.51.100.1", false)} {
		c := dialProxied(t, addr, append(h, "a NOOP\r\n"...))
		if g, _ := c.line(); !strings.HasPrefix(g, "* OK") {
			t.Fatalf("greeting %q", g)
		}
		if l, _ := c.line(); !strings.HasPrefix(l, "a OK") {
			t.Errorf("NOOP sent with the header: %q", l)
		}
	}
}

// A health check (LOCAL) is served as the proxy itself.
func TestProxyProtocolLocal(t *testing.T) {
	addr, _ := startProxied(t, nil)
	c := dialProxied(t, addr, proxyV2(t, "203.0.113.9", true))
	if g, _ := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	if got := c.cmd(t, "LOGOUT"); !strings.HasPrefix(got, "a OK") {
		t.Errorf("LOGOUT: %q", got)
	}
}

// A trusted proxy that sends no header, or a bad one, gets no greeting:
// the connection is closed and the reason logged.
func TestProxyProtocolMissingHeader(t *testing.T) {
	addr, logs := startProxied(t, nil)
	bad := [][]byte{
		[]byte("a LOGIN user password\r\n"),
		[]byte("PROXY TCP4 not-an-address 127.0.0.1 1 143\r\n"),
		[]byte("PROXY " + strings.Repeat("x", 200) + "\r\n"),
		func() []byte { // a version 2 header claiming 60,000 bytes
			b := proxyV2(t, "203.0.113.9", false)
			binary.BigEndian.PutUint16(b[14:16], 60000)
			return b[:16]
		}(),
	}
	for _, h := range bad {
		c := dialProxied(t, addr, h)
		if l, err := c.line(); err == nil {
			t.Errorf("after %q: the server said %q", h, l)
		}
	}
	if n := strings.Count(logs.String(), "reason=proxy-header"); n != len(bad) {
		t.Errorf("%d refusals logged, want %d:\n%s", n, len(bad), logs)
	}
}

// A client that is not a trusted proxy cannot claim an address: its
// PROXY line is an IMAP command like any other.
func TestProxyProtocolUntrusted(t *testing.T) {
	env, _ := startWithLog(t, func(o *server.Options) {
		o.ProxyProtocolFrom = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	c := dialProxied(t, env.Addr, nil)
	if g, _ := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	c.nc.Write([]byte(proxyV1("203.0.113.7", 1)))
	if l, _ := c.line(); !strings.HasPrefix(l, "PROXY BAD") {
		t.Errorf("PROXY line from an untrusted client: %q, want BAD", l)
	}
}

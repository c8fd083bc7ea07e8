package server_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// greetingFrom connects from the local address ip and returns the first
// line the server sends and whether the server then closed the connection
// (within a second) without waiting for a command.
func greetingFrom(t *testing.T, addr, ip string) (string, net.Conn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	var got []byte
	for !strings.Contains(string(got), "\r\n") {
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	return strings.TrimRight(string(got), "\r\n"), nc
}

// The per-address cap: the fourth connection from one address gets a BYE
// while another address and, once one of the three closes, the same
// address are served; loopback clients are exempt unless LimitLoopback.
func TestMaxConnectionsPerIP(t *testing.T) {
	const bye = "* BYE Too many connections from your address, try again later"
	env, logs := startWithLog(t, func(o *server.Options) {
		o.MaxConnectionsPerIP = 3
		o.LimitLoopback = true
	})
	var open []net.Conn
	for i := range 3 {
		g, nc := greetingFrom(t, env.Addr, "127.0.0.1")
		if !strings.HasPrefix(g, "* OK") {
			t.Fatalf("connection %d: %q", i, g)
		}
		open = append(open, nc)
	}
	g, nc := greetingFrom(t, env.Addr, "127.0.0.1")
	if g != bye {
		t.Errorf("fourth connection from 127.0.0.1: %q, want %q", g, bye)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("refused connection left open: %d bytes, %v", n, err)
	}
	if !strings.Contains(logs.String(), `msg="connection refused" reason=max-connections-per-ip addr=127.0.0.1 limit=3`) {
		t.Errorf("no log line for the refusal:\n%s", logs)
	}
	// Another address is not affected.
	if g, _ := greetingFrom(t, env.Addr, "127.0.0.2"); !strings.HasPrefix(g, "* OK") {
		t.Errorf("from 127.0.0.2: %q", g)
	}
	// The slot comes back when a connection ends (once the server has
	// noticed: poll).
	open[0].Close()
	if !waitFor(5*time.Second, func() bool {
		g, nc := greetingFrom(t, env.Addr, "127.0.0.1")
		nc.Close()
		return strings.HasPrefix(g, "* OK")
	}) {
		t.Error("no connection from 127.0.0.1 accepted after one of its three closed")
	}

	// Without LimitLoopback, loopback clients are exempt.
	env2 := imaptest.Start(t, func(o *server.Options) { o.MaxConnectionsPerIP = 3 })
	for i := range 6 {
		if g, _ := greetingFrom(t, env2.Addr, "127.0.0.1"); !strings.HasPrefix(g, "* OK") {
			t.Fatalf("exempt loopback connection %d: %q", i, g)
		}
	}
}

package interop

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// TestHAProxy puts Debian's HAProxy in front of the server, as
// docs/scale-out.md describes (TCP mode, send-proxy-v2, health checks
// that send a PROXY header too), and checks that the server sees the
// client's address, not the balancer's, and that the health checks are
// accepted.
func TestHAProxy(t *testing.T) {
	bin := lookTool(t, "haproxy", "haproxy")
	logs := &imaptest.SyncBuffer{}
	env := imaptest.Start(t, func(o *server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.ProxyProtocolFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	conf := fmt.Sprintf(`global
	maxconn 100
defaults
	mode tcp
	timeout connect 5s
	timeout client 30m
	timeout server 30m
frontend imap
	bind %s
	default_backend nodes
backend nodes
	balance leastconn
	server node1 %s send-proxy-v2 check check-send-proxy inter 100ms
`, front, env.Addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", cfg)
	out := &imaptest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s\nserver:\n%s", out, logs)
		}
	})

	// A client at 127.0.0.9 through the balancer, once it listens.
	var nc net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
		nc, err = d.Dial("tcp", front)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not listening on %s: %v", front, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(nc)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading through haproxy: %v (so far %q)", err, s)
		}
		return strings.TrimRight(s, "\r\n")
	}
	if g := line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting through haproxy: %q", g)
	}
	for _, c := range []string{"LOGIN " + env.User + " " + env.Password, "SELECT INBOX", "LOGOUT"} {
		fmt.Fprintf(nc, "t %s\r\n", c)
		for {
			l := line()
			if strings.HasPrefix(l, "t ") {
				if !strings.HasPrefix(l, "t OK") {
					t.Fatalf("%s through haproxy: %q", c, l)
				}
				break
			}
		}
	}
	if !strings.Contains(logs.String(), "remote=127.0.0.9:") {
		t.Errorf("the server did not see the client's address 127.0.0.9")
	}
	// Health checks send a LOCAL header: they are served as the balancer
	// itself and send no command. Wait for one.
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `msg="connection opened" remote=127.0.0.1:`) {
		if time.Now().After(deadline) {
			t.Fatal("no health check reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "remote=127.0.0.1:") && strings.Contains(l, "bytes_in=") && !strings.Contains(l, "bytes_in=0 ") {
			t.Errorf("a connection with commands was served as the balancer's own address: %s", l)
		}
	}
	if strings.Contains(logs.String(), "reason=proxy-header") {
		t.Errorf("connections from haproxy refused for their PROXY header")
	}
}

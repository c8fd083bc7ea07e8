package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/bus/pgbus"
	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/internal/pgtest"
)

// The node's name is node-id when set, else the host name and the first
// listener's bound port.
func TestNodeID(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1143}
	c := config.Default()
	for _, tc := range []struct {
		set, host string
		addr      net.Addr
		want      string
	}{
		{"", "mail1", addr, "mail1:1143"},
		{"", "mail1.example.org", &net.TCPAddr{IP: net.IPv6loopback, Port: 993}, "mail1.example.org:993"},
		{"", "", addr, "localhost:1143"},
		{"", "mail1", nil, "mail1"},
		{"", "bad host\x01", addr, "node:1143"},
		{"edge-7", "mail1", addr, "edge-7"},
	} {
		c.NodeID = tc.set
		if got := nodeID(&c, tc.host, tc.addr); got != tc.want {
			t.Errorf("nodeID(%q, %q, %v) = %q, want %q", tc.set, tc.host, tc.addr, got, tc.want)
		}
	}
	c.NodeID = "n1"
	if o, err := serverOptions(&c, nil, nil); err != nil || o.NodeID != "n1" {
		t.Errorf("serverOptions: NodeID %q, %v", o.NodeID, err)
	}
}

// serve puts the node's name on its log lines: the one given, or the
// host name with the port it listens on.
func TestServeNodeID(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--node-id", "imap-a")
	if l := s.waitListening(); l["node"] != "imap-a" {
		t.Errorf("listening line %v: node %q, want imap-a", l, l["node"])
	}
	s.stop()
	if log := s.log(); !strings.Contains(log, `msg=stopped node=imap-a`) {
		t.Errorf("the last line does not name the node:\n%s", log)
	}

	s = startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0")
	l := s.waitListening()
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(l["addr"])
	if want := nodeID(&config.Config{}, host, &net.TCPAddr{Port: atoi(t, port)}); l["node"] != want || !strings.HasSuffix(want, ":"+port) {
		t.Errorf("default node %q, want %q (host name and port %s)", l["node"], want, port)
	}
	s.stop()

	quickimap(t, "", "serve", "--data", data, "--node-id", "two words").want(t, exitUsage, "", "node-id")
	quickimap(t, "", "help", "serve").want(t, exitOK, "--node-id NAME", "")
	quickimap(t, "", "help", "serve").want(t, exitOK, "--postgres DSN", "")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}

// On PostgreSQL the bus's publishing connection, open before serve logs
// "listening", carries the node's name that the server logs.
func TestServeNodeIDBus(t *testing.T) {
	dsn := pgtest.DB(t)
	bin := buildBinary(t)
	s := startServer(t, bin, "--postgres", dsn, "--data", filepath.Join(t.TempDir(), "unused"),
		"--listen", "127.0.0.1:0", "--no-initial-user")
	l := s.waitListening()
	node := l["node"]
	if _, port, _ := net.SplitHostPort(l["addr"]); !strings.HasSuffix(node, ":"+port) {
		t.Fatalf("node %q, want the host name and port %s", node, port)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
		pgbus.ApplicationName("publish", node)).Scan(&n); err != nil || n != 1 {
		t.Errorf("bus connections named after node %q: %d, %v", node, n, err)
	}
	s.stop()
}

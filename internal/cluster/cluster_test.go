package cluster

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Two nodes on one database: an account made before the start logs in on
// both, a message appended on one is in the INBOX of the other, a killed
// node comes back on its address, and RandomAddr picks only running
// nodes.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	c := Start(t, Options{Nodes: 2, Users: []string{"alice", "bob"}})
	if c.Node(0).Addr == c.Node(1).Addr || c.Node(0).Name != "node1" || c.Node(1).Name != "node2" {
		t.Fatalf("nodes %+v %+v", c.Node(0), c.Node(1))
	}
	a := c.Env(0, "bob").DialLogin(t)
	body := "Subject: x\r\n\r\nx\r\n"
	a.ExpectTagged("a1", "APPEND INBOX {"+strconv.Itoa(len(body))+"+}\r\n"+body, "a1 OK [APPENDUID ")
	b := c.Env(1, "bob").DialLogin(t)
	if got := strings.Join(b.ExpectTagged("b1", "SELECT INBOX", "b1 OK"), "\n"); !strings.Contains(got, "* 1 EXISTS") {
		t.Errorf("SELECT on node2 after APPEND on node1: %s", got)
	}
	c.Env(1, "alice").DialLogin(t)

	pid := c.Node(0).PID()
	c.Kill(0)
	if c.Node(0).Up() || c.Node(0).PID() != 0 {
		t.Fatal("node1 still up after Kill")
	}
	for range 20 {
		if addr := c.RandomAddr(); addr != c.Node(1).Addr {
			t.Fatalf("RandomAddr chose %s with node1 down", addr)
		}
	}
	c.Restart(0)
	if p := c.Node(0).PID(); p == 0 || p == pid {
		t.Fatalf("node1 after restart: pid %d (was %d)", p, pid)
	}
	a = c.Env(0, "bob").DialLogin(t)
	if got := strings.Join(a.ExpectTagged("a2", "STATUS INBOX (MESSAGES)", "a2 OK"), "\n"); !strings.Contains(got, "(MESSAGES 1)") {
		t.Errorf("STATUS on the restarted node: %s", got)
	}
	seen := map[string]bool{}
	for range 200 {
		seen[c.RandomAddr()] = true
	}
	if len(seen) != 2 {
		t.Errorf("RandomAddr chose %v, want both nodes", seen)
	}
	c.Stop(1)
}

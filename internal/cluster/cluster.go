// Package cluster runs several quickimap nodes on one PostgreSQL store for
// tests and benchmarks: the real binary, each node a process of its own
// ("quickimap serve --postgres DSN --node-id nodeK") on a loopback port
// chosen at start and kept across restarts, so that a node can be killed
// with SIGKILL and started again where clients expect it.
//
// The database comes from internal/pgtest (a package using Start needs
// pgtest.Main in its TestMain); without PostgreSQL the test skips, or
// fails when PGTEST_REQUIRE is set.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/postgres"
)

// DefaultPassword is every account's password unless Options says
// otherwise.
const DefaultPassword = "cluster-Secret-pw"

// Options describe a cluster. The zero value is three nodes with the
// account "alice".
type Options struct {
	// Nodes is the number of quickimap processes (default 3).
	Nodes int
	// Users are the accounts created before the nodes start (default
	// "alice"), all with Password (default DefaultPassword). Their
	// password hashes are bcrypt at its lowest cost: a node checks any
	// cost the same way, and the production cost would make every login
	// of a test that reconnects hundreds of times cost tens of
	// milliseconds of bcrypt.
	Users    []string
	Password string
	// Bin is the quickimap binary; "" builds ./cmd/quickimap (Build).
	Bin string
	// DSN is the PostgreSQL database; "" takes a fresh one from pgtest.
	DSN string
	// Args are more flags for every "quickimap serve".
	Args []string
	// LMTP gives every node an LMTP listener too (Node.LMTPAddr).
	LMTP bool
	// Seed seeds the choices of RandomAddr (default: the clock).
	Seed uint64
}

// Cluster is a running set of nodes sharing one PostgreSQL database.
type Cluster struct {
	tb       testing.TB
	Bin      string
	DSN      string
	Users    []string
	Password string
	args     []string
	lmtp     bool
	nodes    []*Node

	mu  sync.Mutex // guards rng and the nodes' up state for RandomAddr
	rng *rand.Rand
}

// Node is one quickimap process of a cluster.
type Node struct {
	// Name is the node's --node-id: node1, node2...
	Name string
	// Addr is the node's IMAP address, the same after a restart.
	Addr string
	// LMTPAddr is the node's LMTP address, with Options.LMTP.
	LMTPAddr string
	data     string // the node's --data directory (unused by the store)

	mu    sync.Mutex
	proc  *proc // the current process, nil when stopped
	logs  bytes.Buffer
	dials int
}

// proc is one run of a node.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, after done
}

// Start creates the database's accounts and starts the nodes, waiting
// until each one listens. Everything stops when the test ends; when it
// failed, the tail of each node's log is printed.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if len(opts.Users) == 0 {
		opts.Users = []string{"alice"}
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.DSN == "" {
		opts.DSN = pgtest.DB(tb)
	}
	if opts.Bin == "" {
		opts.Bin = Build(tb)
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	c := &Cluster{
		tb: tb, Bin: opts.Bin, DSN: opts.DSN, Users: opts.Users, Password: opts.Password,
		args: opts.Args, lmtp: opts.LMTP, rng: rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
	}
	CreateUsers(tb, c.DSN, c.Password, c.Users...)
	root := tb.TempDir()
	for i := range opts.Nodes {
		c.nodes = append(c.nodes, &Node{
			Name: "node" + strconv.Itoa(i+1),
			data: filepath.Join(root, "node"+strconv.Itoa(i+1)),
		})
	}
	tb.Cleanup(func() {
		for _, n := range c.nodes {
			n.stopProc(syscall.SIGTERM, 10*time.Second)
		}
		for _, n := range c.nodes {
			for _, l := range strings.Split(n.Log(), "\n") {
				if strings.Contains(l, "panic in connection") {
					tb.Errorf("%s: a connection panicked: %s", n.Name, l)
				}
			}
			if tb.Failed() {
				tb.Logf("log of %s (last lines):\n%s", n.Name, tail(n.Log(), 60))
			}
		}
	})
	// The nodes start in parallel: each one's start is mostly waiting
	// for its store's pool and listener.
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startFirst(n)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("starting %s: %v\nlog:\n%s", c.nodes[i].Name, err, tail(c.nodes[i].Log(), 60))
		}
	}
	return c
}

// CreateUsers creates accounts, each with the default mailboxes and
// password pw hashed by bcrypt at its lowest cost, in the PostgreSQL
// store at dsn (creating its schema if need be).
func CreateUsers(tb testing.TB, dsn, pw string, users ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		tb.Fatalf("opening the PostgreSQL store: %v", err)
	}
	defer st.Close()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	for _, u := range users {
		if _, err := st.CreateUser(ctx, u, string(h), store.DefaultMailboxes()); err != nil {
			tb.Fatalf("creating account %s: %v", u, err)
		}
	}
}

// Fill appends n small messages (a few hundred bytes, no flags) to the
// mailbox of user in the PostgreSQL store at dsn, in batches, through the
// store rather than IMAP: a test's large mailbox in seconds.
func Fill(tb testing.TB, dsn, user, mailbox string, n int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		tb.Fatalf("opening the PostgreSQL store: %v", err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, user)
	if err != nil {
		tb.Fatalf("account %s: %v", user, err)
	}
	mb, err := st.MailboxByName(ctx, u.ID, mailbox)
	if err != nil {
		tb.Fatalf("mailbox %s of %s: %v", mailbox, user, err)
	}
	const batch = 1000
	for done := 0; done < n; {
		k := min(batch, n-done)
		msgs := make([]store.NewMessage, k)
		for i := range msgs {
			body := fmt.Sprintf("From: fill@example.org\r\nTo: %s@example.org\r\nSubject: message %d\r\nMessage-ID: <fill-%d@example.org>\r\n\r\nbody of message %d\r\n",
				user, done+i+1, done+i+1, done+i+1)
			msgs[i] = store.NewMessage{Body: []byte(body), InternalDate: time.Now()}
		}
		if _, _, err := st.AppendMessages(ctx, u.ID, mb.ID, msgs); err != nil {
			tb.Fatalf("appending messages: %v", err)
		}
		done += k
	}
}

// Build builds ./cmd/quickimap of this module into a temporary directory
// and returns the binary's path.
func Build(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		tb.Fatalf("go list -m: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "quickimap")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/quickimap")
	cmd.Dir = strings.TrimSpace(string(out))
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/quickimap: %v\n%s", err, out)
	}
	return bin
}

// startFirst gives n a free port and starts it. A port taken by someone
// else between the probe and the node's bind makes the node exit at once;
// then another port is tried.
func (c *Cluster) startFirst(n *Node) error {
	var err error
	for range 5 {
		if n.Addr, err = freeAddr(); err != nil {
			return err
		}
		if c.lmtp {
			if n.LMTPAddr, err = freeAddr(); err != nil {
				return err
			}
		}
		if err = c.start(n); err == nil {
			return nil
		}
		if !strings.Contains(n.Log(), "address already in use") {
			return err
		}
	}
	return err
}

// freeAddr returns a loopback address whose port is free now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// listeningRE finds the address of the "listening" log line (text and
// JSON log formats).
var listeningRE = regexp.MustCompile(`addr"?[=:]"?(127\.0\.0\.1:\d+)`)

// start runs the node's process and waits for its "listening" line.
func (c *Cluster) start(n *Node) error {
	args := append([]string{"serve", "--postgres", c.DSN, "--node-id", n.Name,
		"--data", n.data, "--listen", n.Addr, "--no-initial-user"}, c.args...)
	if c.lmtp {
		args = append(args, "--lmtp-listen", n.LMTPAddr)
	}
	cmd := exec.Command(c.Bin, args...)
	// A node dies with the test process even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	n.mu.Lock()
	n.proc = p
	fmt.Fprintf(&n.logs, "--- %s started, pid %d\n", n.Name, cmd.Process.Pid)
	n.mu.Unlock()
	listening := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.logs.WriteString(line + "\n")
			n.mu.Unlock()
			if strings.Contains(line, "listening") {
				if m := listeningRE.FindStringSubmatch(line); m != nil {
					select {
					case listening <- m[1]:
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		n.mu.Lock()
		fmt.Fprintf(&n.logs, "--- %s ended: %v\n", n.Name, p.err)
		n.mu.Unlock()
		close(p.done)
	}()
	// The IMAP listener's line; an LMTP listener has one too.
	timeout := time.After(60 * time.Second)
	for {
		select {
		case addr := <-listening:
			if addr == n.Addr {
				return nil
			}
		case <-p.done:
			n.mu.Lock()
			n.proc = nil
			n.mu.Unlock()
			return fmt.Errorf("quickimap serve exited before listening: %v", p.err)
		case <-timeout:
			return fmt.Errorf("no \"listening\" log line with addr=%s within 60 s", n.Addr)
		}
	}
}

// stopProc sends sig to the node's process, if it runs, and waits up to
// d for it to end (then kills it).
func (n *Node) stopProc(sig syscall.Signal, d time.Duration) (was bool, err error) {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		return false, nil
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return true, fmt.Errorf("%s still running %v after %v; killed", n.Name, d, sig)
	}
	return true, p.err
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns node i (from 0; its name is node<i+1>).
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		a[i] = n.Addr
	}
	return a
}

// Env returns an imaptest.Env for node i and account user ("" for the
// first account), for raw protocol connections.
func (c *Cluster) Env(i int, user string) *imaptest.Env {
	if user == "" {
		user = c.Users[0]
	}
	return &imaptest.Env{Addr: c.nodes[i].Addr, User: user, Password: c.Password}
}

// Kill sends SIGKILL to node i and waits until the process is gone.
func (c *Cluster) Kill(i int) {
	c.tb.Helper()
	n := c.nodes[i]
	was, err := n.stopProc(syscall.SIGKILL, 10*time.Second)
	if !was {
		c.tb.Fatalf("kill %s: not running", n.Name)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.tb.Fatalf("kill %s: ended with %v, want killed by SIGKILL", n.Name, err)
	}
}

// Stop sends SIGTERM to node i and checks that it exits cleanly.
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	n := c.nodes[i]
	was, err := n.stopProc(syscall.SIGTERM, 20*time.Second)
	if !was {
		c.tb.Fatalf("stop %s: not running", n.Name)
	}
	if err != nil {
		c.tb.Fatalf("stop %s: %v", n.Name, err)
	}
}

// Restart starts node i again, on its address, after Kill or Stop.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	n := c.nodes[i]
	if n.Up() {
		c.tb.Fatalf("restart %s: still running", n.Name)
	}
	if err := c.start(n); err != nil {
		c.tb.Fatalf("restart %s: %v\nlog:\n%s", n.Name, err, tail(n.Log(), 60))
	}
}

// Up reports whether the node's process runs.
func (n *Node) Up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

// PID is the process id of the node's current process, 0 when stopped.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.cmd.Process.Pid
}

// Log returns what the node wrote to standard error, over all its runs.
func (n *Node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

// Dials is how many connections RandomAddr sent to the node.
func (n *Node) Dials() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials
}

// RandomAddr returns the address of a node chosen at random among those
// running, and counts the choice (Node.Dials).
func (c *Cluster) RandomAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []*Node
	for _, n := range c.nodes {
		if n.Up() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return c.nodes[0].Addr // refused: every node is down
	}
	n := up[c.rng.IntN(len(up))]
	n.mu.Lock()
	n.dials++
	n.mu.Unlock()
	return n.Addr
}

// RandomDial connects to a node chosen by RandomAddr: the Dial of a
// client.Options whose every reconnection lands on any node, as behind a
// TCP load balancer without stickiness.
func (c *Cluster) RandomDial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", c.RandomAddr())
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

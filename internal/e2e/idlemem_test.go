//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/store/sqlite"
)

var (
	idleConns    = flag.Int("idle.conns", 0, "TestIdleMemory: idle connections to open (0 skips the test)")
	idleMessages = flag.Int("idle.messages", 100, "TestIdleMemory: messages in the INBOX they select")
	idleMaxKiB   = flag.Float64("idle.maxkib", 0, "TestIdleMemory: most RSS growth per connection, in KiB (default 16, 32 with -idle.tls)")
	idleTLS      = flag.Bool("idle.tls", false, "TestIdleMemory: connect with implicit TLS")
	idleCompress = flag.Bool("idle.compress", false, "TestIdleMemory: turn on COMPRESS=DEFLATE before SELECT")
	idleFill     = flag.Int("idle.fill", 0, "TestIdleMemory with -idle.compress: bytes of hard-to-compress text each client sends (in a SEARCH) before idling")
)

// TestIdleMemory measures what an idle connection costs the quickimap
// process as the operating system sees it: the binary is built and run,
// N connections each LOGIN, SELECT INBOX and IDLE, and the growth of the
// server's resident set (RSS, and PSS from /proc/PID/smaps_rollup) is
// divided by N. Run on demand:
//
//	go test ./internal/e2e -run TestIdleMemory -v -idle.conns=10000
//
// -idle.tls connects with implicit TLS instead of plain TCP;
// -idle.compress turns COMPRESS=DEFLATE on after login.
//
// The account's password hash is replaced by one of bcrypt's lowest cost
// before the server starts, so that N logins take seconds instead of
// minutes; the cost changes the CPU time of a login, not what a logged-in
// connection holds.
func TestIdleMemory(t *testing.T) {
	n := *idleConns
	if n <= 0 {
		t.Skip("set -idle.conns=N to measure N idle connections")
	}
	bin := buildBinary(t)
	raiseFileLimit(t, n)

	dir := filepath.Join(t.TempDir(), "data")
	const user, pw = "idle", "idle-Secret-pw"
	if code, stdout, stderr := run(t, bin, pw+"\n", "user", "add", "--data", dir, user); code != 0 {
		t.Fatalf("user add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	setCheapHash(t, dir, user, pw)

	args := []string{"--max-connections", strconv.Itoa(n + 100)}
	var cliTLS *tls.Config
	if *idleTLS {
		var srvTLS *tls.Config
		srvTLS, cliTLS = imaptest.TLSConfigs(t)
		cert, key := writeCert(t, srvTLS)
		args = append(args, "--listen", "", "--tls-listen", "127.0.0.1:0", "--cert", cert, "--key", key)
	}
	p := startServerArgs(t, bin, dir, args...)
	pid := p.cmd.Process.Pid
	dial := func() (*idleClient, error) {
		c, err := dialIdle(p.addr, cliTLS, user, pw)
		if err == nil && *idleCompress {
			if err = c.compress(); err != nil {
				c.nc.Close()
			}
		}
		return c, err
	}

	// Fill INBOX and run every command once, so that the code pages and
	// the store's caches they touch are resident before the baseline.
	fill, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	for i := range *idleMessages {
		body := fmt.Sprintf("From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody of message %d\r\n", i, i, i)
		if _, err := fill.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill.selectIdle(); err != nil {
		t.Fatal(err)
	}
	if err := fill.done(); err != nil {
		t.Fatal(err)
	}
	if _, err := fill.cmd("LOGOUT"); err != nil {
		t.Fatal(err)
	}
	fill.nc.Close()

	before := settledMem(t, pid)
	t.Logf("before: %s", before)

	// Open the connections, 64 at a time.
	start := time.Now()
	ncs := make([]*idleClient, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := dial()
				if err == nil {
					err = c.selectIdle()
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					if c != nil {
						c.nc.Close()
					}
					continue
				}
				ncs[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range ncs {
			c.nc.Close()
		}
	}()
	t.Logf("%d connections logged in, selected INBOX and idling after %v", n, time.Since(start).Round(time.Millisecond))

	after := settledMem(t, pid)
	t.Logf("after:  %s", after)
	rss := float64(after.rss-before.rss) / float64(n)
	pss := float64(after.pss-before.pss) / float64(n)
	transport := "plain TCP"
	if *idleTLS {
		transport = "TLS"
	}
	if *idleCompress {
		transport += ", COMPRESS=DEFLATE"
	}
	t.Logf("per idle connection (%d connections, %s, %d messages in INBOX): RSS %.1f KiB, PSS %.1f KiB, %d threads in the server",
		n, transport, *idleMessages, rss/1024, pss/1024, after.threads)

	// IDLE still works at this scale: a new message reaches idling
	// connections at once.
	w, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer w.nc.Close()
	body := "Subject: wake\r\n\r\nwake\r\n"
	if _, err := w.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("* %d EXISTS", *idleMessages+1)
	for _, i := range []int{0, n / 2, n - 1} {
		ncs[i].nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := ncs[i].r.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != want {
			t.Errorf("idling connection %d after an APPEND: %q, %v; want %q", i, line, err, want)
		}
	}

	maxKiB := *idleMaxKiB
	if maxKiB <= 0 {
		// crypto/tls keeps per connection its record buffers, the AEAD
		// states and more, and its read path needs a 4 KB stack.
		maxKiB = 16
		if *idleTLS {
			maxKiB = 32
		}
		if *idleCompress {
			// The client's window stays, compressed (wire.Inflater).
			maxKiB = 64
		}
	}
	if rss/1024 > maxKiB {
		t.Errorf("an idle connection costs %.1f KiB of RSS, above %.1f KiB", rss/1024, maxKiB)
	}
}

// startServerArgs is startServer with extra serve flags.
func startServerArgs(t *testing.T, bin, dir string, args ...string) *serverProc {
	t.Helper()
	return startServerCmd(t, exec.Command(bin, append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--no-initial-user"}, args...)...))
}

// raiseFileLimit raises the soft limit of open files to the hard limit
// (inherited by the server process) and checks that both ends of n
// connections fit.
func raiseFileLimit(t *testing.T, n int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if uint64(n)+200 > lim.Cur {
		t.Fatalf("%d connections need more open files than the limit of %d", n, lim.Cur)
	}
	t.Logf("open files limit %d", lim.Cur)
}

// setCheapHash replaces the account's password hash by one of bcrypt's
// lowest cost, in the store the server has not opened yet.
func setCheapHash(t *testing.T, dir, user, pw string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPasswordHash(ctx, u.ID, string(h)); err != nil {
		t.Fatal(err)
	}
}

// writeCert writes the certificate and key of cfg to PEM files for
// "serve --cert --key".
func writeCert(t *testing.T, cfg *tls.Config) (certFile, keyFile string) {
	t.Helper()
	c := cfg.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", c.Certificate[0]}, {keyFile, "PRIVATE KEY", key}} {
		if err := os.WriteFile(f.name, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// procMem is a process's memory as /proc shows it, in bytes.
type procMem struct {
	rss, pss, anon int64
	threads        int
}

func (m procMem) String() string {
	return fmt.Sprintf("RSS %.1f MiB, PSS %.1f MiB, anonymous %.1f MiB, %d threads",
		float64(m.rss)/(1<<20), float64(m.pss)/(1<<20), float64(m.anon)/(1<<20), m.threads)
}

func readProcMem(pid int) (procMem, error) {
	var m procMem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	for _, field := range []struct {
		name string
		v    *int64
	}{{"Rss:", &m.rss}, {"Pss:", &m.pss}, {"Anonymous:", &m.anon}} {
		*field.v, err = procField(b, field.name)
		if err != nil {
			return m, err
		}
		*field.v *= 1024 // kB
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	th, err := procField(st, "Threads:")
	m.threads = int(th)
	return m, err
}

// procField returns the number after name at the start of a line.
func procField(b []byte, name string) (int64, error) {
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok {
			f := strings.Fields(string(rest))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %q in /proc", name)
}

// settledMem reads the process's memory every half second until RSS has
// moved by less than 64 KiB across four reads (two seconds), or 60 s have
// passed, and returns the last read.
func settledMem(t *testing.T, pid int) procMem {
	t.Helper()
	var hist []procMem
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := readProcMem(pid)
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, m)
		if k := len(hist); k >= 5 {
			lo, hi := m.rss, m.rss
			for _, h := range hist[k-5:] {
				lo, hi = min(lo, h.rss), max(hi, h.rss)
			}
			if hi-lo < 64<<10 {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Logf("RSS still moving after 60 s: %v", hist[max(0, len(hist)-5):])
			return m
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// idleClient is a bare client for the measurement: one connection, its
// reader, a tag counter.
type idleClient struct {
	nc  net.Conn
	r   *bufio.Reader
	tag int
}

// dialIdle connects (with TLS when cfg is set) and logs in.
func dialIdle(addr string, cfg *tls.Config, user, pw string) (*idleClient, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	var nc net.Conn
	var err error
	if cfg != nil {
		nc, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(5 * time.Minute))
	c := &idleClient{nc: nc, r: bufio.NewReaderSize(nc, 512)}
	if g, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
		nc.Close()
		return nil, fmt.Errorf("greeting %q: %v", g, err)
	}
	if _, err := c.cmd("LOGIN " + user + " " + pw); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// cmd sends one command and reads up to its tagged response, which must
// be OK.
func (c *idleClient) cmd(cmd string) ([]string, error) {
	c.tag++
	tag := "t" + strconv.Itoa(c.tag)
	if _, err := io.WriteString(c.nc, tag+" "+cmd+"\r\n"); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return lines, fmt.Errorf("%s: %w", firstWord(cmd), err)
		}
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return lines, fmt.Errorf("%s: %q", firstWord(cmd), l)
			}
			return lines, nil
		}
	}
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// selectIdle selects INBOX and starts IDLE, returning once the server's
// continuation has come; the connection then has no deadline.
func (c *idleClient) selectIdle() error {
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		return err
	}
	c.tag++
	if _, err := fmt.Fprintf(c.nc, "t%d IDLE\r\n", c.tag); err != nil {
		return err
	}
	l, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "+ ") {
		return fmt.Errorf("IDLE: %q, %v", l, err)
	}
	if c.r.Buffered() > 0 {
		return errors.New("IDLE: data after the continuation")
	}
	return c.nc.SetDeadline(time.Time{})
}

// compress turns COMPRESS=DEFLATE on (RFC 4978): the client compresses
// each write whole with klauspost's stateless compressor, which keeps no
// state in the test process, and reads through Go's inflater.
func (c *idleClient) compress() error {
	if _, err := c.cmd("COMPRESS DEFLATE"); err != nil {
		return err
	}
	c.nc = &deflateConn{Conn: c.nc, w: kflate.NewStatelessWriter(c.nc)}
	c.r = bufio.NewReaderSize(flate.NewReader(c.r), 512)
	if *idleFill <= 0 {
		return nil
	}
	// The server keeps the last 32 KiB the client sent (a deflate
	// stream may refer back that far), compressed while idle: text that
	// compresses badly is the worst case.
	var b strings.Builder
	for i := range *idleFill {
		b.WriteByte(byte('a' + (i*7919+i/13)%26))
	}
	if _, err := c.cmd("EXAMINE INBOX"); err != nil {
		return err
	}
	_, err := c.cmd(fmt.Sprintf("SEARCH TEXT {%d+}\r\n%s", b.Len(), b.String()))
	return err
}

// deflateConn compresses each Write whole.
type deflateConn struct {
	net.Conn
	w io.Writer
}

func (d *deflateConn) Write(p []byte) (int, error) { return d.w.Write(p) }

// done ends IDLE.
func (c *idleClient) done() error {
	if _, err := io.WriteString(c.nc, "DONE\r\n"); err != nil {
		return err
	}
	want := "t" + strconv.Itoa(c.tag) + " OK"
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, "t"+strconv.Itoa(c.tag)+" ") {
			if !strings.HasPrefix(l, want) {
				return fmt.Errorf("DONE: %q", l)
			}
			return nil
		}
	}
}

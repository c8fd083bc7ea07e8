package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store/sqlite"
)

// buildBinary builds quickimap into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quickimap")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serverProc is a running "quickimap serve" process.
type serverProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout chan string // lines of standard output; closed at its end

	mu     sync.Mutex
	stderr strings.Builder // all of the log, for failure messages

	listening chan logLine  // the "listening" log lines
	exited    chan struct{} // closed when the process has exited
	waitErr   error         // the result of Wait, once exited is closed
}

// logLine is a log line of the text handler, as key=value pairs.
type logLine map[string]string

// parseLogLine parses a line of slog's text format. Values with blanks
// are quoted; those are unquoted roughly, which is enough for tests.
func parseLogLine(s string) logLine {
	l := logLine{}
	for s != "" {
		s = strings.TrimLeft(s, " ")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			v, s = rest[1:min(end, len(rest))], rest[min(end+1, len(rest)):]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		l[k] = v
	}
	return l
}

func startServer(t *testing.T, bin string, args ...string) *serverProc {
	t.Helper()
	s := &serverProc{
		t:         t,
		cmd:       exec.Command(bin, append([]string{"serve"}, args...)...),
		listening: make(chan logLine, 4),
		exited:    make(chan struct{}),
		stdout:    make(chan string, 16),
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		defer close(s.stdout)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.stdout <- sc.Text()
		}
	}()
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stderr.WriteString(line + "\n")
			s.mu.Unlock()
			if l := parseLogLine(line); l["msg"] == "listening" {
				s.listening <- l
			}
		}
	}()
	go func() {
		<-logDone // Wait closes the pipes: read them to the end first
		<-outDone
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

func (s *serverProc) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// waitListening returns the address of the next "listening" log line.
func (s *serverProc) waitListening() logLine {
	s.t.Helper()
	select {
	case l := <-s.listening:
		if l["addr"] == "" {
			s.t.Fatalf("listening line without addr: %v", l)
		}
		return l
	case <-s.exited:
		s.t.Fatalf("quickimap serve exited (%v) before listening; log:\n%s", s.waitErr, s.log())
	case <-time.After(20 * time.Second):
		s.t.Fatalf("no listening log line after 20s; log:\n%s", s.log())
	}
	return nil
}

// stop sends SIGTERM and checks that the process exits 0 within a few
// seconds.
func (s *serverProc) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			s.t.Errorf("quickimap serve after SIGTERM: %v; log:\n%s", s.waitErr, s.log())
		}
	case <-time.After(5 * time.Second):
		s.t.Errorf("quickimap serve still running 5s after SIGTERM; log:\n%s", s.log())
	}
}

// readLine reads one response line (without CRLF) within 5 seconds.
func readLine(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from server: %v (got %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// readUntilClosed reads lines until the server closes the connection and
// returns them.
func readUntilClosed(t *testing.T, c net.Conn, r *bufio.Reader) []string {
	t.Helper()
	var lines []string
	c.SetReadDeadline(time.Now().Add(8 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			lines = append(lines, strings.TrimRight(line, "\r\n"))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
			return lines
		}
		if err != nil {
			t.Errorf("waiting for the server to close the connection: %v (lines %q)", err, lines)
			return lines
		}
	}
}

func hasPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestServeBinary(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0")

	// The initial account comes first on stdout.
	var name, password string
	timeout := time.After(20 * time.Second)
read:
	for {
		select {
		case line, ok := <-s.stdout:
			if !ok {
				break read
			}
			if v, ok := strings.CutPrefix(line, "Created account: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "Password: "); ok {
				password = v
				break read
			}
		case <-timeout:
			break read
		}
	}
	if name != "user" || len(password) != 16 {
		t.Fatalf("initial account %q password %q; log:\n%s", name, password, s.log())
	}

	l := s.waitListening()
	if strings.HasSuffix(l["addr"], ":0") || l["tls"] != "false" {
		t.Fatalf("listening line %v", l)
	}
	c, err := net.Dial("tcp", l["addr"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if g := readLine(t, c, r); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	// The printed account works.
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "a1 LOGIN "+name+" "+password+"\r\n"); err != nil {
		t.Fatal(err)
	}
	for {
		line := readLine(t, c, r)
		if strings.HasPrefix(line, "a1 ") {
			if !strings.HasPrefix(line, "a1 OK") {
				t.Errorf("LOGIN with the initial account: %q", line)
			}
			break
		}
	}

	s.stop()
	if lines := readUntilClosed(t, c, r); !hasPrefix(lines, "* BYE") {
		t.Errorf("no * BYE on shutdown; got %q", lines)
	}

	// A second start finds the account and prints nothing; with
	// --cpuprofile it leaves a profile (gzipped protobuf) at shutdown.
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	s = startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--cpuprofile", prof)
	s.waitListening()
	s.stop()
	if line, ok := <-s.stdout; ok {
		t.Errorf("second start printed %q", line)
	}
	if b, err := os.ReadFile(prof); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--cpuprofile file: %d bytes, err %v; want a gzipped profile", len(b), err)
	}
}

// writeCert writes a self-signed certificate for localhost and 127.0.0.1
// and its key, and returns a pool that trusts it.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

func TestServeTLS(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir)
	s := startServer(t, bin, "--data", filepath.Join(dir, "data"), "--no-initial-user",
		"--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--cert", certFile, "--key", keyFile)

	addrs := map[string]string{} // "true"/"false" (implicit TLS) -> addr
	for range 2 {
		l := s.waitListening()
		addrs[l["tls"]] = l["addr"]
	}
	if addrs["true"] == "" || addrs["false"] == "" {
		t.Fatalf("listening lines: %v", addrs)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost"}

	// Implicit TLS.
	d := &net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addrs["true"], tlsConf)
	if err != nil {
		t.Fatalf("TLS handshake: %v; log:\n%s", err, s.log())
	}
	defer tc.Close()
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x", v)
	}
	tr := bufio.NewReader(tc)
	if g := readLine(t, tc, tr); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting over TLS %q", g)
	}

	// TLS 1.1 is refused.
	old := tlsConf.Clone()
	old.MaxVersion = tls.VersionTLS11
	if c, err := tls.DialWithDialer(d, "tcp", addrs["true"], old); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}

	// STARTTLS on the plain listener.
	c, err := net.Dial("tcp", addrs["false"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if g := readLine(t, c, r); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "a1 STARTTLS\r\n")
	for {
		line := readLine(t, c, r)
		if strings.HasPrefix(line, "a1 ") {
			if !strings.HasPrefix(line, "a1 OK") {
				t.Fatalf("STARTTLS: %q", line)
			}
			break
		}
	}
	sc := tls.Client(c, tlsConf)
	sc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := sc.Handshake(); err != nil {
		t.Fatalf("STARTTLS handshake: %v", err)
	}
	sr := bufio.NewReader(sc)
	io.WriteString(sc, "a2 NOOP\r\n")
	for {
		line := readLine(t, sc, sr)
		if strings.HasPrefix(line, "a2 ") {
			if !strings.HasPrefix(line, "a2 OK") {
				t.Errorf("NOOP after STARTTLS: %q", line)
			}
			break
		}
	}

	s.stop()
	if lines := readUntilClosed(t, tc, tr); !hasPrefix(lines, "* BYE") {
		t.Errorf("no * BYE on the TLS connection at shutdown; got %q", lines)
	}
	if line, ok := <-s.stdout; ok {
		t.Errorf("--no-initial-user printed %q", line)
	}
}

func TestParseLogLine(t *testing.T) {
	l := parseLogLine(`time=2025-01-01T00:00:00.000Z level=INFO msg=listening addr=127.0.0.1:1143 tls=false note="a b \"c\"" x=1`)
	if l["msg"] != "listening" || l["addr"] != "127.0.0.1:1143" || l["tls"] != "false" || l["x"] != "1" {
		t.Errorf("%v", l)
	}
}

// The periodic sweep in serve purges tombstones through this interface;
// the embedded store must keep implementing it, or the tombstone age
// window would silently stop applying to mailboxes nobody writes to.
var _ tombstonePurger = (*sqlite.Store)(nil)

// "quickimap user passwd" and "user del" take effect at once on a running
// server, although it remembers verified passwords (auth-cache-ttl) and
// they run in another process: the server reads the account on every
// login and its cache entries bind the stored hash.
func TestServeUserChangesWhileRunning(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--failed-login-delay", "10ms")
	var password string
	for line := range s.stdout {
		if v, ok := strings.CutPrefix(line, "Password: "); ok {
			password = v
			break
		}
	}
	addr := s.waitListening()["addr"]
	login := func(pass string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		readLine(t, c, r)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "a1 LOGIN user "+pass+"\r\n"); err != nil {
			t.Fatal(err)
		}
		for {
			if l := readLine(t, c, r); strings.HasPrefix(l, "a1 ") {
				return l[:min(len(l), 5)]
			}
		}
	}
	user := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"user"}, append(args, "--data", data, "user")...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("quickimap user %v: %v\n%s", args, err, out)
		}
	}
	// Twice: the second is answered from the cache.
	for range 2 {
		if got := login(password); got != "a1 OK" {
			t.Fatalf("LOGIN with the initial password: %q", got)
		}
	}
	user("new-password\n", "passwd")
	if got := login(password); got != "a1 NO" {
		t.Errorf("LOGIN with the old password after passwd: %q", got)
	}
	for range 2 {
		if got := login("new-password"); got != "a1 OK" {
			t.Errorf("LOGIN with the new password: %q", got)
		}
	}
	user("", "del")
	if got := login("new-password"); got != "a1 NO" {
		t.Errorf("LOGIN after del: %q", got)
	}
	s.stop()
}

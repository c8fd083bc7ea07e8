//go:build unix

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLog waits until the server's log has a line containing s.
func (s *serverProc) waitLog(sub string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.log(), sub) {
		select {
		case <-s.exited:
			s.t.Fatalf("quickimap serve exited (%v) waiting for %q; log:\n%s", s.waitErr, sub, s.log())
		case <-time.After(20 * time.Millisecond): // polling the log
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no log line with %q after 10s; log:\n%s", sub, s.log())
		}
	}
}

// peerCert returns the DER certificate the server at addr presents, and
// the connection (greeting read).
func peerCert(t *testing.T, addr string) ([]byte, *tls.Conn, *bufio.Reader) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if g := readLine(t, c, r); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return c.ConnectionState().PeerCertificates[0].Raw, c, r
}

func fileCert(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	return blk.Bytes
}

func noop(t *testing.T, c net.Conn, r *bufio.Reader, tag string) string {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, tag+" NOOP\r\n"); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	for {
		if l := readLine(t, c, r); strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

// SIGHUP reloads the certificate for new connections; connections open
// keep theirs; certificate files that do not load leave the one in use,
// with an error line; the server lives on and stops cleanly on SIGTERM.
func TestServeSIGHUPReloadsCert(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir)
	first := fileCert(t, certFile)
	s := startServer(t, bin, "--data", filepath.Join(dir, "data"), "--no-initial-user", "--listen", "",
		"--tls-listen", "127.0.0.1:0", "--cert", certFile, "--key", keyFile)
	addr := s.waitListening()["addr"]

	got, old, oldR := peerCert(t, addr)
	if !bytes.Equal(got, first) {
		t.Fatal("the server presents another certificate than its file's")
	}

	// A renewed certificate (a new key too).
	writeCert(t, dir)
	renewed := fileCert(t, certFile)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitLog("SIGHUP: TLS certificate reloaded")
	if got, _, _ := peerCert(t, addr); !bytes.Equal(got, renewed) {
		t.Error("a new connection after SIGHUP does not get the renewed certificate")
	}
	if l := noop(t, old, oldR, "n1"); !strings.HasPrefix(l, "n1 OK") {
		t.Errorf("connection opened before SIGHUP: %q", l)
	}

	// A broken file: the renewed certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog("SIGHUP: TLS certificate not reloaded")
	if !strings.Contains(s.log(), "level=ERROR msg=\"SIGHUP: TLS certificate not reloaded") {
		t.Errorf("the failed reload is not an error line; log:\n%s", s.log())
	}
	if got, _, _ := peerCert(t, addr); !bytes.Equal(got, renewed) {
		t.Error("after a failed reload, new connections do not get the previous certificate")
	}
	s.stop()
}

// A port in use stops the first start before the initial account is
// made, so its password is not printed by a process that then fails: the
// next start makes and prints it. The data directory and the database
// files are private to the owner.
func TestServeBindFailureKeepsPassword(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	s := startServer(t, bin, "--data", data, "--listen", busy.Addr().String())
	var printed []string
	for line := range s.stdout {
		printed = append(printed, line)
	}
	<-s.exited
	if s.waitErr == nil {
		t.Fatalf("serve on a port in use succeeded; log:\n%s", s.log())
	}
	if len(printed) > 0 {
		t.Errorf("a start that failed to bind printed %q", printed)
	}
	if !strings.Contains(s.log(), "address already in use") {
		t.Errorf("log does not say why:\n%s", s.log())
	}

	s = startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--tcp-keepalive", "37m")
	var password string
	for line := range s.stdout {
		if v, ok := strings.CutPrefix(line, "Password: "); ok {
			password = v
			break
		}
	}
	addr := s.waitListening()["addr"]
	if len(password) != 16 {
		t.Fatalf("second start printed no password; log:\n%s", s.log())
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readLine(t, c, r)
	io.WriteString(c, "a1 LOGIN user "+password+"\r\n")
	if l := readLine(t, c, r); !strings.HasPrefix(l, "a1 OK") {
		t.Errorf("LOGIN with the printed password: %q", l)
	}

	// tcp-keepalive reaches the server's side of the connection.
	if ss, err := exec.LookPath("ss"); err != nil {
		t.Log("no ss: the keepalive timer of the server's socket is not checked here (TestTCPKeepalive checks listen)")
	} else {
		_, port, _ := net.SplitHostPort(addr)
		// The socket shows its keepalive timer once no retransmission
		// timer is pending: poll for it.
		keep := regexp.MustCompile(`timer:\(keepalive,3[67]min`)
		var out []byte
		for deadline := time.Now().Add(5 * time.Second); ; {
			out, err = exec.Command(ss, "-tnoH", "state", "established", "( sport = :"+port+" )").CombinedOutput()
			if err == nil && keep.Match(out) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling the socket's state
		}
		if err != nil || !keep.Match(out) {
			t.Errorf("ss: %v: %s; want a keepalive timer of about 37 minutes", err, out)
		}
	}

	// File modes, with the server running (the WAL is open).
	for name, want := range map[string]os.FileMode{
		data:                                    0o700,
		filepath.Join(data, "quickimap.db"):     0o600,
		filepath.Join(data, "quickimap.db-wal"): 0o600,
		filepath.Join(data, "quickimap.db-shm"): 0o600,
	} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}

	// SIGHUP without a certificate does not end the server.
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog("nothing to reload")
	if l := noop(t, c, r, "n1"); !strings.HasPrefix(l, "n1 OK") {
		t.Errorf("NOOP after SIGHUP: %q", l)
	}
	s.stop()
}

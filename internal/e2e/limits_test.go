//go:build unix

package e2e

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// "quickimap serve" under a limit of 320 open files with the default
// max-connections of 20,000 (the setting under which new clients got no
// greeting at all): it warns and lowers the cap to fit, so that every
// client beyond it gets a BYE, none silence. Then the limits on slow
// clients, set by flags, close a trickling client before login.
func TestServeLimits(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, bin, password+"\n", "user", "add", "--data", dir, "bob"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	// dash and bash: "ulimit -n" sets both the soft and the hard limit,
	// so the server cannot raise it.
	p := startServerCmd(t, exec.Command("sh", "-c", `ulimit -n 320 && exec "$0" "$@"`,
		bin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--no-initial-user",
		"--preauth-timeout", "1s", "--min-rate", "1KiB", "--min-rate-window", "500ms"))
	m := regexp.MustCompile(`msg="max-connections lowered[^"]*" (?:node=\S+ )?max_connections=20000 effective=(\d+) open_files_limit=320`).FindStringSubmatch(p.log())
	if m == nil {
		t.Fatalf("no warning about the limit on open files:\n%s", p.log())
	}
	effective, _ := strconv.Atoi(m[1])
	// 320 is too small for the headroom of 256: half of it.
	if effective != 160 {
		t.Errorf("effective max-connections %d, want 160", effective)
	}

	var greeted, refused int
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range effective + 20 {
		nc, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := bufio.NewReader(nc).ReadString('\n')
		switch {
		case strings.HasPrefix(l, "* OK"):
			greeted++
		case strings.HasPrefix(l, "* BYE Too many connections"):
			refused++
		default:
			t.Fatalf("connection %d: %q, %v; want a greeting or a BYE", i, l, err)
		}
	}
	if greeted != effective || refused != 20 {
		t.Errorf("%d greeted, %d refused; want %d and 20", greeted, refused, effective)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil

	// preauth-timeout 1s: a client trickling NOOPs is closed after 1 s.
	// Its slot may take a moment to come back after the closes above.
	var nc net.Conn
	var r *bufio.Reader
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		r = bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if l, _ := r.ReadString('\n'); strings.HasPrefix(l, "* OK") {
			nc = c
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after the others closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer nc.Close()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := nc.Write([]byte{"a NOOP\r\n"[i%8]}); err != nil {
				return
			}
		}
	}()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var last string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		last = strings.TrimSpace(l)
	}
	if el := time.Since(start); last != "* BYE Not logged in in time; closing" || el > 2*time.Second {
		t.Errorf("trickling client: last line %q, closed after %v", last, el)
	}
	// The line is written after the BYE and read from the server's
	// stderr by another goroutine: wait for it.
	for logDeadline := time.Now().Add(5 * time.Second); !regexp.MustCompile(`msg="slow client disconnected" (?:node=\S+ )?remote=127\.0\.0\.1:`).MatchString(p.log()); {
		if time.Now().After(logDeadline) {
			t.Errorf("no log line for the slow client:\n%s", p.log())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

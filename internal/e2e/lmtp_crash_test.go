//go:build unix

package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestLMTPCrash kills the server with SIGKILL while four LMTP clients
// deliver, restarts it and checks LMTP's promise: every message answered
// 250 is in the mailbox after the restart, and none is there twice. (One
// delivered but not yet answered when the process died may be there
// too: the MTA sends it again, as RFC 2033 §4.2 allows.)
func TestLMTPCrash(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	if code, stdout, stderr := run(t, bin, password+"\n", "user", "add", "--data", dir, "bob"); code != 0 {
		t.Fatalf("quickimap user add: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lmtpAddr := l.Addr().String()
	l.Close()
	p := startServerCmd(t, exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--no-initial-user",
		"--lmtp-listen", lmtpAddr))

	var mu sync.Mutex
	acked := map[string]bool{}
	const senders = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", lmtpAddr, 5*time.Second)
			if err != nil {
				t.Errorf("sender %d: %v", i, err)
				return
			}
			defer nc.Close()
			c := smtp.NewClientLMTP(nc)
			if err := c.Hello("crash.test"); err != nil {
				t.Errorf("sender %d: LHLO: %v", i, err)
				return
			}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				subject := fmt.Sprintf("crash-%d-%d", i, n)
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.Mail("sender@example.net", nil); err != nil {
					return
				}
				if err := c.Rcpt("bob@example.org", nil); err != nil {
					return
				}
				w, err := c.Data()
				if err != nil {
					return
				}
				fmt.Fprintf(w, "Subject: %s\r\n\r\n%s\r\n", subject, strings.Repeat("body line\r\n", 50))
				if _, err := w.CloseWithLMTPResponse(); err != nil {
					return
				}
				mu.Lock()
				acked[subject] = true
				mu.Unlock()
			}
		}()
	}
	// Let the deliveries run, then SIGKILL the server among them.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("only %d deliveries in 30 s; server log:\n%s", n, p.log())
		}
	}
	p.kill(t)
	close(stop)
	waitTimeout(t, &wg, 15*time.Second, "senders did not stop after the server died")
	if ws, ok := p.err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("server ended with %v, want killed by SIGKILL", p.err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d deliveries answered 250 before the kill", len(acked))

	if code, stdout, stderr := run(t, bin, "", "check", "--data", dir); code != 0 || strings.TrimSpace(stdout) != "ok" {
		t.Errorf("quickimap check after SIGKILL: exit %d, stdout %q\nstderr: %s", code, stdout, stderr)
	}
	p2 := startServer(t, bin, dir)
	env := &imaptest.Env{Addr: p2.addr, User: "bob", Password: password}
	c := env.DialLogin(t)
	c.ExpectTagged("s", "EXAMINE INBOX", "s OK")
	lines := c.Cmd("f", "FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
	seen := map[string]int{}
	re := regexp.MustCompile(`^Subject: (crash-\d+-\d+)$`)
	for _, line := range lines {
		if m := re.FindStringSubmatch(line); m != nil {
			seen[m[1]]++
		}
	}
	for s := range acked {
		if seen[s] != 1 {
			t.Errorf("%s answered 250 before the crash, found %d times after it", s, seen[s])
		}
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", s, n)
		}
	}
	if extra := len(seen) - len(acked); extra < 0 || extra > senders {
		t.Errorf("%d messages stored, %d answered 250: at most one per sender may be stored unanswered", len(seen), len(acked))
	}
}

//go:build unix

// Package e2e tests the quickimap binary as an operator runs it: built
// with go build, started as a process, killed, restarted.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

const password = "e2e-Secret-pw"

// buildBinary builds ./cmd/quickimap from the module root into a
// temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	root := strings.TrimSpace(string(out))
	bin := filepath.Join(t.TempDir(), "quickimap")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/quickimap")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/quickimap: %v\n%s", err, out)
	}
	return bin
}

// run runs the binary to completion with stdin and returns its exit code,
// stdout and stderr.
func run(t *testing.T, bin, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("quickimap %s did not finish in 30 s", strings.Join(args, " "))
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("quickimap %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// serverProc is a running "quickimap serve".
type serverProc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs bytes.Buffer // stderr so far
	done chan struct{}
	err  error // of Wait, after done
}

func (p *serverProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// addrRE finds the address in the "listening" log line, in the text
// (addr=127.0.0.1:NNNN) and the JSON ("addr":"127.0.0.1:NNNN") formats.
var addrRE = regexp.MustCompile(`addr"?[=:]"?(127\.0\.0\.1:\d+)`)

// startServer starts "quickimap serve" on dir and waits for its
// "listening" log line.
func startServer(t *testing.T, bin, dir string) *serverProc {
	t.Helper()
	return startServerCmd(t, exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--no-initial-user"))
}

// startServerCmd starts cmd, a "quickimap serve" listening on 127.0.0.1,
// and waits for its "listening" log line.
func startServerCmd(t *testing.T, cmd *exec.Cmd) *serverProc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start quickimap serve: %v", err)
	}
	p := &serverProc{cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if strings.Contains(line, "listening") {
				if m := addrRE.FindStringSubmatch(line); m != nil {
					select {
					case addrc <- m[1]:
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		// The server recovers a connection's panic and goes on; only
		// its log tells.
		for _, l := range strings.Split(p.log(), "\n") {
			if strings.Contains(l, "panic in connection") {
				t.Errorf("a server connection panicked: %s", l)
			}
		}
	})
	select {
	case p.addr = <-addrc:
	case <-p.done:
		t.Fatalf("quickimap serve exited before listening: %v\nstderr:\n%s\nstdout:\n%s", p.err, p.log(), stdout.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no \"listening\" line with addr=127.0.0.1:PORT on stderr within 30 s; stderr:\n%s", p.log())
	}
	return p
}

// kill sends SIGKILL and waits for the process to end.
func (p *serverProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process still running 10 s after SIGKILL")
	}
}

// snapshot is what must survive a restart.
type snapshot struct {
	list, lsub, listSubscribed, status []string
}

func (s snapshot) String() string {
	var b strings.Builder
	for _, part := range []struct {
		name  string
		lines []string
	}{{"LIST", s.list}, {"LSUB", s.lsub}, {"LIST (SUBSCRIBED)", s.listSubscribed}, {"STATUS", s.status}} {
		fmt.Fprintf(&b, "%s:\n", part.name)
		for _, l := range part.lines {
			fmt.Fprintf(&b, "\t%s\n", l)
		}
	}
	return b.String()
}

// untagged returns the lines of a command's answer after checking that
// its tagged response is OK.
func untagged(t *testing.T, c *imaptest.Conn, tag, cmd string) []string {
	t.Helper()
	lines := c.Cmd(tag, cmd)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, tag+" OK") {
		t.Fatalf("%s %s: %q", tag, cmd, lines)
	}
	return lines[:len(lines)-1]
}

// takeSnapshot records LIST, LSUB, LIST (SUBSCRIBED) and the STATUS
// (UIDVALIDITY UIDNEXT MESSAGES) of every selectable mailbox.
func takeSnapshot(t *testing.T, c *imaptest.Conn) snapshot {
	t.Helper()
	var s snapshot
	s.list = untagged(t, c, "s1", `LIST "" *`)
	s.lsub = untagged(t, c, "s2", `LSUB "" *`)
	s.listSubscribed = untagged(t, c, "s3", `LIST (SUBSCRIBED) "" *`)
	for _, l := range s.list {
		_, name, ok := strings.Cut(l, `"/" `)
		if !ok {
			t.Fatalf("LIST line without the delimiter: %q", l)
		}
		if strings.Contains(l, `\Noselect`) {
			continue
		}
		st := untagged(t, c, "s4", "STATUS "+name+" (UIDVALIDITY UIDNEXT MESSAGES)")
		if len(st) != 1 || !strings.HasPrefix(st[0], "* STATUS ") || strings.Contains(st[0], "UIDVALIDITY 0 ") {
			t.Fatalf("STATUS %s: %q", name, st)
		}
		s.status = append(s.status, st[0])
	}
	return s
}

func TestRestartAfterKill(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")

	code, stdout, stderr := run(t, bin, password+"\n", "user", "add", "--data", dir, "alice")
	if code != 0 || !strings.Contains(stdout, "alice") {
		t.Fatalf("quickimap user add: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, bin, "", "user", "list", "--data", dir); code != 0 || strings.TrimSpace(stdout) != "alice" {
		t.Fatalf("quickimap user list: exit %d, stdout %q, want \"alice\"\nstderr: %s", code, stdout, stderr)
	}

	// First run: build up state.
	p := startServer(t, bin, dir)
	env := &imaptest.Env{Addr: p.addr, User: "alice", Password: password}
	c := env.DialLogin(t)
	for i, cmd := range []string{
		"CREATE Work/Clients/Acme",
		"CREATE Travel",
		`CREATE "My Folder"`,
		"CREATE Entw&APw-rfe",
		"CREATE Parent/Child",
		"CREATE Doomed",
		"SUBSCRIBE Work/Clients/Acme",
		"SUBSCRIBE Travel",
		`SUBSCRIBE "My Folder"`,
		"SUBSCRIBE Ghost",
		"UNSUBSCRIBE Junk",
		"RENAME Travel Trips",
		"RENAME Work Job",
		"DELETE Parent", // leaves a \Noselect placeholder
		"DELETE Doomed",
		"SELECT Trips",
		"UNSELECT",
	} {
		tag := fmt.Sprintf("c%d", i)
		c.ExpectTagged(tag, cmd, tag+" OK")
	}
	if t.Failed() {
		t.FailNow()
	}
	before := takeSnapshot(t, c)
	t.Logf("state before SIGKILL:\n%s", before)
	// Sanity: the state is what the commands made.
	for _, want := range []string{`"/" Job/Clients/Acme`, `"/" Trips`, `"/" "My Folder"`, `"/" Entw&APw-rfe`, `(\Noselect \HasChildren) "/" Parent`} {
		if !slices.ContainsFunc(before.list, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("LIST before the restart lacks %q:\n%s", want, before)
		}
	}
	for _, gone := range []string{`"/" Travel`, `"/" Work`, `"/" Doomed`} {
		if slices.ContainsFunc(before.list, func(l string) bool { return strings.HasSuffix(l, gone) }) {
			t.Errorf("LIST before the restart still has %q:\n%s", gone, before)
		}
	}
	if !slices.ContainsFunc(before.lsub, func(l string) bool { return strings.HasSuffix(l, `"/" Ghost`) }) ||
		slices.ContainsFunc(before.lsub, func(l string) bool { return strings.HasSuffix(l, `"/" Junk`) }) {
		t.Errorf("LSUB before the restart: want Ghost and no Junk:\n%s", before)
	}

	// SIGKILL: no shutdown, no clean close of the store.
	p.kill(t)
	if ws, ok := p.err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("first server ended with %v, want killed by SIGKILL", p.err)
	}
	if code, stdout, stderr := run(t, bin, "", "check", "--data", dir); code != 0 || strings.TrimSpace(stdout) != "ok" {
		t.Errorf("quickimap check after SIGKILL: exit %d, stdout %q, want 0 and \"ok\"\nstderr: %s", code, stdout, stderr)
	}

	// Second run on the same directory.
	p2 := startServer(t, bin, dir)
	env.Addr = p2.addr
	c = env.DialLogin(t)
	after := takeSnapshot(t, c)
	for _, cmp := range []struct {
		what     string
		got, was []string
	}{
		{`LIST "" *`, after.list, before.list},
		{`LSUB "" *`, after.lsub, before.lsub},
		{`LIST (SUBSCRIBED) "" *`, after.listSubscribed, before.listSubscribed},
		{"STATUS (UIDVALIDITY UIDNEXT MESSAGES)", after.status, before.status},
	} {
		if !slices.Equal(cmp.got, cmp.was) {
			t.Errorf("%s changed across SIGKILL and restart:\nbefore:\n\t%s\nafter:\n\t%s",
				cmp.what, strings.Join(cmp.was, "\n\t"), strings.Join(cmp.got, "\n\t"))
		}
	}
	// The store still works: a new mailbox gets a fresh UIDVALIDITY.
	c.ExpectTagged("d1", "CREATE AfterRestart", "d1 OK")
	c.ExpectTagged("d2", "STATUS AfterRestart (UIDVALIDITY)", "d2 OK")
	c.Expect("d3", "LOGOUT", "* BYE Logging out", "d3 OK LOGOUT completed")

	// A graceful stop this time: SIGTERM, exit 0.
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p2.done:
		if p2.err != nil {
			t.Errorf("quickimap serve after SIGTERM: %v, want exit 0\nstderr:\n%s", p2.err, p2.log())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("quickimap serve still running 15 s after SIGTERM\nstderr:\n%s", p2.log())
	}

	code, stdout, stderr = run(t, bin, "", "check", "--data", dir)
	if code != 0 || strings.TrimSpace(stdout) != "ok" {
		t.Errorf("quickimap check: exit %d, stdout %q, want 0 and \"ok\"\nstderr: %s", code, stdout, stderr)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("data directory: %v", err)
	}
}

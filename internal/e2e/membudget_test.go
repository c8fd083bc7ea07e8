//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// procReadBytes is what process pid has read with read(2) and the like,
// sockets included (rchar of /proc/PID/io).
func procReadBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	n, err := procField(b, "rchar:")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMemoryBudgetBinary runs the attack the memory budget is for against
// the binary: 12 clients each send a 60 MB APPEND literal but its last
// byte and stall. The server's resident set must stay under its budget
// (--memory-budget 64MiB) plus 100 MB while they wait, the temporary
// files must not be left in the spool directory (spool/ in the data
// directory by default), and the APPENDs complete once the last bytes
// come.
func TestMemoryBudgetBinary(t *testing.T) {
	bin := buildBinary(t)
	const (
		clients = 12
		size    = 60 << 20
		budget  = 64 << 20
		margin  = 100 << 20
	)
	dir := filepath.Join(t.TempDir(), "data")
	const user, pw = "mem", "mem-Secret-pw"
	if code, stdout, stderr := run(t, bin, pw+"\n", "user", "add", "--data", dir, user); code != 0 {
		t.Fatalf("user add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	setCheapHash(t, dir, user, pw)
	p := startServerArgs(t, bin, dir, "--memory-budget", "64MiB", "--literal-timeout", "5m")
	pid := p.cmd.Process.Pid
	// Every line of serve names the node (node=HOST:PORT) after msg.
	if l := p.log(); !regexp.MustCompile(`msg="memory budget" (?:node=\S+ )?bytes=67108864 spool-literal=1048576 spool-dir=` +
		regexp.QuoteMeta(filepath.Join(dir, "spool"))).MatchString(l) {
		t.Errorf("no memory budget line in the log:\n%s", l)
	}

	conns := make([]*idleClient, clients)
	for i := range conns {
		c, err := dialIdle(p.addr, nil, user, pw)
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		conns[i] = c
	}
	before := settledMem(t, pid)
	read0 := procReadBytes(t, pid)
	t.Logf("before: %s", before)

	// The peak RSS, read every 10 ms while the literals come.
	var peak int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if m, err := readProcMem(pid); err == nil {
				peak = max(peak, m.rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	header := "From: big@example.org\r\nSubject: large\r\n\r\n"
	line := []byte(strings.Repeat("0123456789", 103)[:1022] + "\r\n")
	chunk := bytes.Repeat(line, 64)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fmt.Fprintf(c.nc, "a APPEND INBOX {%d}\r\n", size); err != nil {
				errs <- err
				return
			}
			if l, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+") {
				errs <- fmt.Errorf("client %d: continuation %q, %v", i, l, err)
				return
			}
			bw := bufio.NewWriterSize(c.nc, 64<<10)
			bw.WriteString(header)
			for n := int64(size - len(header) - 1); n > 0; {
				k := min(n, int64(len(chunk)))
				bw.Write(chunk[:k])
				n -= k
			}
			if err := bw.Flush(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Wait until the server has read what the clients sent: its reads
	// (sockets included) have grown by as much.
	deadline := time.Now().Add(2 * time.Minute)
	for procReadBytes(t, pid)-read0 < clients*(size-1) {
		if time.Now().After(deadline) {
			t.Fatalf("the server read %d bytes of %d in 2 minutes", procReadBytes(t, pid)-read0, clients*(size-1))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-sampled
	growth := peak - before.rss
	t.Logf("%d stalled %d MB literals: peak RSS %.1f MiB, growth %.1f MiB (budget %d MiB)",
		clients, size>>20, float64(peak)/(1<<20), float64(growth)/(1<<20), budget>>20)
	if growth > budget+margin {
		t.Errorf("RSS grew by %.1f MiB, want under budget+100 MB = %d MiB", float64(growth)/(1<<20), (budget+margin)>>20)
	}
	spool := filepath.Join(dir, "spool")
	if es, err := os.ReadDir(spool); err != nil || len(es) > 0 {
		t.Errorf("spool directory %s: %d entries, %v; want it made and empty", spool, len(es), err)
	}

	for i, c := range conns {
		if _, err := io.WriteString(c.nc, "\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if l, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "a OK [APPENDUID ") {
			t.Fatalf("client %d: APPEND answered %q, %v", i, l, err)
		}
	}
	lines, err := conns[0].cmd("EXAMINE INBOX")
	if err != nil || !strings.Contains(strings.Join(lines, ""), fmt.Sprintf("* %d EXISTS", clients)) {
		t.Fatalf("EXAMINE: %q, %v", lines, err)
	}
	want := fmt.Sprintf("* 1 FETCH (RFC822.SIZE %d)", size)
	if lines, err := conns[0].cmd("FETCH 1 RFC822.SIZE"); err != nil || strings.TrimSpace(lines[0]) != want {
		t.Errorf("FETCH: %q, %v; want %q", lines, err, want)
	}
	if es, _ := os.ReadDir(spool); len(es) > 0 {
		t.Errorf("spool directory holds %d entries after the APPENDs", len(es))
	}
}

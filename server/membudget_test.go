package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/tmpfs"
	"github.com/quickimap/quickimap/server"
)

// procMemory is the memory this process holds: the Go runtime's mapped
// memory less what it has given back to the system (runtime/metrics),
// and the resident set size from /proc/self/status (0 where there is no
// /proc).
func procMemory() (goMem, rss int64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	goMem = int64(s[0].Value.Uint64() - s[1].Value.Uint64())
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return goMem, rss
}

// settle collects garbage and returns freed memory to the system, so that
// a measurement that follows starts from what is live.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// memPeak samples procMemory until stop is closed and reports the peak
// growth over base.
type memPeak struct {
	mu            sync.Mutex
	goMem, rss    int64
	baseGo, baseR int64
	stop, done    chan struct{}
}

func watchMemory() *memPeak {
	settle()
	p := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	p.baseGo, p.baseR = procMemory()
	go func() {
		defer close(p.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			g, r := procMemory()
			p.mu.Lock()
			p.goMem, p.rss = max(p.goMem, g-p.baseGo), max(p.rss, r-p.baseR)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// end stops the sampling and returns the peak growth of the Go runtime's
// memory and of the RSS.
func (p *memPeak) end() (goMem, rss int64) {
	close(p.stop)
	<-p.done
	return p.goMem, p.rss
}

// repeatWriter sends n bytes of a repeated line, so that a client sends
// a large literal without holding it.
func sendFiller(w io.Writer, n int64) error {
	line := []byte(strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+", 16)[:1022] + "\r\n")
	chunk := bytes.Repeat(line, 64) // 64 KiB
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

const mib = 1 << 20

// largeHeader starts the large test messages.
const largeHeader = "From: big@example.org\r\nSubject: large\r\nContent-Type: text/plain\r\n\r\n"

// loginSelect dials, logs in and selects INBOX with a raw connection
// whose reads the test controls.
func loginRaw(t *testing.T, env *imaptest.Env) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := env.DialLogin(t)
	return c.NC, c.R
}

// TestMemoryBudgetStalledLiterals: 12 clients each send a 60 MB APPEND
// literal but its last byte; the server holds at most its memory budget
// and a margin meanwhile, and every APPEND completes byte-exact once the
// last byte comes.
func TestMemoryBudgetStalledLiterals(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 720 MB over loopback; skipped with -short")
	}
	const (
		clients = 12
		size    = 60 * mib
		budget  = 64 * mib
		margin  = 100 * mib
	)
	spool := t.TempDir()
	env := imaptest.Start(t, func(o *server.Options) {
		o.MemoryBudget = budget
		o.SpoolDir = spool
		o.Limits.MaxLiteral = 64 * mib
		o.LiteralTimeout = 2 * time.Minute
	})
	peak := watchMemory()
	conns := make([]net.Conn, clients)
	readers := make([]*bufio.Reader, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range conns {
		conns[i], readers[i] = loginRaw(t, env)
	}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, r := conns[i], readers[i]
			nc.SetDeadline(time.Now().Add(2 * time.Minute))
			if _, err := fmt.Fprintf(nc, "a APPEND INBOX {%d}\r\n", size); err != nil {
				errs <- err
				return
			}
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "+") {
				errs <- fmt.Errorf("client %d: continuation %q, %v", i, line, err)
				return
			}
			bw := bufio.NewWriterSize(nc, 64<<10)
			bw.WriteString(largeHeader)
			if err := sendFiller(bw, size-int64(len(largeHeader))-1); err != nil {
				errs <- err
				return
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
	// Every client has sent all but one byte; the server has read what
	// the sockets do not hold. Let it catch up, measured meanwhile.
	waitState(t, time.Minute, "the literals to be spooled", func() bool {
		return env.Server.MemoryStats().SpoolBytes == clients*(size-1)
	})
	goMem, rss := peak.end()
	if st := env.Server.MemoryStats(); st.SpoolFiles != clients {
		t.Errorf("%d spool files, want %d", st.SpoolFiles, clients)
	}
	// The files are unlinked as soon as they are made.
	if names := dirEntries(t, spool); len(names) > 0 {
		t.Errorf("spool directory holds %q while the literals are in flight", names)
	}
	t.Logf("%d stalled %d MB literals: peak growth Go runtime %d MB, RSS %d MB (budget %d MB)",
		clients, size/mib, goMem/mib, rss/mib, budget/mib)
	if goMem > budget+margin {
		t.Errorf("Go runtime memory grew by %d MB, want under budget+100 MB = %d MB", goMem/mib, (budget+margin)/mib)
	}
	if rss > budget+margin {
		t.Errorf("RSS grew by %d MB, want under budget+100 MB = %d MB", rss/mib, (budget+margin)/mib)
	}
	for i, nc := range conns {
		if _, err := nc.Write([]byte("\n\r\n")); err != nil {
			t.Fatal(err)
		}
		line, err := readers[i].ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "a OK [APPENDUID ") {
			t.Fatalf("client %d: APPEND answered %q, %v", i, line, err)
		}
	}
	if st := env.Server.MemoryStats(); st != (server.MemoryStats{Budget: budget}) {
		t.Errorf("after the APPENDs: %+v, want nothing held", st)
	}
	if names := dirEntries(t, spool); len(names) > 0 {
		t.Errorf("spool directory holds %q after the APPENDs", names)
	}
	// Each message is stored byte for byte.
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	var want bytes.Buffer
	want.WriteString(largeHeader)
	sendFiller(&want, size-int64(len(largeHeader))-1)
	want.WriteByte('\n')
	for _, seq := range []int{1, clients} {
		checkBody(t, c, seq, want.Bytes())
	}
}

// checkBody fetches message seq's BODY.PEEK[] and compares it with want.
func checkBody(t *testing.T, c *imaptest.Conn, seq int, want []byte) {
	t.Helper()
	c.SendLine(fmt.Sprintf("f FETCH %d BODY.PEEK[]", seq))
	c.NC.SetReadDeadline(time.Now().Add(time.Minute))
	head, err := c.R.ReadString('\n')
	prefix := fmt.Sprintf("* %d FETCH (BODY[] {%d}\r\n", seq, len(want))
	if err != nil || head != prefix {
		t.Fatalf("FETCH %d: %q, %v; want %q", seq, head, err, prefix)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.R, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("FETCH %d: body differs from byte %d of %d", seq, i, len(want))
	}
	if lines := c.ReadUntilTagged("f"); lines[len(lines)-1] != "f OK FETCH completed" {
		t.Fatalf("FETCH %d: %q", seq, lines)
	}
}

// appendLarge appends a message of size bytes (largeHeader and filler)
// without holding it, and returns nothing: the content is what
// sendFiller makes.
func appendLarge(t *testing.T, nc net.Conn, r *bufio.Reader, size int64) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	bw := bufio.NewWriterSize(nc, 64<<10)
	fmt.Fprintf(bw, "ap APPEND INBOX {%d+}\r\n%s", size, largeHeader)
	if err := sendFiller(bw, size-int64(len(largeHeader))); err != nil {
		t.Fatal(err)
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ap OK [APPENDUID ") {
		t.Fatalf("APPEND answered %q, %v", line, err)
	}
}

// fetchBufSize is the server's buffer for a body sent in pieces
// (bodyBufSize in cmd_fetch.go), which MemoryStats counts.
const fetchBufSize = 128 << 10

// TestMemoryBudgetStalledFetches: 12 clients FETCH a 58 MB message and
// read nothing; the server holds a bounded buffer for each, counted in
// the budget, and gives them back when the clients go.
func TestMemoryBudgetStalledFetches(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of MB over loopback; skipped with -short")
	}
	const (
		clients = 12
		size    = 58 * mib
		budget  = 64 * mib
		margin  = 100 * mib
	)
	env := imaptest.Start(t, func(o *server.Options) {
		o.MemoryBudget = budget
		o.Limits.MaxLiteral = 64 * mib
	})
	nc, r := loginRaw(t, env)
	appendLarge(t, nc, r, size)
	for _, item := range []string{"BODY.PEEK[]", "BODY.PEEK[TEXT]", "RFC822", "BODY.PEEK[]<1000.50000000>", "BODY.PEEK[1]"} {
		t.Run(item, func(t *testing.T) {
			conns := make([]net.Conn, clients)
			for i := range conns {
				conns[i], _ = loginRaw(t, env)
			}
			peak := watchMemory()
			for _, nc := range conns {
				if _, err := io.WriteString(nc, "s SELECT INBOX\r\nf FETCH 1 "+item+"\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			// Every connection is sending the body: each holds its
			// buffer, and blocks once the sockets are full.
			waitState(t, 30*time.Second, "every FETCH to send its body", func() bool {
				return env.Server.MemoryStats().InUse == clients*fetchBufSize
			})
			// A measurement window, not a wait for a state: the
			// writers are blocked on full sockets by now, and stay so.
			time.Sleep(500 * time.Millisecond)
			goMem, rss := peak.end()
			t.Logf("%d stalled FETCH %s of a %d MB message: peak growth Go runtime %d MB, RSS %d MB",
				clients, item, size/mib, goMem/mib, rss/mib)
			if bound := int64(budget + margin); goMem > bound || rss > bound {
				t.Errorf("memory grew by %d MB (Go), %d MB (RSS); want under budget+100 MB = %d MB", goMem/mib, rss/mib, bound/mib)
			}
			for _, nc := range conns {
				nc.Close()
			}
			waitState(t, 30*time.Second, "the buffers to be given back", func() bool {
				return env.Server.MemoryStats().InUse == 0
			})
		})
	}
}

// The same under COMPRESS=DEFLATE, with a message that compresses
// poorly: the compressor blocks on the full socket, and each connection
// still holds one counted buffer (and its compressor).
func TestMemoryBudgetStalledCompressedFetches(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of MB over loopback; skipped with -short")
	}
	const (
		clients = 12
		size    = 58 * mib
		budget  = 64 * mib
		margin  = 100 * mib
	)
	env := imaptest.Start(t, func(o *server.Options) {
		o.MemoryBudget = budget
		o.Limits.MaxLiteral = 64 * mib
	})
	c := env.DialLogin(t)
	msg := bigMessage(size, 7)
	c.NC.SetDeadline(time.Now().Add(time.Minute))
	c.ExpectTagged("ap", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "ap OK [APPENDUID ")
	msg = nil

	conns := make([]*imaptest.Conn, clients)
	for i := range conns {
		conns[i] = env.DialLogin(t)
		conns[i].Compress("z")
	}
	peak := watchMemory()
	for _, c := range conns {
		c.Send("s SELECT INBOX\r\nf FETCH 1 BODY.PEEK[]\r\n")
	}
	waitState(t, 30*time.Second, "every FETCH to send its body", func() bool {
		return env.Server.MemoryStats().InUse == clients*fetchBufSize
	})
	time.Sleep(500 * time.Millisecond) // a measurement window, as above
	goMem, rss := peak.end()
	t.Logf("%d stalled compressed FETCH BODY.PEEK[] of a %d MB message: peak growth Go runtime %d MB, RSS %d MB",
		clients, size/mib, goMem/mib, rss/mib)
	if bound := int64(budget + margin); goMem > bound || rss > bound {
		t.Errorf("memory grew by %d MB (Go), %d MB (RSS); want under budget+100 MB = %d MB", goMem/mib, rss/mib, bound/mib)
	}
	for _, c := range conns {
		c.RawConn().Close()
	}
	waitState(t, 30*time.Second, "the buffers to be given back", func() bool {
		return env.Server.MemoryStats().InUse == 0
	})
}

// 12 clients FETCH HEADER.FIELDS of a message whose header is 32 MB: each
// header is read whole, in turn, within the budget.
func TestMemoryBudgetLargeHeaderFetches(t *testing.T) {
	if testing.Short() {
		t.Skip("reads hundreds of MB; skipped with -short")
	}
	const (
		clients = 12
		budget  = 64 * mib
		margin  = 100 * mib
	)
	env := imaptest.Start(t, func(o *server.Options) {
		o.MemoryBudget = budget
		o.Limits.MaxLiteral = 64 * mib
	})
	var msg bytes.Buffer
	msg.WriteString("Subject: wide\r\n")
	pad := "X-Pad: " + strings.Repeat("p", 990) + "\r\n"
	for msg.Len() < 32*mib {
		msg.WriteString(pad)
	}
	msg.WriteString("\r\nbody\r\n")
	c := env.DialLogin(t)
	c.NC.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c.NC, "ap APPEND INBOX {%d+}\r\n", msg.Len())
	c.NC.Write(msg.Bytes())
	c.NC.Write([]byte("\r\n"))
	if l := c.ReadLine(); !strings.HasPrefix(l, "ap OK") {
		t.Fatalf("APPEND: %q", l)
	}
	msg = bytes.Buffer{}

	conns := make([]*imaptest.Conn, clients)
	for i := range conns {
		conns[i] = env.DialLogin(t)
		conns[i].ExpectTagged("s", "SELECT INBOX", "s OK")
	}
	peak := watchMemory()
	for _, c := range conns {
		c.SendLine("f FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
	}
	for i, c := range conns {
		c.NC.SetReadDeadline(time.Now().Add(time.Minute))
		lines := c.ReadUntilTagged("f")
		if want := []string{"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {17}", "Subject: wide", "", ")", "f OK FETCH completed"}; !slices.Equal(lines, want) {
			t.Fatalf("client %d: %q, want %q", i, lines, want)
		}
	}
	goMem, rss := peak.end()
	t.Logf("%d FETCH HEADER.FIELDS of a 32 MB header: peak growth Go runtime %d MB, RSS %d MB", clients, goMem/mib, rss/mib)
	if bound := int64(budget + margin); goMem > bound || rss > bound {
		t.Errorf("memory grew by %d MB (Go), %d MB (RSS); want under budget+100 MB = %d MB", goMem/mib, rss/mib, bound/mib)
	}
	if st := env.Server.MemoryStats(); st.InUse != 0 || st.Waiting != 0 {
		t.Errorf("afterwards: %+v", st)
	}
}

// waitState polls cond until it holds, failing the test after d.
func waitState(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dirEntries lists a directory's names.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// startSmallBudget starts a server with a small budget: literals above
// 1 KiB are spooled to the returned directory.
func startSmallBudget(t *testing.T, budget int64) (*imaptest.Env, string) {
	t.Helper()
	spool := t.TempDir()
	env := imaptest.Start(t, func(o *server.Options) {
		o.MemoryBudget = budget
		o.SpoolLiteral = 1 << 10
		o.SpoolDir = spool
	})
	return env, spool
}

// filler returns n bytes of a message: largeHeader and filler lines.
func filler(n int) string {
	var b bytes.Buffer
	b.WriteString(largeHeader)
	sendFiller(&b, int64(n-len(largeHeader)))
	return b.String()
}

// A MULTIAPPEND of a message held in memory and of spooled ones, by
// synchronizing and non-synchronizing literals, stores every byte; a
// spooled message with a NUL is refused as a held one is; nothing is
// left held or on disk afterwards.
func TestMemoryBudgetSpooledAppend(t *testing.T) {
	env, spool := startSmallBudget(t, 1<<20)
	c := env.DialLogin(t)
	small, big1, big2 := filler(500), filler(300_000)+"end\r\n", filler(70_000)
	c.Send(fmt.Sprintf("a APPEND INBOX {%d+}\r\n%s (\\Seen) {%d}\r\n", len(small), small, len(big1)))
	if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	c.Send(fmt.Sprintf("%s {%d+}\r\n%s\r\n", big1, len(big2), big2))
	lines := c.ReadUntilTagged("a")
	if !strings.HasPrefix(lines[len(lines)-1], "a OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", lines)
	}
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	for i, want := range []string{small, big1, big2} {
		checkBody(t, c, i+1, []byte(want))
	}

	nul := filler(5000) + "\x00\r\n"
	c.ExpectTagged("n", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(nul), nul), "n NO [CANNOT]")
	if st := env.Server.MemoryStats(); st.InUse != 0 || st.SpoolFiles != 0 || st.SpoolBytes != 0 {
		t.Errorf("after the APPENDs: %+v, want nothing held", st)
	}
	if names := dirEntries(t, spool); len(names) > 0 {
		t.Errorf("spool directory holds %q", names)
	}
}

// When the budget is spent by a literal in flight, a large string literal
// is refused with NO [LIMIT] before the client sends it, an APPEND
// literal is spooled, and its message waits for memory to be stored
// until the first literal is done.
func TestMemoryBudgetSpent(t *testing.T) {
	const budget = 200_000
	env, _ := startSmallBudget(t, budget)
	b := env.DialLogin(t)
	first := filler(100_000)
	b.ExpectTagged("ap", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(first), first), "ap OK [APPENDUID ")
	b.ExpectTagged("s", "SELECT INBOX", "s OK")

	// A holds 150,000 bytes of the budget with a SEARCH string (an
	// APPEND literal this large would be spooled), stalled one byte
	// before its end.
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK")
	a.Send("x SEARCH TEXT {150000}\r\n")
	if l := a.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	a.Send(strings.Repeat("q", 150000-1))
	waitState(t, 10*time.Second, "A's literal to be admitted", func() bool {
		return env.Server.MemoryStats().InUse == 150000
	})

	b.ExpectTagged("y", "SEARCH TEXT {100000}", "y NO [LIMIT]")
	expectUsable(t, b, "y2")
	// FETCH does not wait: it sends a body through a small buffer.
	checkBody(t, b, 1, []byte(first))
	if st := env.Server.MemoryStats(); st.InUse != 150000 {
		t.Errorf("after the FETCH: %d bytes in use, want A's 150000", st.InUse)
	}

	msg := filler(100_000)
	b.Send(fmt.Sprintf("z APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	waitState(t, 10*time.Second, "B's APPEND to wait for memory", func() bool {
		return env.Server.MemoryStats().Waiting == 1
	})
	a.Send("q\r\n")
	if lines := a.ReadUntilTagged("x"); lines[len(lines)-1] != "x OK SEARCH completed" {
		t.Fatalf("SEARCH: %q", lines)
	}
	lines := b.ReadUntilTagged("z")
	if !strings.HasPrefix(lines[len(lines)-1], "z OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", lines)
	}
	checkBody(t, b, 2, []byte(msg))
	if st := env.Server.MemoryStats(); st.InUse != 0 || st.Waiting != 0 || st.SpoolFiles != 0 {
		t.Errorf("afterwards: %+v, want nothing held", st)
	}
}

// A MULTIAPPEND whose messages together exceed the budget is refused at
// once, and its messages appended one by one are taken.
func TestMemoryBudgetMultiAppendTooLarge(t *testing.T) {
	env, spool := startSmallBudget(t, 100_000)
	c := env.DialLogin(t)
	small, big := filler(900), filler(99_500)
	cmd := fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(small), small, len(big), big)
	start := time.Now()
	c.ExpectTagged("m", cmd, "m NO [LIMIT]")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
	for i, m := range []string{small, big} {
		tag := fmt.Sprintf("a%d", i)
		c.ExpectTagged(tag, fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(m), m), tag+" OK [APPENDUID ")
	}
	if st := env.Server.MemoryStats(); st.InUse != 0 || st.SpoolFiles != 0 {
		t.Errorf("afterwards: %+v", st)
	}
	if names := dirEntries(t, spool); len(names) > 0 {
		t.Errorf("spool directory holds %q", names)
	}
}

// A literal spooled to a full disk: the APPEND gets NO [OVERQUOTA] and
// the operator the "mail store is full" line, the connection goes on,
// and the space comes back with the command's end.
func TestMemoryBudgetSpoolDiskFull(t *testing.T) {
	spool := tmpfs.Mount(t, 1<<20)
	var logs imaptest.SyncBuffer
	env := imaptest.Start(t, func(o *server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.SpoolLiteral = 1 << 10
		o.SpoolDir = spool
	})
	c := env.DialLogin(t)
	big := filler(3 << 20)
	c.ExpectTagged("a", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(big), big), "a NO [OVERQUOTA]")
	if !strings.Contains(logs.String(), "mail store is full") {
		t.Errorf("no \"mail store is full\" line in the log:\n%s", logs.String())
	}
	// Twice over: the first file's space was given back.
	for _, tag := range []string{"b", "c"} {
		small := filler(700 << 10)
		c.ExpectTagged(tag, fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(small), small), tag+" OK [APPENDUID ")
	}
	if st := env.Server.MemoryStats(); st.InUse != 0 || st.SpoolFiles != 0 {
		t.Errorf("afterwards: %+v", st)
	}
}

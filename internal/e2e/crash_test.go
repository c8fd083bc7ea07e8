//go:build unix

package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestCrashDuringWrites kills the server with SIGKILL while four clients
// append, flag and expunge messages in two mailboxes, restarts it on the
// same data directory and checks that the store kept its promises: every
// APPEND answered OK is there under its APPENDUID, every EXPUNGE answered
// OK took effect, flags confirmed by a STORE OK are as confirmed, no UID
// is reused, and `quickimap check` is satisfied.
func TestCrashDuringWrites(t *testing.T) {
	t0 := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	bin := buildBinary(t)
	phase("built")
	dir := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, bin, password+"\n", "user", "add", "--data", dir, "bob")
	if code != 0 {
		t.Fatalf("quickimap user add: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	phase("user added")
	p := startServer(t, bin, dir)
	phase("started")
	env := &imaptest.Env{Addr: p.addr, User: "bob", Password: password}
	c := env.DialLogin(t)
	c.ExpectTagged("c1", "CREATE Crash", "c1 OK")
	c.Expect("c2", "LOGOUT", "* BYE Logging out", "c2 OK LOGOUT completed")

	boxes := []string{"INBOX", "Crash"}
	led := &ledger{msgs: map[msgKey]*crashMsg{}, uidValidity: map[string]uint32{}}
	const workers = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	crashers := make([]*crashClient, workers)
	errs := make([]error, workers)
	for i := range workers { // in parallel: each login costs a bcrypt
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := dialCrashClient(p.addr, "bob", password)
			if err == nil {
				_, err = cc.cmd("SELECT " + boxes[i%2])
			}
			crashers[i], errs[i] = cc, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: login and SELECT %s: %v", i, boxes[i%2], err)
		}
	}
	phase("workers ready")
	start := time.Now()
	for i, cc := range crashers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc.work(i, boxes[i%2], boxes[(i+1)%2], led, stop)
		}()
	}

	// Let the stream run, then SIGKILL the server in the middle of it.
	time.Sleep(2 * time.Second)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	killedAt := time.Since(start)
	phase("killed")
	close(stop)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process still running 10 s after SIGKILL")
	}
	if ws, ok := p.err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("server ended with %v, want killed by SIGKILL", p.err)
	}
	waitTimeout(t, &wg, 15*time.Second, "workers did not stop after the server died")
	for _, cc := range crashers {
		cc.nc.Close()
	}

	stats := led.stats()
	t.Logf("killed after %v; %s", killedAt.Round(time.Millisecond), stats)
	if stats.appended < 20 || stats.expunged == 0 || stats.stored == 0 {
		t.Fatalf("the workload did too little before the kill (%s); is the server working?\nserver log:\n%s", stats, p.log())
	}

	phase("workers stopped")
	// The store is consistent after the crash, before anyone opens it.
	if code, stdout, stderr := run(t, bin, "", "check", "--data", dir); code != 0 || strings.TrimSpace(stdout) != "ok" {
		t.Errorf("quickimap check after SIGKILL: exit %d, stdout %q, want 0 and \"ok\"\nstderr: %s", code, stdout, stderr)
	}

	phase("checked")
	p2 := startServer(t, bin, dir)
	phase("restarted")
	env.Addr = p2.addr
	c = env.DialLogin(t)
	for _, box := range boxes {
		verifyMailbox(t, c, box, led)
	}
	phase("verified")
	c.Expect("z9", "LOGOUT", "* BYE Logging out", "z9 OK LOGOUT completed")

	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p2.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("quickimap serve still running 15 s after SIGTERM\nstderr:\n%s", p2.log())
	}
	if code, stdout, stderr := run(t, bin, "", "check", "--data", dir); code != 0 || strings.TrimSpace(stdout) != "ok" {
		t.Errorf("quickimap check at the end: exit %d, stdout %q, want 0 and \"ok\"\nstderr: %s", code, stdout, stderr)
	}
}

func waitTimeout(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// verifyMailbox compares a mailbox after the restart with the ledger.
func verifyMailbox(t *testing.T, c *imaptest.Conn, box string, led *ledger) {
	t.Helper()
	led.mu.Lock()
	defer led.mu.Unlock()

	st := c.ExpectTagged("v1", "STATUS "+box+" (MESSAGES UIDNEXT UIDVALIDITY)", "v1 OK")
	status := parseStatus(t, st)
	if want := led.uidValidity[box]; want != 0 && status["UIDVALIDITY"] != want {
		t.Errorf("%s: UIDVALIDITY %d after the restart, APPENDUID said %d", box, status["UIDVALIDITY"], want)
	}

	var mine []*crashMsg
	maxUID := uint32(0) // the highest UID the server confirmed, expunged or not
	pendingAppends := 0
	for _, m := range led.pending {
		if m.box == box && m.state == stateAppending {
			pendingAppends++
		}
	}
	for k, m := range led.msgs {
		if k.box != box {
			continue
		}
		mine = append(mine, m)
		maxUID = max(maxUID, k.uid)
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].uid < mine[j].uid })
	if status["UIDNEXT"] <= maxUID {
		t.Errorf("%s: UIDNEXT %d after the restart, but UID %d was handed out before the crash", box, status["UIDNEXT"], maxUID)
	}

	sel := c.ExpectTagged("v2", "SELECT "+box, "v2 OK")
	exists := -1
	for _, l := range sel {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "*" && f[2] == "EXISTS" {
			exists, _ = strconv.Atoi(f[1])
		}
	}
	if exists != int(status["MESSAGES"]) {
		t.Errorf("%s: SELECT says %d EXISTS, STATUS %d MESSAGES", box, exists, status["MESSAGES"])
	}

	present := fetchAll(t, c, box)
	if len(present) != int(status["MESSAGES"]) {
		t.Errorf("%s: UID FETCH 1:* returned %d messages, STATUS says %d", box, len(present), status["MESSAGES"])
	}
	unknown := 0
	for uid := range present {
		// A message nobody got an OK for is an APPEND that was in
		// flight: it committed, and the kill came before its client read
		// the answer. Its UID may be below a confirmed one, since another
		// client's later APPEND can be answered first.
		if _, ok := led.msgs[msgKey{box, uid}]; !ok {
			unknown++
		}
	}
	if unknown > pendingAppends {
		t.Errorf("%s: %d messages nobody appended with an OK, but only %d APPENDs were in flight", box, unknown, pendingAppends)
	}
	for _, m := range mine {
		flags, ok := present[m.uid]
		switch m.state {
		case statePresent, stateStoring:
			if !ok {
				t.Errorf("%s: UID %d (APPEND answered OK, never deleted) is missing after the restart", box, m.uid)
				continue
			}
			if !sameFlags(flags, m.flags) && (m.state != stateStoring || !sameFlags(flags, m.next)) {
				t.Errorf("%s: UID %d has flags %v after the restart, want %v (or, with a STORE in flight, %v)", box, m.uid, flags, m.flags, m.next)
			}
		case stateDeleting, stateDeleted:
			// Another client's EXPUNGE may have taken it.
			if ok && !slices.Contains(flags, `\Deleted`) && m.state == stateDeleted {
				t.Errorf("%s: UID %d: STORE +FLAGS (\\Deleted) was answered OK, but it has flags %v", box, m.uid, flags)
			}
		case stateExpunged:
			if ok {
				t.Errorf("%s: UID %d was expunged with an OK before the crash but is back after the restart", box, m.uid)
			}
		}
	}

	// The large messages answered OK, read back whole (their bodies are
	// files, written and synced before the commit).
	large := 0
	for _, m := range mine {
		if m.body == "" || (m.state != statePresent && m.state != stateStoring) {
			continue
		}
		large++
		lines := c.Cmd("v6", fmt.Sprintf("UID FETCH %d BODY.PEEK[]", m.uid))
		got := strings.Join(lines[:len(lines)-1], "\r\n")
		if want := fmt.Sprintf("BODY[] {%d}\r\n%s)", len(m.body), m.body); !strings.Contains(got, want) {
			t.Errorf("%s: UID %d (%d bytes, APPEND answered OK): BODY[] differs after the restart: %.200q", box, m.uid, len(m.body), got)
		}
	}
	t.Logf("%s: %d large messages read back", box, large)

	// No UID is reused: a new message gets a UID above every one handed
	// out before the crash.
	body := "Subject: after the crash\r\n\r\nhello again\r\n"
	resp := c.Cmd("v3", fmt.Sprintf("APPEND %s {%d+}\r\n%s", box, len(body), body))
	uv, uids, ok := parseAppendUID(resp[len(resp)-1])
	if !ok || len(uids) != 1 {
		t.Fatalf("%s: APPEND after the restart: %q", box, resp)
	}
	if uv != status["UIDVALIDITY"] {
		t.Errorf("%s: APPENDUID validity %d, STATUS said %d", box, uv, status["UIDVALIDITY"])
	}
	if uids[0] <= maxUID || uids[0] < status["UIDNEXT"] {
		t.Errorf("%s: APPEND after the restart got UID %d; UIDNEXT was %d and UID %d was handed out before the crash", box, uids[0], status["UIDNEXT"], maxUID)
	}
	for uid := range present {
		if uids[0] <= uid {
			t.Errorf("%s: APPEND after the restart got UID %d, not above the existing UID %d", box, uids[0], uid)
		}
	}
	c.ExpectTagged("v4", "UNSELECT", "v4 OK")
}

// fetchAll returns the UIDs and flags of every message of the selected
// mailbox by UID FETCH.
func fetchAll(t *testing.T, c *imaptest.Conn, box string) map[uint32][]string {
	t.Helper()
	lines := c.Cmd("v5", "UID FETCH 1:* (UID FLAGS)")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "v5 OK") {
		t.Fatalf("%s: UID FETCH 1:* (UID FLAGS): %q", box, lines)
	}
	out := map[uint32][]string{}
	for _, l := range lines[:len(lines)-1] {
		m := fetchRE.FindStringSubmatch(l)
		if m == nil {
			if strings.Contains(l, " FETCH ") {
				t.Errorf("%s: unparsed FETCH line %q", box, l)
			}
			continue
		}
		var uid, flags string
		if m[1] != "" {
			uid, flags = m[1], m[2]
		} else {
			flags, uid = m[3], m[4]
		}
		n, _ := strconv.ParseUint(uid, 10, 32)
		out[uint32(n)] = strings.Fields(flags)
	}
	return out
}

var fetchRE = regexp.MustCompile(`^\* \d+ FETCH \((?:UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+))\)$`)

func parseStatus(t *testing.T, lines []string) map[string]uint32 {
	t.Helper()
	for _, l := range lines {
		if !strings.HasPrefix(l, "* STATUS ") {
			continue
		}
		i := strings.LastIndex(l, "(")
		f := strings.Fields(strings.Trim(l[i:], "()"))
		out := map[string]uint32{}
		for j := 0; j+1 < len(f); j += 2 {
			n, _ := strconv.ParseUint(f[j+1], 10, 32)
			out[f[j]] = uint32(n)
		}
		return out
	}
	t.Fatalf("no STATUS line in %q", lines)
	return nil
}

var appendUIDRE = regexp.MustCompile(`^\S+ OK \[APPENDUID (\d+) (\d+)(?::(\d+))?\]`)

func parseAppendUID(line string) (uidValidity uint32, uids []uint32, ok bool) {
	m := appendUIDRE.FindStringSubmatch(line)
	if m == nil {
		return 0, nil, false
	}
	uv, _ := strconv.ParseUint(m[1], 10, 32)
	lo, _ := strconv.ParseUint(m[2], 10, 32)
	hi := lo
	if m[3] != "" {
		hi, _ = strconv.ParseUint(m[3], 10, 32)
	}
	for u := lo; u <= hi; u++ {
		uids = append(uids, uint32(u))
	}
	return uint32(uv), uids, true
}

func sameFlags(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	a = slices.DeleteFunc(a, func(f string) bool { return f == `\Recent` })
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// The ledger records what the server confirmed before the crash.

type msgState int

const (
	stateAppending msgState = iota // APPEND sent, no answer yet
	statePresent                   // APPEND answered OK
	stateStoring                   // a flag STORE sent, no answer yet
	stateDeleting                  // STORE +FLAGS (\Deleted) sent
	stateDeleted                   // \Deleted confirmed; some EXPUNGE may remove it
	stateExpunged                  // the owner's EXPUNGE answered OK after \Deleted
)

type msgKey struct {
	box string
	uid uint32
}

type crashMsg struct {
	box   string
	uid   uint32
	state msgState
	flags []string // confirmed
	next  []string // with stateStoring: the flags if the STORE took effect
	body  string   // the message, kept for the large ones (stored in files)
}

type ledger struct {
	mu          sync.Mutex
	msgs        map[msgKey]*crashMsg
	pending     []*crashMsg // stateAppending, not in msgs (no UID yet)
	uidValidity map[string]uint32
	stores      int // flag STOREs answered OK
}

type ledgerStats struct{ appended, stored, expunged, pending int }

func (s ledgerStats) String() string {
	return fmt.Sprintf("%d APPENDs, %d flag STOREs and %d expunges confirmed, %d APPENDs in flight at the kill", s.appended, s.stored, s.expunged, s.pending)
}

func (l *ledger) stats() ledgerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s ledgerStats
	for _, m := range l.msgs {
		s.appended++
		if m.state == stateExpunged {
			s.expunged++
		}
	}
	for _, m := range l.pending {
		if m.state == stateAppending {
			s.pending++
		}
	}
	s.stored = l.stores
	return s
}

// crashClient is a raw IMAP connection that reports errors instead of
// failing the test, since the server dies under it.
type crashClient struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	seq int
}

func dialCrashClient(addr, user, pass string) (*crashClient, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	cc := &crashClient{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	if _, err := cc.readLine(); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := cc.cmd("LOGIN " + user + " " + pass); err != nil {
		nc.Close()
		return nil, err
	}
	return cc, nil
}

func (cc *crashClient) readLine() (string, error) {
	cc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := cc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// cmd sends one command (which may carry LITERAL+ literals) and returns
// the tagged line; an answer other than OK is an error.
func (cc *crashClient) cmd(s string) (string, error) {
	cc.seq++
	tag := "w" + strconv.Itoa(cc.seq)
	cc.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	cc.w.WriteString(tag + " " + s + "\r\n")
	if err := cc.w.Flush(); err != nil {
		return "", err
	}
	for {
		l, err := cc.readLine()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return l, fmt.Errorf("%s: %s", s[:min(len(s), 60)], l)
			}
			return l, nil
		}
	}
}

var crashFlags = []string{`\Seen`, `\Flagged`, `\Answered`, `$Crash`}

// work runs the write stream until the connection fails or stop is
// closed: APPENDs to the selected mailbox (and a few to the other one),
// STORE +FLAGS/-FLAGS on its own messages, and \Deleted plus EXPUNGE.
func (cc *crashClient) work(id int, box, other string, led *ledger, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(id), 42))
	var own []*crashMsg // present messages of box that this worker appended
	n := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		switch r := rng.IntN(10); {
		case r < 5 || len(own) < 3:
			target := box
			if rng.IntN(5) == 0 {
				target = other
			}
			n++
			var flags []string
			for _, f := range crashFlags {
				if rng.IntN(3) == 0 {
					flags = append(flags, f)
				}
			}
			text := strings.Repeat("line of text ", 1+rng.IntN(200))
			large := n%8 == 0 // over the store's 64 KiB: kept in a file
			if large {
				text = strings.Repeat(fmt.Sprintf("large message %d/%d, a line of text\r\n", id, n), 2000+rng.IntN(1000))
			}
			body := fmt.Sprintf("From: worker%d@example.com\r\nSubject: crash %d/%d\r\nMessage-ID: <%d.%d@crash>\r\n\r\n%s\r\n",
				id, id, n, id, n, text)
			m := &crashMsg{box: target, state: stateAppending, flags: flags}
			if large {
				m.body = body
			}
			led.mu.Lock()
			led.pending = append(led.pending, m)
			led.mu.Unlock()
			line, err := cc.cmd(fmt.Sprintf("APPEND %s (%s) {%d+}\r\n%s", target, strings.Join(flags, " "), len(body), body))
			if err != nil {
				return
			}
			uv, uids, ok := parseAppendUID(line)
			if !ok || len(uids) != 1 {
				return // reported as a missing APPENDUID by the counts
			}
			led.mu.Lock()
			m.uid, m.state = uids[0], statePresent
			led.msgs[msgKey{target, uids[0]}] = m
			led.uidValidity[target] = uv
			led.mu.Unlock()
			if target == box {
				own = append(own, m)
			}
		case r < 8:
			m := own[rng.IntN(len(own))]
			f := crashFlags[rng.IntN(len(crashFlags))]
			op := "+FLAGS"
			led.mu.Lock()
			next := slices.Clone(m.flags)
			if slices.Contains(next, f) {
				op = "-FLAGS"
				next = slices.DeleteFunc(next, func(x string) bool { return x == f })
			} else {
				next = append(next, f)
			}
			m.state, m.next = stateStoring, next
			led.mu.Unlock()
			if _, err := cc.cmd(fmt.Sprintf("UID STORE %d %s (%s)", m.uid, op, f)); err != nil {
				return
			}
			led.mu.Lock()
			m.state, m.flags, m.next = statePresent, next, nil
			led.stores++
			led.mu.Unlock()
		default:
			k := 1 + rng.IntN(min(3, len(own)))
			victims := own[len(own)-k:]
			own = own[:len(own)-k]
			var set []string
			led.mu.Lock()
			for _, m := range victims {
				m.state = stateDeleting
				set = append(set, strconv.FormatUint(uint64(m.uid), 10))
			}
			led.mu.Unlock()
			if _, err := cc.cmd("UID STORE " + strings.Join(set, ",") + ` +FLAGS.SILENT (\Deleted)`); err != nil {
				return
			}
			led.mu.Lock()
			for _, m := range victims {
				m.state = stateDeleted
			}
			led.mu.Unlock()
			if _, err := cc.cmd("EXPUNGE"); err != nil {
				return
			}
			led.mu.Lock()
			for _, m := range victims {
				m.state = stateExpunged
			}
			led.mu.Unlock()
		}
	}
}

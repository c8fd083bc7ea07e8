//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/cluster"
)

// TestClusterModel: writers on every node APPEND, STORE and EXPUNGE in
// one INBOX at the same time while observer sessions on every node
// follow the mailbox, some in IDLE, some silent until the end. Each
// writer changes only the messages it appended, so the final mailbox is
// known from the answers alone: the model. After quiescence:
//
//   - a fresh SELECT on every node shows exactly the model (the store,
//     as every node reads it);
//   - every observer's copy of the mailbox, built only from the untagged
//     EXISTS, EXPUNGE and FETCH responses its session was sent (RFC 3501
//     §7: sequence numbers shift on each EXPUNGE) and a FETCH of the
//     messages announced by EXISTS, equals the model once its session
//     has caught up (NOOP until it does, 10 s at most: the changes made
//     on other nodes arrive through the nodes' hints, asynchronously);
//   - the observers in IDLE were told of changes while they happened.
//
// QUICKIMAP_CLUSTER_OPS sets the operations per writer.
func TestClusterModel(t *testing.T) {
	const writersPerNode = 2
	ops := 120
	if s := testEnvInt(t, "QUICKIMAP_CLUSTER_OPS"); s > 0 {
		ops = s
	}
	c := startCluster(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	var observers []*observer
	for i, n := range c.Nodes() {
		for _, idle := range []bool{true, false} {
			o, err := dialObserver(n.Addr, "alice", c.Password, fmt.Sprintf("%s/%s", n.Name, map[bool]string{true: "idle", false: "quiet"}[idle]), idle)
			if err != nil {
				t.Fatalf("observer on node %d: %v", i, err)
			}
			t.Cleanup(func() { o.nc.Close() })
			observers = append(observers, o)
		}
	}
	var writers []*modelWriter
	for i, n := range c.Nodes() {
		for j := range writersPerNode {
			cc, err := dialCrashClient(n.Addr, "alice", c.Password)
			if err == nil {
				_, err = cc.cmd("SELECT INBOX")
			}
			if err != nil {
				t.Fatalf("writer on %s: %v", n.Name, err)
			}
			t.Cleanup(func() { cc.nc.Close() })
			id := i*writersPerNode + j
			writers = append(writers, &modelWriter{cc: cc, id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), own: map[uint32]string{}})
		}
	}

	// Observers in IDLE read what comes while the writers write.
	stopIdle := make(chan struct{})
	var owg sync.WaitGroup
	oerrs := make([]error, len(observers))
	for i, o := range observers {
		if !o.idle {
			continue
		}
		owg.Add(1)
		go func() {
			defer owg.Done()
			oerrs[i] = o.idleUntil(stopIdle)
		}()
	}
	start := time.Now()
	runWriters := func(ws []*modelWriter, ops int) {
		t.Helper()
		var wwg sync.WaitGroup
		werrs := make([]error, len(ws))
		for i, w := range ws {
			wwg.Add(1)
			go func() {
				defer wwg.Done()
				werrs[i] = w.run(ops)
			}()
		}
		wwg.Wait()
		for i, err := range werrs {
			if err != nil {
				t.Fatalf("writer %d: %v", ws[i].id, err)
			}
		}
	}
	runWriters(writers, ops)
	// The last changes come from the last node alone: the other nodes
	// learn of them only through its hints (their own writes no longer
	// make them read the store).
	runWriters(writers[len(writers)-writersPerNode:], ops/4)
	elapsed := time.Since(start)
	close(stopIdle)
	owg.Wait()
	for i, err := range oerrs {
		if err != nil {
			t.Fatalf("observer %s: %v", observers[i].name, err)
		}
	}

	// The model: every writer's own messages.
	model := map[uint32]string{}
	appends, stores, expunges := 0, 0, 0
	for _, w := range writers {
		for u, f := range w.own {
			if _, dup := model[u]; dup {
				t.Fatalf("UID %d handed to two APPENDs", u)
			}
			model[u] = f
		}
		appends += w.appends
		stores += w.stores
		expunges += w.expunges
	}
	t.Logf("%d writers on %d nodes: %d APPEND, %d STORE, %d EXPUNGE in %v; %d messages left",
		len(writers), len(c.Nodes()), appends, stores, expunges, elapsed.Round(time.Millisecond), len(model))
	if expunges == 0 || stores == 0 || len(model) == 0 {
		t.Fatalf("the workload did too little")
	}
	want := formatModel(model)

	// Every observer's session catches up with the model. (Before any
	// new SELECT: that would make its node read the store.)
	for _, o := range observers {
		t0 := time.Now()
		polls, err := o.converge(want, 10*time.Second)
		if err != nil {
			t.Errorf("observer %s: %v", o.name, err)
			continue
		}
		t.Logf("observer %s: %d updates during the run, %d EXPUNGE, caught up in %d NOOPs, %v",
			o.name, o.updates, o.expunges, polls, time.Since(t0).Round(time.Millisecond))
		if o.idle && o.updates == 0 {
			t.Errorf("observer %s in IDLE was told nothing while the writers ran", o.name)
		}
	}
	// The store, as each node reads it.
	for i := range c.Nodes() {
		got, err := freshView(c, i)
		if err != nil {
			t.Fatalf("%s: %v", c.Node(i).Name, err)
		}
		if d := diffLines(got, want); d != "" {
			t.Errorf("%s, fresh SELECT: the mailbox differs from the model:\n%s", c.Node(i).Name, d)
		}
	}
	if code, stdout, stderr := run(t, c.Bin, "", "check", "--postgres", c.DSN); code != 0 {
		t.Errorf("quickimap check --postgres: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func testEnvInt(t *testing.T, name string) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// modelFlags are the flags writers set and clear (\Deleted only right
// before their UID EXPUNGE).
var modelFlags = []string{`\Seen`, `\Flagged`, `\Answered`, `$Work`}

// modelWriter appends messages and changes only those it appended, so
// that its answers tell the final state of its messages.
type modelWriter struct {
	cc  *crashClient
	id  int
	rng *rand.Rand
	own map[uint32]string // UID → flags (normalized) of its present messages

	appends, stores, expunges int
}

func (w *modelWriter) run(ops int) error {
	for n := range ops {
		var uids []uint32
		for u := range w.own {
			uids = append(uids, u)
		}
		slices.Sort(uids)
		switch k := w.rng.IntN(10); {
		case k < 4 || len(uids) < 3:
			var flags []string
			for _, f := range modelFlags {
				if w.rng.IntN(4) == 0 {
					flags = append(flags, f)
				}
			}
			body := fmt.Sprintf("Subject: writer %d op %d\r\nMessage-ID: <w%d.%d@model>\r\n\r\nbody\r\n", w.id, n, w.id, n)
			tagged, err := w.cc.cmd(fmt.Sprintf("APPEND INBOX (%s) {%d+}\r\n%s", strings.Join(flags, " "), len(body), body))
			if err != nil {
				return err
			}
			_, got, ok := parseAppendUID(tagged)
			if !ok || len(got) != 1 {
				return fmt.Errorf("APPEND answered %q", tagged)
			}
			w.own[got[0]] = normFlags(flags)
			w.appends++
		case k < 8:
			u := uids[w.rng.IntN(len(uids))]
			f := modelFlags[w.rng.IntN(len(modelFlags))]
			have := strings.Fields(w.own[u])
			op := "+"
			if slices.Contains(have, f) && w.rng.IntN(3) > 0 {
				op = "-"
			}
			if _, err := w.cc.cmd(fmt.Sprintf("UID STORE %d %sFLAGS.SILENT (%s)", u, op, f)); err != nil {
				return err
			}
			have = slices.DeleteFunc(have, func(s string) bool { return s == f })
			if op == "+" {
				have = append(have, f)
			}
			w.own[u] = normFlags(have)
			w.stores++
		default:
			u := uids[w.rng.IntN(len(uids))]
			if _, err := w.cc.cmd(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u)); err != nil {
				return err
			}
			if _, err := w.cc.cmd(fmt.Sprintf("UID EXPUNGE %d", u)); err != nil {
				return err
			}
			delete(w.own, u)
			w.expunges++
		}
	}
	return nil
}

// normFlags sorts flags and drops \Recent.
func normFlags(flags []string) string {
	var out []string
	for _, f := range flags {
		if f != "" && !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// formatModel renders UID → flags as "uid (flags)" lines by UID.
func formatModel(m map[uint32]string) []string {
	uids := make([]uint32, 0, len(m))
	for u := range m {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	out := make([]string, len(uids))
	for i, u := range uids {
		out[i] = fmt.Sprintf("%d (%s)", u, m[u])
	}
	return out
}

func diffLines(got, want []string) string {
	if slices.Equal(got, want) {
		return ""
	}
	var b strings.Builder
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, g := range got {
		gs[g] = true
	}
	for _, w := range want {
		ws[w] = true
	}
	for _, g := range got {
		if !ws[g] {
			fmt.Fprintf(&b, "  unexpected %s\n", g)
		}
	}
	for _, w := range want {
		if !gs[w] {
			fmt.Fprintf(&b, "  missing    %s\n", w)
		}
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "  same lines, other order: got %q", got)
	}
	return b.String()
}

// freshView logs in to node i, SELECTs INBOX and returns its messages
// as formatModel does.
func freshView(c *cluster.Cluster, i int) ([]string, error) {
	o, err := dialObserver(c.Node(i).Addr, c.Users[0], c.Password, "fresh", false)
	if err != nil {
		return nil, err
	}
	defer o.nc.Close()
	if err := o.fetchUnknown(); err != nil {
		return nil, err
	}
	return o.view()
}

// observer is a session that keeps a copy of the selected mailbox by
// sequence number from the untagged responses alone.
type observer struct {
	name string
	idle bool
	nc   net.Conn
	r    *bufio.Reader
	seq  int
	msgs []obsMsg

	updates, expunges int // untagged changes received during the IDLE
}

type obsMsg struct {
	uid   uint32 // 0 until a FETCH says
	flags string // normalized
	known bool   // flags known
}

func dialObserver(addr, user, pass, name string, idle bool) (*observer, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	o := &observer{name: name, idle: idle, nc: nc, r: bufio.NewReader(nc)}
	if _, err := o.readLine(10 * time.Second); err != nil {
		nc.Close()
		return nil, err
	}
	for _, cmd := range []string{"LOGIN " + user + " " + pass, "SELECT INBOX"} {
		if err := o.cmd(cmd); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return o, nil
}

func (o *observer) readLine(d time.Duration) (string, error) {
	o.nc.SetReadDeadline(time.Now().Add(d))
	l, err := o.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

func (o *observer) send(s string) error {
	o.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := o.nc.Write([]byte(s + "\r\n"))
	return err
}

// cmd sends a command and applies the untagged responses up to its OK.
func (o *observer) cmd(s string) error {
	o.seq++
	tag := "o" + strconv.Itoa(o.seq)
	if err := o.send(tag + " " + s); err != nil {
		return err
	}
	return o.until(tag)
}

// until applies untagged lines up to tag's tagged response, which must
// be OK.
func (o *observer) until(tag string) error {
	for {
		l, err := o.readLine(10 * time.Second)
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return fmt.Errorf("%s", l)
			}
			return nil
		}
		if err := o.apply(l); err != nil {
			return err
		}
	}
}

var (
	obsExistsRE  = regexp.MustCompile(`^\* (\d+) EXISTS$`)
	obsExpungeRE = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	obsFetchRE   = regexp.MustCompile(`^\* (\d+) FETCH \((.*)\)$`)
	obsUIDRE     = regexp.MustCompile(`\bUID (\d+)`)
	obsFlagsRE   = regexp.MustCompile(`\bFLAGS \(([^)]*)\)`)
)

// apply updates the copy with one untagged response.
func (o *observer) apply(l string) error {
	if m := obsExistsRE.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n < len(o.msgs) {
			return fmt.Errorf("%q with %d messages known: EXISTS may not shrink the mailbox", l, len(o.msgs))
		}
		for len(o.msgs) < n {
			o.msgs = append(o.msgs, obsMsg{})
		}
		return nil
	}
	if m := obsExpungeRE.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n < 1 || n > len(o.msgs) {
			return fmt.Errorf("%q with %d messages", l, len(o.msgs))
		}
		o.msgs = slices.Delete(o.msgs, n-1, n)
		o.expunges++
		return nil
	}
	if m := obsFetchRE.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n < 1 || n > len(o.msgs) {
			return fmt.Errorf("%q with %d messages", l, len(o.msgs))
		}
		msg := &o.msgs[n-1]
		if u := obsUIDRE.FindStringSubmatch(m[2]); u != nil {
			uid, _ := strconv.ParseUint(u[1], 10, 32)
			if msg.uid != 0 && msg.uid != uint32(uid) {
				return fmt.Errorf("%q: message %d has UID %d here", l, n, msg.uid)
			}
			msg.uid = uint32(uid)
		}
		if f := obsFlagsRE.FindStringSubmatch(m[2]); f != nil {
			msg.flags = normFlags(strings.Fields(f[1]))
			msg.known = true
		}
	}
	return nil
}

// idleUntil runs IDLE, applying what comes, until stop is closed, then
// ends it with DONE.
func (o *observer) idleUntil(stop <-chan struct{}) error {
	o.seq++
	tag := "o" + strconv.Itoa(o.seq)
	if err := o.send(tag + " IDLE"); err != nil {
		return err
	}
	if l, err := o.readLine(10 * time.Second); err != nil || !strings.HasPrefix(l, "+") {
		return fmt.Errorf("IDLE: %q %v", l, err)
	}
	// A reader goroutine hands the lines over until the tagged one (or
	// an error), then closes lines.
	lines := make(chan string, 64)
	var readErr error
	go func() {
		defer close(lines)
		for {
			o.nc.SetReadDeadline(time.Time{})
			l, err := o.r.ReadString('\n')
			if err != nil {
				readErr = err
				return
			}
			l = strings.TrimSuffix(l, "\r\n")
			lines <- l
			if strings.HasPrefix(l, tag+" ") {
				return
			}
		}
	}()
	sentDone := false
	for {
		select {
		case <-stop:
			if !sentDone {
				sentDone = true
				if err := o.send("DONE"); err != nil {
					return err
				}
			}
			stop = nil
		case l, ok := <-lines:
			if !ok {
				return fmt.Errorf("IDLE: connection ended: %v", readErr)
			}
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					return fmt.Errorf("IDLE ended with %q", l)
				}
				return nil
			}
			if obsExistsRE.MatchString(l) || obsExpungeRE.MatchString(l) || obsFetchRE.MatchString(l) {
				o.updates++
			}
			if err := o.apply(l); err != nil {
				return err
			}
		}
	}
}

// fetchUnknown fetches UID and flags of the messages not fully known.
func (o *observer) fetchUnknown() error {
	var seqs []string
	for i, m := range o.msgs {
		if m.uid == 0 || !m.known {
			seqs = append(seqs, strconv.Itoa(i+1))
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	return o.cmd("FETCH " + strings.Join(seqs, ",") + " (UID FLAGS)")
}

// view renders the copy as formatModel does; every message must be
// known.
func (o *observer) view() ([]string, error) {
	out := make([]string, len(o.msgs))
	var last uint32
	for i, m := range o.msgs {
		if m.uid == 0 || !m.known {
			return nil, fmt.Errorf("message %d not known after FETCH: %+v", i+1, m)
		}
		if m.uid <= last {
			return nil, fmt.Errorf("UIDs out of order at message %d: %d after %d", i+1, m.uid, last)
		}
		last = m.uid
		out[i] = fmt.Sprintf("%d (%s)", m.uid, m.flags)
	}
	return out, nil
}

// converge sends NOOP (and FETCHes what EXISTS announced) until the copy
// equals want, for at most d.
func (o *observer) converge(want []string, d time.Duration) (polls int, err error) {
	deadline := time.Now().Add(d)
	for {
		// A FETCH by sequence number of a message the session knows
		// was expunged elsewhere, but has not reported yet, may be
		// refused (RFC 2180 §4.1.2, [EXPUNGEISSUED]): the NOOP below
		// reports the expunge, and the FETCH is tried again.
		if err := o.fetchUnknown(); err != nil && !strings.Contains(err.Error(), "[EXPUNGEISSUED]") {
			return polls, err
		}
		got, err := o.view()
		diff := ""
		if err == nil {
			diff = diffLines(got, want)
			if diff == "" {
				return polls, nil
			}
		} else {
			diff = err.Error()
		}
		if time.Now().After(deadline) {
			return polls, fmt.Errorf("the session's mailbox still differs from the model after %v:\n%s", d, diff)
		}
		polls++
		if err := o.cmd("NOOP"); err != nil {
			return polls, err
		}
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/client"
	"github.com/quickimap/quickimap/internal/imaptest"
)

// cutProxy forwards TCP connections to a server and, when armed, cuts the
// next connection after a chosen number of bytes in one direction: the
// client sees its stream end in the middle of a response (or its command
// reach the server only in part).
type cutProxy struct {
	l net.Listener
	// pick chooses the server of each new connection.
	pick func() string

	mu    sync.Mutex
	cut   *cutPlan // applies to the next accepted connection
	conns map[net.Conn]struct{}
	// log is the transcript of recent connections (for failures).
	log  []string
	wg   sync.WaitGroup
	cuts atomic.Int64 // connections actually cut
}

type cutPlan struct {
	toClient bool  // cut the server→client direction, else client→server
	after    int64 // bytes let through before the cut
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	return newCutProxyPick(t, func() string { return target })
}

// newCutProxyPick is a cutProxy that sends each connection to the
// address pick returns at its accept.
func newCutProxyPick(t *testing.T, pick func() string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, pick: pick, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) arm(plan *cutPlan) {
	p.mu.Lock()
	p.cut = plan
	p.mu.Unlock()
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		plan := p.cut
		p.cut = nil
		p.mu.Unlock()
		target := p.pick()
		sc, err := net.Dial("tcp", target)
		if err != nil {
			cc.Close()
			continue
		}
		p.mu.Lock()
		p.conns[cc], p.conns[sc] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(cc, sc, plan)
			p.mu.Lock()
			delete(p.conns, cc)
			delete(p.conns, sc)
			p.mu.Unlock()
		}()
	}
}

// pipe copies both ways until either side ends or the plan's byte count
// is reached; then both connections close (a dead link, as a phone
// losing coverage sees it once TCP gives up).
func (p *cutProxy) pipe(cc, sc net.Conn, plan *cutPlan) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			cc.Close()
			sc.Close()
		})
	}
	defer closeBoth()
	limit := func(toClient bool) int64 {
		if plan != nil && plan.toClient == toClient {
			return plan.after
		}
		return -1
	}
	done := make(chan struct{}, 2)
	p.record("--- new connection to %s, plan %+v", sc.RemoteAddr(), plan)
	cp := func(dst, src net.Conn, n int64, dir string) {
		defer func() { done <- struct{}{} }()
		w := io.MultiWriter(dst, recorder{p, dir})
		if n < 0 {
			io.Copy(w, src)
		} else {
			io.CopyN(w, src, n)
			p.cuts.Add(1)
			p.record("--- cut %s", dir)
		}
		closeBoth()
	}
	go cp(cc, sc, limit(true), "S:")
	go cp(sc, cc, limit(false), "C:")
	<-done
	<-done
}

func (p *cutProxy) record(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, fmt.Sprintf(format, args...))
	if len(p.log) > 400 {
		p.log = p.log[len(p.log)-300:]
	}
}

func (p *cutProxy) transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

type recorder struct {
	p   *cutProxy
	dir string
}

func (r recorder) Write(b []byte) (int, error) {
	r.p.record("%s %q", r.dir, b)
	return len(b), nil
}

// mutator changes the mailbox from another connection: flags, expunges
// and new messages, at random.
type mutator struct {
	c   *imapclient.Client
	rng *rand.Rand
	n   int // messages appended so far
}

func (m *mutator) step() error {
	res, err := m.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return err
	}
	uids := res.AllUIDs()
	switch k := m.rng.IntN(10); {
	case k < 5 && len(uids) > 0:
		u := uids[m.rng.IntN(len(uids))]
		flag := []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered, "$Label1"}[m.rng.IntN(4)]
		op := imap.StoreFlagsAdd
		if m.rng.IntN(2) == 0 {
			op = imap.StoreFlagsDel
		}
		return m.c.Store(imap.UIDSetNum(u), &imap.StoreFlags{Op: op, Flags: []imap.Flag{flag}, Silent: true}, nil).Close()
	case k < 7 && len(uids) > 20:
		u := uids[m.rng.IntN(len(uids))]
		if err := m.c.Store(imap.UIDSetNum(u), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
			return err
		}
		return m.c.UIDExpunge(imap.UIDSetNum(u)).Close()
	default:
		return m.append()
	}
}

func (m *mutator) append() error {
	m.n++
	body := fmt.Sprintf("Subject: chaos %d\r\nMessage-ID: <chaos-%d@test>\r\n\r\nbody %d\r\n", m.n, m.n, m.n)
	w := m.c.Append("INBOX", int64(len(body)), nil)
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_, err := w.Wait()
	return err
}

// TestReconnectChaos: 1,000 reconnect cycles through a proxy that cuts
// the TCP stream at random points, in either direction, while another
// connection changes the mailbox. After each cycle the client's state
// (UIDs and flags) equals the server's exactly.
func TestReconnectChaos(t *testing.T) {
	for _, tc := range []struct {
		force  client.Strategy
		cycles int
	}{
		{client.StrategyAuto, 1000}, // SID
		{client.StrategyQRESYNC, 300},
		{client.StrategyCONDSTORE, 300},
		{client.StrategyFull, 100},
	} {
		t.Run(tc.force.String(), func(t *testing.T) {
			cycles := tc.cycles
			if testing.Short() {
				cycles /= 10
			}
			runChaos(t, tc.force, cycles)
		})
	}
}

func runChaos(t *testing.T, force client.Strategy, cycles int) {
	env := imaptest.Start(t, nil)
	proxy := newCutProxy(t, env.Addr)

	mc, err := imapclient.DialInsecure(env.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if err := mc.Login(env.User, env.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	m := &mutator{c: mc, rng: rand.New(rand.NewPCG(seed, 1))}
	for range 40 {
		if err := m.append(); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 2))

	cl := client.New(client.Options{
		Addr:          env.Addr,
		Username:      env.User,
		Password:      env.Password,
		Timeout:       5 * time.Second,
		ForceStrategy: force,
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", proxy.l.Addr().String())
		},
	})
	ctx := context.Background()
	strategies := map[string]int{}
	failed := 0
	var slowest time.Duration
	for cycle := range cycles {
		start := time.Now()
		cl.Drop()
		// Changes while the client is away, and during its reconnect.
		for range rng.IntN(4) {
			if err := m.step(); err != nil {
				t.Fatalf("cycle %d: change: %v", cycle, err)
			}
		}
		if rng.IntN(10) < 7 {
			proxy.arm(&cutPlan{toClient: rng.IntN(3) > 0, after: rng.Int64N(3000)})
		}
		stop := make(chan struct{})
		mutErr := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					mutErr <- nil
					return
				default:
				}
				if err := m.step(); err != nil {
					mutErr <- err
					return
				}
				time.Sleep(time.Duration(rng2(seed, cycle)) * time.Microsecond)
			}
		}()
		// The first attempt may be cut; later ones run on a whole link.
		var res client.SyncResult
		for attempt := 0; ; attempt++ {
			res, err = cl.Sync(ctx)
			if err == nil {
				break
			}
			failed++
			if attempt == 5 {
				close(stop)
				<-mutErr
				t.Fatalf("cycle %d: sync keeps failing: %v", cycle, err)
			}
		}
		close(stop)
		if err := <-mutErr; err != nil {
			t.Fatalf("cycle %d: change: %v", cycle, err)
		}
		strategies[res.Strategy.String()]++
		// Quiet now: one more sync picks up what the mutator did during
		// the last one, then both sides must agree.
		// (The armed cut may land in this sync instead: the link dies
		// whenever it dies; the retry runs on a whole one.)
		if _, err := cl.Sync(ctx); err != nil {
			failed++
			if _, err := cl.Sync(ctx); err != nil {
				t.Fatalf("cycle %d: final sync: %v", cycle, err)
			}
		}
		want, err := serverMessages(mc)
		if err != nil {
			t.Fatalf("cycle %d: server state: %v", cycle, err)
		}
		got := cl.State().Messages
		if d := diffMessages(got, want); d != "" {
			t.Fatalf("cycle %d (seed %d): client state differs from the server's:\n%s\nrecent traffic:\n%s", cycle, seed, d, proxy.transcript())
		}
		if d := time.Since(start); d > slowest {
			slowest = d
			if d > time.Second {
				t.Logf("cycle %d took %v", cycle, d)
			}
		}
	}
	t.Logf("%d cycles, %d connections cut, %d failed syncs retried; strategies %v; slowest cycle %v", cycles, proxy.cuts.Load(), failed, strategies, slowest)
	if proxy.cuts.Load() < int64(cycles/3) {
		t.Errorf("only %d cuts in %d cycles: the proxy is not cutting", proxy.cuts.Load(), cycles)
	}
	want := force
	if want == client.StrategyAuto {
		want = client.StrategySID
	}
	if strategies[want.String()] < cycles/2 {
		t.Errorf("strategy %v used in only %d of %d cycles: %v", want, strategies[want.String()], cycles, strategies)
	}
}

// rng2 is a small per-cycle pause for the mutator (0-300 µs), derived
// without sharing the test's generator across goroutines.
func rng2(seed uint64, cycle int) int {
	return int((seed>>3 + uint64(cycle)*2654435761) % 300)
}

// serverMessages is the mailbox as the server has it, flags sorted and
// without \Recent.
func serverMessages(c *imapclient.Client) ([]client.Message, error) {
	res, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return nil, err
	}
	uids := res.AllUIDs()
	if len(uids) == 0 {
		return nil, nil
	}
	var set imap.UIDSet
	set.AddNum(uids...)
	bufs, err := c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return nil, err
	}
	out := make([]client.Message, 0, len(bufs))
	for _, b := range bufs {
		var fl []string
		for _, f := range b.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fl = append(fl, string(f))
			}
		}
		slices.Sort(fl)
		out = append(out, client.Message{UID: uint32(b.UID), Flags: fl})
	}
	slices.SortFunc(out, func(a, b client.Message) int { return int(a.UID) - int(b.UID) })
	return out, nil
}

func diffMessages(got, want []client.Message) string {
	norm := func(ms []client.Message) []string {
		var s []string
		for _, m := range ms {
			var fl []string
			for _, f := range m.Flags {
				if !strings.EqualFold(f, `\Recent`) {
					fl = append(fl, f)
				}
			}
			slices.Sort(fl)
			s = append(s, fmt.Sprintf("%d %v", m.UID, fl))
		}
		return s
	}
	g, w := norm(got), norm(want)
	if slices.Equal(g, w) {
		return ""
	}
	var b strings.Builder
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "  client %-30q server %q\n", gl, wl)
		}
	}
	return b.String()
}

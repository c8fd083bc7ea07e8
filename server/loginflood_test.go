package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// waitFor polls cond every 5 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// While 1,000 connections log in as unknown users at once, each one a
// bcrypt check at the production cost (the dummy hash is made with
// auth.Cost; tens of seconds of CPU in all on this size of machine), a
// login that hits the credential cache and a NOOP on a logged-in
// connection are answered at once: the flood queues at the bcrypt gate,
// they do not. Then the flood's clients hang up, and their logins leave
// the queue without costing a bcrypt check, which is also what keeps
// the test short.
func TestLoginFloodCacheHit(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections and real bcrypt; skipped with -short")
	}
	const flood = 1000
	// Both ends of every connection are in this process.
	if err := raiseFDLimit(2*flood + 200); err != nil {
		t.Skipf("cannot open %d sockets: %v", 2*flood, err)
	}
	env := imaptest.Start(t, func(o *server.Options) { o.FailedLoginDelay = time.Millisecond })

	// Before the flood: alice's password is verified once (cached), and
	// a connection is logged in, to send NOOPs during it.
	idle := env.DialLogin(t)
	if s := env.Server.AuthStats(); s.Cache.Users != 1 {
		t.Fatalf("after a login the cache holds %d accounts", s.Cache.Users)
	}

	type floodConn struct {
		nc net.Conn
		r  *bufio.Reader
	}
	conns := make([]floodConn, flood)
	var mu sync.Mutex
	var dialErr error
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				nc, err := net.Dial("tcp", env.Addr)
				if err == nil {
					nc.SetDeadline(time.Now().Add(time.Minute))
					r := bufio.NewReader(nc)
					var g string
					if g, err = r.ReadString('\n'); err == nil && !strings.HasPrefix(g, "* OK") {
						err = fmt.Errorf("greeting %q", g)
					}
					conns[i] = floodConn{nc, r}
				}
				if err != nil {
					mu.Lock()
					dialErr = err
					mu.Unlock()
				}
			}
		})
	}
	for i := range flood {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c.nc != nil {
				c.nc.Close()
			}
		}
	})
	if dialErr != nil {
		t.Skipf("cannot open %d connections: %v", flood, dialErr)
	}

	// All at once.
	before := env.Server.AuthStats()
	start := make(chan struct{})
	for i, c := range conns {
		wg.Go(func() {
			<-start
			io.WriteString(c.nc, fmt.Sprintf("f LOGIN nobody%d wrong\r\n", i))
		})
	}
	close(start)
	wg.Wait()
	gate := before.Slots
	if !waitFor(30*time.Second, func() bool {
		s := env.Server.AuthStats()
		return s.Waiting >= flood/2 && s.Running == gate
	}) {
		t.Fatalf("the flood did not queue: %+v", env.Server.AuthStats())
	}

	// During it.
	const rounds = 7
	var logins, noops []time.Duration
	for i := range rounds {
		// Spread over the flood: each round after more bcrypt checks
		// of it have begun.
		n := env.Server.AuthStats().Checks
		if !waitFor(30*time.Second, func() bool { return env.Server.AuthStats().Checks >= n+uint64(gate) }) {
			t.Fatalf("round %d: the flood makes no progress: %+v", i, env.Server.AuthStats())
		}
		t0 := time.Now()
		c := env.Dial(t)
		c.ExpectTagged("a", "LOGIN alice secret", "a OK")
		logins = append(logins, time.Since(t0))
		c.NC.Close()
		t0 = time.Now()
		idle.ExpectTagged(fmt.Sprint("n", i), "NOOP", fmt.Sprint("n", i, " OK"))
		noops = append(noops, time.Since(t0))
	}
	during := env.Server.AuthStats()
	t.Logf("during the flood (%d waiting, %d running, %d bcrypt checks done): connect+cached LOGIN %v, NOOP %v",
		during.Waiting, during.Running, during.Checks-before.Checks, logins, noops)
	if during.Waiting == 0 {
		t.Fatal("the flood was over before the measurements were")
	}
	if hits := during.Cache.Hits - before.Cache.Hits; hits != rounds {
		t.Errorf("%d cache hits for %d logins", hits, rounds)
	}
	// The middle of the samples: a bound for each one would also
	// measure the scheduling of the other programs on a shared machine.
	median := func(d []time.Duration) time.Duration { d = slices.Clone(d); slices.Sort(d); return d[len(d)/2] }
	if m := median(logins); m > 200*time.Millisecond {
		t.Errorf("cached login in %v (median), want under 200ms", m)
	}
	if m := median(noops); m > 50*time.Millisecond {
		t.Errorf("NOOP in %v (median), want under 50ms", m)
	}

	// The flood's clients hang up: their logins leave the queue.
	t0 := time.Now()
	for _, c := range conns {
		c.nc.Close()
	}
	if !waitFor(20*time.Second, func() bool { return env.Server.AuthStats().Waiting == 0 }) {
		t.Fatalf("logins of closed connections still queued: %+v", env.Server.AuthStats())
	}
	after := env.Server.AuthStats()
	t.Logf("the clients left: queue empty after %v; %d bcrypt checks for %d logins",
		time.Since(t0).Round(time.Millisecond), after.Checks-before.Checks, flood)
	if n := after.Checks - before.Checks; n >= flood/2 {
		t.Errorf("%d bcrypt checks: the logins of clients that left were checked anyway", n)
	}
}

// Logins waiting for a bcrypt slot when the server shuts down are answered
// NO [UNAVAILABLE] (the client may retry elsewhere or later), then BYE.
func TestLoginQueueShutdown(t *testing.T) {
	env := imaptest.Start(t, nil)
	// Between seeing the queue and the shutdown, each slot may take one
	// more waiter: queue Slots more than the 3 asserted.
	slots := env.Server.AuthStats().Slots
	n := 2*slots + 3
	var cs []*imaptest.Conn
	for i := range n {
		c := env.Dial(t)
		c.SendLine(fmt.Sprintf("f LOGIN nobody%d wrong", i))
		cs = append(cs, c)
	}
	if !waitFor(30*time.Second, func() bool { return env.Server.AuthStats().Waiting >= slots+3 }) {
		t.Fatalf("no login queued: %+v", env.Server.AuthStats())
	}
	go env.Server.Shutdown(context.Background())
	unavailable := 0
	for _, c := range cs {
		lines := c.ReadUntilTagged("f")
		if last := lines[len(lines)-1]; strings.HasPrefix(last, "f NO [UNAVAILABLE]") {
			unavailable++
		} else if !strings.HasPrefix(last, "f NO [AUTHENTICATIONFAILED]") {
			t.Errorf("LOGIN answered %q", last)
		}
		if l := c.ReadLine(); !strings.HasPrefix(l, "* BYE") {
			t.Errorf("after the answer: %q, want a BYE", l)
		}
	}
	if unavailable < 3 {
		t.Errorf("%d logins answered UNAVAILABLE, want the 3 or more that were queued", unavailable)
	}
}

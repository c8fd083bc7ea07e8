package server

import (
	"fmt"
	"testing"
	"time"
)

func TestLoginThrottleTable(t *testing.T) {
	th := newLoginThrottle(Options{
		LoginThrottleFailures: 3,
		LoginThrottleWindow:   time.Minute,
		LoginThrottleDelay:    time.Second,
		LoginThrottleMaxDelay: 5 * time.Second,
		loginThrottleMaxAddrs: 100,
	})
	now := time.Unix(1_000_000, 0)
	far := now.Add(time.Hour) // the connections' time to log in
	for range 3 {
		if d, _, _ := th.admit("a", now, far); d != 0 {
			t.Fatalf("delay %v before the third failure", d)
		}
		th.fail("a", now)
	}
	// Attempts answered one after the other: 1 s, then 2 s after that
	// (a failure in between), then capped at 5 s.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		d, n, _ := th.admit("a", now, far)
		if d != w || n != 3+i {
			t.Errorf("attempt %d: delay %v with %d failures, want %v with %d", i, d, n, w, 3+i)
		}
		now = now.Add(d)
		th.fail("a", now)
	}
	// Two attempts at once from a throttled address: the second waits
	// for the first.
	d1, _, _ := th.admit("a", now, far)
	d2, _, _ := th.admit("a", now, far)
	if d1 != 5*time.Second || d2 != 10*time.Second {
		t.Errorf("parallel attempts: %v and %v, want 5s and 10s", d1, d2)
	}
	// An attempt whose turn would come after its connection's time to
	// log in is refused and reserves nothing: attempts cut off before
	// their turn cannot push the address's next turn away.
	for range 100 {
		if d, _, ok := th.admit("a", now, now.Add(12*time.Second)); ok || d != 15*time.Second {
			t.Fatalf("attempt past its deadline: %v, ok %v", d, ok)
		}
	}
	if d, _, ok := th.admit("a", now, far); !ok || d != 15*time.Second {
		t.Errorf("after refusals: delay %v, ok %v; want 15s", d, ok)
	}
	// Another address is not slowed.
	if d, _, _ := th.admit("b", now, far); d != 0 {
		t.Errorf("another address delayed %v", d)
	}
	// After the window without failures (and the last reserved answer),
	// the count is forgotten.
	now = now.Add(10*time.Second + time.Minute + time.Second)
	if d, _, _ := th.admit("a", now, far); d != 0 {
		t.Errorf("delay %v after the window", d)
	}
	if th.size() != 0 {
		t.Errorf("%d addresses remembered after expiry", th.size())
	}
	// Bounded: many addresses keep at most maxAddrs records, the most
	// recent ones.
	for i := range 1000 {
		th.fail(fmt.Sprint("10.0.", i/256, ".", i%256), now)
	}
	if n := th.size(); n != 100 {
		t.Errorf("%d addresses remembered, want 100", n)
	}
	if _, ok := th.byKey["10.0.3.231"]; !ok {
		t.Error("the latest address was evicted")
	}
	if _, ok := th.byKey["10.0.0.0"]; ok {
		t.Error("the oldest address was kept")
	}
}

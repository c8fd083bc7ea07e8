package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// eventLog collects events from Run.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }

func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func instantSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func TestRunLiveUpdates(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(5)
	c := e.client(t, func(o *Options) { o.Backoff.Sleep = instantSleep })
	var log eventLog
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, log.add) }()
	waitFor(t, "initial sync", func() bool { return len(c.State().Messages) == 5 })

	e.raw.appendN(2)
	waitFor(t, "new messages", func() bool { return len(c.State().Messages) == 7 })
	e.raw.ok(`UID STORE 1 +FLAGS (\Seen)`)
	waitFor(t, "flag change", func() bool {
		m := c.State().Messages
		return len(m) > 0 && len(m[0].Flags) == 1
	})
	e.raw.ok(`UID STORE 2:3 +FLAGS (\Deleted)`)
	e.raw.ok(`EXPUNGE`)
	waitFor(t, "expunge", func() bool { return len(c.State().Messages) == 5 })
	checkState(t, c, e.raw)

	// A dropped connection is resumed with SID and changes made
	// meanwhile arrive.
	sid := c.State().SessionID
	c.Drop()
	e.raw.appendN(1)
	waitFor(t, "resume", func() bool { return len(c.State().Messages) == 6 })
	if c.State().SessionID != sid {
		t.Errorf("session changed across a drop: %q → %q", sid, c.State().SessionID)
	}
	e.raw.ok(`UID STORE 4 -FLAGS (\Seen)`)
	e.raw.ok(`UID STORE 4 +FLAGS (\Answered)`)
	waitFor(t, "flag after resume", func() bool {
		st := c.State()
		i, ok := st.find(4)
		return ok && len(st.Messages[i].Flags) == 1 && st.Messages[i].Flags[0] == `\Answered`
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	checkState(t, c, e.raw)
	var nw, van, fl int
	for _, ev := range log.snapshot() {
		switch ev := ev.(type) {
		case NewMessages:
			nw += len(ev.Messages)
		case Vanished:
			van += len(ev.UIDs)
		case FlagsChanged:
			fl++
		}
	}
	if nw != 8 || van != 2 {
		t.Errorf("events: %d new, %d vanished, %d flag changes: %v", nw, van, fl, log.snapshot())
	}
	// After Run, Close logs out preserving the session.
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestDeletedSIDWhileRunning(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(3)
	c := e.client(t, func(o *Options) { o.Backoff.Sleep = instantSleep })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil) }()
	waitFor(t, "initial sync", func() bool { return c.State().SessionID != "" && len(c.State().Messages) == 3 })
	st := c.State()
	// Another connection resumes the same session: the running client
	// gets DELETEDSID (reconnect draft §5.3).
	other := dialRaw(t, e.env.Addr, e.env.User, e.env.Password)
	lines := other.ok("SID " + st.SessionID + " " + itoa(st.UIDValidity) + " " + itoa64(st.HighestModSeq))
	t.Logf("takeover: %q", lines)
	waitFor(t, "DELETEDSID", func() bool { return c.State().SessionID == "" })
	cancel()
	<-done
	c.Drop()
	res := mustSync(t, c)
	if res.Strategy != StrategyQRESYNC {
		t.Errorf("after DELETEDSID: %v %v, want QRESYNC", res.Strategy, res.Fallbacks)
	}
	if sid := c.State().SessionID; sid == "" || sid == st.SessionID {
		t.Errorf("new session id %q (old %q)", sid, st.SessionID)
	}
	checkState(t, c, e.raw)
}

func TestBackoffTiming(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(1)
	d := &dropDialer{addr: e.env.Addr, fail: 4}
	var mu sync.Mutex
	var sleeps []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	c := e.client(t, func(o *Options) {
		o.Dial = d.dial
		o.Backoff = Backoff{
			Initial: 100 * time.Millisecond, Max: 500 * time.Millisecond, Multiplier: 2,
			Rand: func() float64 { return 0.5 }, Jitter: 0.2,
			Sleep: func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				sleeps = append(sleeps, d)
				mu.Unlock()
				return ctx.Err()
			},
		}
	})
	err := c.Run(ctx, func(Event) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	// 100, 200, 400, 500 (capped) ms, each less 10% (jitter 0.2 × 0.5).
	want := []time.Duration{90 * time.Millisecond, 180 * time.Millisecond, 360 * time.Millisecond, 450 * time.Millisecond}
	mu.Lock()
	defer mu.Unlock()
	if len(sleeps) != len(want) {
		t.Fatalf("sleeps %v, want %v", sleeps, want)
	}
	for i := range want {
		if sleeps[i] != want[i] {
			t.Errorf("sleep %d: %v, want %v", i, sleeps[i], want[i])
		}
	}
	if d.dials != 5 {
		t.Errorf("%d dials, want 5", d.dials)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Rand: func() float64 { return 0 }}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := b.Delay(i); got != want {
			t.Errorf("Delay(%d) = %v, want %v", i, got, want)
		}
	}
	if got := b.Delay(1000); got != 5*time.Minute {
		t.Errorf("Delay(1000) = %v, want the cap", got)
	}
	b.Rand = func() float64 { return 0.999 }
	if got := b.Delay(0); got < 500*time.Millisecond || got > time.Second {
		t.Errorf("jittered Delay(0) = %v", got)
	}
}

func TestAuthErrorStopsRun(t *testing.T) {
	e := startEnv(t)
	c := e.client(t, func(o *Options) { o.Password = "nope"; o.Backoff.Sleep = instantSleep })
	err := c.Run(context.Background(), nil)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("Run: %v, want AuthError", err)
	}
}

package client

import (
	"context"
	"slices"
	"testing"

	"github.com/quickimap/quickimap/internal/dovecottest"
)

// The strategies against Dovecot, which has QRESYNC and CONDSTORE but not
// the reconnect draft. Skipped when Dovecot is not installed.

func startDovecot(t *testing.T) *testEnv {
	d := dovecottest.Start(t)
	return newTestEnv(t, d.Addr, d.User, d.Password)
}

func TestDovecotStrategies(t *testing.T) {
	for _, tc := range []struct {
		force Strategy
		want  Strategy
	}{
		{StrategyAuto, StrategyQRESYNC},
		{StrategyQRESYNC, StrategyQRESYNC},
		{StrategyCONDSTORE, StrategyCONDSTORE},
		{StrategyFull, StrategyFull},
	} {
		t.Run(tc.force.String(), func(t *testing.T) {
			e, c := setupOn(t, startDovecot(t), tc.force, 10)
			if c.State().SessionID != "" {
				t.Error("a session id from a server without SID")
			}
			e.mutate(t)
			res := mustSync(t, c)
			if res.Strategy != tc.want || len(res.Fallbacks) != 0 {
				t.Errorf("strategy %v (fallbacks %v), want %v", res.Strategy, res.Fallbacks, tc.want)
			}
			if res.RoundTrips != 1 {
				t.Errorf("%d round trips, want 1", res.RoundTrips)
			}
			checkState(t, c, e.raw)
			c.Drop()
			res = mustSync(t, c)
			if len(res.Events) != 0 {
				t.Errorf("events without changes: %v", res.Events)
			}
			checkState(t, c, e.raw)
		})
	}
}

// Stale stored capabilities claim SID: the pipelined SID is refused (BAD)
// and the client falls back to QRESYNC.
func TestDovecotSIDFallsBack(t *testing.T) {
	e, c := setupOn(t, startDovecot(t), StrategyAuto, 5)
	ctx := context.Background()
	st, _ := e.store.Load(ctx)
	st.SessionID = "stale"
	st.Capabilities = append(st.Capabilities, capReconnect)
	slices.Sort(st.Capabilities)
	e.store.Save(ctx, st)
	c2 := e.client(t, nil)
	e.mutate(t)
	res := mustSync(t, c2)
	if res.Strategy != StrategyQRESYNC || !slices.Equal(res.Fallbacks, []Strategy{StrategySID}) {
		t.Errorf("strategy %v fallbacks %v, want QRESYNC after SID", res.Strategy, res.Fallbacks)
	}
	if st2 := c2.State(); st2.SessionID != "" || st2.hasCap(capReconnect) {
		t.Errorf("session %q caps %v after fallback", st2.SessionID, st2.Capabilities)
	}
	checkState(t, c2, e.raw)
	_ = c
}

func TestDovecotRunLive(t *testing.T) {
	e := startDovecot(t)
	e.raw.appendN(3)
	c := e.client(t, func(o *Options) { o.Backoff.Sleep = instantSleep })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil) }()
	waitFor(t, "initial sync", func() bool { return len(c.State().Messages) == 3 })
	e.raw.appendN(2)
	waitFor(t, "new messages", func() bool { return len(c.State().Messages) == 5 })
	e.raw.ok(`UID STORE 1:2 +FLAGS (\Deleted)`)
	e.raw.ok(`EXPUNGE`)
	waitFor(t, "expunge", func() bool { return len(c.State().Messages) == 3 })
	e.raw.ok(`UID STORE 3 +FLAGS (\Seen)`)
	waitFor(t, "flags", func() bool { m := c.State().Messages; return len(m) == 3 && len(m[0].Flags) == 1 })
	cancel()
	<-done
	checkState(t, c, e.raw)
	if err := c.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

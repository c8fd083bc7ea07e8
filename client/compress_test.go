package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// With Compress, the client turns COMPRESS=DEFLATE on after login: on
// the first connection after AUTHENTICATE's capabilities, on a resume
// pipelined with AUTHENTICATE (one more round trip than without: the SID
// waits for COMPRESS's answer, RFC 4978 §3). The state stays right.
func TestCompressSyncAndResume(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(8)
	c := e.client(t, func(o *Options) { o.Compress = true })
	res := mustSync(t, c)
	if !c.cn.compressed {
		t.Fatal("first connection not compressed")
	}
	checkState(t, c, e.raw)
	c.Drop()
	e.mutate(t)
	res = mustSync(t, c)
	if res.Strategy != StrategySID || !c.cn.compressed {
		t.Fatalf("resume: strategy %v, compressed %v", res.Strategy, c.cn.compressed)
	}
	if res.RoundTrips != 2 {
		t.Errorf("compressed SID resume took %d round trips, want 2", res.RoundTrips)
	}
	checkState(t, c, e.raw)
	// A plain NOOP on the synchronized, compressed connection.
	if res = mustSync(t, c); res.Strategy != StrategyNoop {
		t.Errorf("third sync: %v", res.Strategy)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
}

// Run's IDLE on a compressed connection: updates arrive, and IDLE's
// refresh (a read deadline that expires) leaves the stream readable.
func TestCompressRunIdle(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(3)
	c := e.client(t, func(o *Options) {
		o.Compress = true
		o.IdleRefresh = 200 * time.Millisecond
		o.Backoff.Sleep = instantSleep
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var log eventLog
	go func() { done <- c.Run(ctx, log.add) }()
	waitFor(t, "initial sync", func() bool { return len(c.State().Messages) == 3 })
	for i := range 3 {
		e.raw.appendN(1)
		waitFor(t, "new message", func() bool { return len(c.State().Messages) == 4+i })
		// Let IDLE's refresh deadline pass at least once.
		time.Sleep(250 * time.Millisecond)
	}
	e.raw.ok(`UID STORE 1 +FLAGS (\Seen)`)
	waitFor(t, "flag change", func() bool {
		m := c.State().Messages
		return len(m) > 0 && len(m[0].Flags) == 1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if !c.cn.compressed {
		t.Error("Run's connection was not compressed")
	}
	checkState(t, c, e.raw)
}

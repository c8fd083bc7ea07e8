package client

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/quickimap/quickimap/wire"
)

// liveCtx collects the events of live updates (after a Sync, while Run
// stays connected).
type liveCtx struct {
	needFetch bool // EXISTS announced messages the client has no UID for
	events    []Event
}

// emit records an event of a live update; during a Sync events are
// computed by comparing the states instead (diffEvents).
func (c *Client) emit(ev Event) {
	if c.live != nil {
		c.live.events = append(c.live.events, ev)
	}
}

// mergeEvents joins consecutive NewMessages and Vanished events.
func mergeEvents(evs []Event) []Event {
	var out []Event
	for _, ev := range evs {
		if n := len(out); n > 0 {
			switch e := ev.(type) {
			case NewMessages:
				if p, ok := out[n-1].(NewMessages); ok {
					p.Messages = append(p.Messages, e.Messages...)
					out[n-1] = p
					continue
				}
			case Vanished:
				if p, ok := out[n-1].(Vanished); ok {
					p.UIDs = append(p.UIDs, e.UIDs...)
					out[n-1] = p
					continue
				}
			}
		}
		out = append(out, ev)
	}
	return out
}

// catchUp fetches the messages announced by EXISTS (their UIDs and
// flags), checks the count, and saves the state when it changed.
func (c *Client) catchUp(ctx context.Context) error {
	if c.live.needFetch {
		c.live.needFetch = false
		from := uint32(1)
		if n := len(c.st.Messages); n > 0 {
			from = c.st.Messages[n-1].UID + 1
		}
		if from < c.st.UIDNext {
			from = c.st.UIDNext
		}
		// "from:*" also returns the last message when none is above
		// from (RFC 3501 §6.4.8); it is simply known already.
		if err := c.simple(ctx, "UID FETCH", func(e *wire.Encoder) {
			e.Atom("UID FETCH ").Atom(strconv.FormatUint(uint64(from), 10)).Atom(":* (FLAGS)")
		}); err != nil {
			return err
		}
	}
	// The live EXPUNGEs and FETCHes keep the sequence→UID map only while
	// it matches the server's; repair it as soon as the counts disagree.
	if err := c.reconcile(ctx); err != nil {
		return err
	}
	if n := len(c.st.Messages); n > 0 && c.st.Messages[n-1].UID >= c.st.UIDNext {
		c.st.UIDNext = c.st.Messages[n-1].UID + 1
		c.dirty = true
	}
	if c.dirty {
		c.save(ctx)
	}
	return nil
}

// deliver hands the collected live events to fn.
func (c *Client) deliver(fn func(Event)) {
	evs := mergeEvents(c.live.events)
	c.live.events = nil
	if fn == nil {
		return
	}
	for _, ev := range evs {
		fn(ev)
	}
}

// Run keeps the mailbox synchronized until ctx is done: it syncs,
// reports the events to fn, stays connected (IDLE when the server has it,
// RFC 2177; else a NOOP every PollInterval) applying live updates, and
// reconnects with exponential backoff when the connection fails. It
// returns ctx's error, or an *AuthError or *MailboxError, which retrying
// would not fix. After Run returns because ctx was done, the connection
// is left open (not in IDLE) for Close.
func (c *Client) Run(ctx context.Context, fn func(Event)) error {
	attempt := 0
	for {
		res, err := c.Sync(ctx)
		if err == nil {
			attempt = 0
			for _, ev := range res.Events {
				if fn != nil {
					fn(ev)
				}
			}
			err = c.stay(ctx, fn)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ae *AuthError
		var me *MailboxError
		if errors.As(err, &ae) || errors.As(err, &me) {
			c.closeConn()
			return err
		}
		c.closeConn()
		d := c.opts.Backoff.Delay(attempt)
		attempt++
		c.opts.Logger.Info("connection lost, reconnecting", "err", err, "in", d, "attempt", attempt)
		if err := c.opts.Backoff.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// stay applies live updates on the synchronized connection until an
// error or ctx is done.
func (c *Client) stay(ctx context.Context, fn func(Event)) error {
	c.live = &liveCtx{}
	defer func() { c.live = nil }()
	stop := watchContext(ctx, c.cn)
	defer stop()
	for {
		if err := c.catchUp(ctx); err != nil {
			return err
		}
		c.deliver(fn)
		var err error
		if c.cn.hasCap("IDLE") {
			err = c.idle(ctx, fn)
		} else {
			err = c.poll(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// poll waits PollInterval, then sends NOOP.
func (c *Client) poll(ctx context.Context) error {
	if err := c.opts.Backoff.sleep(ctx, c.opts.PollInterval); err != nil {
		return err
	}
	return c.simple(ctx, "NOOP", func(e *wire.Encoder) { e.Atom("NOOP") })
}

// idle runs one IDLE (RFC 2177) until new messages need fetching, the
// refresh interval passes, or ctx is done.
func (c *Client) idle(ctx context.Context, fn func(Event)) error {
	cn := c.cn
	tag, err := c.queue(ctx, func(e *wire.Encoder) { e.Atom("IDLE") })
	if err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.waitContinuation(ctx, tag); err != nil {
		return err
	}
	deadline := time.Now().Add(c.opts.IdleRefresh)
	for !c.live.needFetch {
		cn.nc.SetReadDeadline(deadline)
		if ctx.Err() != nil {
			break
		}
		// Wait for the first byte without consuming anything, so that a
		// timeout never cuts a response in half.
		if _, err := cn.br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !cn.dropped.Load() {
				break
			}
			return c.ctxErr(ctx, err)
		}
		resp, err := c.readResponse(ctx)
		if err != nil {
			return err
		}
		if err := c.dispatch(resp); err != nil {
			return err
		}
		if cn.br.Buffered() == 0 {
			if c.dirty && !c.live.needFetch {
				c.save(ctx)
			}
			c.deliver(fn)
		}
	}
	// DONE ends the IDLE (RFC 2177 §3). When ctx is done this still
	// runs, with a short deadline, so the connection is left usable.
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), min(c.opts.Timeout, 5*time.Second))
		defer cancel()
		cn.nc.SetDeadline(time.Time{})
	}
	cn.bw.WriteString("DONE\r\n")
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.waitOK(wctx, tag, "IDLE"); err != nil {
		return err
	}
	return ctx.Err()
}

// Close ends the connection: LOGOUT (PRESERVE) when a session is held,
// so that it stays resumable (reconnect draft §4: "it SHOULD use LOGOUT
// (PRESERVE) instead of just dropping the TCP connection"), else a plain
// LOGOUT. The state is saved.
func (c *Client) Close(ctx context.Context) error {
	defer func() {
		c.closeConn()
		if c.loaded {
			c.save(ctx)
		}
	}()
	cn := c.cn
	if cn == nil || cn.dropped.Load() {
		return nil
	}
	stop := watchContext(ctx, cn)
	defer stop()
	preserve := c.st.SessionID != ""
	cn.loggedOut = true
	return c.simple(ctx, "LOGOUT", func(e *wire.Encoder) {
		e.Atom("LOGOUT")
		if preserve {
			e.Atom(" (PRESERVE)")
		}
	})
}

// Backoff is the reconnection schedule of Run: the n-th consecutive
// failure (from 0) waits Initial·Multiplier^n, at most Max, of which a
// random fraction up to Jitter is taken off so that many clients cut off
// together do not come back together.
type Backoff struct {
	Initial    time.Duration // default 1s
	Max        time.Duration // default 5m
	Multiplier float64       // default 2
	Jitter     float64       // 0..1, default 0.5; negative for none
	// Rand returns a number in [0,1); default math/rand/v2.Float64.
	Rand func() float64
	// Sleep waits d or until ctx is done; default a timer. Tests inject
	// a fake clock here.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Delay is the wait before reconnection attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	initial, maxD, mult, jitter := b.Initial, b.Max, b.Multiplier, b.Jitter
	if initial <= 0 {
		initial = time.Second
	}
	if maxD <= 0 {
		maxD = 5 * time.Minute
	}
	if mult < 1 {
		mult = 2
	}
	if jitter == 0 {
		jitter = 0.5
	}
	jitter = max(0, min(jitter, 1))
	d := float64(initial) * math.Pow(mult, float64(n))
	if d > float64(maxD) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(maxD)
	}
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return time.Duration(d * (1 - jitter*r()))
}

func (b Backoff) sleep(ctx context.Context, d time.Duration) error {
	if b.Sleep != nil {
		return b.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

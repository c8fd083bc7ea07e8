package server

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// authGate bounds the bcrypt checks that run at once (see authSlots), so
// that a flood of logins that miss the credential cache (wrong passwords,
// unknown users, a crowd after an outage or a restart) queues here while
// logins that hit the cache and every other command go on: without it, a
// thousand bcrypt goroutines share the CPUs with everything else and a
// NOOP waits behind all of them.
//
// The queue has no length bound of its own. One connection runs one
// command at a time, so it holds at most max-connections waiters, and a
// waiter leaves it when its client goes away (see peerContext) or the
// server shuts down. Answering NO [UNAVAILABLE] past some length was
// considered and rejected: under a sustained flood the queue stays long,
// so a legitimate login that misses the cache would be refused every
// time it tried, a lottery against the flood, where a FIFO queue (a Go
// channel's blocked senders are served in order) serves it after the
// logins ahead of it. Bounding what one client address may queue is for
// a per-address limit, not this gate.
type authGate struct {
	slots   chan struct{}
	waiting atomic.Int64
	checks  atomic.Uint64
}

// authSlots is the size of the gate for procs CPUs (GOMAXPROCS: the CPUs
// Go runs on, which since Go 1.25 follows a container's CPU limit, where
// NumCPU does not): one fewer, at least one. With a slot per CPU, every
// CPU can be inside bcrypt, and a goroutine woken for a NOOP or a cached
// login waits for the scheduler to preempt one (it does so after 10 ms
// of running) at each step of its work: measured on 2 CPUs during a
// flood, a NOOP took 20-60 ms and a connect with a cached login 35-125
// ms. With one CPU kept out of bcrypt they took 0.05 ms and 0.6 ms. The
// price is bcrypt throughput when every login misses (after a restart
// the cache is empty): half on 2 CPUs, an eighth on 8.
func authSlots(procs int) int { return max(1, procs-1) }

func newAuthGate(n int) *authGate {
	return &authGate{slots: make(chan struct{}, max(n, 1))}
}

// tryAcquire takes a slot if one is free.
func (g *authGate) tryAcquire() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// acquire waits for a slot until ctx is done.
func (g *authGate) acquire(ctx context.Context) error {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (g *authGate) release() { <-g.slots }

// gated runs check in a slot of the gate, waiting for one as long as the
// client is connected and the server is not shutting down. It returns
// the error that ended the wait otherwise: the client's read error, or
// errClosing.
func (c *conn) gated(check func() bool) (bool, error) {
	g := c.s.gate
	if !g.tryAcquire() {
		ctx, stop := c.peerContext()
		err := g.acquire(ctx)
		stop()
		if err != nil {
			return false, err
		}
	}
	defer g.release()
	g.checks.Add(1)
	return check(), nil
}

// peerContext returns a context that ends when the client closes the
// connection (or it fails) or the server shuts down, with the cause. It
// watches the connection by peeking a byte from the read buffer on
// another goroutine; stop ends that watch, and must be called before the
// connection is read again. A byte that arrives (a pipelined command)
// stays buffered for the next command and ends the watch: the client is
// there.
func (c *conn) peerContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(c.s.ctx)
	// The command has been read: the minimum rate no longer applies,
	// and the watch below reads on another goroutine.
	c.nc.rate.stop()
	if c.br.Buffered() > 0 {
		return ctx, func() { cancel(nil) }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, err := c.br.Peek(1)
			if err == nil || c.nc.halt.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !c.closing.Load() {
				// The read timeout set for the client's silence: the
				// client is waiting for us, not silent. (The end of the
				// time to log in is a limitError, not a timeout: it
				// ends the wait.)
				continue
			}
			cancel(err)
			return
		}
	}()
	return ctx, func() {
		// Wake the Peek with a past deadline; halt keeps a Read that
		// starts after this from setting a fresh one (see
		// deadlineConn.Read). bufio.Reader.Peek returns the timeout
		// without keeping it, so the next read proceeds normally.
		c.nc.halt.Store(true)
		c.nc.Conn.SetReadDeadline(time.Now())
		<-done
		c.nc.halt.Store(false)
		cancel(nil)
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Every command runs under its connection's context, conn.ctx, in the
// manner of net/http: it derives from the Server's base context and ends
//
//   - when the connection ends;
//   - when Shutdown's own context ends (the base context's cause is then
//     errShutdownDeadline);
//   - when the client goes away while a command runs: the peer watch
//     below sees the connection's read side fail (EOF, reset) and cancels
//     it with errClientGone.
//
// Store calls take it, so a query in progress is interrupted, and SEARCH
// checks it as it goes (searchBudget). A cancelled connection ends after
// its command: nothing is left to serve.

// writeContext is the context of a store write: the connection's, except
// that a write that has begun is not cancelled. A write is refused when
// the context has already ended (the store checks before it starts); one
// in progress runs to its end: it is short (one fsync, shared by group
// commit), its outcome is what the client finds when it comes back, and
// a context that can end costs the SQLite driver a goroutine per
// statement (UID STORE of one flag: 85 µs of CPU, 160 µs under the
// connection's context).
func (c *conn) writeContext() context.Context {
	if c.ctx.Err() != nil {
		return c.ctx
	}
	return c.wctx
}

// errClientGone is the cause of a connection context cancelled because
// the client closed the connection (or it failed) during a command.
var errClientGone = errors.New("client went away during the command")

// peerWatchDelay is how long a command runs before a watch for its client
// going away starts. Most commands end well within it and never pay for
// the watch (a goroutine and two deadline changes); a command that takes
// longer (a SEARCH of the message text, a large FETCH, a login waiting
// for a bcrypt slot) is cancelled within this much of the client leaving.
const peerWatchDelay = 25 * time.Millisecond

// peerWatch is the watch for the client going away during one command
// (see commandContext). It exists only while a command that asked for it
// runs: an idle connection holds none.
type peerWatch struct {
	c     *conn
	timer *time.Timer // runs run after peerWatchDelay

	mu sync.Mutex
	// stopped: the command returned (stopWatch began); run must not start.
	stopped bool
	// running: run is reading; done is closed when it stops.
	running bool
	done    chan struct{}
}

// commandContext returns the context for the work of the command being
// run, c.ctx, and arms the watch for the client going away: past
// peerWatchDelay, another goroutine peeks at the connection's read side
// until the command ends. Commands that may run long call it (a SEARCH
// that reads messages, a FETCH or COPY of several, SELECT, APPEND, a
// login waiting for a bcrypt slot or the throttle); the others use c.ctx, which the watch
// would not make worth its cost (a timer per command). It must be called
// only once the command's input has been read entirely: nothing may read
// the connection until the command returns (readCommand stops the watch
// then).
func (c *conn) commandContext() context.Context {
	if c.watch != nil || c.br == nil {
		return c.ctx
	}
	// The command has been read: the minimum rate (slowclient.go) no
	// longer applies, and the watch reads on another goroutine.
	c.nc.rate.stop()
	w := &peerWatch{c: c}
	c.watch = w
	// run takes the lock before anything else: so it sees the
	// connection as this goroutine left it (c.br).
	w.mu.Lock()
	w.timer = time.AfterFunc(peerWatchDelay, w.run)
	w.mu.Unlock()
	return c.ctx
}

// run peeks a byte from the read buffer until one arrives (a pipelined
// command: the client is there, and the byte stays buffered for the next
// command), the read fails (the client is gone: the connection's context
// is cancelled), or stopWatch halts it.
func (w *peerWatch) run() {
	c := w.c
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.done = make(chan struct{})
	defer close(w.done)
	w.mu.Unlock()
	if c.br.Buffered() > 0 {
		return
	}
	for {
		_, err := c.br.Peek(1)
		if err == nil || c.nc.halt.Load() {
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if c.closing.Load() {
				// Shutdown woke the reads: the command may finish
				// until Shutdown's deadline cancels the base context.
				return
			}
			// The read timeout set for the client's silence: the
			// client is waiting for us, not silent. (The end of the
			// time to log in is a limitError, not a timeout: it ends
			// the command's work too.)
			continue
		}
		c.cancel(fmt.Errorf("%w: %w", errClientGone, err))
		return
	}
}

// stopWatch ends the watch of the command that has just returned, before
// the connection is read again.
func (c *conn) stopWatch() {
	w := c.watch
	if w == nil {
		return
	}
	c.watch = nil
	w.timer.Stop()
	w.mu.Lock()
	w.stopped = true
	running, done := w.running, w.done
	w.mu.Unlock()
	if !running {
		return
	}
	// Wake the Peek with a past deadline; halt keeps a Read that starts
	// after this from setting a fresh one (see deadlineConn.Read).
	// bufio.Reader.Peek returns the timeout without keeping it, so the
	// next read proceeds normally.
	c.nc.halt.Store(true)
	c.nc.Conn.SetReadDeadline(time.Now())
	<-done
	c.nc.halt.Store(false)
}

// errConnEnded is the cause of the context of a connection that ended.
var errConnEnded = errors.New("connection ended")

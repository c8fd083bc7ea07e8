package server

import (
	"context"
	"errors"
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

// errClientGone is the cause of a connection context cancelled because
// the client closed the connection (or it failed) during a command.
var errClientGone = errors.New("client went away during the command")

// peerWatchDelay is how long a command runs before a watch for its client
// going away starts. Most commands end well within it and never pay for
// the watch (a goroutine and two deadline changes); a command that takes
// longer (a SEARCH of the message text, a large FETCH, a login waiting
// for a bcrypt slot) is cancelled within this much of the client leaving.
const peerWatchDelay = 25 * time.Millisecond

// peerWatch is the state of a connection's watch for its client going
// away during the command in progress (see commandContext).
type peerWatch struct {
	// armed: the command asked for the watch (connection goroutine only).
	armed bool
	timer *time.Timer // runs watchPeer after peerWatchDelay

	mu sync.Mutex
	// wanted: the watch may start (false once stopWatch began).
	wanted bool
	// running: watchPeer is reading; done is closed when it stops.
	running bool
	done    chan struct{}
}

// commandContext returns the context for the work of the command being
// run, c.ctx, and arms the watch for the client going away: past
// peerWatchDelay, another goroutine peeks at the connection's read side
// until the command ends. It must be called only once the command's
// input has been read entirely: nothing may read the connection until
// the command returns (readCommand stops the watch then).
func (c *conn) commandContext() context.Context {
	w := &c.watch
	if w.armed || c.br == nil {
		return c.ctx
	}
	w.armed = true
	w.mu.Lock()
	w.wanted = true
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(peerWatchDelay, c.watchPeer)
	} else {
		w.timer.Reset(peerWatchDelay)
	}
	return c.ctx
}

// watchPeer peeks a byte from the read buffer until one arrives (a
// pipelined command: the client is there, and the byte stays buffered
// for the next command), the read fails (the client is gone: c.ctx is
// cancelled), or stopWatch halts it.
func (c *conn) watchPeer() {
	w := &c.watch
	w.mu.Lock()
	if !w.wanted || w.running {
		w.mu.Unlock()
		return
	}
	w.running = true
	done := make(chan struct{})
	w.done = done
	w.mu.Unlock()
	defer close(done)
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
			// client is waiting for us, not silent.
			continue
		}
		c.cancel(errClientGone)
		return
	}
}

// stopWatch ends the watch of the command that has just returned, before
// the connection is read again.
func (c *conn) stopWatch() {
	w := &c.watch
	if !w.armed {
		return
	}
	w.armed = false
	w.timer.Stop()
	w.mu.Lock()
	w.wanted = false
	running, done := w.running, w.done
	w.running, w.done = false, nil
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

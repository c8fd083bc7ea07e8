package server

import (
	"errors"
	"strings"
	"time"
)

// idling is an IDLE command in progress (RFC 2177).
type idling struct {
	tag string
	// end is when the client must have sent DONE: the autologout timer
	// runs from the start of IDLE (RFC 2177: clients re-issue IDLE at
	// least every 29 minutes).
	end time.Time
	// keepalive is when the next "* OK Still here" goes out.
	keepalive time.Time
}

// cmdIdle implements IDLE (RFC 2177): updates are pushed as they happen
// until the client sends DONE. It only sends the continuation and puts
// the connection in the idling state; the connection's loop then waits
// (on a fresh goroutine, see loop), woken by the selected mailbox's
// changes through c.waker, and reads DONE in idleDone. One goroutine, no
// timer and no buffer per idling connection. Keepalives are rare on
// purpose: a phone's radio wakes for each one.
func (c *conn) cmdIdle(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	c.enc.Plus().Text("idling").CRLF()
	now := time.Now()
	c.idle = &idling{
		tag:       tag,
		end:       now.Add(c.s.opts.AutoLogoutTimeout),
		keepalive: now.Add(c.s.opts.IdleKeepalive),
	}
	c.nc.readTimeout.Store(int64(c.s.opts.AutoLogoutTimeout))
	if c.view != nil {
		c.view.SetWaker(&c.waker)
	}
	// Changes made since the last report go out with the continuation:
	// the waker was not watching for them.
	c.idleReport()
	return nil, nil
}

// idleReport sends what changed while idling.
func (c *conn) idleReport() {
	if c.view != nil {
		c.reportUpdates(true)
	}
	c.noteLostSession()
}

// idleKeepalive sends the keepalive due at now.
func (c *conn) idleKeepalive(now time.Time) {
	c.enc.Star().Atom("OK").SP().Text("Still here").CRLF()
	c.idle.keepalive = now.Add(c.s.opts.IdleKeepalive)
}

var errIdleBadLine = errors.New("IDLE: expected DONE")

// idleDone reads the line that ends IDLE and completes the command. Once
// the line has begun, changes wait for it: they go out before the tagged
// response.
func (c *conn) idleDone() bool {
	st := c.idle
	line, err := c.dec.Line()
	if err == nil && !strings.EqualFold(strings.TrimSpace(line), "DONE") {
		err = errIdleBadLine
	}
	c.endIdle()
	if errors.Is(err, errIdleBadLine) {
		return c.complete(st.tag, true, bad("Expected DONE to end IDLE"))
	}
	if err != nil {
		return c.commandError(st.tag, err)
	}
	return c.complete(st.tag, true, ok("IDLE terminated"))
}

// endIdle leaves the idling state.
func (c *conn) endIdle() {
	if c.idle == nil {
		return
	}
	c.idle = nil
	if c.view != nil {
		c.view.SetWaker(nil)
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

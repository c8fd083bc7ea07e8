package server

import (
	"errors"
	"strings"
	"time"
)

var errIdleBadLine = errors.New("IDLE: expected DONE")

// cmdIdle implements IDLE (RFC 2177): updates are pushed as they happen
// until the client sends DONE. The only extra goroutine is the one blocked
// reading DONE; it ends with the command. Keepalives are rare on purpose:
// a phone's radio wakes for each one.
func (c *conn) cmdIdle(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	c.enc.Plus().Text("idling").CRLF()
	if err := c.enc.Flush(); err != nil {
		return nil, err
	}
	c.nc.readTimeout.Store(int64(c.s.opts.AutoLogoutTimeout))
	done := make(chan error, 1)
	go func() {
		line, err := c.dec.Line()
		if err == nil && !strings.EqualFold(strings.TrimSpace(line), "DONE") {
			err = errIdleBadLine
		}
		done <- err
	}()
	keepalive := time.NewTimer(c.s.opts.IdleKeepalive)
	defer keepalive.Stop()
	var notify <-chan struct{}
	if c.view != nil {
		notify = c.view.Notify()
	}
	for {
		if c.view != nil {
			c.reportUpdates(true)
		}
		c.noteLostSession()
		if err := c.enc.Flush(); err != nil {
			return nil, err
		}
		select {
		case err := <-done:
			if errors.Is(err, errIdleBadLine) {
				return bad("Expected DONE to end IDLE"), nil
			}
			if err != nil {
				return nil, err
			}
			return ok("IDLE terminated"), nil
		case <-notify:
		case <-c.wake:
		case <-keepalive.C:
			c.enc.Star().Atom("OK").SP().Text("Still here").CRLF()
			if err := c.enc.Flush(); err != nil {
				return nil, err
			}
			keepalive.Reset(c.s.opts.IdleKeepalive)
		}
	}
}

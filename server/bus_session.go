package server

import (
	"context"

	"github.com/quickimap/quickimap/bus"
)

// sessionTaken handles a bus.SessionTaken hint: another node resumed the
// session (h.User, h.Session) and raised its generation to h.Generation.
// The connection of this node that holds it at a lower generation has
// lost it, exactly as when a connection of this node resumes it
// (cmdSID): it learns it from its own goroutine (takeSession), which
// sends "* DELETEDSID" (draft-ietf-lemonade-reconnect-07 §5.3) before its
// next tagged response, or at once during IDLE. A hint for a session not
// held here, or held by a newer claim (late, duplicated, or about this
// node's own claim), changes nothing. Called on the bus's goroutine: it
// does not wait for anything.
func (s *Server) sessionTaken(h bus.Hint) {
	reg := s.opts.Sessions
	if reg == nil || h.Kind != bus.SessionTaken {
		return
	}
	owner, ok := reg.Taken(h.User, h.Session, h.Generation)
	if !ok {
		return
	}
	if c, ok := owner.(*conn); ok {
		c.takeSession(h.Session)
	}
}

// sessionsResync is the sessions' part of a bus resync (the bus
// reconnected, or its safety poll ticked): SessionTaken hints may have
// been lost, so the sessions held here are checked against the store
// (session.Registry.Recheck, one query) and each connection whose
// session another node claimed meanwhile, or that was deleted, is told
// DELETEDSID as on a hint. Without it such a connection would learn it
// at its next checkpoint only, never while it idles. It returns at once:
// the check runs on its own goroutine, one at a time.
func (s *Server) sessionsResync() {
	reg := s.opts.Sessions
	if reg == nil || s.isClosing() || !s.rechecking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.rechecking.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, sessionWriteTimeout)
		defer cancel()
		lost, err := reg.Recheck(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("rechecking the held sessions", "err", err)
		}
		for _, l := range lost {
			if c, ok := l.Owner.(*conn); ok {
				c.takeSession(l.ID)
			}
		}
	}()
}

package server

import (
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

package server

import "github.com/quickimap/quickimap/bus"

// sessionTaken is called when another node took over a resumable session
// (a bus.SessionTaken hint: h.User, h.Session, h.Generation). A
// connection of this node that holds the session at a lower generation
// has lost it.
//
// It is called on the bus's goroutine and must return quickly.
//
// For now it does nothing: resumable sessions are not yet owned across
// nodes.
func (s *Server) sessionTaken(h bus.Hint) {}

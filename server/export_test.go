package server

import "github.com/quickimap/quickimap/bus"

// SessionTakenHint hands a SessionTaken hint to the server as its bus
// would, for the tests of sessions across nodes.
func (s *Server) SessionTakenHint(h bus.Hint) { s.sessionTaken(h) }

// SessionsResync is the sessions' part of a bus resync.
func (s *Server) SessionsResync() { s.sessionsResync() }

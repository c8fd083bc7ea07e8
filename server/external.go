package server

import (
	"context"
	"time"
)

// externalWatcher is a store that other processes may write: the SQLite
// store shared with `quickimap import` and `quickimap user`. Writes made
// through this server go through the tracker hub, which tells the
// sessions at once; those of another process only the store knows of.
type externalWatcher interface {
	// ExternalChanges reports whether another process has committed
	// since the previous call.
	ExternalChanges(ctx context.Context) (bool, error)
}

// watchExternal polls the store for other processes' writes every
// ExternalPollInterval until Shutdown begins, and on one refreshes every
// mailbox a session has open, so that IDLE clients are told of imported
// mail within that interval, and any session at its next command.
//
// Cost: one PRAGMA per interval; in an interval in which another process
// wrote, one ChangesSince per mailbox some session holds (~50 µs each on
// SQLite), whether or not that process wrote to it: the store says that
// something changed, not where. A long import thus costs a server with
// 10,000 selected mailboxes about half a CPU-second per interval.
func (s *Server) watchExternal(w externalWatcher) {
	defer s.wg.Done()
	// The first call records where the store stands: writes after it,
	// even before the first tick, are reported.
	if _, err := w.ExternalChanges(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("polling the store for other processes' writes failed", "err", err)
	}
	t := time.NewTicker(s.opts.ExternalPollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		changed, err := w.ExternalChanges(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("polling the store for other processes' writes failed", "err", err)
			}
			continue
		}
		if changed {
			s.hub.RefreshAll(s.ctx)
		}
	}
}

// startWatch starts watchExternal once, with the first listener, when the
// store supports it and polling is on.
func (s *Server) startWatch() {
	s.watchOnce.Do(func() {
		w, ok := s.store.(externalWatcher)
		if !ok || s.opts.ExternalPollInterval < 0 {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closing {
			return
		}
		s.wg.Add(1)
		go s.watchExternal(w)
	})
}

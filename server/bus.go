package server

import (
	"context"
	"sync"
	"time"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/server/tracker"
)

// Change hints between nodes (package bus, Options.Bus).
//
// Out: every write this node makes to a mailbox is published after it
// has committed, with the MODSEQ it reached when the write returns it
// (APPEND and delivery, COPY/MOVE's destination, STORE), else 0 (EXPUNGE,
// MOVE's source); a DELETE and an INBOX rename publish the mailbox gone.
// Claiming \Recent writes the store too, but it changes no message and
// no MODSEQ, and the claim is atomic in the store: nothing to tell.
//
// In: a hint from another node is handled as a change of this node's
// own: the mailbox's shared index is refreshed from the store
// (tracker.Hub.Changed, which re-reads ChangesSince), which wakes the
// sessions that have it selected, IDLE ones included. The refresh is a
// store read, so it runs on a few workers of the receiver, not on the
// bus's goroutine; hints for a mailbox that wait for a worker merge into
// one. A hint about a mailbox nobody here has open, or whose index has
// already reached the hint's MODSEQ, costs nothing.
//
// A lost hint delays, never loses, a change: on Resync (the bus
// reconnected) and on the safety poll (Options.BusPollInterval), every
// index some session holds is refreshed.

// DefaultBusPollInterval is the default of Options.BusPollInterval: a
// change whose hint was lost reaches the sessions within a minute, for one
// ChangesSince per open mailbox per minute.
const DefaultBusPollInterval = 60 * time.Second

// busWorkers bounds the refreshes that hints from other nodes run at
// once: they read the store, and a burst of hints (a node's delivery
// queue draining) must not take every store connection.
const busWorkers = 4

// changed is called after a local write to a mailbox has committed:
// other nodes are told (modseq is the mailbox's HIGHESTMODSEQ after the
// write, 0 when unknown), and this node's index is refreshed and its
// sessions woken (tracker.Hub.Changed).
func (s *Server) changed(ctx context.Context, mailboxID int64, modseq uint64) {
	s.publishChanged(mailboxID, modseq)
	s.hub.Changed(ctx, mailboxID)
}

// publishChanged tells the other nodes that a mailbox changed.
func (s *Server) publishChanged(mailboxID int64, modseq uint64) {
	if s.opts.Bus != nil {
		s.opts.Bus.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: mailboxID, ModSeq: modseq})
	}
}

// gone is called after a mailbox was deleted, or was INBOX and was
// renamed: this node's sessions and the other nodes' are told.
func (s *Server) gone(mailboxID int64, why tracker.Gone) {
	if s.opts.Bus != nil {
		s.opts.Bus.Publish(bus.Hint{Kind: bus.MailboxGone, Mailbox: mailboxID, Gone: uint8(why)})
	}
	s.hub.Gone(mailboxID, why)
}

// busReceiver is the server's bus.Handler.
type busReceiver struct {
	s *Server

	mu      sync.Mutex
	pending map[int64]uint64 // mailbox → MODSEQ to reach (0: unknown)
	order   []int64          // pending mailboxes, oldest first
	resync  bool             // a full refresh is wanted
	wake    chan struct{}    // a token per queued job, up to busWorkers
}

func newBusReceiver(s *Server) *busReceiver {
	return &busReceiver{s: s, pending: make(map[int64]uint64), wake: make(chan struct{}, busWorkers)}
}

// Hint is called on the bus's goroutine: it queues work and returns.
func (r *busReceiver) Hint(h bus.Hint) {
	switch h.Kind {
	case bus.MailboxChanged:
		r.queue(h.Mailbox, h.ModSeq)
	case bus.MailboxGone:
		// No store read: the index is dropped and its views woken
		// (they say BYE at their next update).
		if why := tracker.Gone(h.Gone); why == tracker.Deleted || why == tracker.Renamed {
			r.s.hub.Gone(h.Mailbox, why)
		}
	case bus.SessionTaken:
		r.s.sessionTaken(h)
	case bus.UserChanged:
		// Nothing is cached that a password change leaves stale: the
		// credential cache is keyed on the stored hash, which every
		// login reads from the store (auth.Cache).
	}
}

// Resync is called on the bus's goroutine after hints may have been
// lost: every held index is refreshed, on a worker, and the held
// sessions are checked against the store (sessionsResync).
func (r *busReceiver) Resync() {
	r.mu.Lock()
	r.resync = true
	r.mu.Unlock()
	r.poke()
	r.s.sessionsResync()
}

func (r *busReceiver) queue(mailboxID int64, modseq uint64) {
	r.mu.Lock()
	old, ok := r.pending[mailboxID]
	switch {
	case !ok:
		r.pending[mailboxID] = modseq
		r.order = append(r.order, mailboxID)
	case old != 0 && (modseq == 0 || modseq > old):
		// An unknown MODSEQ (0) wins: see bus.Queue.
		r.pending[mailboxID] = modseq
	}
	r.mu.Unlock()
	r.poke()
}

func (r *busReceiver) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next takes one job: a full refresh, or a mailbox and its MODSEQ; more
// says that other jobs wait.
func (r *busReceiver) next() (all bool, mailboxID int64, modseq uint64, ok, more bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resync {
		r.resync = false
		// The full refresh covers what is pending now.
		clear(r.pending)
		r.order = r.order[:0]
		return true, 0, 0, true, false
	}
	if len(r.order) == 0 {
		return false, 0, 0, false, false
	}
	mailboxID = r.order[0]
	r.order = r.order[1:]
	modseq = r.pending[mailboxID]
	delete(r.pending, mailboxID)
	return false, mailboxID, modseq, true, len(r.order) > 0
}

// work runs jobs until Shutdown begins.
func (r *busReceiver) work() {
	defer r.s.wg.Done()
	for {
		select {
		case <-r.s.done:
			return
		case <-r.wake:
		}
		for {
			all, id, modseq, ok, more := r.next()
			if !ok {
				break
			}
			if more {
				r.poke() // another worker may take them meanwhile
			}
			if all {
				r.s.hub.RefreshAll(r.s.ctx)
				continue
			}
			if held, ok := r.s.hub.Held(id); !ok || (modseq != 0 && held >= modseq) {
				continue
			}
			r.s.hub.Changed(r.s.ctx, id)
			if r.s.isClosing() {
				return
			}
		}
	}
}

// startBus starts, once, the bus's delivery to this server, its workers
// and the safety poll, with the first listener, when a Bus is set. They
// end when Shutdown begins; the owner of the Bus closes it after
// Shutdown returns.
func (s *Server) startBus() {
	s.busOnce.Do(func() {
		if s.opts.Bus == nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closing {
			return
		}
		r := newBusReceiver(s)
		s.wg.Add(1 + busWorkers)
		go func() {
			defer s.wg.Done()
			if err := s.opts.Bus.Run(s.ctx, r); err != nil {
				s.log.Error("the bus of change hints stopped", "err", err)
			}
		}()
		for range busWorkers {
			go r.work()
		}
		if s.opts.BusPollInterval > 0 {
			s.wg.Add(1)
			go s.busPoll()
		}
	})
}

// busPoll refreshes every held index each BusPollInterval, whatever the
// bus delivered: a hint lost without the bus noticing (a node that died
// between its commit and its publish) delays a change by at most that.
// Cost: one ChangesSince per held mailbox per interval, and one query
// for the held sessions (sessionsResync).
func (s *Server) busPoll() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.BusPollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.hub.RefreshAll(s.ctx)
			s.sessionsResync()
		}
	}
}

package bus

import (
	"context"
	"sync"
)

// Broker connects the nodes of one process: several servers sharing one
// store in the same process (tests, and an embedded store that several
// front ends serve). Each node's Bus delivers the hints the other nodes
// publish, never its own, in the order they were published after
// merging (see Local.Publish). Nothing is lost while both ends are open,
// so a Local bus never calls Handler.Resync.
type Broker struct {
	mu    sync.Mutex
	nodes map[*Local]struct{}
}

// NewBroker returns a Broker with no nodes.
func NewBroker() *Broker {
	return &Broker{nodes: make(map[*Local]struct{})}
}

// Node returns a new node's end of the broker; name is the Hint.Node of
// what it publishes. Two nodes may share a name: a node skips its own
// hints by identity, not by name.
func (b *Broker) Node(name string) *Local {
	l := &Local{broker: b, name: name, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	b.nodes[l] = struct{}{}
	b.mu.Unlock()
	return l
}

// Local is one node's end of a Broker. It implements Bus.
type Local struct {
	broker *Broker
	name   string

	// mu guards the inbox: what the other nodes published and Run has
	// not delivered yet, merged per mailbox (one entry per mailbox with
	// the highest MODSEQ), so that a slow handler faces a queue bounded
	// by the number of things that changed.
	mu     sync.Mutex
	inbox  Queue
	closed bool
	wake   chan struct{} // a token when the inbox became non-empty
	done   chan struct{} // closed by Close
	once   sync.Once
}

var _ Bus = (*Local)(nil)

// Publish hands h to every other open node of the broker; their Run
// delivers it. It never blocks on a handler.
func (l *Local) Publish(h Hint) {
	h.Node = l.name
	b := l.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, open := b.nodes[l]; !open {
		return // closed
	}
	for n := range b.nodes {
		if n != l {
			n.queue(h)
		}
	}
}

func (l *Local) queue(h Hint) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.inbox.Add(h)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run delivers the other nodes' hints to h, including those published
// between Node and Run, until ctx ends or Close is called.
func (l *Local) Run(ctx context.Context, h Handler) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.done:
			return nil
		case <-l.wake:
		}
		l.mu.Lock()
		hints := l.inbox.Take()
		l.mu.Unlock()
		for _, x := range hints {
			if l.isClosed() || ctx.Err() != nil {
				return nil
			}
			h.Hint(x)
		}
	}
}

func (l *Local) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close takes the node out of the broker: it publishes and receives
// nothing more, and Run returns. Hints it published before are already
// in the other nodes' inboxes.
func (l *Local) Close() error {
	l.once.Do(func() {
		l.broker.mu.Lock()
		delete(l.broker.nodes, l)
		l.broker.mu.Unlock()
		l.mu.Lock()
		l.closed = true
		l.inbox.Take()
		l.mu.Unlock()
		close(l.done)
	})
	return nil
}

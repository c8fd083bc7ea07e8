// Package bus carries change hints between the quickimap nodes that share
// one store.
//
// A hint says only that something changed and where: a mailbox and the
// MODSEQ it reached, a mailbox that went away, a resumable session that
// another node took over, an account whose password or existence
// changed. It never carries the change itself. A node that receives a
// hint re-reads the store exactly as it does after a change of its own
// (the tracker's ChangesSince refresh, the session row's generation), so
// a hint that is late, duplicated, merged with another or lost costs time,
// never correctness: the store is the truth, the bus only says when to
// look. What a lost hint delays, the receiver's resynchronisation (on
// reconnection of the bus, and by a slow safety poll) catches up.
//
// A node publishes a hint after the change it describes has committed.
// Publish never blocks on the network; an implementation queues hints and
// may merge them (for one mailbox, only the highest MODSEQ matters).
// Hints come back to their own node only if the implementation cannot
// avoid it; receivers must treat a hint for something they already know
// as a no-op.
package bus

import "context"

// Kind says what a Hint is about.
type Kind uint8

const (
	// MailboxChanged: the messages of Mailbox changed (APPEND, STORE,
	// EXPUNGE, COPY/MOVE, a delivery); ModSeq is the mailbox's
	// HIGHESTMODSEQ after the change, or 0 when the publisher does not
	// know it.
	MailboxChanged Kind = iota + 1
	// MailboxGone: Mailbox was deleted, or was INBOX and was renamed
	// (its messages moved to a new mailbox id); Gone says which, with the
	// values of tracker.Gone.
	MailboxGone
	// SessionTaken: the resumable session (User, Session) was taken over
	// by a node, which raised its generation to Generation. A node whose
	// connection holds the session at a lower generation has lost it and
	// tells its client DELETEDSID.
	SessionTaken
	// UserChanged: account User changed its password or was deleted;
	// cached credentials for it are stale.
	UserChanged
)

// Hint is one change hint. Which fields mean something depends on Kind.
type Hint struct {
	Kind       Kind
	Mailbox    int64
	ModSeq     uint64
	Gone       uint8
	User       int64
	Session    string
	Generation uint64
	// Node is the name of the publishing node, set by the Bus.
	Node string
}

// Handler receives the hints other nodes publish. Its methods are called
// from one goroutine of the Bus, one at a time; they must return quickly
// (hand slow work to another goroutine) and must not call Publish
// synchronously in a way that waits for their own delivery.
type Handler interface {
	// Hint is one hint from another node.
	Hint(h Hint)
	// Resync says that hints may have been lost (the bus reconnected
	// after a failure, or began to listen only after the node may have
	// opened mailboxes): the receiver re-reads everything it holds open,
	// as if a hint had come for each.
	Resync()
}

// Bus is a node's end of the hint channel.
type Bus interface {
	// Publish queues a hint for the other nodes. It returns at once; it
	// is safe for concurrent use and after Close (then it does nothing).
	Publish(h Hint)
	// Run delivers the other nodes' hints to h until ctx ends or the bus
	// is closed; it returns nil then. It is called once per Bus.
	Run(ctx context.Context, h Handler) error
	// Close stops the bus: pending hints are sent if that can be done
	// without waiting long, and Run returns.
	Close() error
}

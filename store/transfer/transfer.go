// Package transfer describes a whole store as streams of rows, for moving
// an installation from one backend to another ("quickimap migrate")
// without renumbering anything a client has cached: the IMAP-level
// store.Store interface would give every copied message a new UID and
// MODSEQ, and every mailbox a new UIDVALIDITY.
//
// A Source (the embedded store's exporter) yields the rows of one
// consistent snapshot; a backend that can take them (the PostgreSQL
// store's Import) writes them as they are. The ids of users and
// mailboxes are kept, so that the serialized state of a resumable
// session, which names them, stays valid in the copy; body ids are kept
// too, which keeps a body shared by several messages (COPY) shared.
//
// Records are rows, not domain objects: flags are the stored
// space-separated normal form, times are the stored integers.
package transfer

import (
	"context"

	"github.com/quickimap/quickimap/store"
)

// User is an account.
type User struct {
	ID           int64
	Name         string
	PasswordHash string
	Created      int64 // Unix nanoseconds
}

// Mailbox is a mailbox with the counters a client caches: its
// UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ.
type Mailbox struct {
	ID, UserID int64
	Name       string
	// UIDValidity is 1 to 2^32-1; UIDNext 1 to 2^32 (a mailbox whose UID
	// space is used up).
	UIDValidity    int64
	UIDNext        int64
	HighestModSeq  int64
	FirstRecentUID int64
	SpecialUse     string
	NoSelect       bool
	// VanishedFloor is the highest MODSEQ of a tombstone purged from the
	// mailbox (0: none).
	VanishedFloor int64
}

// Subscription is a subscribed name (it may name no mailbox).
type Subscription struct {
	UserID int64
	Name   string
}

// Body is a message body with what the store keeps beside it.
type Body struct {
	ID   int64
	Data []byte
	// Header is the message's header kept apart, nil when none is kept;
	// Structure is the cached parse (store.MessageInfo.Structure), nil
	// when none is kept.
	Header, Structure []byte
}

// Message is a message of a mailbox.
type Message struct {
	MailboxID int64
	UID       int64
	ModSeq    int64
	// Flags is the space-separated normal form of the message's flags.
	Flags        string
	InternalDate int64 // Unix seconds
	InternalTZ   int32 // zone offset, seconds east of UTC
	Size         int64
	BodyID       int64
}

// Tombstone is an expunged message's UID and the MODSEQ of its expunge
// (RFC 7162 §3.2.10, VANISHED (EARLIER)).
type Tombstone struct {
	MailboxID  int64
	UID        int64
	ModSeq     int64
	ExpungedAt int64 // Unix seconds
}

// Counters are a store's counters beyond its rows.
type Counters struct {
	// UIDValidity is the value new mailboxes' UIDVALIDITY is taken
	// after (UIDVALIDITY must never repeat for a name, RFC 3501 §2.3.1.1).
	UIDValidity int64
	// MaxUserID and MaxMailboxID are the highest ids ever given, also
	// those of accounts and mailboxes deleted since: ids are never
	// reused, so that a session naming a deleted mailbox's id can never
	// resume into a new one.
	MaxUserID, MaxMailboxID int64
}

// Totals are the numbers of rows of a store.
type Totals struct {
	Users, Mailboxes, Subscriptions, Bodies, Messages, Tombstones, Sessions int64
	// BodyBytes is the total length of the bodies.
	BodyBytes int64
}

// Source yields the rows of a store, all from one snapshot. Each method
// calls yield once per row, in the order stated, and stops at the first
// error yield returns. The byte slices of a row are valid only during
// its yield: a Source may reuse them.
type Source interface {
	// Counters returns where the store's counters stand, so that a copy
	// never hands out a value the original has used.
	Counters(ctx context.Context) (Counters, error)
	Totals(ctx context.Context) (Totals, error)
	Users(ctx context.Context, yield func(User) error) error                 // by id
	Mailboxes(ctx context.Context, yield func(Mailbox) error) error          // by id
	Subscriptions(ctx context.Context, yield func(Subscription) error) error // by user, name
	Bodies(ctx context.Context, yield func(Body) error) error                // by id
	Messages(ctx context.Context, yield func(Message) error) error           // by mailbox, UID
	Tombstones(ctx context.Context, yield func(Tombstone) error) error       // by mailbox, UID
	// Sessions yields the resumable sessions with their state, by user
	// and id.
	Sessions(ctx context.Context, yield func(store.SessionRecord) error) error
}

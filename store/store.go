// Package store defines quickimap's storage interface: accounts, mailboxes,
// subscriptions, messages, their modification sequences and expunge
// tombstones. Backends live in sub-packages
// (store/sqlite is the embedded default); every backend must pass the
// conformance suite in store/storetest.
//
// The interface speaks IMAP's data model but none of its syntax: mailbox
// names are UTF-8 (already decoded from modified UTF-7), with '/' as the
// hierarchy delimiter and "INBOX" spelled in upper case.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns (wrapped or not) so that callers can test
// them with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrInvalid is an operation the data model forbids, such as renaming
	// a mailbox into its own child or deleting INBOX.
	ErrInvalid = errors.New("store: invalid operation")
	// ErrNoSelect is an operation on a \Noselect placeholder that needs a
	// real mailbox.
	ErrNoSelect = errors.New("store: mailbox is not selectable")
	// ErrFull is a write that failed, or was refused, for lack of disk
	// space (or quota) under the store. Deletes should still work (see
	// the backend's documentation).
	ErrFull = errors.New("store: storage is full")
	// ErrUnavailable is a failure to reach the storage (a database
	// server restarting or failing over to a replica). The operation
	// was not done, unless the failure hid the acknowledgment of a
	// commit; trying again later is the remedy.
	ErrUnavailable = errors.New("store: storage unavailable")
)

// User is an account.
type User struct {
	ID int64
	// Name is the account name, lower-cased: account names are
	// case-insensitive.
	Name         string
	PasswordHash string
	Created      time.Time
}

// Mailbox is one mailbox of a user.
type Mailbox struct {
	// ID is the stable internal id: it survives RENAME and is never
	// reused, so that sessions can refer to a mailbox across renames.
	ID     int64
	UserID int64
	// Name is the full UTF-8 name with '/' delimiters; INBOX is "INBOX".
	Name string
	// UIDValidity changes whenever a name is reused for a new mailbox; it
	// is never 0.
	UIDValidity uint32
	// UIDNext is the UID the next message will get; it never goes back.
	UIDNext uint32
	// HighestModSeq is the mailbox's highest modification sequence
	// (RFC 7162); it is at least 1 for every mailbox, even a new empty one.
	HighestModSeq uint64
	// FirstRecentUID is the lowest UID that no session has yet claimed as
	// \Recent (RFC 3501 §2.3.2): messages with UIDs from FirstRecentUID to
	// UIDNext-1 are recent and will belong to the next session that
	// claims them.
	FirstRecentUID uint32
	// SpecialUse is the RFC 6154 attribute such as `\Sent`, or "".
	SpecialUse string
	// NoSelect marks a placeholder that exists only because it has
	// children (a selectable mailbox with children that was deleted, per
	// RFC 3501 §6.3.4). It has no messages.
	NoSelect bool
}

// MailboxStatus holds the counters STATUS and SELECT need.
type MailboxStatus struct {
	Mailbox
	Messages uint32
	Unseen   uint32
	Recent   uint32
	// Size is the total of the messages' RFC822.SIZE (RFC 8438).
	Size int64
}

// NewMailbox describes a mailbox to create with a new account.
type NewMailbox struct {
	Name       string
	SpecialUse string
	Subscribe  bool
}

// DefaultMailboxes are the mailboxes every new account gets: INBOX and the
// RFC 6154 special-use mailboxes, all subscribed.
func DefaultMailboxes() []NewMailbox {
	return []NewMailbox{
		{Name: "INBOX", Subscribe: true},
		{Name: "Archive", SpecialUse: `\Archive`, Subscribe: true},
		{Name: "Drafts", SpecialUse: `\Drafts`, Subscribe: true},
		{Name: "Junk", SpecialUse: `\Junk`, Subscribe: true},
		{Name: "Sent", SpecialUse: `\Sent`, Subscribe: true},
		{Name: "Trash", SpecialUse: `\Trash`, Subscribe: true},
	}
}

// Store is the storage interface. Every method is safe for concurrent use
// by many connections. A method that returns without error has made its
// change durable (it survives a crash of the process or of the machine,
// as far as the backend's medium allows); IMAP sends its tagged OK after
// that.
type Store interface {
	// Messages is the message half: APPEND, FETCH, STORE, COPY, MOVE,
	// EXPUNGE and change tracking (messages.go).
	Messages
	// Sessions keeps resumable sessions (the reconnect draft;
	// sessions.go).
	Sessions

	// CreateUser creates an account with the given password hash and
	// mailboxes, in one transaction. The name is lower-cased. INBOX is
	// always created, even when mailboxes does not list it; missing
	// parents are created as with CreateMailbox.
	// ErrExists if the name is taken (case-insensitively).
	CreateUser(ctx context.Context, name, passwordHash string, mailboxes []NewMailbox) (User, error)
	// UserByName finds an account case-insensitively. ErrNotFound.
	UserByName(ctx context.Context, name string) (User, error)
	// SetPasswordHash replaces an account's password hash. ErrNotFound.
	SetPasswordHash(ctx context.Context, userID int64, passwordHash string) error
	// DeleteUser removes an account and everything it owns. ErrNotFound.
	DeleteUser(ctx context.Context, userID int64) error
	// Users lists all accounts ordered by name.
	Users(ctx context.Context) ([]User, error)

	// Mailboxes lists all mailboxes of a user (placeholders included),
	// ordered by name.
	Mailboxes(ctx context.Context, userID int64) ([]Mailbox, error)
	// MailboxByName finds a mailbox by its exact name ("INBOX" for the
	// inbox). ErrNotFound.
	MailboxByName(ctx context.Context, userID int64, name string) (Mailbox, error)
	// MailboxByID finds a mailbox by its stable id. ErrNotFound (also when
	// it belongs to another user).
	MailboxByID(ctx context.Context, userID, id int64) (Mailbox, error)
	// CreateMailbox creates a mailbox and any missing parents (as
	// selectable mailboxes, RFC 3501 §6.3.3). Creating over a \Noselect
	// placeholder turns it into a selectable mailbox with a new
	// UIDVALIDITY. ErrExists if a selectable mailbox has that name.
	CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (Mailbox, error)
	// DeleteMailbox deletes a mailbox (RFC 3501 §6.3.4): one without
	// children is removed; one with children loses its messages and
	// becomes a \Noselect placeholder; deleting a placeholder that has
	// children is ErrNoSelect. Placeholders left without children are
	// removed too. Deleting INBOX is ErrInvalid. ErrNotFound.
	DeleteMailbox(ctx context.Context, userID int64, name string) error
	// RenameMailbox renames a mailbox and all its children
	// (RFC 3501 §6.3.5), creating missing parents of the new name. The
	// mailboxes keep their ids, UIDVALIDITY and messages. Renaming INBOX
	// moves INBOX (its id, UIDVALIDITY and messages) to the new name and
	// creates a new empty INBOX; INBOX's children stay where they are.
	// ErrNotFound (old), ErrExists (new), ErrInvalid (into itself, or to
	// INBOX).
	RenameMailbox(ctx context.Context, userID int64, oldName, newName string) error

	// Subscribe and Unsubscribe change a subscription by name; a name may
	// be subscribed whether or not the mailbox exists (RFC 3501 §6.3.6).
	// Unsubscribing a name that is not subscribed is ErrNotFound.
	Subscribe(ctx context.Context, userID int64, name string) error
	Unsubscribe(ctx context.Context, userID int64, name string) error
	// Subscriptions lists subscribed names, ordered.
	Subscriptions(ctx context.Context, userID int64) ([]string, error)

	// Status returns a mailbox's counters. ErrNotFound; ErrNoSelect for a
	// \Noselect placeholder.
	Status(ctx context.Context, userID, mailboxID int64) (MailboxStatus, error)
	// ClaimRecent atomically hands the messages that no session has seen
	// yet to the caller: it returns the UID range [from, to) that is now
	// recent for the caller alone and advances FirstRecentUID to UIDNext.
	// from == to when there is nothing new. ErrNotFound; ErrNoSelect for
	// a \Noselect placeholder. Unlike the writes above, the claim need not
	// be durable when ClaimRecent returns: a crash may undo it (then the
	// next session sees those messages as \Recent again), never leave it
	// half done.
	ClaimRecent(ctx context.Context, userID, mailboxID int64) (from, to uint32, err error)

	// Check verifies the store's integrity (quickimap check) and returns
	// a list of problems found; nil means none.
	Check(ctx context.Context) ([]string, error)

	// Close releases the store.
	Close() error
}

package store

import (
	"context"
	"io"
	"time"
)

// Message-level storage, for APPEND, FETCH, STORE, COPY, MOVE, EXPUNGE
// and for change tracking (CONDSTORE/QRESYNC). Every
// change to a message gets the mailbox's next modification sequence
// (RFC 7162 §3: strictly increasing per mailbox); every expunge leaves a
// tombstone (UID, MODSEQ) so that "what vanished since modseq N" can be
// answered exactly while the tombstone is kept.

// MessageMeta is what a mailbox's in-memory index holds for each message.
type MessageMeta struct {
	UID    uint32
	ModSeq uint64
	// Flags are the message's flags and keywords, without \Recent,
	// sorted with system flags first as the store keeps them. A backend
	// may share one slice between messages with the same flags: treat it
	// as read-only (replace it, never modify it in place).
	Flags []string
}

// MessageInfo is what FETCH needs beyond the index.
type MessageInfo struct {
	MessageMeta
	InternalDate time.Time
	Size         int64
	// Structure is the opaque parse of the message cached at APPEND time
	// (the message package's serialised part tree: ENVELOPE,
	// BODYSTRUCTURE, part offsets), or nil.
	Structure []byte
}

// NewMessage is a message to append.
//
// Flags are normalised by the store: system flags (\Seen, \Answered,
// \Flagged, \Deleted, \Draft) take their canonical case whatever the case
// given, \Recent is dropped (it is session state, never stored), keywords
// compare case-insensitively (ASCII) and keep the first spelling seen,
// duplicates go, and the set is sorted with system flags first. An unknown
// system flag (`\Foo`) or a keyword that is not an IMAP atom is
// ErrInvalid. UpdateFlags applies the same rules; for FLAGS and +FLAGS a
// keyword the message already has keeps the message's spelling, so a
// change of case alone is no change.
//
// InternalDate keeps whole seconds and the zone offset; the zero time
// means "now". Body is stored and returned byte for byte.
type NewMessage struct {
	Flags        []string
	InternalDate time.Time
	Body         []byte
	Structure    []byte
	// HeaderLen is the length of the message's header, blank line
	// included, from the same parse as Structure (0: unknown). A
	// backend may keep the header apart so that MessagePrefixes of at
	// most HeaderLen bytes need not read the body.
	HeaderLen int
}

// FlagOp says how UpdateFlags combines flags (RFC 3501 §6.4.6).
type FlagOp int

const (
	FlagsSet    FlagOp = iota // FLAGS
	FlagsAdd                  // +FLAGS
	FlagsRemove               // -FLAGS
)

// Changes is what happened in a mailbox since a modification sequence.
type Changes struct {
	// Changed holds the messages whose MODSEQ is greater than the one
	// asked for, by ascending UID.
	Changed []MessageMeta
	// Vanished holds the UIDs expunged since then, ascending.
	Vanished []uint32
	// Complete is false when tombstones older than the window were
	// purged and some expunges since the modseq may be missing.
	Complete bool
	// HighestModSeq is the mailbox's value at the time of the read.
	HighestModSeq uint64
}

// UIDChanges is Changes by UID only, for a caller that keeps the
// messages' flags and MODSEQs itself (the server's in-memory index).
type UIDChanges struct {
	// Changed holds the UIDs of the messages whose MODSEQ is greater
	// than the one asked for, ascending; nil unless asked for.
	Changed []uint32
	// Vanished, Complete and HighestModSeq are as in Changes.
	Vanished      []uint32
	Complete      bool
	HighestModSeq uint64
}

// Messages is the message half of the storage interface. Every method
// checks that the mailbox belongs to userID (ErrNotFound otherwise) and is
// selectable (ErrNoSelect).
//
// UID lists given to these methods may be in any order and contain
// duplicates or UIDs that do not exist; those are ignored (no error).
// Every method that returns UIDs returns them ascending.
//
// MODSEQ rules (RFC 7162): a call that changes messages takes exactly one
// new MODSEQ per mailbox it changes (highest_modseq + 1) and stores it on
// every message it adds or changes and on every tombstone it leaves; a
// call that changes nothing takes none. HighestModSeq of a mailbox is
// therefore at least the MODSEQ of each of its messages and tombstones.
// Tombstones are kept for a window (the backend's choice, such as the
// last 30 days and at most N per mailbox); ChangesSince says whether its
// answer is complete.
type Messages interface {
	// AppendMessages adds messages in one transaction with consecutive
	// new UIDs and one new MODSEQ, and returns their UIDs and the
	// mailbox after the append (RFC 4315 APPENDUID needs UIDVALIDITY).
	// The new messages are recent (their UIDs are >= FirstRecentUID).
	// Appending no messages changes nothing. ErrInvalid if the mailbox's
	// UID space cannot hold them.
	AppendMessages(ctx context.Context, userID, mailboxID int64, msgs []NewMessage) (uids []uint32, mb Mailbox, err error)
	// MessageIndex returns every message's meta by ascending UID and the
	// mailbox's state read in the same transaction.
	MessageIndex(ctx context.Context, userID, mailboxID int64) ([]MessageMeta, Mailbox, error)
	// MessageInfos returns the infos of the given UIDs (ascending, those
	// that no longer exist are left out).
	MessageInfos(ctx context.Context, userID, mailboxID int64, uids []uint32) ([]MessageInfo, error)
	// MessageBody returns a message's raw bytes exactly as appended.
	// ErrNotFound if the UID does not exist.
	MessageBody(ctx context.Context, userID, mailboxID int64, uid uint32) ([]byte, error)
	// OpenBody opens a message's raw bytes (those MessageBody returns)
	// for reading in parts, so that a large message can be sent without
	// holding all of it in memory. The Body stays readable until it is
	// closed, even if the message is expunged meanwhile. ErrNotFound if
	// the UID does not exist.
	OpenBody(ctx context.Context, userID, mailboxID int64, uid uint32) (Body, error)
	// MessagePrefixes returns, for each request, the first N bytes of
	// message UID (all of it when it is shorter): with N the header's
	// length from the cached structure, its header, for SEARCH FROM,
	// SUBJECT or HEADER without reading the rest. N < 0 asks for the
	// header the message was appended with (NewMessage.HeaderLen) as
	// the backend keeps it, without knowing its length. out[i] answers
	// reqs[i]; it is nil when the UID does not exist, and for N < 0 also
	// when the backend keeps no header for the message.
	MessagePrefixes(ctx context.Context, userID, mailboxID int64, reqs []PrefixRequest) (out [][]byte, err error)
	// UpdateFlags changes the flags of the given UIDs. Messages whose
	// MODSEQ is greater than unchangedSince (when it is not 0) are left
	// alone and returned in failed (RFC 7162 §3.1.3 UNCHANGEDSINCE).
	// A message whose flags do not actually change keeps its MODSEQ and
	// is not in changed. All changed messages get one new MODSEQ.
	UpdateFlags(ctx context.Context, userID, mailboxID int64, uids []uint32, op FlagOp, flags []string, unchangedSince uint64) (changed []MessageMeta, failed []uint32, err error)
	// Expunge removes the given UIDs (those that exist), leaving
	// tombstones with one new MODSEQ, and returns the UIDs removed.
	Expunge(ctx context.Context, userID, mailboxID int64, uids []uint32) ([]uint32, error)
	// CopyMessages copies messages to another mailbox of the same user
	// (sharing bodies), keeping flags and internal dates; MoveMessages
	// also expunges them from the source in the same transaction.
	// srcUIDs and dstUIDs pair up in ascending source-UID order
	// (RFC 4315 COPYUID).
	CopyMessages(ctx context.Context, userID, srcID, dstID int64, uids []uint32) (srcUIDs, dstUIDs []uint32, dst Mailbox, err error)
	MoveMessages(ctx context.Context, userID, srcID, dstID int64, uids []uint32) (srcUIDs, dstUIDs []uint32, dst Mailbox, err error)
	// ChangesSince reports what changed after modseq (RFC 7162).
	// Complete is true when no tombstone with a MODSEQ above modseq has
	// been purged.
	ChangesSince(ctx context.Context, userID, mailboxID int64, modseq uint64) (Changes, error)
	// UIDChangesSince answers what ChangesSince answers, read the same
	// way (one consistent snapshot), without the changed messages'
	// flags and MODSEQs; their UIDs only when withChanged is true (what
	// vanished, and whether that is complete, needs the tombstones
	// alone).
	UIDChangesSince(ctx context.Context, userID, mailboxID int64, modseq uint64, withChanged bool) (UIDChanges, error)
}

// PrefixRequest asks for the first N bytes of message UID, or with N < 0
// for its header (Messages.MessagePrefixes).
type PrefixRequest struct {
	UID uint32
	N   int64
}

// Body is an open message body (Messages.OpenBody). It is not safe for
// concurrent use.
type Body interface {
	// ReadAt reads the bytes at off (io.ReaderAt); a read that ends at
	// the end of the body may return io.EOF with n == len(p).
	io.ReaderAt
	// Size is the body's length in bytes.
	Size() int64
	// Bytes returns the whole body when the backend holds it in memory
	// anyway (read-only, valid until Close), else nil: then read it with
	// ReadAt.
	Bytes() []byte
	// Close releases the body.
	Close() error
}

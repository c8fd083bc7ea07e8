// Package imap holds the protocol types shared by the wire codec, the server
// and the client: sequence sets, flags, capabilities, response codes, mailbox
// attributes and modified UTF-7 mailbox names (RFC 3501 §5.1.3).
//
// It has no I/O and no state; everything here is a value type.
package imap

// State is a connection state of RFC 3501 §3.
type State int

const (
	StateNotAuthenticated State = iota
	StateAuthenticated
	StateSelected
	StateLogout
)

func (s State) String() string {
	switch s {
	case StateNotAuthenticated:
		return "not authenticated"
	case StateAuthenticated:
		return "authenticated"
	case StateSelected:
		return "selected"
	default:
		return "logout"
	}
}

// System flags (RFC 3501 §2.3.2).
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
	FlagRecent   = `\Recent`
)

// Mailbox attributes (RFC 3501 §7.2.2, RFC 3348, RFC 5258, RFC 6154).
const (
	AttrNoinferiors   = `\Noinferiors`
	AttrNoselect      = `\Noselect`
	AttrMarked        = `\Marked`
	AttrUnmarked      = `\Unmarked`
	AttrHasChildren   = `\HasChildren`
	AttrHasNoChildren = `\HasNoChildren`
	AttrNonExistent   = `\NonExistent`
	AttrSubscribed    = `\Subscribed`

	AttrAll     = `\All`
	AttrArchive = `\Archive`
	AttrDrafts  = `\Drafts`
	AttrFlagged = `\Flagged`
	AttrJunk    = `\Junk`
	AttrSent    = `\Sent`
	AttrTrash   = `\Trash`
)

// Inbox is the one mailbox name that is case-insensitive (RFC 3501 §5.1).
const Inbox = "INBOX"

// Delimiter is quickimap's hierarchy delimiter.
const Delimiter = '/'

package server

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
)

// Mailbox name limits.
const (
	maxMailboxNameLen   = 1000 // bytes of the decoded UTF-8 name
	maxMailboxNameDepth = 64   // hierarchy levels
)

// readMailbox reads a mailbox argument and returns it as the client spelled
// it (raw) and as the canonical UTF-8 name the store uses.
func (c *conn) readMailbox() (raw, name string, err error) {
	raw, err = c.dec.Astring()
	if err != nil {
		return "", "", err
	}
	return raw, canonicalName(raw), nil
}

// canonicalName decodes modified UTF-7 (keeping the input when it is not
// valid mUTF-7, so that the name is refused later by validName) and spells
// INBOX in upper case, also as the first level of a hierarchy (RFC 3501
// §5.1: INBOX is case-insensitive).
func canonicalName(raw string) string {
	name, err := imap.DecodeMailboxName(raw)
	if err != nil {
		name = raw
	}
	if strings.EqualFold(name, imap.Inbox) {
		return imap.Inbox
	}
	if len(name) > len(imap.Inbox) && name[len(imap.Inbox)] == imap.Delimiter && strings.EqualFold(name[:len(imap.Inbox)], imap.Inbox) {
		return imap.Inbox + name[len(imap.Inbox):]
	}
	return name
}

// validName checks a name for CREATE and RENAME; it returns the reason a
// name is refused, or "".
func validName(raw, name string) string {
	if _, err := imap.DecodeMailboxName(raw); err != nil {
		return "Mailbox name is not valid modified UTF-7"
	}
	if name == "" {
		return "Empty mailbox name"
	}
	if len(name) > maxMailboxNameLen {
		return "Mailbox name too long"
	}
	if !utf8.ValidString(name) {
		return "Mailbox name is not valid UTF-8"
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == '%' || r == '*' {
			return "Mailbox name contains a forbidden character"
		}
	}
	parts := strings.Split(name, string(imap.Delimiter))
	if len(parts) > maxMailboxNameDepth {
		return "Mailbox hierarchy too deep"
	}
	for _, p := range parts {
		if p == "" {
			return "Mailbox name has an empty hierarchy level"
		}
	}
	return ""
}

// storeFailure turns a store error into a tagged NO with the RFC 5530 code
// that tells the client what happened.
func (c *conn) storeFailure(err error) *status {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no("NONEXISTENT", "No such mailbox")
	case errors.Is(err, store.ErrExists):
		return no("ALREADYEXISTS", "Mailbox already exists")
	case errors.Is(err, store.ErrNoSelect):
		return no("CANNOT", "Mailbox is not selectable")
	case errors.Is(err, store.ErrInvalid):
		return no("CANNOT", "Operation not permitted on this mailbox")
	case errors.Is(err, store.ErrFull):
		// RFC 5530 has no code for a full disk; OVERQUOTA is the one a
		// client shows as "delete something", which is what helps
		// (deletes keep working, see store/sqlite/full.go).
		c.s.full.log(c.log, err)
		return no("OVERQUOTA", "Mail store is full; delete messages to make room")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return no("UNAVAILABLE", "Operation cancelled")
	case errors.Is(err, store.ErrUnavailable):
		c.log.Warn("store unavailable", "err", err)
		return no("UNAVAILABLE", "Mail store unreachable; try again shortly")
	default:
		c.log.Error("store failure", "err", err)
		return no("SERVERBUG", "Internal error; the operation was not done")
	}
}

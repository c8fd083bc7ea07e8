package storeutil

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/quickimap/quickimap/store"
)

// CanonName validates a mailbox (or subscription) name and returns it in
// canonical form: a first component that is any case of "inbox" is spelled
// "INBOX" (so "inbox/x" is "INBOX/x"). Empty names, empty components
// (leading, trailing or doubled '/'), invalid UTF-8 and NUL are ErrInvalid.
func CanonName(name string) (string, error) {
	if name == "" || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: mailbox name %q", store.ErrInvalid, name)
	}
	first, rest, hasRest := strings.Cut(name, "/")
	if hasRest {
		for c := range strings.SplitSeq(name, "/") {
			if c == "" {
				return "", fmt.Errorf("%w: mailbox name %q has an empty component", store.ErrInvalid, name)
			}
		}
	}
	if first != "INBOX" && strings.EqualFold(first, "INBOX") {
		if hasRest {
			return "INBOX/" + rest, nil
		}
		return "INBOX", nil
	}
	return name, nil
}

// ParentName returns the parent of a name ("a/b" for "a/b/c"), or "" for a
// top-level name.
func ParentName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// ChildRange returns the bounds of the half-open range [lo, hi) that holds
// exactly the descendants of name in bytewise order: '0' follows '/'.
func ChildRange(name string) (lo, hi string) {
	return name + "/", name + "0"
}

// CanonUser lower-cases an account name.
func CanonUser(name string) (string, error) {
	if name == "" || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: account name %q", store.ErrInvalid, name)
	}
	return strings.ToLower(name), nil
}

// RenameNames checks the names of a RENAME and returns them in canonical
// form: nothing may be renamed to INBOX, to itself or into its own
// subtree (INBOX may: RFC 3501 §6.3.5 moves its messages and leaves it
// empty). ErrInvalid otherwise.
func RenameNames(oldName, newName string) (string, string, error) {
	oldName, err := CanonName(oldName)
	if err != nil {
		return "", "", err
	}
	newName, err = CanonName(newName)
	if err != nil {
		return "", "", err
	}
	if newName == "INBOX" {
		return "", "", fmt.Errorf("%w: cannot rename to INBOX", store.ErrInvalid)
	}
	if oldName == newName || (oldName != "INBOX" && strings.HasPrefix(newName, oldName+"/")) {
		return "", "", fmt.Errorf("%w: cannot rename %q into itself", store.ErrInvalid, oldName)
	}
	return oldName, newName, nil
}

// InitialMailboxes returns the mailboxes of a new account with canonical
// names, INBOX first when the list does not have it.
func InitialMailboxes(mailboxes []store.NewMailbox) ([]store.NewMailbox, error) {
	list := make([]store.NewMailbox, 0, len(mailboxes)+1)
	hasInbox := false
	for _, m := range mailboxes {
		n, err := CanonName(m.Name)
		if err != nil {
			return nil, err
		}
		hasInbox = hasInbox || n == "INBOX"
		m.Name = n
		list = append(list, m)
	}
	if !hasInbox {
		list = append([]store.NewMailbox{{Name: "INBOX"}}, list...)
	}
	return list, nil
}

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

package server

import (
	"strings"

	"github.com/quickimap/quickimap/imap"
)

// pattern is a LIST pattern (RFC 3501 §6.3.8): "*" matches any sequence,
// "%" any sequence without the hierarchy delimiter.
type pattern string

// match reports whether name matches the pattern. Names match case-
// sensitively, except INBOX, which is case-insensitive also as the first
// level of its children's names (RFC 3501 §5.1): when name is INBOX or
// starts with "INBOX/" (the canonical spelling, see canonicalName), its
// first five characters match pattern characters whatever their case.
// So "inb%" and "i*" list INBOX, while "Inbox*" lists "Inboxfoo" and not
// "INBOX", and "inbox%" lists "inbox-old". The pattern is never
// rewritten.
//
// It runs in O(len(pattern) × len(name)) time whatever the wildcards, so
// a hostile pattern cannot make LIST slow.
func (p pattern) match(name string) bool {
	fold := 0 // name[:fold] matches case-insensitively
	if name == imap.Inbox || (strings.HasPrefix(name, imap.Inbox) && name[len(imap.Inbox)] == imap.Delimiter) {
		fold = len(imap.Inbox)
	}
	// cur[j] is true when pattern[:i] matches name[:j].
	cur := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	cur[0] = true
	for i := 0; i < len(p); i++ {
		pc := p[i]
		for j := range next {
			next[j] = false
		}
		switch pc {
		case '*', '%':
			// next[j] = cur[k] for some k <= j with name[k:j] free of
			// '/' when pc is '%'.
			reach := false
			for j := 0; j <= len(name); j++ {
				if cur[j] {
					reach = true
				}
				next[j] = reach
				if pc == '%' && j < len(name) && name[j] == imap.Delimiter {
					reach = false
				}
			}
		default:
			for j := 0; j < len(name); j++ {
				if cur[j] && (name[j] == pc || (j < fold && upperASCII(pc) == name[j])) {
					next[j+1] = true
				}
			}
		}
		cur, next = next, cur
	}
	return cur[len(name)]
}

// upperASCII upper-cases an ASCII letter; other bytes are left alone.
func upperASCII(b byte) byte {
	if 'a' <= b && b <= 'z' {
		return b - ('a' - 'A')
	}
	return b
}

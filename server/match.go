package server

import (
	"strings"

	"github.com/quickimap/quickimap/imap"
)

// pattern is a LIST pattern (RFC 3501 §6.3.8): "*" matches any sequence,
// "%" any sequence without the hierarchy delimiter.
type pattern string

// canonicalPattern spells a leading INBOX in upper case so that it matches
// INBOX whatever the client's case.
func canonicalPattern(p string) string {
	if len(p) >= len(imap.Inbox) && strings.EqualFold(p[:len(imap.Inbox)], imap.Inbox) {
		if len(p) == len(imap.Inbox) || strings.ContainsRune("/*%", rune(p[len(imap.Inbox)])) {
			return imap.Inbox + p[len(imap.Inbox):]
		}
	}
	return p
}

// match reports whether name matches the pattern. It runs in
// O(len(pattern) × len(name)) time whatever the wildcards, so a hostile
// pattern cannot make LIST slow.
func (p pattern) match(name string) bool {
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
				if cur[j] && name[j] == pc {
					next[j+1] = true
				}
			}
		}
		cur, next = next, cur
	}
	return cur[len(name)]
}

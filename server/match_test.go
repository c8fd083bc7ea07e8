package server

import "testing"

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		p, name string
		want    bool
	}{
		{"*", "a/b/c", true},
		{"%", "a", true},
		{"%", "a/b", false},
		{"a/%", "a/b", true},
		{"a/%", "a/b/c", false},
		{"a/*", "a/b/c", true},
		{"a*", "ab", true},
		{"a*", "b", false},
		{"", "", true},
		{"", "a", false},
		{"INBOX", "INBOX", true},
		{"%/%", "a/b", true},
		{"*b", "a/b", true},
		{"a%c", "abc", true},
		{"a%c", "ab/c", false},
		{"**%**%a", "xa", true},
	}
	for _, c := range cases {
		if got := pattern(c.p).match(c.name); got != c.want {
			t.Errorf("%q.match(%q) = %v, want %v", c.p, c.name, got, c.want)
		}
	}
}

// TestPatternMatchInbox: INBOX is case-insensitive, also as the first
// level of its children's names (RFC 3501 §5.1); every other name matches
// case-sensitively, also one that merely starts with "inbox" in some case.
func TestPatternMatchInbox(t *testing.T) {
	cases := []struct {
		p, name string
		want    bool
	}{
		{"inbox", "INBOX", true},
		{"Inbox", "INBOX", true},
		{"i*", "INBOX", true},
		{"I*", "INBOX", true},
		{"inb%", "INBOX", true},
		{"*x", "INBOX", true},
		{"%o%", "INBOX", true},
		{"inbox*", "INBOX", true},
		{"inbox%", "INBOX", true},
		{"inboxx", "INBOX", false},
		{"inbo", "INBOX", false},
		{"inbox/%", "INBOX/Sub", true},
		{"Inbox/sub", "INBOX/Sub", false}, // only the INBOX part folds
		{"Inbox/Sub", "INBOX/Sub", true},
		{"i%/S*", "INBOX/Sub", true},
		{"*/sub", "INBOX/Sub", false},
		// Names that are not INBOX or under it: case-sensitive.
		{"Inbox*", "Inboxfoo", true},
		{"INBOX*", "Inboxfoo", false},
		{"inbox*", "Inboxfoo", false},
		{"inbox%", "inbox-old", true},
		{"INBOX%", "inbox-old", false},
		{"Inbox%", "inbox-old", false},
		{"INBOX*", "INBOXES", true},
		{"inbox*", "INBOXES", false}, // "INBOXES" is not INBOX
		{"inbox*", "INBOX", true},
		{"a*", "A", false},
		{"%", "INBOX", true},
	}
	for _, c := range cases {
		if got := pattern(c.p).match(c.name); got != c.want {
			t.Errorf("%q.match(%q) = %v, want %v", c.p, c.name, got, c.want)
		}
	}
}

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

func TestCanonicalPattern(t *testing.T) {
	for in, want := range map[string]string{
		"inbox":   "INBOX",
		"Inbox/%": "INBOX/%",
		"inbox*":  "INBOX*",
		"inboxes": "inboxes",
		"in":      "in",
	} {
		if got := canonicalPattern(in); got != want {
			t.Errorf("canonicalPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

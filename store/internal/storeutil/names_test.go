package storeutil

import "testing"

func TestCanonName(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX": "INBOX", "inbox": "INBOX", "Inbox/a/b": "INBOX/a/b", "inboxes": "inboxes",
		"a/inbox": "a/inbox", "Größe": "Größe",
	} {
		if got, err := CanonName(in); err != nil || got != want {
			t.Errorf("CanonName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/", "a/", "/a", "a//b", "a\x00b", "\xff"} {
		if _, err := CanonName(in); err == nil {
			t.Errorf("CanonName(%q) accepted", in)
		}
	}
	lo, hi := ChildRange("a")
	for _, n := range []string{"a/b", "a/", "a/\U0010ffff"} {
		if !(n >= lo && n < hi) {
			t.Errorf("%q not in the child range of a", n)
		}
	}
	for _, n := range []string{"a", "ab", "a-b", "a0", "a.b", "b"} {
		if n >= lo && n < hi {
			t.Errorf("%q in the child range of a", n)
		}
	}
}

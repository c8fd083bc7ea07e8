package session

import (
	"strings"
	"testing"
)

func TestIDFormat(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	var bits [128]int
	for range n {
		id := NewID()
		if len(id) != IDLen || !ValidID(id) {
			t.Fatalf("id %q: length %d or charset", id, len(id))
		}
		for _, c := range id {
			// Atom characters (RFC 3501 ATOM-CHAR) and lower-case base32.
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz234567", c) {
				t.Fatalf("id %q has %q", id, c)
			}
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		b, err := idEncoding.DecodeString(id)
		if err != nil || len(b) != 16 {
			t.Fatalf("id %q decodes to %d bytes, %v", id, len(b), err)
		}
		for i := range 128 {
			if b[i/8]&(1<<(i%8)) != 0 {
				bits[i]++
			}
		}
	}
	// Every one of the 128 bits is random: set in about half the ids
	// (the standard deviation is 50; 10 of them is astronomically safe).
	for i, k := range bits {
		if k < n/2-500 || k > n/2+500 {
			t.Errorf("bit %d set in %d of %d ids", i, k, n)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"", "abc", NewID() + "a", strings.ToUpper(NewID()), "abcdefghijklmnopqrstuvwxy0", "abcdefghijklmnopqrstuvwxy\""} {
		if ValidID(s) {
			t.Errorf("ValidID(%q)", s)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"abcdefghijklmnopqrstuvwxyz": "abcd…",
		"ab":                         "ab…",
		"":                           "…",
		"a\r\n\"b":                   "a???…",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	id := NewID()
	if strings.Contains(Redact(id), id[4:]) {
		t.Error("Redact leaks the id")
	}
}

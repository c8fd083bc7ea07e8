package lmtp

import (
	"strings"
	"testing"
)

func TestLogText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.org", "alice@example.org"},
		{"zoë@example.net", "zoë@example.net"},
		{"a\x1b[2Jb\x7f@x", "a?[2Jb?@x"},
		{"bad\xffutf8", "bad?utf8"},
		{strings.Repeat("x", 300), strings.Repeat("x", 256) + "..."},
	} {
		if got := logText(tc.in); got != tc.want {
			t.Errorf("logText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

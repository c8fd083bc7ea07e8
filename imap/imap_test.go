package imap

import "testing"

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateNotAuthenticated: "not authenticated",
		StateAuthenticated:    "authenticated",
		StateSelected:         "selected",
		StateLogout:           "logout",
	} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q", s, got)
		}
	}
}

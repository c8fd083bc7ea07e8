package server_test

import (
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestCommandStateMatrix sends every command in every state (RFC 3501 §3,
// §6) and checks that it is refused exactly where it is not allowed, and
// runs where it is.
func TestCommandStateMatrix(t *testing.T) {
	type state int
	const (
		notAuth state = iota
		auth
		selected
	)
	stateName := []string{"not authenticated", "authenticated", "selected"}
	all := []state{notAuth, auth, selected}
	authed := []state{auth, selected}
	cases := []struct {
		cmd     string
		allowed []state
	}{
		{"CAPABILITY", all},
		{"NOOP", all},
		{`ID NIL`, all},
		{"STARTTLS", []state{notAuth}},
		{"LOGIN alice wrong", []state{notAuth}},
		{"AUTHENTICATE CRAM-MD5", []state{notAuth}},
		{"SELECT INBOX", authed},
		{"EXAMINE INBOX", authed},
		{"CREATE Matrix", authed},
		{"DELETE Matrix", authed},
		{"RENAME Nope Nope2", authed},
		{"SUBSCRIBE INBOX", authed},
		{"UNSUBSCRIBE INBOX", authed},
		{`LIST "" INBOX`, authed},
		{`LSUB "" INBOX`, authed},
		{"STATUS INBOX (MESSAGES)", authed},
		{"NAMESPACE", authed},
		{"APPEND Nope {1+}\r\nx", authed},
		{"ENABLE X-NOTHING", []state{auth}},
		{"CHECK", []state{selected}},
		{"EXPUNGE", []state{selected}},
		{"UID EXPUNGE 1", []state{selected}},
		{`STORE 1:* +FLAGS (\Seen)`, []state{selected}},
		{`UID STORE 1:* +FLAGS (\Seen)`, []state{selected}},
		{"COPY 1:* Nope", []state{selected}},
		{"UID COPY 1:* Nope", []state{selected}},
		{"MOVE 1:* Nope", []state{selected}},
		{"UID MOVE 1:* Nope", []state{selected}},
	}
	env := imaptest.Start(t, nil)
	for _, st := range all {
		c := env.Dial(t)
		if st >= auth {
			c.ExpectTagged("L", "LOGIN alice secret", "L OK")
		}
		if st == selected {
			c.ExpectTagged("S", "SELECT INBOX", "S OK")
		}
		for _, tc := range cases {
			name := strings.Fields(tc.cmd)[0]
			if name == "UID" {
				name += " " + strings.Fields(tc.cmd)[1]
			}
			ok := false
			for _, a := range tc.allowed {
				ok = ok || a == st
			}
			got := c.Cmd("m", tc.cmd)
			last := got[len(got)-1]
			refused := "m BAD " + name + " not allowed in the " + stateName[st] + " state"
			if ok && last == refused {
				t.Errorf("%s refused in the %s state", tc.cmd, stateName[st])
			}
			if !ok && last != refused {
				t.Errorf("%s in the %s state: %q, want %q", tc.cmd, stateName[st], last, refused)
			}
			if name == "SELECT" || name == "EXAMINE" {
				// Keep the state the matrix is testing.
				if st == auth {
					c.ExpectTagged("u", "UNSELECT", "u OK")
				} else if st == selected {
					c.ExpectTagged("s", "SELECT INBOX", "s OK")
				}
			}
		}
		// The commands that leave a state, last.
		for _, cmd := range []string{"CLOSE", "UNSELECT"} {
			got := c.Cmd("x", cmd)
			want := "x OK " + cmd + " completed"
			if st != selected {
				want = "x BAD " + cmd + " not allowed in the " + stateName[st] + " state"
			} else {
				c.ExpectTagged("s", "SELECT INBOX", "s OK")
			}
			if got[len(got)-1] != want {
				t.Errorf("%s in the %s state: %q, want %q", cmd, stateName[st], got, want)
			}
		}
		c.Expect("z", "LOGOUT", "* BYE Logging out", "z OK LOGOUT completed")
	}
}

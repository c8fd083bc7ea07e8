package server

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/imap"
)

// A session's \Recent UIDs are saved in wire syntax; states saved with the
// list of range objects still load.
func TestSessionStateRecent(t *testing.T) {
	in := Session{
		State:    imap.StateSelected,
		UserID:   7,
		Selected: &Selected{MailboxID: 3, Name: "INBOX", UIDValidity: 42, Recent: imap.SeqSet{{Start: 1, Stop: 5}, {Start: 7, Stop: 7}, {Start: 9, Stop: 4000000000}}},
		Enabled:  []string{"CONDSTORE"},
	}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"recent":"1:5,7,9:4000000000"`) {
		t.Errorf("saved state %s, want recent in wire syntax", b)
	}
	var out Session
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip: %+v, %v; want %+v", out.Selected, err, in.Selected)
	}

	old := `{"state":2,"user_id":7,"selected":{"mailbox_id":3,"name":"INBOX","uidvalidity":42,` +
		`"recent":[{"Start":1,"Stop":5},{"Start":7,"Stop":7},{"Start":9,"Stop":4000000000}]},"enabled":["CONDSTORE"]}`
	out = Session{}
	if err := json.Unmarshal([]byte(old), &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("state in the old form: %+v, %v; want %+v", out.Selected, err, in.Selected)
	}

	// No \Recent: the key is left out, and reads back as nil.
	in.Selected.Recent = nil
	b, _ = json.Marshal(&in)
	if strings.Contains(string(b), "recent") {
		t.Errorf("saved state %s has a recent key", b)
	}
	out = Session{}
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip without recent: %+v, %v", out.Selected, err)
	}

	for _, bad := range []string{`"1:x"`, `"0"`, `"1,,2"`, `"*"`, `5`} {
		var s Selected
		if err := json.Unmarshal([]byte(`{"mailbox_id":1,"recent":`+bad+`}`), &s); err == nil {
			t.Errorf("recent %s: no error, got %v", bad, s.Recent)
		}
	}
}

// The registry's state holds the \Recent UIDs after the JSON, on a line
// of their own; states that hold them inside the JSON (written before)
// still load, and so does a session with nothing selected.
func TestEncodeSession(t *testing.T) {
	in := Session{
		State:    imap.StateSelected,
		UserID:   7,
		UserName: "alice",
		Selected: &Selected{MailboxID: 3, Name: "INBOX", UIDValidity: 42, Recent: imap.SeqSet{{Start: 1, Stop: 5}, {Start: 7, Stop: 7}}},
		Enabled:  []string{"CONDSTORE"},
	}
	b, err := encodeSession(&in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"state":2,"user_id":7,"user":"alice","selected":{"mailbox_id":3,"name":"INBOX","uidvalidity":42},"enabled":["CONDSTORE"]}` + "\n1:5,7"; string(b) != want {
		t.Errorf("state %q, want %q", b, want)
	}
	if in.Selected.Recent == nil {
		t.Error("encodeSession cleared the session's own \\Recent")
	}
	var out Session
	if err := decodeSession(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip: %+v, %v; want %+v", out.Selected, err, in.Selected)
	}
	inJSON, _ := json.Marshal(&in)
	out = Session{}
	if err := decodeSession(inJSON, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("state with Recent in the JSON: %+v, %v", out.Selected, err)
	}
	auth := Session{State: imap.StateAuthenticated, UserID: 7, UserName: "alice"}
	b, _ = encodeSession(&auth)
	out = Session{}
	if err := decodeSession(b, &out); err != nil || !reflect.DeepEqual(out, auth) || strings.Contains(string(b), "\n") {
		t.Errorf("nothing selected: %q → %+v, %v", b, out, err)
	}
	for _, bad := range []string{`{"state":1}` + "\n1:5", `{"state":2,"selected":{"mailbox_id":1}}` + "\n1:x"} {
		if err := decodeSession([]byte(bad), &out); err == nil {
			t.Errorf("decodeSession(%q): no error", bad)
		}
	}
}

// sameSession compares every field of Session and Selected: changing any
// one makes two sessions differ, and a field added to either type fails
// here until sameSession looks at it.
func TestSameSession(t *testing.T) {
	base := func() *Session {
		return &Session{
			State: imap.StateSelected, UserID: 7, UserName: "alice",
			Selected: &Selected{MailboxID: 3, Name: "INBOX", ReadOnly: false, UIDValidity: 42,
				Recent: imap.SeqSet{{Start: 1, Stop: 5}}},
			Enabled: []string{"CONDSTORE"},
		}
	}
	if !sameSession(base(), base()) {
		t.Fatal("equal sessions differ")
	}
	changes := map[string]func(s *Session){
		"State":                func(s *Session) { s.State = imap.StateAuthenticated },
		"UserID":               func(s *Session) { s.UserID = 8 },
		"UserName":             func(s *Session) { s.UserName = "bob" },
		"Enabled":              func(s *Session) { s.Enabled = append(s.Enabled, "QRESYNC") },
		"Selected":             func(s *Session) { s.Selected = nil },
		"Selected.MailboxID":   func(s *Session) { s.Selected.MailboxID = 4 },
		"Selected.Name":        func(s *Session) { s.Selected.Name = "Inbox" },
		"Selected.ReadOnly":    func(s *Session) { s.Selected.ReadOnly = true },
		"Selected.UIDValidity": func(s *Session) { s.Selected.UIDValidity = 43 },
		"Selected.Recent":      func(s *Session) { s.Selected.Recent = imap.SeqSet{{Start: 1, Stop: 6}} },
	}
	fields := 0
	for _, typ := range []reflect.Type{reflect.TypeFor[Session](), reflect.TypeFor[Selected]()} {
		for f := range typ.Fields() {
			name := f.Name
			if typ == reflect.TypeFor[Selected]() {
				name = "Selected." + name
			}
			if changes[name] == nil {
				t.Errorf("field %s: sameSession does not compare it (and this test does not change it)", name)
			}
			fields++
		}
	}
	if fields != len(changes) {
		t.Errorf("%d fields, %d changes tested", fields, len(changes))
	}
	for name, change := range changes {
		s := base()
		change(s)
		if sameSession(base(), s) || sameSession(s, base()) {
			t.Errorf("sessions that differ in %s compare equal", name)
		}
	}
}

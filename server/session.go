package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/quickimap/quickimap/imap"
)

// Session is the IMAP state of one client, apart from the network
// connection that carries it: resumable sessions (the reconnect draft) move
// it from one connection to another and keep it in the store, so it holds
// only plain, serializable data.
type Session struct {
	State    imap.State `json:"state"`
	UserID   int64      `json:"user_id,omitempty"`
	UserName string     `json:"user,omitempty"`
	// Selected is the selected mailbox, nil outside the selected state.
	Selected *Selected `json:"selected,omitempty"`
	// Enabled lists the extensions turned on with ENABLE (RFC 5161), in
	// upper case.
	Enabled []string `json:"enabled,omitempty"`
}

// Selected is the state of the selected mailbox.
type Selected struct {
	// MailboxID is the mailbox's stable id: it survives RENAME.
	MailboxID int64 `json:"mailbox_id"`
	// Name is the mailbox name exactly as the client spelled it in SELECT
	// or EXAMINE (wire form, before modified UTF-7 decoding); the
	// reconnect draft's SELECTED response repeats it.
	Name     string `json:"name"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// UIDValidity is the UIDVALIDITY reported at selection.
	UIDValidity uint32 `json:"uidvalidity"`
	// Recent holds the session's \Recent UIDs (compact ranges); filled
	// when the session is saved, so that a resumed session keeps them.
	Recent imap.SeqSet `json:"recent,omitempty"`
}

// IsEnabled reports whether ext was enabled with ENABLE.
func (s *Session) IsEnabled(ext string) bool {
	for _, e := range s.Enabled {
		if e == ext {
			return true
		}
	}
	return false
}

// sameSession reports whether a and b hold the same state, that is,
// would be saved alike (TestSameSession fails when a field is added here
// and not there).
func sameSession(a, b *Session) bool {
	if a.State != b.State || a.UserID != b.UserID || a.UserName != b.UserName ||
		!slices.Equal(a.Enabled, b.Enabled) || (a.Selected == nil) != (b.Selected == nil) {
		return false
	}
	if a.Selected == nil {
		return true
	}
	x, y := a.Selected, b.Selected
	return x.MailboxID == y.MailboxID && x.Name == y.Name && x.ReadOnly == y.ReadOnly &&
		x.UIDValidity == y.UIDValidity && slices.Equal(x.Recent, y.Recent)
}

// encodeSession serializes s for the session registry: JSON for the
// small fields, then a newline and the \Recent UIDs in wire syntax
// ("1:5,7"). A session that claimed a mailbox with holes as \Recent
// holds thousands of ranges; kept out of the JSON, a resume parses them
// once instead of scanning them as JSON at each level of decoding.
// json.Marshal never writes a raw newline, so the first one ends the
// JSON.
func encodeSession(s *Session) ([]byte, error) {
	if s.Selected == nil || len(s.Selected.Recent) == 0 {
		return json.Marshal(s)
	}
	plain := *s
	sel := *s.Selected
	sel.Recent = nil
	plain.Selected = &sel
	b, err := json.Marshal(&plain)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	return s.Selected.Recent.AppendTo(b), nil
}

// decodeSession reads what encodeSession wrote, and the plain JSON
// (Recent inside) that states saved before were written as.
func decodeSession(b []byte, s *Session) error {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return json.Unmarshal(b, s)
	}
	if err := json.Unmarshal(b[:i], s); err != nil {
		return err
	}
	if s.Selected == nil {
		return errors.New("session state: \\Recent UIDs without a selected mailbox")
	}
	set, err := parseUIDSet(string(b[i+1:]))
	s.Selected.Recent = set
	return err
}

// MarshalJSON writes Recent as a UID set in wire syntax ("1:5,7"), which a
// resume decodes many times faster than a list of range objects: a session
// that claimed a mailbox with holes as \Recent holds thousands of ranges.
func (s Selected) MarshalJSON() ([]byte, error) {
	type plain Selected
	return json.Marshal(struct {
		plain
		Recent string `json:"recent,omitempty"` // shadows plain's
	}{plain(s), s.Recent.String()})
}

// UnmarshalJSON reads Recent in wire syntax, or as the list of {"Start",
// "Stop"} objects that states saved before were written with.
func (s *Selected) UnmarshalJSON(b []byte) error {
	type plain Selected
	var v struct {
		plain
		Recent json.RawMessage `json:"recent,omitempty"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Selected(v.plain)
	s.Recent = nil
	switch r := v.Recent; {
	case len(r) == 0 || string(r) == "null":
		return nil
	case r[0] == '"':
		var str string
		if err := json.Unmarshal(r, &str); err != nil {
			return err
		}
		set, err := parseUIDSet(str)
		s.Recent = set
		return err
	default:
		return json.Unmarshal(r, &s.Recent)
	}
}

// parseUIDSet parses a UID set as imap.SeqSet.String writes it, without
// "*" ("" is the empty set).
func parseUIDSet(str string) (imap.SeqSet, error) {
	if str == "" {
		return nil, nil
	}
	set := make(imap.SeqSet, 0, strings.Count(str, ",")+1)
	for part := range strings.SplitSeq(str, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		z := a
		if err == nil && isRange {
			z, err = strconv.ParseUint(hi, 10, 32)
		}
		if err != nil || a == 0 || z == 0 {
			return nil, errors.New("bad UID set in session state: " + part)
		}
		set = append(set, imap.NumRange{Start: uint32(a), Stop: uint32(z)})
	}
	return set, nil
}

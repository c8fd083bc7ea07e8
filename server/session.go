package server

import (
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

package server

import (
	"runtime/debug"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/wire"
)

// handler parses a command's arguments (after the command name, through
// the final CRLF), executes it and returns its tagged completion. A
// *wire.SyntaxError or *wire.LimitError returned before the command ran is
// answered by the caller; any other error ends the connection.
type handler func(c *conn, tag string) (*status, error)

// command is an entry of the dispatch table.
type command struct {
	fn handler
	// states in which the command is allowed (RFC 3501 §6).
	states []imap.State
}

func (cmd command) allowed(s imap.State) bool {
	for _, st := range cmd.states {
		if st == s {
			return true
		}
	}
	return false
}

var (
	anyState      = []imap.State{imap.StateNotAuthenticated, imap.StateAuthenticated, imap.StateSelected}
	notAuthState  = []imap.State{imap.StateNotAuthenticated}
	authenticated = []imap.State{imap.StateAuthenticated, imap.StateSelected}
	authOnly      = []imap.State{imap.StateAuthenticated}
	selectedState = []imap.State{imap.StateSelected}
)

// commands is the dispatch table, keyed by upper-case command name ("UID
// FETCH" for UID commands). It is built once and never modified.
var commands = map[string]command{
	// Any state (RFC 3501 §6.1).
	"CAPABILITY": {(*conn).cmdCapability, anyState},
	"NOOP":       {(*conn).cmdNoop, anyState},
	"LOGOUT":     {(*conn).cmdLogout, anyState},
	"ID":         {(*conn).cmdID, anyState},

	// Not authenticated (§6.2).
	"STARTTLS":     {(*conn).cmdStartTLS, notAuthState},
	"LOGIN":        {(*conn).cmdLogin, notAuthState},
	"AUTHENTICATE": {(*conn).cmdAuthenticate, notAuthState},

	// Authenticated (§6.3), also valid when selected.
	"SELECT":      {(*conn).cmdSelect, authenticated},
	"EXAMINE":     {(*conn).cmdExamine, authenticated},
	"CREATE":      {(*conn).cmdCreate, authenticated},
	"DELETE":      {(*conn).cmdDelete, authenticated},
	"RENAME":      {(*conn).cmdRename, authenticated},
	"SUBSCRIBE":   {(*conn).cmdSubscribe, authenticated},
	"UNSUBSCRIBE": {(*conn).cmdUnsubscribe, authenticated},
	"LIST":        {(*conn).cmdList, authenticated},
	"LSUB":        {(*conn).cmdLsub, authenticated},
	"STATUS":      {(*conn).cmdStatus, authenticated},
	"NAMESPACE":   {(*conn).cmdNamespace, authenticated},
	// RFC 5161 §3.1: ENABLE is valid in the authenticated state only,
	// before any mailbox is selected.
	"ENABLE": {(*conn).cmdEnable, authOnly},

	// Selected (§6.4).
	"CHECK":    {(*conn).cmdCheck, selectedState},
	"CLOSE":    {(*conn).cmdClose, selectedState},
	"UNSELECT": {(*conn).cmdUnselect, selectedState},
}

func stack() string { return string(debug.Stack()) }

func syntaxErr(msg string) error { return &wire.SyntaxError{Msg: msg} }

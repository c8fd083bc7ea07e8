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
	// noExpunge: EXPUNGE responses must not be sent while responding
	// (RFC 3501 §7.4.1: FETCH, STORE, SEARCH).
	noExpunge bool
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
	"CAPABILITY": {fn: (*conn).cmdCapability, states: anyState},
	"NOOP":       {fn: (*conn).cmdNoop, states: anyState},
	"LOGOUT":     {fn: (*conn).cmdLogout, states: anyState},
	"ID":         {fn: (*conn).cmdID, states: anyState},

	// Not authenticated (§6.2).
	"STARTTLS":     {fn: (*conn).cmdStartTLS, states: notAuthState},
	"LOGIN":        {fn: (*conn).cmdLogin, states: notAuthState},
	"AUTHENTICATE": {fn: (*conn).cmdAuthenticate, states: notAuthState},

	// Authenticated (§6.3), also valid when selected.
	"SELECT":      {fn: (*conn).cmdSelect, states: authenticated},
	"EXAMINE":     {fn: (*conn).cmdExamine, states: authenticated},
	"CREATE":      {fn: (*conn).cmdCreate, states: authenticated},
	"DELETE":      {fn: (*conn).cmdDelete, states: authenticated},
	"RENAME":      {fn: (*conn).cmdRename, states: authenticated},
	"SUBSCRIBE":   {fn: (*conn).cmdSubscribe, states: authenticated},
	"UNSUBSCRIBE": {fn: (*conn).cmdUnsubscribe, states: authenticated},
	"LIST":        {fn: (*conn).cmdList, states: authenticated},
	"LSUB":        {fn: (*conn).cmdLsub, states: authenticated},
	"STATUS":      {fn: (*conn).cmdStatus, states: authenticated},
	"NAMESPACE":   {fn: (*conn).cmdNamespace, states: authenticated},
	// RFC 5161 §3.1: ENABLE is valid in the authenticated state only,
	// before any mailbox is selected.
	"ENABLE": {fn: (*conn).cmdEnable, states: authOnly},

	// Selected (§6.4).
	"CHECK":    {fn: (*conn).cmdCheck, states: selectedState},
	"CLOSE":    {fn: (*conn).cmdClose, states: selectedState},
	"UNSELECT": {fn: (*conn).cmdUnselect, states: selectedState},

	"APPEND":      {fn: (*conn).cmdAppend, states: authenticated},
	"EXPUNGE":     {fn: (*conn).cmdExpunge, states: selectedState},
	"UID EXPUNGE": {fn: (*conn).cmdUIDExpunge, states: selectedState},
	"FETCH":       {fn: (*conn).cmdFetch, states: selectedState, noExpunge: true},
	"UID FETCH":   {fn: (*conn).cmdUIDFetch, states: selectedState},
	"SEARCH":      {fn: (*conn).cmdSearch, states: selectedState, noExpunge: true},
	"UID SEARCH":  {fn: (*conn).cmdUIDSearch, states: selectedState},
	"STORE":       {fn: (*conn).cmdStore, states: selectedState, noExpunge: true},
	"UID STORE":   {fn: (*conn).cmdUIDStore, states: selectedState},
	"COPY":        {fn: (*conn).cmdCopy, states: selectedState},
	"UID COPY":    {fn: (*conn).cmdUIDCopy, states: selectedState},
	"MOVE":        {fn: (*conn).cmdMove, states: selectedState},
	"UID MOVE":    {fn: (*conn).cmdUIDMove, states: selectedState},
	"IDLE":        {fn: (*conn).cmdIdle, states: authenticated},
	"COMPRESS":    {fn: (*conn).cmdCompress, states: authenticated},

	// Resumable sessions (draft-ietf-lemonade-reconnect-07 §3), only
	// when Options.Sessions is set (cmd_sid.go checks).
	"SID":       {fn: (*conn).cmdSID, states: authenticated},
	"DELETESID": {fn: (*conn).cmdDeleteSID, states: authenticated},
}

func stack() string { return string(debug.Stack()) }

func syntaxErr(msg string) error { return &wire.SyntaxError{Msg: msg} }

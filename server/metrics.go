package server

import (
	"time"

	"github.com/quickimap/quickimap/imap"
)

// Metrics receives the server's measurements; package metrics exports
// them to Prometheus. Options.Metrics nil takes none. The methods are
// called from many connection goroutines at once and on every command, so
// an implementation must be safe for concurrent use and cheap: resolve
// labels ahead of time (Command is asked once per command name, by New)
// and count with atomics.
type Metrics interface {
	// Command returns the recorder of one command: a name of the
	// dispatch table ("UID FETCH" for UID commands) or UnknownCommand.
	Command(name string) CommandMetrics
	// ConnOpened counts a connection accepted (in the not authenticated
	// state); ConnState moves it between states (imap.State), and
	// ConnClosed removes it from the state it was last in.
	ConnOpened()
	ConnState(from, to imap.State)
	ConnClosed(last imap.State)
	// ConnRejected counts a connection refused (with BYE) for reason:
	// RejectMaxConnections, RejectMaxConnectionsPerIP or RejectOutOfFDs.
	ConnRejected(reason string)
	// Login counts a LOGIN or AUTHENTICATE by its result.
	Login(result LoginResult)
	// Resume counts a SID command that named a session
	// (draft-ietf-lemonade-reconnect-07 §3.3) by its outcome.
	Resume(outcome ResumeOutcome)
	// Bytes adds to the bytes received from and sent to clients (inside
	// TLS; after COMPRESS, the compressed bytes).
	Bytes(in, out int64)
}

// CommandMetrics records the commands of one name.
type CommandMetrics interface {
	// Done records a command that ended with a tagged result after d
	// (for IDLE, the whole time idling).
	Done(result Result, d time.Duration)
}

// Reasons of Metrics.ConnRejected.
const (
	RejectMaxConnections      = "max_connections"
	RejectMaxConnectionsPerIP = "max_connections_per_ip"
	RejectOutOfFDs            = "out_of_file_descriptors"
)

// UnknownCommand is the command name under which commands that are not
// in the dispatch table, or whose name could not be read, are counted:
// client input never becomes a label.
const UnknownCommand = "UNKNOWN"

// CommandNames returns the names Metrics.Command is asked for: every
// command of the dispatch table and UnknownCommand.
func CommandNames() []string {
	names := make([]string, 0, len(commands)+1)
	for name := range commands {
		names = append(names, name)
	}
	return append(names, UnknownCommand)
}

// Result is the result of a tagged command completion.
type Result uint8

const (
	ResultNone Result = iota // no tagged response (the connection ended)
	ResultOK
	ResultNO
	ResultBAD
)

func (r Result) String() string {
	switch r {
	case ResultOK:
		return "OK"
	case ResultNO:
		return "NO"
	case ResultBAD:
		return "BAD"
	}
	return "none"
}

func resultOf(typ string) Result {
	switch typ {
	case "OK":
		return ResultOK
	case "NO":
		return ResultNO
	case "BAD":
		return ResultBAD
	}
	return ResultNone
}

// LoginResult is the outcome of a login attempt.
type LoginResult string

const (
	LoginOK LoginResult = "ok"
	// LoginFailed: wrong password, unknown user, malformed PLAIN
	// response, or an authorization identity refused.
	LoginFailed LoginResult = "failed"
	// LoginRefused: a plain-text login without TLS where TLS is required.
	LoginRefused LoginResult = "refused"
	// LoginUnavailable: the store failed or the server is shutting down.
	LoginUnavailable LoginResult = "unavailable"
	// LoginThrottled: refused unchecked, the client's address having
	// failed too often.
	LoginThrottled LoginResult = "throttled"
)

// ResumeOutcome is the outcome of SID with a session id.
type ResumeOutcome string

const (
	// ResumeResumed: the session was resumed with its changes reported
	// (also when its mailbox is gone: SELECTED without a name).
	ResumeResumed ResumeOutcome = "resumed"
	// ResumeNewSID: resumed, but the client must resync (NEWSID: the
	// UIDVALIDITY changed, or the changes are no longer known).
	ResumeNewSID ResumeOutcome = "newsid"
	// ResumeNoSession: no such session (unknown, expired, another
	// user's); a new one is created if the limits allow.
	ResumeNoSession ResumeOutcome = "no_session"
	// ResumeError: the store failed.
	ResumeError ResumeOutcome = "error"
)

// newCmdMetrics resolves, once, the recorder of each command name.
func newCmdMetrics(m Metrics) map[string]CommandMetrics {
	if m == nil {
		return nil
	}
	out := make(map[string]CommandMetrics, len(commands)+1)
	for _, name := range CommandNames() {
		out[name] = m.Command(name)
	}
	return out
}

// beginCommand starts timing a command (only when metrics are taken).
func (c *conn) beginCommand() {
	if c.s.metrics == nil {
		return
	}
	c.cmdStart = time.Now()
	c.cmdName = UnknownCommand
	c.cmdResult = ResultNone
}

// endCommand records the command begun by beginCommand, unless it goes on
// (IDLE), and what changed with it: the connection's state and bytes.
func (c *conn) endCommand() {
	m := c.s.metrics
	if m == nil {
		return
	}
	if c.idle == nil && c.cmdResult != ResultNone {
		if cm := c.s.cmdMetrics[c.cmdName]; cm != nil {
			cm.Done(c.cmdResult, time.Since(c.cmdStart))
		}
		c.cmdResult = ResultNone
	}
	c.noteMetrics()
}

// noteMetrics reports the connection's state change and bytes since the
// last report.
func (c *conn) noteMetrics() {
	m := c.s.metrics
	if m == nil {
		return
	}
	if st := c.sess.State; st != c.metricState {
		m.ConnState(c.metricState, st)
		c.metricState = st
	}
	in, out := c.bytesIn.Load(), c.bytesOut.Load()
	if in != c.reportedIn || out != c.reportedOut {
		m.Bytes(in-c.reportedIn, out-c.reportedOut)
		c.reportedIn, c.reportedOut = in, out
	}
}

func (c *conn) countLogin(r LoginResult) {
	if m := c.s.metrics; m != nil {
		m.Login(r)
	}
}

func (c *conn) countResume(o ResumeOutcome) {
	if m := c.s.metrics; m != nil {
		m.Resume(o)
	}
}

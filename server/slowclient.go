package server

import (
	"strconv"
	"time"
)

// Deadlines on total time. The read timeouts of deadlineConn measure
// silence, which a client that sends one byte every few seconds never
// lets run out; so a connection also has two deadlines on how long it
// takes to send what it must:
//
//   - loginBy: a connection must be authenticated within PreAuthTimeout
//     of its acceptance (TLS handshake, STARTTLS and LOGIN included),
//     however it spreads its bytes.
//   - rateClock: the bytes of a command (its lines and literals, from
//     its first byte to the last) must arrive at MinRate on average.

// rateClock measures the time a command takes to arrive against the
// bytes it brings. Only the time spent blocked waiting for the client
// counts (the server's own work between two reads, such as storing one
// message of a MULTIAPPEND before the next literal, does not). The
// command starts with an allowance of window; each byte earns 1/min
// seconds and each second of waiting spends one; the allowance never
// exceeds window, so credit earned by a fast start cannot pay for a
// long trickle at the end. When the allowance runs out the connection
// is closed. A client that sends at least min bytes per second never
// runs out; one that pauses (a phone in a tunnel) may pause for up to
// window.
type rateClock struct {
	min    int64 // bytes per second; 0: no minimum
	window time.Duration

	on    bool
	allow time.Duration
	got   int64     // bytes of the current command
	start time.Time // first read of the current command
}

// begin starts the clock for a command.
func (r *rateClock) begin() {
	if r.min <= 0 {
		return
	}
	r.on, r.allow, r.got, r.start = true, r.window, 0, time.Now()
}

// stop stops the clock: the command has been read.
func (r *rateClock) stop() { r.on = false }

// deadline returns when the allowance runs out if nothing more arrives,
// from now.
func (r *rateClock) deadline(now time.Time) time.Time { return now.Add(r.allow) }

// account records a read of n bytes that blocked for waited.
func (r *rateClock) account(n int, waited time.Duration) {
	r.got += int64(n)
	r.allow -= waited
	r.allow += time.Duration(int64(n) * int64(time.Second) / r.min)
	if r.allow > r.window {
		r.allow = r.window
	}
}

// exhausted reports whether the allowance has run out.
func (r *rateClock) exhausted() bool { return r.on && r.allow <= 0 }

// Reasons a limitError gives, in the log's "reason" attribute.
const (
	reasonPreAuth = "preauth-timeout"
	reasonMinRate = "min-rate"
)

// limitError ends a read that a deadline on total time cut short. It is
// not a net.Error timeout, so that nothing retries it as one (see
// peerContext).
type limitError struct {
	reason string
	bye    string // the text of the BYE
	attrs  []any  // for the log line
}

func (e *limitError) Error() string { return "connection too slow: " + e.reason }

// errPreAuthExpired ends a connection that did not log in within
// PreAuthTimeout.
func errPreAuthExpired() error {
	return &limitError{reason: reasonPreAuth, bye: "Not logged in in time; closing"}
}

// limitErr returns the limitError for a read that timed out, or err when
// the timeout was only the read timeout's (silence).
func (d *deadlineConn) limitErr(err error) error {
	now := time.Now()
	if by := d.loginBy.Load(); by != 0 && now.UnixNano() >= by {
		return errPreAuthExpired()
	}
	if d.rate.exhausted() {
		return &limitError{
			reason: reasonMinRate,
			bye:    "Command arriving too slowly; closing",
			attrs: []any{"min_rate", strconv.FormatInt(d.rate.min, 10) + "B/s",
				"bytes", d.rate.got, "elapsed", now.Sub(d.rate.start).Round(time.Millisecond)},
		}
	}
	return err
}

// readDeadline returns the deadline of a read that begins at now: the
// silence allowed, cut short by the deadlines on total time.
func (d *deadlineConn) readDeadline(now time.Time) time.Time {
	dl := now.Add(time.Duration(d.readTimeout.Load()))
	if d.rate.on {
		dl = earliest(dl, d.rate.deadline(now))
	}
	if by := d.loginBy.Load(); by != 0 {
		dl = earliest(dl, time.Unix(0, by))
	}
	return dl
}

package client

import (
	"slices"
	"time"
)

// Event is a change of the synchronized mailbox reported to the
// application: FlagsChanged, Vanished, NewMessages or FullResync.
type Event interface{ event() }

// FlagsChanged reports a message's new flags (sorted).
type FlagsChanged struct {
	UID   uint32
	Flags []string
}

// Vanished reports messages that left the mailbox (ascending UIDs).
type Vanished struct {
	UIDs []uint32
}

// NewMessages reports messages the client did not know before, with
// their flags (ascending UID).
type NewMessages struct {
	Messages []Message
}

// FullResync reports that the client threw its cache away (for example
// because UIDVALIDITY changed, RFC 3501 §2.3.1.1). A NewMessages event
// with every message of the mailbox follows.
type FullResync struct {
	Reason string
}

func (FlagsChanged) event() {}
func (Vanished) event()     {}
func (NewMessages) event()  {}
func (FullResync) event()   {}

// Strategy is how a synchronization was done.
type Strategy int

const (
	// StrategyAuto (zero) lets the client choose; as ForceStrategy it
	// means no restriction.
	StrategyAuto Strategy = iota
	// StrategySID resumes a session (draft-ietf-lemonade-reconnect-07
	// §3.3): AUTHENTICATE and SID in one round trip.
	StrategySID
	// StrategyQRESYNC selects with the QRESYNC parameter (RFC 7162
	// §3.2.5).
	StrategyQRESYNC
	// StrategyCONDSTORE selects with CONDSTORE and fetches the flags
	// changed since HIGHESTMODSEQ (RFC 7162 §3.1), plus a UID SEARCH for
	// expunges.
	StrategyCONDSTORE
	// StrategyFull selects and fetches every message's flags.
	StrategyFull
	// StrategyNoop is a Sync on a connection that was already
	// synchronized: one NOOP.
	StrategyNoop
)

func (s Strategy) String() string {
	switch s {
	case StrategyAuto:
		return "auto"
	case StrategySID:
		return "SID"
	case StrategyQRESYNC:
		return "QRESYNC"
	case StrategyCONDSTORE:
		return "CONDSTORE"
	case StrategyFull:
		return "full"
	case StrategyNoop:
		return "NOOP"
	}
	return "unknown"
}

// SyncResult describes one Sync.
type SyncResult struct {
	// Strategy is the strategy that completed the synchronization
	// (after any fallback).
	Strategy Strategy
	// Fallbacks lists the strategies tried first that failed, in order.
	Fallbacks []Strategy
	// Dialed reports whether the Sync opened a new connection.
	Dialed bool
	// BytesIn and BytesOut count the bytes on the connection (below TLS,
	// so including TLS overhead) during the Sync.
	BytesIn, BytesOut int64
	// RoundTrips counts the times the client sent something and then
	// had to wait for the server, from the greeting on: what the IMAP
	// commands cost, the same over TLS as over a plain connection. The
	// opening of a new connection is not counted here: the TCP connect
	// and the wait for the greeting (nothing was sent), nor TLS.
	RoundTrips int
	// TLSRoundTrips are, on a Sync that dialed, the round trips that
	// TLS added to opening the connection: over implicit TLS, the
	// handshake's (1 with Go's server, TLS 1.2 or 1.3); with STARTTLS,
	// the STARTTLS command and the handshake's (1 with TLS 1.3, 2 with
	// TLS 1.2). (On the wire the client writes twice before an
	// implicit-TLS greeting; the second wait is the wait for the
	// greeting, which a plain connection has too.) After STARTTLS the
	// capabilities are asked again (RFC 3501 §6.2.1): one more round
	// trip, in RoundTrips.
	TLSRoundTrips int
	Duration      time.Duration
	// Compressed reports whether the connection uses COMPRESS=DEFLATE
	// (Options.Compress and the server offers it); the byte counts are
	// then of compressed bytes.
	Compressed bool
	// Events are the changes the Sync found.
	Events []Event
}

// diffEvents compares the state before and after a synchronization.
func diffEvents(old, cur *MailboxState, fullReason string) []Event {
	if fullReason != "" {
		ev := []Event{FullResync{Reason: fullReason}}
		if len(cur.Messages) > 0 {
			ev = append(ev, NewMessages{Messages: cloneMessages(cur.Messages)})
		}
		return ev
	}
	var ev []Event
	var gone []uint32
	var changed []Event
	var added []Message
	i, j := 0, 0
	for i < len(old.Messages) || j < len(cur.Messages) {
		switch {
		case j == len(cur.Messages) || (i < len(old.Messages) && old.Messages[i].UID < cur.Messages[j].UID):
			gone = append(gone, old.Messages[i].UID)
			i++
		case i == len(old.Messages) || cur.Messages[j].UID < old.Messages[i].UID:
			m := cur.Messages[j]
			added = append(added, Message{UID: m.UID, Flags: slices.Clone(m.Flags)})
			j++
		default:
			if !slices.Equal(old.Messages[i].Flags, cur.Messages[j].Flags) {
				changed = append(changed, FlagsChanged{UID: cur.Messages[j].UID, Flags: slices.Clone(cur.Messages[j].Flags)})
			}
			i++
			j++
		}
	}
	if len(gone) > 0 {
		ev = append(ev, Vanished{UIDs: gone})
	}
	ev = append(ev, changed...)
	if len(added) > 0 {
		ev = append(ev, NewMessages{Messages: added})
	}
	return ev
}

func cloneMessages(ms []Message) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = Message{UID: m.UID, Flags: slices.Clone(m.Flags)}
	}
	return out
}

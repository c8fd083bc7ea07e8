// Package client is an IMAP client library that keeps one mailbox of one
// account synchronized over a flaky network with as few bytes and round
// trips as the server allows. A mobile or desktop application embeds it:
//
//	c := client.New(client.Options{
//		Addr: "imap.example.com:993", TLSConfig: &tls.Config{},
//		Username: "alice", Password: pw,
//		Store: &client.FileStore{Path: "inbox.state"},
//	})
//	err := c.Run(ctx, func(ev client.Event) { ... })  // until ctx is done
//	c.Close(context.Background())                      // LOGOUT (PRESERVE)
//
// Sync does one synchronization and reports its cost (SyncResult: bytes,
// round trips, strategy), which is what benchmarks use.
//
// # State
//
// MailboxState holds UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, every UID with
// its flags, the resumable session id (SID) and the server's capabilities
// as last seen, so that the next connection can pipeline before the server
// has repeated them. A StateStore persists it: MemoryStore, or FileStore
// (atomic replace, compact JSON with UID ranges). HIGHESTMODSEQ is
// committed only when a synchronization completes (RFC 7162 §6): a value
// saved before the changes it covers were applied would lose those changes
// after a drop. A corrupt state file means a fresh start, never a panic.
//
// # Strategies
//
// On every (re)connection the client picks the best strategy the server
// offers (Options.ForceStrategy caps the choice for benchmarks):
//
//  1. SID (draft-ietf-lemonade-reconnect-07 §3.3), when the server
//     advertised X-DRAFT-W07-RECONNECT and a session id, UIDVALIDITY and
//     HIGHESTMODSEQ are cached: "SID id uidvalidity modseq", without
//     known-uids (the session knows what this client saw). Answers:
//     SELECTED name + changes: done. NEWSID alone (unknown or expired
//     session: a new one was created, nothing selected) or SELECTED with no
//     name (the mailbox is gone): select the mailbox with the next
//     strategy; the new session holds the selection. SELECTED + NEWSID with
//     another UIDVALIDITY: the cache is thrown away (FullResync event) and
//     UID FETCH 1:* (FLAGS) runs within the selection. NEWSID + SELECTED
//     with the same UIDVALIDITY (the server lost the changes): a
//     CONDSTORE comparison within the selection. NO/BAD: forget the
//     session and fall back.
//  2. QRESYNC (RFC 7162 §3.2.5): ENABLE QRESYNC, then
//     SELECT mbox (QRESYNC (uidvalidity modseq known-uids)).
//  3. CONDSTORE (RFC 7162 §3.1): SELECT mbox (CONDSTORE),
//     UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq) and a UID SEARCH (ESEARCH
//     RETURN (ALL) when offered, RFC 4731) whose answer tells the expunges,
//     pipelined.
//  4. Full: SELECT and UID FETCH 1:* (FLAGS), pipelined. Used with no
//     cache; the SELECT still asks for HIGHESTMODSEQ (ENABLE QRESYNC or
//     SELECT (CONDSTORE)) when the server has it, unless ForceStrategy is
//     StrategyFull.
//
// A SELECT answered BAD falls back one step; a changed UIDVALIDITY under
// QRESYNC or CONDSTORE (RFC 7162 §6 step 1a) empties the cache and fetches
// everything. When the server supports SID and the client holds no
// session, "SID" (§3.2) is pipelined after the SELECT so that the new
// session holds the selection. After every synchronization the number of
// messages is checked against EXISTS; a mismatch is repaired with a UID
// SEARCH (and a FETCH of the UIDs it adds) instead of trusting a wrong
// sequence-number map.
//
// # Pipelining
//
// The greeting's CAPABILITY code tells whether the server has SASL-IR
// (RFC 4959) and AUTH=PLAIN. With both, AUTHENTICATE PLAIN is a single
// line, and when the stored capabilities are known the synchronization's
// commands are written in the same write:
//
//   - SID resume: "a1 AUTHENTICATE PLAIN <b64>" and "a2 SID ..." — one
//     round trip after the greeting. If the authentication fails, SID is
//     answered BAD (not authenticated) and the client reports an
//     *AuthError.
//   - QRESYNC: AUTHENTICATE, ENABLE QRESYNC, SELECT (QRESYNC ...) — one
//     round trip. RFC 5161 §3 says "There are no limitations on pipelining
//     ENABLE", naming "LOGIN immediately followed by ENABLE" and "ENABLE
//     and then immediately SELECT" as examples, and RFC 7162 §3.2.3 only
//     requires that the server has answered ENABLE before it processes
//     the SELECT, which a server executing commands in order does. If the
//     stored capabilities were wrong (ENABLE fails), the SELECT with the
//     QRESYNC parameter is answered BAD and the client falls back to
//     CONDSTORE or a full synchronization.
//   - CONDSTORE and full: AUTHENTICATE, SELECT, UID FETCH (and UID SEARCH)
//     — one round trip.
//
// Without stored capabilities (the first connection) authentication
// takes its own round trip; without SASL-IR the PLAIN response waits for
// the server's "+" (one more); without AUTH=PLAIN the client uses LOGIN.
// Commands are written with the wire package's Encoder, the same one the
// server uses, so atom/quoted/literal choices have one source of truth; a
// literal is sent non-synchronizing when the server has LITERAL+ (RFC
// 7888), else after the server's "+".
//
// # Live updates and events
//
// Run stays connected between synchronizations (IDLE, RFC 2177, renewed
// every IdleRefresh; NOOP polling without it) and applies untagged
// updates: EXISTS (then UID FETCH of the new UIDs), FETCH FLAGS, EXPUNGE
// by sequence number (the state's message list is the sequence→UID map),
// VANISHED (RFC 7162 §3.2.10), EXPUNGED (draft-melnikov-imap-expunged),
// DELETEDSID (the session moved to another connection: the id is
// forgotten). Changes are reported as events: FlagsChanged, Vanished,
// NewMessages, FullResync. A failed connection is retried with jittered,
// capped exponential backoff (Backoff, with an injectable Sleep and Rand
// for tests).
//
// # Counting
//
// Bytes and round trips are counted on the raw connection (below TLS). A
// round trip is counted each time the client reads after having written:
// it sent commands and must wait for their answers. The wait for the
// greeting is not counted. SyncResult.RoundTrips are those from the
// greeting on, the same for a plain and a TLS connection;
// SyncResult.TLSRoundTrips are those TLS added to opening one (the
// handshake, and the STARTTLS command with Options.StartTLS).
package client

package store

import (
	"context"
	"errors"
	"time"
)

// ErrStale is a conditional write of a session (UpdateSession,
// DeleteSessionIf) that found another generation than the caller's:
// another claim took the session meanwhile, and the caller no longer
// holds it.
var ErrStale = errors.New("store: session generation moved on")

// SessionRecord is one resumable session (draft-ietf-lemonade-reconnect-07)
// as the store keeps it. The store knows nothing of what is in State and
// nothing of which connection holds the session: that is the session
// registry's business (package session). It keeps which node does, and
// a generation that says which of that node's claims is current, so that
// nodes sharing the store agree on one holder.
type SessionRecord struct {
	// ID is the session identifier the server generated (the SID). It is
	// scoped to its user: the same ID under another user is another
	// session (the draft, §3.1).
	ID     string
	UserID int64
	// ClientIP is the address of the client that created the session,
	// for the per-address limit and for logs.
	ClientIP string
	// Created and LastActive are kept to the nanosecond. LastActive is
	// when a connection last attached or detached the session.
	Created, LastActive time.Time
	// State is the opaque serialized server session (selected mailbox,
	// its view, enabled extensions...). UserSessions leaves it nil.
	State []byte
	// Owner is the name of the node one of whose connections holds the
	// session, "" when none does (the session is inactive).
	Owner string
	// Generation counts the claims of the session: ClaimSession raises
	// it by one. A holder's later writes are conditional on the
	// generation of its claim (UpdateSession, DeleteSessionIf), so a
	// holder that another claim displaced can no longer write.
	Generation uint64
	// OwnerBeat is the last heartbeat of Owner's node, zero when Owner is
	// "" or never wrote one. Reads fill it; writes ignore it. Whether the
	// owner is alive is the caller's judgment on it.
	OwnerBeat time.Time
}

// Sessions keeps resumable sessions. Records survive a restart of the
// process; they are removed with their user (DeleteUser).
type Sessions interface {
	// SaveSession inserts or replaces the record (rec.UserID, rec.ID),
	// Owner and Generation included, whatever the stored generation:
	// it creates sessions and copies them; a holder's checkpoints go
	// through UpdateSession. ErrNotFound if the user does not exist;
	// ErrInvalid for an empty ID.
	SaveSession(ctx context.Context, rec SessionRecord) error
	// LoadSession returns a record with its state. ErrNotFound, also when
	// the id exists but belongs to another user.
	LoadSession(ctx context.Context, userID int64, id string) (SessionRecord, error)
	// DeleteSession removes a record. ErrNotFound (also for another
	// user's id).
	DeleteSession(ctx context.Context, userID int64, id string) error
	// UserSessions lists a user's sessions, oldest LastActive first (ties
	// by ID), without their State. An unknown user has none.
	UserSessions(ctx context.Context, userID int64) ([]SessionRecord, error)
	// ExpireSessions deletes every record with LastActive strictly before
	// the given time and returns how many it deleted. The store does not
	// know which sessions are in use: the caller keeps those fresh.
	ExpireSessions(ctx context.Context, before time.Time) (int, error)
	// CountSessions returns the number of records of all users.
	CountSessions(ctx context.Context) (int, error)
	// CountIPSessions returns the number of records whose ClientIP is ip.
	CountIPSessions(ctx context.Context, ip string) (int, error)
	// IPSessions lists up to limit records whose ClientIP is ip (all of
	// them when limit <= 0), oldest LastActive first (ties by user, then
	// ID), without their State.
	IPSessions(ctx context.Context, ip string, limit int) ([]SessionRecord, error)

	// ClaimSession makes node the owner of the session and raises its
	// generation by one, in one atomic step, and returns the record as
	// it was before the claim (its Owner, Generation, OwnerBeat and
	// LastActive), with its State: the session is now at Generation+1,
	// owned by node. When the stored LastActive is before touchBefore it
	// becomes now (zero times leave it). ErrNotFound (also for another
	// user's id).
	ClaimSession(ctx context.Context, userID int64, id, node string, touchBefore, now time.Time) (SessionRecord, error)
	// UpdateSession writes rec.LastActive, and rec.State when it is not
	// nil, of the session (rec.UserID, rec.ID) if its generation is still
	// rec.Generation; with release it also clears the owner (the session
	// becomes inactive; its generation stays). ErrNotFound; ErrStale when
	// the generation moved on.
	UpdateSession(ctx context.Context, rec SessionRecord, release bool) error
	// DeleteSessionIf is DeleteSession if the session's generation is
	// still gen. ErrNotFound; ErrStale.
	DeleteSessionIf(ctx context.Context, userID int64, id string, gen uint64) error
	// ReleaseNodeSessions clears the owner of every session node owns
	// (a node starting again: its connections are gone) and returns how
	// many it released.
	ReleaseNodeSessions(ctx context.Context, node string) (int, error)
	// NodeSessions lists the sessions node owns, without their State, in
	// no particular order: what a node checks its holdings against when
	// hints about takeovers may have been lost.
	NodeSessions(ctx context.Context, node string) ([]SessionRecord, error)
	// Heartbeat records that node was alive at the given time (the
	// nodes table: one row per node name).
	Heartbeat(ctx context.Context, node string, at time.Time) error
	// LockSessions takes the user's sessions lock and returns its
	// unlock: one holder at a time among every process that shares the
	// store, so that a limit check and the writes it decides, or a
	// claim, are not interleaved with another node's. It waits until
	// the lock is free or ctx ends (then ctx's error). Not reentrant.
	LockSessions(ctx context.Context, userID int64) (unlock func(), err error)
}

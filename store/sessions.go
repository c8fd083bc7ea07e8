package store

import (
	"context"
	"time"
)

// SessionRecord is one resumable session (draft-ietf-lemonade-reconnect-07)
// as the store keeps it. The store knows nothing of what is in State and
// nothing of whether a connection currently holds the session: that is the
// session registry's business (package session).
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
}

// Sessions keeps resumable sessions. Records survive a restart of the
// process; they are removed with their user (DeleteUser).
type Sessions interface {
	// SaveSession inserts or replaces the record (rec.UserID, rec.ID).
	// ErrNotFound if the user does not exist; ErrInvalid for an empty ID.
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
}

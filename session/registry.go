// Package session is the registry of resumable sessions
// (draft-ietf-lemonade-reconnect-07: SID, DELETESID, LOGOUT (PRESERVE),
// NEWSID, DELETEDSID). It knows nothing of the network: the server asks
// it to create, attach (resume), checkpoint, detach and delete sessions,
// and gives it an opaque Owner token (its connection) and opaque state
// bytes (a serialized server.Session).
//
// # Active and inactive
//
// A session is active while a connection holds it (the draft, §1:
// "inactive" means "not associated with any active TCP connection"). The
// registry keeps only active sessions in memory, one small entry each;
// an inactive session is a row of the store and nothing else — no
// goroutine, no timer, no map entry — so millions can wait to be resumed.
// After a restart every session is inactive.
//
// A session has at most one owner at a time (§3.3): Attach on a session
// that another connection holds moves it and returns the previous owner,
// to which the server sends DELETEDSID. An owner holds at most one
// session: Create or Attach by an owner that holds another session
// makes that one inactive (§3.2: "the existing session becomes inactive").
//
// # Concurrency
//
// Every operation on a user's sessions runs under that user's lock,
// held across its store calls, so that ownership changes, limit checks
// and state writes of one user are serialized (a user has few
// connections, and SID is rare). Different users never wait for each
// other. The owner map has its own mutex, never held across I/O.
//
// # Expiry
//
// A session inactive for longer than Options.Timeout is gone: Attach
// refuses it at once (ErrNotFound) and Expire deletes it from the store.
// The server should call Expire periodically (say every few minutes); it
// costs one indexed delete. An active session never expires: the store's
// LastActive of a session held for long is refreshed by Expire before it
// could fall behind the cutoff.
package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quickimap/quickimap/store"
)

// Errors, to be tested with errors.Is.
var (
	// ErrNotFound: no such session for this user — unknown, malformed,
	// another user's, deleted or expired. The server answers NEWSID (it
	// creates a new session, §3.3).
	ErrNotFound = errors.New("session: no such session")
	// ErrLimit: a per-user (all sessions active), per-address or global
	// limit is reached. The server answers NO (§3.2).
	ErrLimit = errors.New("session: session limit reached")
	// ErrNotOwner: the owner holds no session (it never had one, or it
	// was displaced by a resume on another connection, or deleted).
	ErrNotOwner = errors.New("session: owner holds no session")
)

// Owner identifies the holder of an active session, normally the
// server's connection. It must be comparable and distinct per
// connection: use a pointer.
type Owner any

// Options configures a Registry. Zero values take the defaults; a
// negative limit means no limit.
type Options struct {
	// Now is the clock. Default time.Now; tests inject a fake one.
	Now func() time.Time
	// Timeout is how long an inactive session stays resumable. Default
	// 24h.
	Timeout time.Duration
	// MaxPerUser caps a user's sessions, active or not. At the cap,
	// Create deletes the user's oldest inactive session; when all are
	// active it fails with ErrLimit. Default 20.
	MaxPerUser int
	// MaxPerIP caps the sessions created from one client address (all
	// users together). At the cap Create deletes the address's oldest
	// inactive session of the same user, else the address's oldest
	// inactive session of any user (the draft, §7: "the oldest inactive
	// session must be destroyed"); when all are active it fails with
	// ErrLimit. Default 10,000: phones behind carrier-grade NAT share
	// addresses, and with MaxPerUser at 20 only an address with hundreds
	// of accounts behind it ever reaches the cap.
	MaxPerIP int
	// MaxTotal caps all sessions of the server; at the cap Create fails
	// with ErrLimit. Default 1,000,000.
	MaxTotal int
}

// DefaultMaxPerIP is the default of Options.MaxPerIP.
const DefaultMaxPerIP = 10_000

// Registry is the resumable-session registry. It is safe for concurrent
// use.
type Registry struct {
	st   store.Sessions
	opts Options

	locks userLocks

	mu     sync.Mutex
	active map[key]*holding // active sessions
	owners map[Owner]key    // inverse of active
}

type key struct {
	user int64
	id   string
}

// holding is an active session's in-memory entry.
type holding struct {
	owner    Owner
	created  time.Time
	ip       string
	lastSave time.Time // LastActive as last written to the store
}

// New returns a registry over st. All sessions st holds start inactive.
func New(st store.Sessions, opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 24 * time.Hour
	}
	if opts.MaxPerUser == 0 {
		opts.MaxPerUser = 20
	}
	if opts.MaxPerIP == 0 {
		opts.MaxPerIP = DefaultMaxPerIP
	}
	if opts.MaxTotal == 0 {
		opts.MaxTotal = 1_000_000
	}
	return &Registry{
		st:     st,
		opts:   opts,
		locks:  userLocks{m: map[int64]*userLock{}},
		active: map[key]*holding{},
		owners: map[Owner]key{},
	}
}

// Timeout returns the configured inactivity timeout.
func (r *Registry) Timeout() time.Duration { return r.opts.Timeout }

// Create makes a new session for the user, active on owner, and returns
// its id (the server sends it in NEWSID). ip is the client's address,
// for the per-address limit. The session's state is empty until the
// first Save or Detach. If owner held another session, that one becomes
// inactive (its last saved state is kept; Save it first).
//
// Limits (§3.2, §7): at the global or per-address limit, ErrLimit; at the
// per-user limit, the user's oldest inactive session is deleted, or
// ErrLimit if all are active.
func (r *Registry) Create(ctx context.Context, userID int64, ip string, owner Owner) (string, error) {
	defer r.locks.lock(userID)()
	if lim := r.opts.MaxTotal; lim > 0 {
		n, err := r.st.CountSessions(ctx)
		if err != nil {
			return "", err
		}
		if n >= lim {
			return "", fmt.Errorf("%w: %d sessions on the server", ErrLimit, n)
		}
	}
	if lim := r.opts.MaxPerIP; lim > 0 {
		n, err := r.st.CountIPSessions(ctx, ip)
		if err != nil {
			return "", err
		}
		if n >= lim {
			if err := r.evictAtAddress(ctx, userID, ip, owner, n-lim+1); err != nil {
				return "", err
			}
		}
	}
	if lim := r.opts.MaxPerUser; lim > 0 {
		list, err := r.st.UserSessions(ctx, userID)
		if err != nil {
			return "", err
		}
		excess := len(list) - lim + 1
		// The owner's own session becomes inactive when this one is
		// created: it may be evicted to make room (but is kept otherwise).
		for _, rec := range list { // oldest LastActive first
			if excess <= 0 {
				break
			}
			if r.isActive(key{userID, rec.ID}, owner) {
				continue
			}
			if err := r.st.DeleteSession(ctx, userID, rec.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return "", err
			}
			r.release(key{userID, rec.ID})
			excess--
		}
		if excess > 0 {
			return "", fmt.Errorf("%w: %d active sessions for the user", ErrLimit, len(list))
		}
	}
	now := r.opts.Now()
	rec := store.SessionRecord{ID: NewID(), UserID: userID, ClientIP: ip, Created: now, LastActive: now}
	if err := r.st.SaveSession(ctx, rec); err != nil {
		return "", err
	}
	r.hold(key{userID, rec.ID}, &holding{owner: owner, created: now, ip: ip, lastSave: now})
	return rec.ID, nil
}

// evictAtAddress deletes need inactive sessions created from ip, to make
// room for a new one of userID (whose lock the caller holds): the user's
// own first, oldest first, then other users', oldest first. Another
// user's session is deleted only under that user's lock, taken without
// waiting (a user busy with its sessions keeps them this time), so two
// users evicting each other cannot deadlock. owner's own session counts
// as inactive: it becomes so when the new one is created. ErrLimit when
// fewer than need could be deleted.
func (r *Registry) evictAtAddress(ctx context.Context, userID int64, ip string, owner Owner, need int) error {
	list, err := r.st.IPSessions(ctx, ip, 0)
	if err != nil {
		return err
	}
	own := make([]store.SessionRecord, 0, len(list))
	others := make([]store.SessionRecord, 0, len(list))
	for _, rec := range list {
		if rec.UserID == userID {
			own = append(own, rec)
		} else {
			others = append(others, rec)
		}
	}
	for _, rec := range own {
		if need <= 0 {
			return nil
		}
		k := key{userID, rec.ID}
		if r.isActive(k, owner) {
			continue
		}
		if err := r.st.DeleteSession(ctx, userID, rec.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		r.release(k)
		need--
	}
	for _, rec := range others {
		if need <= 0 {
			return nil
		}
		unlock, ok := r.locks.tryLock(rec.UserID)
		if !ok {
			continue
		}
		k := key{rec.UserID, rec.ID}
		if r.isActive(k, nil) {
			unlock()
			continue
		}
		err := r.st.DeleteSession(ctx, rec.UserID, rec.ID)
		unlock()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		need--
	}
	if need > 0 {
		return fmt.Errorf("%w: every session from %s is active", ErrLimit, ip)
	}
	return nil
}

// Attach resumes the user's session id on owner (SID with a session id)
// and returns its record, with the state last saved. If another owner
// held it, that owner loses it and is returned as prev (the server sends
// it DELETEDSID; its later Save, Detach or Delete fail with ErrNotOwner).
// If owner held another session, that one becomes inactive.
//
// ErrNotFound for an unknown, malformed, expired or other user's id.
// Attaching a session the owner already holds returns it with prev nil.
func (r *Registry) Attach(ctx context.Context, userID int64, id string, owner Owner) (rec store.SessionRecord, prev Owner, err error) {
	if !ValidID(id) {
		return store.SessionRecord{}, nil, ErrNotFound
	}
	k := key{userID, id}
	defer r.locks.lock(userID)()
	rec, err = r.st.LoadSession(ctx, userID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.SessionRecord{}, nil, ErrNotFound
	}
	if err != nil {
		return store.SessionRecord{}, nil, err
	}
	r.mu.Lock()
	h := r.active[k]
	r.mu.Unlock()
	now := r.opts.Now()
	if h == nil && rec.LastActive.Before(now.Add(-r.opts.Timeout)) {
		// Expired but not yet swept.
		if err := r.st.DeleteSession(ctx, userID, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.SessionRecord{}, nil, err
		}
		return store.SessionRecord{}, nil, ErrNotFound
	}
	if h != nil && h.owner == owner {
		return rec, nil, nil
	}
	// Touch: the store's LastActive says when it was last attached, so
	// that a crash while it is held leaves it resumable. A LastActive
	// younger than Timeout/2 (a phone back from a dropped connection:
	// the detach wrote it moments ago) is kept as it is, which saves
	// the resume a durable write: a crash then leaves the session
	// resumable for at least Timeout/2, the bound Expire keeps for
	// every held session (it refreshes those whose lastSave is older).
	lastSave := rec.LastActive
	if rec.LastActive.Before(now.Add(-r.opts.Timeout / 2)) {
		rec.LastActive = now
		if err := r.st.SaveSession(ctx, rec); err != nil {
			if errors.Is(err, store.ErrNotFound) { // the user is gone
				err = ErrNotFound
			}
			return store.SessionRecord{}, nil, err
		}
		lastSave = now
	}
	if h != nil {
		prev = h.owner
	}
	r.hold(k, &holding{owner: owner, created: rec.Created, ip: rec.ClientIP, lastSave: lastSave})
	return rec, prev, nil
}

// Save checkpoints the state of the session owner holds, which stays
// active (the server calls it after a command that changes the session:
// SELECT, CLOSE, ENABLE...), so that a resume after a takeover or a crash
// finds it. ErrNotOwner.
func (r *Registry) Save(ctx context.Context, owner Owner, state []byte) error {
	return r.persist(ctx, owner, state, false)
}

// Detach saves the state of the session owner holds and makes it
// inactive and resumable (LOGOUT (PRESERVE), a dropped connection, a
// shutdown). The session is inactive afterwards even when saving failed
// (the error is returned; the last saved state stays). ErrNotOwner.
func (r *Registry) Detach(ctx context.Context, owner Owner, state []byte) error {
	return r.persist(ctx, owner, state, true)
}

func (r *Registry) persist(ctx context.Context, owner Owner, state []byte, detach bool) error {
	k, ok := r.heldBy(owner)
	if !ok {
		return ErrNotOwner
	}
	defer r.locks.lock(k.user)()
	r.mu.Lock()
	h := r.active[k]
	r.mu.Unlock()
	if h == nil || h.owner != owner {
		return ErrNotOwner // displaced meanwhile
	}
	now := r.opts.Now()
	if state == nil {
		state = []byte{}
	}
	err := r.st.SaveSession(ctx, store.SessionRecord{
		ID: k.id, UserID: k.user, ClientIP: h.ip, Created: h.created, LastActive: now, State: state,
	})
	if detach {
		r.release(k)
	} else if err == nil {
		r.mu.Lock()
		h.lastSave = now
		r.mu.Unlock()
	}
	return err
}

// Delete ends the session owner holds (DELETESID, LOGOUT without
// PRESERVE): it is removed from the store and cannot be resumed.
// ErrNotOwner (the server answers BAD to DELETESID: no current session).
func (r *Registry) Delete(ctx context.Context, owner Owner) error {
	k, ok := r.heldBy(owner)
	if !ok {
		return ErrNotOwner
	}
	defer r.locks.lock(k.user)()
	r.mu.Lock()
	h := r.active[k]
	r.mu.Unlock()
	if h == nil || h.owner != owner {
		return ErrNotOwner
	}
	err := r.st.DeleteSession(ctx, k.user, k.id)
	if errors.Is(err, store.ErrNotFound) {
		err = nil // already gone (its user was deleted): the outcome is the same
	}
	r.release(k)
	return err
}

// Expire deletes the sessions inactive for longer than Timeout and
// returns how many. Active sessions held for long have their stored
// LastActive refreshed first, so they never qualify.
func (r *Registry) Expire(ctx context.Context) (int, error) {
	now := r.opts.Now()
	stale := now.Add(-r.opts.Timeout / 2)
	type item struct {
		k     key
		owner Owner
	}
	var refresh []item
	r.mu.Lock()
	for k, h := range r.active {
		if h.lastSave.Before(stale) {
			refresh = append(refresh, item{k, h.owner})
		}
	}
	r.mu.Unlock()
	for _, it := range refresh {
		if err := r.refresh(ctx, it.k, it.owner, now); err != nil {
			return 0, err
		}
	}
	return r.st.ExpireSessions(ctx, now.Add(-r.opts.Timeout))
}

// refresh rewrites the stored LastActive of an active session, keeping
// its stored state.
func (r *Registry) refresh(ctx context.Context, k key, owner Owner, now time.Time) error {
	defer r.locks.lock(k.user)()
	r.mu.Lock()
	h := r.active[k]
	r.mu.Unlock()
	if h == nil || h.owner != owner {
		return nil // detached or moved meanwhile: written then
	}
	rec, err := r.st.LoadSession(ctx, k.user, k.id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted under us (its user was deleted)
	}
	if err != nil {
		return err
	}
	rec.LastActive = now
	if err := r.st.SaveSession(ctx, rec); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	r.mu.Lock()
	h.lastSave = now
	r.mu.Unlock()
	return nil
}

// Holder returns the owner holding the user's session id, if it is
// active.
func (r *Registry) Holder(userID int64, id string) (Owner, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.active[key{userID, id}]
	if !ok {
		return nil, false
	}
	return h.owner, true
}

// Held returns the session owner holds, if any.
func (r *Registry) Held(owner Owner) (userID int64, id string, ok bool) {
	k, ok := r.heldBy(owner)
	return k.user, k.id, ok
}

// ActiveCount returns the number of active sessions.
func (r *Registry) ActiveCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active)
}

func (r *Registry) heldBy(owner Owner) (key, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.owners[owner]
	return k, ok
}

// isActive reports whether k is active on an owner other than except.
func (r *Registry) isActive(k key, except Owner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.active[k]
	return ok && h.owner != except
}

// hold makes k active on h.owner: the previous owner of k loses it, and
// the session h.owner held before becomes inactive.
func (r *Registry) hold(k key, h *holding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.active[k]; ok {
		delete(r.owners, old.owner)
	}
	if other, had := r.owners[h.owner]; had && other != k {
		delete(r.active, other)
	}
	r.active[k] = h
	r.owners[h.owner] = k
}

// release makes k inactive.
func (r *Registry) release(k key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.active[k]; ok {
		delete(r.owners, h.owner)
		delete(r.active, k)
	}
}

// userLocks is a mutex per user, created on demand and dropped when
// nobody holds or waits for it.
type userLocks struct {
	mu sync.Mutex
	m  map[int64]*userLock
}

type userLock struct {
	sync.Mutex
	refs int
}

// lock locks the user's mutex and returns its unlock.
func (l *userLocks) lock(user int64) func() {
	l.mu.Lock()
	ul := l.entry(user)
	ul.refs++
	l.mu.Unlock()
	ul.Lock()
	return l.unlocker(user, ul)
}

// tryLock is lock without waiting: ok is false when the user's mutex
// is held.
func (l *userLocks) tryLock(user int64) (unlock func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ul := l.entry(user)
	if !ul.TryLock() {
		return nil, false
	}
	ul.refs++
	return l.unlocker(user, ul), true
}

// entry returns the user's mutex, made if need be; l.mu is held.
func (l *userLocks) entry(user int64) *userLock {
	ul := l.m[user]
	if ul == nil {
		ul = &userLock{}
		l.m[user] = ul
	}
	return ul
}

// unlocker returns the unlock of ul, held: the entry goes when nobody
// holds or waits for it.
func (l *userLocks) unlocker(user int64, ul *userLock) func() {
	return func() {
		ul.Unlock()
		l.mu.Lock()
		ul.refs--
		if ul.refs == 0 {
			delete(l.m, user)
		}
		l.mu.Unlock()
	}
}

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
// registry keeps only this node's active sessions in memory, one small
// entry each; an inactive session is a row of the store and nothing else
// — no goroutine, no timer, no map entry — so millions can wait to be
// resumed. After a restart every session is inactive (Start releases
// those the node held when it stopped).
//
// A session has at most one owner at a time (§3.3): Attach on a session
// that another connection holds moves it and returns the previous owner,
// to which the server sends DELETEDSID. An owner holds at most one
// session: Create or Attach by an owner that holds another session
// makes that one inactive (§3.2: "the existing session becomes inactive").
//
// # Nodes
//
// Several nodes (processes, Options.NodeID) may share one store. The
// store's record is the truth of who holds a session: its owner node and
// a generation that every claim raises by one (store.ClaimSession). The
// in-memory map is this node's holdings, each with the generation of its
// claim, and every write of a holder — checkpoint, detach, delete — is
// conditional on that generation. Attach of a session another node holds
// claims it and publishes a bus.SessionTaken hint; that node's Taken then
// drops its holding and the server tells the connection DELETEDSID. If
// the hint is lost, the old holder's next write fails (ErrNotOwner) and
// its server says DELETEDSID then: two connections never both write one
// session. A node writes a heartbeat every Options.Heartbeat (Start); a
// session whose owner has not beaten for DeadAfter intervals counts as
// inactive (resumable, evictable under the limits).
//
// # Concurrency
//
// Every operation on a user's sessions runs under that user's lock,
// held across its store calls, so that ownership changes, limit checks
// and state writes of one user are serialized in the node (a user has
// few connections, and SID is rare). Create and Attach also hold the
// store's lock of the user (store.Sessions.LockSessions), which every
// node sharing the store honours: the per-user limit and the takeover
// race hold across nodes. Different users never wait for each other. The
// owner map has its own mutex, never held across I/O.
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
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/quickimap/quickimap/bus"
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
	// was displaced by a resume on another connection, here or on
	// another node, or deleted).
	ErrNotOwner = errors.New("session: owner holds no session")
)

// Owner identifies the holder of an active session, normally the
// server's connection. It must be comparable and distinct per
// connection: use a pointer.
type Owner any

// DeadAfter is the number of heartbeat intervals after which a node that
// has not beaten is dead: the sessions it holds count as inactive.
const DeadAfter = 3

// DefaultHeartbeat is the default of Options.Heartbeat.
const DefaultHeartbeat = 5 * time.Second

// Options configures a Registry. Zero values take the defaults; a
// negative limit means no limit.
type Options struct {
	// Now is the clock. Default time.Now; tests inject a fake one. The
	// heartbeats are written in it and the other nodes' judged by it:
	// nodes sharing a store need clocks that agree to well within
	// Heartbeat (NTP does).
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

	// NodeID names this node in the store's session records, as the
	// owner of the sessions its connections hold. Nodes sharing a store
	// need distinct names, stable across restarts (a node starting
	// releases the sessions recorded under its name). Default: the host
	// name.
	NodeID string
	// Bus, when not nil, carries a bus.SessionTaken hint to the node
	// whose session this node took over.
	Bus bus.Bus
	// Heartbeat is the interval of the node's heartbeat (Start). Default
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Logger receives the heartbeat's failures. Default slog.Default().
	Logger *slog.Logger
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
	active map[key]*holding // this node's active sessions
	owners map[Owner]key    // inverse of active

	hb heartbeat
}

type key struct {
	user int64
	id   string
}

// holding is an active session's in-memory entry.
type holding struct {
	owner    Owner
	gen      uint64    // the generation of the claim that made it
	lastSave time.Time // LastActive as last written to the store
}

// New returns a registry over st. All sessions st holds start inactive
// for this node; Start releases those the store still records as its.
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
	if opts.NodeID == "" {
		opts.NodeID, _ = os.Hostname()
		if opts.NodeID == "" {
			opts.NodeID = "localhost"
		}
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
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

// NodeID returns the node's name.
func (r *Registry) NodeID() string { return r.opts.NodeID }

// alive reports whether a node whose last heartbeat is beat counts as
// alive at now.
func (r *Registry) alive(beat, now time.Time) bool {
	return !beat.IsZero() && now.Sub(beat) < DeadAfter*r.opts.Heartbeat
}

// busy reports whether the session rec (from the store) is active on an
// owner other than except: held here by a connection at rec's
// generation, or held by another node that is alive. A record of this
// node that no connection here holds (left by a crash) is inactive.
func (r *Registry) busy(rec store.SessionRecord, except Owner, now time.Time) bool {
	if rec.Owner == "" {
		return false
	}
	if rec.Owner == r.opts.NodeID {
		r.mu.Lock()
		defer r.mu.Unlock()
		h := r.active[key{rec.UserID, rec.ID}]
		return h != nil && h.gen == rec.Generation && h.owner != except
	}
	return r.alive(rec.OwnerBeat, now)
}

// lockUser takes the user's lock in this node and in the store.
func (r *Registry) lockUser(ctx context.Context, userID int64) (func(), error) {
	unlock := r.locks.lock(userID)
	unlockStore, err := r.st.LockSessions(ctx, userID)
	if err != nil {
		unlock()
		return nil, err
	}
	return func() {
		unlockStore()
		unlock()
	}, nil
}

// Create makes a new session for the user, active on owner, and returns
// its id (the server sends it in NEWSID). ip is the client's address,
// for the per-address limit. The session's state is empty until the
// first Save or Detach. If owner held another session, that one becomes
// inactive (its last saved state is kept; Save it first).
//
// Limits (§3.2, §7): at the global or per-address limit, ErrLimit; at the
// per-user limit, the user's oldest inactive session is deleted, or
// ErrLimit if all are active (on this node or another live one).
func (r *Registry) Create(ctx context.Context, userID int64, ip string, owner Owner) (string, error) {
	unlock, err := r.lockUser(ctx, userID)
	if err != nil {
		return "", err
	}
	defer unlock()
	now := r.opts.Now()
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
			if err := r.evictAtAddress(ctx, userID, ip, owner, n-lim+1, now); err != nil {
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
			if r.busy(rec, owner, now) {
				continue
			}
			gone, err := r.evict(ctx, rec)
			if err != nil {
				return "", err
			}
			if gone {
				excess--
			}
		}
		if excess > 0 {
			return "", fmt.Errorf("%w: %d active sessions for the user", ErrLimit, len(list))
		}
	}
	rec := store.SessionRecord{ID: NewID(), UserID: userID, ClientIP: ip, Created: now, LastActive: now,
		Owner: r.opts.NodeID, Generation: 1}
	if err := r.st.SaveSession(ctx, rec); err != nil {
		return "", err
	}
	r.holdReleasing(ctx, key{userID, rec.ID}, &holding{owner: owner, gen: rec.Generation, lastSave: now}, now)
	return rec.ID, nil
}

// evict deletes the inactive session rec if it is still at rec's
// generation, and drops this node's holding of it if any (the owner
// making room). gone is false when a claim took it meanwhile.
func (r *Registry) evict(ctx context.Context, rec store.SessionRecord) (gone bool, err error) {
	err = r.st.DeleteSessionIf(ctx, rec.UserID, rec.ID, rec.Generation)
	switch {
	case errors.Is(err, store.ErrStale):
		return false, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	r.release(key{rec.UserID, rec.ID})
	return true, nil
}

// evictAtAddress deletes need inactive sessions created from ip, to make
// room for a new one of userID (whose lock the caller holds): the user's
// own first, oldest first, then other users', oldest first. Another
// user's session is deleted only under that user's lock in this node,
// taken without waiting (a user busy with its sessions keeps them this
// time), so two users evicting each other cannot deadlock; the delete is
// conditional on the generation listed, so a claim by another node
// meanwhile keeps the session. owner's own session counts as inactive:
// it becomes so when the new one is created. ErrLimit when fewer than
// need could be deleted.
func (r *Registry) evictAtAddress(ctx context.Context, userID int64, ip string, owner Owner, need int, now time.Time) error {
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
		if r.busy(rec, owner, now) {
			continue
		}
		gone, err := r.evict(ctx, rec)
		if err != nil {
			return err
		}
		if gone {
			need--
		}
	}
	for _, rec := range others {
		if need <= 0 {
			return nil
		}
		unlock, ok := r.locks.tryLock(rec.UserID)
		if !ok {
			continue
		}
		if r.busy(rec, nil, now) {
			unlock()
			continue
		}
		gone, err := r.evict(ctx, rec)
		unlock()
		if err != nil {
			return err
		}
		if gone {
			need--
		}
	}
	if need > 0 {
		return fmt.Errorf("%w: every session from %s is active", ErrLimit, ip)
	}
	return nil
}

// Attach resumes the user's session id on owner (SID with a session id)
// and returns its record, with the state last saved. If another owner of
// this node held it, that owner loses it and is returned as prev (the
// server sends it DELETEDSID; its later Save, Detach or Delete fail with
// ErrNotOwner). If another node held it, that node is sent a
// bus.SessionTaken hint, and its holder's later writes fail likewise. If
// owner held another session, that one becomes inactive.
//
// ErrNotFound for an unknown, malformed, expired or other user's id.
// Attaching a session the owner already holds returns it with prev nil.
func (r *Registry) Attach(ctx context.Context, userID int64, id string, owner Owner) (rec store.SessionRecord, prev Owner, err error) {
	if !ValidID(id) {
		return store.SessionRecord{}, nil, ErrNotFound
	}
	k := key{userID, id}
	unlock, err := r.lockUser(ctx, userID)
	if err != nil {
		return store.SessionRecord{}, nil, err
	}
	defer unlock()
	r.mu.Lock()
	h := r.active[k]
	r.mu.Unlock()
	node := r.opts.NodeID
	if h != nil && h.owner == owner {
		rec, err := r.st.LoadSession(ctx, userID, id)
		if errors.Is(err, store.ErrNotFound) {
			r.drop(k, h)
			return store.SessionRecord{}, nil, ErrNotFound
		}
		if err != nil {
			return store.SessionRecord{}, nil, err
		}
		if rec.Owner == node && rec.Generation == h.gen {
			return rec, nil, nil
		}
		// Taken by another node meanwhile (a hint not yet arrived or
		// lost): claim it back below.
	}
	now := r.opts.Now()
	// The claim touches LastActive only when it is older than
	// Timeout/2: a phone back from a dropped connection (the detach
	// wrote it moments ago) keeps it, and a crash then leaves the
	// session resumable for at least Timeout/2, the bound Expire keeps
	// for every held session (it refreshes those whose lastSave is
	// older).
	touchBefore := now.Add(-r.opts.Timeout / 2)
	old, err := r.st.ClaimSession(ctx, userID, id, node, touchBefore, now)
	if errors.Is(err, store.ErrNotFound) {
		return store.SessionRecord{}, nil, ErrNotFound
	}
	if err != nil {
		return store.SessionRecord{}, nil, err
	}
	heldHere := h != nil && old.Owner == node && old.Generation == h.gen
	heldElsewhere := old.Owner != "" && old.Owner != node && r.alive(old.OwnerBeat, now)
	if !heldHere && !heldElsewhere && old.LastActive.Before(now.Add(-r.opts.Timeout)) {
		// Expired but not yet swept.
		err := r.st.DeleteSessionIf(ctx, userID, id, old.Generation+1)
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrStale) {
			return store.SessionRecord{}, nil, err
		}
		if h != nil {
			r.drop(k, h)
		}
		return store.SessionRecord{}, nil, ErrNotFound
	}
	rec = old
	rec.Owner, rec.Generation, rec.OwnerBeat = node, old.Generation+1, time.Time{}
	lastSave := old.LastActive
	if old.LastActive.Before(touchBefore) {
		rec.LastActive, lastSave = now, now
	}
	if h != nil && h.owner != owner {
		prev = h.owner
	}
	r.holdReleasing(ctx, k, &holding{owner: owner, gen: rec.Generation, lastSave: lastSave}, now)
	if old.Owner != "" && old.Owner != node && r.opts.Bus != nil {
		// After the claim's commit (bus package contract).
		r.opts.Bus.Publish(bus.Hint{Kind: bus.SessionTaken, User: userID, Session: id, Generation: rec.Generation})
	}
	return rec, prev, nil
}

// Taken is a bus.SessionTaken hint: another node claimed the user's
// session id at generation gen. If an owner here holds it at a lower
// generation, it loses it and is returned (the server sends it
// DELETEDSID); ok is false otherwise (not held here, or held by a newer
// claim: a late or duplicated hint). It takes no lock but the map's: a
// hint handler must not wait.
func (r *Registry) Taken(userID int64, id string, gen uint64) (Owner, bool) {
	k := key{userID, id}
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.active[k]
	if h == nil || h.gen >= gen {
		return nil, false
	}
	delete(r.owners, h.owner)
	delete(r.active, k)
	return h.owner, true
}

// Lost is a session an owner of this node held and lost (Recheck).
type Lost struct {
	Owner  Owner
	UserID int64
	ID     string
}

// Recheck compares this node's holdings with the store, for when
// SessionTaken hints may have been lost (the bus reconnected, its safety
// poll): a session that another node claimed, or that was deleted, is
// dropped here and returned with the owner that held it (the server
// sends it DELETEDSID). One query lists what the store says the node
// owns; only a holding that disagrees is read again, under its user's
// lock, so that a detach or a claim of this node in progress is never
// mistaken for a loss.
func (r *Registry) Recheck(ctx context.Context) ([]Lost, error) {
	type held struct {
		k key
		h *holding
	}
	r.mu.Lock()
	snap := make([]held, 0, len(r.active))
	for k, h := range r.active {
		snap = append(snap, held{k, h})
	}
	r.mu.Unlock()
	if len(snap) == 0 {
		return nil, nil
	}
	recs, err := r.st.NodeSessions(ctx, r.opts.NodeID)
	if err != nil {
		return nil, err
	}
	owned := make(map[key]uint64, len(recs))
	for _, rec := range recs {
		owned[key{rec.UserID, rec.ID}] = rec.Generation
	}
	var lost []Lost
	for _, it := range snap {
		if g, ok := owned[it.k]; ok && g == it.h.gen {
			continue
		}
		gone, err := r.recheck(ctx, it.k, it.h)
		if err != nil {
			return lost, err
		}
		if gone {
			lost = append(lost, Lost{Owner: it.h.owner, UserID: it.k.user, ID: it.k.id})
		}
	}
	return lost, nil
}

// recheck reads the session k again under its user's lock and drops h
// if h still holds it and the store says it is no longer h's.
func (r *Registry) recheck(ctx context.Context, k key, h *holding) (bool, error) {
	defer r.locks.lock(k.user)()
	r.mu.Lock()
	same := r.active[k] == h
	r.mu.Unlock()
	if !same {
		return false, nil // detached, deleted or moved here meanwhile
	}
	rec, err := r.st.LoadSession(ctx, k.user, k.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return false, err
	case rec.Owner == r.opts.NodeID && rec.Generation == h.gen:
		return false, nil
	}
	r.drop(k, h)
	return true, nil
}

// Save checkpoints the state of the session owner holds, which stays
// active (the server calls it after a command that changes the session:
// SELECT, CLOSE, ENABLE...), so that a resume after a takeover or a crash
// finds it. ErrNotOwner, also when the store says another claim took
// the session (a takeover by another node whose hint has not arrived):
// the owner has lost it and nothing was written.
func (r *Registry) Save(ctx context.Context, owner Owner, state []byte) error {
	return r.persist(ctx, owner, state, false)
}

// Detach saves the state of the session owner holds and makes it
// inactive and resumable (LOGOUT (PRESERVE), a dropped connection, a
// shutdown). The session is inactive afterwards even when saving failed
// (the error is returned; the last saved state stays). ErrNotOwner, as
// for Save.
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
	err := r.st.UpdateSession(ctx, store.SessionRecord{
		ID: k.id, UserID: k.user, Generation: h.gen, LastActive: now, State: state,
	}, detach)
	if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrNotFound) {
		// Claimed by another node, or deleted (its user, or expired):
		// not ours to write any more.
		r.drop(k, h)
		return fmt.Errorf("%w: %w", ErrNotOwner, err)
	}
	if detach {
		r.drop(k, h)
	} else if err == nil {
		r.mu.Lock()
		h.lastSave = now
		r.mu.Unlock()
	}
	return err
}

// Delete ends the session owner holds (DELETESID, LOGOUT without
// PRESERVE): it is removed from the store and cannot be resumed.
// ErrNotOwner (the server answers BAD to DELETESID: no current session),
// also when another node claimed it meanwhile (it is not deleted then).
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
	err := r.st.DeleteSessionIf(ctx, k.user, k.id, h.gen)
	r.drop(k, h)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // already gone (its user was deleted): the outcome is the same
	case errors.Is(err, store.ErrStale):
		return fmt.Errorf("%w: %w", ErrNotOwner, err)
	}
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
	err := r.st.UpdateSession(ctx, store.SessionRecord{ID: k.id, UserID: k.user, Generation: h.gen, LastActive: now}, false)
	if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrNotFound) {
		// Claimed by another node, or deleted under us (its user was
		// deleted): the holder's next write tells it.
		return nil
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	h.lastSave = now
	r.mu.Unlock()
	return nil
}

// Holder returns the owner holding the user's session id, if it is
// active on this node.
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

// ActiveCount returns the number of sessions active on this node.
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

// hold makes k active on h.owner: the previous owner of k loses it, and
// the session h.owner held before becomes inactive here; that one is
// returned (ok false if none) for the caller to release in the store.
func (r *Registry) hold(k key, h *holding) (other key, was *holding, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.active[k]; ok {
		delete(r.owners, old.owner)
	}
	if o, had := r.owners[h.owner]; had && o != k {
		other, was, ok = o, r.active[o], true
		delete(r.active, o)
	}
	r.active[k] = h
	r.owners[h.owner] = k
	return other, was, ok
}

// holdReleasing is hold, and then the release in the store of the
// session the owner held before (§3.2: "the existing session becomes
// inactive"), so that the other nodes see it inactive too. The caller
// holds the user's lock (an owner's sessions are all of one user). A
// failure only leaves that session recorded as this node's: resumable
// anywhere all the same, evictable here, and released at the node's
// next start.
func (r *Registry) holdReleasing(ctx context.Context, k key, h *holding, now time.Time) {
	other, was, ok := r.hold(k, h)
	if !ok || was == nil {
		return
	}
	err := r.st.UpdateSession(ctx, store.SessionRecord{UserID: other.user, ID: other.id, Generation: was.gen, LastActive: now}, true)
	if err != nil && !errors.Is(err, store.ErrStale) && !errors.Is(err, store.ErrNotFound) {
		r.opts.Logger.Warn("releasing a session made inactive", "err", err)
	}
}

// release makes k inactive on this node.
func (r *Registry) release(k key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.active[k]; ok {
		delete(r.owners, h.owner)
		delete(r.active, k)
	}
}

// drop makes k inactive on this node if h still holds it.
func (r *Registry) drop(k key, h *holding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[k] == h {
		delete(r.owners, h.owner)
		delete(r.active, k)
	}
}

// heartbeat is the state of the node's heartbeat loop.
type heartbeat struct {
	mu       sync.Mutex
	started  bool          // Start ran once: the node's old sessions are released
	stop     chan struct{} // closed by Stop; nil when not running
	finished chan struct{} // closed when the loop ends
}

// Start writes the node's heartbeat and starts writing it every
// Options.Heartbeat until Stop. The first Start of a registry also
// releases the sessions the store still records as this node's: they
// were held by connections of an earlier run of the node, all gone (call
// it before serving connections). The loop runs even when that first
// heartbeat or the release failed (the error is returned): heartbeats
// resume when the store answers, and unreleased sessions stay resumable
// anywhere. Starting a running heartbeat does nothing.
func (r *Registry) Start(ctx context.Context) error {
	r.hb.mu.Lock()
	defer r.hb.mu.Unlock()
	if r.hb.stop != nil {
		return nil
	}
	node := r.opts.NodeID
	var errs []error
	if err := r.st.Heartbeat(ctx, node, r.opts.Now()); err != nil {
		errs = append(errs, fmt.Errorf("session heartbeat: %w", err))
	}
	if !r.hb.started {
		r.hb.started = true
		n, err := r.st.ReleaseNodeSessions(ctx, node)
		if err != nil {
			errs = append(errs, fmt.Errorf("releasing the sessions of an earlier run: %w", err))
		} else if n > 0 {
			r.opts.Logger.Info("released the sessions of an earlier run", "node", node, "sessions", n)
		}
	}
	stop, finished := make(chan struct{}), make(chan struct{})
	r.hb.stop, r.hb.finished = stop, finished
	go r.beat(stop, finished)
	return errors.Join(errs...)
}

// Stop ends the heartbeat loop and waits for it. The node's sessions
// count as inactive on the other nodes DeadAfter intervals after its last
// heartbeat.
func (r *Registry) Stop() {
	r.hb.mu.Lock()
	defer r.hb.mu.Unlock()
	if r.hb.stop == nil {
		return
	}
	close(r.hb.stop)
	<-r.hb.finished
	r.hb.stop, r.hb.finished = nil, nil
}

func (r *Registry) beat(stop <-chan struct{}, finished chan<- struct{}) {
	defer close(finished)
	t := time.NewTicker(r.opts.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.Heartbeat)
		err := r.st.Heartbeat(ctx, r.opts.NodeID, r.opts.Now())
		cancel()
		switch {
		case err != nil && !failing:
			r.opts.Logger.Warn("session heartbeat failed", "node", r.opts.NodeID, "err", err)
			failing = true
		case err == nil && failing:
			r.opts.Logger.Info("session heartbeat restored", "node", r.opts.NodeID)
			failing = false
		}
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

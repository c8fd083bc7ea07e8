package session

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quickimap/quickimap/internal/keylock"
	"github.com/quickimap/quickimap/store"
)

// memStore is an in-memory store.Sessions for the registry's unit tests.
type memStore struct {
	mu    sync.Mutex
	recs  map[key]store.SessionRecord
	beats map[string]time.Time
	locks keylock.Locks
}

func newMemStore() *memStore {
	return &memStore{recs: map[key]store.SessionRecord{}, beats: map[string]time.Time{}}
}

// withBeat fills rec.OwnerBeat; m.mu is held.
func (m *memStore) withBeat(rec store.SessionRecord) store.SessionRecord {
	rec.OwnerBeat = time.Time{}
	if rec.Owner != "" {
		rec.OwnerBeat = m.beats[rec.Owner]
	}
	return rec
}

func (m *memStore) ClaimSession(_ context.Context, userID int64, id, node string, touchBefore, now time.Time) (store.SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{userID, id}
	rec, ok := m.recs[k]
	if !ok {
		return store.SessionRecord{}, store.ErrNotFound
	}
	next := rec
	next.Owner, next.Generation = node, rec.Generation+1
	if !touchBefore.IsZero() && rec.LastActive.Before(touchBefore) {
		next.LastActive = now
	}
	m.recs[k] = next
	rec.State = slices.Clone(rec.State)
	return m.withBeat(rec), nil
}

// conditional returns the record at generation gen; m.mu is held.
func (m *memStore) conditional(k key, gen uint64) (store.SessionRecord, error) {
	rec, ok := m.recs[k]
	if !ok {
		return rec, store.ErrNotFound
	}
	if rec.Generation != gen {
		return rec, store.ErrStale
	}
	return rec, nil
}

func (m *memStore) UpdateSession(_ context.Context, up store.SessionRecord, release bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{up.UserID, up.ID}
	rec, err := m.conditional(k, up.Generation)
	if err != nil {
		return err
	}
	rec.LastActive = up.LastActive
	if up.State != nil {
		rec.State = slices.Clone(up.State)
	}
	if release {
		rec.Owner = ""
	}
	m.recs[k] = rec
	return nil
}

func (m *memStore) DeleteSessionIf(_ context.Context, userID int64, id string, gen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{userID, id}
	if _, err := m.conditional(k, gen); err != nil {
		return err
	}
	delete(m.recs, k)
	return nil
}

func (m *memStore) ReleaseNodeSessions(_ context.Context, node string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, r := range m.recs {
		if r.Owner == node && node != "" {
			r.Owner = ""
			m.recs[k] = r
			n++
		}
	}
	return n, nil
}

func (m *memStore) NodeSessions(_ context.Context, node string) ([]store.SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SessionRecord
	for _, r := range m.recs {
		if r.Owner == node && node != "" {
			r.State = nil
			out = append(out, m.withBeat(r))
		}
	}
	return out, nil
}

func (m *memStore) Heartbeat(_ context.Context, node string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.beats[node] = at
	return nil
}

func (m *memStore) LockSessions(ctx context.Context, userID int64) (func(), error) {
	return m.locks.Lock(ctx, userID)
}

func (m *memStore) SaveSession(_ context.Context, rec store.SessionRecord) error {
	if rec.ID == "" {
		return store.ErrInvalid
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec.State = slices.Clone(rec.State)
	m.recs[key{rec.UserID, rec.ID}] = rec
	return nil
}

func (m *memStore) LoadSession(_ context.Context, userID int64, id string) (store.SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[key{userID, id}]
	if !ok {
		return store.SessionRecord{}, store.ErrNotFound
	}
	rec.State = slices.Clone(rec.State)
	return m.withBeat(rec), nil
}

func (m *memStore) DeleteSession(_ context.Context, userID int64, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[key{userID, id}]; !ok {
		return store.ErrNotFound
	}
	delete(m.recs, key{userID, id})
	return nil
}

func (m *memStore) UserSessions(_ context.Context, userID int64) ([]store.SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SessionRecord
	for k, r := range m.recs {
		if k.user == userID {
			r.State = nil
			out = append(out, m.withBeat(r))
		}
	}
	slices.SortFunc(out, func(a, b store.SessionRecord) int {
		return cmp.Or(a.LastActive.Compare(b.LastActive), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (m *memStore) ExpireSessions(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, r := range m.recs {
		if r.LastActive.Before(before) {
			delete(m.recs, k)
			n++
		}
	}
	return n, nil
}

func (m *memStore) CountSessions(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs), nil
}

func (m *memStore) CountIPSessions(_ context.Context, ip string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.recs {
		if r.ClientIP == ip {
			n++
		}
	}
	return n, nil
}

func (m *memStore) IPSessions(_ context.Context, ip string, limit int) ([]store.SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SessionRecord
	for _, r := range m.recs {
		if r.ClientIP == ip {
			r.State = nil
			out = append(out, m.withBeat(r))
		}
	}
	slices.SortFunc(out, func(a, b store.SessionRecord) int {
		return cmp.Or(a.LastActive.Compare(b.LastActive), cmp.Compare(a.UserID, b.UserID), strings.Compare(a.ID, b.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

package session

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quickimap/quickimap/store"
)

// memStore is an in-memory store.Sessions for the registry's unit tests.
type memStore struct {
	mu   sync.Mutex
	recs map[key]store.SessionRecord
}

func newMemStore() *memStore { return &memStore{recs: map[key]store.SessionRecord{}} }

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
	return rec, nil
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
			out = append(out, r)
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
			out = append(out, r)
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

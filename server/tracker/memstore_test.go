package tracker

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quickimap/quickimap/store"
)

// memStore is an in-memory store.Store with the methods the tracker uses
// (the embedded nil interface makes the others panic). It keeps MODSEQs
// and tombstones by the store's rules: one new MODSEQ per changing call,
// tombstones that can be purged (ChangesSince then says it is not
// complete).
type memStore struct {
	store.Store

	// readDelay and writeDelay stand in for the cost of a store read
	// (ChangesSince, MessageIndex) and of a durable write.
	readDelay, writeDelay time.Duration
	// afterRead, when set, runs at the end of ChangesSince and
	// MessageIndex (named by method), after the answer was read and
	// before it is returned.
	afterRead func(method string)

	changesCalls atomic.Int64
	indexCalls   atomic.Int64

	mu    sync.Mutex
	boxes map[int64]*memBox
}

type memBox struct {
	userID      int64
	uidValidity uint32
	uidNext     uint32
	modseq      uint64
	firstRecent uint32
	msgs        []store.MessageMeta // ascending UID
	tombs       []store.MessageMeta // UID and MODSEQ of expunged messages
	// floor: tombstones with a MODSEQ above it are all kept.
	floor   uint64
	deleted bool
}

func newMemStore() *memStore { return &memStore{boxes: map[int64]*memBox{}} }

func (s *memStore) addMailbox(userID, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boxes[id] = &memBox{userID: userID, uidValidity: 7, uidNext: 1, modseq: 1, firstRecent: 1}
}

func (s *memStore) box(userID, id int64) (*memBox, error) {
	b := s.boxes[id]
	if b == nil || b.deleted || b.userID != userID {
		return nil, store.ErrNotFound
	}
	return b, nil
}

func (b *memBox) mailbox(id int64) store.Mailbox {
	return store.Mailbox{ID: id, UserID: b.userID, UIDValidity: b.uidValidity, UIDNext: b.uidNext,
		HighestModSeq: b.modseq, FirstRecentUID: b.firstRecent}
}

func (s *memStore) read() {
	if s.readDelay > 0 {
		time.Sleep(s.readDelay)
	}
}

func (s *memStore) hook(method string) {
	if s.afterRead != nil {
		s.afterRead(method)
	}
}

func (s *memStore) write() {
	if s.writeDelay > 0 {
		time.Sleep(s.writeDelay)
	}
}

func (s *memStore) deleteMailbox(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boxes[id].deleted = true
}

// purgeTombstones drops every tombstone, as a backend does after its
// window.
func (s *memStore) purgeTombstones(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[id]
	b.tombs = nil
	b.floor = b.modseq
}

func (s *memStore) MessageIndex(ctx context.Context, userID, id int64) ([]store.MessageMeta, store.Mailbox, error) {
	s.indexCalls.Add(1)
	s.read()
	defer s.hook("MessageIndex")
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.box(userID, id)
	if err != nil {
		return nil, store.Mailbox{}, err
	}
	return slices.Clone(b.msgs), b.mailbox(id), nil
}

func (s *memStore) ChangesSince(ctx context.Context, userID, id int64, modseq uint64) (store.Changes, error) {
	s.changesCalls.Add(1)
	if err := ctx.Err(); err != nil {
		return store.Changes{}, err // as a database read does
	}
	s.read()
	defer s.hook("ChangesSince")
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.box(userID, id)
	if err != nil {
		return store.Changes{}, err
	}
	ch := store.Changes{Complete: modseq >= b.floor, HighestModSeq: b.modseq}
	for _, m := range b.msgs {
		if m.ModSeq > modseq {
			ch.Changed = append(ch.Changed, m)
		}
	}
	for _, t := range b.tombs {
		if t.ModSeq > modseq {
			ch.Vanished = append(ch.Vanished, t.UID)
		}
	}
	slices.Sort(ch.Vanished)
	return ch, nil
}

func (s *memStore) ClaimRecent(ctx context.Context, userID, id int64) (uint32, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.box(userID, id)
	if err != nil {
		return 0, 0, err
	}
	from, to := b.firstRecent, b.uidNext
	b.firstRecent = b.uidNext
	return from, to, nil
}

func (s *memStore) AppendMessages(ctx context.Context, userID, id int64, msgs []store.NewMessage) ([]uint32, store.Mailbox, error) {
	s.write()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.box(userID, id)
	if err != nil {
		return nil, store.Mailbox{}, err
	}
	if len(msgs) == 0 {
		return nil, b.mailbox(id), nil
	}
	b.modseq++
	var uids []uint32
	for _, m := range msgs {
		b.msgs = append(b.msgs, store.MessageMeta{UID: b.uidNext, ModSeq: b.modseq, Flags: normFlags(m.Flags)})
		uids = append(uids, b.uidNext)
		b.uidNext++
	}
	return uids, b.mailbox(id), nil
}

func (s *memStore) UpdateFlags(ctx context.Context, userID, id int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MessageMeta, []uint32, error) {
	s.write()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.box(userID, id)
	if err != nil {
		return nil, nil, err
	}
	uids = slices.Clone(uids)
	slices.Sort(uids)
	uids = slices.Compact(uids)
	var changed []store.MessageMeta
	var failed []uint32
	next := b.modseq + 1
	for i := range b.msgs {
		m := &b.msgs[i]
		if _, ok := slices.BinarySearch(uids, m.UID); !ok {
			continue
		}
		if unchangedSince != 0 && m.ModSeq > unchangedSince {
			failed = append(failed, m.UID)
			continue
		}
		var nf []string
		switch op {
		case store.FlagsSet:
			nf = normFlags(flags)
		case store.FlagsAdd:
			nf = normFlags(append(slices.Clone(m.Flags), flags...))
		case store.FlagsRemove:
			nf = slices.DeleteFunc(slices.Clone(m.Flags), func(f string) bool { return slices.Contains(flags, f) })
		}
		if slices.Equal(nf, m.Flags) {
			continue
		}
		m.Flags, m.ModSeq = nf, next
		changed = append(changed, *m)
	}
	if len(changed) > 0 {
		b.modseq = next
	}
	return changed, failed, nil
}

func (s *memStore) Expunge(ctx context.Context, userID, id int64, uids []uint32) ([]uint32, error) {
	s.write()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.box(userID, id)
	if err != nil {
		return nil, err
	}
	var gone []uint32
	next := b.modseq + 1
	b.msgs = slices.DeleteFunc(b.msgs, func(m store.MessageMeta) bool {
		if slices.Contains(uids, m.UID) {
			gone = append(gone, m.UID)
			b.tombs = append(b.tombs, store.MessageMeta{UID: m.UID, ModSeq: next})
			return true
		}
		return false
	})
	if len(gone) > 0 {
		b.modseq = next
	}
	return gone, nil
}

// normFlags sorts and deduplicates flags (the store's system-flags-first
// order does not matter to the tracker).
func normFlags(f []string) []string {
	out := slices.Clone(f)
	slices.Sort(out)
	return slices.Compact(out)
}

// snapshot returns a mailbox's messages and HIGHESTMODSEQ.
func (s *memStore) snapshot(id int64) ([]store.MessageMeta, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[id]
	return slices.Clone(b.msgs), b.modseq
}

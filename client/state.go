package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Message is one message of the synchronized mailbox.
type Message struct {
	UID   uint32
	Flags []string // sorted
}

// MailboxState is what the client knows of its mailbox and server. It is
// what a StateStore persists between runs.
type MailboxState struct {
	// Mailbox is the mailbox name (UTF-8) the state belongs to.
	Mailbox string
	// UIDValidity, UIDNext and HighestModSeq as last synchronized
	// (RFC 3501 §2.3.1.1, RFC 7162 §3.1.2). HighestModSeq is 0 when the
	// server gave none (no CONDSTORE, or NOMODSEQ).
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	// Messages are the mailbox's messages, ascending UID.
	Messages []Message
	// SessionID is the resumable session (reconnect draft §3), empty when
	// none is held.
	SessionID string
	// Capabilities are the server's capabilities after authentication as
	// last seen, upper case; they let the next connection pipeline
	// commands before the server has announced them again.
	Capabilities []string
}

// Clone returns a deep copy.
func (s *MailboxState) Clone() MailboxState {
	c := *s
	c.Messages = make([]Message, len(s.Messages))
	for i, m := range s.Messages {
		c.Messages[i] = Message{UID: m.UID, Flags: slices.Clone(m.Flags)}
	}
	c.Capabilities = slices.Clone(s.Capabilities)
	return c
}

// hasCap reports whether the stored capabilities include name.
func (s *MailboxState) hasCap(name string) bool {
	return slices.Contains(s.Capabilities, name)
}

// find returns the index of uid in Messages and whether it is there.
func (s *MailboxState) find(uid uint32) (int, bool) {
	return slices.BinarySearchFunc(s.Messages, uid, func(m Message, u uint32) int {
		switch {
		case m.UID < u:
			return -1
		case m.UID > u:
			return 1
		}
		return 0
	})
}

// uids returns the UIDs, ascending.
func (s *MailboxState) uids() []uint32 {
	u := make([]uint32, len(s.Messages))
	for i, m := range s.Messages {
		u[i] = m.UID
	}
	return u
}

// reset forgets the mailbox's contents (a UIDVALIDITY change, RFC 7162
// §6 step 1a: "empty the local cache", "forget" HIGHESTMODSEQ).
func (s *MailboxState) reset() {
	s.UIDValidity, s.UIDNext, s.HighestModSeq = 0, 0, 0
	s.Messages = nil
}

// StateStore persists the MailboxState between runs. Load returns the
// zero MailboxState and no error when nothing was saved yet.
type StateStore interface {
	Load(ctx context.Context) (MailboxState, error)
	Save(ctx context.Context, st MailboxState) error
}

// MemoryStore is a StateStore in memory, safe for concurrent use.
type MemoryStore struct {
	mu sync.Mutex
	st MailboxState
}

// Load returns a copy of the saved state.
func (m *MemoryStore) Load(context.Context) (MailboxState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Clone(), nil
}

// Save keeps a copy of st.
func (m *MemoryStore) Save(_ context.Context, st MailboxState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = st.Clone()
	return nil
}

// ErrCorruptState is wrapped by the error of FileStore.Load when the file
// exists but cannot be decoded. The client then starts from a fresh state
// (a full synchronization), which is always correct.
var ErrCorruptState = errors.New("imap client: corrupt state file")

// FileStore is a StateStore in one file. Save replaces the file
// atomically (temporary file, fsync, rename, fsync of the directory), so
// a crash leaves the old or the new state, never a mixture.
//
// The encoding is compact JSON: the UIDs as one sequence set
// ("1:9000,9002") and the flags as one UID set per distinct flag
// combination, so a 10,000-message mailbox whose UIDs are mostly
// contiguous takes a few hundred bytes, not one record per message.
type FileStore struct {
	Path string
	// MaxMessages bounds the messages a file may describe (default 10
	// million); a larger count is treated as corruption.
	MaxMessages int
}

// fileState is the on-disk form, version 1.
type fileState struct {
	Version       int         `json:"v"`
	Mailbox       string      `json:"mailbox"`
	UIDValidity   uint32      `json:"uidvalidity,omitempty"`
	UIDNext       uint32      `json:"uidnext,omitempty"`
	HighestModSeq uint64      `json:"modseq,omitempty"`
	SessionID     string      `json:"sid,omitempty"`
	Capabilities  []string    `json:"caps,omitempty"`
	UIDs          string      `json:"uids,omitempty"`
	Flags         []flagGroup `json:"flags,omitempty"`
}

type flagGroup struct {
	Flags []string `json:"f"`
	UIDs  string   `json:"u"`
}

// encodeState returns the file form of st.
func encodeState(st *MailboxState) ([]byte, error) {
	f := fileState{
		Version: 1, Mailbox: st.Mailbox, UIDValidity: st.UIDValidity, UIDNext: st.UIDNext,
		HighestModSeq: st.HighestModSeq, SessionID: st.SessionID, Capabilities: st.Capabilities,
		UIDs: formatUIDs(st.uids()),
	}
	groups := map[string][]uint32{}
	var keys []string
	for _, m := range st.Messages {
		if len(m.Flags) == 0 {
			continue
		}
		k := strings.Join(m.Flags, " ")
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], m.UID)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f.Flags = append(f.Flags, flagGroup{Flags: strings.Split(k, " "), UIDs: formatUIDs(groups[k])})
	}
	return json.Marshal(&f)
}

// decodeState parses the file form; every inconsistency is an error
// wrapping ErrCorruptState.
func decodeState(b []byte, maxMessages int) (MailboxState, error) {
	corrupt := func(msg string, args ...any) (MailboxState, error) {
		return MailboxState{}, fmt.Errorf("%w: %s", ErrCorruptState, fmt.Sprintf(msg, args...))
	}
	var f fileState
	if err := json.Unmarshal(b, &f); err != nil {
		return corrupt("%v", err)
	}
	if f.Version != 1 {
		return corrupt("unknown version %d", f.Version)
	}
	st := MailboxState{
		Mailbox: f.Mailbox, UIDValidity: f.UIDValidity, UIDNext: f.UIDNext,
		HighestModSeq: f.HighestModSeq, SessionID: f.SessionID, Capabilities: f.Capabilities,
	}
	if f.UIDs == "" {
		if len(f.Flags) > 0 {
			return corrupt("flags without messages")
		}
		return st, nil
	}
	set, err := parseUIDSet(f.UIDs)
	if err != nil {
		return corrupt("uids: %v", err)
	}
	if set.size() > uint64(maxMessages) {
		return corrupt("more than %d messages", maxMessages)
	}
	st.Messages = make([]Message, 0, set.size())
	for _, r := range set {
		for u := uint64(r.Start); u <= uint64(r.Stop); u++ {
			st.Messages = append(st.Messages, Message{UID: uint32(u)})
		}
	}
	for _, g := range f.Flags {
		gs, err := parseUIDSet(g.UIDs)
		if err != nil {
			return corrupt("flags: %v", err)
		}
		if len(g.Flags) == 0 {
			return corrupt("empty flag group")
		}
		flags := slices.Clone(g.Flags)
		slices.Sort(flags)
		for _, r := range gs {
			if uint64(r.Stop-r.Start) >= uint64(len(st.Messages)) {
				return corrupt("flag group larger than the mailbox")
			}
			for u := uint64(r.Start); u <= uint64(r.Stop); u++ {
				i, ok := st.find(uint32(u))
				if !ok {
					return corrupt("flags for unknown UID %d", u)
				}
				if st.Messages[i].Flags != nil {
					return corrupt("UID %d in two flag groups", u)
				}
				st.Messages[i].Flags = flags
			}
		}
	}
	return st, nil
}

// Load reads the file. A missing file is a fresh state; an unreadable
// one is an error wrapping ErrCorruptState.
func (fs_ *FileStore) Load(context.Context) (MailboxState, error) {
	b, err := os.ReadFile(fs_.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return MailboxState{}, nil
	}
	if err != nil {
		return MailboxState{}, err
	}
	max := fs_.MaxMessages
	if max <= 0 {
		max = 10_000_000
	}
	return decodeState(b, max)
}

// Save writes st atomically.
func (fs_ *FileStore) Save(_ context.Context, st MailboxState) error {
	b, err := encodeState(&st)
	if err != nil {
		return err
	}
	dir := filepath.Dir(fs_.Path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(fs_.Path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, fs_.Path); err != nil {
		return err
	}
	ok = true
	// The rename is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

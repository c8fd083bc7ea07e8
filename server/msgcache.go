package server

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMessageCacheBytes is the smallest default bound of the message
// cache (Options.MessageCacheBytes): what it is where the machine's
// memory cannot be read or is small.
const DefaultMessageCacheBytes = 64 << 20

// maxDefaultMessageCache is the largest default bound.
const maxDefaultMessageCache = 1 << 30

// DefaultMessageCache returns the default of Options.MessageCacheBytes: a
// sixteenth of the memory the process may use (see DefaultMemoryBudget),
// at least DefaultMessageCacheBytes and at most 1 GiB. Dovecot and other
// servers leave message data to the kernel's page cache; ours keeps it
// parsed and ready, which costs the store nothing per FETCH, so it takes
// a share of the machine the same way.
func DefaultMessageCache() int64 {
	return messageCacheFor(machineMemory())
}

func messageCacheFor(mem int64) int64 {
	return min(max(mem/16, DefaultMessageCacheBytes), maxDefaultMessageCache)
}

// maxCachedBody is the largest message body the message cache keeps:
// small messages, the ones clients fetch whole most often, are served
// without the store; larger ones are read from it every time.
const maxCachedBody = 64 << 10

// msgEntryOverhead approximates what an entry costs beyond its byte
// slices: the key, the entry, two map slots.
const msgEntryOverhead = 160

// msgKey names a message for all time: a mailbox id is never reused and
// UIDs are never reused within a UIDVALIDITY (RFC 3501 §2.3.1.1); the
// UIDVALIDITY is in the key as well, so that even a reused id could not
// make an entry answer for another message.
type msgKey struct {
	mailbox  int64
	validity uint32
	uid      uint32
	kind     uint8 // msgInfo or msgBody
}

const (
	msgInfo   uint8 = iota // msgData.date, size, structure
	msgBody                // msgData.body: the message
	msgHeader              // msgData.body: the top-level header (SEARCH)
)

// msgHeaderKey is the key of the header of message uid of the selected
// mailbox sel.
func msgHeaderKey(sel *Selected, uid uint32) msgKey {
	return msgKey{sel.MailboxID, sel.UIDValidity, uid, msgHeader}
}

// msgData is the immutable data of a message the message cache keeps:
// what a message was appended with never changes, so an entry needs no
// invalidation, only eviction. Entries are shared between connections
// and never modified.
type msgData struct {
	date      time.Time
	size      int64
	structure []byte
	body      []byte
}

func (d *msgData) cost() int64 {
	return int64(len(d.structure)+len(d.body)) + msgEntryOverhead
}

// msgCache keeps per-message data that FETCH needs (internal date, size,
// stored structure, small bodies) by message, bounded in bytes, so that
// repeated FETCHes of the same messages skip the store, as Dovecot's
// index cache does, evicting by generations (genCache), each holding up
// to half the bound.
type msgCache struct {
	mu      sync.Mutex
	entries genCache[msgKey, *msgData]

	hits, misses atomic.Uint64
}

// newMsgCache returns a cache of at most maxBytes (about); nil when
// maxBytes is not positive: a nil cache keeps nothing.
func newMsgCache(maxBytes int64) *msgCache {
	if maxBytes <= 0 {
		return nil
	}
	return &msgCache{entries: genCache[msgKey, *msgData]{limit: maxBytes / 2, cost: (*msgData).cost}}
}

// get returns the entry of k, or nil.
func (c *msgCache) get(k msgKey) *msgData {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	d, ok := c.entries.get(k)
	c.mu.Unlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return d
}

// put remembers d under k; d must not be modified afterwards. An entry
// larger than a generation is not kept.
func (c *msgCache) put(k msgKey, d *msgData) {
	if c == nil || d.cost() > c.entries.limit {
		return
	}
	c.mu.Lock()
	c.entries.put(k, d)
	c.mu.Unlock()
}

// bytes returns the bytes the cache holds (both generations), for tests.
func (c *msgCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.total()
}

// cachedBody is a message body from the message cache (store.Body).
type cachedBody []byte

func (b cachedBody) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (b cachedBody) Size() int64   { return int64(len(b)) }
func (b cachedBody) Bytes() []byte { return b }
func (b cachedBody) Close() error  { return nil }

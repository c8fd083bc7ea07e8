package server

import (
	"sync"

	"github.com/quickimap/quickimap/message"
)

// partCacheGen is the number of trees one generation of a partCache holds.
// Two generations (at most twice this) of trees and their keys, a few KB
// each for a typical multipart message, bound the cache to a few MB.
const partCacheGen = 2048

// partCache keeps decoded part trees (message.Unmarshal) by their stored
// encoding, for the ENVELOPE, BODYSTRUCTURE and section FETCHes that
// clients repeat over the same recent messages: a hit costs hashing the
// encoding instead of decoding it. The key is the encoding itself, so an
// entry can never answer for another message's bytes. Cached trees are
// shared between connections and must not be modified (nothing modifies a
// decoded tree). Eviction is by generations (genCache).
type partCache struct {
	mu    sync.Mutex
	trees genCache[string, *message.Part]
}

func newPartCache() *partCache {
	return &partCache{trees: genCache[string, *message.Part]{
		limit: partCacheGen,
		cost:  func(*message.Part) int64 { return 1 },
	}}
}

// get returns the tree of the encoding enc, decoding it on a miss.
func (c *partCache) get(enc []byte) (*message.Part, error) {
	c.mu.Lock()
	p, ok := c.trees.get(string(enc))
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := message.Unmarshal(enc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.trees.put(string(enc), p)
	c.mu.Unlock()
	return p, nil
}

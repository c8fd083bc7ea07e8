package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// DefaultCacheMaxUsers bounds a Cache whose options give no bound. An entry
// costs about 150 bytes with a 20-byte name (the name, a 32-byte MAC, the
// list links and the map), so the default is some 15 MB at most.
const DefaultCacheMaxUsers = 100_000

// CacheOptions configure a Cache.
type CacheOptions struct {
	// TTL is how long a verified password is remembered after the bcrypt
	// check that verified it; a hit does not extend it. Zero or negative
	// disables the cache: every lookup misses and Add does nothing.
	TTL time.Duration
	// MaxUsers bounds the accounts remembered (default
	// DefaultCacheMaxUsers); adding one more drops the oldest entry.
	MaxUsers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cache remembers, for a while, that a password was verified against an
// account's stored hash, so that the next logins with the same password
// skip bcrypt, as Dovecot's auth cache does.
//
// It keeps no password. An entry is the account's name, an expiry time
// and HMAC-SHA256, under a random key drawn when the cache is made (so
// per process), of the account's id, name and stored hash and the
// password. The caller reads the account from the store on every login
// and passes what it read: a login with another password, one after the
// stored hash changed (a password change, even by another process
// sharing the store) and one after the account was deleted (there is no
// row to read) all miss at once, without telling the cache.
//
// The trade-off: while an entry lives, a login with that password costs
// a store read and an HMAC instead of a bcrypt check. Someone who can
// read the process's memory gets MACs under a key that is in the same
// memory; testing a guess against one costs an HMAC, not a bcrypt, so
// the entries of the last TTL are weaker than the stored hashes against
// that attacker, who can however also read passwords as they arrive.
//
// A nil *Cache is a disabled one. A Cache is safe for concurrent use.
type Cache struct {
	key [32]byte
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry
	// oldest and newest end a list of the entries in the order they
	// were added, which is also the order they expire in (one TTL for
	// all): expiry and eviction both take from the oldest end.
	oldest, newest *cacheEntry
	hits, misses   uint64
}

type cacheEntry struct {
	name       string
	mac        [sha256.Size]byte
	expires    time.Time
	prev, next *cacheEntry // prev is older, next newer
}

// NewCache returns a cache with a fresh random key.
func NewCache(o CacheOptions) *Cache {
	if o.MaxUsers <= 0 {
		o.MaxUsers = DefaultCacheMaxUsers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{ttl: o.TTL, max: o.MaxUsers, now: o.Now, entries: make(map[string]*cacheEntry)}
	// crypto/rand.Read never fails (it crashes the program instead).
	rand.Read(c.key[:])
	return c
}

// mac binds the account (id, name, stored hash) and the password. The
// fixed-size id and the length prefixes keep the encoding unambiguous;
// the password, last, needs none.
func (c *Cache) mac(id int64, name, storedHash, password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(id))
	h.Write(n[:])
	for _, s := range []string{name, storedHash} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	h.Write([]byte(password))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func (c *Cache) enabled() bool { return c != nil && c.ttl > 0 }

// Verified reports whether password was verified against this account
// (id, name, storedHash as just read from the store) within the TTL.
func (c *Cache) Verified(id int64, name, storedHash, password string) bool {
	if !c.enabled() {
		return false
	}
	m := c.mac(id, name, storedHash, password)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[name]
	switch {
	case e == nil:
	case !now.Before(e.expires):
		c.remove(e)
	case hmac.Equal(e.mac[:], m[:]):
		c.hits++
		return true
	}
	c.misses++
	return false
}

// Add records that password was just verified, by bcrypt, against this
// account. It replaces the account's previous entry, if any.
func (c *Cache) Add(id int64, name, storedHash, password string) {
	if !c.enabled() {
		return
	}
	m := c.mac(id, name, storedHash, password)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[name]; e != nil {
		c.remove(e)
	}
	for c.oldest != nil && !now.Before(c.oldest.expires) {
		c.remove(c.oldest)
	}
	for len(c.entries) >= c.max {
		c.remove(c.oldest)
	}
	e := &cacheEntry{name: name, mac: m, expires: now.Add(c.ttl), prev: c.newest}
	if c.newest != nil {
		c.newest.next = e
	} else {
		c.oldest = e
	}
	c.newest = e
	c.entries[name] = e
}

// Forget drops the account's entry, for a process that changes or deletes
// the account itself (another process's change misses by the stored hash
// anyway).
func (c *Cache) Forget(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[name]; e != nil {
		c.remove(e)
	}
}

// remove unlinks e; c.mu is held.
func (c *Cache) remove(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.newest = e.prev
	}
	e.prev, e.next = nil, nil
	delete(c.entries, e.name)
}

// CacheStats are a Cache's counters.
type CacheStats struct {
	Hits, Misses uint64
	// Users is the number of entries held, expired ones not yet dropped
	// included.
	Users int
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Users: len(c.entries)}
}

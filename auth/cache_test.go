package auth

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time          { return f.t }
func (f *fakeClock) advance(d time.Duration) { f.t = f.t.Add(d) }

func newTestCache(ttl time.Duration, max int) (*Cache, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return NewCache(CacheOptions{TTL: ttl, MaxUsers: max, Now: clk.now}), clk
}

const hashA = "$2a$10$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestCacheHitMiss(t *testing.T) {
	c, _ := newTestCache(time.Hour, 0)
	if c.Verified(1, "alice", hashA, "secret") {
		t.Fatal("hit in an empty cache")
	}
	c.Add(1, "alice", hashA, "secret")
	if !c.Verified(1, "alice", hashA, "secret") {
		t.Fatal("miss right after Add")
	}
	// Anything else about the login misses: a wrong password (the
	// cache must never vouch for one), another account's row.
	for _, tc := range []struct {
		id         int64
		name, pass string
	}{
		{1, "alice", "Secret"},
		{1, "alice", "secret "},
		{1, "alice", ""},
		{2, "alice", "secret"}, // deleted and re-created with the same hash
		{1, "bob", "secret"},
	} {
		if c.Verified(tc.id, tc.name, hashA, tc.pass) {
			t.Errorf("hit for %+v", tc)
		}
	}
	// The entry survives the misses.
	if !c.Verified(1, "alice", hashA, "secret") {
		t.Error("miss after other lookups")
	}
	if got, want := c.Stats(), (CacheStats{Hits: 2, Misses: 6, Users: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestCacheExpiry(t *testing.T) {
	c, clk := newTestCache(time.Hour, 0)
	c.Add(1, "alice", hashA, "secret")
	clk.advance(time.Hour - time.Second)
	if !c.Verified(1, "alice", hashA, "secret") {
		t.Fatal("miss before the TTL")
	}
	// A hit does not extend the entry's life.
	clk.advance(time.Second)
	if c.Verified(1, "alice", hashA, "secret") {
		t.Fatal("hit at the TTL")
	}
	if n := c.Stats().Users; n != 0 {
		t.Errorf("%d entries after expiry, want 0", n)
	}
	// A new bcrypt check starts a new TTL.
	c.Add(1, "alice", hashA, "secret")
	clk.advance(30 * time.Minute)
	if !c.Verified(1, "alice", hashA, "secret") {
		t.Error("miss after a new Add")
	}
	// Expired entries of other accounts go when one is added.
	c.Add(2, "bob", hashA, "pw")
	clk.advance(2 * time.Hour)
	c.Add(3, "carol", hashA, "pw")
	if n := c.Stats().Users; n != 1 {
		t.Errorf("%d entries, want 1 (the expired ones dropped)", n)
	}
}

// A password change writes a new hash (with a new salt) to the store; the
// next login reads it and misses, even though nobody told the cache.
func TestCacheHashChange(t *testing.T) {
	c, _ := newTestCache(time.Hour, 0)
	old, err := HashPassword("old password")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(1, "alice", old, "old password")
	changed, err := HashPassword("new password")
	if err != nil {
		t.Fatal(err)
	}
	if c.Verified(1, "alice", changed, "old password") {
		t.Error("old password hit after the hash changed")
	}
	// Even a change back to the same password gives a new salt.
	same, err := HashPassword("old password")
	if err != nil {
		t.Fatal(err)
	}
	if c.Verified(1, "alice", same, "old password") {
		t.Error("hit against a new hash of the same password")
	}
	// After the new password is verified, the old entry is replaced.
	c.Add(1, "alice", changed, "new password")
	if !c.Verified(1, "alice", changed, "new password") || c.Verified(1, "alice", old, "old password") {
		t.Error("replacing the entry")
	}
	if n := c.Stats().Users; n != 1 {
		t.Errorf("%d entries for one account", n)
	}
}

func TestCacheForget(t *testing.T) {
	c, _ := newTestCache(time.Hour, 0)
	c.Add(1, "alice", hashA, "secret")
	c.Add(2, "bob", hashA, "pw")
	c.Forget("alice")
	c.Forget("nobody")
	if c.Verified(1, "alice", hashA, "secret") {
		t.Error("hit after Forget")
	}
	if !c.Verified(2, "bob", hashA, "pw") {
		t.Error("Forget of alice dropped bob")
	}
}

func TestCacheDisabled(t *testing.T) {
	for _, c := range []*Cache{nil, NewCache(CacheOptions{}), NewCache(CacheOptions{TTL: -time.Second})} {
		c.Add(1, "alice", hashA, "secret")
		if c.Verified(1, "alice", hashA, "secret") {
			t.Errorf("%p: hit in a disabled cache", c)
		}
		c.Forget("alice")
		if s := c.Stats(); s != (CacheStats{}) {
			t.Errorf("%p: stats %+v", c, s)
		}
	}
}

func TestCacheBound(t *testing.T) {
	c, clk := newTestCache(time.Hour, 3)
	for i := range 5 {
		c.Add(int64(i), fmt.Sprint("user", i), hashA, "pw")
		clk.advance(time.Second)
	}
	if n := c.Stats().Users; n != 3 {
		t.Fatalf("%d entries, want the bound 3", n)
	}
	// The oldest went first.
	for i := range 5 {
		if got, want := c.Verified(int64(i), fmt.Sprint("user", i), hashA, "pw"), i >= 2; got != want {
			t.Errorf("user%d: hit %v, want %v", i, got, want)
		}
	}
	// Re-adding an account moves it to the young end.
	c.Add(2, "user2", hashA, "pw")
	c.Add(5, "user5", hashA, "pw")
	if c.Verified(3, "user3", hashA, "pw") || !c.Verified(2, "user2", hashA, "pw") {
		t.Error("eviction after re-adding user2: want user3 gone, user2 kept")
	}
	checkList(t, c)
}

// checkList checks that the list links every entry of the map, oldest
// first, expiries in order.
func checkList(t *testing.T, c *Cache) {
	t.Helper()
	var names []string
	var prev *cacheEntry
	for e := c.oldest; e != nil; e = e.next {
		if e.prev != prev || (prev != nil && e.expires.Before(prev.expires)) || c.entries[e.name] != e {
			t.Fatalf("list broken at %s", e.name)
		}
		names = append(names, e.name)
		prev = e
	}
	if prev != c.newest || len(names) != len(c.entries) {
		t.Fatalf("list %v, map of %d", names, len(c.entries))
	}
}

// The cache holds no password: nothing in an entry contains it, and two
// caches (two processes) have different keys.
func TestCacheKeepsNoPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	c, _ := newTestCache(time.Hour, 0)
	c.Add(1, "alice", hashA, pw)
	e := c.entries["alice"]
	for _, f := range []string{e.name, string(e.mac[:])} {
		if bytes.Contains([]byte(f), []byte(pw)) {
			t.Error("password in an entry")
		}
	}
	if n := reflect.TypeOf(*e).NumField(); n != 5 {
		t.Errorf("cacheEntry has %d fields: check that none holds the password, then update this count", n)
	}
	c2, _ := newTestCache(time.Hour, 0)
	if c.key == c2.key || c.key == [32]byte{} {
		t.Error("two caches share a key, or the key is zero")
	}
	if c.mac(1, "alice", hashA, pw) == c2.mac(1, "alice", hashA, pw) {
		t.Error("same MAC under two keys")
	}
}

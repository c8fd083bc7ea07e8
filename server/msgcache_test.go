package server

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

func TestMsgCacheHitMiss(t *testing.T) {
	c := newMsgCache(1 << 20)
	k := msgKey{mailbox: 7, validity: 100, uid: 3, kind: msgInfo}
	if d := c.get(k); d != nil {
		t.Fatalf("empty cache: got %+v", d)
	}
	date := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	c.put(k, &msgData{date: date, size: 1234, structure: []byte("tree")})
	d := c.get(k)
	if d == nil || !d.date.Equal(date) || d.size != 1234 || string(d.structure) != "tree" {
		t.Fatalf("hit: got %+v", d)
	}
	// Every other part of the key names another message.
	for _, other := range []msgKey{
		{mailbox: 8, validity: 100, uid: 3, kind: msgInfo},
		{mailbox: 7, validity: 101, uid: 3, kind: msgInfo},
		{mailbox: 7, validity: 100, uid: 4, kind: msgInfo},
		{mailbox: 7, validity: 100, uid: 3, kind: msgBody},
	} {
		if d := c.get(other); d != nil {
			t.Errorf("get(%+v) = %+v, want a miss", other, d)
		}
	}
	if h, m := c.hits.Load(), c.misses.Load(); h != 1 || m != 5 {
		t.Errorf("hits, misses = %d, %d; want 1, 5", h, m)
	}
}

func TestMsgCacheDisabled(t *testing.T) {
	c := newMsgCache(-1)
	if c != nil {
		t.Fatal("a negative bound must disable the cache")
	}
	k := msgKey{mailbox: 1, validity: 1, uid: 1}
	c.put(k, &msgData{size: 1})
	if d := c.get(k); d != nil {
		t.Fatalf("disabled cache answered %+v", d)
	}
}

func TestMsgCacheEvictsByBytes(t *testing.T) {
	const limit = 64 << 10
	c := newMsgCache(limit)
	body := bytes.Repeat([]byte("x"), 1000)
	key := func(i int) msgKey { return msgKey{mailbox: 1, validity: 1, uid: uint32(i), kind: msgBody} }
	const n = 1000 // about 1.1 MB in all, far over the bound
	for i := 1; i <= n; i++ {
		c.put(key(i), &msgData{body: body})
		// The first message is used all the time: it must stay.
		if c.get(key(1)) == nil {
			t.Fatalf("after %d puts the message used all along was evicted", i)
		}
		if b := c.bytes(); b > limit {
			t.Fatalf("after %d puts the cache holds %d bytes, over its bound %d", i, b, limit)
		}
	}
	if c.get(key(2)) != nil {
		t.Error("an old, unused entry survived")
	}
	if c.get(key(n)) == nil {
		t.Error("the newest entry is missing")
	}
	// An entry larger than a generation is not kept at all.
	big := msgKey{mailbox: 1, validity: 1, uid: n + 1, kind: msgBody}
	c.put(big, &msgData{body: make([]byte, limit)})
	if c.get(big) != nil {
		t.Error("an entry over half the bound was kept")
	}
	if c.get(key(n)) == nil {
		t.Error("an oversized entry evicted others")
	}
}

func TestMsgCacheConcurrent(t *testing.T) {
	c := newMsgCache(32 << 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := msgKey{mailbox: int64(g % 2), validity: 1, uid: uint32(i % 300)}
				want := fmt.Sprintf("%d/%d", g%2, i%300)
				if d := c.get(k); d != nil {
					if string(d.structure) != want {
						t.Errorf("get(%+v) = %q, want %q", k, d.structure, want)
						return
					}
					continue
				}
				c.put(k, &msgData{structure: []byte(want)})
			}
		})
	}
	wg.Wait()
	if b := c.bytes(); b > 32<<10 {
		t.Errorf("cache holds %d bytes, over its bound", b)
	}
}

func TestCachedBody(t *testing.T) {
	b := cachedBody("hello world")
	if b.Size() != 11 || string(b.Bytes()) != "hello world" {
		t.Fatalf("Size, Bytes = %d, %q", b.Size(), b.Bytes())
	}
	p := make([]byte, 5)
	if n, err := b.ReadAt(p, 6); n != 5 || err != nil || string(p) != "world" {
		t.Errorf("ReadAt(6) = %d, %v, %q", n, err, p)
	}
	if n, err := b.ReadAt(p, 8); n != 3 || err != io.EOF || string(p[:n]) != "rld" {
		t.Errorf("ReadAt(8) = %d, %v, %q", n, err, p[:n])
	}
	if n, err := b.ReadAt(p, 11); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(11) = %d, %v", n, err)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

func TestDefaultMessageCache(t *testing.T) {
	for _, tc := range []struct{ mem, want int64 }{
		{0, DefaultMessageCacheBytes},         // memory unknown
		{512 << 20, DefaultMessageCacheBytes}, // a small VPS
		{4 << 30, 256 << 20},
		{24 << 30, 1 << 30},
		{256 << 30, 1 << 30},
	} {
		if got := messageCacheFor(tc.mem); got != tc.want {
			t.Errorf("memory %d: cache %d, want %d", tc.mem, got, tc.want)
		}
	}
	if d := DefaultMessageCache(); d < DefaultMessageCacheBytes || d > 1<<30 {
		t.Errorf("DefaultMessageCache() = %d", d)
	}
}

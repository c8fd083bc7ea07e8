package server

import (
	"fmt"
	"testing"

	"github.com/quickimap/quickimap/message"
)

func marshalled(t *testing.T, raw string) []byte {
	t.Helper()
	p, err := message.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return p.Marshal()
}

func TestPartCache(t *testing.T) {
	c := newPartCache()
	enc := marshalled(t, "Subject: one\r\nFrom: a@example.com\r\n\r\nbody\r\n")
	p1, err := c.get(enc)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Envelope == nil || p1.Envelope.Subject != "one" {
		t.Fatalf("decoded tree: %+v", p1)
	}
	// The same bytes, in another slice: the same tree, not decoded again.
	p2, err := c.get(append([]byte(nil), enc...))
	if err != nil || p2 != p1 {
		t.Fatalf("second get: %p, %v; want %p", p2, err, p1)
	}
	// Other bytes: their own tree.
	q, err := c.get(marshalled(t, "Subject: two\r\n\r\nx\r\n"))
	if err != nil || q == p1 || q.Envelope.Subject != "two" {
		t.Fatalf("other message: %+v, %v", q, err)
	}
	// A corrupt encoding is an error and is not kept.
	if _, err := c.get([]byte{0}); err == nil {
		t.Error("corrupt encoding decoded")
	}
	if _, ok := c.trees.cur["\x00"]; ok {
		t.Error("corrupt encoding cached")
	}

	// Bounded: two generations at most; an entry used in the previous
	// generation moves forward and survives the next turn.
	for i := range 2 * partCacheGen {
		if _, err := c.get(marshalled(t, fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))); err != nil {
			t.Fatal(err)
		}
		if i == partCacheGen+10 {
			if p, _ := c.get(enc); p != p1 {
				t.Fatal("entry lost after one turn")
			}
		}
	}
	if n := len(c.trees.cur) + len(c.trees.prev); n > 2*partCacheGen {
		t.Errorf("%d entries, want at most %d", n, 2*partCacheGen)
	}
	if p, _ := c.get(enc); p != p1 {
		t.Error("entry used in the previous generation was dropped")
	}
}

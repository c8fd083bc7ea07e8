package server_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

// fetchCountingStore counts what FETCH loads from the store.
type fetchCountingStore struct {
	store.Store
	infoUIDs, opens atomic.Int64
}

func (s *fetchCountingStore) MessageInfos(ctx context.Context, userID, mailboxID int64, uids []uint32) ([]store.MessageInfo, error) {
	s.infoUIDs.Add(int64(len(uids)))
	return s.Store.MessageInfos(ctx, userID, mailboxID, uids)
}

func (s *fetchCountingStore) OpenBody(ctx context.Context, userID, mailboxID int64, uid uint32) (store.Body, error) {
	s.opens.Add(1)
	return s.Store.OpenBody(ctx, userID, mailboxID, uid)
}

func startFetchCounting(t *testing.T, cacheBytes int64) (*imaptest.Env, *fetchCountingStore) {
	var cs *fetchCountingStore
	env := imaptest.Start(t, func(o *server.Options) {
		cs = &fetchCountingStore{Store: o.Store}
		o.Store = cs
		o.MessageCacheBytes = cacheBytes
	})
	return env, cs
}

const cacheTestSmall = "From: Ann <ann@example.org>\r\nSubject: small\r\nContent-Type: text/plain\r\n\r\nhello\r\n"

func cacheTestLarge() string {
	return "From: Bob <bob@example.org>\r\nSubject: large\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 5000)
}

// TestFetchMessageCache: a repeated FETCH of what never changes is
// answered from the message cache, byte for byte as from the store; a
// body over the cache's size limit is read from the store every time.
func TestFetchMessageCache(t *testing.T) {
	env, cs := startFetchCounting(t, 0)
	date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	appendMessages(t, env, "INBOX", []testMessage{
		{date: date, raw: cacheTestSmall},
		{date: date, raw: cacheTestLarge()},
	})
	c := env.DialLogin(t)
	selectBox(t, c, "s", "INBOX")
	const all = "UID FETCH 1:2 (RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1])"
	first := c.ExpectTagged("a1", all, "a1 OK")
	if n := cs.infoUIDs.Load(); n != 2 {
		t.Fatalf("first FETCH loaded %d infos, want 2", n)
	}
	cs.infoUIDs.Store(0)
	cs.opens.Store(0)
	second := c.ExpectTagged("a2", all, "a2 OK")
	if !slices.Equal(first[:len(first)-1], second[:len(second)-1]) {
		t.Fatalf("answers differ:\nstore: %q\ncache: %q", first, second)
	}
	if n := cs.infoUIDs.Load(); n != 0 {
		t.Errorf("second FETCH loaded %d infos from the store, want 0", n)
	}
	if n := cs.opens.Load(); n != 1 {
		t.Errorf("second FETCH opened %d bodies, want 1 (the large one)", n)
	}
	if !strings.Contains(strings.Join(second, "\n"), "RFC822.SIZE 80 ") {
		t.Errorf("size of the small message missing: %q", second)
	}

	cs.opens.Store(0)
	whole := c.ExpectTagged("a3", "UID FETCH 1 BODY.PEEK[]", "a3 OK")
	if n := cs.opens.Load(); n != 0 {
		t.Errorf("BODY.PEEK[] of a cached small message opened %d bodies, want 0", n)
	}
	if got := strings.Join(whole, "\n"); !strings.Contains(got, "hello") {
		t.Errorf("BODY.PEEK[] from the cache: %q", got)
	}
}

// TestFetchMessageCacheDisabled: with the cache off every FETCH reads the
// store.
func TestFetchMessageCacheDisabled(t *testing.T) {
	env, cs := startFetchCounting(t, -1)
	appendMessages(t, env, "INBOX", []testMessage{{date: time.Now(), raw: cacheTestSmall}})
	c := env.DialLogin(t)
	selectBox(t, c, "s", "INBOX")
	for _, tag := range []string{"a1", "a2"} {
		c.ExpectTagged(tag, "UID FETCH 1 (ENVELOPE BODY.PEEK[])", tag+" OK")
	}
	if n, o := cs.infoUIDs.Load(), cs.opens.Load(); n != 2 || o != 2 {
		t.Errorf("infos, opens = %d, %d; want 2, 2", n, o)
	}
}

// TestSearchHeaderCache: a repeated header search finds the headers in
// the message cache, with the same result.
func TestSearchHeaderCache(t *testing.T) {
	var cs *countingStore
	env := imaptest.Start(t, func(o *server.Options) {
		cs = &countingStore{Store: o.Store}
		o.Store = cs
	})
	appendMessages(t, env, "INBOX", searchMsgs)
	c := env.DialLogin(t)
	selectBox(t, c, "s", "INBOX")
	first := c.ExpectTagged("a1", "UID SEARCH FROM x", "a1 OK")
	if cs.headers.Load() == 0 {
		t.Fatal("the first header search read no headers")
	}
	cs.reset()
	second := c.ExpectTagged("a2", "UID SEARCH FROM x", "a2 OK")
	if !slices.Equal(first[:len(first)-1], second[:len(second)-1]) {
		t.Fatalf("results differ: %q, then %q", first, second)
	}
	if n := cs.headers.Load(); n != 0 {
		t.Errorf("the repeated search read %d headers from the store, want 0", n)
	}
	if first[0] == "* SEARCH" {
		t.Errorf("FROM x matched nothing: %q", first)
	}
}

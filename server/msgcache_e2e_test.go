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

// TestAppendFillsMessageCache: a message just appended is answered from
// the message cache exactly as the store answers for it.
func TestAppendFillsMessageCache(t *testing.T) {
	const fetch = "UID FETCH 1:2 (INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
	answers := make(map[bool][]string)
	for _, cached := range []bool{true, false} {
		size := int64(0)
		if !cached {
			size = -1
		}
		env, cs := startFetchCounting(t, size)
		c := env.DialLogin(t)
		c.ExpectTagged("a1", "APPEND INBOX \"04-Mar-2024 05:06:07 +0130\" {80+}\r\n"+cacheTestSmall, "a1 OK")
		c.ExpectTagged("a2", "APPEND INBOX {80+}\r\n"+cacheTestSmall, "a2 OK")
		selectBox(t, c, "s", "INBOX")
		got := c.ExpectTagged("a3", fetch, "a3 OK")
		if n := cs.infoUIDs.Load(); cached && n != 0 {
			t.Errorf("FETCH after APPEND loaded %d infos from the store, want 0", n)
		}
		if !strings.Contains(got[0], `INTERNALDATE "04-Mar-2024 05:06:07 +0130" RFC822.SIZE 80 `) {
			t.Errorf("cached %v: %q", cached, got[0])
		}
		// The second message's date is the server's clock: the cached
		// one must be the stored one.
		ctx := context.Background()
		userID, inboxID := rcInbox(t, env)
		infos, err := env.Store.MessageInfos(ctx, userID, inboxID, []uint32{2})
		if err != nil || len(infos) != 1 {
			t.Fatalf("MessageInfos: %v, %v", infos, err)
		}
		if want := infos[0].InternalDate.Format(`"02-Jan-2006 15:04:05 -0700"`); !strings.Contains(got[1], "INTERNALDATE "+want) {
			t.Errorf("cached %v: %q, want INTERNALDATE %s", cached, got[1], want)
		}
		answers[cached] = got[:len(got)-1]
	}
	// Both runs fall within the same second only by chance: compare all
	// but the dates.
	strip := func(lines []string) []string {
		out := make([]string, len(lines))
		for i, l := range lines {
			if j := strings.Index(l, "INTERNALDATE "); j >= 0 {
				l = l[:j] + l[j+len(`INTERNALDATE "04-Mar-2024 05:06:07 +0130"`):]
			}
			out[i] = l
		}
		return out
	}
	if a, b := strip(answers[true]), strip(answers[false]); !slices.Equal(a, b) {
		t.Errorf("cache and store differ:\n%q\n%q", a, b)
	}
}

package server_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
)

// hookStore runs a hook once in the next UIDChangesSince, before the
// read or after it: a write there lands after a resume's view snapshot,
// before or after its store read.
type hookStore struct {
	store.Store
	hook      atomic.Pointer[func()]
	afterRead bool
	read      atomic.Int64 // UIDChangesSince calls
}

func (s *hookStore) UIDChangesSince(ctx context.Context, userID, mailboxID int64, modseq uint64, withChanged bool) (store.UIDChanges, error) {
	s.read.Add(1)
	h := s.hook.Swap(nil)
	if h != nil && !s.afterRead {
		(*h)()
	}
	ch, err := s.Store.UIDChangesSince(ctx, userID, mailboxID, modseq, withChanged)
	if h != nil && s.afterRead {
		(*h)()
	}
	return ch, err
}

// rawCmd sends a command on c's connection and reads to its tagged
// response without the Conn methods that call t.Fatal, so that it can
// run on another goroutine (a store hook on the server's).
func rawCmd(c *imaptest.Conn, tag, cmd string) (string, error) {
	c.NC.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.NC, tag+" "+cmd+"\r\n"); err != nil {
		return "", err
	}
	for {
		l, err := c.R.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimRight(l, "\r\n"), nil
		}
	}
}

// A resume opens the view first and reads the store once after it
// (server/cmd_sid.go). An expunge that lands between the two is among the
// tombstones read but still in the view: the resume's report leaves it
// out, sends the HIGHESTMODSEQ of its snapshot (below the expunge), and
// the expunge goes out live, as for any command, before the tagged OK.
// One that lands after the read too: it is in neither the read nor the
// report, and still goes out live (reading before the snapshot would
// lose it: in neither the read nor the view). The changes from before
// the snapshot come from the one read.
func TestSIDResumeExpungeDuringResume(t *testing.T) {
	for _, after := range []bool{false, true} {
		name := "between snapshot and read"
		if after {
			name = "after the read"
		}
		t.Run(name, func(t *testing.T) { testSIDResumeExpungeDuring(t, after) })
	}
}

func testSIDResumeExpungeDuring(t *testing.T, afterRead bool) {
	var hs *hookStore
	env := imaptest.Start(t, func(o *server.Options) {
		hs = &hookStore{Store: o.Store, afterRead: afterRead}
		o.Store = hs
	})
	uv := seed(t, env, 5) // HIGHESTMODSEQ 6
	w := selectedW(t, env)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "a")
	c.NC.Close()
	w.ExpectTagged("w1", `UID STORE 2 +FLAGS (\Flagged)`, "w1 OK") // 7
	expungeUIDs(t, w, "3")                                         // 8, 9

	w2 := selectedW(t, env)
	var hookErr error
	var hookRan atomic.Bool
	hook := func() {
		hookRan.Store(true)
		for _, cmd := range []string{`UID STORE 4 +FLAGS.SILENT (\Deleted)`, "UID EXPUNGE 4"} { // 10, 11
			if l, err := rawCmd(w2, "h", cmd); err != nil || !strings.HasPrefix(l, "h OK") {
				hookErr = fmt.Errorf("%s: %q, %v", cmd, l, err)
				return
			}
		}
	}
	c = env.DialLogin(t)
	reads := hs.read.Load()
	hs.hook.Store(&hook)
	got := c.Cmd("b", fmt.Sprintf("SID %s %d 6", id, uv))
	if !hookRan.Load() || hookErr != nil {
		t.Fatalf("the expunge during the resume: ran %v, %v", hookRan.Load(), hookErr)
	}
	if n := hs.read.Load() - reads; n != 1 {
		t.Errorf("the resume read the store's changes %d times, want once", n)
	}
	checkLines(t, got, []string{
		"* SELECTED INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Ok`,
		"* 4 EXISTS", // UIDs 1, 2, 4, 5: the snapshot
		"* 0 RECENT",
		fmt.Sprintf("* OK [UIDVALIDITY %d] Ok", uv),
		"* OK [UIDNEXT 6] Ok",
		"* OK [HIGHESTMODSEQ 9] Ok", // below the expunge of UID 4
		`* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (7))`,
		"* EXPUNGED 3",
		// Live, so it renumbers: the resume stood for UID FETCH
		// (REPORTEXPUNGES), after which expunges come as EXPUNGED
		// (docs/reconnect.md, decisions 13 and 14).
		"* EXPUNGED 4",
		"b OK [READ-WRITE] Ok",
	})
	c.Expect("n", "NOOP", "n OK NOOP completed")
	c.Expect("f", "FETCH 1:* (UID)", "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 5)", "f OK FETCH completed")
}

// countingSessions counts the session rows written: checkpoints
// (saves) and claims.
type countingSessions struct {
	store.Sessions
	saves, claims atomic.Int64
}

func (s *countingSessions) SaveSession(ctx context.Context, rec store.SessionRecord) error {
	s.saves.Add(1)
	return s.Sessions.SaveSession(ctx, rec)
}

func (s *countingSessions) UpdateSession(ctx context.Context, rec store.SessionRecord, release bool) error {
	s.saves.Add(1)
	return s.Sessions.UpdateSession(ctx, rec, release)
}

func (s *countingSessions) ClaimSession(ctx context.Context, userID int64, id, node string, touchBefore, now time.Time) (store.SessionRecord, error) {
	s.claims.Add(1)
	return s.Sessions.ClaimSession(ctx, userID, id, node, touchBefore, now)
}

// A resume writes the session's row once to claim it (its owner node and
// generation: whichever connection, on whichever node, held it before
// can no longer write it), and a second time only when something in its
// state changed. A LastActive older than half the session timeout is
// moved forward by the claim itself (session.Registry.Attach). A phone
// that reconnects again and again to the same mailbox costs one write
// per resume, the claim, which the SQLite store commits without an
// fsync.
func TestSIDResumeWrites(t *testing.T) {
	var cs *countingSessions
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	env := imaptest.Start(t, func(o *server.Options) {
		cs = &countingSessions{Sessions: o.Store}
		o.Sessions = session.New(cs, session.Options{
			Timeout: 24 * time.Hour,
			Now:     func() time.Time { return time.Unix(0, now.Load()) },
		})
	})
	uv := seed(t, env, 3) // HIGHESTMODSEQ 4
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, c, "a")
	c.Expect("o", "LOGOUT (PRESERVE)", "* BYE Logging out; session state preserved", "o OK LOGOUT completed")

	resume := func(tag string) int64 {
		t.Helper()
		c := env.DialLogin(t)
		before, claims := cs.saves.Load(), cs.claims.Load()
		c.ExpectTagged(tag, fmt.Sprintf("SID %s %d 4", id, uv), tag+" OK [READ-WRITE] Ok")
		n := cs.saves.Load() - before
		if k := cs.claims.Load() - claims; k != 1 {
			t.Errorf("%s: %d claims, want 1", tag, k)
		}
		c.Expect("o"+tag, "LOGOUT (PRESERVE)", "* BYE Logging out; session state preserved", "o"+tag+" OK LOGOUT completed")
		return n
	}
	// The first resume turns CONDSTORE and the EXPUNGED reporting on
	// (§3.3): the state changed, one write.
	if n := resume("r1"); n != 1 {
		t.Errorf("first resume: %d session writes, want 1", n)
	}
	// Nothing changed, detached moments ago: none.
	if n := resume("r2"); n != 0 {
		t.Errorf("resume of an unchanged session: %d session writes, want 0", n)
	}
	// A new message becomes \Recent in the session: one write.
	w := env.DialLogin(t)
	if l := appendMsg(t, w, "p", "INBOX", "", testMsg); !strings.HasPrefix(l, "p OK") {
		t.Fatalf("append: %q", l)
	}
	if n := resume("r3"); n != 1 {
		t.Errorf("resume with a new recent message: %d session writes, want 1", n)
	}
	// Unchanged, but detached more than Timeout/2 ago: the claim moves
	// LastActive forward, no other write.
	now.Add(int64(13 * time.Hour))
	if n := resume("r4"); n != 0 {
		t.Errorf("resume 13 hours after the detach: %d session writes, want 0", n)
	}
	if n := resume("r5"); n != 0 {
		t.Errorf("resume right after: %d session writes, want 0", n)
	}
}

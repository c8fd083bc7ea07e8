package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/internal/bustest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// manualBus records what its server publishes and hands the test the
// server's Handler; it delivers nothing by itself.
type manualBus struct {
	mu        sync.Mutex
	published []bus.Hint
	handler   chan bus.Handler
}

func newManualBus() *manualBus { return &manualBus{handler: make(chan bus.Handler, 1)} }

func (m *manualBus) Publish(h bus.Hint) {
	m.mu.Lock()
	m.published = append(m.published, h)
	m.mu.Unlock()
}

func (m *manualBus) Run(ctx context.Context, h bus.Handler) error {
	m.handler <- h
	<-ctx.Done()
	return nil
}

func (m *manualBus) Close() error { return nil }

func (m *manualBus) take() []bus.Hint {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs := m.published
	m.published = nil
	return hs
}

// waitHandler returns the Handler the server gave Run.
func (m *manualBus) waitHandler(t *testing.T) bus.Handler {
	t.Helper()
	select {
	case h := <-m.handler:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the server never ran its bus")
		return nil
	}
}

func sharedStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bustest.CreateUser(t, st)
	return st
}

func mailboxState(t *testing.T, st store.Store, name string) store.Mailbox {
	t.Helper()
	u, err := st.UserByName(context.Background(), bustest.User)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.MailboxByName(context.Background(), u.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// Each local write publishes one hint, after it, with the MODSEQ it
// reached when the store said.
func TestBusPublishesWrites(t *testing.T) {
	st := sharedStore(t)
	mb := newManualBus()
	n := bustest.StartNode(t, "n", st, mb, nil)
	c := n.Env.DialLogin(t)
	inbox := mailboxState(t, st, "INBOX")
	archive := mailboxState(t, st, "Archive")
	check := func(what string, want ...bus.Hint) {
		t.Helper()
		got := mb.take()
		if len(got) != len(want) {
			t.Fatalf("%s published %+v, want %+v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s published %+v, want %+v", what, got[i], want[i])
			}
		}
	}
	changed := func(id int64, modseq uint64) bus.Hint {
		return bus.Hint{Kind: bus.MailboxChanged, Mailbox: id, ModSeq: modseq}
	}

	bustest.Append(t, c, "1", "INBOX", bustest.Msg)
	check("APPEND", changed(inbox.ID, mailboxState(t, st, "INBOX").HighestModSeq))
	c.ExpectTagged("2", "SELECT INBOX", "2 OK")
	check("SELECT")
	c.ExpectTagged("3", `STORE 1 +FLAGS (\Deleted)`, "3 OK")
	check("STORE", changed(inbox.ID, mailboxState(t, st, "INBOX").HighestModSeq))
	c.ExpectTagged("4", `STORE 1 +FLAGS (\Deleted)`, "4 OK")
	check("a STORE that changes nothing")
	c.ExpectTagged("5", "EXPUNGE", "5 OK")
	check("EXPUNGE", changed(inbox.ID, 0))
	bustest.Deliver(t, n.LMTPAddr, bustest.Msg)
	check("LMTP", changed(inbox.ID, mailboxState(t, st, "INBOX").HighestModSeq))
	c.ExpectTagged("5b", "NOOP", "5b OK") // the session learns of the delivery
	c.ExpectTagged("6", "COPY 1 Archive", "6 OK")
	check("COPY", changed(archive.ID, mailboxState(t, st, "Archive").HighestModSeq))
	c.ExpectTagged("7", "MOVE 1 Archive", "7 OK")
	check("MOVE", changed(archive.ID, mailboxState(t, st, "Archive").HighestModSeq), changed(inbox.ID, 0))
	c.ExpectTagged("8", "CREATE Work", "8 OK")
	work := mailboxState(t, st, "Work")
	check("CREATE")
	c.ExpectTagged("9", "DELETE Work", "9 OK")
	check("DELETE", bus.Hint{Kind: bus.MailboxGone, Mailbox: work.ID, Gone: 1})
	c.ExpectTagged("10", "RENAME INBOX Old", "10 OK")
	check("RENAME INBOX", bus.Hint{Kind: bus.MailboxGone, Mailbox: inbox.ID, Gone: 2})
}

// Two nodes whose bus delivers nothing: a Resync, a hint, and the safety
// poll each make node a see what b wrote.
func TestBusResyncHintAndPoll(t *testing.T) {
	st := sharedStore(t)
	busA := newManualBus()
	a := bustest.StartNode(t, "a", st, busA, nil)
	b := bustest.StartNode(t, "b", st, newManualBus(), nil)
	ha := busA.waitHandler(t)
	ca, cb := a.Env.DialLogin(t), b.Env.DialLogin(t)
	ca.ExpectTagged("a1", "SELECT INBOX", "a1 OK")
	bustest.Idle(t, ca, "a2")

	bustest.Append(t, cb, "b1", "INBOX", bustest.Msg)
	ha.Resync()
	bustest.WaitFor(t, ca, "* 1 EXISTS")

	bustest.Append(t, cb, "b2", "INBOX", bustest.Msg)
	inbox := mailboxState(t, st, "INBOX")
	ha.Hint(bus.Hint{Kind: bus.MailboxChanged, Mailbox: inbox.ID, ModSeq: inbox.HighestModSeq, Node: "b"})
	bustest.WaitFor(t, ca, "* 2 EXISTS")

	// A third node with the safety poll on and a bus that says nothing.
	c := bustest.StartNode(t, "c", st, newManualBus(), func(o *server.Options) { o.BusPollInterval = 20 * time.Millisecond })
	cc := c.Env.DialLogin(t)
	cc.ExpectTagged("c1", "SELECT INBOX", "c1 OK")
	bustest.Idle(t, cc, "c2")
	bustest.Append(t, cb, "b3", "INBOX", bustest.Msg)
	bustest.WaitFor(t, cc, "* 3 EXISTS")
}

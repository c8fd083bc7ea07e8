package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// countingStore counts the store reads a refresh makes.
type countingStore struct {
	store.Store
	changes atomic.Int64
}

func (c *countingStore) ChangesSince(ctx context.Context, userID, mailboxID int64, modseq uint64) (store.Changes, error) {
	c.changes.Add(1)
	return c.Store.ChangesSince(ctx, userID, mailboxID, modseq)
}

// A hint whose MODSEQ the index already has, or about a mailbox nobody
// holds, reads nothing; one beyond it refreshes the index.
func TestBusReceiverSkipsKnownModSeq(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	st := &countingStore{Store: sq}
	user, err := st.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	u := user.ID
	inbox, err := st.MailboxByName(ctx, u, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	archive, err := st.MailboxByName(ctx, u, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	msg := []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}}
	if _, _, err := st.AppendMessages(ctx, u, inbox.ID, msg); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: st})
	defer s.Shutdown(ctx)
	v, err := s.hub.Open(ctx, u, inbox.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	have, _ := s.hub.Held(inbox.ID)

	r := newBusReceiver(s)
	s.wg.Add(1)
	go r.work() // one worker: jobs run in order
	base := st.changes.Load()
	r.queue(inbox.ID, have)   // known
	r.queue(inbox.ID, have-1) // merges: still known
	r.queue(archive.ID, 0)    // nobody holds it
	if _, _, err := st.AppendMessages(ctx, u, archive.ID, msg); err != nil {
		t.Fatal(err)
	}
	_, after, err := st.AppendMessages(ctx, u, inbox.ID, msg)
	if err != nil {
		t.Fatal(err)
	}
	// The index moves only when a hint says so (jobs run in order: the
	// skipped ones come first).
	deadline := time.Now().Add(10 * time.Second)
	r.queue(inbox.ID, after.HighestModSeq)
	for {
		if ms, _ := s.hub.Held(inbox.ID); ms == after.HighestModSeq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the index never reached the hint's MODSEQ")
		}
		time.Sleep(time.Millisecond) // polling the index's state
	}
	if n := st.changes.Load() - base; n != 1 {
		t.Errorf("%d store reads for two known hints, one about an unheld mailbox and one new; want 1", n)
	}
}

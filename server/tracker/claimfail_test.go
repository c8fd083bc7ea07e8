package tracker

import (
	"context"
	"errors"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// failingClaim is a store whose \Recent claims fail as on a full disk.
type failingClaim struct {
	*memStore
	err error
}

func (s failingClaim) ClaimRecent(ctx context.Context, userID, mailboxID int64) (uint32, uint32, error) {
	return 0, 0, s.err
}

// A read-write view opens although its \Recent claim, a write, fails for
// lack of space; the mailbox being gone still fails the open.
func TestOpenClaimFails(t *testing.T) {
	st := newMemStore()
	st.addMailbox(testUser, testBox)
	if _, _, err := st.AppendMessages(context.Background(), testUser, testBox, make([]store.NewMessage, 3)); err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	hub := NewHub(failingClaim{st, full}, Options{})
	v, err := hub.Open(context.Background(), testUser, testBox, false)
	if err != nil {
		t.Fatalf("Open with a failing claim: %v", err)
	}
	defer v.Close()
	if v.Count() != 3 || v.RecentCount() != 0 || !errors.Is(v.OpenClaimErr(), full) {
		t.Errorf("view: %d messages, %d recent, claim error %v", v.Count(), v.RecentCount(), v.OpenClaimErr())
	}

	gone := NewHub(failingClaim{st, store.ErrNotFound}, Options{})
	if v, err := gone.Open(context.Background(), testUser, testBox, false); !errors.Is(err, store.ErrNotFound) {
		if v != nil {
			v.Close()
		}
		t.Errorf("Open with the mailbox gone at the claim: %v, want ErrNotFound", err)
	}
}

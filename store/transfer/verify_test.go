package transfer_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
	"github.com/quickimap/quickimap/store/transfer"
)

// Compare finds nothing between a store and an exact copy, and names
// what a client would notice once the copy differs.
func TestCompare(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := sqlite.Open(ctx, filepath.Join(dir, "a"), sqlite.Options{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	u, err := a.CreateUser(ctx, "alice", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := a.MailboxByName(ctx, u.ID, "INBOX")
	var msgs []store.NewMessage
	for range 5 {
		msgs = append(msgs, store.NewMessage{Body: []byte("Subject: x\r\n\r\nx")})
	}
	uids, _, err := a.AppendMessages(ctx, u.ID, inbox.ID, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Backup(ctx, filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(ctx, filepath.Join(dir, "b"), sqlite.Options{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if diffs, err := transfer.Compare(ctx, a, b); err != nil || diffs != nil {
		t.Fatalf("Compare of a copy: %q, %v", diffs, err)
	}

	// The same counters and UIDNEXT, but another message expunged in
	// each: only the UIDs tell.
	if _, err := a.Expunge(ctx, u.ID, inbox.ID, uids[1:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Expunge(ctx, u.ID, inbox.ID, uids[2:3]); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, u.ID, "Elsewhere"); err != nil {
		t.Fatal(err)
	}
	diffs, err := transfer.Compare(ctx, a, b)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(diffs, "\n")
	for _, want := range []string{`mailbox "INBOX": the copy's message UIDs differ`, `mailbox "INBOX": 1 expunged UIDs`, `subscriptions`} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in the differences:\n%s", want, got)
		}
	}
	if len(diffs) != 3 {
		t.Errorf("%d differences, want 3:\n%s", len(diffs), got)
	}
}

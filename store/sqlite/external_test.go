package sqlite

import (
	"context"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// ExternalChanges sees the commits of another connection (another
// process: a second Store on the same directory) and not the store's own.
func TestExternalChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	step := func(what string, want bool) {
		t.Helper()
		got, err := a.ExternalChanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: ExternalChanges = %v, want %v", what, got, want)
		}
	}
	step("first call", false)
	if _, err := a.CreateUser(ctx, "own", "x", store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	step("after an own write", false)
	u, err := b.CreateUser(ctx, "other", "x", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	step("after the other store's write", true)
	step("nothing since", false)
	mb, err := b.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.AppendMessages(ctx, u.ID, mb.ID, []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}}); err != nil {
		t.Fatal(err)
	}
	step("after the other store's append", true)
}

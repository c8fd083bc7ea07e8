package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/quickimap/quickimap/internal/tmpfs"
	"github.com/quickimap/quickimap/store"
)

// The default reserve is enough to DELETE, in one transaction, a mailbox
// that fills a 384 MiB file system with 2 KiB messages (about 90,000 of
// them, all in the database). It holds 384 MiB of memory in tmpfs, so it
// runs only when QUICKIMAP_RESERVE_LARGE=1 (and as root).
func TestReserveDeletesLargeMailbox(t *testing.T) {
	if os.Getenv("QUICKIMAP_RESERVE_LARGE") == "" {
		t.Skip("set QUICKIMAP_RESERVE_LARGE=1 to run (a 384 MiB tmpfs)")
	}
	dir := filepath.Join(tmpfs.Mount(t, 384<<20), "data")
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	mb, err := s.CreateMailbox(ctx, u.ID, "Big", "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		batch := make([]store.NewMessage, 100)
		for i := range batch {
			batch[i].Body = fullMessage(n+i, 2<<10)
		}
		if _, _, err := s.AppendMessages(ctx, u.ID, mb.ID, batch); err != nil {
			if !errors.Is(err, store.ErrFull) {
				t.Fatal(err)
			}
			break
		}
		n += 100
	}
	if err := s.DeleteMailbox(ctx, u.ID, "Big"); err != nil {
		t.Fatalf("DELETE of a mailbox of %d messages on the full disk: %v", n, err)
	}
	t.Logf("DELETE of a mailbox of %d messages of 2 KiB on the full disk: ok", n)
}

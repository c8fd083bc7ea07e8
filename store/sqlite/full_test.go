package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/tmpfs"
	"github.com/quickimap/quickimap/store"
)

// fullMessage is a message of about n bytes.
func fullMessage(i, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Subject: filler %d\r\n\r\n", i)
	line := bytes.Repeat([]byte("x"), 76)
	for b.Len() < n {
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// fill appends messages of size bytes to mailbox mb until the store
// refuses one; it returns how many went in and the refusal.
func fill(t *testing.T, s *Store, userID, mb int64, size int) (int, error) {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		if i > 100_000 {
			t.Fatal("the disk never filled")
		}
		if _, _, err := s.AppendMessages(ctx, userID, mb, []store.NewMessage{{Body: fullMessage(i, size)}}); err != nil {
			return i, err
		}
	}
}

// On a full file system the store answers store.ErrFull, releases its
// reserve, refuses further appends at once and lets every operation that
// frees space through; once space is free again appends work. Both ways
// of filling the disk are tried: bodies kept as files and small bodies in
// the database (whose pages, WAL and checkpoint need room).
func TestFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int // bytes of the filler messages
	}{
		{"files", 200 << 10},
		{"database", 2 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(tmpfs.Mount(t, 24<<20), "data")
			ctx := context.Background()
			s, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if fi, err := os.Stat(filepath.Join(dir, ReserveName)); err != nil || fi.Size() != DefaultReserveBytes {
				t.Fatalf("reserve file: %v, %v", fi, err)
			}
			u, err := s.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
			if err != nil {
				t.Fatal(err)
			}
			inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
			trash, _ := s.MailboxByName(ctx, u.ID, "Trash")
			other, err := s.CreateMailbox(ctx, u.ID, "Other", "")
			if err != nil {
				t.Fatal(err)
			}
			// A few messages in Other, for DELETE; the rest in INBOX.
			for i := range 5 {
				if _, _, err := s.AppendMessages(ctx, u.ID, other.ID, []store.NewMessage{{Body: fullMessage(i, tc.size)}}); err != nil {
					t.Fatal(err)
				}
			}
			n, err := fill(t, s, u.ID, inbox.ID, tc.size)
			if !errors.Is(err, store.ErrFull) {
				t.Fatalf("append %d on a full disk: %v, want ErrFull", n, err)
			}
			t.Logf("%d messages of %d bytes filled the disk: %v", n, tc.size, err)
			if !s.Full() {
				t.Error("store not in the full state")
			}
			if _, err := os.Stat(filepath.Join(dir, ReserveName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("reserve file still there: %v", err)
			}
			// Another process opening the store (quickimap user, check)
			// does not take the room back for a reserve of its own.
			s2, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatalf("opening the full store again: %v", err)
			}
			if !s2.Full() {
				t.Error("a store opened on the full disk is not in the full state")
			}
			s2.Close()
			if _, err := os.Stat(filepath.Join(dir, ReserveName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("reserve file written back by a second open: %v", err)
			}
			// Refused at once, even a small one.
			if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}}); !errors.Is(err, store.ErrFull) {
				t.Errorf("small append while full: %v, want ErrFull", err)
			}

			// SELECT's claim.
			if _, _, err := s.ClaimRecent(ctx, u.ID, inbox.ID); err != nil {
				t.Errorf("ClaimRecent while full: %v", err)
			}
			// STORE \Deleted + EXPUNGE of half of INBOX.
			idx, _, err := s.MessageIndex(ctx, u.ID, inbox.ID)
			if err != nil {
				t.Fatal(err)
			}
			var half []uint32
			for _, m := range idx[:len(idx)/2] {
				half = append(half, m.UID)
			}
			if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, half, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
				t.Errorf("STORE \\Deleted while full: %v", err)
			}
			if _, err := s.Expunge(ctx, u.ID, inbox.ID, half); err != nil {
				t.Errorf("EXPUNGE while full: %v", err)
			}
			// MOVE to Trash, then expunge it there.
			var rest []uint32
			for _, m := range idx[len(idx)/2:] {
				rest = append(rest, m.UID)
			}
			_, moved, _, err := s.MoveMessages(ctx, u.ID, inbox.ID, trash.ID, rest)
			if err != nil {
				t.Errorf("MOVE while full: %v", err)
			}
			if _, err := s.Expunge(ctx, u.ID, trash.ID, moved); err != nil {
				t.Errorf("EXPUNGE of Trash while full: %v", err)
			}
			if err := s.DeleteMailbox(ctx, u.ID, "Other"); err != nil {
				t.Errorf("DELETE while full: %v", err)
			}

			t.Logf("free pages: %d bytes; full %v", s.freePages(), s.Full())
			// Appends come back once the disk has room for the reserve
			// again (checked at most once a second).
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: fullMessage(0, tc.size)}})
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrFull) || time.Now().After(deadline) {
					t.Fatalf("append after freeing space: %v", err)
				}
				time.Sleep(50 * time.Millisecond) // polling for the re-arm
			}
			if s.Full() {
				t.Error("still in the full state")
			}
			// Bodies in files gave their space back to the file system,
			// so the reserve is there again; bodies in the database only
			// gave it back to the database.
			if fi, err := os.Stat(filepath.Join(dir, ReserveName)); tc.size > DefaultReserveBytes/64 && (err != nil || fi.Size() != DefaultReserveBytes) {
				t.Errorf("reserve file not back: %v, %v", fi, err)
			}
			if problems, err := s.Check(ctx); err != nil || len(problems) > 0 {
				t.Errorf("check: %q, %v", problems, err)
			}
		})
	}
}

// The full state without a full file system (and without root): SQLite's
// max_page_count makes the database "full" with SQLITE_FULL, as a full
// disk does.
func TestFullState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{LargeBody: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	var pages int64
	if err := s.readers().QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdbT().ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+30)); err != nil {
		t.Fatal(err)
	}
	n, err := fill(t, s, u.ID, inbox.ID, 2<<10)
	if !errors.Is(err, store.ErrFull) || n == 0 {
		t.Fatalf("append %d: %v, want ErrFull", n, err)
	}
	if !s.Full() {
		t.Error("not in the full state")
	}
	if _, err := os.Stat(filepath.Join(dir, ReserveName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reserve not released: %v", err)
	}
	if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("x")}}); !errors.Is(err, store.ErrFull) || !strings.Contains(err.Error(), "no room for new messages") {
		t.Errorf("append while full: %v, want the refusal without a write", err)
	}
	// Deletes go on.
	idx, _, err := s.MessageIndex(ctx, u.ID, inbox.ID)
	if err != nil || len(idx) != n {
		t.Fatalf("index: %d messages, %v; want %d", len(idx), err, n)
	}
	var uids []uint32
	for _, m := range idx {
		uids = append(uids, m.UID)
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids); err != nil {
		t.Errorf("expunge while full: %v", err)
	}
	// The file system has room: the next append after a second writes
	// the reserve back and goes through.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}})
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrFull) || time.Now().After(deadline) {
			t.Fatalf("append after the expunge: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling for the re-arm
	}
	if fi, err := os.Stat(filepath.Join(dir, ReserveName)); err != nil || fi.Size() != DefaultReserveBytes || s.Full() {
		t.Errorf("reserve %v, %v; full %v", fi, err, s.Full())
	}

}

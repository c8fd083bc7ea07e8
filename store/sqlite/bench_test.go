package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// Run with: go test -run '^$' -bench . -benchtime 2s ./store/sqlite/
//
// Every write is a durable (fsynced) commit, so the write benchmarks
// measure mostly the disk's fsync latency; the read ones the driver.

func benchStore(b *testing.B) (*Store, store.User) {
	b.Helper()
	s := openTest(b, b.TempDir())
	b.Cleanup(func() { s.Close() })
	u, err := s.CreateUser(context.Background(), "bench", "h", store.DefaultMailboxes())
	if err != nil {
		b.Fatal(err)
	}
	return s, u
}

func BenchmarkCreateMailbox(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := s.CreateMailbox(ctx, u.ID, fmt.Sprintf("m%d", i), ""); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCreateMailboxParallel shows what concurrent writers get from
// the single writer connection (each still pays its own fsync until group
// commit exists).
func BenchmarkCreateMailboxParallel(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("p%d", n.Add(1))
			if _, err := s.CreateMailbox(ctx, u.ID, name, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkStatus(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, err := s.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Status(ctx, u.ID, inbox.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatusParallel(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, err := s.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Status(ctx, u.ID, inbox.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStatusLarge is Status on a mailbox of 200,000 messages, 1,000
// of them recent: the counters make it independent of the mailbox size.
func BenchmarkStatusLarge(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, err := s.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	const n, recent = 200_000, 1_000
	err = s.write(ctx, func(tx *sql.Tx) error {
		var body int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO bodies (data) VALUES (x'00') RETURNING id`).Scan(&body); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id) VALUES (?, ?, ?, ?, 0, 1000, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for uid := 1; uid <= n; uid++ {
			flags := `\Seen`
			if uid%10 == 0 {
				flags = ""
			}
			if _, err := stmt.ExecContext(ctx, inbox.ID, uid, uid, flags, body); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ?, highest_modseq = ?, first_recent_uid = ? WHERE id = ?`,
			n+1, n, n+1-recent, inbox.ID)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st, err := s.Status(ctx, u.ID, inbox.ID)
		if err != nil {
			b.Fatal(err)
		}
		if st.Messages != n || st.Unseen != n/10 || st.Recent != recent {
			b.Fatalf("Status = %+v", st)
		}
	}
}

func BenchmarkMailboxes(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	for i := range 50 {
		if _, err := s.CreateMailbox(ctx, u.ID, fmt.Sprintf("f%d/sub", i), ""); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if l, err := s.Mailboxes(ctx, u.ID); err != nil || len(l) != 106 {
			b.Fatal(len(l), err)
		}
	}
}

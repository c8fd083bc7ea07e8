package sqlite

import (
	"context"
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
// the single writer connection (with GOMAXPROCS goroutines only, so group
// commit has little to batch; see BenchmarkAppend10KBParallel).
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
	err = s.write(ctx, func(tx *dbtx) error {
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

// ---- messages ----

func body10KB() []byte {
	b := []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n")
	for len(b) < 10*1024 {
		b = append(b, "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 01234\r\n"...)
	}
	return b[:10*1024]
}

// BenchmarkAppend10KB is one durable APPEND of a 10 KB message at a time:
// every call waits for its own fsync.
func BenchmarkAppend10KB(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	msgs := []store.NewMessage{{Body: body10KB(), Flags: []string{`\Seen`}}}
	b.SetBytes(10 * 1024)
	for b.Loop() {
		if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppend10KBParallel is many connections appending at once to
// one mailbox (32 goroutines per GOMAXPROCS): group commit shares fsyncs
// between them. Each append is still durable when it returns.
func BenchmarkAppend10KBParallel(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	msgs := []store.NewMessage{{Body: body10KB(), Flags: []string{`\Seen`}}}
	b.SetBytes(10 * 1024)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, msgs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// fillMailbox inserts n small messages in one transaction (not through
// AppendMessages, for speed), a tenth of them unseen.
func fillMailbox(b *testing.B, s *Store, mailboxID int64, n int) {
	b.Helper()
	ctx := context.Background()
	err := s.write(ctx, func(tx *dbtx) error {
		var body int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO bodies (data) VALUES (x'00') RETURNING id`).Scan(&body); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id) VALUES (?, ?, ?, ?, 0, 1, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for uid := 1; uid <= n; uid++ {
			flags := `\Seen`
			switch {
			case uid%10 == 0:
				flags = ""
			case uid%7 == 0:
				flags = `\Answered \Seen $Forwarded`
			}
			if _, err := stmt.ExecContext(ctx, mailboxID, uid, 2, flags, body); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ?, highest_modseq = 2 WHERE id = ?`, n+1, mailboxID)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkMessageIndex100k(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	const n = 100_000
	fillMailbox(b, s, inbox.ID, n)
	for b.Loop() {
		idx, _, err := s.MessageIndex(ctx, u.ID, inbox.ID)
		if err != nil || len(idx) != n {
			b.Fatal(len(idx), err)
		}
	}
}

// BenchmarkUpdateFlags toggles \Flagged on 10 messages of a 100,000
// message mailbox (a durable write each time).
func BenchmarkUpdateFlags(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	fillMailbox(b, s, inbox.ID, 100_000)
	uids := []uint32{5, 500, 5000, 50000, 99999, 100, 101, 102, 103, 104}
	i := 0
	for b.Loop() {
		op := store.FlagsAdd
		if i%2 == 1 {
			op = store.FlagsRemove
		}
		changed, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids, op, []string{`\Flagged`}, 0)
		if err != nil || len(changed) != len(uids) {
			b.Fatal(len(changed), err)
		}
		i++
	}
}

// BenchmarkChangesSince100kAfter100Changes is a QRESYNC-style resync of a
// 100,000 message mailbox in which 100 messages changed and 100 were
// expunged since the client's MODSEQ.
func BenchmarkChangesSince100kAfter100Changes(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	const n = 100_000
	fillMailbox(b, s, inbox.ID, n)
	// 100,000 older tombstones too, so that both indexes matter.
	if err := s.write(ctx, func(tx *dbtx) error {
		_, err := tx.ExecContext(ctx, `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
			INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) SELECT ?, ? + i, 1, strftime('%s', 'now') FROM k`,
			n, inbox.ID, n)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ? WHERE id = ?`, 2*n+1, inbox.ID)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	since := uint64(2)
	for i := range 100 {
		if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, []uint32{uint32(1 + i*997)}, store.FlagsAdd, []string{`$Changed`}, 0); err != nil {
			b.Fatal(err)
		}
	}
	var gone []uint32
	for i := range 100 {
		gone = append(gone, uint32(2+i*991))
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, gone); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, since)
		if err != nil || len(ch.Changed) != 100 || len(ch.Vanished) != 100 {
			b.Fatal(len(ch.Changed), len(ch.Vanished), err)
		}
	}
}

package postgres

import (
	"context"
	"testing"

	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
)

// Run with: go test -run '^$' -bench . -benchtime 2s ./store/postgres/
//
// The test cluster runs with fsync, full_page_writes and
// synchronous_commit off (internal/pgtest): the write figures are those
// of PostgreSQL without durable commits, over a loopback TCP connection,
// and are not comparable with the SQLite store's fsynced ones.

func benchStore(b *testing.B) (*Store, store.User) {
	b.Helper()
	s, err := Open(context.Background(), pgtest.DB(b), Options{MaxConns: 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	u, err := s.CreateUser(context.Background(), "bench", "h", store.DefaultMailboxes())
	if err != nil {
		b.Fatal(err)
	}
	return s, u
}

func body10KB() []byte {
	b := []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n")
	for len(b) < 10*1024 {
		b = append(b, "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 01234\r\n"...)
	}
	return b[:10*1024]
}

// BenchmarkAppend10KB is one APPEND of a 10 KB message at a time.
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

// BenchmarkAppend10KBParallel is many connections appending to one
// mailbox: they take turns on the mailbox row's lock.
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

// BenchmarkFetchBody10KB reads one 10 KB body (MessageBody) at a time.
func BenchmarkFetchBody10KB(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: body10KB()}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(10 * 1024)
	for b.Loop() {
		if body, err := s.MessageBody(ctx, u.ID, inbox.ID, uids[0]); err != nil || len(body) != 10*1024 {
			b.Fatal(len(body), err)
		}
	}
}

// fillMailbox inserts n small messages with one statement, a tenth of
// them unseen.
func fillMailbox(b *testing.B, s *Store, mailboxID int64, n int) {
	b.Helper()
	ctx := context.Background()
	_, err := s.pool.Exec(ctx, `WITH body AS (INSERT INTO bodies (data) VALUES ('\x00') RETURNING id)
		INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id)
		SELECT $1, i, 2, CASE WHEN i % 10 = 0 THEN '' WHEN i % 7 = 0 THEN '\Answered \Seen $Forwarded' ELSE '\Seen' END,
			0, 1, body.id
		FROM generate_series(1, $2::int) AS i, body`, mailboxID, n)
	if err == nil {
		_, err = s.pool.Exec(ctx, `UPDATE mailboxes SET uidnext = $1, highest_modseq = 2 WHERE id = $2`, n+1, mailboxID)
	}
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

// BenchmarkChangesSince100kAfter100Changes is a QRESYNC-style resync of a
// 100,000 message mailbox in which 100 messages changed and 100 were
// expunged since the client's MODSEQ.
func BenchmarkChangesSince100kAfter100Changes(b *testing.B) {
	s, u := benchStore(b)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	const n = 100_000
	fillMailbox(b, s, inbox.ID, n)
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
	if _, err := s.pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, since)
		if err != nil || len(ch.Changed) != 100 || len(ch.Vanished) != 100 {
			b.Fatal(len(ch.Changed), len(ch.Vanished), err)
		}
	}
}

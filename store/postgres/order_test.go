package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
)

// Writers on two stores (two pools, as two processes would have) append
// to one mailbox while a reader on a third follows it with ChangesSince
// from the last HighestModSeq it saw. Because MODSEQs are taken under the
// mailbox row's lock and commit in order, the reader never misses a
// message: what it collected equals the final index.
func TestChangesSinceNeverSkips(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	a, b, r := open(t, dsn), open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	defer r.Close()
	u, err := a.CreateUser(ctx, "u", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := a.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	rounds := 60
	if testing.Short() {
		rounds = 20
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errc := make(chan error, 8)
	for w, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for i := range rounds {
				msg := store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d/%d\r\n\r\n", w, i))}
				uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{msg})
				if err != nil {
					errc <- err
					return
				}
				if i%5 == 0 {
					if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[uint32]uint64{} // UID -> highest MODSEQ reported
	var last uint64
	poll := func() {
		ch, err := r.ChangesSince(ctx, u.ID, inbox.ID, last)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ch.Changed {
			if m.ModSeq <= last || m.ModSeq > ch.HighestModSeq {
				t.Fatalf("change %+v outside (%d, %d]", m, last, ch.HighestModSeq)
			}
			seen[m.UID] = m.ModSeq
		}
		last = ch.HighestModSeq
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		poll()
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	poll()
	idx, mb, err := r.MessageIndex(ctx, u.ID, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 4*rounds || mb.HighestModSeq != last {
		t.Fatalf("%d messages, HIGHESTMODSEQ %d; want %d, %d", len(idx), mb.HighestModSeq, 4*rounds, last)
	}
	for _, m := range idx {
		if seen[m.UID] != m.ModSeq {
			t.Errorf("UID %d: MODSEQ %d, the reader saw %d (0: never)", m.UID, m.ModSeq, seen[m.UID])
		}
	}
}

// Processes starting together on an empty database: the advisory lock
// lets one create the schema and the others find it.
func TestConcurrentMigration(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, dsn, Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var version, rows int
	if err := stores[0].Pool().QueryRow(ctx, `SELECT max(version), count(*) FROM schema_version`).Scan(&version, &rows); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion() || rows != 1 {
		t.Errorf("schema_version: %d rows, version %d; want 1 row, %d", rows, version, SchemaVersion())
	}
	if problems, err := stores[1].Check(ctx); err != nil || problems != nil {
		t.Errorf("Check = %q, %v", problems, err)
	}
}

// A database whose schema is newer than the code is refused.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	s := open(t, dsn)
	if _, err := s.Pool().Exec(ctx, `UPDATE schema_version SET version = $1`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, dsn, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
}

// Check reports broken invariants (here a counter and an orphan body).
func TestCheckFindsProblems(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.DB(t))
	defer s.Close()
	u, err := s.CreateUser(ctx, "u", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE mailboxes SET message_count = 7 WHERE name = 'INBOX'`,
		`INSERT INTO bodies (data) VALUES ('\x00')`,
	} {
		if _, err := s.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := s.Check(ctx)
	if err != nil || len(problems) != 2 {
		t.Errorf("Check = %q, %v; want 2 problems", problems, err)
	}
	c, err := s.Counts(ctx)
	if err != nil || c.Users != 1 || c.Messages != 1 || c.Bodies != 2 || c.Mailboxes != 1 {
		t.Errorf("Counts = %+v, %v", c, err)
	}
}

// Expunging the last messages of a shared body from two mailboxes at
// once frees the body exactly once, never while a message refers to it.
func TestSharedBodyFreed(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.DB(t))
	defer s.Close()
	u, err := s.CreateUser(ctx, "u", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	trash, _ := s.MailboxByName(ctx, u.ID, "Trash")
	for range 20 {
		uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("shared")}})
		if err != nil {
			t.Fatal(err)
		}
		_, dst, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, trash.ID, uids)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := s.Expunge(ctx, u.ID, trash.ID, dst); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
	var bodies int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM bodies`).Scan(&bodies); err != nil || bodies != 0 {
		t.Errorf("%d bodies left, %v; want 0", bodies, err)
	}
}

// The tombstone window: a sweep purges expired tombstones of a mailbox
// nobody writes to, and change reports from before them say they are
// incomplete.
func TestPurgeTombstones(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, err := Open(ctx, pgtest.DB(t), Options{TombstoneMaxAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.CreateUser(ctx, "u", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.MailboxByName(ctx, u.ID, "INBOX")
	uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("a")}, {Body: []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids); err != nil {
		t.Fatal(err)
	}
	if ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, 1); err != nil || !ch.Complete || len(ch.Vanished) != 2 {
		t.Fatalf("before the sweep: %+v, %v", ch, err)
	}
	if err := s.PurgeTombstones(ctx, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, 1)
	if err != nil || ch.Complete || len(ch.Vanished) != 0 {
		t.Errorf("after the sweep: %+v, %v; want incomplete, nothing vanished", ch, err)
	}
	if problems, err := s.Check(ctx); err != nil || problems != nil {
		t.Errorf("Check = %q, %v", problems, err)
	}
}

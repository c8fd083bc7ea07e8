package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// writerT runs single statements on the writer connection for tests, each
// in a write transaction of its own (the store holds the connection).
type writerT struct{ s *Store }

func (s *Store) wdbT() writerT { return writerT{s} }

func (w writerT) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := w.s.write(ctx, func(tx *dbtx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// rowT is QueryRowContext's result: Scan runs the query.
type rowT struct {
	w     writerT
	ctx   context.Context
	query string
	args  []any
}

func (w writerT) QueryRowContext(ctx context.Context, query string, args ...any) rowT {
	return rowT{w, ctx, query, args}
}

func (r rowT) Scan(dest ...any) error {
	return r.w.s.write(r.ctx, func(tx *dbtx) error {
		return tx.QueryRowContext(r.ctx, r.query, r.args...).Scan(dest...)
	})
}

// syncLevelT reads the writer connection's synchronous level (1 NORMAL,
// 2 FULL) inside a write transaction, which keeps the level the batch was
// begun with: the probe is lazy too when lazy is set.
func syncLevelT(t *testing.T, s *Store, lazy bool) int {
	t.Helper()
	var level int
	err := s.enqueue(context.Background(), func(tx *dbtx) error {
		return tx.QueryRowContext(context.Background(), `PRAGMA synchronous`).Scan(&level)
	}, lazy)
	if err != nil {
		t.Fatal(err)
	}
	return level
}

// TestClaimRecentLazy checks that a \Recent claim is committed without
// fsync (synchronous=NORMAL) and that the next durable write goes back to
// synchronous=FULL, and that the claim is visible at once.
func TestClaimRecentLazy(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	u, err := s.CreateUser(ctx, "a", "h", []store.NewMailbox{{Name: "INBOX"}})
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("a\r\n")}}); err != nil {
		t.Fatal(err)
	}
	if s.w.lazy {
		t.Fatal("writer at synchronous=NORMAL after a durable append")
	}
	from, to, err := s.ClaimRecent(ctx, u.ID, inbox.ID)
	if err != nil || to-from != 1 {
		t.Fatalf("ClaimRecent = [%d, %d), %v; want one message", from, to, err)
	}
	if !s.w.lazy {
		t.Error("ClaimRecent was committed at synchronous=FULL")
	}
	if got := syncLevelT(t, s, true); got != 1 {
		t.Errorf("synchronous in a lazy batch = %d, want 1 (NORMAL)", got)
	}
	if st, err := s.Status(ctx, u.ID, inbox.ID); err != nil || st.Recent != 0 {
		t.Errorf("Status after the claim: Recent %d, %v; want 0", st.Recent, err)
	}
	if got := syncLevelT(t, s, false); got != 2 {
		t.Errorf("synchronous in a durable batch after a lazy one = %d, want 2 (FULL)", got)
	}
	if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("b\r\n")}}); err != nil {
		t.Fatal(err)
	}
	if s.w.lazy {
		t.Error("append committed at synchronous=NORMAL")
	}
	if !allLazy([]*writeReq{{lazy: true}}) || allLazy([]*writeReq{{lazy: true}, {lazy: false}}) {
		t.Error("allLazy: a batch with one durable request must be durable")
	}
}

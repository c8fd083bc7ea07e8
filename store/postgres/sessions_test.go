package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/pgtest"
)

// TestLockSessionsAcrossStores: the sessions lock holds between two
// stores (two pools, as two processes have) on one database: an advisory
// lock, not only the lock in the process.
func TestLockSessionsAcrossStores(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()

	unlock, err := a.LockSessions(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.LockSessions(short, 7)
	cancel()
	if err == nil {
		t.Fatal("the other store took a held user's lock")
	}
	u8, err := b.LockSessions(ctx, 8) // another user
	if err != nil {
		t.Fatal(err)
	}
	u8()
	unlock()
	u7, err := b.LockSessions(ctx, 7)
	if err != nil {
		t.Fatalf("lock after the other store's unlock: %v", err)
	}
	u7()

	// Exclusion under contention from both stores.
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, most := 0, 0
	for g := range 6 {
		st := a
		if g%2 == 1 {
			st = b
		}
		wg.Go(func() {
			for range 10 {
				unlock, err := st.LockSessions(ctx, 9)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				if _, err := st.CountSessions(ctx); err != nil {
					t.Error(err)
				}
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders of one user's lock at once", most)
	}
	// Every lock connection went back to its pool unlocked: none is
	// left holding an advisory lock.
	var n int
	if err := a.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d advisory locks still held", n)
	}
}

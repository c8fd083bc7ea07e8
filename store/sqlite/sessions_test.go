package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// TestSessionCounter checks the trigger-kept session counter against the
// table after inserts, upserts, deletes, expiry and a cascading DeleteUser.
func TestSessionCounter(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	check := func(want int) {
		t.Helper()
		n, err := s.CountSessions(ctx)
		if err != nil || n != want {
			t.Errorf("CountSessions = %d, %v; want %d", n, err, want)
		}
		problems, err := checkSessions(ctx, s.rdb)
		if err != nil || len(problems) != 0 {
			t.Errorf("checkSessions: %q, %v", problems, err)
		}
	}
	u, err := s.CreateUser(ctx, "a", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for i := range 12 {
		rec := store.SessionRecord{ID: fmt.Sprint(i), UserID: u.ID, Created: t0, LastActive: t0.Add(time.Duration(i) * time.Second)}
		if err := s.SaveSession(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSession(ctx, rec); err != nil { // upsert: no double count
			t.Fatal(err)
		}
	}
	check(12)
	if err := s.DeleteSession(ctx, u.ID, "0"); err != nil {
		t.Fatal(err)
	}
	check(11)
	if n, err := s.ExpireSessions(ctx, t0.Add(5*time.Second)); err != nil || n != 4 {
		t.Fatalf("ExpireSessions = %d, %v", n, err)
	}
	check(7)
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	check(0)
}

// TestExpireSessionsBatches deletes more than one batch.
func TestExpireSessionsBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	u, err := s.CreateUser(ctx, "a", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	n := expireBatch*2 + 7
	err = s.write(ctx, func(tx *dbtx) error {
		for i := range n {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (user_id, id, created, last_active, state) VALUES (?, ?, ?, ?, x'')`,
				u.ID, fmt.Sprint(i), t0.UnixNano(), t0.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ExpireSessions(ctx, t0.Add(time.Second))
	if err != nil || got != n {
		t.Fatalf("ExpireSessions = %d, %v; want %d", got, err, n)
	}
	if c, _ := s.CountSessions(ctx); c != 0 {
		t.Errorf("CountSessions = %d after expiry", c)
	}
}

// TestMigrateV2 upgrades a version 2 database to version 3: the sessions
// table appears empty and works.
func TestMigrateV2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	u, err := s.CreateUser(ctx, "a", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE nodes`, `DROP INDEX sessions_owner`, `ALTER TABLE sessions DROP COLUMN generation`, `ALTER TABLE sessions DROP COLUMN owner`, // version 8
		`DROP TABLE headers`,                                                                              // version 7
		`DROP TRIGGER bodies_file_delete`, `DROP TABLE dead_files`, `ALTER TABLE bodies DROP COLUMN file`, // version 6
		`DROP TABLE structures`, // version 5
		`DROP TABLE sessions`, `DELETE FROM counters WHERE name = 'sessions'`,
		`UPDATE schema_version SET version = 2`,
	} {
		if _, err := s.wdbT().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	if n, err := s.CountSessions(ctx); err != nil || n != 0 {
		t.Fatalf("CountSessions after migration = %d, %v", n, err)
	}
	rec := store.SessionRecord{ID: "x", UserID: u.ID, Created: time.Unix(1, 0), LastActive: time.Unix(2, 0), State: []byte("s")}
	if err := s.SaveSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountSessions(ctx); n != 1 {
		t.Errorf("CountSessions = %d, want 1", n)
	}
	if problems, err := s.Check(ctx); err != nil || len(problems) != 0 {
		t.Errorf("Check after migration: %q, %v", problems, err)
	}
}

// TestMigrateV7 upgrades a version 7 database to version 8: its sessions
// keep their data, with no owner at generation 0, and can be claimed;
// the nodes table appears.
func TestMigrateV7(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	u, err := s.CreateUser(ctx, "a", "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := store.SessionRecord{ID: "x", UserID: u.ID, ClientIP: "192.0.2.1", Created: time.Unix(1, 0), LastActive: time.Unix(2, 0), State: []byte("s")}
	if err := s.SaveSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE nodes`, `DROP INDEX sessions_owner`, `ALTER TABLE sessions DROP COLUMN generation`, `ALTER TABLE sessions DROP COLUMN owner`,
		`UPDATE schema_version SET version = 7`,
	} {
		if _, err := s.wdbT().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	got, err := s.LoadSession(ctx, u.ID, "x")
	if err != nil || got.Owner != "" || got.Generation != 0 || string(got.State) != "s" || got.ClientIP != "192.0.2.1" {
		t.Fatalf("session after migration: %+v, %v", got, err)
	}
	if err := s.Heartbeat(ctx, "n1", time.Unix(5, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimSession(ctx, u.ID, "x", "n1", time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, err = s.LoadSession(ctx, u.ID, "x")
	if err != nil || got.Owner != "n1" || got.Generation != 1 || !got.OwnerBeat.Equal(time.Unix(5, 0)) {
		t.Errorf("claimed after migration: %+v, %v", got, err)
	}
	if problems, err := s.Check(ctx); err != nil || len(problems) != 0 {
		t.Errorf("Check after migration: %q, %v", problems, err)
	}
}

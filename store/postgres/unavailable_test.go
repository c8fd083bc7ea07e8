package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
)

// killBackends ends every other connection to the store's database, as a
// restart or a failover of the server does to a node's pooled
// connections.
func killBackends(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no connection of the store to end")
	}
}

// Connections lost under the store (a restart or a failover of
// PostgreSQL): reads and writes that had not reached the server are tried
// again on new connections and succeed, and nothing is done twice.
func TestConnectionsLost(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	s := open(t, dsn)
	defer s.Close()
	u, err := s.CreateUser(ctx, "alice", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		killBackends(t, dsn)
		if _, err := s.MailboxByName(ctx, u.ID, "INBOX"); err != nil {
			t.Fatalf("round %d: read after the connections were lost: %v", round, err)
		}
		killBackends(t, dsn)
		if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}}); err != nil {
			t.Fatalf("round %d: write after the connections were lost: %v", round, err)
		}
		killBackends(t, dsn)
		if _, err := s.Subscriptions(ctx, u.ID); err != nil {
			t.Fatalf("round %d: a statement outside a transaction after the connections were lost: %v", round, err)
		}
	}
	st, err := s.Status(ctx, u.ID, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 3 {
		t.Errorf("%d messages after 3 appends", st.Messages)
	}
}

// With the database server gone, a request fails with
// store.ErrUnavailable, which the server answers NO [UNAVAILABLE], rather
// than an error the server would call its own bug.
func TestDatabaseGone(t *testing.T) {
	ctx := context.Background()
	pgtest.Shared(t) // skips without PostgreSQL
	bin, _ := pgtest.FindBin()
	cluster, err := pgtest.Start(bin)
	if err != nil {
		t.Fatal(err)
	}
	dsn, _, err := cluster.CreateDB(ctx)
	if err != nil {
		cluster.Stop()
		t.Fatal(err)
	}
	s := open(t, dsn)
	defer s.Close()
	u, err := s.CreateUser(ctx, "bob", "h", store.DefaultMailboxes())
	if err != nil {
		cluster.Stop()
		t.Fatal(err)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByName(ctx, "bob"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("UserByName with the database down: %v, want ErrUnavailable", err)
	}
	if _, err := s.Mailboxes(ctx, u.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Mailboxes with the database down: %v, want ErrUnavailable", err)
	}
	if _, err := s.CreateMailbox(ctx, u.ID, "Later", ""); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CreateMailbox with the database down: %v, want ErrUnavailable", err)
	}
}

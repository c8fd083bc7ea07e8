package pgbus_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/quickimap/quickimap/bus/pgbus"
	"github.com/quickimap/quickimap/internal/bustest"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store/postgres"
)

// startPGNode starts a server named name on its own PostgreSQL store
// (pool) of dsn, with its own bus, as a separate process would, and waits
// until its bus listens.
func startPGNode(t testing.TB, dsn, name string) *bustest.Node {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the node's own cleanup
	b, err := pgbus.New(context.Background(), dsn, name, pgbus.Options{MinBackoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	n := bustest.StartNode(t, name, st, b, nil)
	waitListening(t, dsn, name)
	return n
}

// waitListening waits until node's bus has run LISTEN (pg_stat_activity
// shows its listening connection idle after it).
func waitListening(t testing.TB, dsn, node string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND query LIKE 'LISTEN %'`,
			pgbus.ApplicationName("listen", node)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s is not listening", node)
		}
		time.Sleep(5 * time.Millisecond) // polling the state above
	}
}

// newPGPair returns two nodes on one fresh PostgreSQL database that
// holds the test account.
func newPGPair(t testing.TB) (a, b *bustest.Node, dsn string) {
	t.Helper()
	dsn = pgtest.DB(t)
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bustest.CreateUser(t, st)
	st.Close()
	return startPGNode(t, dsn, "a"), startPGNode(t, dsn, "b"), dsn
}

// Two servers on one PostgreSQL database, each with its own store pool
// and bus: IDLE on one hears the other's writes.
func TestCrossNodePostgres(t *testing.T) {
	a, b, _ := newPGPair(t)
	bustest.RunCrossNode(t, a, b)
}

// The listening connection of node a is terminated while a client idles
// on it: a write on b made after the reconnection reaches it, and so does
// one made while a was not listening (the Resync).
func TestCrossNodeListenerLost(t *testing.T) {
	a, b, dsn := newPGPair(t)
	ca, cb := a.Env.DialLogin(t), b.Env.DialLogin(t)
	ca.ExpectTagged("a1", "SELECT INBOX", "a1 OK")
	bustest.Idle(t, ca, "a2")
	bustest.Append(t, cb, "b1", "INBOX", bustest.Msg)
	bustest.WaitFor(t, ca, "* 1 EXISTS")

	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) k`,
		pgbus.ApplicationName("listen", "a")).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating a's listener: %d, %v", killed, err)
	}
	// Written while a's listener may be away: the Resync after its
	// reconnection (or the hint, if it is back already) brings it.
	bustest.Append(t, cb, "b2", "INBOX", bustest.Msg)
	bustest.WaitFor(t, ca, "* 2 EXISTS")
	waitListening(t, dsn, "a")
	bustest.Append(t, cb, "b3", "INBOX", bustest.Msg)
	bustest.WaitFor(t, ca, "* 3 EXISTS")
}

package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/postgres"
)

// BenchmarkSIDResumeOtherNode10k measures a SID resume on one node of a
// session that a connection of the other node holds: the claim across
// nodes, the SessionTaken hint (delivered in-process, nodeBus) and the
// resume of a 10,000-message INBOX 10 changes (5 flag changes, 5
// expunges) behind the client. Each op alternates the node, so every
// resume takes the session over from the other one:
//
//	go test ./server -run '^$' -bench 'SIDResumeOtherNode' -benchtime 200x
//
// sqlite: two servers on one SQLite store; postgres: two servers, each
// with its own pool, on one PostgreSQL database (skipped without
// PostgreSQL). Timed from the write of SID to its tagged OK; dialing and
// authentication are outside the timer, and so is closing the displaced
// connection.
func BenchmarkSIDResumeOtherNode10k(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		env := imaptest.Start(b, nil)
		na := startNode(b, env.Store, "a", env.User, env.Password, session.Options{})
		nb := startNode(b, env.Store, "b", env.User, env.Password, session.Options{})
		connect(na, nb)
		benchOtherNode(b, env.Store, na, nb)
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := pgtest.DB(b)
		open := func() store.Store {
			st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}
		stA, stB := open(), open()
		h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := stA.CreateUser(context.Background(), "alice", string(h), store.DefaultMailboxes()); err != nil {
			b.Fatal(err)
		}
		na := startNode(b, stA, "a", "alice", "secret", session.Options{})
		nb := startNode(b, stB, "b", "alice", "secret", session.Options{})
		connect(na, nb)
		benchOtherNode(b, stA, na, nb)
	})
}

func benchOtherNode(b *testing.B, st store.Store, na, nb *node) {
	const n, k = 10_000, 5
	userID, mailboxID := benchInbox(b, na.Env)
	validity, modseq := qbFill(b, st, userID, mailboxID, n, k)
	nodes := []*node{na, nb}
	// A connection on each node keeps INBOX selected, as another device
	// of the user would: its index stays loaded (qbSetupChanges).
	for _, nd := range nodes {
		h, err := dialBench(nd.Addr, nd.User, nd.Password)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.nc.Close() })
		if _, err := h.cmd("SELECT INBOX"); err != nil {
			b.Fatal(err)
		}
	}
	holder, err := dialBench(na.Addr, na.User, na.Password)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := holder.cmd("SID")
	if err != nil || !strings.HasPrefix(lines[0], "* NEWSID ") {
		b.Fatalf("SID: %q %v", lines, err)
	}
	id := strings.TrimPrefix(lines[0], "* NEWSID ")
	if _, err := holder.cmd("SELECT INBOX"); err != nil {
		b.Fatal(err)
	}

	sid := fmt.Sprintf("SID %s %d %d", id, validity, modseq)
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		nd := nodes[(i+1)%2]
		c, err := dialBench(nd.Addr, nd.User, nd.Password)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		lines, err := c.cmd(sid)
		d := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		worst = max(worst, d)
		fetches, expunged := 0, 0
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, "* EXPUNGED "); ok {
				expunged += len(rcParseSet(b, v))
			} else if strings.Contains(l, " FETCH (") {
				fetches++
			}
		}
		if lines[0] != "* SELECTED INBOX" || fetches != k || expunged != k {
			b.Fatalf("resume: %q..., %d FETCH, %d expunged, want %d and %d", lines[0], fetches, expunged, k, k)
		}
		holder.nc.Close() // the displaced connection (told DELETEDSID)
		holder = c
		b.StartTimer()
	}
	b.StopTimer()
	holder.nc.Close()
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}

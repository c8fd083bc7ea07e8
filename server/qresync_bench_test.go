package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
)

// Resynchronization benchmarks over TCP on a 100,000-message INBOX after
// 100 changes (50 flag changes, 50 expunges) since the client's saved
// state, with another connection holding INBOX selected (warm index):
//
//	go test ./server -run '^$' -bench 'QResyncSelect100k|ChangedSinceFetch100k' -benchtime 200x
//
// Each iteration is one command's round trip.

// qbSetup fills INBOX with n messages through the store, records the
// client's state (UIDVALIDITY, HIGHESTMODSEQ), then makes 50 flag changes
// and 50 expunges, one MODSEQ each, and has a connection hold INBOX
// selected for the rest of the benchmark. It returns the server and the
// recorded state.
func qbSetup(b *testing.B, n int) (env *imaptest.Env, validity uint32, modseq uint64) {
	b.Helper()
	return qbSetupChanges(b, n, 50)
}

// qbSetupChanges is qbSetup with k flag changes and k expunges.
func qbSetupChanges(b *testing.B, n, k int) (env *imaptest.Env, validity uint32, modseq uint64) {
	b.Helper()
	env = imaptest.Start(b, nil)
	userID, mailboxID := benchInbox(b, env)
	validity, modseq = qbFill(b, env.Store, userID, mailboxID, n, k)

	holder, err := dialBench(env.Addr, env.User, env.Password)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { holder.nc.Close() })
	if _, err := holder.cmd("SELECT INBOX"); err != nil {
		b.Fatal(err)
	}
	return env, validity, modseq
}

// qbFill appends n messages to the mailbox, notes its UIDVALIDITY and
// HIGHESTMODSEQ (the client's saved state), then makes k flag changes
// and k expunges spread over it.
func qbFill(b *testing.B, st store.Store, userID, mailboxID int64, n, k int) (validity uint32, modseq uint64) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	filler := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	date := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var uids []uint32
	for done := 0; done < n; {
		batch := make([]store.NewMessage, 0, min(2000, n-done))
		for len(batch) < cap(batch) {
			i := done + len(batch)
			body := []byte(fmt.Sprintf("From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\n"+
				"Subject: Message %d\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%d@qresync.example>\r\n"+
				"Content-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n", i%101, i%101, i, i, filler))
			p, err := message.Parse(body)
			if err != nil {
				b.Fatal(err)
			}
			flags := []string{`\Seen`}
			if i%10 == 0 {
				flags = append(flags, `\Flagged`)
			}
			batch = append(batch, store.NewMessage{
				Flags:        flags,
				InternalDate: date.Add(time.Duration(i) * time.Second),
				Body:         body,
				Structure:    p.Marshal(),
			})
		}
		got, _, err := st.AppendMessages(ctx, userID, mailboxID, batch)
		if err != nil {
			b.Fatalf("AppendMessages: %v", err)
		}
		uids = append(uids, got...)
		done += len(batch)
	}
	b.Logf("filled INBOX with %d messages in %v", n, time.Since(start).Round(time.Millisecond))

	// The client's saved state.
	mb, err := st.MailboxByID(ctx, userID, mailboxID)
	if err != nil {
		b.Fatal(err)
	}
	validity, modseq = mb.UIDValidity, mb.HighestModSeq

	// 2k changes since then, spread over the mailbox.
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(len(uids))
	for i := range k {
		if _, _, err := st.UpdateFlags(ctx, userID, mailboxID, []uint32{uids[perm[i]]}, store.FlagsAdd, []string{"$Label1"}, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Expunge(ctx, userID, mailboxID, []uint32{uids[perm[k+i]]}); err != nil {
			b.Fatal(err)
		}
	}
	return validity, modseq
}

// qbCount counts the FETCH responses and the UIDs of VANISHED (EARLIER)
// responses in an answer.
func qbCount(lines []string) (fetches, vanished int) {
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "* VANISHED (EARLIER) "):
			for _, part := range strings.Split(strings.TrimPrefix(l, "* VANISHED (EARLIER) "), ",") {
				lo, hi, isRange := strings.Cut(part, ":")
				if !isRange {
					vanished++
					continue
				}
				a, _ := strconv.Atoi(lo)
				z, _ := strconv.Atoi(hi)
				vanished += max(a, z) - min(a, z) + 1
			}
		case strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH ("):
			fetches++
		}
	}
	return fetches, vanished
}

// BenchmarkQResyncSelect100k measures SELECT INBOX (QRESYNC (v m)) of a
// 100,000-message INBOX with 50 flag changes and 50 expunges since m; the
// answer carries 50 FETCH and VANISHED (EARLIER) for 50 UIDs. The
// known-uids variant also sends the client's UID set (1:100000).
func BenchmarkQResyncSelect100k(b *testing.B) {
	const n = 100_000
	env, validity, modseq := qbSetup(b, n)
	c, err := dialBench(env.Addr, env.User, env.Password)
	if err != nil {
		b.Fatal(err)
	}
	defer c.nc.Close()
	if _, err := c.cmd("ENABLE QRESYNC"); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct{ name, cmd string }{
		{"qresync", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", validity, modseq)},
		{"qresync-known-uids", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:%d))", validity, modseq, n)},
	} {
		b.Run(v.name, func(b *testing.B) {
			// The first SELECT claims \Recent (a write); later ones are
			// the steady state.
			lines, err := c.cmd(v.cmd)
			if err != nil {
				b.Fatal(err)
			}
			if f, van := qbCount(lines); f != 50 || van != 50 {
				b.Fatalf("%s: %d FETCH and %d vanished UIDs, want 50 and 50", v.cmd, f, van)
			}
			var bytes int
			for _, l := range lines {
				bytes += len(l) + 2
			}
			for b.Loop() {
				if _, err := c.cmd(v.cmd); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bytes), "resp-bytes")
		})
	}
}

// BenchmarkChangedSinceFetch100k measures UID FETCH 1:* (FLAGS)
// (CHANGEDSINCE m) on the same mailbox (50 FETCH responses), and with the
// VANISHED modifier (also VANISHED (EARLIER) for 50 UIDs).
func BenchmarkChangedSinceFetch100k(b *testing.B) {
	const n = 100_000
	env, _, modseq := qbSetup(b, n)
	c, err := dialBench(env.Addr, env.User, env.Password)
	if err != nil {
		b.Fatal(err)
	}
	defer c.nc.Close()
	if _, err := c.cmd("ENABLE QRESYNC"); err != nil {
		b.Fatal(err)
	}
	if _, err := c.cmd("SELECT INBOX (CONDSTORE)"); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name, cmd string
		vanished  int
	}{
		{"changedsince", fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", modseq), 0},
		{"changedsince-vanished", fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", modseq), 50},
	} {
		b.Run(v.name, func(b *testing.B) {
			lines, err := c.cmd(v.cmd)
			if err != nil {
				b.Fatal(err)
			}
			if f, van := qbCount(lines); f != 50 || van != v.vanished {
				b.Fatalf("%s: %d FETCH and %d vanished UIDs, want 50 and %d", v.cmd, f, van, v.vanished)
			}
			for b.Loop() {
				if _, err := c.cmd(v.cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

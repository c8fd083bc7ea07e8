package sqlite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// fakeClock is an injectable Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func openOpts(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func setup(t testing.TB, s *Store) (store.User, store.Mailbox) {
	t.Helper()
	u, err := s.CreateUser(context.Background(), "u", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.MailboxByName(context.Background(), u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return u, inbox
}

func appendN(t testing.TB, s *Store, u store.User, mailboxID int64, n int) []uint32 {
	t.Helper()
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{Body: []byte(fmt.Sprintf("message %d\r\n", i))}
	}
	uids, _, err := s.AppendMessages(context.Background(), u.ID, mailboxID, msgs)
	if err != nil {
		t.Fatal(err)
	}
	return uids
}

func healthy(t *testing.T, s *Store) {
	t.Helper()
	if problems, err := s.Check(context.Background()); err != nil || problems != nil {
		t.Errorf("Check = %q, %v", problems, err)
	}
}

func TestTombstoneWindowAge(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	s := openOpts(t, Options{Now: clock.Now})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 6)
	m0, _ := s.MailboxByID(ctx, u.ID, inbox.ID)

	// Day 0: expunge 1 and 2; day 20: expunge 3.
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[:2]); err != nil {
		t.Fatal(err)
	}
	m1, _ := s.MailboxByID(ctx, u.ID, inbox.ID)
	clock.Advance(20 * 24 * time.Hour)
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[2:3]); err != nil {
		t.Fatal(err)
	}
	m2, _ := s.MailboxByID(ctx, u.ID, inbox.ID)

	// Day 31: the first tombstones are expired but nobody wrote yet: they
	// are still there and the answer is still complete.
	clock.Advance(11 * 24 * time.Hour)
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, m0.HighestModSeq)
	if err != nil || !ch.Complete || !slices.Equal(ch.Vanished, uids[:3]) {
		t.Errorf("before any write: %+v, %v", ch, err)
	}
	// A write to the mailbox (a flag change) purges them.
	if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids[3:4], store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	ch, err = s.ChangesSince(ctx, u.ID, inbox.ID, m0.HighestModSeq)
	if err != nil || ch.Complete || !slices.Equal(ch.Vanished, uids[2:3]) {
		t.Errorf("since before the purged expunge: %+v, %v; want incomplete, vanished %v", ch, err, uids[2:3])
	}
	// Since the purged tombstones' MODSEQ (the floor) the answer is complete.
	ch, err = s.ChangesSince(ctx, u.ID, inbox.ID, m1.HighestModSeq)
	if err != nil || !ch.Complete || !slices.Equal(ch.Vanished, uids[2:3]) || len(ch.Changed) != 1 {
		t.Errorf("since the floor: %+v, %v", ch, err)
	}
	var floor, count int64
	if err := s.rdb.QueryRow(`SELECT vanished_floor, tombstone_count FROM mailboxes WHERE id = ?`, inbox.ID).Scan(&floor, &count); err != nil {
		t.Fatal(err)
	}
	if uint64(floor) != m1.HighestModSeq || count != 1 {
		t.Errorf("vanished_floor %d, tombstone_count %d; want %d, 1", floor, count, m1.HighestModSeq)
	}

	// Another mailbox nobody writes to is purged by the sweep.
	trash, _ := s.MailboxByName(ctx, u.ID, "Trash")
	tu := appendN(t, s, u, trash.ID, 3)
	if _, err := s.Expunge(ctx, u.ID, trash.ID, tu); err != nil {
		t.Fatal(err)
	}
	tm, _ := s.MailboxByID(ctx, u.ID, trash.ID)
	clock.Advance(29 * 24 * time.Hour) // inbox's uids[2] tombstone is now 40 days old, trash's 29
	if err := s.PurgeTombstones(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if ch, _ := s.ChangesSince(ctx, u.ID, trash.ID, 0); !ch.Complete || len(ch.Vanished) != 3 {
		t.Errorf("trash after a sweep at 29 days: %+v", ch)
	}
	if ch, _ := s.ChangesSince(ctx, u.ID, inbox.ID, m1.HighestModSeq); ch.Complete || len(ch.Vanished) != 0 {
		t.Errorf("inbox after a sweep at 40 days: %+v", ch)
	}
	if ch, _ := s.ChangesSince(ctx, u.ID, inbox.ID, m2.HighestModSeq); !ch.Complete {
		t.Errorf("inbox since the last purged expunge: %+v", ch)
	}
	clock.Advance(2 * 24 * time.Hour)
	if err := s.PurgeTombstones(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if ch, _ := s.ChangesSince(ctx, u.ID, trash.ID, 0); ch.Complete || len(ch.Vanished) != 0 {
		t.Errorf("trash after a sweep at 31 days: %+v", ch)
	}
	if ch, _ := s.ChangesSince(ctx, u.ID, trash.ID, tm.HighestModSeq); !ch.Complete {
		t.Errorf("trash since its last expunge: %+v", ch)
	}
	healthy(t, s)
}

func TestTombstoneWindowCount(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{TombstoneMaxCount: 5})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 12)
	var modseqs []uint64
	for i := range 4 {
		// Expunges of 2 messages each: 8 tombstones, 5 kept.
		if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[2*i:2*i+2]); err != nil {
			t.Fatal(err)
		}
		m, _ := s.MailboxByID(ctx, u.ID, inbox.ID)
		modseqs = append(modseqs, m.HighestModSeq)
	}
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, 0)
	if err != nil || ch.Complete || !slices.Equal(ch.Vanished, uids[3:8]) {
		t.Errorf("ChangesSince(0) = %+v, %v; want incomplete, vanished %v", ch, err, uids[3:8])
	}
	// uids[2] (MODSEQ modseqs[1]) was purged, uids[3] with the same MODSEQ
	// kept: the floor is modseqs[1] and since then the answer is complete.
	ch, err = s.ChangesSince(ctx, u.ID, inbox.ID, modseqs[0])
	if err != nil || ch.Complete {
		t.Errorf("since %d: %+v, %v; want incomplete", modseqs[0], ch, err)
	}
	ch, err = s.ChangesSince(ctx, u.ID, inbox.ID, modseqs[1])
	if err != nil || !ch.Complete || !slices.Equal(ch.Vanished, uids[4:8]) {
		t.Errorf("since %d: %+v, %v; want complete, vanished %v", modseqs[1], ch, err, uids[4:8])
	}
	healthy(t, s)
}

// TestTombstonePurgeBounded: one write purges at most purgeLimit
// tombstones; the backlog shrinks over the following writes.
func TestTombstonePurgeBounded(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{TombstoneMaxCount: 10})
	u, inbox := setup(t, s)
	// Make 2,500 tombstones in one go, bypassing the window.
	err := s.write(ctx, func(tx *dbtx) error {
		_, err := tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
			INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) SELECT ?, i, 1 + i, ? FROM n`, inbox.ID, time.Now().Unix())
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = 2501, highest_modseq = 2501 WHERE id = ?`, inbox.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	counts := []int64{}
	for range 4 {
		appendN(t, s, u, inbox.ID, 1)
		var n int64
		if err := s.rdb.QueryRow(`SELECT tombstone_count FROM mailboxes WHERE id = ?`, inbox.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
	}
	if !slices.Equal(counts, []int64{1500, 500, 10, 10}) {
		t.Errorf("tombstones after each write: %v, want [1500 500 10 10]", counts)
	}
	healthy(t, s)
}

// TestGroupCommitIsolation runs many concurrent writes, some of which
// fail inside their transaction, and checks that exactly the successful
// ones took effect.
func TestGroupCommitIsolation(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, _ := setup(t, s)
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	const n = 200
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i] = s.write(ctx, func(tx *dbtx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (user_id, name) VALUES (?, ?)`,
					u.ID, fmt.Sprintf("s%03d", i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return errBoom // after writing: the savepoint must undo it
				}
				return nil
			})
		})
	}
	wg.Wait()
	subs, err := s.Subscriptions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, n := range subs {
		have[n] = true
	}
	for i, err := range results {
		name := fmt.Sprintf("s%03d", i)
		if i%3 == 0 {
			if !errors.Is(err, errBoom) || have[name] {
				t.Errorf("%s: failed write returned %v, present %v", name, err, have[name])
			}
		} else if err != nil || !have[name] {
			t.Errorf("%s: write returned %v, present %v", name, err, have[name])
		}
	}
	healthy(t, s)
}

// TestGroupCommitCancel: callers whose context ends while they wait or
// while their statement runs get an error, and the others are unaffected
// (even when SQLite aborts the shared transaction).
func TestGroupCommitCancel(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, inbox := setup(t, s)
	var wg sync.WaitGroup
	var ok, cancelled atomic.Int64
	var okUIDs sync.Map
	for i := range 100 {
		wg.Go(func() {
			c, cancel := context.WithCancel(ctx)
			defer cancel()
			if i%4 == 0 {
				go func() {
					time.Sleep(time.Duration(i%7) * 100 * time.Microsecond)
					cancel()
				}()
			}
			uids, _, err := s.AppendMessages(c, u.ID, inbox.ID, []store.NewMessage{{Body: []byte(strings.Repeat("z", 50_000))}})
			switch {
			case err == nil:
				ok.Add(1)
				okUIDs.Store(uids[0], true)
			case i%4 == 0:
				cancelled.Add(1)
			default:
				t.Errorf("append %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	idx, _, err := s.MessageIndex(ctx, u.ID, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(idx)) != ok.Load() {
		t.Errorf("%d messages, %d successful appends (%d cancelled)", len(idx), ok.Load(), cancelled.Load())
	}
	for _, m := range idx {
		if _, found := okUIDs.Load(m.UID); !found {
			t.Errorf("UID %d exists but its append did not succeed", m.UID)
		}
	}
	t.Logf("%d appended, %d cancelled", ok.Load(), cancelled.Load())
	healthy(t, s)
	groupCommitRetry(t, s)
	healthy(t, s)
}

// groupCommitRetry checks the retry path of runBatch, which the random
// cancellations above reach only by chance: in a batch of three
// mutations, the second one's context is cancelled while its INSERT runs
// (the driver interrupts the statement and SQLite rolls the whole shared
// transaction back). It must fail alone; the first must run again and the
// third run once, both committed. A cancellation that lands before the
// statement starts fails it without breaking the transaction: that
// attempt is run again, a bounded number of times.
func groupCommitRetry(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.write(ctx, func(tx *dbtx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE gc_probe (v INTEGER)`); err != nil {
			return err
		}
		// Prepared now, the statement starts at once when it counts.
		_, err := tx.ExecContext(ctx, longInsert, 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		calls, errs := groupCommitBreak(t, s)
		if calls[0] == 1 && errors.Is(errs[1], context.Canceled) && attempt < 20 {
			continue // cancelled before its statement ran
		}
		if errs[0] != nil || errs[1] == nil || errs[2] != nil {
			t.Errorf("errors %v, want only the second to fail", errs)
		}
		if calls != [3]int32{2, 1, 1} {
			t.Errorf("calls %v after %d attempts, want [2 1 1]: the retry path did not run", calls, attempt)
		}
		break
	}
	var got []int
	if err := s.write(ctx, func(tx *dbtx) error {
		got = got[:0]
		rows, err := tx.QueryContext(ctx, `SELECT v FROM gc_probe ORDER BY v`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			got = append(got, v)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DROP TABLE gc_probe`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{0, 2}) {
		t.Errorf("committed %v, want [0 2]", got)
	}
}

// longInsert inserts the numbers from 100 to ? into gc_probe.
const longInsert = `INSERT INTO gc_probe
	WITH RECURSIVE r(x) AS (SELECT 100 UNION ALL SELECT x+1 FROM r WHERE x < ?)
	SELECT x FROM r`

// groupCommitBreak runs one batch of three mutations on an empty
// gc_probe, the second cancelled as its long INSERT runs, and returns
// how many times each mutation ran and what each caller got.
func groupCommitBreak(t *testing.T, s *Store) (calls [3]int32, errs [3]error) {
	t.Helper()
	ctx := context.Background()
	if err := s.write(ctx, func(tx *dbtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM gc_probe`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	queued := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.qmu.Lock()
			l := len(s.queue)
			s.qmu.Unlock()
			if l == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d mutations queued after 10 s, want %d", l, n)
			}
			runtime.Gosched()
		}
	}
	var n [3]atomic.Int32
	insert := func(i int) func(tx *dbtx) error {
		return func(tx *dbtx) error {
			n[i].Add(1)
			_, err := tx.ExecContext(ctx, `INSERT INTO gc_probe VALUES (?)`, i)
			return err
		}
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	started := make(chan struct{})
	broken := func(tx *dbtx) error {
		if n[1].Add(1) == 1 {
			close(started)
		}
		_, err := tx.ExecContext(bctx, longInsert, 5_000_000)
		return err
	}
	var wg sync.WaitGroup
	s.wsem <- struct{}{} // hold the writer slot: the three queue up as one batch
	for i, fn := range []func(*dbtx) error{insert(0), broken, insert(2)} {
		c := ctx
		if i == 1 {
			c = bctx
		}
		wg.Go(func() { errs[i] = s.write(c, fn) })
		queued(i + 1)
	}
	<-s.wsem
	<-started
	bcancel()
	wg.Wait()
	for i := range n {
		calls[i] = n[i].Load()
	}
	return calls, errs
}

func TestCheckFindsMessageProblems(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 4)
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[:1]); err != nil {
		t.Fatal(err)
	}
	healthy(t, s)
	for _, q := range []string{
		`UPDATE messages SET flags = '\Seen \Seen' WHERE uid = 2`,
		`UPDATE messages SET flags = '$b $a' WHERE uid = 3`,
		`UPDATE messages SET size = size + 1 WHERE uid = 4`,
		`UPDATE mailboxes SET tombstone_count = 7, vanished_floor = 1000 WHERE name = 'INBOX'`,
		`INSERT INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, modseq FROM messages WHERE uid = 4`,
	} {
		if _, err := s.wdbT().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	problems, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`not in normal form: "\\Seen \\Seen"`,
		`not in normal form: "$b $a"`,
		"message size differs",
		"tombstone counter disagrees",
		"vanished_floor is above highest_modseq",
		"expunged uid is still a message",
	} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("Check did not report %q; got:\n%s", want, strings.Join(problems, "\n"))
		}
	}
}

// TestMigrateV1 upgrades a version 1 database with tombstones.
func TestMigrateV1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 3)
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[:2]); err != nil {
		t.Fatal(err)
	}
	// Turn it back into version 1.
	for _, q := range []string{
		`DROP TABLE nodes`, `DROP INDEX sessions_owner`, `ALTER TABLE sessions DROP COLUMN generation`, `ALTER TABLE sessions DROP COLUMN owner`, // version 8
		`DROP TABLE headers`,                                                                              // version 7
		`DROP TRIGGER bodies_file_delete`, `DROP TABLE dead_files`, `ALTER TABLE bodies DROP COLUMN file`, // version 6
		`DROP TABLE structures`,                                               // version 5
		`DROP TABLE sessions`, `DELETE FROM counters WHERE name = 'sessions'`, // version 3
		`DROP TRIGGER expunged_insert`, `DROP TRIGGER expunged_delete`,
		`ALTER TABLE bodies DROP COLUMN structure`, `ALTER TABLE expunged DROP COLUMN expunged_at`,
		`ALTER TABLE mailboxes DROP COLUMN tombstone_count`, `ALTER TABLE mailboxes DROP COLUMN vanished_floor`,
		`UPDATE schema_version SET version = 1`,
	} {
		if _, err := s.wdbT().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	healthy(t, s)
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, 0)
	if err != nil || !ch.Complete || !slices.Equal(ch.Vanished, uids[:2]) {
		t.Errorf("ChangesSince after migration: %+v, %v", ch, err)
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[2:]); err != nil {
		t.Fatal(err)
	}
	healthy(t, s)
}

func TestUIDSpaceExhausted(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, inbox := setup(t, s)
	if _, err := s.wdbT().ExecContext(ctx, `UPDATE mailboxes SET uidnext = 4294967294 WHERE id = ?`, inbox.ID); err != nil {
		t.Fatal(err)
	}
	uids := appendN(t, s, u, inbox.ID, 2)
	if !slices.Equal(uids, []uint32{4294967294, 4294967295}) {
		t.Errorf("last UIDs %v", uids)
	}
	_, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: []byte("x")}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("append with no UIDs left: %v, want ErrInvalid", err)
	}
	m, _ := s.MailboxByID(ctx, u.ID, inbox.ID)
	if m.UIDNext != 4294967295 {
		t.Errorf("UIDNext %d", m.UIDNext)
	}
	healthy(t, s)
}

func TestUIDRuns(t *testing.T) {
	got := uidRuns([]uint32{9, 3, 0, 4, 4, 5, 1, 4294967295, 4294967294})
	want := []uidRange{{1, 1}, {3, 5}, {9, 9}, {4294967294, 4294967295}}
	if !slices.Equal(got, want) {
		t.Errorf("uidRuns = %v, want %v", got, want)
	}
	for _, u := range []uint32{1, 3, 4, 5, 9, 4294967295} {
		if !inRuns(got, u) {
			t.Errorf("%d not in runs", u)
		}
	}
	for _, u := range []uint32{0, 2, 6, 8, 10, 4294967293} {
		if inRuns(got, u) {
			t.Errorf("%d in runs", u)
		}
	}
}

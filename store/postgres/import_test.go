package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
	"github.com/quickimap/quickimap/store/transfer"
)

// sourceStore builds an embedded store with what a migration must carry:
// several accounts (one deleted, leaving a gap in the ids), renamed and
// deleted mailboxes, placeholders, special use, subscriptions,
// keywords, messages in the database and in files, shared bodies
// (COPY), expunges (tombstones), claimed \Recent and saved sessions.
func sourceStore(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	src, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{LargeBody: 2000, ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	user := func(name string, mbs []store.NewMailbox) store.User {
		u, err := src.CreateUser(ctx, name, "hash-of-"+name, mbs)
		must(err)
		return u
	}
	mailbox := func(u store.User, name string) store.Mailbox {
		m, err := src.MailboxByName(ctx, u.ID, name)
		must(err)
		return m
	}
	alice := user("alice", store.DefaultMailboxes())
	gone := user("gone", nil)
	bob := user("bob", nil)
	must(src.DeleteUser(ctx, gone.ID))
	last := user("last", nil) // the highest account id, deleted at the end
	for _, n := range []string{"Lists/go", "Lists/rust", "Work/2024", "Tmp"} {
		_, err := src.CreateMailbox(ctx, alice.ID, n, "")
		must(err)
	}
	must(src.RenameMailbox(ctx, alice.ID, "Lists", "Groups"))
	must(src.DeleteMailbox(ctx, alice.ID, "Work")) // a placeholder with a child
	must(src.DeleteMailbox(ctx, alice.ID, "Tmp"))
	_, err = src.CreateMailbox(ctx, alice.ID, "Flagged", `\Flagged`)
	must(err)
	must(src.Subscribe(ctx, alice.ID, "Groups/go"))
	must(src.Subscribe(ctx, alice.ID, "not/there"))
	must(src.Unsubscribe(ctx, alice.ID, "Junk"))

	inbox := mailbox(alice, "INBOX")
	var msgs []store.NewMessage
	for i := range 40 {
		body := fmt.Sprintf("From: a@example.org\r\nSubject: %d\r\n\r\n\x00\xff\r\n%s", i, strings.Repeat("ab\r\n", i*60))
		flags := []string{[]string{`\Seen`, `$Label1`, `\Flagged`, `Junk`, ``}[i%5]}
		if flags[0] == "" {
			flags = nil
		}
		msgs = append(msgs, store.NewMessage{Body: []byte(body), Flags: flags,
			InternalDate: time.Date(2021, 3, 4, 5, 6, i, 0, time.FixedZone("", (i%7-3)*1800)),
			Structure:    []byte{'s', byte(i)}, HeaderLen: strings.Index(body, "\r\n\r\n") + 4})
	}
	uids, _, err := src.AppendMessages(ctx, alice.ID, inbox.ID, msgs)
	must(err)
	_, _, err = src.ClaimRecent(ctx, alice.ID, inbox.ID)
	must(err)
	_, _, err = src.UpdateFlags(ctx, alice.ID, inbox.ID, uids[:20], store.FlagsAdd, []string{`$Label1`, `\Answered`}, 0)
	must(err)
	_, err = src.Expunge(ctx, alice.ID, inbox.ID, uids[3:9])
	must(err)
	_, _, _, err = src.CopyMessages(ctx, alice.ID, inbox.ID, mailbox(alice, "Archive").ID, uids[10:20])
	must(err)
	_, _, _, err = src.MoveMessages(ctx, alice.ID, inbox.ID, mailbox(alice, "Groups/go").ID, uids[30:35])
	must(err)
	_, _, err = src.UpdateFlags(ctx, alice.ID, inbox.ID, uids[36:], store.FlagsSet, []string{`\Deleted`}, 0)
	must(err)
	_, err = src.Expunge(ctx, alice.ID, inbox.ID, uids[36:])
	must(err)

	bobInbox := mailbox(bob, "INBOX")
	_, _, err = src.AppendMessages(ctx, bob.ID, bobInbox.ID, []store.NewMessage{{Body: []byte("Subject: x\r\n\r\ny"), Flags: []string{`$MDNSent`}}})
	must(err)

	// The highest ids ever given belong to deleted ones: the copy must
	// not give them again.
	_, err = src.CreateMailbox(ctx, alice.ID, "Last", "")
	must(err)
	must(src.DeleteMailbox(ctx, alice.ID, "Last"))
	must(src.DeleteUser(ctx, last.ID))

	now := time.Unix(1_700_000_000, 123456789)
	for i, u := range []store.User{alice, alice, bob} {
		must(src.SaveSession(ctx, store.SessionRecord{ID: fmt.Sprintf("sid-%d", i), UserID: u.ID, ClientIP: "192.0.2.7",
			Created: now, LastActive: now.Add(time.Duration(i) * time.Second),
			Owner: []string{"", "mail1:143", ""}[i], Generation: uint64(5 * i),
			State: []byte(fmt.Sprintf(`{"state":3,"user_id":%d,"selected":{"mailbox_id":%d}}`, u.ID, inbox.ID))}))
	}
	return src
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	src := sourceStore(t)
	dst := open(t, pgtest.DB(t))
	defer dst.Close()

	exp, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := exp.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want.Users != 2 || want.Messages != 40-6-4+10+1 || want.Tombstones != 6+4+5 || want.Sessions != 3 {
		t.Fatalf("source totals %+v", want)
	}
	var batches []string
	got, err := dst.Import(ctx, exp, func(table string, n int64) { batches = append(batches, fmt.Sprintf("%s=%d", table, n)) })
	exp.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("imported %+v, source has %+v", got, want)
	}
	if !slices.Contains(batches, fmt.Sprintf("messages=%d", want.Messages)) {
		t.Errorf("progress %q", batches)
	}
	if diffs, err := transfer.Compare(ctx, src, dst); err != nil || diffs != nil {
		t.Fatalf("Compare: %q, %v", diffs, err)
	}
	if problems, err := dst.Check(ctx); err != nil || problems != nil {
		t.Fatalf("Check: %q, %v", problems, err)
	}
	sameContent(t, src, dst)
	users0, _ := src.Users(ctx)
	if a, _ := src.LoadSession(ctx, users0[0].ID, "sid-1"); a.Owner != "mail1:143" || a.Generation != 5 {
		t.Fatalf("source session sid-1: owner %q generation %d", a.Owner, a.Generation)
	}
	if b, err := dst.LoadSession(ctx, users0[0].ID, "sid-1"); err != nil || b.Owner != "" || b.Generation != 5 {
		t.Errorf("copied session sid-1: owner %q generation %d, want none and 5: %v", b.Owner, b.Generation, err)
	}
	// The headers kept apart stay apart (MessagePrefixes reads them
	// instead of the body).
	var headers, structures int
	if err := dst.Pool().QueryRow(ctx, `SELECT count(header), count(structure) FROM bodies`).Scan(&headers, &structures); err != nil ||
		int64(headers) != want.Bodies-1 || int64(structures) != want.Bodies-1 {
		t.Errorf("%d headers and %d structures kept for %d bodies (one without): %v", headers, structures, want.Bodies, err)
	}

	// The copy goes on where the original stopped: new ids, UIDs,
	// MODSEQs and UIDVALIDITY values follow the copied ones, and a
	// keyword keeps the mailbox's spelling.
	users, _ := src.Users(ctx)
	alice := users[0]
	inbox, _ := src.MailboxByName(ctx, alice.ID, "INBOX")
	uids, after, err := dst.AppendMessages(ctx, alice.ID, inbox.ID, []store.NewMessage{{Body: []byte("x"), Flags: []string{"$label1"}}})
	if err != nil || uids[0] != inbox.UIDNext || after.HighestModSeq != inbox.HighestModSeq+1 {
		t.Errorf("append after import: uid %v modseq %d, %v (source uidnext %d modseq %d)", uids, after.HighestModSeq, err, inbox.UIDNext, inbox.HighestModSeq)
	}
	idx, _, _ := dst.MessageIndex(ctx, alice.ID, inbox.ID)
	if f := idx[len(idx)-1].Flags; !slices.Equal(f, []string{"$Label1"}) {
		t.Errorf("new message's keyword spelled %q, want the mailbox's $Label1", f)
	}
	// Ids are never given twice, also those of deleted accounts and
	// mailboxes (the highest of each).
	probe, err := src.CreateUser(ctx, "probe", "h", nil) // the source's next ids
	if err != nil {
		t.Fatal(err)
	}
	probeBox, _ := src.MailboxByName(ctx, probe.ID, "INBOX")
	carol, err := dst.CreateUser(ctx, "carol", "h", nil)
	if err != nil || carol.ID != probe.ID {
		t.Errorf("new account id %d, the source's next is %d: %v", carol.ID, probe.ID, err)
	}
	mbs, _ := src.Mailboxes(ctx, alice.ID)
	nm, err := dst.CreateMailbox(ctx, alice.ID, "New", "")
	if err != nil {
		t.Fatal(err)
	}
	if carolBox, err := dst.MailboxByName(ctx, carol.ID, "INBOX"); err != nil || carolBox.ID != probeBox.ID {
		t.Errorf("new mailbox id %d, the source's next is %d: %v", carolBox.ID, probeBox.ID, err)
	}
	for _, m := range mbs {
		if nm.ID <= m.ID || nm.UIDValidity == m.UIDValidity {
			t.Errorf("new mailbox id %d uidvalidity %d repeats or precedes %+v", nm.ID, nm.UIDValidity, m)
		}
	}
	if _, _, _, err := dst.CopyMessages(ctx, alice.ID, inbox.ID, nm.ID, uids); err != nil {
		t.Errorf("copy after import: %v", err)
	}

	// A second import is refused, as is one into a database with data.
	exp2, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer exp2.Close()
	if _, err := dst.Import(ctx, exp2, nil); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "account(s)") {
		t.Errorf("second import: %v, want ErrNotEmpty", err)
	}
}

// sameContent checks every message, tombstone and session of src in dst.
func sameContent(t *testing.T, src, dst store.Store) {
	t.Helper()
	ctx := context.Background()
	users, err := src.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		mbs, err := src.Mailboxes(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mbs {
			if m.NoSelect {
				continue
			}
			si, _, err := src.MessageIndex(ctx, u.ID, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			di, _, err := dst.MessageIndex(ctx, u.ID, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(si) != fmt.Sprint(di) {
				t.Errorf("%s: index %v, copy %v", m.Name, si, di)
			}
			var uids []uint32
			for _, x := range si {
				uids = append(uids, x.UID)
			}
			sinf, _ := src.MessageInfos(ctx, u.ID, m.ID, uids)
			dinf, err := dst.MessageInfos(ctx, u.ID, m.ID, uids)
			if err != nil || len(sinf) != len(dinf) {
				t.Fatalf("%s: infos %d, copy %d: %v", m.Name, len(sinf), len(dinf), err)
			}
			for i := range sinf {
				a, b := sinf[i], dinf[i]
				_, ao := a.InternalDate.Zone()
				_, bo := b.InternalDate.Zone()
				if !a.InternalDate.Equal(b.InternalDate) || ao != bo || a.Size != b.Size || !bytes.Equal(a.Structure, b.Structure) {
					t.Errorf("%s uid %d: info %v %d %q, copy %v %d %q", m.Name, a.UID, a.InternalDate, a.Size, a.Structure, b.InternalDate, b.Size, b.Structure)
				}
				sb, _ := src.MessageBody(ctx, u.ID, m.ID, a.UID)
				db, err := dst.MessageBody(ctx, u.ID, m.ID, a.UID)
				if err != nil || !bytes.Equal(sb, db) || len(sb) == 0 {
					t.Errorf("%s uid %d: body differs (%d and %d bytes): %v", m.Name, a.UID, len(sb), len(db), err)
				}
				pre := []store.PrefixRequest{{UID: a.UID, N: 20}}
				sp, _ := src.MessagePrefixes(ctx, u.ID, m.ID, pre)
				dp, err := dst.MessagePrefixes(ctx, u.ID, m.ID, pre)
				if err != nil || fmt.Sprint(sp) != fmt.Sprint(dp) {
					t.Errorf("%s uid %d: prefix %q, copy %q: %v", m.Name, a.UID, sp, dp, err)
				}
			}
			for _, since := range []uint64{0, 1, m.HighestModSeq / 2, m.HighestModSeq - 1, m.HighestModSeq} {
				sc, err := src.ChangesSince(ctx, u.ID, m.ID, since)
				if err != nil {
					t.Fatal(err)
				}
				dc, err := dst.ChangesSince(ctx, u.ID, m.ID, since)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(sc) != fmt.Sprint(dc) {
					t.Errorf("%s: changes since %d: %+v, copy %+v", m.Name, since, sc, dc)
				}
			}
		}
		// Sessions: all of them, with their state and generation; none
		// is held by a node in the copy.
		ss, err := src.UserSessions(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := dst.UserSessions(ctx, u.ID)
		if err != nil || len(ss) != len(ds) {
			t.Fatalf("%s: sessions %+v, copy %+v: %v", u.Name, ss, ds, err)
		}
		for i, r := range ss {
			a, _ := src.LoadSession(ctx, u.ID, r.ID)
			b, err := dst.LoadSession(ctx, u.ID, r.ID)
			if err != nil || ds[i].ID != r.ID || !bytes.Equal(a.State, b.State) || !a.Created.Equal(b.Created) ||
				!a.LastActive.Equal(b.LastActive) || a.ClientIP != b.ClientIP || a.Generation != b.Generation || b.Owner != "" {
				t.Errorf("session %s: %+v, copy %+v: %v", r.ID, a, b, err)
			}
		}
	}
}

// An import into a database that holds an account is refused and
// changes nothing; a partial import is reported by Check.
func TestImportRefusesData(t *testing.T) {
	ctx := context.Background()
	src := sourceStore(t)
	dst := open(t, pgtest.DB(t))
	defer dst.Close()
	if _, err := dst.CreateUser(ctx, "someone", "h", nil); err != nil {
		t.Fatal(err)
	}
	exp, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	if _, err := dst.Import(ctx, exp, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("import into a database with an account: %v", err)
	}
	if c, _ := dst.Counts(ctx); c.Users != 1 || c.Mailboxes != 1 {
		t.Errorf("the refused import changed the database: %+v", c)
	}

	// An import that fails part-way leaves its mark.
	dst2 := open(t, pgtest.DB(t))
	defer dst2.Close()
	failing := failAt{Source: exp, table: "messages"}
	if _, err := dst2.Import(ctx, failing, nil); err == nil || !strings.Contains(err.Error(), "broken source") {
		t.Fatalf("failing import: %v", err)
	}
	problems, err := dst2.Check(ctx)
	if err != nil || len(problems) == 0 || !strings.Contains(problems[len(problems)-1], "did not finish") {
		t.Errorf("Check after a failed import: %q, %v", problems, err)
	}
	if _, err := dst2.Import(ctx, exp, nil); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "partial copy") {
		t.Errorf("import over a partial one: %v", err)
	}
}

// failAt is a source whose Messages fails after its first row.
type failAt struct {
	transfer.Source
	table string
}

func (f failAt) Messages(ctx context.Context, yield func(transfer.Message) error) error {
	err := f.Source.Messages(ctx, func(m transfer.Message) error {
		if err := yield(m); err != nil {
			return err
		}
		return errors.New("broken source")
	})
	return err
}

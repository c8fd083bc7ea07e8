// Package storetest is the conformance suite every store.Store backend
// must pass. A backend's test calls Run (and RunReopen if it persists):
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... a fresh, empty store ... })
//	}
//
// The suite closes every store it opens; open must not register Close
// itself (doing so is harmless if Close may be called twice).
//
// Beyond the doc comments of store.Store, the suite pins down these
// choices:
//   - UIDVALIDITY of a reused name is strictly greater than before
//     (RFC 3501 §2.3.1.1), not merely different;
//   - any case of "inbox" as a name's first component means INBOX;
//   - names with an empty component ("", "/a", "a/", "a//b") are ErrInvalid;
//   - CreateUser always creates INBOX;
//   - Status and ClaimRecent on a \Noselect placeholder are ErrNoSelect;
//   - Subscribe of an already subscribed name succeeds;
//   - RENAME creates the missing parents of the new name as selectable
//     mailboxes and removes placeholders left without children;
//   - RENAME of INBOX to a child of INBOX ("INBOX/old") is allowed;
//   - a placeholder made selectable again by CREATE keeps neither its old
//     UIDVALIDITY nor a UIDNEXT below its old one;
//   - Mailboxes and Subscriptions of an unknown user are empty or
//     ErrNotFound.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// Run runs the conformance suite. open returns a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"UserNames", testUserNames},
		{"DeleteUser", testDeleteUser},
		{"DefaultMailboxes", testDefaultMailboxes},
		{"CreateUserMailboxes", testCreateUserMailboxes},
		{"CreateMailbox", testCreateMailbox},
		{"CreateParents", testCreateParents},
		{"InvalidNames", testInvalidNames},
		{"InboxCase", testInboxCase},
		{"UIDValidityReuse", testUIDValidityReuse},
		{"DeleteMailbox", testDeleteMailbox},
		{"DeletePrunesPlaceholders", testDeletePrunesPlaceholders},
		{"CreateOverPlaceholder", testCreateOverPlaceholder},
		{"Rename", testRename},
		{"RenameErrors", testRenameErrors},
		{"RenameParents", testRenameParents},
		{"RenameInbox", testRenameInbox},
		{"Subscriptions", testSubscriptions},
		{"Status", testStatus},
		{"ClaimRecent", testClaimRecent},
		{"Isolation", testIsolation},
		{"Concurrency", testConcurrency},
		{"Check", testCheck},
	}
	tests = append(tests, messageTests()...)
	tests = append(tests, sessionTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			tc.fn(t, s)
			// Whatever a test did, the store must still be healthy.
			checkHealthy(t, s)
		})
	}
}

// RunReopen tests durability: what one store wrote is there, identical,
// after Close and a new open of the same directory. open opens the store
// kept in dir (empty the first time).
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)

	alice := mustCreateUser(t, s, "Alice", store.DefaultMailboxes())
	bob := mustCreateUser(t, s, "bob", nil)
	for _, n := range []string{"a/b/c", "a/x", "keep", "gone", "p/q"} {
		mustCreate(t, s, alice.ID, n)
	}
	must(t, s.DeleteMailbox(ctx, alice.ID, "gone"))
	must(t, s.DeleteMailbox(ctx, alice.ID, "p")) // placeholder
	must(t, s.RenameMailbox(ctx, alice.ID, "a", "z"))
	must(t, s.RenameMailbox(ctx, alice.ID, "INBOX", "Old"))
	must(t, s.Subscribe(ctx, alice.ID, "nonexistent"))
	must(t, s.Unsubscribe(ctx, alice.ID, "Junk"))
	must(t, s.SetPasswordHash(ctx, bob.ID, "new-hash"))
	mustCreate(t, s, bob.ID, "bobs")
	if _, _, err := s.ClaimRecent(ctx, alice.ID, mustMailbox(t, s, alice.ID, "keep").ID); err != nil {
		t.Fatal(err)
	}
	// Messages: appends, flag changes, expunges, copies and moves.
	keep := mustMailbox(t, s, alice.ID, "keep")
	bodies := map[uint32][]byte{}
	var msgs []store.NewMessage
	for i := range 20 {
		b := []byte(fmt.Sprintf("Subject: %d\r\n\r\n\x00\xff%s\r\n", i, strings.Repeat("x", i*100)))
		msgs = append(msgs, store.NewMessage{Body: b, Flags: []string{`$K` + fmt.Sprint(i%3)},
			InternalDate: time.Date(2020, 1, 1, 0, 0, i, 0, time.FixedZone("", i*60)), Structure: []byte{byte(i)}})
	}
	uids, _ := mustAppend(t, s, alice.ID, keep.ID, msgs...)
	for i, uid := range uids {
		bodies[uid] = msgs[i].Body
	}
	_, _, err := s.UpdateFlags(ctx, alice.ID, keep.ID, uids[:10], store.FlagsAdd, []string{`\Seen`}, 0)
	must(t, err)
	_, err = s.Expunge(ctx, alice.ID, keep.ID, uids[5:8])
	must(t, err)
	_, _, _, err = s.MoveMessages(ctx, alice.ID, keep.ID, mustMailbox(t, s, alice.ID, "Trash").ID, uids[15:])
	must(t, err)
	_, _, _, err = s.CopyMessages(ctx, alice.ID, keep.ID, mustMailbox(t, s, alice.ID, "Archive").ID, uids[:3])
	must(t, err)
	type msgSnap struct {
		idx     []store.MessageMeta
		infos   []store.MessageInfo
		changes store.Changes
	}
	msnap := func(s store.Store) map[string]msgSnap {
		t.Helper()
		out := map[string]msgSnap{}
		for _, name := range []string{"keep", "Trash", "Archive"} {
			m := mustMailbox(t, s, alice.ID, name)
			idx, _ := mustIndex(t, s, alice.ID, m.ID)
			infos, err := s.MessageInfos(ctx, alice.ID, m.ID, uidsOf(idx))
			must(t, err)
			ch, err := s.ChangesSince(ctx, alice.ID, m.ID, 1)
			must(t, err)
			out[name] = msgSnap{idx, infos, ch}
		}
		return out
	}
	mBefore := msnap(s)
	sessRecs := reopenSessionsWrite(t, s, alice, bob)

	type snapshot struct {
		users []store.User
		mbs   map[int64][]store.Mailbox
		subs  map[int64][]string
	}
	snap := func(s store.Store) snapshot {
		t.Helper()
		users, err := s.Users(ctx)
		must(t, err)
		sn := snapshot{users: users, mbs: map[int64][]store.Mailbox{}, subs: map[int64][]string{}}
		for _, u := range users {
			sn.mbs[u.ID], err = s.Mailboxes(ctx, u.ID)
			must(t, err)
			sn.subs[u.ID], err = s.Subscriptions(ctx, u.ID)
			must(t, err)
		}
		return sn
	}
	before := snap(s)
	var maxUV uint32
	var maxID int64
	for _, mbs := range before.mbs {
		for _, m := range mbs {
			maxUV = max(maxUV, m.UIDValidity)
			maxID = max(maxID, m.ID)
		}
	}
	must(t, s.Close())

	s = open(t, dir)
	defer func() { must(t, s.Close()) }()
	after := snap(s)
	if len(after.users) != len(before.users) {
		t.Fatalf("users after reopen: %+v, before: %+v", after.users, before.users)
	}
	for i, u := range before.users {
		a := after.users[i]
		if a.ID != u.ID || a.Name != u.Name || a.PasswordHash != u.PasswordHash || !a.Created.Equal(u.Created) {
			t.Errorf("user after reopen: %+v, before: %+v", a, u)
		}
		if !slices.Equal(after.mbs[u.ID], before.mbs[u.ID]) {
			t.Errorf("mailboxes of %s after reopen:\n%+v\nbefore:\n%+v", u.Name, after.mbs[u.ID], before.mbs[u.ID])
		}
		if !slices.Equal(after.subs[u.ID], before.subs[u.ID]) {
			t.Errorf("subscriptions of %s after reopen: %q, before: %q", u.Name, after.subs[u.ID], before.subs[u.ID])
		}
	}
	mAfter := msnap(s)
	reopenSessionsCheck(t, s, sessRecs)
	for name, b := range mBefore {
		a := mAfter[name]
		if fmt.Sprint(a.idx) != fmt.Sprint(b.idx) || fmt.Sprint(a.changes) != fmt.Sprint(b.changes) ||
			len(a.infos) != len(b.infos) {
			t.Errorf("%s after reopen:\n%+v\nbefore:\n%+v", name, a, b)
			continue
		}
		for i := range a.infos {
			ai, bi := a.infos[i], b.infos[i]
			if !ai.InternalDate.Equal(bi.InternalDate) || ai.InternalDate.String() != bi.InternalDate.String() ||
				ai.Size != bi.Size || !bytes.Equal(ai.Structure, bi.Structure) {
				t.Errorf("%s info after reopen %+v, before %+v", name, ai, bi)
			}
		}
	}
	keep = mustMailbox(t, s, alice.ID, "keep")
	for _, m := range mAfter["keep"].idx {
		b, err := s.MessageBody(ctx, alice.ID, keep.ID, m.UID)
		must(t, err)
		if !bytes.Equal(b, bodies[m.UID]) {
			t.Errorf("body of UID %d after reopen %q, want %q", m.UID, b, bodies[m.UID])
		}
	}
	// UIDs continue after reopen.
	if got, _ := mustAppend(t, s, alice.ID, keep.ID, store.NewMessage{Body: []byte("new")}); got[0] != uids[len(uids)-1]+1 {
		t.Errorf("UID after reopen %d, want %d", got[0], uids[len(uids)-1]+1)
	}

	// The UIDVALIDITY counter and the id sequence are durable too: a
	// reused name gets a greater UIDVALIDITY, a new mailbox a new id.
	m := mustCreate(t, s, alice.ID, "gone")
	if m.UIDValidity <= maxUV {
		t.Errorf("UIDVALIDITY after reopen %d, want > %d", m.UIDValidity, maxUV)
	}
	if m.ID <= maxID {
		t.Errorf("mailbox id after reopen %d, want > %d (ids are never reused)", m.ID, maxID)
	}
	checkHealthy(t, s)
}

// ---- helpers ----

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func mustCreateUser(t *testing.T, s store.Store, name string, mbs []store.NewMailbox) store.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), name, "hash-"+name, mbs)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func mustCreate(t *testing.T, s store.Store, userID int64, name string) store.Mailbox {
	t.Helper()
	m, err := s.CreateMailbox(context.Background(), userID, name, "")
	if err != nil {
		t.Fatalf("CreateMailbox(%q): %v", name, err)
	}
	return m
}

func mustMailbox(t *testing.T, s store.Store, userID int64, name string) store.Mailbox {
	t.Helper()
	m, err := s.MailboxByName(context.Background(), userID, name)
	if err != nil {
		t.Fatalf("MailboxByName(%q): %v", name, err)
	}
	return m
}

func names(t *testing.T, s store.Store, userID int64) []string {
	t.Helper()
	mbs, err := s.Mailboxes(context.Background(), userID)
	must(t, err)
	var out []string
	for _, m := range mbs {
		n := m.Name
		if m.NoSelect {
			n += " (noselect)"
		}
		out = append(out, n)
	}
	return out
}

func wantNames(t *testing.T, s store.Store, userID int64, want ...string) {
	t.Helper()
	if got := names(t, s, userID); !slices.Equal(got, want) {
		t.Errorf("mailboxes:\n got %q\nwant %q", got, want)
	}
}

func subs(t *testing.T, s store.Store, userID int64) []string {
	t.Helper()
	l, err := s.Subscriptions(context.Background(), userID)
	must(t, err)
	return l
}

func checkHealthy(t *testing.T, s store.Store) {
	t.Helper()
	problems, err := s.Check(context.Background())
	if err != nil {
		t.Errorf("Check: %v", err)
	}
	for _, p := range problems {
		t.Errorf("Check: %s", p)
	}
}

// checkMailbox verifies the invariants every mailbox satisfies.
func checkMailbox(t *testing.T, m store.Mailbox) {
	t.Helper()
	if m.ID == 0 {
		t.Errorf("%q: ID 0", m.Name)
	}
	if m.UIDValidity == 0 {
		t.Errorf("%q: UIDVALIDITY 0", m.Name)
	}
	if m.UIDNext < 1 {
		t.Errorf("%q: UIDNEXT %d", m.Name, m.UIDNext)
	}
	if m.HighestModSeq < 1 {
		t.Errorf("%q: HIGHESTMODSEQ %d", m.Name, m.HighestModSeq)
	}
	if m.FirstRecentUID > m.UIDNext {
		t.Errorf("%q: FirstRecentUID %d > UIDNext %d", m.Name, m.FirstRecentUID, m.UIDNext)
	}
}

// ---- users ----

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	if l, err := s.Users(ctx); err != nil || len(l) != 0 {
		t.Fatalf("Users of an empty store: %v, %v", l, err)
	}
	before := time.Now().Add(-time.Second)
	u := mustCreateUser(t, s, "Bob", nil)
	mustCreateUser(t, s, "alice", nil)
	mustCreateUser(t, s, "carol", nil)
	if u.Name != "bob" || u.PasswordHash != "hash-Bob" || u.ID == 0 {
		t.Errorf("CreateUser returned %+v", u)
	}
	if u.Created.Before(before) || u.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("Created %v, want about now", u.Created)
	}
	got, err := s.UserByName(ctx, "bob")
	must(t, err)
	if got.ID != u.ID || got.Name != "bob" || got.PasswordHash != u.PasswordHash || !got.Created.Equal(u.Created) {
		t.Errorf("UserByName = %+v, created %+v", got, u)
	}
	users, err := s.Users(ctx)
	must(t, err)
	var ns []string
	for _, x := range users {
		ns = append(ns, x.Name)
	}
	if !slices.Equal(ns, []string{"alice", "bob", "carol"}) {
		t.Errorf("Users = %q", ns)
	}

	must(t, s.SetPasswordHash(ctx, u.ID, "other"))
	got, err = s.UserByName(ctx, "BOB")
	must(t, err)
	if got.PasswordHash != "other" {
		t.Errorf("password hash after SetPasswordHash: %q", got.PasswordHash)
	}
	wantErr(t, s.SetPasswordHash(ctx, u.ID+1000, "x"), store.ErrNotFound, "SetPasswordHash of unknown user")
	_, err = s.UserByName(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound, "UserByName(nobody)")
	_, err = s.CreateUser(ctx, "", "h", nil)
	wantErr(t, err, store.ErrInvalid, "CreateUser with an empty name")
}

func testUserNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "MiXeD@Example.COM", nil)
	if u.Name != "mixed@example.com" {
		t.Errorf("name %q, want lower-cased", u.Name)
	}
	for _, n := range []string{"mixed@example.com", "MIXED@EXAMPLE.COM", "Mixed@example.com"} {
		got, err := s.UserByName(ctx, n)
		if err != nil || got.ID != u.ID {
			t.Errorf("UserByName(%q) = %+v, %v", n, got, err)
		}
		_, err = s.CreateUser(ctx, n, "h", nil)
		wantErr(t, err, store.ErrExists, "CreateUser("+n+")")
	}
	if l, _ := s.Users(ctx); len(l) != 1 {
		t.Errorf("Users after failed creations: %+v", l)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "doomed", store.DefaultMailboxes())
	other := mustCreateUser(t, s, "other", store.DefaultMailboxes())
	m := mustCreate(t, s, u.ID, "a/b")
	must(t, s.Subscribe(ctx, u.ID, "x"))
	must(t, s.DeleteUser(ctx, u.ID))

	_, err := s.UserByName(ctx, "doomed")
	wantErr(t, err, store.ErrNotFound, "UserByName after DeleteUser")
	_, err = s.MailboxByID(ctx, u.ID, m.ID)
	wantErr(t, err, store.ErrNotFound, "MailboxByID after DeleteUser")
	_, err = s.Status(ctx, u.ID, m.ID)
	wantErr(t, err, store.ErrNotFound, "Status after DeleteUser")
	if l, err := s.Mailboxes(ctx, u.ID); len(l) != 0 || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Errorf("Mailboxes after DeleteUser: %v, %v", l, err)
	}
	if l, err := s.Subscriptions(ctx, u.ID); len(l) != 0 || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Errorf("Subscriptions after DeleteUser: %v, %v", l, err)
	}
	_, err = s.CreateMailbox(ctx, u.ID, "new", "")
	wantErr(t, err, store.ErrNotFound, "CreateMailbox for a deleted user")
	wantErr(t, s.DeleteUser(ctx, u.ID), store.ErrNotFound, "DeleteUser twice")
	if l, _ := s.Users(ctx); len(l) != 1 || l[0].ID != other.ID {
		t.Errorf("Users after DeleteUser: %+v", l)
	}
	if n := len(names(t, s, other.ID)); n != 6 {
		t.Errorf("other user has %d mailboxes after DeleteUser, want 6", n)
	}

	// The name can be used again; the new account shares nothing with
	// the old one.
	u2 := mustCreateUser(t, s, "Doomed", store.DefaultMailboxes())
	if u2.ID == u.ID {
		t.Errorf("recreated user got the old id %d", u.ID)
	}
	wantNames(t, s, u2.ID, "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash")
	if got := subs(t, s, u2.ID); slices.Contains(got, "x") {
		t.Errorf("recreated user inherited subscriptions: %q", got)
	}
	_, err = s.MailboxByID(ctx, u2.ID, m.ID)
	wantErr(t, err, store.ErrNotFound, "old mailbox id for the recreated user")
}

// ---- mailboxes ----

func testDefaultMailboxes(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	mbs, err := s.Mailboxes(ctx, u.ID)
	must(t, err)
	want := map[string]string{"INBOX": "", "Archive": `\Archive`, "Drafts": `\Drafts`, "Junk": `\Junk`, "Sent": `\Sent`, "Trash": `\Trash`}
	if len(mbs) != len(want) {
		t.Fatalf("Mailboxes = %+v", mbs)
	}
	seenUV := map[uint32]bool{}
	seenID := map[int64]bool{}
	for i, m := range mbs {
		if i > 0 && mbs[i-1].Name >= m.Name {
			t.Errorf("Mailboxes not ordered by name: %q before %q", mbs[i-1].Name, m.Name)
		}
		su, ok := want[m.Name]
		if !ok || m.SpecialUse != su || m.NoSelect || m.UserID != u.ID {
			t.Errorf("unexpected mailbox %+v", m)
		}
		checkMailbox(t, m)
		if seenUV[m.UIDValidity] || seenID[m.ID] {
			t.Errorf("duplicate UIDVALIDITY or id: %+v", m)
		}
		seenUV[m.UIDValidity], seenID[m.ID] = true, true
		byID, err := s.MailboxByID(ctx, u.ID, m.ID)
		if err != nil || byID != m {
			t.Errorf("MailboxByID(%d) = %+v, %v; want %+v", m.ID, byID, err, m)
		}
		byName, err := s.MailboxByName(ctx, u.ID, m.Name)
		if err != nil || byName != m {
			t.Errorf("MailboxByName(%q) = %+v, %v; want %+v", m.Name, byName, err, m)
		}
	}
	if got := subs(t, s, u.ID); !slices.Equal(got, []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}) {
		t.Errorf("Subscriptions = %q", got)
	}
}

func testCreateUserMailboxes(t *testing.T, s store.Store) {
	// INBOX is always created; parents are created; only the listed
	// mailboxes that ask for it are subscribed.
	u := mustCreateUser(t, s, "u", []store.NewMailbox{
		{Name: "Lists/go", Subscribe: true},
		{Name: "Other", SpecialUse: `\Flagged`},
	})
	wantNames(t, s, u.ID, "INBOX", "Lists", "Lists/go", "Other")
	if got := subs(t, s, u.ID); !slices.Equal(got, []string{"Lists/go"}) {
		t.Errorf("Subscriptions = %q", got)
	}
	if m := mustMailbox(t, s, u.ID, "Other"); m.SpecialUse != `\Flagged` {
		t.Errorf("special use %q", m.SpecialUse)
	}
	u2 := mustCreateUser(t, s, "empty", nil)
	wantNames(t, s, u2.ID, "INBOX")
	if got := subs(t, s, u2.ID); len(got) != 0 {
		t.Errorf("Subscriptions = %q", got)
	}
}

func testCreateMailbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	m, err := s.CreateMailbox(ctx, u.ID, "Work", `\Flagged`)
	must(t, err)
	if m.Name != "Work" || m.SpecialUse != `\Flagged` || m.NoSelect || m.UserID != u.ID {
		t.Errorf("CreateMailbox = %+v", m)
	}
	checkMailbox(t, m)
	if m.UIDNext != 1 || m.FirstRecentUID != 1 {
		t.Errorf("new mailbox: UIDNext %d FirstRecentUID %d, want 1 1", m.UIDNext, m.FirstRecentUID)
	}
	if got := mustMailbox(t, s, u.ID, "Work"); got != m {
		t.Errorf("MailboxByName = %+v, want %+v", got, m)
	}
	// Names are case-sensitive (except INBOX) and may be any UTF-8.
	mustCreate(t, s, u.ID, "work")
	mustCreate(t, s, u.ID, "Größe ☃")
	_, err = s.CreateMailbox(ctx, u.ID, "Work", "")
	wantErr(t, err, store.ErrExists, "CreateMailbox of an existing name")
	_, err = s.CreateMailbox(ctx, u.ID, "INBOX", "")
	wantErr(t, err, store.ErrExists, "CreateMailbox(INBOX)")
	_, err = s.CreateMailbox(ctx, u.ID+1000, "x", "")
	wantErr(t, err, store.ErrNotFound, "CreateMailbox for an unknown user")
	_, err = s.MailboxByName(ctx, u.ID, "nope")
	wantErr(t, err, store.ErrNotFound, "MailboxByName(nope)")
	_, err = s.MailboxByID(ctx, u.ID, m.ID+1000)
	wantErr(t, err, store.ErrNotFound, "MailboxByID of an unknown id")
	wantNames(t, s, u.ID, "Größe ☃", "INBOX", "Work", "work")
	if got := subs(t, s, u.ID); len(got) != 0 {
		t.Errorf("CreateMailbox subscribed: %q", got)
	}
}

func testCreateParents(t *testing.T, s store.Store) {
	u := mustCreateUser(t, s, "u", nil)
	c := mustCreate(t, s, u.ID, "a/b/c")
	if c.Name != "a/b/c" {
		t.Errorf("name %q", c.Name)
	}
	wantNames(t, s, u.ID, "INBOX", "a", "a/b", "a/b/c")
	uvs := map[uint32]string{}
	for _, n := range []string{"INBOX", "a", "a/b", "a/b/c"} {
		m := mustMailbox(t, s, u.ID, n)
		checkMailbox(t, m)
		if m.NoSelect {
			t.Errorf("parent %q created as \\Noselect, want selectable", n)
		}
		if other, dup := uvs[m.UIDValidity]; dup {
			t.Errorf("%q and %q share UIDVALIDITY %d", n, other, m.UIDValidity)
		}
		uvs[m.UIDValidity] = n
	}
	// An existing parent is left alone.
	a := mustMailbox(t, s, u.ID, "a")
	mustCreate(t, s, u.ID, "a/d")
	if got := mustMailbox(t, s, u.ID, "a"); got != a {
		t.Errorf("parent changed by creating a sibling: %+v -> %+v", a, got)
	}
}

func testInvalidNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	mustCreate(t, s, u.ID, "ok")
	for _, n := range []string{"", "/", "/a", "a/", "a//b", "\xff"} {
		_, err := s.CreateMailbox(ctx, u.ID, n, "")
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("CreateMailbox(%q)", n))
		wantErr(t, s.RenameMailbox(ctx, u.ID, "ok", n), store.ErrInvalid, fmt.Sprintf("RenameMailbox(ok, %q)", n))
		wantErr(t, s.Subscribe(ctx, u.ID, n), store.ErrInvalid, fmt.Sprintf("Subscribe(%q)", n))
	}
	wantNames(t, s, u.ID, "INBOX", "ok")
}

func testInboxCase(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	for _, n := range []string{"inbox", "Inbox", "iNbOx"} {
		if m, err := s.MailboxByName(ctx, u.ID, n); err != nil || m != inbox {
			t.Errorf("MailboxByName(%q) = %+v, %v", n, m, err)
		}
		_, err := s.CreateMailbox(ctx, u.ID, n, "")
		wantErr(t, err, store.ErrExists, "CreateMailbox("+n+")")
		wantErr(t, s.DeleteMailbox(ctx, u.ID, n), store.ErrInvalid, "DeleteMailbox("+n+")")
	}
	c := mustCreate(t, s, u.ID, "inbox/Child")
	if c.Name != "INBOX/Child" {
		t.Errorf("CreateMailbox(inbox/Child) named %q", c.Name)
	}
	must(t, s.Subscribe(ctx, u.ID, "Inbox"))
	if got := subs(t, s, u.ID); !slices.Equal(got, []string{"INBOX"}) {
		t.Errorf("Subscriptions = %q", got)
	}
	must(t, s.Unsubscribe(ctx, u.ID, "inbox"))
	wantNames(t, s, u.ID, "INBOX", "INBOX/Child")
	// A name that merely starts with "inbox" is an ordinary name.
	mustCreate(t, s, u.ID, "inboxes")
	wantNames(t, s, u.ID, "INBOX", "INBOX/Child", "inboxes")
}

func testUIDValidityReuse(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	seenUV := map[uint32]bool{mustMailbox(t, s, u.ID, "INBOX").UIDValidity: true}
	seenID := map[int64]bool{}
	prev := uint32(0)
	for i := range 5 {
		m := mustCreate(t, s, u.ID, "reused")
		checkMailbox(t, m)
		if seenUV[m.UIDValidity] {
			t.Errorf("round %d: UIDVALIDITY %d reused", i, m.UIDValidity)
		}
		if m.UIDValidity <= prev {
			t.Errorf("round %d: UIDVALIDITY %d not greater than the name's previous %d", i, m.UIDValidity, prev)
		}
		if seenID[m.ID] {
			t.Errorf("round %d: mailbox id %d reused", i, m.ID)
		}
		seenUV[m.UIDValidity], seenID[m.ID], prev = true, true, m.UIDValidity
		must(t, s.DeleteMailbox(ctx, u.ID, "reused"))
		_, err := s.MailboxByID(ctx, u.ID, m.ID)
		wantErr(t, err, store.ErrNotFound, "MailboxByID of a deleted mailbox")
	}
}

func testDeleteMailbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	leaf := mustCreate(t, s, u.ID, "leaf")
	must(t, s.DeleteMailbox(ctx, u.ID, "leaf"))
	_, err := s.MailboxByName(ctx, u.ID, "leaf")
	wantErr(t, err, store.ErrNotFound, "MailboxByName of a deleted mailbox")
	_, err = s.MailboxByID(ctx, u.ID, leaf.ID)
	wantErr(t, err, store.ErrNotFound, "MailboxByID of a deleted mailbox")
	wantErr(t, s.DeleteMailbox(ctx, u.ID, "leaf"), store.ErrNotFound, "DeleteMailbox twice")
	wantErr(t, s.DeleteMailbox(ctx, u.ID, "INBOX"), store.ErrInvalid, "DeleteMailbox(INBOX)")

	// A mailbox with children becomes a placeholder.
	mustCreate(t, s, u.ID, "p/c")
	p := mustMailbox(t, s, u.ID, "p")
	must(t, s.DeleteMailbox(ctx, u.ID, "p"))
	ph := mustMailbox(t, s, u.ID, "p")
	if !ph.NoSelect {
		t.Errorf("deleted parent is not \\Noselect: %+v", ph)
	}
	if ph.ID != p.ID {
		t.Errorf("placeholder id %d, want the mailbox's %d", ph.ID, p.ID)
	}
	wantNames(t, s, u.ID, "INBOX", "p (noselect)", "p/c")
	wantErr(t, s.DeleteMailbox(ctx, u.ID, "p"), store.ErrNoSelect, "DeleteMailbox of a placeholder with children")
	// A selectable parent is not removed with its last child.
	mustCreate(t, s, u.ID, "q/c")
	must(t, s.DeleteMailbox(ctx, u.ID, "q/c"))
	wantNames(t, s, u.ID, "INBOX", "p (noselect)", "p/c", "q")
	// INBOX keeps its children: deleting one of them leaves INBOX alone.
	mustCreate(t, s, u.ID, "INBOX/x")
	must(t, s.DeleteMailbox(ctx, u.ID, "INBOX/x"))
	wantNames(t, s, u.ID, "INBOX", "p (noselect)", "p/c", "q")
}

func testDeletePrunesPlaceholders(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	mustCreate(t, s, u.ID, "a/b/c")
	mustCreate(t, s, u.ID, "a/b2")
	must(t, s.DeleteMailbox(ctx, u.ID, "a"))
	must(t, s.DeleteMailbox(ctx, u.ID, "a/b"))
	wantNames(t, s, u.ID, "INBOX", "a (noselect)", "a/b (noselect)", "a/b/c", "a/b2")
	// Deleting a/b/c leaves a/b childless: it goes; a still has a/b2.
	must(t, s.DeleteMailbox(ctx, u.ID, "a/b/c"))
	wantNames(t, s, u.ID, "INBOX", "a (noselect)", "a/b2")
	must(t, s.DeleteMailbox(ctx, u.ID, "a/b2"))
	wantNames(t, s, u.ID, "INBOX")
}

func testCreateOverPlaceholder(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	mustCreate(t, s, u.ID, "p/c")
	old := mustMailbox(t, s, u.ID, "p")
	must(t, s.DeleteMailbox(ctx, u.ID, "p"))
	m, err := s.CreateMailbox(ctx, u.ID, "p", `\Archive`)
	must(t, err)
	checkMailbox(t, m)
	if m.NoSelect || m.SpecialUse != `\Archive` {
		t.Errorf("CreateMailbox over a placeholder = %+v", m)
	}
	if m.UIDValidity <= old.UIDValidity {
		t.Errorf("UIDVALIDITY %d after CREATE over a placeholder, want > %d", m.UIDValidity, old.UIDValidity)
	}
	if m.UIDNext < old.UIDNext {
		t.Errorf("UIDNEXT went back: %d < %d", m.UIDNext, old.UIDNext)
	}
	if got := mustMailbox(t, s, u.ID, "p"); got != m {
		t.Errorf("MailboxByName = %+v, want %+v", got, m)
	}
	if st, err := s.Status(ctx, u.ID, m.ID); err != nil || st.Messages != 0 {
		t.Errorf("Status = %+v, %v", st, err)
	}
	wantNames(t, s, u.ID, "INBOX", "p", "p/c")
	_, err = s.CreateMailbox(ctx, u.ID, "p", "")
	wantErr(t, err, store.ErrExists, "CreateMailbox over a selectable mailbox")
}

func testRename(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	for _, n := range []string{"a/b/c", "a/d", "ab/x", "a-b", "b"} {
		mustCreate(t, s, u.ID, n)
	}
	before := map[string]store.Mailbox{}
	for _, n := range []string{"a", "a/b", "a/b/c", "a/d", "ab", "ab/x", "a-b"} {
		before[n] = mustMailbox(t, s, u.ID, n)
	}
	must(t, s.RenameMailbox(ctx, u.ID, "a", "z"))
	wantNames(t, s, u.ID, "INBOX", "a-b", "ab", "ab/x", "b", "z", "z/b", "z/b/c", "z/d")
	for old, nw := range map[string]string{"a": "z", "a/b": "z/b", "a/b/c": "z/b/c", "a/d": "z/d", "ab": "ab", "ab/x": "ab/x", "a-b": "a-b"} {
		b := before[old]
		got := mustMailbox(t, s, u.ID, nw)
		b.Name = nw
		if got != b {
			t.Errorf("after RENAME a z: %q = %+v, want %+v", nw, got, b)
		}
		byID, err := s.MailboxByID(ctx, u.ID, b.ID)
		if err != nil || byID.Name != nw {
			t.Errorf("MailboxByID(%d) after rename = %+v, %v; want name %q", b.ID, byID, err, nw)
		}
	}
	// Rename a child out of its hierarchy, and a placeholder with its
	// children.
	must(t, s.RenameMailbox(ctx, u.ID, "z/b/c", "c"))
	wantNames(t, s, u.ID, "INBOX", "a-b", "ab", "ab/x", "b", "c", "z", "z/b", "z/d")
	must(t, s.DeleteMailbox(ctx, u.ID, "z"))
	must(t, s.RenameMailbox(ctx, u.ID, "z", "y"))
	wantNames(t, s, u.ID, "INBOX", "a-b", "ab", "ab/x", "b", "c", "y (noselect)", "y/b", "y/d")
	if got := mustMailbox(t, s, u.ID, "y"); got.ID != before["a"].ID {
		t.Errorf("renamed placeholder id %d, want %d", got.ID, before["a"].ID)
	}
	// Rename into a sibling's hierarchy (not into itself).
	must(t, s.RenameMailbox(ctx, u.ID, "ab", "b/ab"))
	wantNames(t, s, u.ID, "INBOX", "a-b", "b", "b/ab", "b/ab/x", "c", "y (noselect)", "y/b", "y/d")
}

func testRenameErrors(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	mustCreate(t, s, u.ID, "a/b")
	mustCreate(t, s, u.ID, "x")
	mustCreate(t, s, u.ID, "p/q")
	must(t, s.DeleteMailbox(ctx, u.ID, "p"))
	wantErr(t, s.RenameMailbox(ctx, u.ID, "a", "a/b/c"), store.ErrInvalid, "RENAME into own child")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "a", "a/new"), store.ErrInvalid, "RENAME into own child")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "a", "a"), store.ErrInvalid, "RENAME to itself")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "a", "x"), store.ErrExists, "RENAME to an existing name")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "x", "a/b"), store.ErrExists, "RENAME to an existing child")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "x", "p"), store.ErrExists, "RENAME to a placeholder")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "x", "INBOX"), store.ErrInvalid, "RENAME to INBOX")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "x", "inbox"), store.ErrInvalid, "RENAME to inbox")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "nope", "new"), store.ErrNotFound, "RENAME of a missing mailbox")
	wantErr(t, s.RenameMailbox(ctx, u.ID+1000, "x", "new"), store.ErrNotFound, "RENAME for an unknown user")
	wantNames(t, s, u.ID, "INBOX", "a", "a/b", "p (noselect)", "p/q", "x")
}

func testRenameParents(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	x := mustCreate(t, s, u.ID, "x")
	must(t, s.RenameMailbox(ctx, u.ID, "x", "n/m/x"))
	wantNames(t, s, u.ID, "INBOX", "n", "n/m", "n/m/x")
	for _, n := range []string{"n", "n/m"} {
		if m := mustMailbox(t, s, u.ID, n); m.NoSelect {
			t.Errorf("parent %q created by RENAME is \\Noselect", n)
		}
	}
	if got := mustMailbox(t, s, u.ID, "n/m/x"); got.ID != x.ID || got.UIDValidity != x.UIDValidity {
		t.Errorf("renamed mailbox %+v, was %+v", got, x)
	}
	// Moving the last child out of a placeholder removes the placeholder.
	must(t, s.DeleteMailbox(ctx, u.ID, "n/m"))
	must(t, s.DeleteMailbox(ctx, u.ID, "n"))
	wantNames(t, s, u.ID, "INBOX", "n (noselect)", "n/m (noselect)", "n/m/x")
	must(t, s.RenameMailbox(ctx, u.ID, "n/m/x", "x"))
	wantNames(t, s, u.ID, "INBOX", "x")
}

func testRenameInbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	child := mustCreate(t, s, u.ID, "INBOX/child")
	must(t, s.RenameMailbox(ctx, u.ID, "inbox", "Old/Inbox"))

	old := mustMailbox(t, s, u.ID, "Old/Inbox")
	if old.ID != inbox.ID || old.UIDValidity != inbox.UIDValidity || old.UIDNext != inbox.UIDNext {
		t.Errorf("renamed INBOX %+v, was %+v", old, inbox)
	}
	nw := mustMailbox(t, s, u.ID, "INBOX")
	checkMailbox(t, nw)
	if nw.ID == inbox.ID || nw.NoSelect {
		t.Errorf("new INBOX %+v, old %+v", nw, inbox)
	}
	if nw.UIDValidity <= inbox.UIDValidity {
		t.Errorf("new INBOX UIDVALIDITY %d, want > %d", nw.UIDValidity, inbox.UIDValidity)
	}
	if st, err := s.Status(ctx, u.ID, nw.ID); err != nil || st.Messages != 0 {
		t.Errorf("Status of new INBOX = %+v, %v", st, err)
	}
	if got := mustMailbox(t, s, u.ID, "INBOX/child"); got != child {
		t.Errorf("INBOX's child moved or changed: %+v, was %+v", got, child)
	}
	wantNames(t, s, u.ID, "Archive", "Drafts", "INBOX", "INBOX/child", "Junk", "Old", "Old/Inbox", "Sent", "Trash")

	// INBOX can be renamed to a child of itself: its children stay.
	must(t, s.RenameMailbox(ctx, u.ID, "INBOX", "INBOX/old"))
	if got := mustMailbox(t, s, u.ID, "INBOX/old"); got.ID != nw.ID {
		t.Errorf("INBOX/old has id %d, want %d", got.ID, nw.ID)
	}
	wantNames(t, s, u.ID, "Archive", "Drafts", "INBOX", "INBOX/child", "INBOX/old", "Junk", "Old", "Old/Inbox", "Sent", "Trash")
	wantErr(t, s.RenameMailbox(ctx, u.ID, "INBOX", "Sent"), store.ErrExists, "RENAME INBOX to an existing name")
}

// ---- subscriptions ----

func testSubscriptions(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	must(t, s.Subscribe(ctx, u.ID, "does/not/exist"))
	must(t, s.Subscribe(ctx, u.ID, "B"))
	must(t, s.Subscribe(ctx, u.ID, "a"))
	must(t, s.Subscribe(ctx, u.ID, "a")) // again: no error, listed once
	if got := subs(t, s, u.ID); !slices.Equal(got, []string{"B", "a", "does/not/exist"}) {
		t.Errorf("Subscriptions = %q", got)
	}
	wantNames(t, s, u.ID, "INBOX") // subscribing creates nothing
	mustCreate(t, s, u.ID, "a")
	must(t, s.DeleteMailbox(ctx, u.ID, "a"))
	mustCreate(t, s, u.ID, "m")
	must(t, s.Subscribe(ctx, u.ID, "m"))
	must(t, s.RenameMailbox(ctx, u.ID, "m", "m2"))
	if got := subs(t, s, u.ID); !slices.Equal(got, []string{"B", "a", "does/not/exist", "m"}) {
		t.Errorf("Subscriptions after DELETE and RENAME = %q", got)
	}
	must(t, s.Unsubscribe(ctx, u.ID, "a"))
	must(t, s.Unsubscribe(ctx, u.ID, "does/not/exist"))
	wantErr(t, s.Unsubscribe(ctx, u.ID, "a"), store.ErrNotFound, "Unsubscribe twice")
	wantErr(t, s.Unsubscribe(ctx, u.ID, "never"), store.ErrNotFound, "Unsubscribe of a name never subscribed")
	wantErr(t, s.Unsubscribe(ctx, u.ID, "b"), store.ErrNotFound, "Unsubscribe is case-sensitive")
	wantErr(t, s.Subscribe(ctx, u.ID+1000, "x"), store.ErrNotFound, "Subscribe for an unknown user")
	if got := subs(t, s, u.ID); !slices.Equal(got, []string{"B", "m"}) {
		t.Errorf("Subscriptions = %q", got)
	}
}

// ---- status and recent ----

func testStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	other := mustCreateUser(t, s, "other", nil)
	for _, m := range append(must2(s.Mailboxes(ctx, u.ID))(t), mustCreate(t, s, u.ID, "x/y")) {
		st, err := s.Status(ctx, u.ID, m.ID)
		must(t, err)
		if st.Mailbox != m {
			t.Errorf("Status(%q).Mailbox = %+v, want %+v", m.Name, st.Mailbox, m)
		}
		if st.Messages != 0 || st.Unseen != 0 || st.Recent != 0 || st.Size != 0 {
			t.Errorf("Status(%q) counters of an empty mailbox: %+v", m.Name, st)
		}
	}
	_, err := s.Status(ctx, other.ID, mustMailbox(t, s, u.ID, "INBOX").ID)
	wantErr(t, err, store.ErrNotFound, "Status of another user's mailbox")
	_, err = s.Status(ctx, u.ID, 1<<40)
	wantErr(t, err, store.ErrNotFound, "Status of an unknown mailbox")
	must(t, s.DeleteMailbox(ctx, u.ID, "x"))
	_, err = s.Status(ctx, u.ID, mustMailbox(t, s, u.ID, "x").ID)
	wantErr(t, err, store.ErrNoSelect, "Status of a placeholder")
}

func must2[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		must(t, err)
		return v
	}
}

func testClaimRecent(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	other := mustCreateUser(t, s, "other", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	for range 3 {
		from, to, err := s.ClaimRecent(ctx, u.ID, inbox.ID)
		must(t, err)
		if from != to || to != inbox.UIDNext {
			t.Errorf("ClaimRecent on an empty mailbox = [%d, %d), want [%d, %d)", from, to, inbox.UIDNext, inbox.UIDNext)
		}
	}
	m := mustMailbox(t, s, u.ID, "INBOX")
	if m.FirstRecentUID != m.UIDNext {
		t.Errorf("after ClaimRecent FirstRecentUID %d, UIDNext %d", m.FirstRecentUID, m.UIDNext)
	}
	if st, err := s.Status(ctx, u.ID, m.ID); err != nil || st.Recent != 0 {
		t.Errorf("Status after ClaimRecent = %+v, %v", st, err)
	}
	_, _, err := s.ClaimRecent(ctx, other.ID, inbox.ID)
	wantErr(t, err, store.ErrNotFound, "ClaimRecent on another user's mailbox")
	_, _, err = s.ClaimRecent(ctx, u.ID, 1<<40)
	wantErr(t, err, store.ErrNotFound, "ClaimRecent on an unknown mailbox")
	mustCreate(t, s, u.ID, "p/c")
	must(t, s.DeleteMailbox(ctx, u.ID, "p"))
	_, _, err = s.ClaimRecent(ctx, u.ID, mustMailbox(t, s, u.ID, "p").ID)
	wantErr(t, err, store.ErrNoSelect, "ClaimRecent on a placeholder")

	// Concurrent claims on an empty mailbox all see an empty range.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			from, to, err := s.ClaimRecent(ctx, u.ID, inbox.ID)
			if err != nil || from != to {
				t.Errorf("concurrent ClaimRecent = [%d, %d), %v", from, to, err)
			}
		})
	}
	wg.Wait()
}

// ---- isolation and concurrency ----

func testIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreateUser(t, s, "a", store.DefaultMailboxes())
	b := mustCreateUser(t, s, "b", store.DefaultMailboxes())
	am := mustCreate(t, s, a.ID, "shared/name")
	bm := mustCreate(t, s, b.ID, "shared/name")
	if am.ID == bm.ID || am.UIDValidity == bm.UIDValidity {
		t.Errorf("two users' mailboxes share id or UIDVALIDITY: %+v %+v", am, bm)
	}
	_, err := s.MailboxByID(ctx, b.ID, am.ID)
	wantErr(t, err, store.ErrNotFound, "MailboxByID of another user's mailbox")
	_, err = s.Status(ctx, b.ID, am.ID)
	wantErr(t, err, store.ErrNotFound, "Status of another user's mailbox")

	must(t, s.RenameMailbox(ctx, a.ID, "shared", "mine"))
	must(t, s.DeleteMailbox(ctx, a.ID, "Trash"))
	must(t, s.Unsubscribe(ctx, a.ID, "Sent"))
	must(t, s.Subscribe(ctx, a.ID, "only-a"))
	mustCreate(t, s, a.ID, "only-a")
	wantNames(t, s, b.ID, "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "shared", "shared/name")
	wantNames(t, s, a.ID, "Archive", "Drafts", "INBOX", "Junk", "Sent", "mine", "mine/name", "only-a")
	if got := subs(t, s, b.ID); !slices.Equal(got, []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}) {
		t.Errorf("b's subscriptions = %q", got)
	}
	if got := mustMailbox(t, s, b.ID, "shared/name"); got != bm {
		t.Errorf("b's mailbox changed: %+v, was %+v", got, bm)
	}
	// b may create what a has, and vice versa.
	mustCreate(t, s, b.ID, "only-a")
	mustCreate(t, s, a.ID, "shared")
}

func testConcurrency(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	const workers, rounds = 20, 8
	var wg sync.WaitGroup
	errc := make(chan error, workers*4)
	for w := range workers {
		wg.Go(func() {
			fail := func(err error) { errc <- fmt.Errorf("worker %d: %w", w, err) }
			top := fmt.Sprintf("w%02d", w)
			// Every other worker also creates its own account.
			uid := u.ID
			if w%2 == 1 {
				nu, err := s.CreateUser(ctx, fmt.Sprintf("user%02d", w), "h", store.DefaultMailboxes())
				if err != nil {
					fail(err)
					return
				}
				uid = nu.ID
			}
			for r := range rounds {
				name := fmt.Sprintf("%s/m%d/sub", top, r)
				m, err := s.CreateMailbox(ctx, uid, name, "")
				if err != nil {
					fail(err)
					return
				}
				if err := s.Subscribe(ctx, uid, name); err != nil {
					fail(err)
					return
				}
				renamed := fmt.Sprintf("%s/r%d", top, r)
				if err := s.RenameMailbox(ctx, uid, fmt.Sprintf("%s/m%d", top, r), renamed); err != nil {
					fail(err)
					return
				}
				if got, err := s.MailboxByID(ctx, uid, m.ID); err != nil || got.Name != renamed+"/sub" {
					fail(fmt.Errorf("MailboxByID after rename = %+v, %v", got, err))
					return
				}
				if _, err := s.Status(ctx, uid, m.ID); err != nil {
					fail(err)
					return
				}
				if _, _, err := s.ClaimRecent(ctx, uid, m.ID); err != nil {
					fail(err)
					return
				}
				if _, err := s.Mailboxes(ctx, uid); err != nil {
					fail(err)
					return
				}
				if r%2 == 0 {
					// Delete the hierarchy: the parent first (it becomes a
					// placeholder), then the child (both go).
					if err := s.DeleteMailbox(ctx, uid, renamed); err != nil {
						fail(err)
						return
					}
					if err := s.DeleteMailbox(ctx, uid, renamed+"/sub"); err != nil {
						fail(err)
						return
					}
					if err := s.Unsubscribe(ctx, uid, name); err != nil {
						fail(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	users, err := s.Users(ctx)
	must(t, err)
	if len(users) != 1+workers/2 {
		t.Errorf("%d users, want %d", len(users), 1+workers/2)
	}
	uvs := map[uint32]string{}
	ids := map[int64]string{}
	var want []string
	for w := range workers {
		if w%2 == 0 {
			want = append(want, fmt.Sprintf("w%02d", w))
			for r := 1; r < rounds; r += 2 {
				want = append(want, fmt.Sprintf("w%02d/r%d", w, r), fmt.Sprintf("w%02d/r%d/sub", w, r))
			}
		}
	}
	want = append(want, "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash")
	slices.Sort(want)
	wantNames(t, s, u.ID, want...)
	for _, usr := range users {
		mbs, err := s.Mailboxes(ctx, usr.ID)
		must(t, err)
		for _, m := range mbs {
			checkMailbox(t, m)
			if n, dup := uvs[m.UIDValidity]; dup {
				t.Errorf("UIDVALIDITY %d shared by %q and %q", m.UIDValidity, n, m.Name)
			}
			if n, dup := ids[m.ID]; dup {
				t.Errorf("id %d shared by %q and %q", m.ID, n, m.Name)
			}
			uvs[m.UIDValidity], ids[m.ID] = usr.Name+":"+m.Name, usr.Name+":"+m.Name
		}
		for _, sub := range subs(t, s, usr.ID) {
			if strings.HasPrefix(sub, "w") && !strings.Contains(sub, "/m1/") && !strings.Contains(sub, "/m3/") &&
				!strings.Contains(sub, "/m5/") && !strings.Contains(sub, "/m7/") {
				t.Errorf("%s: unexpected subscription %q", usr.Name, sub)
			}
		}
	}
}

func testCheck(t *testing.T, s store.Store) {
	ctx := context.Background()
	problems, err := s.Check(ctx)
	if err != nil || problems != nil {
		t.Errorf("Check of an empty store = %q, %v", problems, err)
	}
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	mustCreate(t, s, u.ID, "a/b/c")
	must(t, s.DeleteMailbox(ctx, u.ID, "a/b"))
	must(t, s.RenameMailbox(ctx, u.ID, "INBOX", "a/b/old"))
	must(t, s.Subscribe(ctx, u.ID, "ghost"))
	problems, err = s.Check(ctx)
	if err != nil || problems != nil {
		t.Errorf("Check of a healthy store = %q, %v", problems, err)
	}
}

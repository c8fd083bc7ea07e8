package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// sessionTests are the store.Sessions half of the suite.
func sessionTests() []struct {
	name string
	fn   func(t *testing.T, s store.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SessionsSaveLoad", testSessionsSaveLoad},
		{"SessionsOwnership", testSessionsOwnership},
		{"SessionsUserList", testSessionsUserList},
		{"SessionsExpire", testSessionsExpire},
		{"SessionsDeleteUser", testSessionsDeleteUser},
		{"SessionsClaim", testSessionsClaim},
		{"SessionsConditional", testSessionsConditional},
		{"SessionsNodes", testSessionsNodes},
		{"SessionsClaimRace", testSessionsClaimRace},
		{"SessionsLock", testSessionsLock},
	}
}

// t0 is a fixed time with nanoseconds, to check the store keeps them.
var sessT0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func sessRec(userID int64, id, ip string, created, active time.Time, state string) store.SessionRecord {
	return store.SessionRecord{ID: id, UserID: userID, ClientIP: ip, Created: created, LastActive: active, State: []byte(state)}
}

func wantSession(t *testing.T, got, want store.SessionRecord) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.ClientIP != want.ClientIP ||
		!got.Created.Equal(want.Created) || !got.LastActive.Equal(want.LastActive) || !bytes.Equal(got.State, want.State) ||
		got.Owner != want.Owner || got.Generation != want.Generation {
		t.Errorf("session:\n got %+v\nwant %+v", got, want)
	}
}

func sessionIDs(t *testing.T, s store.Store, userID int64) []string {
	t.Helper()
	l, err := s.UserSessions(context.Background(), userID)
	must(t, err)
	var ids []string
	for _, r := range l {
		ids = append(ids, r.ID)
	}
	return ids
}

func wantCount(t *testing.T, s store.Store, want int) {
	t.Helper()
	n, err := s.CountSessions(context.Background())
	must(t, err)
	if n != want {
		t.Errorf("CountSessions = %d, want %d", n, want)
	}
}

func testSessionsSaveLoad(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	wantCount(t, s, 0)
	_, err := s.LoadSession(ctx, u.ID, "nope")
	wantErr(t, err, store.ErrNotFound, "LoadSession of an unknown id")
	wantErr(t, s.DeleteSession(ctx, u.ID, "nope"), store.ErrNotFound, "DeleteSession of an unknown id")

	state := "\x00\xff{\"state\":3}" + string(make([]byte, 10000))
	rec := sessRec(u.ID, "abcd1234", "192.0.2.1", sessT0, sessT0.Add(time.Second), state)
	must(t, s.SaveSession(ctx, rec))
	got, err := s.LoadSession(ctx, u.ID, rec.ID)
	must(t, err)
	wantSession(t, got, rec)
	wantCount(t, s, 1)

	// Upsert: same key, new values, still one record.
	rec2 := sessRec(u.ID, rec.ID, "2001:db8::1", sessT0, sessT0.Add(time.Hour), "v2")
	must(t, s.SaveSession(ctx, rec2))
	got, err = s.LoadSession(ctx, u.ID, rec.ID)
	must(t, err)
	wantSession(t, got, rec2)
	wantCount(t, s, 1)

	// An empty state round-trips as empty, not as an error.
	rec3 := sessRec(u.ID, "empty", "", sessT0, sessT0, "")
	rec3.State = nil
	must(t, s.SaveSession(ctx, rec3))
	got, err = s.LoadSession(ctx, u.ID, "empty")
	must(t, err)
	if len(got.State) != 0 {
		t.Errorf("empty state loaded as %q", got.State)
	}
	wantCount(t, s, 2)

	wantErr(t, s.SaveSession(ctx, sessRec(u.ID, "", "", sessT0, sessT0, "")), store.ErrInvalid, "SaveSession with an empty id")
	wantErr(t, s.SaveSession(ctx, sessRec(u.ID+1000, "x", "", sessT0, sessT0, "")), store.ErrNotFound, "SaveSession for an unknown user")

	must(t, s.DeleteSession(ctx, u.ID, rec.ID))
	_, err = s.LoadSession(ctx, u.ID, rec.ID)
	wantErr(t, err, store.ErrNotFound, "LoadSession after DeleteSession")
	wantErr(t, s.DeleteSession(ctx, u.ID, rec.ID), store.ErrNotFound, "DeleteSession twice")
	wantCount(t, s, 1)
}

func testSessionsOwnership(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := mustCreateUser(t, s, "alice", nil)
	bob := mustCreateUser(t, s, "bob", nil)
	a := sessRec(alice.ID, "shared", "192.0.2.1", sessT0, sessT0, "alice's")
	must(t, s.SaveSession(ctx, a))

	// Bob cannot see, delete or list Alice's session.
	_, err := s.LoadSession(ctx, bob.ID, "shared")
	wantErr(t, err, store.ErrNotFound, "LoadSession of another user's id")
	wantErr(t, s.DeleteSession(ctx, bob.ID, "shared"), store.ErrNotFound, "DeleteSession of another user's id")
	if ids := sessionIDs(t, s, bob.ID); len(ids) != 0 {
		t.Errorf("bob lists %q", ids)
	}

	// The same id under Bob is another session (the draft, §3.1); saving
	// it leaves Alice's alone.
	b := sessRec(bob.ID, "shared", "192.0.2.2", sessT0.Add(time.Minute), sessT0.Add(time.Minute), "bob's")
	must(t, s.SaveSession(ctx, b))
	got, err := s.LoadSession(ctx, alice.ID, "shared")
	must(t, err)
	wantSession(t, got, a)
	got, err = s.LoadSession(ctx, bob.ID, "shared")
	must(t, err)
	wantSession(t, got, b)
	wantCount(t, s, 2)
	must(t, s.DeleteSession(ctx, bob.ID, "shared"))
	got, err = s.LoadSession(ctx, alice.ID, "shared")
	must(t, err)
	wantSession(t, got, a)
}

func testSessionsUserList(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	other := mustCreateUser(t, s, "bob", nil)
	if l, err := s.UserSessions(ctx, u.ID); err != nil || len(l) != 0 {
		t.Errorf("UserSessions of a user without sessions: %v, %v", l, err)
	}
	if l, err := s.UserSessions(ctx, 987654); len(l) != 0 || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Errorf("UserSessions of an unknown user: %v, %v", l, err)
	}
	// Saved out of order; listed by LastActive.
	for i, off := range []int{3, 1, 4, 0, 2} {
		ip := "192.0.2.1"
		if i%2 == 1 {
			ip = "192.0.2.9"
		}
		must(t, s.SaveSession(ctx, sessRec(u.ID, fmt.Sprintf("s%d", off), ip, sessT0,
			sessT0.Add(time.Duration(off)*time.Nanosecond), "state")))
	}
	must(t, s.SaveSession(ctx, sessRec(other.ID, "o", "192.0.2.1", sessT0, sessT0, "")))
	if got, want := sessionIDs(t, s, u.ID), []string{"s0", "s1", "s2", "s3", "s4"}; !slices.Equal(got, want) {
		t.Errorf("UserSessions order %q, want %q", got, want)
	}
	l, err := s.UserSessions(ctx, u.ID)
	must(t, err)
	for _, r := range l {
		if r.UserID != u.ID || !r.Created.Equal(sessT0) || r.ClientIP == "" {
			t.Errorf("UserSessions metadata: %+v", r)
		}
	}
	// Touching one moves it to the end.
	must(t, s.SaveSession(ctx, sessRec(u.ID, "s0", "192.0.2.9", sessT0, sessT0.Add(time.Hour), "state")))
	if got, want := sessionIDs(t, s, u.ID), []string{"s1", "s2", "s3", "s4", "s0"}; !slices.Equal(got, want) {
		t.Errorf("UserSessions order after touch %q, want %q", got, want)
	}
	for ip, want := range map[string]int{"192.0.2.1": 4, "192.0.2.9": 2, "198.51.100.1": 0} {
		if n, err := s.CountIPSessions(ctx, ip); err != nil || n != want {
			t.Errorf("CountIPSessions(%s) = %d, %v; want %d", ip, n, err, want)
		}
	}
	// By address: oldest first, ties by user then id, without state.
	// 192.0.2.1 holds s3 (t0+3), s4 (t0+4), s2 (t0+2) of u and o (t0) of
	// other; s0 moved to 192.0.2.9.
	ipList := func(ip string, limit int) []string {
		t.Helper()
		l, err := s.IPSessions(ctx, ip, limit)
		must(t, err)
		var ids []string
		for _, r := range l {
			if r.State != nil || r.ClientIP != ip || r.LastActive.IsZero() || r.UserID == 0 {
				t.Errorf("IPSessions(%s) record %+v", ip, r)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got, want := ipList("192.0.2.1", 0), []string{"o", "s2", "s3", "s4"}; !slices.Equal(got, want) {
		t.Errorf("IPSessions(192.0.2.1) %q, want %q", got, want)
	}
	if got, want := ipList("192.0.2.1", 2), []string{"o", "s2"}; !slices.Equal(got, want) {
		t.Errorf("IPSessions(192.0.2.1, 2) %q, want %q", got, want)
	}
	if got, want := ipList("192.0.2.9", 0), []string{"s1", "s0"}; !slices.Equal(got, want) {
		t.Errorf("IPSessions(192.0.2.9) %q, want %q", got, want)
	}
	if got := ipList("198.51.100.1", 0); len(got) != 0 {
		t.Errorf("IPSessions of an unused address: %q", got)
	}
	wantCount(t, s, 6)
}

func testSessionsExpire(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	v := mustCreateUser(t, s, "bob", nil)
	for i := range 10 {
		must(t, s.SaveSession(ctx, sessRec(u.ID, fmt.Sprintf("a%d", i), "", sessT0, sessT0.Add(time.Duration(i)*time.Minute), "x")))
		must(t, s.SaveSession(ctx, sessRec(v.ID, fmt.Sprintf("b%d", i), "", sessT0, sessT0.Add(time.Duration(i)*time.Minute), "y")))
	}
	n, err := s.ExpireSessions(ctx, sessT0)
	if err != nil || n != 0 {
		t.Errorf("ExpireSessions(t0) = %d, %v; want 0 (strictly before)", n, err)
	}
	n, err = s.ExpireSessions(ctx, sessT0.Add(3*time.Minute))
	if err != nil || n != 6 {
		t.Errorf("ExpireSessions(t0+3m) = %d, %v; want 6", n, err)
	}
	if got, want := sessionIDs(t, s, u.ID), []string{"a3", "a4", "a5", "a6", "a7", "a8", "a9"}; !slices.Equal(got, want) {
		t.Errorf("after expiry %q, want %q", got, want)
	}
	_, err = s.LoadSession(ctx, u.ID, "a2")
	wantErr(t, err, store.ErrNotFound, "LoadSession of an expired session")
	wantCount(t, s, 14)
	n, err = s.ExpireSessions(ctx, sessT0.Add(time.Hour))
	if err != nil || n != 14 {
		t.Errorf("ExpireSessions(all) = %d, %v; want 14", n, err)
	}
	wantCount(t, s, 0)
}

func testSessionsDeleteUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "doomed", nil)
	other := mustCreateUser(t, s, "other", nil)
	for i := range 3 {
		must(t, s.SaveSession(ctx, sessRec(u.ID, fmt.Sprint("d", i), "192.0.2.1", sessT0, sessT0, "x")))
	}
	must(t, s.SaveSession(ctx, sessRec(other.ID, "keep", "192.0.2.1", sessT0, sessT0, "y")))
	must(t, s.DeleteUser(ctx, u.ID))
	_, err := s.LoadSession(ctx, u.ID, "d0")
	wantErr(t, err, store.ErrNotFound, "LoadSession after DeleteUser")
	if l, err := s.UserSessions(ctx, u.ID); len(l) != 0 || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Errorf("UserSessions after DeleteUser: %v, %v", l, err)
	}
	wantCount(t, s, 1)
	if n, err := s.CountIPSessions(ctx, "192.0.2.1"); err != nil || n != 1 {
		t.Errorf("CountIPSessions after DeleteUser = %d, %v; want 1", n, err)
	}
	if _, err := s.LoadSession(ctx, other.ID, "keep"); err != nil {
		t.Errorf("other user's session after DeleteUser: %v", err)
	}
	// A recreated account with the same name inherits nothing.
	u2 := mustCreateUser(t, s, "doomed", nil)
	if ids := sessionIDs(t, s, u2.ID); len(ids) != 0 {
		t.Errorf("recreated user inherited sessions %q", ids)
	}
}

// reopenSessionsWrite writes the sessions RunReopen checks after reopening.
func reopenSessionsWrite(t *testing.T, s store.Store, alice, bob store.User) []store.SessionRecord {
	ctx := context.Background()
	recs := []store.SessionRecord{
		sessRec(alice.ID, "r1", "192.0.2.1", sessT0, sessT0.Add(2*time.Second), "\x00alice state\xff"),
		sessRec(alice.ID, "r2", "2001:db8::1", sessT0, sessT0.Add(time.Second), ""),
		sessRec(bob.ID, "r1", "192.0.2.2", sessT0, sessT0.Add(3*time.Second), "bob"),
	}
	recs[1].Owner, recs[1].Generation = "node-a", 7
	for _, r := range recs {
		must(t, s.SaveSession(ctx, r))
	}
	must(t, s.SaveSession(ctx, sessRec(alice.ID, "gone", "", sessT0, sessT0, "")))
	must(t, s.DeleteSession(ctx, alice.ID, "gone"))
	return recs
}

// reopenSessionsCheck verifies them on the reopened store.
func reopenSessionsCheck(t *testing.T, s store.Store, recs []store.SessionRecord) {
	ctx := context.Background()
	for _, want := range recs {
		got, err := s.LoadSession(ctx, want.UserID, want.ID)
		if err != nil {
			t.Errorf("session %d/%s after reopen: %v", want.UserID, want.ID, err)
			continue
		}
		if want.State == nil {
			want.State = []byte{}
		}
		wantSession(t, got, want)
	}
	_, err := s.LoadSession(ctx, recs[0].UserID, "gone")
	wantErr(t, err, store.ErrNotFound, "deleted session after reopen")
	if got, want := sessionIDs(t, s, recs[0].UserID), []string{"r2", "r1"}; !slices.Equal(got, want) {
		t.Errorf("UserSessions after reopen %q, want %q", got, want)
	}
	wantCount(t, s, len(recs))
}

func loadSess(t *testing.T, s store.Store, userID int64, id string) store.SessionRecord {
	t.Helper()
	rec, err := s.LoadSession(context.Background(), userID, id)
	must(t, err)
	return rec
}

// testSessionsClaim: a claim makes the node the owner, raises the
// generation by one and returns the record as it was.
func testSessionsClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	other := mustCreateUser(t, s, "bob", nil)
	rec := sessRec(u.ID, "s1", "192.0.2.1", sessT0, sessT0.Add(time.Minute), "state")
	must(t, s.SaveSession(ctx, rec))
	if got := loadSess(t, s, u.ID, "s1"); got.Owner != "" || got.Generation != 0 || !got.OwnerBeat.IsZero() {
		t.Errorf("a saved record without owner: %+v", got)
	}

	// Not stale (LastActive is not before touchBefore): kept.
	old, err := s.ClaimSession(ctx, u.ID, "s1", "node-a", sessT0, sessT0.Add(time.Hour))
	must(t, err)
	wantSession(t, old, rec)
	want := rec
	want.Owner, want.Generation = "node-a", 1
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)

	// Claimed by another node: the previous owner and generation come
	// back; LastActive before touchBefore becomes now.
	now := sessT0.Add(2 * time.Hour)
	old, err = s.ClaimSession(ctx, u.ID, "s1", "node-b", sessT0.Add(time.Hour), now)
	must(t, err)
	wantSession(t, old, want)
	want.Owner, want.Generation, want.LastActive = "node-b", 2, now
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)

	// The same node again still counts.
	old, err = s.ClaimSession(ctx, u.ID, "s1", "node-b", time.Time{}, time.Time{})
	must(t, err)
	if old.Owner != "node-b" || old.Generation != 2 || !old.LastActive.Equal(now) {
		t.Errorf("claim by the owner returned %+v", old)
	}
	if got := loadSess(t, s, u.ID, "s1"); got.Generation != 3 || got.Owner != "node-b" || !got.LastActive.Equal(now) {
		t.Errorf("after the owner's claim: %+v", got)
	}

	_, err = s.ClaimSession(ctx, u.ID, "nope", "node-a", time.Time{}, time.Time{})
	wantErr(t, err, store.ErrNotFound, "ClaimSession of an unknown id")
	_, err = s.ClaimSession(ctx, other.ID, "s1", "node-a", time.Time{}, time.Time{})
	wantErr(t, err, store.ErrNotFound, "ClaimSession of another user's id")
	if got := loadSess(t, s, u.ID, "s1"); got.Generation != 3 {
		t.Errorf("another user's claim changed the generation to %d", got.Generation)
	}

	// SaveSession writes owner and generation as given.
	rec2 := sessRec(u.ID, "s2", "", sessT0, sessT0, "x")
	rec2.Owner, rec2.Generation = "node-c", 41
	must(t, s.SaveSession(ctx, rec2))
	wantSession(t, loadSess(t, s, u.ID, "s2"), rec2)
	wantCount(t, s, 2)
}

// testSessionsConditional: UpdateSession and DeleteSessionIf write only
// at the generation given.
func testSessionsConditional(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	rec := sessRec(u.ID, "s1", "192.0.2.1", sessT0, sessT0, "v1")
	rec.Owner, rec.Generation = "node-a", 5
	must(t, s.SaveSession(ctx, rec))

	// A checkpoint at the current generation.
	up := store.SessionRecord{UserID: u.ID, ID: "s1", Generation: 5, LastActive: sessT0.Add(time.Second), State: []byte("v2")}
	must(t, s.UpdateSession(ctx, up, false))
	want := rec
	want.LastActive, want.State = up.LastActive, up.State
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)

	// A nil state keeps the stored one; an empty one is written.
	up.LastActive, up.State = sessT0.Add(2*time.Second), nil
	must(t, s.UpdateSession(ctx, up, false))
	want.LastActive = up.LastActive
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)
	up.State = []byte{}
	must(t, s.UpdateSession(ctx, up, false))
	want.State = []byte{}
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)

	// Another node claims it: the old generation can write nothing.
	_, err := s.ClaimSession(ctx, u.ID, "s1", "node-b", time.Time{}, time.Time{})
	must(t, err)
	stale := up
	stale.State, stale.LastActive = []byte("stale"), sessT0.Add(time.Hour)
	wantErr(t, s.UpdateSession(ctx, stale, false), store.ErrStale, "UpdateSession at an old generation")
	wantErr(t, s.UpdateSession(ctx, stale, true), store.ErrStale, "release at an old generation")
	wantErr(t, s.DeleteSessionIf(ctx, u.ID, "s1", 5), store.ErrStale, "DeleteSessionIf at an old generation")
	want.Owner, want.Generation = "node-b", 6
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)

	// Release (a detach) at the current generation: no owner, same
	// generation.
	rel := store.SessionRecord{UserID: u.ID, ID: "s1", Generation: 6, LastActive: sessT0.Add(3 * time.Second), State: []byte("v3")}
	must(t, s.UpdateSession(ctx, rel, true))
	want.Owner, want.LastActive, want.State = "", rel.LastActive, rel.State
	wantSession(t, loadSess(t, s, u.ID, "s1"), want)

	wantErr(t, s.UpdateSession(ctx, store.SessionRecord{UserID: u.ID, ID: "nope", Generation: 0}, false),
		store.ErrNotFound, "UpdateSession of an unknown id")
	wantErr(t, s.DeleteSessionIf(ctx, u.ID, "nope", 0), store.ErrNotFound, "DeleteSessionIf of an unknown id")
	wantErr(t, s.UpdateSession(ctx, store.SessionRecord{UserID: u.ID + 1000, ID: "s1", Generation: 6}, false),
		store.ErrNotFound, "UpdateSession of another user's id")
	must(t, s.DeleteSessionIf(ctx, u.ID, "s1", 6))
	_, err = s.LoadSession(ctx, u.ID, "s1")
	wantErr(t, err, store.ErrNotFound, "LoadSession after DeleteSessionIf")
	wantCount(t, s, 0)
}

// testSessionsNodes: heartbeats show in the records of the sessions a
// node owns; a node starting again releases its sessions.
func testSessionsNodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	for i, owner := range []string{"node-a", "node-b", "", "node-a", "ghost"} {
		rec := sessRec(u.ID, fmt.Sprint("s", i), "192.0.2.1", sessT0, sessT0.Add(time.Duration(i)*time.Second), "x")
		rec.Owner, rec.Generation = owner, uint64(i+1)
		must(t, s.SaveSession(ctx, rec))
	}
	beatA, beatB := sessT0.Add(time.Minute+1), sessT0.Add(2*time.Minute+2)
	must(t, s.Heartbeat(ctx, "node-a", sessT0))
	must(t, s.Heartbeat(ctx, "node-a", beatA)) // replaces
	must(t, s.Heartbeat(ctx, "node-b", beatB))
	wantErr(t, s.Heartbeat(ctx, "", sessT0), store.ErrInvalid, "Heartbeat of an unnamed node")
	wantBeats := map[string]time.Time{"s0": beatA, "s1": beatB, "s2": {}, "s3": beatA, "s4": {}}
	check := func(what string, l []store.SessionRecord) {
		t.Helper()
		if len(l) != len(wantBeats) {
			t.Fatalf("%s: %d records", what, len(l))
		}
		for _, r := range l {
			if !r.OwnerBeat.Equal(wantBeats[r.ID]) {
				t.Errorf("%s: %s (owner %q) beat %v, want %v", what, r.ID, r.Owner, r.OwnerBeat, wantBeats[r.ID])
			}
			var i int
			fmt.Sscanf(r.ID, "s%d", &i)
			if r.Generation != uint64(i+1) {
				t.Errorf("%s: %s generation %d", what, r.ID, r.Generation)
			}
		}
	}
	l, err := s.UserSessions(ctx, u.ID)
	must(t, err)
	check("UserSessions", l)
	l, err = s.IPSessions(ctx, "192.0.2.1", 0)
	must(t, err)
	check("IPSessions", l)
	for id, beat := range wantBeats {
		if got := loadSess(t, s, u.ID, id); !got.OwnerBeat.Equal(beat) {
			t.Errorf("LoadSession %s: beat %v, want %v", id, got.OwnerBeat, beat)
		}
	}
	old, err := s.ClaimSession(ctx, u.ID, "s1", "node-a", time.Time{}, time.Time{})
	must(t, err)
	if old.Owner != "node-b" || !old.OwnerBeat.Equal(beatB) {
		t.Errorf("ClaimSession returned owner %q beat %v, want node-b's %v", old.Owner, old.OwnerBeat, beatB)
	}

	nodeIDs := func(node string) []string {
		t.Helper()
		l, err := s.NodeSessions(ctx, node)
		must(t, err)
		var ids []string
		for _, r := range l {
			if r.Owner != node || r.UserID != u.ID || r.State != nil || r.Generation == 0 {
				t.Errorf("NodeSessions(%s) record %+v", node, r)
			}
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		return ids
	}
	if got, want := nodeIDs("node-a"), []string{"s0", "s1", "s3"}; !slices.Equal(got, want) {
		t.Errorf("NodeSessions(node-a) %q, want %q", got, want)
	}
	if got := nodeIDs("node-b"); len(got) != 0 {
		t.Errorf("NodeSessions(node-b) after its session was claimed: %q", got)
	}
	if got := nodeIDs(""); len(got) != 0 {
		t.Errorf("NodeSessions of no node: %q", got)
	}

	n, err := s.ReleaseNodeSessions(ctx, "node-a")
	if err != nil || n != 3 {
		t.Errorf("ReleaseNodeSessions(node-a) = %d, %v; want 3", n, err)
	}
	for id, owner := range map[string]string{"s0": "", "s1": "", "s2": "", "s3": "", "s4": "ghost"} {
		got := loadSess(t, s, u.ID, id)
		if got.Owner != owner || !bytes.Equal(got.State, []byte("x")) {
			t.Errorf("after release %s: owner %q state %q, want %q", id, got.Owner, got.State, owner)
		}
		if owner == "" && !got.OwnerBeat.IsZero() {
			t.Errorf("after release %s: beat %v", id, got.OwnerBeat)
		}
	}
	if got := loadSess(t, s, u.ID, "s1"); got.Generation != 3 {
		t.Errorf("release changed the generation: %d", got.Generation)
	}
	if n, err := s.ReleaseNodeSessions(ctx, "node-a"); err != nil || n != 0 {
		t.Errorf("ReleaseNodeSessions again = %d, %v", n, err)
	}
	if got := nodeIDs("node-a"); len(got) != 0 {
		t.Errorf("NodeSessions(node-a) after the release: %q", got)
	}
	wantCount(t, s, 5)
}

// testSessionsClaimRace: concurrent claims of one session are atomic:
// each sees a distinct previous generation, and the last is the count.
func testSessionsClaimRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "alice", nil)
	must(t, s.SaveSession(ctx, sessRec(u.ID, "s", "", sessT0, sessT0, "x")))
	const n = 20
	gens := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			old, err := s.ClaimSession(ctx, u.ID, "s", fmt.Sprint("node-", i), time.Time{}, time.Time{})
			gens[i], errs[i] = old.Generation, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	slices.Sort(gens)
	for i, g := range gens {
		if g != uint64(i) {
			t.Fatalf("previous generations %v, want 0..%d once each", gens, n-1)
		}
	}
	if got := loadSess(t, s, u.ID, "s"); got.Generation != n {
		t.Errorf("final generation %d, want %d", got.Generation, n)
	}
}

// testSessionsLock: one holder of a user's sessions lock at a time;
// other users do not wait; a waiter gives up with its context.
func testSessionsLock(t *testing.T, s store.Store) {
	ctx := context.Background()
	unlock, err := s.LockSessions(ctx, 1)
	must(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = s.LockSessions(short, 1)
	cancel()
	if err == nil {
		t.Fatal("a second LockSessions of a held user succeeded")
	}
	u2, err := s.LockSessions(ctx, 2)
	must(t, err)
	u2()
	unlock()
	unlock, err = s.LockSessions(ctx, 1)
	must(t, err)
	unlock()

	// Mutual exclusion under contention, with the store in use inside.
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, most := 0, 0
	for g := range 8 {
		wg.Go(func() {
			for range 10 {
				unlock, err := s.LockSessions(ctx, int64(g%2)+10)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if g%2 == 0 {
					inside++
					most = max(most, inside)
				}
				mu.Unlock()
				if _, err := s.CountSessions(ctx); err != nil {
					t.Error(err)
				}
				mu.Lock()
				if g%2 == 0 {
					inside--
				}
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders of one user's lock at once", most)
	}
}

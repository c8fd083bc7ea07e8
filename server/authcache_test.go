package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// authDelta runs f and returns how the server's password-check counters
// moved meanwhile.
func authDelta(env *imaptest.Env, f func()) (checks, hits uint64) {
	before := env.Server.AuthStats()
	f()
	after := env.Server.AuthStats()
	return after.Checks - before.Checks, after.Cache.Hits - before.Cache.Hits
}

// expectLogin logs in on a fresh connection (LOGIN or AUTHENTICATE PLAIN)
// and checks the answer and the bcrypt checks and cache hits it cost.
func expectLogin(t *testing.T, env *imaptest.Env, how, user, pass, want string, wantChecks, wantHits uint64) {
	t.Helper()
	c := env.Dial(t)
	cmd := "LOGIN " + user + " " + pass
	if how == "AUTHENTICATE" {
		cmd = "AUTHENTICATE PLAIN " + plainIR("", user, pass)
	}
	checks, hits := authDelta(env, func() { c.ExpectTagged("a1", cmd, "a1 "+want) })
	if checks != wantChecks || hits != wantHits {
		t.Errorf("%s %s/%s: %d bcrypt checks and %d cache hits, want %d and %d", how, user, pass, checks, hits, wantChecks, wantHits)
	}
}

// A login verified by bcrypt is remembered: the next ones with the same
// password, by LOGIN or AUTHENTICATE, do no bcrypt. A wrong password, an
// unknown user, a password changed or an account deleted behind the
// server's back (as "quickimap user passwd/del" does from another
// process, through the store) all miss.
func TestAuthCache(t *testing.T) {
	env := imaptest.Start(t, func(o *server.Options) { o.MaxAuthFailures = 100 })
	const failed = "NO [AUTHENTICATIONFAILED]"
	expectLogin(t, env, "LOGIN", "alice", "secret", "OK", 1, 0)
	expectLogin(t, env, "LOGIN", "alice", "secret", "OK", 0, 1)
	expectLogin(t, env, "AUTHENTICATE", "alice", "secret", "OK", 0, 1)
	expectLogin(t, env, "LOGIN", "ALICE", "secret", "OK", 0, 1)
	// Never for a wrong password, nor an unknown user: one bcrypt each.
	expectLogin(t, env, "LOGIN", "alice", "Secret", failed, 1, 0)
	expectLogin(t, env, "AUTHENTICATE", "alice", "secret2", failed, 1, 0)
	expectLogin(t, env, "LOGIN", "nobody", "secret", failed, 1, 0)
	expectLogin(t, env, "LOGIN", "alice", "secret", "OK", 0, 1)
	if n := env.Server.AuthStats().Cache.Users; n != 1 {
		t.Errorf("cache holds %d accounts, want 1", n)
	}

	// The password changes in the store.
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h, err := auth.HashPassword("new secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.SetPasswordHash(ctx, u.ID, h); err != nil {
		t.Fatal(err)
	}
	expectLogin(t, env, "LOGIN", "alice", "secret", failed, 1, 0)
	expectLogin(t, env, "LOGIN", "alice", `"new secret"`, "OK", 1, 0)
	expectLogin(t, env, "LOGIN", "alice", `"new secret"`, "OK", 0, 1)

	// The account goes.
	if err := env.Store.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	expectLogin(t, env, "LOGIN", "alice", `"new secret"`, failed, 1, 0)
}

func TestAuthCacheOff(t *testing.T) {
	env := imaptest.Start(t, func(o *server.Options) { o.AuthCacheTTL = -1 })
	for range 3 {
		expectLogin(t, env, "LOGIN", "alice", "secret", "OK", 1, 0)
	}
	if s := env.Server.AuthStats(); s.Cache != (auth.CacheStats{}) {
		t.Errorf("disabled cache counted %+v", s.Cache)
	}
}

// A failed login takes the same time whether the account exists or not,
// so timing does not enumerate accounts: an unknown user is checked
// against a dummy hash of the same cost, through the same queue, with the
// same delay after. The test account's hash is made at the production
// cost for this.
func TestLoginTimingUnknownUser(t *testing.T) {
	if testing.Short() {
		t.Skip("bcrypt at the production cost, a second; skipped with -short")
	}
	env, _ := startLogged(t, time.Millisecond)
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h, err := auth.HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.SetPasswordHash(ctx, u.ID, h); err != nil {
		t.Fatal(err)
	}
	c := env.Dial(t)
	// The first unknown user makes the dummy hash: not timed.
	c.ExpectTagged("w", "LOGIN nobody x", "w NO")
	var known, unknown []time.Duration
	timed := func(tag, user string) time.Duration {
		var d time.Duration
		checks, _ := authDelta(env, func() {
			t0 := time.Now()
			c.ExpectTagged(tag, "LOGIN "+user+" wrong-"+tag, tag+" NO [AUTHENTICATIONFAILED]")
			d = time.Since(t0)
		})
		if checks != 1 {
			t.Errorf("LOGIN %s: %d bcrypt checks, want 1", user, checks)
		}
		return d
	}
	for i := range 5 {
		known = append(known, timed(fmt.Sprint("k", i), "alice"))
		unknown = append(unknown, timed(fmt.Sprint("u", i), fmt.Sprint("nobody", i)))
	}
	// The fastest of each: the least disturbed by other work on the
	// machine.
	k, un := slices.Min(known), slices.Min(unknown)
	t.Logf("failed LOGIN: known user %v, unknown user %v (fastest of 5: %v, %v)", known, unknown, k, un)
	if ratio := float64(un) / float64(k); ratio < 0.5 || ratio > 2 {
		t.Errorf("unknown user fails in %v, known user in %v: ratio %.2f tells them apart", un, k, ratio)
	}
	// Both paid a real bcrypt: well above a cache hit.
	if k < 5*time.Millisecond || un < 5*time.Millisecond {
		t.Errorf("failures in %v and %v: too fast for bcrypt cost %d", k, un, auth.Cost)
	}
}

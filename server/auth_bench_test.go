package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// setProductionHash gives the test account a hash at the production cost
// (imaptest makes it at the lowest), so that a login that misses the
// credential cache costs what it costs in production.
func setProductionHash(b *testing.B, env *imaptest.Env) {
	b.Helper()
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, env.User)
	if err != nil {
		b.Fatal(err)
	}
	h, err := auth.HashPassword(env.Password)
	if err != nil {
		b.Fatal(err)
	}
	if err := env.Store.SetPasswordHash(ctx, u.ID, h); err != nil {
		b.Fatal(err)
	}
}

// reportCPU reports the process's CPU time (user and system, client and
// server together: they share the process) per op since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration, unit string) {
	if cpu, ok := processCPU(); ok {
		b.ReportMetric(float64(cpu-cpu0)/float64(b.N), unit)
	}
}

// BenchmarkLogin measures logins on fresh connections (connect, greeting,
// LOGIN, close) with the test account's hash at the production cost
// (auth.Cost), from 4 clients per CPU at once, with the credential cache
// (every login after the first hits) and without it (every login a
// bcrypt check, queued at the gate):
//
//	go test ./server -run '^$' -bench 'Login$' -benchtime 3s
//
// logins/s is the throughput; cpu-ns/op the process's CPU per login,
// clients included.
func BenchmarkLogin(b *testing.B) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"cache-hit", 0}, {"cache-miss", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			env := imaptest.Start(b, func(o *server.Options) { o.AuthCacheTTL = tc.ttl })
			setProductionHash(b, env)
			env.DialLogin(b).NC.Close() // fills the cache, when there is one
			before := env.Server.AuthStats()
			cpu0, _ := processCPU()
			t0 := time.Now()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, err := dialBench(env.Addr, env.User, env.Password)
					if err != nil {
						b.Error(err)
						return
					}
					c.nc.Close()
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "logins/s")
			reportCPU(b, cpu0, "cpu-ns/op")
			s := env.Server.AuthStats()
			checks, hits := s.Checks-before.Checks, s.Cache.Hits-before.Cache.Hits
			if (tc.ttl == 0) != (hits == uint64(b.N) && checks == 0) || (tc.ttl < 0 && checks != uint64(b.N)) {
				b.Fatalf("%d logins: %d bcrypt checks, %d cache hits", b.N, checks, hits)
			}
		})
	}
}

// BenchmarkSIDResumeAuth10k measures what a phone's quick reconnect costs
// the server: connect, read the greeting, then AUTHENTICATE PLAIN (SASL-IR,
// the credential cache hits; the account's hash is at the production
// cost) pipelined with SID, to the SID's tagged OK. The INBOX has 10,000
// messages (UIDs with 1,832 holes) and 10 changes since the session's
// state (5 flag changes, 5 expunges; rcSetup); no other connection holds
// it, but the server still caches its index, as after a phone drops:
//
//	go test ./server -run '^$' -bench 'SIDResumeAuth10k' -benchtime 500x
//
// ns/op is that time; cpu-ns/op the process's CPU in it, and
// cycle-cpu-ns/op the CPU of the whole cycle with the LOGOUT (PRESERVE)
// that leaves the session resumable again and the close, outside the
// timer. Both include the client's CPU (same process), so they are upper
// bounds of the server's.
func BenchmarkSIDResumeAuth10k(b *testing.B) {
	sc := rcSetup(b, 10_000, 1_832, false)
	env := sc.env
	setProductionHash(b, env)
	authCmd := rcAuth(env.User, env.Password)
	sid := fmt.Sprintf("SID %s %d %d", sc.sid, sc.cache.uidValidity, sc.cache.modseq)
	resume := func() (resumeCPU time.Duration) {
		cpu0, _ := processCPU()
		c := rcDial(b, env.Addr)
		r := c.run(b, [][]string{{authCmd, sid}})
		cpu1, _ := processCPU()
		b.StopTimer()
		fetches, expunged := 0, 0
		for _, l := range r[1] {
			if v, ok := strings.CutPrefix(l, "* EXPUNGED "); ok {
				expunged += len(rcParseSet(b, v))
			} else if strings.Contains(l, " FETCH (") {
				fetches++
			}
		}
		if r[1][0] != "* SELECTED INBOX" || fetches != 5 || expunged != 5 {
			b.Fatalf("resume: %q..., %d FETCH, %d expunged, want 5 and 5", r[1][0], fetches, expunged)
		}
		c.logoutPreserve(b)
		b.StartTimer()
		return cpu1 - cpu0
	}
	resume() // the first login: a bcrypt check, which fills the cache
	before := env.Server.AuthStats()
	var inResume time.Duration
	cycle0, _ := processCPU()
	b.ResetTimer()
	for range b.N {
		inResume += resume()
	}
	b.StopTimer()
	if _, ok := processCPU(); ok {
		b.ReportMetric(float64(inResume)/float64(b.N), "cpu-ns/op")
	}
	reportCPU(b, cycle0, "cycle-cpu-ns/op")
	s := env.Server.AuthStats()
	if checks, hits := s.Checks-before.Checks, s.Cache.Hits-before.Cache.Hits; checks != 0 || hits != uint64(b.N) {
		b.Fatalf("%d resumes: %d bcrypt checks, %d cache hits", b.N, checks, hits)
	}
}

// BenchmarkLoginCrowd2000 measures a crowd: 2,000 connections, already
// open, send LOGIN at once for an account whose password the server
// verified before (a cache hit each; the hash is at the production cost),
// as phones do after a cell outage. Each op is the whole crowd, from the
// first LOGIN sent to the last OK read:
//
//	go test ./server -run '^$' -bench 'LoginCrowd2000' -benchtime 3x
func BenchmarkLoginCrowd2000(b *testing.B) {
	const crowd = 2000
	if err := raiseFDLimit(2*crowd + 200); err != nil {
		b.Skipf("cannot open %d sockets: %v", 2*crowd, err)
	}
	env := imaptest.Start(b, nil)
	setProductionHash(b, env)
	env.DialLogin(b).NC.Close()
	before := env.Server.AuthStats()
	var worst time.Duration
	for range b.N {
		b.StopTimer()
		conns := make([]*imaptest.Conn, crowd)
		for i := range conns {
			conns[i] = env.Dial(b)
		}
		b.StartTimer()
		t0 := time.Now()
		for _, c := range conns {
			c.SendLine("a LOGIN " + env.User + " " + env.Password)
		}
		for _, c := range conns {
			if l := c.ReadUntilTagged("a"); !strings.HasPrefix(l[len(l)-1], "a OK") {
				b.Fatalf("LOGIN: %q", l)
			}
		}
		worst = max(worst, time.Since(t0))
		b.StopTimer()
		for _, c := range conns {
			c.NC.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	s := env.Server.AuthStats()
	if checks := s.Checks - before.Checks; checks != 0 {
		b.Fatalf("%d bcrypt checks in a crowd of cache hits", checks)
	}
}

package session

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// BenchmarkInactiveMemory measures the memory of 100,000 inactive
// sessions (1,000 users × 100, 512-byte states) with the SQLite store:
// Go heap in use and the process's resident set, after the sessions were
// written, the store reopened (cold, as after a restart), a registry
// built and a sample of them resumed and detached again. Run with
// -benchtime=1x; the target is < 100 MB.
func BenchmarkInactiveMemory(b *testing.B) {
	const users, perUser = 1000, 100
	dir := b.TempDir()
	s := openSQLiteB(b, dir)
	var uids []int64
	for i := range users {
		u, err := s.CreateUser(ctx, fmt.Sprint("u", i), "h", nil)
		if err != nil {
			b.Fatal(err)
		}
		uids = append(uids, u.ID)
	}
	state := bytes.Repeat([]byte("s"), 512)
	t0 := time.Now()
	ids := make([][]string, users)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, u := range uids {
		for range perUser {
			id := NewID()
			ids[i] = append(ids[i], id)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				rec := store.SessionRecord{ID: id, UserID: u, ClientIP: "192.0.2.1", Created: t0, LastActive: t0, State: state}
				if err := s.SaveSession(ctx, rec); err != nil {
					b.Error(err)
				}
			})
		}
	}
	wg.Wait()
	fill := time.Since(t0)
	s.Close()

	before := heapInUse()
	s = openSQLiteB(b, dir)
	defer s.Close()
	reg := New(s, Options{Timeout: time.Hour})
	if n, _ := s.CountSessions(ctx); n != users*perUser {
		b.Fatalf("%d sessions stored", n)
	}
	// Resume and detach 1,000 of them.
	for i := range 1000 {
		c := &conn{i}
		if _, _, err := reg.Attach(ctx, uids[i%users], ids[i%users][i/users], c); err != nil {
			b.Fatal(err)
		}
		if err := reg.Detach(ctx, c, state); err != nil {
			b.Fatal(err)
		}
	}
	if n, err := reg.Expire(ctx); err != nil || n != 0 {
		b.Fatalf("Expire: %d, %v", n, err)
	}
	after := heapInUse()
	b.ReportMetric(float64(int64(after)-int64(before))/(1<<20), "heap-delta-MB")
	b.ReportMetric(float64(after)/(1<<20), "heap-total-MB")
	b.ReportMetric(float64(rss())/(1<<20), "rss-MB")
	b.ReportMetric(fill.Seconds(), "fill-s")
	runtime.KeepAlive(reg)
}

func openSQLiteB(b *testing.B, dir string) *sqliteStore {
	b.Helper()
	s, err := openSQLiteStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rss returns the resident set size from /proc (0 elsewhere): the SQLite
// page caches live outside the Go heap.
func rss() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

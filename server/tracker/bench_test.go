package tracker

import (
	"context"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// The store stands in with fixed costs near the SQLite backend's on the
// development machine (docs/performance.md): a durable flag change
// ~250 µs, a ChangesSince read ~50 µs.
const (
	benchWriteDelay = 250 * time.Microsecond
	benchReadDelay  = 50 * time.Microsecond
	benchMessages   = 10_000
)

func benchFixture(b *testing.B) (*memStore, *Hub) {
	st := newMemStore()
	st.addMailbox(testUser, testBox)
	if _, _, err := st.AppendMessages(context.Background(), testUser, testBox, make([]store.NewMessage, benchMessages)); err != nil {
		b.Fatal(err)
	}
	st.readDelay, st.writeDelay = benchReadDelay, benchWriteDelay
	return st, NewHub(st, Options{})
}

// latencies is a histogram of durations in power-of-two buckets.
type latencies [64]uint64

func (l *latencies) add(d time.Duration) { l[bits.Len64(uint64(d))]++ }

// quantile returns the upper bound of the bucket holding quantile q.
func (l *latencies) quantile(q float64) time.Duration {
	var total uint64
	for _, n := range l {
		total += n
	}
	want := uint64(q * float64(total))
	var seen uint64
	for i, n := range l {
		seen += n
		if seen > want {
			return time.Duration(1) << i
		}
	}
	return 0
}

// BenchmarkReadFlagsUnderWrites: 8 sessions read flags through their
// own views (View.Meta, as FETCH FLAGS and SEARCH do, with a pause after
// each read as a session between commands; an update every 16 reads, as
// at a command's end) of a 10,000-message mailbox while another session
// changes flags in a loop (a store write, then the refresh of Changed).
//
// ns/op is the mean latency of one read (measured around each read, so
// the pauses are not in it); p99-ns its 99th percentile (an upper bound:
// power-of-two buckets) and max-ns the longest; writes/s the writer's
// rate meanwhile.
func BenchmarkReadFlagsUnderWrites(b *testing.B) {
	st, _ := benchFixture(b)
	benchReadFlags(b, st, testUser, testBox)
}

// BenchmarkReadFlagsUnderWritesSQLite is BenchmarkReadFlagsUnderWrites
// on the SQLite backend: durable writes, and reads that cost CPU.
func BenchmarkReadFlagsUnderWritesSQLite(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, "bench", "x", nil)
	if err != nil {
		b.Fatal(err)
	}
	mb, err := st.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("From: a@example.com\r\nSubject: x\r\n\r\nHello\r\n")
	for range benchMessages / 1000 {
		msgs := make([]store.NewMessage, 1000)
		for i := range msgs {
			msgs[i].Body = body
		}
		if _, _, err := st.AppendMessages(ctx, u.ID, mb.ID, msgs); err != nil {
			b.Fatal(err)
		}
	}
	benchReadFlags(b, st, u.ID, mb.ID)
}

func benchReadFlags(b *testing.B, st store.Store, user, box int64) {
	const readers = 8
	h := NewHub(st, Options{})
	ctx := context.Background()
	w, err := h.Open(ctx, user, box, false)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	views := make([]*View, readers)
	for i := range views {
		if views[i], err = h.Open(ctx, user, box, true); err != nil {
			b.Fatal(err)
		}
		defer views[i].Close()
	}
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		op := store.FlagsAdd
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := w.UpdateFlags(ctx, []uint32{i%benchMessages + 1}, op, []string{`\Seen`}, 0); err != nil {
				b.Error(err)
				return
			}
			w.Updates(ctx, true)
			writes.Add(1)
			if i%benchMessages == benchMessages-1 {
				op = store.FlagsAdd + store.FlagsRemove - op
			}
		}
	})
	var mu sync.Mutex
	var hist latencies
	var total, longest time.Duration
	b.ResetTimer()
	var rwg sync.WaitGroup
	for r, v := range views {
		n := b.N / readers
		if r < b.N%readers {
			n++
		}
		rwg.Go(func() {
			var local latencies
			var sum, max time.Duration
			for i := range n {
				t0 := time.Now()
				v.Meta(uint32(i*7919%benchMessages) + 1)
				d := time.Since(t0)
				local.add(d)
				sum += d
				if d > max {
					max = d
				}
				if i%16 == 15 {
					v.Updates(ctx, true)
				}
				time.Sleep(10 * time.Microsecond)
			}
			mu.Lock()
			for i, n := range local {
				hist[i] += n
			}
			total += sum
			longest = maxDuration(longest, max)
			mu.Unlock()
		})
	}
	rwg.Wait()
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(hist.quantile(0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(longest.Nanoseconds()), "max-ns")
	b.ReportMetric(float64(writes.Load())/b.Elapsed().Seconds(), "writes/s")
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// BenchmarkConcurrentWriters: 8 sessions change flags of one mailbox at
// once, each write followed by the refresh of Changed, as STORE does.
// ns/op is per write; reads/write is how many ChangesSince reads the
// refreshes made per write.
func BenchmarkConcurrentWriters(b *testing.B) {
	st, h := benchFixture(b)
	ctx := context.Background()
	keep, err := h.Open(ctx, testUser, testBox, true)
	if err != nil {
		b.Fatal(err)
	}
	defer keep.Close()
	var next atomic.Uint32
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := st.changesCalls.Load()
	b.RunParallel(func(pb *testing.PB) {
		v, err := h.Open(ctx, testUser, testBox, false)
		if err != nil {
			b.Error(err)
			return
		}
		defer v.Close()
		for pb.Next() {
			n := next.Add(1)
			kw := []string{"$A"}
			if n/benchMessages%2 == 1 {
				kw = []string{"$B"}
			}
			if _, _, err := v.UpdateFlags(ctx, []uint32{n%benchMessages + 1}, store.FlagsSet, kw, 0); err != nil {
				b.Error(err)
				return
			}
			v.Updates(ctx, true)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(st.changesCalls.Load()-start)/float64(b.N), "reads/write")
}

package postgres

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// BenchmarkImport copies an embedded store of 100,000 messages
// (QUICKIMAP_BENCH_MESSAGES sets another number) into PostgreSQL, as
// "quickimap migrate" does, and reports messages and bytes per second
// and the peak of the Go heap during the copy, which must not grow with
// the store:
//
//	go test -run '^$' -bench Import -benchtime 1x ./store/postgres/
//
// The messages are 2 to 8 KB, one in a hundred 100 KB (kept in a file by
// the embedded store), in 10 mailboxes of 2 accounts; a tenth of them
// flagged with a keyword, 1% expunged. Building the source store is not
// timed. The test cluster runs without fsync (internal/pgtest).
// QUICKIMAP_BENCH_SOURCE=DIR builds the source store in DIR, an empty or
// new directory, and leaves it there for "quickimap migrate --data DIR".
func BenchmarkImport(b *testing.B) {
	n := 100_000
	if v := os.Getenv("QUICKIMAP_BENCH_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	start := time.Now()
	src, bytes := benchSource(b, n)
	b.Logf("source store of %d messages, %d MB, built in %s", n, bytes>>20, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	var peak uint64
	for range b.N {
		b.StopTimer()
		dst, err := Open(ctx, pgtest.DB(b), Options{})
		if err != nil {
			b.Fatal(err)
		}
		exp, err := src.Export(ctx)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		stop := sampleHeap(&peak)
		b.StartTimer()
		t, err := dst.Import(ctx, exp, nil)
		b.StopTimer()
		stop()
		exp.Close()
		dst.Close()
		if err != nil {
			b.Fatal(err)
		}
		if t.Messages < int64(n)*98/100 {
			b.Fatalf("imported %+v", t)
		}
		b.StartTimer()
	}
	secs := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(n)*0.99/secs, "messages/s")
	b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// sampleHeap records the largest heap in use into peak until the
// returned function is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			*peak = max(*peak, m.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// benchSource builds the embedded store of BenchmarkImport and returns
// it with the bytes of its bodies.
func benchSource(b *testing.B, n int) (*sqlite.Store, int64) {
	ctx := context.Background()
	dir := os.Getenv("QUICKIMAP_BENCH_SOURCE")
	if dir == "" {
		dir = b.TempDir()
	}
	src, err := sqlite.Open(ctx, dir, sqlite.Options{ReserveBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	var boxes [][2]int64
	for u := range 2 {
		user, err := src.CreateUser(ctx, fmt.Sprintf("user%d", u), "h", nil)
		if err != nil {
			b.Fatal(err)
		}
		for m := range 5 {
			mb, err := src.CreateMailbox(ctx, user.ID, fmt.Sprintf("box%d", m), "")
			if err != nil {
				b.Fatal(err)
			}
			boxes = append(boxes, [2]int64{user.ID, mb.ID})
		}
	}
	line := []byte("0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 01234\r\n")
	var total int64
	const batch = 500
	for i := 0; i < n; i += batch {
		box := boxes[(i/batch)%len(boxes)]
		var msgs []store.NewMessage
		for j := i; j < min(i+batch, n); j++ {
			size := 2048 + (j*7919)%6144
			if j%100 == 99 {
				size = 100 << 10
			}
			body := fmt.Appendf(nil, "From: a@example.org\r\nSubject: message %d\r\n\r\n", j)
			for len(body) < size {
				body = append(body, line...)
			}
			body = body[:size]
			total += int64(size)
			var flags []string
			if j%2 == 0 {
				flags = append(flags, `\Seen`)
			}
			if j%10 == 0 {
				flags = append(flags, `$Label1`)
			}
			msgs = append(msgs, store.NewMessage{Body: body, Flags: flags, Structure: []byte("s"), HeaderLen: 40})
		}
		uids, _, err := src.AppendMessages(ctx, box[0], box[1], msgs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := src.Expunge(ctx, box[0], box[1], uids[:len(uids)/100]); err != nil {
			b.Fatal(err)
		}
	}
	return src, total
}

package importer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

const benchMessages = 10_000

// writeBenchMbox writes an mboxrd file of n messages of 1 to 8 KB (mean
// ~4.5 KB), every tenth with a body line that needed From-escaping.
func writeBenchMbox(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.mbox")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n"
	for i := range n {
		d := start.Add(time.Duration(i) * time.Minute)
		fmt.Fprintf(w, "From sender%d@example.org %s\n", i%50, d.Format("Mon Jan _2 15:04:05 2006"))
		fmt.Fprintf(w, "From: Sender %d <sender%d@example.org>\nTo: alice@example.org\nSubject: message %d\n", i%50, i%50, i)
		fmt.Fprintf(w, "Date: %s\nMessage-ID: <%d@example.org>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n", d.Format(time.RFC1123Z), i)
		if i%10 == 0 {
			w.WriteString(">From the archive, an escaped line.\n")
		}
		for range 16 + (i*7919)%128 {
			w.WriteString(line)
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkImportMbox imports a 10,000-message mbox into an empty INBOX
// of a fresh SQLite store (durable batches of 100 messages, as
// `quickimap import` does); msgs/s is the throughput.
func BenchmarkImportMbox(b *testing.B) {
	path := writeBenchMbox(b, benchMessages)
	fi, _ := os.Stat(path)
	ctx := context.Background()
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		st, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		u, err := st.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		im := New(st, u.ID, Options{})
		if err := im.Import(ctx, path); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		b.StopTimer()
		if s := im.Stats(); s.Added != benchMessages {
			b.Fatalf("stats %+v", s)
		}
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*benchMessages)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(fi.Size())/1e6, "file-MB")
}

// BenchmarkImportMboxAgain re-imports the same mbox into the INBOX that
// already holds it: every message is read, compared and skipped.
func BenchmarkImportMboxAgain(b *testing.B) {
	path := writeBenchMbox(b, benchMessages)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
	if err != nil {
		b.Fatal(err)
	}
	if err := New(st, u.ID, Options{}).Import(ctx, path); err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	for b.Loop() {
		t0 := time.Now()
		im := New(st, u.ID, Options{})
		if err := im.Import(ctx, path); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		if s := im.Stats(); s.Skipped != benchMessages {
			b.Fatalf("stats %+v", s)
		}
	}
	b.ReportMetric(float64(b.N*benchMessages)/elapsed.Seconds(), "msgs/s")
}

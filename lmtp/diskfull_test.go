package lmtp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/tmpfs"
	"github.com/quickimap/quickimap/lmtp"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// A full disk under a real store (SQLite on a 24 MiB tmpfs): deliveries
// get 452 4.3.1, a temporary failure the MTA retries, never a bounce; a
// recipient refused at RCPT is still answered 550.
func TestFullDisk(t *testing.T) {
	dir := filepath.Join(tmpfs.Mount(t, 24<<20), "data")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, "alice", "x", store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	var logs imaptest.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	srv := server.New(server.Options{Store: st, Logger: logger})
	ls := lmtp.New(lmtp.Options{Store: st, Deliverer: srv, Logger: logger})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ls.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ls.Shutdown(ctx)
		<-done
		srv.Shutdown(ctx)
		st.Close()
	})
	c := dialLMTP(t, "tcp", l.Addr().String())
	c.expect("LHLO client.test", "250 ")
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 200)
	var n int
	var reply string
	for n = 0; ; n++ {
		if n > 100_000 {
			t.Fatal("the disk never filled")
		}
		c.expect("MAIL FROM:<s@x>", "250 ")
		c.expect("RCPT TO:<alice@example.org>", "250 ")
		if r := c.data(fmt.Sprintf("Subject: filler %d\r\n\r\n%s", n, body), 1)[0]; !strings.HasPrefix(r, "250 ") {
			reply = r
			break
		}
	}
	if n < 100 || !strings.HasPrefix(reply, "452 4.3.1 ") {
		t.Fatalf("after %d deliveries: %q, want 452 4.3.1", n, reply)
	}
	c.expect("MAIL FROM:<s@x>", "250 ")
	c.expect("RCPT TO:<nobody@example.org>", "550 5.1.1 ")
	c.expect("RCPT TO:<alice@example.org>", "250 ")
	if r := c.data("Subject: one more\r\n\r\nx\r\n", 1)[0]; !strings.HasPrefix(r, "452 4.3.1 ") {
		t.Errorf("while full: %q", r)
	}
	if !strings.Contains(logs.String(), "result=storage_full") {
		t.Errorf("no storage_full log line:\n%s", logs.String())
	}
}

package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/tmpfs"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// A full disk, over TCP against a store on a 24 MiB tmpfs: APPEND gets
// NO [OVERQUOTA] (not SERVERBUG) and the operator an error line; SELECT,
// STORE \Deleted + EXPUNGE, UID EXPUNGE, MOVE to Trash + EXPUNGE and
// DELETE keep working, and once space is freed APPEND works again.
func TestFullDiskOverTCP(t *testing.T) {
	dir := filepath.Join(tmpfs.Mount(t, 24<<20), "data")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if _, err := st.CreateUser(ctx, "alice", string(h), store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	var logs imaptest.SyncBuffer
	// Closed once the server has shut down (cleanups run last first).
	t.Cleanup(func() { st.Close() })
	env := imaptest.Serve(t, server.Options{Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, "alice", "secret")
	env.Dir = dir
	c := env.DialLogin(t)

	c.ExpectTagged("c1", "CREATE Other", "c1 OK")
	// Messages of 16 KiB, kept in the database (under LargeBody): they
	// fill it, and its deletes need room in the WAL (bodies in files
	// fail on the file's write first). Without the store's reserve,
	// STORE, MOVE and DELETE below fail with OVERQUOTA.
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 200)
	appendMsg := func(tag, mbox string, i int) string {
		msg := fmt.Sprintf("Subject: filler %d\r\n\r\n%s", i, body)
		c.SendLine(fmt.Sprintf("%s APPEND %s {%d+}", tag, mbox, len(msg)))
		c.Send(msg + "\r\n")
		lines := c.ReadUntilTagged(tag)
		return lines[len(lines)-1]
	}
	for i := range 5 {
		if got := appendMsg("o", "Other", i); !strings.HasPrefix(got, "o OK") {
			t.Fatalf("APPEND to Other: %q", got)
		}
	}
	var n int
	var refusal string
	for n = 0; ; n++ {
		if n > 100_000 {
			t.Fatal("the disk never filled")
		}
		if got := appendMsg("a", "INBOX", n); !strings.HasPrefix(got, "a OK") {
			refusal = got
			break
		}
	}
	t.Logf("%d APPENDs filled the disk", n)
	if want := "a NO [OVERQUOTA] Mail store is full"; !strings.HasPrefix(refusal, want) {
		t.Fatalf("APPEND on a full disk: %q, want prefix %q", refusal, want)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="mail store is full"`) {
		t.Errorf("no error line for the operator; log:\n%s", logs.String())
	}
	// Refused again at once, and not logged again so soon.
	if got := appendMsg("b", "INBOX", 0); !strings.HasPrefix(got, "b NO [OVERQUOTA]") {
		t.Errorf("second APPEND: %q", got)
	}
	if n := strings.Count(logs.String(), `msg="mail store is full"`); n != 1 {
		t.Errorf("%d lines for two refusals within a few seconds; log:\n%s", n, logs.String())
	}

	// A second session appended nothing it could claim, but the first
	// SELECT of this one claims everything as \Recent: a write.
	c.ExpectTagged("s1", "SELECT INBOX", "s1 OK [READ-WRITE]")
	third := n / 3
	c.ExpectTagged("f1", fmt.Sprintf("STORE 1:%d +FLAGS.SILENT (\\Deleted)", third), "f1 OK")
	c.ExpectTagged("f2", "EXPUNGE", "f2 OK")
	c.ExpectTagged("f3", fmt.Sprintf("UID STORE 1:%d +FLAGS.SILENT (\\Deleted)", 2*third+5), "f3 OK")
	c.ExpectTagged("f4", fmt.Sprintf("UID EXPUNGE 1:%d", 2*third+5), "f4 OK")
	c.ExpectTagged("f5", "MOVE 1:* Trash", "f5 OK")
	c.ExpectTagged("f6", "SELECT Trash", "f6 OK [READ-WRITE]")
	c.ExpectTagged("f7", "STORE 1:* +FLAGS.SILENT (\\Deleted)", "f7 OK")
	c.ExpectTagged("f8", "CLOSE", "f8 OK")
	c.ExpectTagged("f9", "DELETE Other", "f9 OK")
	// Another session's SELECT, on the emptied mailbox.
	c2 := env.DialLogin(t)
	c2.ExpectTagged("s2", "SELECT INBOX", "s2 OK [READ-WRITE]")

	// APPEND comes back once the store sees the room (it checks at
	// most once a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := appendMsg("z", "INBOX", 0)
		if strings.HasPrefix(got, "z OK") {
			break
		}
		if !strings.HasPrefix(got, "z NO [OVERQUOTA]") || time.Now().After(deadline) {
			t.Fatalf("APPEND after freeing space: %q", got)
		}
		time.Sleep(100 * time.Millisecond) // polling for the store's re-check
	}
	if strings.Contains(logs.String(), "SERVERBUG") || strings.Contains(logs.String(), `msg="store failure"`) {
		t.Errorf("a store failure was logged as a server bug:\n%s", logs.String())
	}
}

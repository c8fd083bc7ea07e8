package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// testMessage is message n: large ones (over the 64 KiB from which bodies
// live in files) every third.
func testMessage(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: a@example.org\r\nSubject: message %d\r\nX-Seq: %d\r\n\r\n", n, n)
	lines := 3
	if n%3 == 0 {
		lines = 1200 // ~80 KB
	}
	for i := range lines {
		fmt.Fprintf(&b, "line %d of message %d, padded to some length with text text text text\r\n", i, n)
	}
	return b.String()
}

func appendMessage(t testing.TB, c *imaptest.Conn, box string, n int) bool {
	msg := testMessage(n)
	c.SendLine(fmt.Sprintf("a APPEND %s {%d}", box, len(msg)))
	if l := c.ReadLine(); !strings.HasPrefix(l, "+") {
		t.Errorf("APPEND: %q", l)
		return false
	}
	c.Send(msg + "\r\n")
	lines := c.ReadUntilTagged("a")
	if !strings.HasPrefix(lines[len(lines)-1], "a OK") {
		t.Errorf("APPEND: %q", lines)
		return false
	}
	return true
}

var seqHeader = regexp.MustCompile(`\r\nX-Seq: (\d+)\r\n`)

// TestBackupWhileWriting copies the store of a running server while a
// client appends (small and large messages) and expunges in a loop,
// then checks each copy (Check, as `quickimap check --data OUT`) and
// compares its contents: the messages that were there before all the
// copies and never changed, byte for byte; every other message whole
// (its body is what was appended under its number).
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	env := imaptest.Start(t, nil)
	setup := env.DialLogin(t)
	const kept = 12
	for n := range kept {
		appendMessage(t, setup, "INBOX", n)
	}
	setup.ExpectTagged("c", "CREATE Churn", "c OK")

	stop, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var appended, expunged atomic.Int64
	var startOnce sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer startOnce.Do(func() { close(started) }) // on failure
		c := env.DialLogin(t)
		c.Cmd("s", "SELECT Churn")
		for n := kept; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if !appendMessage(t, c, "Churn", n) {
				return
			}
			if appended.Add(1) == 8 {
				startOnce.Do(func() { close(started) })
			}
			// Every even message goes two appends later (message n has
			// UID n-kept+1): the copies hold messages, large ones among
			// them, while others are expunged and their files removed.
			if n%2 == 0 && n-2 >= kept {
				uid := n - 2 - kept + 1
				c.Cmd("d", fmt.Sprintf("UID STORE %d +FLAGS.SILENT (\\Deleted)", uid))
				c.Cmd("e", "EXPUNGE")
				expunged.Add(1)
			}
		}
	}()
	<-started

	const copies = 3
	outs := make([]string, copies)
	for i := range outs {
		outs[i] = filepath.Join(t.TempDir(), "backup")
		if _, err := sqlite.Backup(ctx, env.Dir, outs[i]); err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
	}
	during := appended.Load()
	t.Logf("%d appends, %d expunges", during, expunged.Load())
	close(stop)
	wg.Wait()
	if during < 10 || expunged.Load() < 3 {
		t.Fatalf("only %d appends and %d expunges while copying", during, expunged.Load())
	}

	for i, out := range outs {
		st, err := sqlite.Open(ctx, out, sqlite.Options{})
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		problems, err := st.Check(ctx)
		if err != nil || len(problems) > 0 {
			t.Errorf("copy %d: Check: %v %q", i, err, problems)
		}
		u, err := st.UserByName(ctx, env.User)
		if err != nil {
			t.Fatal(err)
		}
		inbox := messages(t, st, u.ID, "INBOX")
		if len(inbox) != kept {
			t.Errorf("copy %d: INBOX has %d messages, want %d", i, len(inbox), kept)
		}
		for n, body := range inbox {
			if body != testMessage(n) {
				t.Errorf("copy %d: INBOX message %d differs", i, n)
			}
		}
		large := 0
		churn := messages(t, st, u.ID, "Churn")
		for n, body := range churn {
			if body != testMessage(n) {
				t.Errorf("copy %d: Churn message %d differs (%d bytes)", i, n, len(body))
			}
			if len(body) > 64<<10 {
				large++
			}
		}
		t.Logf("copy %d: %d messages in Churn, %d in files", i, len(churn), large)
		st.Close()
	}
}

// messages returns the bodies of a mailbox by their X-Seq number.
func messages(t *testing.T, st store.Store, userID int64, name string) map[int]string {
	t.Helper()
	ctx := context.Background()
	mb, err := st.MailboxByName(ctx, userID, name)
	if err != nil {
		t.Fatal(err)
	}
	metas, _, err := st.MessageIndex(ctx, userID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, m := range metas {
		b, err := st.MessageBody(ctx, userID, mb.ID, m.UID)
		if err != nil {
			t.Fatalf("%s UID %d: %v", name, m.UID, err)
		}
		sm := seqHeader.FindSubmatch(b)
		if sm == nil {
			t.Fatalf("%s UID %d: no X-Seq", name, m.UID)
		}
		n, _ := strconv.Atoi(string(sm[1]))
		out[n] = string(b)
	}
	return out
}

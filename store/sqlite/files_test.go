package sqlite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/storetest"
)

// The conformance suite with every body in a file, and with none.
func TestConformanceAllFiles(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), t.TempDir(), Options{LargeBody: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceNoFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("the default options keep small bodies in the database anyway")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), t.TempDir(), Options{LargeBody: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// bodyFiles lists the files under bodies/.
func bodyFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.files.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func deadFiles(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM dead_files`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBodyFiles: which bodies go to files, and that a file goes when its
// last message goes, however it goes.
func TestBodyFiles(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{LargeBody: 100})
	u, inbox := setup(t, s)
	arch, err := s.MailboxByName(ctx, u.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("Subject: small\r\n\r\nhi\r\n")
	large := bytes.Repeat([]byte("0123456789"), 20)
	uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: small}, {Body: large}, {Body: large}})
	if err != nil {
		t.Fatal(err)
	}
	if got := bodyFiles(t, s); len(got) != 2 {
		t.Fatalf("files after appending one small and two large bodies: %q", got)
	}
	var inDB int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM bodies WHERE file IS NULL`).Scan(&inDB); err != nil || inDB != 1 {
		t.Fatalf("%d bodies in the database, want 1 (%v)", inDB, err)
	}
	healthy(t, s)
	// A copy shares the file; the file goes with the last message.
	if _, _, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, uids[1:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[1:]); err != nil {
		t.Fatal(err)
	}
	if got := bodyFiles(t, s); len(got) != 1 {
		t.Errorf("files after expunging both large messages but one copy: %q", got)
	}
	if b, err := s.MessageBody(ctx, u.ID, arch.ID, 1); err != nil || !bytes.Equal(b, large) {
		t.Errorf("the copy's body: %d bytes, %v", len(b), err)
	}
	healthy(t, s)
	// Moving keeps the file.
	if _, _, _, err := s.MoveMessages(ctx, u.ID, arch.ID, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if got := bodyFiles(t, s); len(got) != 1 {
		t.Errorf("files after a move: %q", got)
	}
	// Deleting a mailbox removes its files.
	if _, _, err := s.AppendMessages(ctx, u.ID, arch.ID, []store.NewMessage{{Body: append([]byte("x"), large...)}}); err != nil {
		t.Fatal(err)
	}
	if got := bodyFiles(t, s); len(got) != 2 {
		t.Errorf("files after appending to Archive: %q", got)
	}
	if err := s.DeleteMailbox(ctx, u.ID, "Archive"); err != nil {
		t.Fatal(err)
	}
	if got := bodyFiles(t, s); len(got) != 1 {
		t.Errorf("files after deleting Archive: %q", got)
	}
	// Deleting the account removes the rest. The names are forgotten by
	// the next write.
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if got := bodyFiles(t, s); len(got) != 0 {
		t.Errorf("files after deleting the account: %q", got)
	}
	if _, err := s.CreateUser(ctx, "other", "h", nil); err != nil {
		t.Fatal(err)
	}
	if n := deadFiles(t, s); n != 0 {
		t.Errorf("%d dead file names left after the next write", n)
	}
	healthy(t, s)
}

// TestBodyFilesAfterCrash: files whose removal a crash interrupted go at
// the next start; a failed append leaves no file.
func TestBodyFilesAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{LargeBody: 10})
	if err != nil {
		t.Fatal(err)
	}
	u, inbox := setup(t, s)
	uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: bytes.Repeat([]byte("x"), 50)}})
	if err != nil {
		t.Fatal(err)
	}
	names := bodyFiles(t, s)
	// The state right after the commit of an expunge, before the
	// writer removed the file: the row gone, the name in dead_files.
	if _, err := s.wdbT().ExecContext(ctx, `DELETE FROM messages WHERE uid = ?`, uids[0]); err != nil {
		t.Fatal(err)
	}
	s.swept = nil
	if err := os.WriteFile(s.files.path(names[0]), []byte("still here"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An append into a mailbox that does not exist fails after its file
	// was written: the file must go.
	if _, _, err := s.AppendMessages(ctx, u.ID, 1<<40, []store.NewMessage{{Body: bytes.Repeat([]byte("y"), 50)}}); err == nil {
		t.Fatal("append to an unknown mailbox succeeded")
	}
	s.Close()
	s, err = Open(ctx, dir, Options{LargeBody: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := bodyFiles(t, s); len(got) != 0 {
		t.Errorf("files after restart: %q", got)
	}
	healthy(t, s)
}

// TestCheckBodyFiles: Check reports a missing file, a file of the wrong
// size and an old file nothing refers to.
func TestCheckBodyFiles(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{LargeBody: 10})
	u, inbox := setup(t, s)
	body := bytes.Repeat([]byte("z"), 40)
	if _, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: body}, {Body: body}}); err != nil {
		t.Fatal(err)
	}
	names := bodyFiles(t, s)
	if err := os.Remove(s.files.path(names[0])); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.files.path(names[1]), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	orphan, young := newBodyName(), newBodyName()
	for _, n := range []string{orphan, young} {
		if err := os.MkdirAll(filepath.Dir(s.files.path(n)), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.files.path(orphan), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.files.path(young), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * orphanAge)
	if err := os.Chtimes(s.files.path(orphan), old, old); err != nil {
		t.Fatal(err)
	}
	problems, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"body file is missing: " + names[0], "body file size differs from its messages' size: " + names[1],
		"body file is not referenced by any body: " + filepath.Join(orphan[:2], orphan)} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("Check did not report %q; got:\n%s", want, strings.Join(problems, "\n"))
		}
	}
	if len(problems) != 3 {
		t.Errorf("Check reported %d problems, want 3 (the young file is not one):\n%s", len(problems), strings.Join(problems, "\n"))
	}
	// A missing file reads as an expunged message, not as an error.
	if _, err := s.MessageBody(ctx, u.ID, inbox.ID, 1); err == nil {
		t.Error("MessageBody of a message whose file is missing succeeded")
	}
}

// TestHeaders: a header is kept apart when its length is given, shared
// by copies, and goes with the body's last message.
func TestHeaders(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, inbox := setup(t, s)
	arch, err := s.MailboxByName(ctx, u.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := s.rdb.QueryRow(`SELECT count(*) FROM headers`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	body := []byte("Subject: s\r\n\r\nbody\r\n")
	uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{{Body: body, HeaderLen: 14}, {Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	var hdr []byte
	if err := s.rdb.QueryRow(`SELECT data FROM headers`).Scan(&hdr); err != nil || string(hdr) != "Subject: s\r\n\r\n" || count() != 1 {
		t.Fatalf("headers: %q, %d rows, %v", hdr, count(), err)
	}
	if _, _, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, uids[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Errorf("%d headers after expunging the original of a copy, want 1", count())
	}
	if _, err := s.Expunge(ctx, u.ID, arch.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if count() != 0 {
		t.Errorf("%d headers after expunging the copy, want 0", count())
	}
	healthy(t, s)
}

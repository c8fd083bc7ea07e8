package sqlite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// TestBackupRaces drives the two races Backup's order of steps exists
// for, at the exact points where they matter:
//
//   - a file that the first pass copied before it was whole (truncated
//     here after the pass) is copied again;
//   - a message appended after the first pass and expunged after the
//     database copy, its file removed: the round starts over, and the
//     copy is the later state.
func TestBackupRaces(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	large := func(c byte) []byte {
		return append([]byte("Subject: large\r\n\r\n"), bytes.Repeat([]byte{c}, 100<<10)...)
	}
	appendOne := func(body []byte) uint32 {
		uids, _, err := st.AppendMessages(ctx, u.ID, mb.ID, []store.NewMessage{{Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		return uids[0]
	}
	a := large('a')
	appendOne(a)

	out := filepath.Join(t.TempDir(), "copy")
	var late uint32
	stats, err := backup(ctx, dir, out, func(step, round int) {
		switch {
		case step == afterFileCopy && round == 0:
			// The copy of a's file as if made while it was written.
			files, _ := filepath.Glob(filepath.Join(out, bodyDir, "*", "*"))
			if len(files) != 1 {
				t.Errorf("%d files after the first pass, want 1", len(files))
			}
			for _, f := range files {
				os.Truncate(f, 1000)
			}
			late = appendOne(large('b'))
		case step == afterDatabase && round == 0:
			if _, err := st.Expunge(ctx, u.ID, mb.ID, []uint32{late}); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Retries != 1 || stats.Files != 1 {
		t.Errorf("stats %+v, want 1 retry and 1 file", stats)
	}

	cp, err := Open(ctx, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if problems, err := cp.Check(ctx); err != nil || len(problems) > 0 {
		t.Errorf("Check: %v %q", err, problems)
	}
	metas, _, err := cp.MessageIndex(ctx, u.ID, mb.ID)
	if err != nil || len(metas) != 1 {
		t.Fatalf("%d messages in the copy, %v", len(metas), err)
	}
	if got, err := cp.MessageBody(ctx, u.ID, mb.ID, metas[0].UID); err != nil || !bytes.Equal(got, a) {
		t.Errorf("message in the copy: %d bytes, %v", len(got), err)
	}
}

// A backup leaves the database and bodies/ only; a failed one leaves
// nothing, not even the directory it created.
func TestBackupFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := filepath.Join(t.TempDir(), "copy")
	if _, err := Backup(ctx, dir, out); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != bodyDir || names[1] != FileName {
		t.Errorf("backup holds %q", names)
	}

	failed := filepath.Join(t.TempDir(), "failed")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Backup(cctx, dir, failed); err == nil {
		t.Fatal("backup with a cancelled context succeeded")
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Errorf("a failed backup left %s: %v", failed, err)
	}
}

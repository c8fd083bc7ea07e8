package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/quickimap/quickimap/store/sqlite"
)

func TestImportAndBackupCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mbox := filepath.Join("..", "..", "importer", "testdata", "mboxrd.mbox")

	quickimap(t, "", "help", "import").want(t, exitOK, "--mbox-format", "")
	quickimap(t, "", "help", "backup").want(t, exitOK, "quickimap backup", "")
	quickimap(t, "", "import", "--data", data, mbox).want(t, exitUsage, "", "--user is required")
	quickimap(t, "", "import", "--data", data, "--user", "alice").want(t, exitUsage, "", "no PATH")
	quickimap(t, "", "import", "--data", data, "--user", "alice", "--mbox-format", "mboxcl", mbox).
		want(t, exitUsage, "", "unknown mbox format")
	quickimap(t, "", "import", "--data", data, "--user", "alice", mbox).want(t, exitFail, "", "no data directory")

	quickimap(t, "pw\n", "user", "add", "--data", data, "alice").want(t, exitOK, "Created user alice", "")
	quickimap(t, "", "import", "--data", data, "--user", "nobody", mbox).want(t, exitFail, "", "no user nobody")
	quickimap(t, "", "import", "--data", data, "--user", "Alice", mbox).
		want(t, exitOK, "3 message(s) read: 3 imported, 0 already present, 0 refused", "")
	quickimap(t, "", "import", "--data", data, "--user", "alice", mbox, "--mailbox", "Archive/2025").
		want(t, exitOK, "3 imported", "")
	quickimap(t, "", "import", "--data", data, "--user", "alice", mbox).
		want(t, exitOK, "0 imported, 3 already present", "")
	quickimap(t, "", "import", "--data", data, "--user", "alice", filepath.Join(dir, "missing")).
		want(t, exitFail, "", "no such file")

	out := filepath.Join(dir, "backup")
	quickimap(t, "", "backup", "--data", data).want(t, exitUsage, "", "one OUT directory expected")
	quickimap(t, "", "backup", "--data", data, out).want(t, exitOK, "backed up", "")
	quickimap(t, "", "backup", "--data", data, out).want(t, exitFail, "", "not empty")
	quickimap(t, "", "check", "--data", out).want(t, exitOK, "ok", "")

	ctx := context.Background()
	st, err := sqlite.Open(ctx, out, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"INBOX", "Archive/2025"} {
		mb, err := st.MailboxByName(ctx, u.ID, name)
		if err != nil {
			t.Fatalf("%s in the backup: %v", name, err)
		}
		if s, err := st.Status(ctx, u.ID, mb.ID); err != nil || s.Messages != 3 {
			t.Errorf("%s in the backup: %d messages, %v", name, s.Messages, err)
		}
	}
}

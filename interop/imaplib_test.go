package interop

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestImaplib runs testdata/imaplib_session.py: login, list, create,
// rename, delete, subscribe, select, status through Python's imaplib.
func TestImaplib(t *testing.T) { runImaplib(t, "imaplib_session.py") }

// TestImaplibMessages runs testdata/imaplib_messages.py: APPEND, SELECT,
// FETCH, SEARCH, STORE, COPY and EXPUNGE.
func TestImaplibMessages(t *testing.T) { runImaplib(t, "imaplib_messages.py") }

// runImaplib runs a Python script against a fresh server; the script
// checks every answer itself and exits non-zero on a mismatch.
func runImaplib(t *testing.T, name string) {
	python := lookTool(t, "python3", "python3")
	script, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	env := imaptest.Start(t, nil)
	host, port, err := net.SplitHostPort(env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, host, port, env.User, env.Password)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 60 s; output:\n%s", name, out)
	}
	if err != nil {
		t.Fatalf("%s failed (%v); output:\n%s", name, err, out)
	}
	t.Logf("%s", out)
}

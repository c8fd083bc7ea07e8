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

// TestImaplibMessages runs testdata/imaplib_messages.py: APPEND, SELECT,
// FETCH, SEARCH, STORE, COPY and EXPUNGE through Python's imaplib, which
// checks every answer itself and exits non-zero on a mismatch.
func TestImaplibMessages(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; CI installs it")
	}
	script, err := filepath.Abs(filepath.Join("testdata", "imaplib_messages.py"))
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
		t.Fatalf("imaplib session did not finish within 60 s; output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("imaplib session failed (%v); output:\n%s", err, out)
	}
	t.Logf("%s", out)
}

package interop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/lmtp"
	"github.com/quickimap/quickimap/store"
)

// lmtpEnv is an IMAP server with the accounts alice (and her mailbox
// Lists) and bob, and an LMTP server delivering through it for the domain
// example.org with "+" as recipient delimiter.
type lmtpEnv struct {
	*imaptest.Env
	LMTP     *lmtp.Server
	LMTPAddr string
	MaxSize  int64
}

func startLMTP(t *testing.T, maxSize int64, domains ...string) *lmtpEnv {
	t.Helper()
	if len(domains) == 0 {
		domains = []string{"example.org"}
	}
	e := &lmtpEnv{Env: imaptest.Start(t, nil), MaxSize: maxSize}
	ctx := context.Background()
	alice, err := e.Store.UserByName(ctx, e.User)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateMailbox(ctx, alice.ID, "Lists", ""); err != nil {
		t.Fatal(err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(e.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateUser(ctx, "bob", string(h), store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	srv := lmtp.New(lmtp.Options{
		Store:              e.Store,
		Deliverer:          e.Server,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		Domains:            domains,
		RecipientDelimiter: "+",
		MaxMessageBytes:    maxSize,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.LMTP = srv
	e.LMTPAddr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("LMTP Serve: %v", err)
		}
	})
	return e
}

// TestPythonLMTP delivers with Python's smtplib.LMTP (mixed recipients, an
// 8-bit body, a message over the limit, an unknown user, the + delimiter)
// and reads every copy back with imaplib (testdata/lmtp_delivery.py).
func TestPythonLMTP(t *testing.T) {
	python := lookTool(t, "python3", "python3")
	e := startLMTP(t, 100<<10)
	_, lport, _ := net.SplitHostPort(e.LMTPAddr)
	host, iport, _ := net.SplitHostPort(e.Addr)
	script, err := filepath.Abs(filepath.Join("testdata", "lmtp_delivery.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, host, lport, iport, e.Password, strconv.FormatInt(e.MaxSize, 10))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("lmtp_delivery.py did not finish within 60 s; output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("lmtp_delivery.py failed (%v); output:\n%s", err, out)
	}
	t.Logf("%s", out)
}

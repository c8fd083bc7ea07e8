package sqlite

import (
	"context"
	"errors"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// A statement under a context that has ended is refused, reads and
// writes alike (quiet keeps that while it drops the cancellation of a
// live context); one under a live context that can end runs.
func TestEndedContextRefused(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	live := context.Background()
	u, err := s.CreateUser(live, "u", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	mb, err := s.MailboxByName(live, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	uids, _, err := s.AppendMessages(live, u.ID, mb.ID, []store.NewMessage{{Body: []byte("Subject: x\r\n\r\nx\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.MessageIndex(ended, u.ID, mb.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("MessageIndex under an ended context: %v", err)
	}
	if _, err := s.MessageInfos(ended, u.ID, mb.ID, uids); !errors.Is(err, context.Canceled) {
		t.Errorf("MessageInfos under an ended context: %v", err)
	}
	if _, err := s.MessageBody(ended, u.ID, mb.ID, uids[0]); !errors.Is(err, context.Canceled) {
		t.Errorf("MessageBody under an ended context: %v", err)
	}
	if _, _, err := s.UpdateFlags(ended, u.ID, mb.ID, uids, store.FlagsAdd, []string{`\Seen`}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("UpdateFlags under an ended context: %v", err)
	}

	// A live context that can end: the statements run.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if idx, _, err := s.MessageIndex(ctx, u.ID, mb.ID); err != nil || len(idx) != 1 {
		t.Errorf("MessageIndex: %v, %v", idx, err)
	}
	if ch, _, err := s.UpdateFlags(ctx, u.ID, mb.ID, uids, store.FlagsAdd, []string{`\Seen`}, 0); err != nil || len(ch) != 1 {
		t.Errorf("UpdateFlags: %v, %v", ch, err)
	}
}

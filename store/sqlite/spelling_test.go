package sqlite

import (
	"context"
	"slices"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// The spelling cache (flags.go) is loaded from the messages when a store
// is opened on existing data: a keyword stored in another case still
// takes the spelling already in the mailbox.
func TestKeywordSpellingAfterReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	u, err := s.CreateUser(ctx, "u", "h", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{
		{Flags: []string{`\Seen`, "$Work"}, Body: []byte("1")},
		{Body: []byte("2")},
		{Flags: []string{"only", `\Draft`}, Body: []byte("3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTest(t, dir)
	defer s.Close()
	ch, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids[1:2], store.FlagsAdd, []string{"$WORK", "ONLY", "fresh"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || !slices.Equal(ch[0].Flags, []string{"$Work", "fresh", "only"}) {
		t.Errorf("after reopening: %+v", ch)
	}
	// Flags without keywords never look at the cache.
	if hasKeyword(`\Seen \Flagged`) || !hasKeyword(`\Seen x`) || !hasKeyword("x") || hasKeyword("") {
		t.Error("hasKeyword")
	}
}

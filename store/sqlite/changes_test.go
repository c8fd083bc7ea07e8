package sqlite

import (
	"context"
	"slices"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// UIDChangesSince says an answer is incomplete exactly where ChangesSince
// does: below the vanished floor that purged tombstones leave.
func TestUIDChangesSinceTombstoneWindow(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{TombstoneMaxCount: 5})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 12)
	var modseqs []uint64
	for i := range 4 {
		// Expunges of 2 messages each: 8 tombstones, 5 kept.
		if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[2*i:2*i+2]); err != nil {
			t.Fatal(err)
		}
		m, _ := s.MailboxByID(ctx, u.ID, inbox.ID)
		modseqs = append(modseqs, m.HighestModSeq)
	}
	if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids[10:11], store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	last, _ := s.MailboxByID(ctx, u.ID, inbox.ID)
	for _, c := range []struct {
		since    uint64
		complete bool
		vanished []uint32
		changed  []uint32
	}{
		{0, false, uids[3:8], uids[8:12]},
		{modseqs[0], false, uids[3:8], uids[10:11]},
		{modseqs[1], true, uids[4:8], uids[10:11]},
		{modseqs[3], true, nil, uids[10:11]},
		{last.HighestModSeq, true, nil, nil},
	} {
		for _, withChanged := range []bool{true, false} {
			uc, err := s.UIDChangesSince(ctx, u.ID, inbox.ID, c.since, withChanged)
			want := c.changed
			if !withChanged {
				want = nil
			}
			if err != nil || uc.Complete != c.complete || !slices.Equal(uc.Vanished, c.vanished) ||
				!slices.Equal(uc.Changed, want) || uc.HighestModSeq != last.HighestModSeq {
				t.Errorf("UIDChangesSince(%d, %v) = %+v, %v; want complete %v, vanished %v, changed %v, highest %d",
					c.since, withChanged, uc, err, c.complete, c.vanished, want, last.HighestModSeq)
			}
		}
	}
}

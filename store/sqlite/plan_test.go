package sqlite

import (
	"context"
	"strings"
	"testing"
)

// TestQueryPlans pins the plans the read paths were tuned for: the index
// in UID order from the primary key, changes from the covering MODSEQ
// index. (Any plan gives the right answer; these are the fast ones.)
func TestQueryPlans(t *testing.T) {
	s := openOpts(t, Options{})
	ctx := context.Background()
	checkPlans(t, s)
	// Also with the planner's statistics of a filled mailbox, as PRAGMA
	// optimize (run by Close) may gather them.
	_, inbox := setup(t, s)
	fillDirect(t, s, inbox.ID, 1, 5001)
	if _, err := s.wdbT().ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	checkPlans(t, s)
}

func checkPlans(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, tc := range []struct {
		q    string
		args []any
		want string
	}{
		{indexQuery, []any{1}, "USING PRIMARY KEY (mailbox_id=? AND uid>?)"},
		{`SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? AND modseq > ?`, []any{1, 1},
			"USING COVERING INDEX messages_modseq (mailbox_id=? AND modseq>?)"},
		{changesQuery, []any{1, 1, 1}, "USING COVERING INDEX messages_modseq (mailbox_id=? AND modseq>?)"},
		{changesQuery, []any{1, 1, 1}, "USING COVERING INDEX expunged_modseq (mailbox_id=? AND modseq>?)"},
		{changedUIDsQuery, []any{1, 1}, "USING COVERING INDEX messages_modseq (mailbox_id=? AND modseq>?)"},
		{vanishedUIDsQuery, []any{1, 1}, "USING COVERING INDEX expunged_modseq (mailbox_id=? AND modseq>?)"},
		// One lookup per requested prefix, not a scan of the mailbox.
		{prefixQuery, []any{1, 1, "[2147483658,5368709120]"}, "SEARCH m USING PRIMARY KEY (mailbox_id=? AND uid=?)"},
	} {
		q, want := tc.q, tc.want
		var plan []string
		rows, err := s.rdb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "; "); !strings.Contains(got, want) {
			t.Errorf("plan of %.50q: %s, want %s", q, got, want)
		}
	}
}

package transfer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/quickimap/quickimap/store"
)

// maxDifferences bounds the differences Compare lists.
const maxDifferences = 100

// Compare checks, through the store interface, that to holds what from
// holds as a client sees it: the same accounts (id, name, password
// hash), and per account the same mailboxes (id, name, UIDVALIDITY,
// UIDNEXT, HIGHESTMODSEQ, special use, placeholder) with the same
// counters (messages, unseen, size), the same UIDs of messages and of
// expunge tombstones, and the same subscriptions. It returns the
// differences found (nil: none), at most a hundred. Its memory is that
// of one account's mailbox list and one mailbox's UIDs (four bytes a
// message or tombstone).
func Compare(ctx context.Context, from, to store.Store) ([]string, error) {
	var diffs []string
	report := func(format string, args ...any) {
		if len(diffs) < maxDifferences {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	fu, err := from.Users(ctx)
	if err != nil {
		return nil, err
	}
	tu, err := to.Users(ctx)
	if err != nil {
		return nil, err
	}
	if len(fu) != len(tu) {
		report("%d accounts, the copy has %d", len(fu), len(tu))
	}
	for i, u := range fu {
		if i >= len(tu) {
			break
		}
		c := tu[i]
		if u.ID != c.ID || u.Name != c.Name || u.PasswordHash != c.PasswordHash {
			report("account %q (id %d) is %q (id %d) in the copy, or its password differs", u.Name, u.ID, c.Name, c.ID)
			continue
		}
		if err := compareAccount(ctx, from, to, u, report); err != nil {
			return diffs, err
		}
	}
	return diffs, nil
}

func compareAccount(ctx context.Context, from, to store.Store, u store.User, report func(string, ...any)) error {
	fm, err := from.Mailboxes(ctx, u.ID)
	if err != nil {
		return err
	}
	tm, err := to.Mailboxes(ctx, u.ID)
	if err != nil {
		return err
	}
	if len(fm) != len(tm) {
		report("account %q: %d mailboxes, the copy has %d", u.Name, len(fm), len(tm))
	}
	for i, m := range fm {
		if i >= len(tm) {
			break
		}
		if m != tm[i] {
			report("account %q: mailbox %+v is %+v in the copy", u.Name, m, tm[i])
			continue
		}
		if m.NoSelect {
			continue
		}
		fs, err := from.Status(ctx, u.ID, m.ID)
		if err != nil {
			return err
		}
		ts, err := to.Status(ctx, u.ID, m.ID)
		if err != nil {
			return err
		}
		if fs.Messages != ts.Messages || fs.Unseen != ts.Unseen || fs.Size != ts.Size {
			report("account %q, mailbox %q: %d messages, %d unseen, %d bytes; the copy has %d, %d, %d bytes",
				u.Name, m.Name, fs.Messages, fs.Unseen, fs.Size, ts.Messages, ts.Unseen, ts.Size)
		}
		// The UIDs of the messages and of the tombstones, which a
		// QRESYNC client compares with its cache (RFC 7162 §3.2.5).
		fc, err := from.UIDChangesSince(ctx, u.ID, m.ID, 0, true)
		if err != nil {
			return err
		}
		tc, err := to.UIDChangesSince(ctx, u.ID, m.ID, 0, true)
		if err != nil {
			return err
		}
		if !slices.Equal(fc.Changed, tc.Changed) {
			report("account %q, mailbox %q: the copy's message UIDs differ", u.Name, m.Name)
		}
		if !slices.Equal(fc.Vanished, tc.Vanished) || fc.Complete != tc.Complete {
			report("account %q, mailbox %q: %d expunged UIDs (complete %v), the copy has %d (complete %v) or others",
				u.Name, m.Name, len(fc.Vanished), fc.Complete, len(tc.Vanished), tc.Complete)
		}
	}
	fsub, err := from.Subscriptions(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	tsub, err := to.Subscriptions(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !slices.Equal(fsub, tsub) {
		report("account %q: subscriptions %q, the copy has %q", u.Name, fsub, tsub)
	}
	return nil
}

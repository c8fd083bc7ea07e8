package sqlite

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/quickimap/quickimap/store/internal/storeutil"
)

// ---- a mailbox's spelling of its keywords ----

// keywordSpellings remembers, per mailbox, how the mailbox spells each of
// its keywords (by storeutil.FlagKey), so that a keyword stored in another case
// takes the spelling the mailbox already uses: keywords compare
// case-insensitively, and a FLAGS response must not list one twice
// (`kwA` and `KWA`). Dovecot does the same.
//
// A mailbox's entry is loaded by the writer the first time a keyword is
// stored into it (one pass over its messages' flags: about 0.1 s per
// million messages, once per mailbox while the process runs) and kept up
// to date by every write that stores a keyword: flags only get into the
// messages table through AppendMessages, UpdateFlags and
// Copy/MoveMessages, all of which go through spell. An entry only grows:
// it may keep the spelling of a keyword no message has any more, or one
// from a write that was rolled back, which is harmless (any spelling of a
// keyword is that keyword); it never lacks one the mailbox has, and never
// holds another spelling than the mailbox's.
type keywordSpellings struct {
	mu    sync.Mutex
	boxes map[int64]map[string]string // mailbox id -> storeutil.FlagKey -> spelling
}

// maxSpellingBoxes bounds the mailboxes remembered; beyond it the whole
// cache is dropped and entries are loaded again as needed.
const maxSpellingBoxes = 4096

// hasKeyword reports whether a stored flag string holds a keyword (a flag
// that does not start with a backslash).
func hasKeyword(flags string) bool {
	for i := 0; i < len(flags); i++ {
		if (i == 0 || flags[i-1] == ' ') && flags[i] != '\\' {
			return true
		}
	}
	return false
}

// spell returns the stored flag string flags (normalised, see storeutil.NormFlags)
// with each keyword in the spelling the mailbox already uses, and records
// the keywords new to the mailbox. It runs in the writer's transaction.
// A string without keywords is returned as it is, at no cost.
func (s *Store) spell(ctx context.Context, tx *dbtx, mailboxID int64, flags string) (string, error) {
	if !hasKeyword(flags) {
		return flags, nil
	}
	fs, err := s.spellList(ctx, tx, mailboxID, storeutil.ParseFlags(flags))
	if err != nil {
		return "", err
	}
	return storeutil.FormatFlags(fs), nil
}

// spellList is spell for a normalised list; it returns fs itself when
// nothing changes, else a new list.
func (s *Store) spellList(ctx context.Context, tx *dbtx, mailboxID int64, fs []string) ([]string, error) {
	if !slices.ContainsFunc(fs, func(f string) bool { return !strings.HasPrefix(f, `\`) }) {
		return fs, nil
	}
	k := &s.spellings
	k.mu.Lock()
	defer k.mu.Unlock()
	known := k.boxes[mailboxID]
	if known == nil {
		var err error
		if known, err = loadSpellings(ctx, tx, mailboxID); err != nil {
			return nil, err
		}
		if k.boxes == nil || len(k.boxes) >= maxSpellingBoxes {
			k.boxes = map[int64]map[string]string{}
		}
		k.boxes[mailboxID] = known
	}
	out := fs
	for i, f := range fs {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		key := storeutil.FlagKey(f)
		sp, ok := known[key]
		if !ok {
			known[key] = f
			continue
		}
		if sp != f {
			if &out[0] == &fs[0] {
				out = slices.Clone(fs)
			}
			out[i] = sp
		}
	}
	// A new spelling of the same key sorts the same among the others:
	// keywords are ordered by key (storeutil.CompareFlags), and keys are unique.
	return out, nil
}

// loadSpellings reads the keywords of a mailbox's messages, each distinct
// flag string once (a mailbox has a handful; filtering rows in SQL, with
// GLOB, made the pass several times slower).
func loadSpellings(ctx context.Context, tx *dbtx, mailboxID int64) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT flags FROM messages WHERE mailbox_id = ?`, mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	known := map[string]string{}
	for rows.Next() {
		var flags string
		if err := rows.Scan(&flags); err != nil {
			return nil, err
		}
		for _, f := range storeutil.ParseFlags(flags) {
			if strings.HasPrefix(f, `\`) {
				continue
			}
			if key := storeutil.FlagKey(f); known[key] == "" {
				known[key] = f
			}
		}
	}
	return known, rows.Err()
}

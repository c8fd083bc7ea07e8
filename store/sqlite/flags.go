package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/quickimap/quickimap/store"
)

// systemFlags are the stored system flags in their canonical spelling and
// in the order the store keeps them (before every keyword).
var systemFlags = [...]string{`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}

// flagKey is the case-insensitive identity of a flag: IMAP atoms are
// ASCII, so ASCII lower case.
func flagKey(f string) string {
	for i := 0; i < len(f); i++ {
		if c := f[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(f)
		}
	}
	return f
}

// systemRank returns the index of a system flag in systemFlags, or -1.
func systemRank(key string) int {
	switch key {
	case `\answered`:
		return 0
	case `\deleted`:
		return 1
	case `\draft`:
		return 2
	case `\flagged`:
		return 3
	case `\seen`:
		return 4
	}
	return -1
}

// validKeyword reports whether k is an IMAP atom (RFC 3501 flag-keyword):
// printable ASCII without atom-specials.
func validKeyword(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			return false
		}
	}
	return true
}

// normFlags validates and normalises a list of flags: system flags in
// canonical case, \Recent dropped (it is session state), keywords deduped
// case-insensitively keeping their first spelling, sorted with system
// flags first (in systemFlags order) and keywords by key. An unknown
// system flag (`\Foo`, `\*`) or a keyword that is not an atom is
// ErrInvalid.
func normFlags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, f := range in {
		k := flagKey(f)
		if strings.HasPrefix(k, `\`) {
			if k == `\recent` {
				continue
			}
			r := systemRank(k)
			if r < 0 {
				return nil, fmt.Errorf("%w: flag %q", store.ErrInvalid, f)
			}
			f = systemFlags[r]
		} else if !validKeyword(f) {
			return nil, fmt.Errorf("%w: flag %q", store.ErrInvalid, f)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f)
	}
	sortFlags(out)
	return out, nil
}

// sortFlags sorts normalised flags: system flags first, then keywords by
// key (and by spelling, which only matters for unnormalised input).
func sortFlags(fs []string) {
	slices.SortFunc(fs, compareFlags)
}

func compareFlags(a, b string) int {
	ka, kb := flagKey(a), flagKey(b)
	ra, rb := systemRank(ka), systemRank(kb)
	switch {
	case ra >= 0 && rb >= 0:
		return ra - rb
	case ra >= 0:
		return -1
	case rb >= 0:
		return 1
	}
	if c := strings.Compare(ka, kb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// parseFlags splits the stored form (normalised flags joined by spaces).
func parseFlags(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, " ")
}

// formatFlags is the stored form of normalised flags.
func formatFlags(fs []string) string { return strings.Join(fs, " ") }

// applyFlags combines a message's stored flags with the (normalised) flags
// of an operation and returns the new stored form.
func applyFlags(cur string, op store.FlagOp, fs []string) (string, error) {
	switch op {
	case store.FlagsSet:
		// A keyword the message already has keeps the message's
		// spelling, so that a FLAGS that differs only in case is no
		// change.
		old := parseFlags(cur)
		set := fs
		for i, f := range fs {
			k := flagKey(f)
			if j := slices.IndexFunc(old, func(o string) bool { return o != f && flagKey(o) == k }); j >= 0 {
				if len(set) > 0 && &set[0] == &fs[0] {
					set = slices.Clone(fs)
				}
				set[i] = old[j]
			}
		}
		if len(set) > 0 && &set[0] != &fs[0] {
			sortFlags(set)
		}
		return formatFlags(set), nil
	case store.FlagsAdd:
		old := parseFlags(cur)
		merged := old
		for _, f := range fs {
			k := flagKey(f)
			if !slices.ContainsFunc(old, func(o string) bool { return flagKey(o) == k }) {
				merged = append(merged, f)
			}
		}
		if len(merged) == len(old) {
			return cur, nil
		}
		sortFlags(merged)
		return formatFlags(merged), nil
	case store.FlagsRemove:
		old := parseFlags(cur)
		kept := old[:0:0]
		for _, o := range old {
			k := flagKey(o)
			if !slices.ContainsFunc(fs, func(f string) bool { return flagKey(f) == k }) {
				kept = append(kept, o)
			}
		}
		if len(kept) == len(old) {
			return cur, nil
		}
		return formatFlags(kept), nil
	}
	return "", fmt.Errorf("%w: flag operation %d", store.ErrInvalid, op)
}

// ---- a mailbox's spelling of its keywords ----

// keywordSpellings remembers, per mailbox, how the mailbox spells each of
// its keywords (by flagKey), so that a keyword stored in another case
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
	boxes map[int64]map[string]string // mailbox id -> flagKey -> spelling
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

// spell returns the stored flag string flags (normalised, see normFlags)
// with each keyword in the spelling the mailbox already uses, and records
// the keywords new to the mailbox. It runs in the writer's transaction.
// A string without keywords is returned as it is, at no cost.
func (s *Store) spell(ctx context.Context, tx *dbtx, mailboxID int64, flags string) (string, error) {
	if !hasKeyword(flags) {
		return flags, nil
	}
	fs, err := s.spellList(ctx, tx, mailboxID, parseFlags(flags))
	if err != nil {
		return "", err
	}
	return formatFlags(fs), nil
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
		key := flagKey(f)
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
	// keywords are ordered by key (compareFlags), and keys are unique.
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
		for _, f := range parseFlags(flags) {
			if strings.HasPrefix(f, `\`) {
				continue
			}
			if key := flagKey(f); known[key] == "" {
				known[key] = f
			}
		}
	}
	return known, rows.Err()
}

package postgres

import (
	"fmt"
	"slices"
	"strings"

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

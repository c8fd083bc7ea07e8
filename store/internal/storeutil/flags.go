// Package storeutil holds what every store backend needs the same way:
// the canonical form and order of flags, how STORE's operations apply to
// them, and the rules of mailbox and account names. The backends keep the
// same flags and names whatever their engine; so that they cannot drift
// apart, the code is written once, here.
package storeutil

import (
	"fmt"
	"slices"
	"strings"

	"github.com/quickimap/quickimap/store"
)

// SystemFlags are the stored system flags in their canonical spelling and
// in the order the store keeps them (before every keyword).
var SystemFlags = [...]string{`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}

// FlagKey is the case-insensitive identity of a flag: IMAP atoms are
// ASCII, so ASCII lower case.
func FlagKey(f string) string {
	for i := 0; i < len(f); i++ {
		if c := f[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(f)
		}
	}
	return f
}

// SystemRank returns the index of a system flag in SystemFlags, or -1.
func SystemRank(key string) int {
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

// ValidKeyword reports whether k is an IMAP atom (RFC 3501 flag-keyword):
// printable ASCII without atom-specials.
func ValidKeyword(k string) bool {
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

// NormFlags validates and normalises a list of flags: system flags in
// canonical case, \Recent dropped (it is session state), keywords deduped
// case-insensitively keeping their first spelling, sorted with system
// flags first (in SystemFlags order) and keywords by key. An unknown
// system flag (`\Foo`, `\*`) or a keyword that is not an atom is
// ErrInvalid.
func NormFlags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, f := range in {
		k := FlagKey(f)
		if strings.HasPrefix(k, `\`) {
			if k == `\recent` {
				continue
			}
			r := SystemRank(k)
			if r < 0 {
				return nil, fmt.Errorf("%w: flag %q", store.ErrInvalid, f)
			}
			f = SystemFlags[r]
		} else if !ValidKeyword(f) {
			return nil, fmt.Errorf("%w: flag %q", store.ErrInvalid, f)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f)
	}
	SortFlags(out)
	return out, nil
}

// SortFlags sorts normalised flags: system flags first, then keywords by
// key (and by spelling, which only matters for unnormalised input).
func SortFlags(fs []string) {
	slices.SortFunc(fs, CompareFlags)
}

func CompareFlags(a, b string) int {
	ka, kb := FlagKey(a), FlagKey(b)
	ra, rb := SystemRank(ka), SystemRank(kb)
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

// ParseFlags splits the stored form (normalised flags joined by spaces).
func ParseFlags(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, " ")
}

// FormatFlags is the stored form of normalised flags.
func FormatFlags(fs []string) string { return strings.Join(fs, " ") }

// ApplyFlags combines a message's stored flags with the (normalised) flags
// of an operation and returns the new stored form.
func ApplyFlags(cur string, op store.FlagOp, fs []string) (string, error) {
	switch op {
	case store.FlagsSet:
		// A keyword the message already has keeps the message's
		// spelling, so that a FLAGS that differs only in case is no
		// change.
		old := ParseFlags(cur)
		set := fs
		for i, f := range fs {
			k := FlagKey(f)
			if j := slices.IndexFunc(old, func(o string) bool { return o != f && FlagKey(o) == k }); j >= 0 {
				if len(set) > 0 && &set[0] == &fs[0] {
					set = slices.Clone(fs)
				}
				set[i] = old[j]
			}
		}
		if len(set) > 0 && &set[0] != &fs[0] {
			SortFlags(set)
		}
		return FormatFlags(set), nil
	case store.FlagsAdd:
		old := ParseFlags(cur)
		merged := old
		for _, f := range fs {
			k := FlagKey(f)
			if !slices.ContainsFunc(old, func(o string) bool { return FlagKey(o) == k }) {
				merged = append(merged, f)
			}
		}
		if len(merged) == len(old) {
			return cur, nil
		}
		SortFlags(merged)
		return FormatFlags(merged), nil
	case store.FlagsRemove:
		old := ParseFlags(cur)
		kept := old[:0:0]
		for _, o := range old {
			k := FlagKey(o)
			if !slices.ContainsFunc(fs, func(f string) bool { return FlagKey(f) == k }) {
				kept = append(kept, o)
			}
		}
		if len(kept) == len(old) {
			return cur, nil
		}
		return FormatFlags(kept), nil
	}
	return "", fmt.Errorf("%w: flag operation %d", store.ErrInvalid, op)
}

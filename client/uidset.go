package client

import (
	"slices"
	"strconv"
	"strings"

	"github.com/quickimap/quickimap/imap"
)

// uidSet is a parsed set of UIDs: sorted, merged, inclusive ranges. Sets
// from the server are never expanded into their members, so a response
// such as "VANISHED 1:4294967295" costs one range, not four billion UIDs.
type uidSet []imap.NumRange

// maxSetRanges bounds the ranges of one set read from the server.
const maxSetRanges = 1 << 20

// parseUIDSet parses a sequence-set of UIDs ("1:3,5,9:7"). "*" is refused
// (RFC 7162 §7 and the reconnect draft §6 forbid it in known-uids,
// VANISHED and EXPUNGED); zero is refused (nz-number).
func parseUIDSet(s string) (uidSet, error) {
	if s == "" {
		return nil, protoErr("empty UID set")
	}
	if strings.Count(s, ",") >= maxSetRanges {
		return nil, protoErr("UID set with too many ranges")
	}
	var set imap.SeqSet
	for part := range strings.SplitSeq(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err := parseNz(a)
		if err != nil {
			return nil, err
		}
		hi := lo
		if isRange {
			if hi, err = parseNz(b); err != nil {
				return nil, err
			}
		}
		set = append(set, imap.NumRange{Start: lo, Stop: hi})
	}
	return uidSet(set.Resolve(0)), nil
}

func parseNz(s string) (uint32, error) {
	if !isDigits(s) {
		return 0, protoErr("bad number %q in a UID set", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, protoErr("bad number %q in a UID set", s)
	}
	return uint32(n), nil
}

// contains reports whether uid is in the set (binary search).
func (s uidSet) contains(uid uint32) bool {
	i, _ := slices.BinarySearchFunc(s, uid, func(r imap.NumRange, u uint32) int {
		switch {
		case r.Stop < u:
			return -1
		case r.Start > u:
			return 1
		}
		return 0
	})
	return i < len(s) && s[i].Start <= uid && uid <= s[i].Stop
}

// size is the number of UIDs in the set.
func (s uidSet) size() uint64 {
	var n uint64
	for _, r := range s {
		n += uint64(r.Stop-r.Start) + 1
	}
	return n
}

// formatUIDs writes ascending distinct UIDs compactly ("1:3,7").
func formatUIDs(uids []uint32) string {
	return imap.UIDSetFromSorted(uids).String()
}

func rangeOf(u uint32) imap.NumRange { return imap.NumRange{Start: u, Stop: u} }

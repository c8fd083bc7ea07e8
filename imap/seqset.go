package imap

import (
	"slices"
	"strconv"
)

// NumRange is one element of a sequence set: Start:Stop, where 0 stands for
// "*" (the largest number in use). A single number has Start == Stop.
// Start may be greater than Stop; "4:2" means the same as "2:4" (RFC 3501 §9,
// seq-range).
type NumRange struct {
	Start, Stop uint32
}

// SeqSet is a sequence-set (RFC 3501 §9) of message sequence numbers or UIDs,
// as parsed from the wire: in the client's order, not normalised.
type SeqSet []NumRange

// String formats the set in wire syntax ("1:3,5,7:*"). An empty set formats
// as "".
func (s SeqSet) String() string {
	if len(s) == 0 {
		return ""
	}
	return string(s.AppendTo(make([]byte, 0, len(s)*8)))
}

// AppendTo appends the set in wire syntax (as String formats it) to b.
func (s SeqSet) AppendTo(b []byte) []byte {
	for i, r := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeqNum(b, r.Start)
		if r.Stop != r.Start {
			b = append(b, ':')
			b = appendSeqNum(b, r.Stop)
		}
	}
	return b
}

func appendSeqNum(b []byte, n uint32) []byte {
	if n == 0 {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(n), 10)
}

// Dynamic reports whether the set uses "*".
func (s SeqSet) Dynamic() bool {
	for _, r := range s {
		if r.Start == 0 || r.Stop == 0 {
			return true
		}
	}
	return false
}

// resolve returns r with "*" replaced by max and Start <= Stop.
func (r NumRange) resolve(max uint32) NumRange {
	if r.Start == 0 {
		r.Start = max
	}
	if r.Stop == 0 {
		r.Stop = max
	}
	if r.Start > r.Stop {
		r.Start, r.Stop = r.Stop, r.Start
	}
	return r
}

// Contains reports whether n is in the set, with "*" standing for max.
func (s SeqSet) Contains(n, max uint32) bool {
	for _, r := range s {
		r = r.resolve(max)
		if r.Start <= n && n <= r.Stop {
			return true
		}
	}
	return false
}

// Resolve returns the set's ranges with "*" replaced by max, each range
// ordered (Start <= Stop), sorted and merged, so that callers can walk it.
// A range entirely above max is kept (callers clamp); for a set of
// sequence numbers RFC 3501 says "*" with an empty mailbox is an error, which
// the caller checks.
func (s SeqSet) Resolve(max uint32) []NumRange {
	if len(s) == 0 {
		return nil
	}
	out := make([]NumRange, len(s))
	sorted := true
	for i, r := range s {
		out[i] = r.resolve(max)
		if i > 0 && out[i].Start < out[i-1].Start {
			sorted = false
		}
	}
	if !sorted {
		slices.SortFunc(out, func(a, b NumRange) int {
			switch {
			case a.Start < b.Start:
				return -1
			case a.Start > b.Start:
				return 1
			}
			return 0
		})
	}
	n := 0
	for _, r := range out[1:] {
		last := &out[n]
		// Merge overlapping or adjacent ranges; the Stop+1 test must not
		// overflow at 4294967295.
		if r.Start <= last.Stop || (last.Stop != ^uint32(0) && r.Start == last.Stop+1) {
			if r.Stop > last.Stop {
				last.Stop = r.Stop
			}
			continue
		}
		n++
		out[n] = r
	}
	return out[:n+1]
}

// UIDSetFromSorted builds a compact set ("1:3,7,9:12") from ascending,
// distinct numbers. It is used to write VANISHED/EXPUNGED/COPYUID lists.
func UIDSetFromSorted(nums []uint32) SeqSet {
	if len(nums) == 0 {
		return nil
	}
	var s SeqSet
	r := NumRange{nums[0], nums[0]}
	for _, n := range nums[1:] {
		if r.Stop != ^uint32(0) && n == r.Stop+1 {
			r.Stop = n
			continue
		}
		s = append(s, r)
		r = NumRange{n, n}
	}
	return append(s, r)
}

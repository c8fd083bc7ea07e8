package imap

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
func (s SeqSet) String() string { panic("unimplemented") }

// Dynamic reports whether the set uses "*".
func (s SeqSet) Dynamic() bool { panic("unimplemented") }

// Contains reports whether n is in the set, with "*" standing for max.
func (s SeqSet) Contains(n, max uint32) bool { panic("unimplemented") }

// Resolve returns the set's ranges with "*" replaced by max, each range
// ordered (Start <= Stop), sorted and merged, so that callers can walk it.
// A range entirely above max is kept (callers clamp); for a set of
// sequence numbers RFC 3501 says "*" with an empty mailbox is an error, which
// the caller checks.
func (s SeqSet) Resolve(max uint32) []NumRange { panic("unimplemented") }

// UIDSetFromSorted builds a compact set ("1:3,7,9:12") from ascending,
// distinct numbers. It is used to write VANISHED/EXPUNGED/COPYUID lists.
func UIDSetFromSorted(nums []uint32) SeqSet { panic("unimplemented") }

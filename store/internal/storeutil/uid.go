package storeutil

import "math"

// ClampUID maps a stored UID counter to a uint32: the column value 2^32
// (a mailbox whose UID space is used up; UIDNEXT can't be represented)
// becomes the largest uint32.
func ClampUID(v int64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

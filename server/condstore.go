package server

import (
	"sort"

	"github.com/quickimap/quickimap/imap"
)

// CONDSTORE and QRESYNC (RFC 7162) and the EXPUNGED draft
// (draft-melnikov-imap-expunged-01): the session state they add and the
// computation of what vanished. docs/reconnect.md records the choices.

// Names kept in Session.Enabled.
const (
	// extCondstore: a CONDSTORE enabling command ran (RFC 7162 §3.1):
	// untagged FETCH responses about flags carry MODSEQ, SELECT and
	// EXAMINE report HIGHESTMODSEQ.
	extCondstore = "CONDSTORE"
	// extQresync: ENABLE QRESYNC ran (RFC 7162 §3.2.3): expunges are
	// reported with VANISHED, and the QRESYNC SELECT parameter and the
	// VANISHED FETCH modifier are allowed. It implies extCondstore.
	extQresync = "QRESYNC"
	// extExpunged: the client used UID FETCH (REPORTEXPUNGES): expunges
	// are then reported with EXPUNGED (draft-melnikov-imap-expunged-01
	// §3.2), unless QRESYNC's VANISHED applies.
	extExpunged = "X-DRAFT-I01-EXPUNGED"
)

func (s *Session) enable(ext string) bool {
	if s.IsEnabled(ext) {
		return false
	}
	s.Enabled = append(s.Enabled, ext)
	return true
}

// enableCondstore is called by every CONDSTORE enabling command
// (RFC 7162 §3.1) once it has parsed. The first one run with a mailbox
// selected reports the mailbox's HIGHESTMODSEQ, as this session knows it.
func (c *conn) enableCondstore() {
	if !c.sess.enable(extCondstore) || c.view == nil {
		return
	}
	c.writeHighestModSeq()
}

// writeHighestModSeq writes "* OK [HIGHESTMODSEQ n]" with the value this
// session may be told (tracker.View.HighestModSeq).
func (c *conn) writeHighestModSeq() {
	c.enc.Star().Atom("OK").SP().Code("HIGHESTMODSEQ", c.view.HighestModSeq()).Text("Highest mod-sequence").CRLF()
}

// writeModSeq writes the MODSEQ FETCH data item and notes that this
// command told the client a mod-sequence.
func (c *conn) writeModSeq(m uint64) {
	c.enc.Atom("MODSEQ (").Number64(m).Special(')')
	c.sentModSeq = true
}

// vanishedQuery says which expunged UIDs to report with VANISHED (EARLIER)
// or EXPUNGED.
type vanishedQuery struct {
	set imap.SeqSet // UIDs asked about; "*" is the mailbox's UIDNEXT-1
	all bool        // set is nil: 1:UIDNEXT-1
	// since: report only UIDs expunged after this mod-sequence; useSince
	// false reports every UID of the set that does not exist.
	since    uint64
	useSince bool
	// minUID: UIDs below it are known not to have vanished (QRESYNC
	// sequence match data, RFC 7162 §3.2.5.2).
	minUID uint64
}

// vanished returns the UIDs of q that no longer exist, as a compact set
// (nil when none). A UID that exists in the view or in the shared index
// is never returned: one the view still holds is reported later as a live
// expunge. When the store no longer has every tombstone since q.since,
// it falls back to every UID of the set that does not exist (RFC 7162
// §3.2.6, §5.1).
func (c *conn) vanished(q vanishedQuery) (imap.SeqSet, error) {
	var tomb []uint32
	complete := false
	if q.useSince {
		ch, err := c.s.store.UIDChangesSince(c.ctx, c.sess.UserID, c.view.MailboxID(), q.since, false)
		if err != nil {
			return nil, err
		}
		tomb, complete = ch.Vanished, ch.Complete
	}
	return c.vanishedFrom(q, tomb, complete), nil
}

// vanishedFrom is vanished given the store's tombstones since q.since
// (ascending) and whether they are complete, read after the view's
// snapshot.
func (c *conn) vanishedFrom(q vanishedQuery, tomb []uint32, complete bool) imap.SeqSet {
	v := c.view
	cur, uidNext := v.Index()
	// The highest UID ever used: UIDNEXT-1, or a tombstone above it when
	// the index has not caught up. Never the highest live UID, or the
	// expunge of the last message would be missed.
	bound := uint64(uidNext) - 1
	if uidNext == 0 {
		bound = 0
	}
	if n := len(tomb); n > 0 && uint64(tomb[n-1]) > bound {
		bound = uint64(tomb[n-1])
	}
	lo := max(q.minUID, 1)
	if bound < lo {
		return nil
	}
	var ranges []imap.NumRange
	if q.all {
		ranges = []imap.NumRange{{Start: uint32(lo), Stop: uint32(bound)}}
	} else {
		for _, r := range q.set.Resolve(uint32(bound)) {
			// Resolve swaps "5:*" into "*:5" when * < 5: clamp to the
			// UIDs that can have existed.
			start, stop := max(uint64(r.Start), lo), min(uint64(r.Stop), bound)
			if start <= stop {
				ranges = append(ranges, imap.NumRange{Start: uint32(start), Stop: uint32(stop)})
			}
		}
	}
	exists := func(u uint32) bool { return seqOf(v.UIDs(), u) > 0 || seqOf(cur, u) > 0 }
	if complete {
		var out []uint32
		for _, u := range tomb {
			if inRanges(ranges, u) && !exists(u) {
				out = append(out, u)
			}
		}
		return imap.UIDSetFromSorted(out)
	}
	return subtractUIDs(ranges, unionUIDs(v.UIDs(), cur))
}

// subtractUIDs returns the ranges (sorted, disjoint) without the UIDs in
// have (ascending), as a compact set, without expanding the ranges.
func subtractUIDs(ranges []imap.NumRange, have []uint32) imap.SeqSet {
	var out imap.SeqSet
	for _, r := range ranges {
		next := uint64(r.Start)
		i := sort.Search(len(have), func(i int) bool { return have[i] >= r.Start })
		for ; i < len(have) && have[i] <= r.Stop; i++ {
			if uint64(have[i]) > next {
				out = append(out, imap.NumRange{Start: uint32(next), Stop: have[i] - 1})
			}
			next = uint64(have[i]) + 1
		}
		if next <= uint64(r.Stop) {
			out = append(out, imap.NumRange{Start: uint32(next), Stop: r.Stop})
		}
	}
	return out
}

// unionUIDs merges two ascending lists.
func unionUIDs(a, b []uint32) []uint32 {
	out := make([]uint32, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// seqMatchFloor applies QRESYNC sequence match data (RFC 7162 §3.2.5.2):
// walking the (sequence number, UID) pairs in order, each pair that
// matches the view shows that nothing up to that UID was expunged; the
// first pair that does not match (or is out of order) ends the walk. It
// returns the lowest UID that may be reported as vanished.
func seqMatchFloor(seqs, uids imap.SeqSet, view []uint32) uint64 {
	floor := uint64(1)
	si, ui := 0, 0
	var s, sEnd, u, uEnd uint64 // current runs, inclusive
	sOK, uOK := false, false
	var lastS, lastU uint64
	for {
		if !sOK {
			if si == len(seqs) {
				return floor
			}
			r := seqs[si]
			si++
			a, b := uint64(r.Start), uint64(r.Stop)
			if a > b {
				a, b = b, a
			}
			s, sEnd, sOK = a, b, true
		}
		if !uOK {
			if ui == len(uids) {
				return floor
			}
			r := uids[ui]
			ui++
			a, b := uint64(r.Start), uint64(r.Stop)
			if a > b {
				a, b = b, a
			}
			u, uEnd, uOK = a, b, true
		}
		// Each matching pair raises the sequence number, which the view
		// bounds: the walk costs at most len(view) steps plus the ranges.
		if s <= lastS || u <= lastU || s > uint64(len(view)) || uint64(view[s-1]) != u {
			return floor
		}
		floor, lastS, lastU = u+1, s, u
		if s == sEnd {
			sOK = false
		} else {
			s++
		}
		if u == uEnd {
			uOK = false
		} else {
			u++
		}
	}
}

// setSize is the number of numbers in a set without "*".
func setSize(s imap.SeqSet) uint64 {
	var n uint64
	for _, r := range s {
		a, b := r.Start, r.Stop
		if a > b {
			a, b = b, a
		}
		n += uint64(b-a) + 1
	}
	return n
}

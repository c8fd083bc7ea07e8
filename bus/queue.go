package bus

// key names what a hint is about; hints with one key merge.
type key struct {
	kind    Kind
	id      int64 // Mailbox, or User
	session string
}

func keyOf(h Hint) key {
	switch h.Kind {
	case MailboxChanged, MailboxGone:
		return key{kind: h.Kind, id: h.Mailbox}
	case SessionTaken:
		return key{kind: h.Kind, id: h.User, session: h.Session}
	default:
		return key{kind: h.Kind, id: h.User}
	}
}

// Queue holds the hints a bus has yet to send or deliver, merged so that
// it grows with the number of things that changed, not with the number
// of changes. The hints stay in the order their subjects first came. The
// zero value is empty and ready. It is not safe for concurrent use.
type Queue struct {
	hints []Hint
	at    map[key]int // position in hints
}

// Add queues h, merging it with a queued hint about the same thing:
//   - MailboxChanged: the highest MODSEQ, unless either is 0 (unknown),
//     which then wins: a receiver that skips a hint whose MODSEQ its
//     index has reached must not skip a change of unknown MODSEQ.
//   - MailboxGone: the later reason.
//   - SessionTaken: the highest generation (and its node).
//   - UserChanged: one.
func (q *Queue) Add(h Hint) {
	k := keyOf(h)
	i, ok := q.at[k]
	if !ok {
		if q.at == nil {
			q.at = make(map[key]int)
		}
		q.at[k] = len(q.hints)
		q.hints = append(q.hints, h)
		return
	}
	old := &q.hints[i]
	switch h.Kind {
	case MailboxChanged:
		if old.ModSeq == 0 || h.ModSeq == 0 {
			old.ModSeq = 0
		} else if h.ModSeq > old.ModSeq {
			old.ModSeq = h.ModSeq
		}
	case MailboxGone:
		old.Gone = h.Gone
	case SessionTaken:
		if h.Generation > old.Generation {
			*old = h
		}
	}
}

// Len is the number of queued hints.
func (q *Queue) Len() int { return len(q.hints) }

// Take returns the queued hints and empties the queue.
func (q *Queue) Take() []Hint {
	hs := q.hints
	q.hints = nil
	clear(q.at)
	return hs
}

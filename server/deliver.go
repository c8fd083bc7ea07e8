package server

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
)

// appendMessages is the store half of APPEND, shared with Deliver: it
// parses each message's MIME structure (once, never again on FETCH), dates
// undated messages now, appends them in one transaction, shows them to
// the sessions that have the mailbox selected (IDLE included) and caches
// what FETCH will ask of them first.
func (s *Server) appendMessages(ctx context.Context, userID, mailboxID int64, msgs []store.NewMessage) ([]uint32, store.Mailbox, error) {
	for i := range msgs {
		if p, err := message.Parse(msgs[i].Body); err == nil {
			msgs[i].Structure = p.Marshal()
			msgs[i].HeaderLen = p.BodyStart
		}
		if msgs[i].InternalDate.IsZero() {
			msgs[i].InternalDate = time.Now()
		}
	}
	uids, after, err := s.store.AppendMessages(ctx, userID, mailboxID, msgs)
	if err != nil {
		return nil, store.Mailbox{}, err
	}
	s.changed(ctx, mailboxID, after.HighestModSeq)
	s.cacheAppended(mailboxID, after.UIDValidity, uids, msgs)
	return uids, after, nil
}

// ErrDeliverRefused is what Deliver returns for a message IMAP could not
// carry back to a client: empty, or with NUL bytes (RFC 3501 §4.3: a
// literal is CHAR8; BINARY, RFC 3516, is not offered).
var ErrDeliverRefused = errors.New("server: message refused: empty or with NUL bytes")

// Deliver appends a message that arrived other than by IMAP APPEND (LMTP
// delivery) to a mailbox of a user, as APPEND does: when it returns
// without error the message is durable, and sessions that have the
// mailbox selected have been told (an IDLE client gets its EXISTS at
// once). The internal date is now when date is zero. It returns the new
// message's UID and the mailbox's UIDVALIDITY.
func (s *Server) Deliver(ctx context.Context, userID, mailboxID int64, body []byte, date time.Time) (uid, uidValidity uint32, err error) {
	if len(body) == 0 || bytes.IndexByte(body, 0) >= 0 {
		return 0, 0, ErrDeliverRefused
	}
	uids, after, err := s.appendMessages(ctx, userID, mailboxID, []store.NewMessage{{InternalDate: date, Body: body}})
	if err != nil {
		return 0, 0, err
	}
	if len(uids) != 1 {
		return 0, 0, errors.New("server: the store returned no UID for a delivered message")
	}
	return uids[0], after.UIDValidity, nil
}

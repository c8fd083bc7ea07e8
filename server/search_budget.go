package server

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// A SEARCH runs under a budget: the connection's context (the client going
// away, Shutdown's deadline) and Options.SearchTimeLimit. The evaluation
// checks it between messages and, inside one message, as it goes through
// the header fields, so that neither a mailbox of many messages nor one
// message of many fields keeps a core busy after the client is gone or
// beyond the limit.

// DefaultSearchTimeLimit is the default of Options.SearchTimeLimit.
const DefaultSearchTimeLimit = 30 * time.Second

// errSearchTimeLimit is the cause of a search context whose time limit
// passed.
var errSearchTimeLimit = errors.New("search time limit exceeded")

// searchTickEvery is how many steps (header fields) go between two checks
// of the context inside one message: a check costs little, a step less.
const searchTickEvery = 256

// searchBudget is a search's context and the state of its checks. A nil
// budget never stops.
type searchBudget struct {
	ctx   context.Context
	limit time.Duration // 0: none
	ticks int
	// err is why the search stopped, nil while it goes on.
	err error
}

// newSearchBudget returns the budget of a search that begins now, and the
// function that releases it. A search that reads no message data (flags,
// sets, \Recent: the in-memory index answers, in milliseconds for
// 100,000 messages) checks the connection's context only; one that reads
// the store has the time limit too, and the client is watched.
func (c *conn) newSearchBudget(reads bool) (*searchBudget, context.CancelFunc) {
	if !reads {
		return &searchBudget{ctx: c.ctx}, func() {}
	}
	ctx := c.commandContext()
	b := &searchBudget{limit: c.s.opts.SearchTimeLimit}
	if b.limit > 0 {
		var cancel context.CancelFunc
		b.ctx, cancel = context.WithTimeoutCause(ctx, b.limit, errSearchTimeLimit)
		return b, cancel
	}
	b.ctx = ctx
	return b, func() {}
}

// stopped reports whether the search must stop now, and remembers why.
func (b *searchBudget) stopped() bool {
	if b == nil {
		return false
	}
	if b.err == nil && b.ctx.Err() != nil {
		b.err = context.Cause(b.ctx)
	}
	return b.err != nil
}

// tick counts a step of the evaluation of one message and, every
// searchTickEvery steps, reports whether the search must stop.
func (b *searchBudget) tick() bool {
	if b == nil {
		return false
	}
	if b.err != nil {
		return true
	}
	if b.ticks++; b.ticks%searchTickEvery != 0 {
		return false
	}
	return b.stopped()
}

// status is the answer to a search that stopped: NO [LIMIT] past the time
// limit (RFC 5530 §3: a limit on the operation, not a failure to retry
// as is), NO [UNAVAILABLE] when the client went away or the server is
// shutting down (it is not read, or read by a client that reconnects).
func (b *searchBudget) status(c *conn) *status {
	if errors.Is(b.err, errSearchTimeLimit) {
		c.log.Info("search stopped at its time limit", "limit", b.limit)
		return no("LIMIT", "SEARCH took longer than its limit of "+strconv.FormatFloat(b.limit.Seconds(), 'f', -1, 64)+" s; search fewer messages or simpler keys")
	}
	c.log.Debug("search cancelled", "cause", b.err)
	return no("UNAVAILABLE", "SEARCH cancelled")
}

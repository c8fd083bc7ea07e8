package lmtp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/quickimap/quickimap/store"
)

// session is one LMTP connection's transaction state.
type session struct {
	s    *Server
	conn *smtp.Conn
	tc   *trackedConn // nil when the listener was not wrapped

	from     string
	sizeHint int64
	rcpts    []recipient
}

// recipient is an accepted RCPT: the address as given and where it goes.
type recipient struct {
	addr    string
	user    store.User
	mailbox store.Mailbox
}

var (
	_ smtp.LMTPSession = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// AuthMechanisms offers none: AUTH is never advertised.
func (*session) AuthMechanisms() []string { return nil }

// Auth refuses every mechanism.
func (*session) Auth(string) (sasl.Server, error) { return nil, smtp.ErrAuthUnsupported }

// setBusy marks the connection as in a transaction with recipients, which
// Shutdown lets finish.
func (ss *session) setBusy(b bool) {
	if ss.tc != nil {
		ss.tc.busy.Store(b)
	}
}

func (ss *session) Reset() {
	ss.setBusy(false)
	ss.from = ""
	ss.sizeHint = 0
	ss.rcpts = nil
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.Reset()
	ss.from = from
	if opts != nil {
		ss.sizeHint = opts.Size
	}
	return nil
}

// Rcpt resolves the recipient to an account and a mailbox, so that an
// unknown one is refused now (RFC 2033 §4.2: only recipients accepted
// here get a reply after the message).
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DeliveryTimeout)
	defer cancel()
	r, outcome, err := s.resolve(ctx, to)
	if outcome != "" {
		se := outcomeReply(outcome, err)
		s.report(Result{From: ss.from, To: to, User: r.user.Name, Code: se.Code, Enhanced: enhanced(se.EnhancedCode), Outcome: outcome, Err: err})
		return se
	}
	ss.rcpts = append(ss.rcpts, r)
	ss.setBusy(true)
	return nil
}

// resolve finds the account and mailbox of an address. A non-empty
// outcome is a refusal (err is the store's error for a temporary one).
func (s *Server) resolve(ctx context.Context, addr string) (recipient, Outcome, error) {
	r := recipient{addr: addr}
	local, domain := addr, ""
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain = addr[:i], strings.ToLower(addr[i+1:])
	}
	if domain != "" && s.doms != nil && !s.doms[domain] {
		return r, UnknownDomain, nil
	}
	if local == "" {
		return r, UnknownUser, nil
	}
	// Local parts are compared case-insensitively; the detail keeps its
	// case, since mailbox names are case-sensitive.
	detail, hasDetail := "", false
	base := local
	if s.delim != "" {
		if i := strings.IndexAny(local, s.delim); i >= 0 {
			base, detail, hasDetail = local[:i], local[i+1:], true
		}
	}
	// The whole local part first: an account may have the delimiter in
	// its name. Then the local part without its detail.
	tries := []struct {
		local  string
		detail bool
	}{{local, false}}
	if hasDetail && base != "" {
		tries = append(tries, struct {
			local  string
			detail bool
		}{base, true})
	}
	for _, t := range tries {
		u, err := s.lookupUser(ctx, t.local, domain)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return r, TemporaryError, err
		}
		r.user = u
		name := "INBOX"
		if t.detail {
			name = detail
		}
		mb, err := s.lookupMailbox(ctx, u.ID, name)
		if err != nil {
			return r, TemporaryError, err
		}
		r.mailbox = mb
		return r, "", nil
	}
	return r, UnknownUser, nil
}

// lookupUser finds the account named by the whole address, or else by the
// local part (both case-insensitively: store.UserByName).
func (s *Server) lookupUser(ctx context.Context, local, domain string) (store.User, error) {
	if domain != "" {
		u, err := s.opts.Store.UserByName(ctx, local+"@"+domain)
		if !errors.Is(err, store.ErrNotFound) {
			return u, err
		}
	}
	return s.opts.Store.UserByName(ctx, local)
}

// lookupMailbox finds the mailbox a detail names: the exact name, else
// the one name that matches case-insensitively, else INBOX.
func (s *Server) lookupMailbox(ctx context.Context, userID int64, name string) (store.Mailbox, error) {
	st := s.opts.Store
	if strings.EqualFold(name, "INBOX") || name == "" {
		return st.MailboxByName(ctx, userID, "INBOX")
	}
	mb, err := st.MailboxByName(ctx, userID, name)
	if err == nil && !mb.NoSelect {
		return mb, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return mb, err
	}
	all, err := st.Mailboxes(ctx, userID)
	if err != nil {
		return store.Mailbox{}, err
	}
	var found *store.Mailbox
	for i := range all {
		if !all[i].NoSelect && strings.EqualFold(all[i].Name, name) {
			if found != nil {
				found = nil // ambiguous: INBOX
				break
			}
			found = &all[i]
		}
	}
	if found != nil {
		return *found, nil
	}
	return st.MailboxByName(ctx, userID, "INBOX")
}

func (ss *session) Data(r io.Reader) error {
	// Not called in LMTP mode: go-smtp calls LMTPData.
	return errors.New("lmtp: DATA without per-recipient replies")
}

// LMTPData reads the message and delivers a copy to each recipient,
// setting each one's reply only once its copy is durable.
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	s := ss.s
	start := time.Now()
	var buf bytes.Buffer
	if ss.sizeHint > 0 && ss.sizeHint <= s.opts.MaxMessageBytes {
		buf.Grow(int(ss.sizeHint))
	}
	_, err := buf.ReadFrom(r)
	data := buf.Bytes()
	var refusal *smtp.SMTPError
	var outcome Outcome
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		refusal, outcome = smtp.ErrDataTooLarge, TooLarge
	case err != nil:
		refusal, outcome = errReadFailed, TemporaryError
	case bytes.IndexByte(data, 0) >= 0:
		outcome = Refused
		refusal = outcomeReply(outcome, nil)
	}
	if refusal != nil {
		// go-smtp reads what is left of the message after LMTPData.
		for _, rc := range ss.rcpts {
			s.report(Result{From: ss.from, To: rc.addr, User: rc.user.Name, Mailbox: rc.mailbox.Name, Size: len(data),
				Code: refusal.Code, Enhanced: enhanced(refusal.EnhancedCode), Outcome: outcome, Err: err, Duration: time.Since(start)})
			status.SetStatus(rc.addr, refusal)
		}
		return refusal
	}

	type key struct{ user, mailbox int64 }
	type answer struct {
		res   Result
		reply *smtp.SMTPError
	}
	done := make(map[key]answer, len(ss.rcpts))
	received := s.receivedLine(ss.conn)
	for _, rc := range ss.rcpts {
		k := key{rc.user.ID, rc.mailbox.ID}
		a, ok := done[k]
		if !ok {
			t0 := time.Now()
			body := traceHeaders(ss.from, rc.addr, received, start, data)
			a.res, a.reply = s.deliver(rc, body)
			a.res.From, a.res.Duration = ss.from, time.Since(t0)
			done[k] = a
		}
		// The same mailbox named twice (alice and Alice+inbox) gets
		// one copy; both recipients are answered alike.
		a.res.To = rc.addr
		s.report(a.res)
		status.SetStatus(rc.addr, a.reply)
	}
	return nil
}

// deliver appends body to the recipient's mailbox, falling back to INBOX
// when that mailbox went away since RCPT, and returns the result and the
// reply.
func (s *Server) deliver(rc recipient, body []byte) (Result, *smtp.SMTPError) {
	res := Result{User: rc.user.Name, Mailbox: rc.mailbox.Name, Size: len(body)}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DeliveryTimeout)
	defer cancel()
	uid, _, err := s.opts.Deliverer.Deliver(ctx, rc.user.ID, rc.mailbox.ID, body, time.Time{})
	if (errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoSelect)) && rc.mailbox.Name != "INBOX" {
		var inbox store.Mailbox
		if inbox, err = s.opts.Store.MailboxByName(ctx, rc.user.ID, "INBOX"); err == nil {
			res.Mailbox = inbox.Name
			uid, _, err = s.opts.Deliverer.Deliver(ctx, rc.user.ID, inbox.ID, body, time.Time{})
		}
	}
	if err == nil {
		res.UID, res.Code, res.Enhanced, res.Outcome = uid, 250, "2.0.0", Delivered
		msg := "Delivered to " + res.Mailbox + " as UID " + strconv.FormatUint(uint64(uid), 10)
		return res, replyError(250, smtp.EnhancedCode{2, 0, 0}, msg)
	}
	res.Err = err
	res.Outcome = classify(err)
	reply := outcomeReply(res.Outcome, err)
	res.Code, res.Enhanced = reply.Code, enhanced(reply.EnhancedCode)
	return res, reply
}

// classify maps a delivery error to an outcome.
func classify(err error) Outcome {
	switch {
	case isFull(err):
		return StorageFull
	case errors.Is(err, store.ErrInvalid):
		// The mailbox's UID space is used up: the operator must act.
		return MailboxFull
	}
	return TemporaryError
}

// isFull reports a disk (or file system quota) full: store.ErrFull, which
// backends return for it, or else what a backend might pass through
// unclassified: ENOSPC or EDQUOT from a file, SQLite's SQLITE_FULL (code
// 13) from a driver error that has a Code method.
func isFull(err error) bool {
	if errors.Is(err, store.ErrFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == 13 {
		return true
	}
	return strings.Contains(err.Error(), "database or disk is full")
}

// outcomeReply is the reply of a refusal (RFC 3463 enhanced codes).
func outcomeReply(o Outcome, err error) *smtp.SMTPError {
	switch o {
	case UnknownUser:
		return replyError(550, smtp.EnhancedCode{5, 1, 1}, "No such user here")
	case UnknownDomain:
		return replyError(550, smtp.EnhancedCode{5, 1, 2}, "Domain not served here")
	case TooLarge:
		return smtp.ErrDataTooLarge
	case StorageFull:
		return replyError(452, smtp.EnhancedCode{4, 3, 1}, "Mail system full; try again later")
	case MailboxFull:
		return replyError(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox cannot take more messages; try again later")
	case Refused:
		return replyError(554, smtp.EnhancedCode{5, 6, 1}, "Message contains NUL bytes, which IMAP cannot carry; encode it (base64)")
	}
	return replyError(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local error; try again later")
}

// receivedLine is the "from ... by ... with LMTP" part of the Received
// header of this connection.
func (s *Server) receivedLine(c *smtp.Conn) string {
	var b strings.Builder
	b.WriteString("from ")
	helo := ""
	if c != nil {
		helo = c.Hostname()
	}
	if helo == "" {
		helo = "unknown"
	}
	b.WriteString(helo)
	if c != nil {
		if ta, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
			b.WriteString(" ([" + ta.IP.String() + "])")
		}
	}
	b.WriteString("\r\n\tby " + s.opts.Hostname + " (quickimap) with LMTP")
	return b.String()
}

// traceHeaders returns the message with the trace header fields of final
// delivery before it: Return-Path (RFC 5321 §4.4: the final delivery
// server MUST add it, with the envelope sender), Delivered-To (the
// recipient, as Postfix and Dovecot write it, which also lets a
// forwarding loop be seen) and Received (RFC 5321 §4.4).
func traceHeaders(from, to, received string, now time.Time, data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + 256)
	b.WriteString("Return-Path: <" + from + ">\r\nDelivered-To: " + to + "\r\nReceived: ")
	b.WriteString(received)
	b.WriteString("\r\n\tfor <" + to + ">; " + now.Format(time.RFC1123Z) + "\r\n")
	b.Write(data)
	return b.Bytes()
}

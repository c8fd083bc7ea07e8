package server

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
)

func (c *conn) cmdStartTLS(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if c.isTLS {
		return bad("TLS is already active"), nil
	}
	if c.s.opts.TLSConfig == nil {
		return bad("STARTTLS is not available: no certificate configured"), nil
	}
	c.writeStatus(tag, ok("Begin TLS negotiation now"))
	if err := c.enc.Flush(); err != nil {
		return nil, err
	}
	// Anything the client sent after STARTTLS and before the handshake
	// was sent in clear text and could have been injected by a man in the
	// middle (RFC 3501 §11.1, CVE-2011-0411 class): drop it.
	if n := c.br.Buffered(); n > 0 {
		c.log.Warn("discarding plaintext sent after STARTTLS", "bytes", n)
	}
	tc := tls.Server(c.nc.Conn, c.s.opts.TLSConfig)
	ctx, cancel := context.WithDeadline(c.ctx, c.loginBy)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("STARTTLS handshake failed", "err", err)
		c.setEnd("STARTTLS handshake failed")
		c.sess.State = imap.StateLogout
		return nil, nil
	}
	c.isTLS = true
	c.setTransport(tc)
	return nil, nil
}

func (c *conn) cmdLogin(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	user, err := c.dec.Astring()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	pass, err := c.dec.Astring()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if !c.authAllowed() {
		// RFC 3501 §6.2.3 and LOGINDISABLED; code from RFC 5530.
		c.countLogin(LoginRefused)
		return no("PRIVACYREQUIRED", "Plaintext LOGIN is disabled here; use STARTTLS or TLS"), nil
	}
	return c.login(user, pass, "LOGIN")
}

func (c *conn) cmdAuthenticate(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	mech, err := c.dec.Atom()
	if err != nil {
		return nil, err
	}
	var ir []byte
	haveIR := false
	if !c.dec.AtEOL() {
		// SASL-IR (RFC 4959): the initial response, "=" for empty.
		if err := c.dec.SP(); err != nil {
			return nil, err
		}
		s, err := c.dec.Atom()
		if err != nil {
			return nil, err
		}
		haveIR = true
		if s != "=" {
			if ir, err = base64.StdEncoding.DecodeString(s); err != nil {
				return nil, syntaxErr("invalid base64 in initial response")
			}
		}
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if !strings.EqualFold(mech, "PLAIN") {
		return no("CANNOT", "Unsupported authentication mechanism"), nil
	}
	if !c.authAllowed() {
		c.countLogin(LoginRefused)
		return no("PRIVACYREQUIRED", "Plaintext authentication is disabled here; use STARTTLS or TLS"), nil
	}

	// RFC 4616: [authzid] NUL authcid NUL passwd. The callback only
	// records them: the password is checked first, the authorization
	// identity after it, so that AUTHORIZATIONFAILED (RFC 5530) is
	// only ever said to a client that proved who it is.
	var authzid, user, pass string
	parsed := false
	srv := sasl.NewPlainServer(func(identity, username, password string) error {
		authzid, user, pass, parsed = identity, username, password, true
		return nil
	})
	resp := ir
	if !haveIR {
		// An empty challenge; the client answers on one line
		// (RFC 3501 §6.2.2).
		c.enc.Atom("+ ").CRLF()
		if err := c.enc.Flush(); err != nil {
			return nil, err
		}
		line, err := c.dec.Line()
		if err != nil {
			return nil, err
		}
		if line == "*" {
			return bad("AUTHENTICATE cancelled"), nil
		}
		if resp, err = base64.StdEncoding.DecodeString(line); err != nil {
			return bad("Invalid base64 in AUTHENTICATE response"), nil
		}
	}
	if _, _, err := srv.Next(resp); err != nil || !parsed {
		// Not three fields: which one is the user name is unknown (it
		// could be the password), so none is logged.
		return c.loginFailed("", "AUTHENTICATE", "AUTHENTICATIONFAILED", "Invalid PLAIN response")
	}
	u, st, err := c.checkCredentials(user, pass, "AUTHENTICATE")
	if st != nil || err != nil {
		return st, err
	}
	if authzid != "" && !strings.EqualFold(authzid, user) && !strings.EqualFold(authzid, u.Name) {
		// Authenticated, but may not act as someone else.
		return c.loginFailed(u.Name, "AUTHENTICATE", "AUTHORIZATIONFAILED", "Cannot act as another user", "authzid", printable(authzid))
	}
	return c.loggedIn(u, "AUTHENTICATE"), nil
}

// login checks credentials and moves the session to the authenticated
// state.
func (c *conn) login(name, pass, cmd string) (*status, error) {
	u, st, err := c.checkCredentials(name, pass, cmd)
	if st != nil || err != nil {
		return st, err
	}
	return c.loggedIn(u, cmd), nil
}

// checkCredentials looks the user up and checks the password; on failure
// it returns the answer (after loginFailed's delay). It returns an error
// when the client went away while the check waited for a bcrypt slot.
//
// The account's row is read on every login, also when the credential
// cache will answer: the cache binds the stored hash, so a password
// changed or an account deleted by another process (quickimap user,
// sharing the store) misses at once. A known user with a wrong password
// and an unknown user both miss the cache and take the same path: the
// queue for a bcrypt slot, one bcrypt check, loginFailed's delay; so the
// time of a failure does not tell which accounts exist.
func (c *conn) checkCredentials(name, pass, cmd string) (store.User, *status, error) {
	if err := c.throttleLogin(cmd); err != nil {
		if c.s.isClosing() {
			c.countLogin(LoginUnavailable)
			return store.User{}, no("UNAVAILABLE", "Server shutting down, try again later"), nil
		}
		if errors.Is(err, errThrottled) {
			c.countLogin(LoginThrottled)
			c.byeAfter = "Too many failed logins from your address, try again later"
			return store.User{}, no("UNAVAILABLE", "Too many failed logins from your address"), nil
		}
		return store.User{}, nil, err
	}
	u, err := c.s.store.UserByName(c.ctx, strings.ToLower(name))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Error("user lookup failed", "err", err)
		c.countLogin(LoginUnavailable)
		return store.User{}, no("UNAVAILABLE", "Temporary failure, try again later"), nil
	}
	known := err == nil
	if known && c.s.authCache.Verified(u.ID, u.Name, u.PasswordHash, pass) {
		return u, nil, nil
	}
	ok, err := c.gated(func() bool {
		hash := u.PasswordHash
		if !known {
			hash = c.s.dummyHash()
		}
		return auth.CheckPassword(hash, pass)
	})
	if err != nil {
		if c.s.isClosing() {
			c.countLogin(LoginUnavailable)
			return store.User{}, no("UNAVAILABLE", "Server shutting down, try again later"), nil
		}
		c.log.Debug("client left while its login waited", "method", cmd, "err", err)
		return store.User{}, nil, err
	}
	if !ok || !known {
		st, _ := c.loginFailed(name, cmd, "AUTHENTICATIONFAILED", "Authentication failed")
		return store.User{}, st, nil
	}
	c.s.authCache.Add(u.ID, u.Name, u.PasswordHash, pass)
	return u, nil, nil
}

// loggedIn moves the session to the authenticated state as u.
func (c *conn) loggedIn(u store.User, cmd string) *status {
	c.sess.State = imap.StateAuthenticated
	c.sess.UserID = u.ID
	c.sess.UserName = u.Name
	c.log = c.log.With("user", u.Name)
	c.dec.SetLimits(c.s.opts.Limits)
	c.nc.loginBy.Store(0) // logged in within PreAuthTimeout
	c.log.Info("login", "method", cmd, "tls", c.isTLS)
	c.countLogin(LoginOK)
	return okCode(c.capabilityCode(), "Ok")
}

// loginFailed delays, logs (with attrs, never a password) and answers a
// failed login; after MaxAuthFailures the connection is closed. name is
// the user name the client gave, "" when it is not known.
func (c *conn) loginFailed(name, cmd, code, text string, attrs ...any) (*status, error) {
	c.authFailures++
	c.countLogin(LoginFailed)
	if !c.ca.exempt {
		c.s.throttle.fail(c.ca.key, time.Now())
	}
	c.log.Warn("login failed", append([]any{"method", cmd, "user", printable(name), "failures", c.authFailures}, attrs...)...)
	t := time.NewTimer(c.s.opts.FailedLoginDelay)
	select {
	case <-t.C:
	case <-c.s.closingCh():
		t.Stop()
	}
	if c.authFailures >= c.s.opts.MaxAuthFailures {
		c.byeAfter = "Too many authentication failures"
	}
	return no(code, text), nil
}

// errThrottled refuses a login attempt whose turn (see loginThrottle)
// would come after its connection's time to log in.
var errThrottled = errors.New("login throttled")

// throttleLogin delays a login attempt from an address that has failed
// too often (see loginThrottle), and logs it. It returns errThrottled
// when the attempt's turn would come too late, errClosing when the server
// shuts down during the wait, the cause when the client goes away.
func (c *conn) throttleLogin(cmd string) error {
	if c.ca.exempt {
		return nil
	}
	now := time.Now()
	d, failures, ok := c.s.throttle.admit(c.ca.key, now, c.loginBy)
	if d <= 0 {
		return nil
	}
	// A stable line for operators and fail2ban (docs/security.md).
	c.log.Warn("login throttled", "addr", c.ca.ip, "method", cmd, "failures", failures, "delay", d.Round(time.Millisecond), "refused", !ok)
	if !ok {
		return errThrottled
	}
	// The wait ends early when the client goes away or the server shuts
	// down (peerContext).
	ctx, stop := c.peerContext()
	defer stop()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		if c.s.isClosing() {
			return errClosing
		}
		c.log.Debug("client left while its login was throttled", "addr", c.ca.ip)
		return context.Cause(ctx)
	}
}

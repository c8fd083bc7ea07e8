package server

import (
	"slices"
	"strings"

	"github.com/quickimap/quickimap/imap"
)

// Version is reported by ID.
const Version = "0.1.0"

// capabilities lists what this connection may use now (RFC 3501 §6.1.1):
// before authentication the login methods and TLS, after it the
// extensions.
func (c *conn) capabilities() []string {
	caps := []string{"IMAP4rev1", "LITERAL+", "ID", "ENABLE"}
	if c.sess.State == imap.StateNotAuthenticated {
		// SASL-IR (RFC 4959) concerns AUTHENTICATE alone, which is
		// not valid once authenticated: like AUTH=, it is not repeated
		// in the list sent after login (which every reconnect reads).
		caps = slices.Insert(caps, 2, "SASL-IR")
		if c.s.opts.TLSConfig != nil && !c.isTLS {
			caps = append(caps, "STARTTLS")
		}
		if c.authAllowed() {
			caps = append(caps, "AUTH=PLAIN")
		} else {
			caps = append(caps, "LOGINDISABLED")
		}
		return caps
	}
	caps = append(caps,
		"NAMESPACE", "UNSELECT", "CHILDREN", "SPECIAL-USE",
		"LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE",
		"IDLE", "UIDPLUS", "MOVE", "MULTIAPPEND", "ESEARCH",
		"CONDSTORE", "QRESYNC", extExpunged,
	)
	if c.s.compress != nil {
		caps = append(caps, "COMPRESS=DEFLATE")
	}
	if c.s.opts.Sessions != nil {
		caps = append(caps, capReconnect)
		if c.s.opts.ReconnectPlainName {
			caps = append(caps, "RECONNECT")
		}
	}
	return caps
}

// authAllowed reports whether plaintext credentials may be sent on this
// connection: on TLS, on loopback, or when the operator allows it.
func (c *conn) authAllowed() bool {
	return c.isTLS || c.loopback || c.s.opts.AllowInsecureAuth
}

// writeCapabilityCode writes "[CAPABILITY ...] " for the greeting and the
// tagged OK of a login, so that clients need no extra round trip.
func (c *conn) writeCapabilityCode() {
	c.enc.Atom("[CAPABILITY " + strings.Join(c.capabilities(), " ") + "] ")
}

func (c *conn) capabilityCode() string {
	return "CAPABILITY " + strings.Join(c.capabilities(), " ")
}

func (c *conn) cmdCapability(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	c.enc.Star().Atom("CAPABILITY " + strings.Join(c.capabilities(), " ")).CRLF()
	return ok("CAPABILITY completed"), nil
}

func (c *conn) cmdNoop(tag string) (*status, error) {
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	return ok("NOOP completed"), nil
}

func (c *conn) cmdLogout(tag string) (*status, error) {
	preserve, err := c.readLogoutParams()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if c.sid != "" {
		if preserve {
			// draft-ietf-lemonade-reconnect-07 §4: the session stays
			// resumable.
			c.detachSession()
			c.enc.Star().Atom("BYE").SP().Text("Logging out; session state preserved").CRLF()
			c.sess.State = imap.StateLogout
			c.setEnd("logout")
			return ok("LOGOUT completed"), nil
		}
		// §1: LOGOUT without PRESERVE terminates the session.
		c.deleteSession()
	}
	// RFC 3501 §6.1.3: the server MUST send a BYE before the tagged OK.
	c.enc.Star().Atom("BYE").SP().Text("Logging out").CRLF()
	c.sess.State = imap.StateLogout
	c.setEnd("logout")
	return ok("LOGOUT completed"), nil
}

// ID limits from RFC 2971 §3.3.
const (
	maxIDPairs      = 30
	maxIDFieldLen   = 30
	maxIDValueLen   = 1024
	serverIDName    = "quickimap"
	serverIDVendor  = "quickimap"
	serverIDSupport = "https://github.com/quickimap/quickimap"
)

func (c *conn) cmdID(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	var fields []any
	if c.dec.Peek() == '(' {
		var key string
		haveKey := false
		err := c.dec.List(func() error {
			s, ok, err := c.dec.NString()
			if err != nil {
				return err
			}
			if !haveKey {
				if !ok {
					return syntaxErr("ID field name must be a string")
				}
				key, haveKey = s, true
				return nil
			}
			haveKey = false
			if len(fields)/2 >= maxIDPairs || len(key) > maxIDFieldLen || len(s) > maxIDValueLen {
				return syntaxErr("ID parameters exceed RFC 2971 limits")
			}
			if ok {
				fields = append(fields, key, s)
			} else {
				fields = append(fields, key, nil)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if haveKey {
			return nil, syntaxErr("ID list must hold field/value pairs")
		}
	} else {
		a, err := c.dec.Atom()
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(a, "NIL") {
			return nil, syntaxErr("ID takes a list or NIL")
		}
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if len(fields) > 0 {
		// Bounded: this runs before login too (logbound.go). The user,
		// once logged in, is an attribute of c.log already.
		c.log.Info("client ID", idLogAttr(fields))
	}
	c.enc.Star().Atom("ID").SP().Special('(').
		String("name").SP().String(serverIDName).SP().
		String("version").SP().String(Version).SP().
		String("vendor").SP().String(serverIDVendor).SP().
		String("support-url").SP().String(serverIDSupport).
		Special(')').CRLF()
	return ok("ID completed"), nil
}

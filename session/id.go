package session

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// IDLen is the length of a session id: 128 random bits in lower-case
// base32 without padding (RFC 4648 alphabet, a-z and 2-7).
const IDLen = 26

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new session id: 128 bits from crypto/rand, written with
// IMAP atom characters only, so that the server can send it as an atom
// (every example of the draft does) and a client can echo it as an atom,
// a quoted string or a literal alike.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return idEncoding.EncodeToString(b[:])
}

// ValidID reports whether s could be an id NewID made. The registry
// answers ErrNotFound for anything else without asking the store.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// Redact shortens an id for logs: its first 4 characters and "…". A
// session id is a bearer credential for the session (with the user's
// password), so a full id never goes to a log. Characters that are not
// printable ASCII (a client may send anything) become '?'.
func Redact(id string) string {
	var b strings.Builder
	for i := 0; i < len(id) && i < 4; i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			c = '?'
		}
		b.WriteByte(c)
	}
	b.WriteString("…")
	return b.String()
}

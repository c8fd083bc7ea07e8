// Package deps pins the project's module dependencies while the packages
// that use them are being written in parallel. Remove it once each is
// imported by real code.
package deps

import (
	_ "github.com/emersion/go-imap/v2/imapclient"
	_ "github.com/emersion/go-message"
	_ "github.com/emersion/go-sasl"
	_ "golang.org/x/crypto/bcrypt"
	_ "golang.org/x/term"
	_ "modernc.org/sqlite"
)

package server_test

import (
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// SEARCH FROM (and TO, CC, BCC) for an address matches however the
// header wrote it: comments are white space (RFC 5322 §3.2.2), allowed
// around the "@" of an addr-spec (§3.4.1, obs-local-part, obs-domain),
// and folding is removed. A peer's scripted suite checks exactly the
// first header below.
func TestSearchAddressComments(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	for _, m := range []string{
		"From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to (c) @domain.org>\r\nSubject: 1\r\n\r\nx\r\n",
		"From: user-from(a)@(b)domain.org (The Name)\r\nCc: =?utf-8?Q?J=C3=B6rg?= <joerg\r\n @example.de>\r\nSubject: 2\r\n\r\nx\r\n",
		"From: other@domain.org (user-from)\r\nTo: user-to@domain.net\r\nSubject: 3\r\n\r\nx\r\n",
		"From: \"Quoted (not a comment)\" <q@example.org>\r\nSubject: 4\r\n\r\nx\r\n",
	} {
		appendMsg(t, c, "a", "INBOX", "", m)
	}
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	for _, tc := range []struct{ q, want string }{
		{"FROM user-from@domain.org", "* SEARCH 1 2"},
		{"FROM USER-FROM@DOMAIN.ORG", "* SEARCH 1 2"},
		{"FROM <user-from@domain.org>", "* SEARCH 1 2"},
		{"FROM user-from", "* SEARCH 1 2 3"}, // 3: in the comment, still text of the field
		{"TO user-to@domain.org", "* SEARCH 1"},
		{`CC "Jörg <joerg@example.de>"`, "* SEARCH 2"},
		{"CC joerg@example.de", "* SEARCH 2"},
		{`FROM "Quoted (not a comment) <q@example.org>"`, "* SEARCH 4"},
		{"FROM comment", "* SEARCH 1 4"}, // the raw field text still counts
		// HEADER on an address field matches the same way.
		{"HEADER From user-from@domain.org", "* SEARCH 1 2"},
		{"FROM nobody@domain.org", "* SEARCH"},
	} {
		c.Expect("k", "SEARCH CHARSET UTF-8 "+tc.q, tc.want, "k OK SEARCH completed")
	}
}

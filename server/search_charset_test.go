package server_test

import (
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// A search string that is not text in its charset (UTF-8 when CHARSET is
// absent, RFC 9051 §6.4.4) is a client error: BAD, as Dovecot answers,
// rather than a search that can match nothing. A charset the server does
// not know still gets NO [BADCHARSET] (RFC 3501 §6.4.4); a known one is
// converted to UTF-8.
func TestSearchInvalidCharsetText(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	appendMsg(t, c, "p", "INBOX", "", "Subject: caf\xc3\xa9\r\n\r\nK\xc3\xb6ln\r\n")
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	const notUTF8 = "BAD Search string is not valid UTF-8"
	c.Expect("a1", "SEARCH CHARSET UTF-8 BODY {2+}\r\n\xff\xfe", "a1 "+notUTF8)
	c.Expect("a2", "SEARCH BODY {2+}\r\n\xff\xfe", "a2 "+notUTF8)
	c.Expect("a3", "SEARCH CHARSET utf-8 SUBJECT {4+}\r\ncaf\xe9", "a3 "+notUTF8)
	c.Expect("a4", "UID SEARCH HEADER {7+}\r\nSubject {3+}\r\n\xc3\x28x", "a4 "+notUTF8)
	// Only the first bad string is reported; the whole command was read.
	c.Expect("a5", "SEARCH OR TEXT {1+}\r\n\x80 TEXT {1+}\r\n\xc0", "a5 "+notUTF8)
	// Synchronizing literal: read in full, then BAD.
	c.SendLine("a6 SEARCH CHARSET UTF-8 TEXT {2}")
	if l := c.ReadLine(); l != "+ Ready for literal data" {
		t.Fatalf("a6: got %q, want the continuation", l)
	}
	c.SendLine("\xed\xa0")
	if got := c.ReadUntilTagged("a6"); len(got) != 1 || got[0] != "a6 "+notUTF8 {
		t.Errorf("a6: got %q", got)
	}
	// US-ASCII declared, 8-bit sent.
	c.Expect("b1", "SEARCH CHARSET US-ASCII SUBJECT {5+}\r\ncaf\xc3\xa9", "b1 BAD Search string is not US-ASCII, the charset given")
	// An unknown charset: BADCHARSET, whatever the bytes.
	c.Expect("b2", "SEARCH CHARSET X-UNHEARD-OF BODY {2+}\r\n\xff\xfe", "b2 NO [BADCHARSET (UTF-8 US-ASCII)] Charset X-UNHEARD-OF not supported")
	// A known one: the string is converted (ISO-8859-1 "K\xf6ln").
	c.Expect("b3", "SEARCH CHARSET ISO-8859-1 BODY {4+}\r\nK\xf6ln", "* SEARCH 1", "b3 OK SEARCH completed")
	// Valid text searches as before.
	c.Expect("c1", "SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncaf\xc3\xa9", "* SEARCH 1", "c1 OK SEARCH completed")
	c.Expect("c2", "SEARCH BODY {5+}\r\nK\xc3\x96LN", "* SEARCH 1", "c2 OK SEARCH completed")
	c.Expect("c3", "SEARCH CHARSET US-ASCII SUBJECT caf", "* SEARCH 1", "c3 OK SEARCH completed")
}

// KEYWORD and UNKEYWORD take a flag-keyword, an atom (RFC 3501 §9), and
// "\" is not an ATOM-CHAR: a system flag there is BAD, not a search for
// it. (Dovecot matches nothing instead; the grammar says BAD.)
func TestSearchKeywordSystemFlag(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	appendMsg(t, c, "p", "INBOX", `\Seen $Junk`, testMsg)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("k1", `SEARCH KEYWORD \Seen`, `k1 BAD Syntax error: KEYWORD takes a keyword (an atom), not \Seen`)
	c.Expect("k2", `SEARCH UNKEYWORD \Deleted`, `k2 BAD Syntax error: UNKEYWORD takes a keyword (an atom), not \Deleted`)
	c.Expect("k3", `UID SEARCH NOT KEYWORD \Recent`, `k3 BAD Syntax error: KEYWORD takes a keyword (an atom), not \Recent`)
	c.Expect("k4", `SEARCH KEYWORD \*`, `k4 BAD Syntax error: KEYWORD takes a keyword (an atom), not \*`)
	// Keywords and the system-flag keys work.
	c.Expect("k5", `SEARCH KEYWORD $junk`, "* SEARCH 1", "k5 OK SEARCH completed")
	c.Expect("k6", `SEARCH UNKEYWORD $Junk`, "* SEARCH", "k6 OK SEARCH completed")
	c.Expect("k7", `SEARCH SEEN RECENT`, "* SEARCH 1", "k7 OK SEARCH completed")
}

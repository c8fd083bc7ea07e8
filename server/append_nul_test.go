package server_test

import (
	"fmt"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

const nulRefused = "NO [CANNOT] Message contains NUL bytes; IMAP cannot carry them without BINARY (RFC 3516)"

// APPEND of a message with a NUL byte is refused with NO (RFC 3501 §4.3,
// §9: a literal is CHAR8, no NUL; §6.3.11: an error in the message text is
// a NO, the command itself parsed), after its literal has been read in
// full, so the connection goes on; MULTIAPPEND refuses all its messages.
// TestBadInput8BitAndNUL accepts BAD or NO for NUL in a literal mailbox
// name; this is the NO of that family.
func TestAppendNUL(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	withNUL := "Subject: x\r\n\r\nnul \x00 here\r\n"

	// Non-synchronizing literal.
	c.Expect("a1", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(withNUL), withNUL), "a1 "+nulRefused)
	// Synchronizing literal: the "+" comes, the bytes are read, then NO.
	c.SendLine(fmt.Sprintf("a2 APPEND INBOX (\\Seen) {%d}", len(withNUL)))
	if l := c.ReadLine(); l != "+ Ready for literal data" {
		t.Fatalf("a2: got %q, want the continuation", l)
	}
	c.Send(withNUL + "\r\n")
	if got := c.ReadUntilTagged("a2"); len(got) != 1 || got[0] != "a2 "+nulRefused {
		t.Errorf("a2: got %q, want %q", got, "a2 "+nulRefused)
	}
	// A NUL at the very end, and one alone.
	c.Expect("a3", "APPEND INBOX {13+}\r\nSubject: x\r\n\x00", "a3 "+nulRefused)
	c.Expect("a4", "APPEND INBOX {1+}\r\n\x00", "a4 "+nulRefused)
	// MULTIAPPEND (RFC 3502): a good message then a bad one: none is
	// appended.
	c.Expect("a5", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(testMsg), testMsg, len(withNUL), withNUL), "a5 "+nulRefused)
	c.Expect("a6", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(withNUL), withNUL, len(testMsg), testMsg), "a6 "+nulRefused)
	c.Expect("a7", "STATUS INBOX (MESSAGES UIDNEXT)", "* STATUS INBOX (MESSAGES 0 UIDNEXT 1)", "a7 OK STATUS completed")

	// The connection is still in step: a good APPEND works.
	c.Expect("a8", "NOOP", "a8 OK NOOP completed")
	if l := appendMsg(t, c, "a9", "INBOX", "", testMsg); !appendUIDRE.MatchString(l) || appendUIDRE.FindStringSubmatch(l)[2] != "1" {
		t.Errorf("a9: got %q, want APPENDUID ... 1", l)
	}
	// 8-bit bytes other than NUL are fine (RFC 3501 §4.3: CHAR8).
	eight := "Subject: caf\xc3\xa9\r\n\r\n\xff\xfe\x01\r\n"
	if l := appendMsg(t, c, "a10", "INBOX", "", eight); !appendUIDRE.MatchString(l) {
		t.Errorf("a10: got %q", l)
	}
}

package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// Fuzz session modes, chosen by the first byte of the input (mod 3), so
// that every state is fuzzed: the rest of the input is sent after the
// prefix of its mode.
var fuzzPrefixes = [3]string{
	"",                         // not authenticated
	"x LOGIN alice secret\r\n", // authenticated
	"x LOGIN alice secret\r\ny SELECT INBOX\r\n", // selected
}

// fuzzDeadline bounds one whole connection: past it without EOF from the
// server, the server hangs.
const fuzzDeadline = 5 * time.Second

// FuzzConnection feeds the fuzzer's bytes to one whole server connection
// and checks that the server neither panics (a connection panic the server
// recovers from is caught through the test server's OnPanic hook, see
// imaptest.Env.TakePanics) nor hangs (it must close the
// connection once the client has half-closed it), and that everything it
// sends is well-formed lines.
//
// One server serves every input of a fuzz worker process; inputs may
// change its store (mailboxes come and go), which is fine: the checks do
// not depend on the store's contents.
func FuzzConnection(f *testing.F) {
	env := imaptest.Start(f, func(o *server.Options) {
		o.PreAuthTimeout = 200 * time.Millisecond
		o.AutoLogoutTimeout = 200 * time.Millisecond
		o.LiteralTimeout = 100 * time.Millisecond
		o.WriteTimeout = time.Second
		o.FailedLoginDelay = time.Millisecond
		o.MaxMailboxes = 200
		// A tiny memory budget and spool threshold: literals go to
		// temporary files, and the budget is often spent.
		o.MemoryBudget = 4 << 10
		o.SpoolLiteral = 16
		o.SpoolDir = f.TempDir()
	})
	// A cheap password hash: the default bcrypt cost would make every
	// authenticated input spend ~60 ms in LOGIN.

	for _, seed := range fuzzSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		prefix := fuzzPrefixes[int(data[0])%len(fuzzPrefixes)]
		input := append([]byte(prefix), data[1:]...)
		out, reset, err := fuzzSession(env.Addr, input)
		if p := env.TakePanics(); len(p) > 0 {
			t.Fatalf("server panicked on input %q:\n%s", input, p[0])
		}
		if err != nil {
			t.Fatalf("input %q: %v\noutput so far: %q", input, err, out)
		}
		if reset {
			// The connection was reset (the server closed it with our
			// input unread): what was in flight may be lost, so only
			// the complete lines received are checked.
			out = out[:bytes.LastIndexByte(out, '\n')+1]
		}
		if err := checkResponses(out, reset); err != nil {
			t.Fatalf("input %q: malformed output: %v\noutput: %q", input, err, out)
		}
		// The connection has ended: it holds nothing of the budget.
		if st := env.Server.MemoryStats(); st.InUse != 0 || st.SpoolFiles != 0 || st.Waiting != 0 {
			t.Fatalf("input %q: memory still held after the connection: %+v", input, st)
		}
	})
}

// fuzzSession dials addr, writes input, half-closes and reads everything
// until EOF. reset reports that the read ended with an error other than
// EOF, such as a reset; err that the server did not close within
// fuzzDeadline.
func fuzzSession(addr string, input []byte) (out []byte, reset bool, err error) {
	nc, err := net.DialTimeout("tcp", addr, fuzzDeadline)
	if err != nil {
		return nil, false, fmt.Errorf("dial: %w", err)
	}
	defer nc.Close()
	deadline := time.Now().Add(fuzzDeadline)
	nc.SetDeadline(deadline)
	werr := make(chan error, 1)
	go func() {
		_, err := nc.Write(input)
		if err == nil {
			err = nc.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	out, rerr := io.ReadAll(nc)
	err = <-werr
	var ne net.Error
	if errors.As(rerr, &ne) && ne.Timeout() {
		return out, false, fmt.Errorf("hang: no EOF from the server within %v", fuzzDeadline)
	}
	if errors.As(err, &ne) && ne.Timeout() {
		// The server stopped reading but kept the connection open.
		return out, false, fmt.Errorf("hang: the server stopped reading for %v without closing", fuzzDeadline)
	}
	// A reset (the server closed with input unread) is a fine ending.
	return out, rerr != nil, nil
}

// checkResponses checks that out is a sequence of CRLF-terminated lines
// (literals {n} included) that each start with "*", "+" or a valid tag.
// When truncated, out may end inside a response.
func checkResponses(out []byte, truncated bool) error {
	lineStart := true
	for off := 0; off < len(out); {
		i := bytes.IndexByte(out[off:], '\n')
		if i < 0 {
			return fmt.Errorf("unterminated last line %q", out[off:])
		}
		line := out[off : off+i+1]
		at := off
		off += i + 1
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return fmt.Errorf("line at byte %d without CRLF: %q", at, line)
		}
		body := line[:len(line)-2]
		if j := bytes.IndexAny(body, "\r\x00"); j >= 0 {
			return fmt.Errorf("line at byte %d holds byte %#x: %q", at, body[j], line)
		}
		if lineStart {
			first, _, _ := bytes.Cut(body, []byte(" "))
			if s := string(first); s != "*" && s != "+" && !validTag(s) {
				return fmt.Errorf("line at byte %d starts with %q, neither \"*\", \"+\" nor a tag: %q", at, first, line)
			}
		}
		// A literal at the end of the line: its bytes follow, then the
		// rest of the same response.
		lineStart = true
		if n, ok := trailingLiteral(body); ok {
			if n > len(out)-off {
				if truncated {
					return nil
				}
				return fmt.Errorf("literal {%d} at byte %d runs past the end of the output", n, at)
			}
			off += n
			lineStart = false
		}
	}
	if !lineStart && !truncated {
		return errors.New("output ends right after a literal")
	}
	return nil
}

// trailingLiteral parses "{n}" at the end of a response line.
func trailingLiteral(b []byte) (int, bool) {
	if len(b) < 3 || b[len(b)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(b, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[i+1 : len(b)-1]))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// validTag reports whether s is an RFC 3501 tag: 1*<any ASTRING-CHAR
// except "+">.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', '+':
			return false
		}
	}
	return true
}

// fuzzSeeds are realistic sessions; the first byte picks the mode
// (fuzzPrefixes): "\x00" not authenticated, "\x01" authenticated, "\x02"
// selected.
var fuzzSeeds = []string{
	// Resumable sessions in each state (mode byte 1: authenticated, 2:
	// selected).
	"\x01s1 SID\r\ns2 SELECT INBOX\r\ns3 SID\r\ns4 DELETESID\r\ns5 DELETESID\r\n",
	"\x02s1 SID\r\ns2 SID nosuchid 1 1\r\ns3 SID \"q\" 1 0 1:5,7\r\ns4 SID {2+}\r\nab 4294967295 18446744073709551615 1\r\n",
	"\x02s1 SID x 0 1\r\ns2 SID x 1 -1\r\ns3 SID x 1 1 *\r\ns4 SID x 1 1 1:*\r\ns5 LOGOUT (PRESERVE)\r\n",
	"\x01s1 LOGOUT (PRESERVE FOO)\r\ns2 LOGOUT ()\r\ns3 LOGOUT (preserve)\r\n",
	"\x00a1 CAPABILITY\r\na2 NOOP\r\na3 LOGOUT\r\n",
	"\x00a1 LOGIN alice secret\r\na2 LIST \"\" *\r\na3 LOGOUT\r\n",
	"\x00a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\na2 SELECT INBOX\r\n",
	"\x00a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\na2 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)\r\n",
	"\x00a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\na2 NAMESPACE\r\n",
	"\x00a1 AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\na2 LSUB \"\" *\r\n",
	"\x00a1 LOGIN alice wrong\r\na2 LOGIN nobody x\r\na3 LOGIN alice nope\r\na4 NOOP\r\n",
	"\x00a1 ID (\"name\" \"fuzz\" \"version\" NIL)\r\na2 ID NIL\r\n",
	"\x00a1 LOGIN \"alice\r\na2 FROB\r\n\r\n* NOOP\r\na+ NOOP\r\n",
	"\x00a1 LOGIN {100000000}\r\na2 LOGIN {99999999999999999999+}\r\n",
	"\x00a1 STARTTLS\r\na2 SELECT INBOX\r\na3 ENABLE CONDSTORE\r\n",
	"\x01b1 LIST \"\" *\r\nb2 LIST \"\" %\r\nb3 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" * RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n",
	"\x01b1 CREATE Projects/2024/Q1\r\nb2 RENAME Projects Old/Projects\r\nb3 LIST \"\" Old/*\r\nb4 DELETE Old/Projects/2024/Q1\r\nb5 DELETE Old\r\n",
	"\x01b1 CREATE \"My Folder\"\r\nb2 SUBSCRIBE \"My Folder\"\r\nb3 LSUB \"\" *\r\nb4 UNSUBSCRIBE \"My Folder\"\r\nb5 DELETE \"My Folder\"\r\n",
	"\x01b1 CREATE Entw&APw-rfe\r\nb2 LIST \"\" Entw*\r\nb3 STATUS Entw&APw-rfe (UIDVALIDITY UIDNEXT SIZE)\r\nb4 DELETE Entw&APw-rfe\r\n",
	"\x01b1 STATUS {5}\r\nINBOX (MESSAGES UNSEEN RECENT)\r\nb2 STATUS {5+}\r\nINBOX (UIDNEXT)\r\n",
	"\x01b1 LIST (SPECIAL-USE) \"\" *\r\nb2 LIST \"\" * RETURN (SPECIAL-USE SUBSCRIBED)\r\nb3 LIST \"\" (INBOX Sent)\r\n",
	"\x01b1 EXAMINE INBOX\r\nb2 CHECK\r\nb3 UNSELECT\r\nb4 SELECT Drafts\r\nb5 CLOSE\r\n",
	"\x01b1 ENABLE CONDSTORE QRESYNC\r\nb2 RENAME INBOX Old-Inbox\r\nb3 LIST \"\" *\r\n",
	"\x01b1 CREATE a/\r\nb2 CREATE /b\r\nb3 CREATE a//b\r\nb4 CREATE \"a*\"\r\nb5 DELETE INBOX\r\n",
	"\x01b1 SELECT INBOX (CONDSTORE)\r\nb2 STATUS INBOX ()\r\nb3 LIST (FOO) \"\" *\r\nb4 LIST \"\" \"\"\r\n",
	"\x01b1 UID FETCH 1:* (FLAGS)\r\nb2 UID\r\nb3 SELECT \"INB\xc3\x96X\"\r\nb4 CREATE \"a\x00b\"\r\n",
	"\x02c1 CHECK\r\nc2 NOOP\r\nc3 CLOSE\r\nc4 SELECT Sent\r\nc5 DELETE Sent\r\nc6 NOOP\r\n",
	"\x02c1 EXAMINE INBOX\r\nc2 LIST \"\" *\r\nc3 UNSELECT\r\nc4 UNSELECT\r\nc5 LOGOUT\r\n",
	"\x02c1 CREATE {3}\r\nabc\r\nc2 LIST \"\" {1}\r\n*\r\nc3 DELETE abc\r\n",
	"\x02c1 IDLE\r\nDONE\r\nc2 FETCH 1 BODY[]\r\n",
	"\x02c1 SELECT INBOX\r\nc2 LIST \"\" {5}\r\n",
}

package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/wire"
)

// expectUsable checks that the connection still answers a command.
func expectUsable(t *testing.T, c *imaptest.Conn, tag string) {
	t.Helper()
	c.Expect(tag, "NOOP", tag+" OK NOOP completed")
}

// expectBadOrNo reads up to the response tagged tag (lines from an earlier
// untagged "* BAD" included) and checks that it is a BAD or a NO.
func expectBadOrNo(t *testing.T, c *imaptest.Conn, what, tag string) []string {
	t.Helper()
	lines := c.ReadUntilTagged(tag)
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, tag+" BAD ") && !strings.HasPrefix(last, tag+" NO ") {
		t.Errorf("%s: got %q, want %q or %q", what, lines, tag+" BAD ...", tag+" NO ...")
	}
	return lines
}

func TestBadInputUnknownCommand(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	c.Expect("a1", "FROBNICATE x (y) {z}", "a1 BAD Unknown command FROBNICATE")
	expectUsable(t, c, "a2")
	// The arguments of an unknown command are skipped, literals included:
	// a synchronizing one gets no "+" (the client must not send it), a
	// non-synchronizing one is read and dropped.
	c.Expect("a3", "FROB {5}", "a3 BAD Unknown command FROB")
	c.SendLine("a4 FROB {5+}")
	c.SendLine("hello more {3+}")
	c.SendLine("abc")
	if l := c.ReadLine(); l != "a4 BAD Unknown command FROB" {
		t.Errorf("FROB with non-synchronizing literals: got %q, want %q", l, "a4 BAD Unknown command FROB")
	}
	expectUsable(t, c, "a5")
	// UID with an unknown or missing subcommand.
	c.ExpectTagged("a6", "UID FROB 1:*", "a6 BAD")
	c.ExpectTagged("a7", "UID", "a7 BAD")
	expectUsable(t, c, "a8")
	// Same after authentication.
	c.ExpectTagged("a9", "LOGIN alice secret", "a9 OK")
	c.Expect("b1", "XYZZY", "b1 BAD Unknown command XYZZY")
	expectUsable(t, c, "b2")
}

func TestBadInputWrongState(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	c.Expect("a1", "SELECT INBOX", "a1 BAD SELECT not allowed in the not authenticated state")
	// The rejected command's literal is not requested.
	c.Expect("a2", "CREATE {5}", "a2 BAD CREATE not allowed in the not authenticated state")
	expectUsable(t, c, "a3")
	c.ExpectTagged("a4", "LOGIN alice secret", "a4 OK")
	c.Expect("a5", "UNSELECT", "a5 BAD UNSELECT not allowed in the authenticated state")
	c.Expect("a6", "LOGIN alice secret", "a6 BAD LOGIN not allowed in the authenticated state")
	c.ExpectTagged("a7", "EXAMINE INBOX", "a7 OK [READ-ONLY]")
	c.Expect("a8", "ENABLE X", "a8 BAD ENABLE not allowed in the selected state")
	// The wrong-state refusals changed nothing: still selected.
	c.Expect("a9", "CHECK", "a9 OK CHECK completed")
}

func TestBadInputOversizedLine(t *testing.T) {
	env := imaptest.Start(t, func(o *server.Options) { o.Limits = wire.Limits{MaxLine: 1024} })
	c := env.Dial(t)
	long := strings.Repeat("x", 2000)

	// A token past MaxLine: tagged BAD [LIMIT], the rest of the line is
	// skipped, the connection stays usable.
	c.Expect("a1", "LOGIN "+long+" secret", "a1 BAD [LIMIT] command line too long")
	expectUsable(t, c, "a2")

	// A much longer line (200 KiB) is skipped without being held.
	c.Expect("a3", "LOGIN "+strings.Repeat("y", 200<<10), "a3 BAD [LIMIT] command line too long")
	expectUsable(t, c, "a4")

	// A tag longer than MaxLine cannot be echoed: untagged BAD [LIMIT].
	c.SendLine(long + " NOOP")
	if l := c.ReadLine(); l != "* BAD [LIMIT] command line too long" {
		t.Errorf("over-long tag: got %q, want %q", l, "* BAD [LIMIT] command line too long")
	}
	expectUsable(t, c, "a5")

	// A line just under the limit is fine.
	c.ExpectTagged("a6", "LOGIN alice secret", "a6 OK")
	pat := strings.Repeat("%", 1024-len(`a7 LIST "" `)-2)
	c.ExpectTagged("a7", `LIST "" `+pat, "a7 OK LIST completed")
	// The limit counts each line of a command separately: a literal
	// resets it.
	c.SendLine(`a8 STATUS {5+}`)
	c.SendLine(`INBOX (MESSAGES` + strings.Repeat(" MESSAGES", 150) + `)`)
	if lines := c.ReadUntilTagged("a8"); !strings.HasPrefix(lines[len(lines)-1], "a8 BAD [LIMIT]") {
		t.Errorf("STATUS with a 1.3 KiB second line: got %q, want a8 BAD [LIMIT] ...", lines)
	}
	expectUsable(t, c, "a9")
}

func TestBadInputOversizedLiteral(t *testing.T) {
	env := imaptest.Start(t, nil)

	// Synchronizing: refused before the "+", the client never sends it.
	c := env.Dial(t)
	c.SendLine("a1 LOGIN {100000000}")
	if l := c.ReadLine(); l != "a1 NO [TOOBIG] literal too big" {
		t.Fatalf("synchronizing {100000000} before LOGIN: got %q, want %q (and no \"+\")", l, "a1 NO [TOOBIG] literal too big")
	}
	expectUsable(t, c, "a2")
	// Before authentication the literal limit is tight (64 KiB).
	c.SendLine("a3 LOGIN {70000}")
	if l := c.ReadLine(); l != "a3 NO [TOOBIG] literal too big" {
		t.Errorf("synchronizing {70000} before LOGIN: got %q, want %q", l, "a3 NO [TOOBIG] literal too big")
	}
	c.ExpectTagged("a4", "LOGIN alice secret", "a4 OK")
	// After authentication the default 64 MiB applies.
	c.SendLine("a5 CREATE {100000000}")
	if l := c.ReadLine(); l != "a5 NO [TOOBIG] literal too big" {
		t.Errorf("synchronizing {100000000} after LOGIN: got %q, want %q", l, "a5 NO [TOOBIG] literal too big")
	}
	// The refused literal's command is over; the next one works, a
	// literal included.
	c.SendLine("a6 STATUS {5}")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("STATUS {5}: got %q, want a continuation", l)
	}
	c.SendLine("INBOX (MESSAGES)")
	if lines := c.ReadUntilTagged("a6"); lines[len(lines)-1] != "a6 OK STATUS completed" {
		t.Errorf("STATUS with a literal after a refused literal: got %q", lines)
	}

	// Non-synchronizing and too big: the bytes are on their way and
	// cannot be skipped; tagged NO [TOOBIG], then BYE and close.
	c = env.Dial(t)
	c.SendLine("b1 LOGIN {100000000+}")
	c.Send(strings.Repeat("z", 4096))
	if l := c.ReadLine(); l != "b1 NO [TOOBIG] non-synchronizing literal too big" {
		t.Errorf("non-synchronizing {100000000+}: got %q, want %q", l, "b1 NO [TOOBIG] non-synchronizing literal too big")
	}
	if l := c.ReadLine(); !strings.HasPrefix(l, "* BYE ") {
		t.Errorf("non-synchronizing {100000000+}: got %q after the NO, want * BYE ...", l)
	}
	c.ExpectEOF(2 * time.Second)

	// A non-synchronizing literal within MaxNonSyncLiteral but refused for
	// another reason is skipped and the connection goes on.
	c = env.Dial(t)
	c.SendLine("c1 FROB {10+}")
	c.Send("0123456789\r\n")
	if l := c.ReadLine(); l != "c1 BAD Unknown command FROB" {
		t.Errorf("FROB {10+}: got %q", l)
	}
	expectUsable(t, c, "c2")
}

func TestBadInputUnterminatedQuoted(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	c.Expect("a1", `LOGIN "alice`, "a1 BAD Syntax error: unterminated quoted string")
	expectUsable(t, c, "a2")
	c.Expect("a3", `LOGIN "alice" "secr`, "a3 BAD Syntax error: unterminated quoted string")
	// A backslash right before the line end.
	c.Expect("a4", `LOGIN "alice\`, "a4 BAD Syntax error: unterminated quoted string")
	c.ExpectTagged("a5", `LOGIN "alice" "secret"`, "a5 OK")
	c.Expect("a6", `SELECT "INBOX`, "a6 BAD Syntax error: unterminated quoted string")
	expectUsable(t, c, "a7")
}

// waitConnGoroutines waits until no goroutine runs the server's
// per-connection code (a frame of server.(*conn)), and fails with the
// stacks if one still does after d. The server exposes no connection
// count; the goroutine dump is precise where runtime.NumGoroutine is not
// (the testing and database/sql goroutines come and go).
func waitConnGoroutines(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	buf := make([]byte, 4<<20)
	for {
		dump := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "quickimap/server.(*conn)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connection goroutine(s) still running %v after the connection ended:\n%s",
				len(leaked), d, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverStacks returns the stacks of the goroutines running server code.
func serverStacks() string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "quickimap/server.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func TestBadInputLiteralNeverSent(t *testing.T) {
	const timeout = 300 * time.Millisecond
	env := imaptest.Start(t, func(o *server.Options) { o.LiteralTimeout = timeout })
	for _, tc := range []struct {
		name, line, partial string
	}{
		{"nothing sent", "a1 LOGIN {5}", ""},
		{"part sent", "a1 LOGIN {5}", "al"},
		{"second literal", "a1 LOGIN {5}", "alice {6}\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := env.Dial(t)
			c.SendLine(tc.line)
			if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
				t.Fatalf("%s: got %q, want a continuation", tc.line, l)
			}
			start := time.Now()
			if tc.partial != "" {
				c.Send(tc.partial)
			}
			if strings.HasSuffix(tc.partial, "}\r\n") {
				if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
					t.Fatalf("second literal: got %q, want a continuation", l)
				}
			}
			if l := c.ReadLine(); l != "* BYE Autologout; idle for too long" {
				t.Errorf("literal not sent: got %q, want the autologout BYE", l)
			}
			c.ExpectEOF(time.Second)
			if el := time.Since(start); el < timeout-50*time.Millisecond || el > timeout+time.Second {
				t.Errorf("closed %v after the continuation, want about %v", el, timeout)
			}
			c.NC.Close()
			waitConnGoroutines(t, 2*time.Second)
		})
	}
}

func TestBadInput8BitAndNUL(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)

	// Before authentication (without wrong passwords, which would end the
	// connection after three).
	for i, tc := range []struct{ what, line string }{
		{"8-bit in a command name", "t NO\xffOP"},
		{"UTF-8 in a command name", "t N\xc3\xb6OP"},
		{"8-bit in an atom", "t LOGIN al\xe9ce secret"},
		{"NUL in an atom", "t LOGIN al\x00ice secret"},
		{"NUL in a quoted string", "t LOGIN \"al\x00ice\" secret"},
		{"NUL after a command", "t NOOP\x00"},
		{"NUL as the command", "t \x00"},
		{"bare CR", "t NOOP\rX"},
		{"8-bit in ID", "t ID (\"name\" \xff)"},
		{"DEL", "t NO\x7fOP"},
	} {
		tag := "a" + string(rune('A'+i))
		line := strings.Replace(tc.line, "t ", tag+" ", 1)
		c.SendLine(line)
		expectBadOrNo(t, c, tc.what+" "+strconv.Quote(line), tag)
	}
	expectUsable(t, c, "b1")

	c.ExpectTagged("b2", "LOGIN alice secret", "b2 OK")
	for i, tc := range []struct{ what, line string }{
		{"8-bit in a mailbox atom", "t SELECT INB\xf6X"},
		{"invalid UTF-8 in a quoted mailbox", "t SELECT \"caf\xe9\""},
		{"valid UTF-8 (not mUTF-7) in a quoted mailbox", "t CREATE \"caf\xc3\xa9\""},
		{"invalid UTF-8 in CREATE", "t CREATE \"bad\xff\xfename\""},
		{"NUL in a quoted mailbox", "t CREATE \"a\x00b\""},
		{"8-bit in a LIST pattern", "t LIST \"\" \"\xff*\""},
		{"NUL in a LIST pattern", "t LIST \"\" \"\x00\""},
		{"8-bit in STATUS items", "t STATUS INBOX (MESS\xc3\xa4GES)"},
		{"8-bit in SUBSCRIBE", "t SUBSCRIBE \"\xc0\xaf\""},
		{"8-bit in RENAME", "t RENAME Junk \"\xed\xa0\x80\""},
	} {
		tag := "c" + string(rune('A'+i))
		line := strings.Replace(tc.line, "t ", tag+" ", 1)
		c.SendLine(line)
		lines := c.ReadUntilTagged(tag)
		last := lines[len(lines)-1]
		// LIST with a pattern that matches nothing is fine too, and so is
		// CREATE of a valid UTF-8 name (liberal: RFC 6855 style), which
		// is removed again.
		okList := strings.Contains(tc.line, "LIST") && last == tag+" OK LIST completed" && len(lines) == 1
		okUTF8 := strings.HasPrefix(tc.what, "valid UTF-8") && last == tag+" OK CREATE completed"
		if okUTF8 {
			c.ExpectTagged(tag+"x", "DELETE "+strings.TrimPrefix(tc.line, "t CREATE "), tag+"x OK")
		}
		if !strings.HasPrefix(last, tag+" BAD ") && !strings.HasPrefix(last, tag+" NO ") && !okList && !okUTF8 {
			t.Errorf("%s %s: got %q, want %s BAD or NO", tc.what, strconv.Quote(line), lines, tag)
		}
	}
	// NUL inside a literal: the literal is read, the name refused.
	c.SendLine("d1 CREATE {3}")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("CREATE {3}: got %q, want a continuation", l)
	}
	c.SendLine("a\x00b")
	expectBadOrNo(t, c, "NUL in a literal mailbox name", "d1")
	// Nothing was created.
	c.Expect("d2", `LIST "" *`,
		`* LIST (\HasNoChildren \Archive) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
		`d2 OK LIST completed`)
	expectUsable(t, c, "d3")
}

func TestBadInputClientNeverReads(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	env := imaptest.Start(t, func(o *server.Options) { o.WriteTimeout = writeTimeout })
	nc, err := net.Dial("tcp", env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	// Make LIST answers big (100 mailboxes with long names: ~20 KiB per
	// LIST), so that the socket buffers fill fast even on a slow machine
	// or under the race detector.
	setup := env.DialLogin(t)
	for i := range 100 {
		setup.ExpectTagged("m", fmt.Sprintf("CREATE box%03d-%s", i, strings.Repeat("x", 180)), "m OK")
	}
	// Log in, reading the greeting and the answer: from here on, nothing
	// is read.
	login := []byte("L LOGIN alice secret\r\n")
	if _, err := nc.Write(login); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	got := ""
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.Contains(got, "L OK") {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("reading the LOGIN answer: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}

	// Pipeline LISTs without ever reading. The server's writes block once the socket buffers are
	// full, and must fail after WriteTimeout, which closes the
	// connection: with the server gone, our writes fail with a reset or a
	// broken pipe.
	batch := []byte(strings.Repeat("x LIST \"\" *\r\n", 50))
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var sent int64
	var werr error
	for time.Now().Before(deadline) {
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := nc.Write(batch)
		sent += int64(n)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // everything is full; keep pushing until the server gives up
			}
			werr = err
			break
		}
	}
	if werr == nil {
		t.Fatalf("server still accepting commands %v after the client stopped reading (sent %d bytes); WriteTimeout %v does not bound blocked writes\nserver goroutines:\n%s",
			time.Since(start), sent, writeTimeout, serverStacks())
	}
	if !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(werr, syscall.EPIPE) {
		t.Errorf("write after the server gave up: %v, want a reset or broken pipe", werr)
	}
	t.Logf("server closed the connection %v after the pipelining began (%d bytes sent)", time.Since(start), sent)

	// Reading now gives what was buffered, then an error or EOF, never a
	// timeout.
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("reading after the server gave up: %v, want EOF or a reset", err)
	}
	// The server is fine for others.
	c := env.DialLogin(t)
	expectUsable(t, c, "z1")
}

func TestBadInputEmptyLine(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	c.SendLine("")
	c.SendLine("a1 NOOP")
	lines := c.ReadUntilTagged("a1")
	// An empty line is a command without a tag: an untagged BAD, or
	// nothing.
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "* BAD ") {
			t.Errorf("empty line: got %q, want * BAD or nothing", l)
		}
	}
	if last := lines[len(lines)-1]; last != "a1 OK NOOP completed" {
		t.Errorf("NOOP after an empty line: got %q", lines)
	}
	// Many of them do not end the connection nor make the server hold
	// anything.
	c.Send(strings.Repeat("\r\n", 50))
	c.SendLine("a2 NOOP")
	lines = c.ReadUntilTagged("a2")
	if len(lines) != 1 && len(lines) != 51 {
		t.Errorf("50 empty lines: %d responses, want 0 or 50 untagged BADs: %q", len(lines)-1, lines)
	}
	// A bare LF is an empty line as well.
	c.Send("\n")
	c.SendLine("a3 NOOP")
	lines = c.ReadUntilTagged("a3")
	if len(lines) > 2 || lines[len(lines)-1] != "a3 OK NOOP completed" || len(lines) == 2 && !strings.HasPrefix(lines[0], "* BAD ") {
		t.Errorf("bare LF then NOOP: got %q, want [* BAD ...] and a3 OK", lines)
	}
}

func TestBadInputTagOnly(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	for _, line := range []string{"a1", "a1 ", "a1  NOOP"} {
		c.SendLine(line)
		l := c.ReadLine()
		if !strings.HasPrefix(l, "a1 BAD ") && !strings.HasPrefix(l, "* BAD ") {
			t.Errorf("%q: got %q, want a1 BAD or * BAD", line, l)
		}
	}
	expectUsable(t, c, "a2")
}

func TestBadInputInvalidTag(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	for _, line := range []string{
		"a{1 NOOP", "a+1 NOOP", "+ NOOP", "* NOOP", `a"1 NOOP`, "a%1 NOOP", "a*1 NOOP",
		"(a) NOOP", "a(1 NOOP", "a)1 NOOP", "a\\1 NOOP", "\x01a NOOP", "{3} NOOP", " a1 NOOP",
	} {
		c.SendLine(line)
		l := c.ReadLine()
		// The tag is unusable, so the BAD is untagged (RFC 3501 §7.1.3).
		if !strings.HasPrefix(l, "* BAD ") {
			t.Errorf("invalid tag %s: got %q, want * BAD ...", strconv.Quote(line), l)
		}
	}
	expectUsable(t, c, "a1")
	// "]" is an ASTRING-CHAR and may appear in a tag.
	c.Expect("a]1", "NOOP", "a]1 OK NOOP completed")
}

func TestBadInputPreAuthTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	env := imaptest.Start(t, func(o *server.Options) { o.PreAuthTimeout = timeout })

	c := env.Dial(t)
	start := time.Now()
	c.NC.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l := c.ReadLine(); l != "* BYE Not logged in in time; closing" {
		t.Errorf("idle before LOGIN: got %q, want the pre-auth timeout BYE", l)
	}
	c.ExpectEOF(time.Second)
	if el := time.Since(start); el < timeout-50*time.Millisecond || el > timeout+time.Second {
		t.Errorf("closed %v after the greeting, want about %v", el, timeout)
	}

	// The timeout counts the total time, not silence: commands do not
	// keep the connection open past it.
	c = env.Dial(t)
	start = time.Now()
	for i := 0; ; i++ {
		tag := fmt.Sprint("n", i)
		c.SendLine(tag + " NOOP")
		if l := c.ReadLine(); l != tag+" OK NOOP completed" {
			if l != "* BYE Not logged in in time; closing" {
				t.Errorf("NOOP before the pre-auth deadline: got %q", l)
			}
			break
		}
		if time.Since(start) > timeout+time.Second {
			t.Fatalf("NOOPs still answered %v after the greeting", time.Since(start))
		}
		time.Sleep(timeout / 10) // the client's pace
	}
	if el := time.Since(start); el < timeout-50*time.Millisecond {
		t.Errorf("closed %v after the greeting, want about %v", el, timeout)
	}
	// After LOGIN it no longer applies (AutoLogoutTimeout does).
	c = env.Dial(t)
	c.ExpectTagged("l1", "LOGIN alice secret", "l1 OK")
	time.Sleep(2 * timeout)
	expectUsable(t, c, "l2")
}

func TestBadInputShutdownSaysBye(t *testing.T) {
	env := imaptest.Start(t, nil)
	idle := env.Dial(t)
	authed := env.DialLogin(t)
	authed.ExpectTagged("s1", "SELECT INBOX", "s1 OK")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- env.Server.Shutdown(ctx) }()

	for name, c := range map[string]*imaptest.Conn{"not authenticated": idle, "selected": authed} {
		if l := c.ReadLine(); l != "* BYE Server shutting down" {
			t.Errorf("%s connection at Shutdown: got %q, want %q", name, l, "* BYE Server shutting down")
		}
		c.ExpectEOF(2 * time.Second)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return within 5 s")
	}
	// New connections are refused.
	if nc, err := net.DialTimeout("tcp", env.Addr, time.Second); err == nil {
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(nc)
		nc.Close()
		if s := string(b); s != "" && !strings.HasPrefix(s, "* BYE") {
			t.Errorf("connection after Shutdown got %q, want nothing or a BYE", s)
		}
	}
}

package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/wire"
)

func readAll(s string, lim Limits) ([]*response, error) {
	r := newReader(bufio.NewReader(strings.NewReader(s)), lim)
	var out []*response
	for {
		resp, err := r.read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
}

func TestReaderResponses(t *testing.T) {
	in := "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n" +
		"+ \r\n" +
		"+\r\n" +
		"a1 OK [READ-WRITE] SELECT completed\r\n" +
		"* 12 EXISTS\r\n" +
		"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n" +
		"* OK [HIGHESTMODSEQ 20010715194045007]\r\n" +
		"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n" +
		"* 3 FETCH (UID 7 FLAGS (\\Seen $Fwd) MODSEQ (12))\r\n" +
		"* VANISHED (EARLIER) 1:3,5\r\n" +
		"* SELECTED {5}\r\nIN\"OX\r\n" +
		"* SELECTED\r\n" +
		"* NEWSID \"a b\"\r\n" +
		"* ESEARCH (TAG \"a4\") UID ALL 1:5,9\r\n" +
		"* SEARCH 1 2 3 (MODSEQ 9)\r\n" +
		"* 1 FETCH (BODY[] ~{3}\r\nabc)\r\n" +
		"* BYE\r\n" +
		"* LIST (\\Noselect) NIL \"\"\r\n"
	rs, err := readAll(in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 18 {
		t.Fatalf("%d responses", len(rs))
	}
	if rs[0].code != "CAPABILITY" || rs[0].codeArg != "IMAP4rev1 SASL-IR AUTH=PLAIN" || rs[0].text != "ready" {
		t.Errorf("greeting %+v", rs[0])
	}
	if rs[1].tag != "+" || rs[2].tag != "+" {
		t.Errorf("continuations %+v %+v", rs[1], rs[2])
	}
	if rs[3].tag != "a1" || rs[3].code != "READ-WRITE" {
		t.Errorf("tagged %+v", rs[3])
	}
	if !rs[4].hasNum || rs[4].num != 12 || rs[4].name != "EXISTS" {
		t.Errorf("exists %+v", rs[4])
	}
	if rs[6].codeArg != "20010715194045007" {
		t.Errorf("modseq %+v", rs[6])
	}
	f := rs[8].args[0].list
	if len(f) != 6 || f[1].s != "7" || len(f[3].list) != 2 || f[5].list[0].s != "12" {
		t.Errorf("fetch %+v", rs[8])
	}
	if rs[10].args[0].s != "IN\"OX" || len(rs[11].args) != 0 || rs[12].args[0].s != "a b" {
		t.Errorf("selected/newsid %+v %+v %+v", rs[10], rs[11], rs[12])
	}
	if rs[15].args[0].list[1].s != "abc" {
		t.Errorf("literal8 %+v", rs[15])
	}
	if rs[17].args[1].kind != vNIL {
		t.Errorf("NIL %+v", rs[17])
	}
}

func TestReaderMalformed(t *testing.T) {
	lim := Limits{MaxLine: 100, MaxLiteral: 10, MaxDepth: 3, MaxItems: 20}
	for _, in := range []string{
		"* 1 FETCH (UID 1\r\n",
		"* OK [UIDNEXT 5\r\n",
		"* 1 FETCH (((((x)))))\r\n",
		"* SEARCH " + strings.Repeat("1 ", 30) + "\r\n",
		"* X {11}\r\nhello world\r\n",
		"* X \"abc\r\n",
		"* X \"a\\qb\"\r\n",
		"* X " + strings.Repeat("a", 200) + "\r\n",
		"a1 FETCH x\r\n",
		"* X {1x}\r\n",
		"*\r\n",
		"* 99999999999 EXISTS\r\n",
		"* X)\r\n",
	} {
		if _, err := readAll(in, lim); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestUIDSet(t *testing.T) {
	s, err := parseUIDSet("9:7,1,3:4,5")
	if err != nil {
		t.Fatal(err)
	}
	if s.size() != 7 || !s.contains(8) || s.contains(2) || s.contains(6) == false && s.contains(10) {
		t.Errorf("set %v", s)
	}
	for _, bad := range []string{"", "*", "1:*", "0", "a", "1,,2", "4294967296"} {
		if _, err := parseUIDSet(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSplitLiterals(t *testing.T) {
	b := buildCommand("a1", func(e *wireEncoder) { e.Atom("LOGIN ").Astring("bob").SP().Astring("p\r\nw") })
	segs, err := splitLiterals(b, false)
	if err != nil || len(segs) != 2 || string(segs[0]) != "a1 LOGIN bob {4}\r\n" || string(segs[1]) != "p\r\nw\r\n" {
		t.Errorf("sync: %q %v", segs, err)
	}
	segs, err = splitLiterals(b, true)
	if err != nil || len(segs) != 1 || string(segs[0]) != "a1 LOGIN bob {4+}\r\np\r\nw\r\n" {
		t.Errorf("LITERAL+: %q %v", segs, err)
	}
	b = buildCommand("a2", func(e *wireEncoder) { e.Atom("LOGIN ").Astring(`we"ird`).SP().Astring("") })
	if string(b) != "a2 LOGIN \"we\\\"ird\" \"\"\r\n" {
		t.Errorf("quoting: %q", b)
	}
}

// FuzzReader feeds arbitrary bytes to the reader and the response
// handler: errors are fine, panics are not.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"* OK [CAPABILITY IMAP4rev1] x\r\n* 3 EXISTS\r\n* 2 EXPUNGE\r\n",
		"* 1 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (3))\r\n* VANISHED (EARLIER) 1:4\r\n",
		"* SELECTED INBOX\r\n* NEWSID x\r\n* EXPUNGED 2,4:9\r\n* DELETEDSID x\r\n",
		"* ESEARCH (TAG \"a\") UID ALL 1:3\r\n* SEARCH 1 2\r\na1 OK [HIGHESTMODSEQ 9] x\r\n",
		"* 1 FETCH (BODY[] {3}\r\nabc)\r\n+ go\r\n* BYE bye\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := New(Options{})
		c.cn = &conn{done: map[string]*response{}, caps: map[string]bool{}, preCaps: map[string]bool{}, exists: 5}
		c.st = MailboxState{Messages: []Message{{UID: 1}, {UID: 2}, {UID: 5, Flags: []string{"a"}}}}
		c.live = &liveCtx{}
		if len(b) > 0 && b[0]&1 == 1 {
			c.live = nil
			c.sync = &syncCtx{inResume: true, fullSeen: map[uint32]struct{}{}}
		}
		r := newReader(bufio.NewReader(strings.NewReader(string(b))), Limits{MaxLine: 4096, MaxLiteral: 4096, MaxDepth: 8, MaxItems: 1000})
		c.cn.r = r
		for i := 0; i < 50; i++ {
			resp, err := r.read()
			if err != nil {
				var pe *ProtocolError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &pe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if c.dispatch(resp) != nil {
				return
			}
			_ = c.sameMailbox("INBOX")
		}
		_ = diffEvents(&MailboxState{}, &c.st, "")
		_ = context.Background()
	})
}

type wireEncoder = wire.Encoder

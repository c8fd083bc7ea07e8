package wire

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/imap"
)

func encode(f func(e *Encoder)) (string, error) {
	var buf bytes.Buffer
	w := bufio.NewWriterSize(&buf, 16)
	e := NewEncoder(w)
	f(e)
	err := e.Flush()
	return buf.String(), err
}

func TestEncoder(t *testing.T) {
	loc := time.FixedZone("", -7*3600)
	tests := []struct {
		name string
		f    func(e *Encoder)
		want string
	}{
		{"status", func(e *Encoder) {
			e.Star().Atom("OK").SP().Code("UIDNEXT", 5).Text("Predicted next UID").CRLF()
		}, "* OK [UIDNEXT 5] Predicted next UID\r\n"},
		{"tagged", func(e *Encoder) { e.Tag("a001").Atom("OK").SP().Text("done").CRLF() }, "a001 OK done\r\n"},
		{"plus", func(e *Encoder) { e.Plus().Text("Ready").CRLF() }, "+ Ready\r\n"},
		{"numbers", func(e *Encoder) { e.Number(0).SP().Number(4294967295).SP().Number64(18446744073709551615) },
			"0 4294967295 18446744073709551615"},
		{"special", func(e *Encoder) { e.Special('(').NIL().Special(')') }, "(NIL)"},
		{"string quoted", func(e *Encoder) { e.String(`a "b" \c`) }, `"a \"b\" \\c"`},
		{"string empty", func(e *Encoder) { e.String("") }, `""`},
		{"quoted", func(e *Encoder) { e.Quoted("x") }, `"x"`},
		{"string CRLF", func(e *Encoder) { e.String("a\r\nb") }, "{4}\r\na\r\nb"},
		{"string NUL", func(e *Encoder) { e.String("\x00") }, "{1}\r\n\x00"},
		{"string 8bit", func(e *Encoder) { e.String("ä") }, "{2}\r\nä"},
		{"string tab", func(e *Encoder) { e.String("a\tb") }, "{3}\r\na\tb"},
		{"string long", func(e *Encoder) { e.String(strings.Repeat("x", 1025)) }, "{1025}\r\n" + strings.Repeat("x", 1025)},
		{"string 1024", func(e *Encoder) { e.String(strings.Repeat("x", 1024)) }, `"` + strings.Repeat("x", 1024) + `"`},
		{"astring atom", func(e *Encoder) { e.Astring("INBOX").SP().Astring("a]b").SP().Astring("~x/y") }, "INBOX a]b ~x/y"},
		{"astring NIL", func(e *Encoder) { e.Astring("NIL").SP().Astring("nIl") }, `"NIL" "nIl"`},
		{"astring empty", func(e *Encoder) { e.Astring("") }, `""`},
		{"astring specials", func(e *Encoder) {
			e.Astring("a b").SP().Astring("a(").SP().Astring("%").SP().Astring("*").SP().Astring(`a"`).SP().Astring("{")
		}, `"a b" "a(" "%" "*" "a\"" "{"`},
		{"astring 8bit", func(e *Encoder) { e.Astring("ü") }, "{2}\r\nü"},
		{"nstring", func(e *Encoder) { e.NString("x", true).SP().NString("x", false) }, `"x" NIL`},
		{"literal", func(e *Encoder) { e.Literal([]byte("hello")).Literal(nil) }, "{5}\r\nhello{0}\r\n"},
		{"mailbox", func(e *Encoder) { e.Mailbox("INBOX", false).SP().Mailbox("Entwürfe", false) }, "INBOX Entw&APw-rfe"},
		{"mailbox spaces", func(e *Encoder) { e.Mailbox("Gelöschte Elemente", false) }, `"Gel&APY-schte Elemente"`},
		{"mailbox amp", func(e *Encoder) { e.Mailbox("A&B", false) }, "A&-B"},
		{"mailbox inbox spelling", func(e *Encoder) { e.Mailbox("inbox", false) }, "inbox"},
		{"mailbox nil", func(e *Encoder) { e.Mailbox("Nil", false) }, `"Nil"`},
		{"mailbox utf8", func(e *Encoder) { e.Mailbox("Entwürfe", true).SP().Mailbox("a&b", true).SP().Mailbox("a b", true) },
			`"Entwürfe" a&b "a b"`},
		{"mailbox utf8 invalid", func(e *Encoder) { e.Mailbox("a\xff", true) }, "{2}\r\na\xff"},
		{"flags", func(e *Encoder) { e.Flags([]string{`\Seen`, "$Forwarded"}).SP().Flags(nil) }, `(\Seen $Forwarded) ()`},
		{"datetime", func(e *Encoder) { e.DateTime(time.Date(1996, 7, 7, 2, 44, 25, 0, loc)) }, `"07-Jul-1996 02:44:25 -0700"`},
		{"datetime utc", func(e *Encoder) { e.DateTime(time.Date(2024, 12, 25, 23, 0, 5, 0, time.UTC)) }, `"25-Dec-2024 23:00:05 +0000"`},
		{"seqset", func(e *Encoder) {
			e.SeqSet(imap.SeqSet{{Start: 1, Stop: 3}, {Start: 5, Stop: 5}, {Start: 7, Stop: 0}}).SP().SeqSet(imap.UIDSetFromSorted([]uint32{1, 3, 5, 7, 9, 11, 12}))
		}, "1:3,5,7:* 1,3,5,7,9,11:12"},
		{"code bare", func(e *Encoder) { e.Code("READ-WRITE") }, "[READ-WRITE] "},
		{"code args", func(e *Encoder) {
			e.Code("COPYUID", uint32(38505), imap.SeqSet{{Start: 304, Stop: 304}, {Start: 319, Stop: 320}}, imap.SeqSet{{Start: 3956, Stop: 3958}})
		}, "[COPYUID 38505 304,319:320 3956:3958] "},
		{"code types", func(e *Encoder) {
			e.Code("X", "a", uint32(1), uint64(2), 3, int64(-4), int32(5), uint(6), uint16(7), []string{"A", "B"})
		}, "[X a 1 2 3 -4 5 6 7 (A B)] "},
		{"code start/end", func(e *Encoder) { e.CodeStart("BADCHARSET").SP().Special('(').Astring("UTF-8").Special(')').CodeEnd() },
			"[BADCHARSET (UTF-8)] "},
		{"text", func(e *Encoder) { e.Text("a\r\nb\x00c\td\x7fe ü") }, "a  b c d e ü"},
		{"text empty", func(e *Encoder) { e.Text("") }, "done"},
		{"text trailing CR", func(e *Encoder) { e.Text("x\r") }, "x "},
	}
	for _, tt := range tests {
		got, err := encode(tt.f)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("boom")
}

func TestEncoderStickyError(t *testing.T) {
	fw := &failWriter{}
	w := bufio.NewWriterSize(fw, 16)
	e := NewEncoder(w)
	e.Atom(strings.Repeat("x", 40))
	if e.Err() == nil {
		t.Fatal("no error")
	}
	first := e.Err()
	e.String("abc").Number(5).Literal([]byte("x")).CRLF()
	if e.Flush() != first || e.Err() != first {
		t.Fatal("error not sticky")
	}
	if fw.n != 1 {
		t.Errorf("%d writes after the error", fw.n)
	}

	var buf bytes.Buffer
	e = NewEncoder(bufio.NewWriter(&buf))
	e.Code("X", struct{}{})
	if e.Err() == nil {
		t.Error("unsupported Code argument accepted")
	}
	e = NewEncoder(bufio.NewWriter(&buf))
	e.Atom("abc")
	if e.Buffered() != 3 {
		t.Errorf("Buffered = %d", e.Buffered())
	}
}

func TestEncoderSeqSetNoAlloc(t *testing.T) {
	set := imap.SeqSet{{Start: 1, Stop: 1}, {Start: 3, Stop: 4294967295}, {Start: 4294967294, Stop: 4294967295},
		{Start: 7, Stop: 0}, {Start: 9, Stop: 9}, {Start: 4000000000, Stop: 4000000001}, {Start: 12, Stop: 13}}
	got, err := encode(func(e *Encoder) { e.SeqSet(set) })
	if want := set.String(); err != nil || got != want {
		t.Fatalf("SeqSet = %q, %v; want %q", got, err, want)
	}
	e := NewEncoder(bufio.NewWriter(discard{}))
	if n := testing.AllocsPerRun(100, func() { e.SeqSet(set) }); n != 0 {
		t.Fatalf("SeqSet of %d ranges: %v allocations", len(set), n)
	}
}

func BenchmarkEncodeFetchFlags(b *testing.B) {
	w := bufio.NewWriter(discard{})
	e := NewEncoder(w)
	flags := []string{`\Seen`, `\Answered`, "$Forwarded"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Star().Number(uint32(i)).Atom(" FETCH (UID ").Number(uint32(i + 1000)).Atom(" FLAGS ").Flags(flags).Atom(" MODSEQ (").Number64(123456789).Atom("))").CRLF()
	}
	if err := e.Flush(); err != nil {
		b.Fatal(err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestLiteralFrom(t *testing.T) {
	src := strings.NewReader("0123456789abcdefghij")
	for _, tc := range []struct {
		off, n int64
		buf    int
		want   string
	}{
		{0, 20, 7, "{20}\r\n0123456789abcdefghij"},
		{5, 10, 3, "{10}\r\n56789abcde"},
		{5, 10, 100, "{10}\r\n56789abcde"},
		{19, 1, 1, "{1}\r\nj"},
		{3, 0, 1, "{0}\r\n"},
	} {
		got, err := encode(func(e *Encoder) { e.Atom("x ").LiteralFrom(src, tc.off, tc.n, make([]byte, tc.buf)).Atom(")") })
		if err != nil || got != "x "+tc.want+")" {
			t.Errorf("LiteralFrom(%d, %d) = %q, %v; want %q", tc.off, tc.n, got, err, tc.want)
		}
	}
	// A source shorter than the literal's announced length is an error.
	_, err := encode(func(e *Encoder) { e.LiteralFrom(src, 15, 10, make([]byte, 4)) })
	if err == nil {
		t.Error("LiteralFrom past the end of its source: no error")
	}
}

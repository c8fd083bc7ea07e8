package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/imap"
)

// bufSizes are the bufio sizes every table test runs with: the smallest
// one makes tokens span buffer refills.
var bufSizes = []int{16, 4096}

func newTestDecoder(in string, size int, lim Limits) (*Decoder, *bufio.Reader) {
	r := bufio.NewReaderSize(strings.NewReader(in), size)
	return NewDecoder(r, lim), r
}

func rest(r *bufio.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// errKind classifies an error for the tables.
func errKind(err error) string {
	var syn *SyntaxError
	var lim *LimitError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &syn):
		return "syntax"
	case errors.As(err, &lim):
		if lim.Fatal {
			return "fatal " + lim.Code
		}
		return lim.Code
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other: " + err.Error()
}

type tokCase struct {
	in   string
	want string // the value, formatted with %v
	err  string // errKind of the error
	rest string // input left after the call
}

func runTokCases(t *testing.T, name string, lim Limits, fn func(d *Decoder) (any, error), cases []tokCase) {
	t.Helper()
	for _, size := range bufSizes {
		for _, tc := range cases {
			d, r := newTestDecoder(tc.in, size, lim)
			d.Begin()
			v, err := fn(d)
			got := ""
			if err == nil {
				got = fmt.Sprint(v)
			}
			if k := errKind(err); k != tc.err {
				t.Errorf("%s(%q) [buf %d]: error %v (%s), want %q", name, tc.in, size, err, k, tc.err)
				continue
			}
			if err == nil && got != tc.want {
				t.Errorf("%s(%q) [buf %d] = %q, want %q", name, tc.in, size, got, tc.want)
			}
			if left := rest(r); tc.rest != "-" && left != tc.rest {
				t.Errorf("%s(%q) [buf %d]: left %q, want %q", name, tc.in, size, left, tc.rest)
			}
		}
	}
}

func TestAtom(t *testing.T) {
	long := strings.Repeat("x", 100)
	runTokCases(t, "Atom", Limits{}, func(d *Decoder) (any, error) { return d.Atom() }, []tokCase{
		{"FETCH ", "FETCH", "", " "},
		{"fEtCh\r\n", "fEtCh", "", "\r\n"},
		{"a\n", "a", "", "\n"},
		{"BODY.PEEK[HEADER]", "BODY.PEEK[HEADER", "", "]"}, // '[' is an ATOM-CHAR
		{"a]b", "a", "", "]b"},
		{"x(", "x", "", "("},
		{"x)", "x", "", ")"},
		{"x{", "x", "", "{"},
		{"x%", "x", "", "%"},
		{"x*", "x", "", "*"},
		{"x\"", "x", "", "\""},
		{"x\\", "x", "", "\\"},
		{"x\x7f", "x", "", "\x7f"},
		{"+$-_.~!#&'+,/:;<=>?@[^`|}", "+$-_.~!#&'+,/:;<=>?@[^`|}", "", ""},
		{long + " x", long, "", " x"},
		{long, long, "", ""}, // at EOF the token is returned
		{"", "", "eof", ""},
		{" x", "", "syntax", " x"},
		{"\r\n", "", "syntax", "\r\n"},
		{"(x", "", "syntax", "(x"},
		{"]", "", "syntax", "]"},
		{"é", "", "syntax", "é"},
		{"abé", "", "syntax", "abé"},
		{"ab\x80 ", "", "syntax", "ab\x80 "},
		{"\x00", "", "syntax", "\x00"},
	})
}

func TestTag(t *testing.T) {
	runTokCases(t, "Tag", Limits{}, func(d *Decoder) (any, error) { return d.Tag() }, []tokCase{
		{"a001 NOOP", "a001", "", " NOOP"},
		{"]x] ", "]x]", "", " "},
		{"a+b ", "a", "", "+b "},
		{"+ ", "", "syntax", "+ "},
		{"* OK", "", "syntax", "* OK"},
		{"\r\n", "", "syntax", "\r\n"},
		{"\n", "", "syntax", "\n"},
		{" a", "", "syntax", " a"},
	})
}

func TestQuoted(t *testing.T) {
	long := strings.Repeat("0123456789", 20)
	runTokCases(t, "Quoted", Limits{}, func(d *Decoder) (any, error) { return d.Quoted() }, []tokCase{
		{`"abc" x`, "abc", "", " x"},
		{`""`, "", "", ""},
		{`"a\"b\\c"`, `a"b\c`, "", ""},
		{`"\\\\\\"`, `\\\`, "", ""},
		{`"` + long + `"X`, long, "", "X"},
		{`"` + long + `\"` + long + `"X`, long + `"` + long, "", "X"},
		{"\"häh 日本\"", "häh 日本", "", ""},
		{"\"tab\there\"", "tab\there", "", ""},
		{`"a b (c) {5} * % ]"`, "a b (c) {5} * % ]", "", ""},
		{"\"abc\r\n", "", "syntax", "\r\n"},
		{"\"abc\nx", "", "syntax", "\nx"},
		{"\"" + long + "\r\n", "", "syntax", "\r\n"},
		{"\"a\\\r\n", "", "syntax", "\\\r\n"},
		{`"a\x"`, "", "syntax", `x"`[0:0] + `\x"`},
		{`"a\n"`, "", "syntax", `\n"`},
		{"\"a\x00b\"", "", "syntax", "\x00b\""},
		{`abc`, "", "syntax", "abc"},
		{`"abc`, "", "eof", ""},
		{"", "", "eof", ""},
	})
}

func TestNumbers(t *testing.T) {
	num := func(d *Decoder) (any, error) { return d.Number() }
	runTokCases(t, "Number", Limits{}, num, []tokCase{
		{"0 ", "0", "", " "},
		{"123)", "123", "", ")"},
		{"000042\r\n", "42", "", "\r\n"},
		{"4294967295 ", "4294967295", "", " "},
		{"00000000000000000004294967295 ", "4294967295", "", " "},
		{"4294967296 ", "", "syntax", "-"},
		{"99999999999", "", "syntax", "-"},
		{"-1", "", "syntax", "-1"},
		{"x", "", "syntax", "x"},
		{"\r\n", "", "syntax", "\r\n"},
		{"12", "12", "", ""},
	})
	runTokCases(t, "NzNumber", Limits{}, func(d *Decoder) (any, error) { return d.NzNumber() }, []tokCase{
		{"1 ", "1", "", " "},
		{"0 ", "", "syntax", " "},
		{"000 ", "", "syntax", " "},
	})
	runTokCases(t, "Number64", Limits{}, func(d *Decoder) (any, error) { return d.Number64() }, []tokCase{
		{"9223372036854775807 ", "9223372036854775807", "", " "},
		{"9223372036854775808 ", "", "syntax", "-"},
		{"18446744073709551616 ", "", "syntax", "-"},
		{"4294967296)", "4294967296", "", ")"},
	})
}

func TestSeqSet(t *testing.T) {
	ss := func(d *Decoder) (any, error) {
		s, err := d.SeqSet()
		return s.String(), err
	}
	runTokCases(t, "SeqSet", Limits{}, ss, []tokCase{
		{"1 ", "1", "", " "},
		{"1:3,5,7:* ", "1:3,5,7:*", "", " "},
		{"*\r\n", "*", "", "\r\n"},
		{"*:4,3:2 (", "*:4,3:2", "", " ("},
		{"001:0002 ", "1:2", "", " "},
		{"4294967295:1", "4294967295:1", "", ""},
		{"0 ", "", "syntax", " "},
		{"1:0 ", "", "syntax", " "},
		{"1, ", "", "syntax", " "},
		{"1: ", "", "syntax", " "},
		{",1 ", "", "syntax", ",1 "},
		{"$ ", "", "syntax", "$ "},
		{"1,$ ", "", "syntax", "$ "},
		{"4294967296 ", "", "syntax", "-"},
		{"\r\n", "", "syntax", "\r\n"},
		{"1:3,\r\n", "", "syntax", "\r\n"},
	})
	// MaxItems bounds the ranges.
	runTokCases(t, "SeqSet", Limits{MaxItems: 3}, ss, []tokCase{
		{"1,2,3 ", "1:1,2:2,3:3"[0:0] + "1,2,3", "", " "},
		{"1,2,3,4 ", "", "LIMIT", " "},
	})
	d, _ := newTestDecoder("5:*,2 ", 16, Limits{})
	got, err := d.SeqSet()
	if want := (imap.SeqSet{{Start: 5, Stop: 0}, {Start: 2, Stop: 2}}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("SeqSet = %v, %v; want %v", got, err, want)
	}
}

func TestFlag(t *testing.T) {
	runTokCases(t, "Flag", Limits{}, func(d *Decoder) (any, error) { return d.Flag() }, []tokCase{
		{`\Seen `, `\Seen`, "", " "},
		{`\seen)`, `\seen`, "", ")"},
		{`\* `, `\*`, "", " "},
		{`$Forwarded)`, `$Forwarded`, "", ")"},
		{`\Answered\Seen`, `\Answered`, "", `\Seen`},
		{`\ `, "", "syntax", " "},
		{`\) `, "", "syntax", ") "},
		{`( `, "", "syntax", "( "},
		{`\*x`, `\*`, "", "x"},
		{`\Fläg`, "", "syntax", "äg"[0:0] + "Fläg"},
	})
}

func TestStrings(t *testing.T) {
	str := func(d *Decoder) (any, error) { return d.String() }
	runTokCases(t, "String", Limits{}, str, []tokCase{
		{`"abc" `, "abc", "", " "},
		{"{3}\r\nabc ", "abc", "", " "},
		{"{3+}\r\nabc ", "abc", "", " "},
		{"{0}\r\n\r\n", "", "", "\r\n"},
		{"abc", "", "syntax", "abc"},
		{"NIL", "", "syntax", "NIL"},
		{"~{3}\r\nabc", "", "syntax", "~{3}\r\nabc"},
	})
	astr := func(d *Decoder) (any, error) { return d.Astring() }
	runTokCases(t, "Astring", Limits{}, astr, []tokCase{
		{`"a b" `, "a b", "", " "},
		{"{3}\r\na\x00b)", "a\x00b", "", ")"},
		{"INBOX ", "INBOX", "", " "},
		{"Foo]Bar ", "Foo]Bar", "", " "},
		{"~peter/mail ", "~peter/mail", "", " "},
		{"NIL ", "NIL", "", " "},
		{"foo(", "foo", "", "("},
		{"(", "", "syntax", "("},
		{"\r\n", "", "syntax", "\r\n"},
		{"%", "", "syntax", "%"},
		{"Entwürfe ", "", "syntax", "Entwürfe "},
	})
	lm := func(d *Decoder) (any, error) { return d.ListMailbox() }
	runTokCases(t, "ListMailbox", Limits{}, lm, []tokCase{
		{"* ", "*", "", " "},
		{"%/foo*]\r\n", "%/foo*]", "", "\r\n"},
		{`"%" `, "%", "", " "},
		{"{1}\r\n*\r\n", "*", "", "\r\n"},
		{"(", "", "syntax", "("},
	})
	ns := func(d *Decoder) (any, error) {
		s, ok, err := d.NString()
		if !ok {
			return "<nil>", err
		}
		return s, err
	}
	runTokCases(t, "NString", Limits{}, ns, []tokCase{
		{"NIL ", "<nil>", "", " "},
		{"nil)", "<nil>", "", ")"},
		{`"NIL" `, "NIL", "", " "},
		{`"" `, "", "", " "},
		{"{2}\r\nab", "ab", "", ""},
		{"NILS ", "", "syntax", " "},
		{"x ", "", "syntax", " "},
		{"( ", "", "syntax", "( "},
	})
}

func TestDateTime(t *testing.T) {
	dt := func(d *Decoder) (any, error) {
		tm, err := d.DateTime()
		return tm.Format(time.RFC3339), err
	}
	runTokCases(t, "DateTime", Limits{}, dt, []tokCase{
		{`"17-Jul-1996 02:44:25 -0700" `, "1996-07-17T02:44:25-07:00", "", " "},
		{`" 7-JUL-1996 02:44:25 +0000"`, "1996-07-07T02:44:25Z", "", ""},
		{`"07-jul-1996 23:59:59 +1345"`, "1996-07-07T23:59:59+13:45", "", ""},
		{`"7-Jul-1996 02:44:25 -0700"`, "1996-07-07T02:44:25-07:00", "", ""},
		{`"29-Feb-2024 00:00:00 +0100"`, "2024-02-29T00:00:00+01:00", "", ""},
		{`"31-Dec-1999 23:59:60 +0000"`, "1999-12-31T23:59:59Z", "", ""},
		{`"29-Feb-2023 00:00:00 +0100"`, "", "syntax", ""},
		{`"32-Jan-2023 00:00:00 +0100"`, "", "syntax", ""},
		{`"00-Jan-2023 00:00:00 +0100"`, "", "syntax", ""},
		{`"17-Jux-1996 02:44:25 -0700"`, "", "syntax", ""},
		{`"17-Jul-96 02:44:25 -0700"`, "", "syntax", ""},
		{`"17-Jul-1996 24:00:00 -0700"`, "", "syntax", ""},
		{`"17-Jul-1996 02:60:00 -0700"`, "", "syntax", ""},
		{`"17-Jul-1996 02:44:25 -0760"`, "", "syntax", ""},
		{`"17-Jul-1996 02:44:25 0700"`, "", "syntax", ""},
		{`"17-Jul-1996 02:44:25 -0700 "`, "", "syntax", ""},
		{`"17-Jul-1996 2:44:25 -0700"`, "", "syntax", ""},
		{`"  7-Jul-1996 02:44:25 -0700"`, "", "syntax", ""},
		{`"117-Jul-1996 02:44:25 -0700"`, "", "syntax", ""},
		{`17-Jul-1996`, "", "syntax", "17-Jul-1996"},
		{"\"17-Jul-1996\r\n", "", "syntax", "\r\n"},
	})
	date := func(d *Decoder) (any, error) {
		tm, err := d.Date()
		return tm.Format(time.RFC3339), err
	}
	runTokCases(t, "Date", Limits{}, date, []tokCase{
		{"1-Feb-1994 ", "1994-02-01T00:00:00Z", "", " "},
		{"01-feb-1994)", "1994-02-01T00:00:00Z", "", ")"},
		{`"25-DEC-2020"` + "\r\n", "2020-12-25T00:00:00Z", "", "\r\n"},
		{"1-Feb-94 ", "", "syntax", " "},
		{"1-Feb-1994x ", "", "syntax", " "},
		{"001-Feb-1994 ", "", "syntax", " "},
		{"31-Apr-1994 ", "", "syntax", " "},
		{" 1-Feb-1994", "", "syntax", " 1-Feb-1994"},
		{`" 1-Feb-1994"`, "", "syntax", ""},
	})
}

func TestLine(t *testing.T) {
	line := func(d *Decoder) (any, error) { return d.Line() }
	long := strings.Repeat("YWJj", 30)
	runTokCases(t, "Line", Limits{}, line, []tokCase{
		{"DONE\r\nA1 NOOP\r\n", "DONE", "", "A1 NOOP\r\n"},
		{"done\nx", "done", "", "x"},
		{"\r\n", "", "", ""},
		{long + "\r\n", long, "", ""},
		{"a\rb\r\n", "a\rb", "", ""},
		{"{5}\r\nx", "{5}", "", "x"},
		{"abc", "", "eof", ""},
	})
	runTokCases(t, "Line", Limits{MaxLine: 10}, line, []tokCase{
		{"0123456789\r\n", "0123456789", "", ""},
		{"0123456789a\r\n", "", "LIMIT", "-"},
	})
	// After a failed Line, Discard skips the rest of the line.
	for _, size := range bufSizes {
		d, r := newTestDecoder(strings.Repeat("x", 100)+"\r\nNEXT", size, Limits{MaxLine: 10})
		if _, err := d.Line(); errKind(err) != "LIMIT" {
			t.Fatalf("Line: %v", err)
		}
		if err := d.Discard(); err != nil {
			t.Fatalf("Discard: %v", err)
		}
		if left := rest(r); left != "NEXT" {
			t.Errorf("left %q", left)
		}
	}
}

func TestPunctuation(t *testing.T) {
	for _, size := range bufSizes {
		d, r := newTestDecoder("( x)\r\n", size, Limits{})
		if d.Peek() != '(' || d.AtEOL() {
			t.Fatal("Peek/AtEOL")
		}
		if err := d.SP(); errKind(err) != "syntax" {
			t.Fatalf("SP at '(': %v", err)
		}
		if d.Maybe(')') {
			t.Fatal("Maybe(')') at '('")
		}
		if !d.Maybe('(') {
			t.Fatal("Maybe('(')")
		}
		if err := d.Special(')'); errKind(err) != "syntax" {
			t.Fatalf("Special(')') at SP: %v", err)
		}
		if err := d.SP(); err != nil {
			t.Fatal(err)
		}
		if err := d.CRLF(); errKind(err) != "syntax" {
			t.Fatalf("CRLF at x: %v", err)
		}
		if a, err := d.Atom(); a != "x" || err != nil {
			t.Fatal(a, err)
		}
		if err := d.Special(')'); err != nil {
			t.Fatal(err)
		}
		if !d.AtEOL() || d.Peek() != '\r' {
			t.Fatal("AtEOL")
		}
		if err := d.CRLF(); err != nil {
			t.Fatal(err)
		}
		if d.Peek() != 0 || d.AtEOL() {
			t.Fatal("Peek at EOF")
		}
		if err := d.CRLF(); !errors.Is(err, io.EOF) {
			t.Fatalf("CRLF at EOF: %v", err)
		}
		if rest(r) != "" {
			t.Fatal("rest")
		}
	}
	// Bare LF; CR without LF.
	d, r := newTestDecoder("\nA\rB\r", 16, Limits{})
	if !d.AtEOL() || d.CRLF() != nil {
		t.Fatal("bare LF")
	}
	d.Atom()
	if err := d.CRLF(); errKind(err) != "syntax" {
		t.Fatalf("CR without LF: %v", err)
	}
	if left := rest(r); left != "\rB\r" {
		t.Fatalf("left %q", left)
	}
}

func TestList(t *testing.T) {
	// A generic element: an astring or a nested list.
	var elem func(d *Decoder, out *[]string) func() error
	elem = func(d *Decoder, out *[]string) func() error {
		return func() error {
			if d.Peek() == '(' {
				*out = append(*out, "(")
				err := d.List(elem(d, out))
				*out = append(*out, ")")
				return err
			}
			s, err := d.Astring()
			*out = append(*out, s)
			return err
		}
	}
	list := func(d *Decoder) (any, error) {
		var out []string
		err := d.List(elem(d, &out))
		return strings.Join(out, ","), err
	}
	runTokCases(t, "List", Limits{}, list, []tokCase{
		{"() ", "", "", " "},
		{"(a) ", "a", "", " "},
		{"(a b \"c d\" {1}\r\ne)\r\n", "a,b,c d,e", "", "\r\n"},
		{"(a (b (c)) ())", "a,(,b,(,c,),),(,)", "", ""},
		{"(a  b)", "", "syntax", " b)"},
		{"( a)", "", "syntax", " a)"},
		{"(a )", "", "syntax", ")"},
		{"(a\r\n", "", "syntax", "\r\n"},
		{"a)", "", "syntax", "a)"},
		{"(a b", "", "eof", ""},
	})
	runTokCases(t, "List", Limits{MaxDepth: 2, MaxItems: 3}, list, []tokCase{
		{"((a b c))", "(,a,b,c,)", "", ""},
		{"(((a)))", "", "LIMIT", "(a)))"},
		{"(a b c d)", "", "LIMIT", "d)"},
	})
}

func TestLiteral(t *testing.T) {
	lit := func(d *Decoder) (any, error) {
		b, err := d.Literal()
		return string(b), err
	}
	big := strings.Repeat("0123456789abcdef", 100)
	runTokCases(t, "Literal", Limits{}, lit, []tokCase{
		{"{5}\r\nhello\r\n", "hello", "", "\r\n"},
		{"{5}\nhello\r\n", "hello", "", "\r\n"},
		{"{5+}\r\nhello", "hello", "", ""},
		{"{0}\r\n", "", "", ""},
		{"{0005}\r\nhello", "hello", "", ""},
		{"~{3}\r\na\x00b", "a\x00b", "", ""},
		{"~{3+}\r\na\x00b", "a\x00b", "", ""},
		{"{6}\r\n\r\n\xff\x00\r\n", "\r\n\xff\x00\r\n", "", ""},
		{fmt.Sprintf("{%d}\r\n%s)", len(big), big), big, "", ")"},
		{"{5}\r\nhel", "", "eof", ""},
		{"{5}", "", "eof", ""},
		{"{5} \r\n", "", "syntax", " \r\n"},
		{"{5}x", "", "syntax", "x"},
		{"{5\r\n", "", "syntax", "\r\n"},
		{"{}\r\n", "", "syntax", "}\r\n"},
		{"{+}\r\n", "", "syntax", "+}\r\n"},
		{"{-1}\r\n", "", "syntax", "-1}\r\n"},
		{"{5+-}\r\n", "", "syntax", "-}\r\n"},
		{"~5\r\n", "", "syntax", "~5\r\n"},
		{"\"a\"", "", "syntax", "\"a\""},
	})
}

func TestLiteralContinuation(t *testing.T) {
	var events []string
	// The reader records each time the decoder asks the stream for bytes
	// beyond the announcement: the literal's bytes must not be read before
	// the continuation.
	sr := &scriptReader{chunks: []string{"a1 LOGIN {4}\r\n", "fred {6}\r\n", "secret\r\n"}, events: &events}
	d := NewDecoder(bufio.NewReader(sr), Limits{})
	d.SetContinuation(func() error { events = append(events, "+"); return nil })
	d.Begin()
	tag, _ := d.Tag()
	d.SP()
	cmd, _ := d.Atom()
	d.SP()
	user, err := d.Astring()
	if err != nil {
		t.Fatal(err)
	}
	d.SP()
	pass, err := d.Astring()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CRLF(); err != nil {
		t.Fatal(err)
	}
	if tag != "a1" || cmd != "LOGIN" || user != "fred" || pass != "secret" {
		t.Fatalf("got %q %q %q %q", tag, cmd, user, pass)
	}
	want := []string{"read 0", "+", "read 1", "+", "read 2"}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}

	// LITERAL+: no continuation.
	events = nil
	sr = &scriptReader{chunks: []string{"a1 LOGIN {4+}\r\nfred {6+}\r\nsecret\r\n"}, events: &events}
	d = NewDecoder(bufio.NewReader(sr), Limits{})
	d.SetContinuation(func() error { t.Error("continuation for LITERAL+"); return nil })
	d.Begin()
	d.Tag()
	d.SP()
	d.Atom()
	d.SP()
	d.Astring()
	d.SP()
	if pass, err := d.Astring(); pass != "secret" || err != nil || d.CRLF() != nil {
		t.Fatal(pass, err)
	}

	// The continuation refuses: its error comes back and Discard stops at
	// the end of the line (the client waits for "+").
	refuse := errors.New("refused")
	d, r := newTestDecoder("a1 LOGIN {4}\r\nb1 NOOP\r\n", 16, Limits{})
	d.SetContinuation(func() error { return refuse })
	d.Begin()
	d.Tag()
	d.SP()
	d.Atom()
	d.SP()
	if _, err := d.Astring(); err != refuse {
		t.Fatalf("Astring: %v, want refuse", err)
	}
	if err := d.Discard(); err != nil {
		t.Fatal(err)
	}
	if left := rest(r); left != "b1 NOOP\r\n" {
		t.Fatalf("left %q", left)
	}
}

// scriptReader serves its chunks one Read at a time and fails if read past
// the end (which means the decoder read ahead of the command).
type scriptReader struct {
	chunks []string
	n      int
	events *[]string
}

func (s *scriptReader) Read(p []byte) (int, error) {
	if s.n >= len(s.chunks) {
		*s.events = append(*s.events, "read past end")
		return 0, errors.New("read ahead")
	}
	*s.events = append(*s.events, fmt.Sprintf("read %d", s.n))
	n := copy(p, s.chunks[s.n])
	if n < len(s.chunks[s.n]) {
		s.chunks[s.n] = s.chunks[s.n][n:]
	} else {
		s.n++
	}
	return n, nil
}

func TestLiteralLimits(t *testing.T) {
	lim := Limits{MaxLiteral: 10, MaxNonSyncLiteral: 20, MaxCommand: 100}
	for _, size := range bufSizes {
		for _, tc := range []struct {
			in        string
			err       string
			contCalls int
			rest      string // after Discard
		}{
			{"{10}\r\n0123456789\r\nX", "", 1, "\r\nX"},
			{"{11}\r\nX", "TOOBIG", 0, "X"},
			{"{11+}\r\n01234567890\r\nX", "TOOBIG", 0, "X"},
			{"{21+}\r\nX", "fatal TOOBIG", 0, "\r\nX"},
			{"{99999999999999999999999}\r\nX", "TOOBIG", 0, "X"},
			{"{99999999999999999999999+}\r\nX", "fatal TOOBIG", 0, "\r\nX"},
			{"~{11}\r\nX", "TOOBIG", 0, "X"},
		} {
			d, r := newTestDecoder(tc.in, size, lim)
			calls := 0
			d.SetContinuation(func() error { calls++; return nil })
			d.Begin()
			_, err := d.Literal()
			if errKind(err) != tc.err || calls != tc.contCalls {
				t.Errorf("Literal(%q): %v, %d continuations; want %q, %d", tc.in, err, calls, tc.err, tc.contCalls)
				continue
			}
			if err != nil {
				derr := d.Discard()
				if le, ok := err.(*LimitError); ok && le.Fatal {
					if derr != err {
						t.Errorf("%q: Discard after fatal error: %v", tc.in, derr)
					}
					continue
				}
				if derr != nil {
					t.Errorf("%q: Discard: %v", tc.in, derr)
				}
			}
			if left := rest(r); left != tc.rest {
				t.Errorf("Literal(%q): left %q, want %q", tc.in, left, tc.rest)
			}
		}
	}
	// MaxCommand counts the literals of the command.
	d, _ := newTestDecoder("a {10}\r\n0123456789 {10}\r\n0123456789 {10}\r\n", 4096, Limits{MaxCommand: 30})
	d.Begin()
	d.Atom()
	d.SP()
	if _, err := d.Literal(); err != nil {
		t.Fatal(err)
	}
	d.SP()
	if _, err := d.Literal(); errKind(err) != "TOOBIG" {
		t.Fatalf("second literal: %v", err)
	}
	d, _ = newTestDecoder("a {10+}\r\n0123456789 {10+}\r\n0123456789 {10}\r\n", 4096, Limits{MaxCommand: 30})
	d.Begin()
	d.Atom()
	d.SP()
	d.Literal()
	d.SP()
	if _, err := d.Literal(); errKind(err) != "fatal TOOBIG" {
		t.Fatalf("second literal: %v", err)
	}
}

func TestLineLimits(t *testing.T) {
	// MaxLine counts per physical line: a literal resets it.
	in := "a1 X " + strings.Repeat("a", 10) + " {3+}\r\nabc " + strings.Repeat("b", 15) + "\r\n"
	for _, size := range bufSizes {
		d, _ := newTestDecoder(in, size, Limits{MaxLine: 20})
		d.Begin()
		d.Tag()
		d.SP()
		d.Atom()
		d.SP()
		if a, err := d.Atom(); err != nil || len(a) != 10 {
			t.Fatal(a, err)
		}
		d.SP()
		if _, err := d.Literal(); err != nil {
			t.Fatal(err)
		}
		d.SP()
		if _, err := d.Atom(); err != nil {
			t.Fatal(err)
		}
		if err := d.CRLF(); err != nil {
			t.Fatal(err)
		}
	}
	// A long atom gives a LIMIT error, and Discard skips the line.
	for _, size := range bufSizes {
		d, r := newTestDecoder("a1 "+strings.Repeat("x", 200)+"\r\nNEXT", size, Limits{MaxLine: 20})
		d.Begin()
		d.Tag()
		d.SP()
		if _, err := d.Atom(); errKind(err) != "LIMIT" {
			t.Fatalf("Atom: %v", err)
		}
		if err := d.Discard(); err != nil {
			t.Fatal(err)
		}
		if left := rest(r); left != "NEXT" {
			t.Fatalf("left %q", left)
		}
	}
	// ... unless the line is longer than MaxCommand: fatal.
	for _, size := range bufSizes {
		d, _ := newTestDecoder("a1 "+strings.Repeat("x", 200)+"\r\nNEXT", size, Limits{MaxLine: 20, MaxCommand: 100})
		d.Begin()
		d.Tag()
		d.SP()
		if _, err := d.Quoted(); errKind(err) != "syntax" {
			t.Fatalf("Quoted: %v", err)
		}
		if err := d.Discard(); errKind(err) != "fatal LIMIT" {
			t.Fatalf("Discard: %v", err)
		}
		if err := d.Discard(); errKind(err) != "fatal LIMIT" {
			t.Fatalf("Discard again: %v", err)
		}
	}
	// MaxCommand while parsing is fatal.
	d, _ := newTestDecoder("a1 "+strings.Repeat("x", 200)+"\r\n", 4096, Limits{MaxCommand: 100})
	d.Begin()
	d.Tag()
	d.SP()
	if _, err := d.Atom(); errKind(err) != "fatal LIMIT" {
		t.Fatalf("Atom: %v", err)
	}
	// Begin resets the counters.
	d, _ = newTestDecoder("a1 NOOP\r\na2 NOOP\r\na3 NOOP\r\n", 4096, Limits{MaxCommand: 10, MaxLine: 9})
	for i := 0; i < 3; i++ {
		d.Begin()
		d.Tag()
		d.SP()
		if _, err := d.Atom(); err != nil {
			t.Fatal(err)
		}
		if err := d.CRLF(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDiscard(t *testing.T) {
	lim := Limits{MaxLiteral: 100, MaxNonSyncLiteral: 50, MaxCommand: 200}
	tests := []struct {
		name string
		in   string
		// prep runs before Discard.
		prep func(d *Decoder) error
		err  string // of Discard
		rest string
	}{
		{"mid-line", "a1 FOO bar baz\r\nNEXT", atomThenFail, "", "NEXT"},
		{"bare LF", "a1 FOO bar\nNEXT", atomThenFail, "", "NEXT"},
		{"at EOL", "a1 FOO\r\nNEXT", atomThenFail, "", "NEXT"},
		{"sync literal at end", "a1 FOO bar {5}\r\nNEXT", atomThenFail, "", "NEXT"},
		{"sync literal8 at end", "a1 FOO bar ~{5}\r\nNEXT", atomThenFail, "", "NEXT"},
		{"non-sync literal", "a1 FOO bar {5+}\r\nab\r\nc x y\r\nNEXT", atomThenFail, "", "NEXT"},
		{"non-sync then sync", "a1 FOO {3+}\r\nabc {4}\r\nNEXT", atomThenFail, "", "NEXT"},
		{"two non-sync", "a1 FOO {3+}\r\n{\r\n {2+}\n}\nz\r\nNEXT", atomThenFail, "", "NEXT"},
		{"non-sync bare LF", "a1 FOO {3+}\nabc\nNEXT", atomThenFail, "", "NEXT"},
		{"non-sync too big", "a1 FOO {51+}\r\nNEXT", atomThenFail, "fatal TOOBIG", "NEXT"},
		{"non-sync beyond MaxCommand", "a1 FOO {50+}\r\n" + strings.Repeat(strings.Repeat("x", 50)+"{50+}\r\n", 3) + strings.Repeat("x", 50) + "\r\nNEXT", atomThenFail, "fatal TOOBIG", "-"},
		{"literal not at end", "a1 FOO {5} x\r\nNEXT", atomThenFail, "", "NEXT"},
		{"not a literal", "a1 FOO {x}\r\n{}\r\n", atomThenFail, "", "{}\r\n"},
		{"brace only", "a1 FOO }\r\nNEXT", atomThenFail, "", "NEXT"},
		{"eof", "a1 FOO bar", atomThenFail, "eof", ""},
		{"eof in literal", "a1 FOO {5+}\r\nab", atomThenFail, "eof", ""},
		{"long line", "a1 FOO " + strings.Repeat("x", 150) + "\r\nNEXT", atomThenFail, "", "NEXT"},
		{"too long line", "a1 FOO " + strings.Repeat("x", 250) + "\r\nNEXT", atomThenFail, "fatal LIMIT", "-"},
		{"after CRLF", "a1 NOOP\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			return d.CRLF()
		}, "", "NEXT"},
		{"refused sync literal", "a1 X {101}\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			_, err := d.Literal()
			return err
		}, "", "NEXT"},
		{"refused non-sync literal", "a1 X {60+}\r\n" + strings.Repeat("x", 60) + " y\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			_, err := d.Literal()
			if le, ok := err.(*LimitError); !ok || !le.Fatal {
				return fmt.Errorf("want fatal, got %v", err)
			}
			return nil
		}, "fatal TOOBIG", "-"},
		{"literal refused by caller", "a1 X {10+}\r\n0123456789 y {5}\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			d.Atom() // fails at '{'
			return nil
		}, "", "NEXT"},
		{"literal announcement bad", "a1 X {10+x}\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			d.Literal()
			return nil
		}, "", "NEXT"},
		{"literal no CRLF", "a1 X {10+} {3+}\r\nabc\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			d.Literal()
			return nil
		}, "", "NEXT"},
		{"after literal data", "a1 X {3}\r\nabc junk\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			d.Literal()
			return d.CRLF()
		}, "", "NEXT"},
		{"unterminated quoted", "a1 X \"abc\r\nNEXT", func(d *Decoder) error {
			d.Tag()
			d.SP()
			d.Atom()
			d.SP()
			_, err := d.Quoted()
			if errKind(err) != "syntax" {
				return err
			}
			return nil
		}, "", "NEXT"},
	}
	for _, size := range bufSizes {
		for _, tc := range tests {
			d, r := newTestDecoder(tc.in, size, lim)
			d.Begin()
			if err := tc.prep(d); err != nil && errKind(err) != "syntax" && errKind(err) != "TOOBIG" {
				t.Errorf("%s: prep: %v", tc.name, err)
				continue
			}
			err := d.Discard()
			if errKind(err) != tc.err {
				t.Errorf("%s [buf %d]: Discard = %v, want %q", tc.name, size, err, tc.err)
				continue
			}
			if tc.rest != "-" {
				if left := rest(r); left != tc.rest {
					t.Errorf("%s [buf %d]: left %q, want %q", tc.name, size, left, tc.rest)
				}
			}
		}
	}
}

// atomThenFail reads "tag SP atom" and then fails on a CRLF that is not
// there (or succeeds, when the line ends there: Discard then has nothing
// to skip but the line end).
func atomThenFail(d *Decoder) error {
	d.Tag()
	d.SP()
	d.Atom()
	if !d.AtEOL() {
		return d.CRLF()
	}
	return nil
}

// TestCommands reads a sequence of commands the way the server does.
func TestCommands(t *testing.T) {
	in := "a1 CAPABILITY\r\n" +
		"a2 LOGIN {4+}\r\nfred \"se\\\"cret\"\r\n" +
		"a3 BAD ( \r\n" +
		"a4 SELECT INBOX\n" +
		"a5 UID FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)])\r\n" +
		"a6 STORE 1 +FLAGS.SILENT (\\Seen $Junk)\r\n" +
		"a7 APPEND Drafts (\\Draft) \" 1-Jan-2024 10:00:00 +0100\" {11+}\r\nhello world\r\n" +
		"a8 LOGOUT\r\n"
	var out []string
	for _, size := range bufSizes {
		out = out[:0]
		d, _ := newTestDecoder(in, size, Limits{})
		for {
			d.Begin()
			tag, err := d.Tag()
			if errors.Is(err, io.EOF) {
				break
			}
			line, err := parseCommand(d)
			if err != nil {
				out = append(out, tag+" ERR "+errKind(err))
				if err := d.Discard(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			out = append(out, tag+" "+line)
		}
		want := []string{
			"a1 CAPABILITY",
			"a2 LOGIN fred se\"cret",
			"a3 ERR syntax",
			"a4 SELECT INBOX",
			"a5 UID FETCH 1:*,3 (FLAGS BODY.PEEK [HEADER.FIELDS (From Subject)])",
			"a6 STORE 1 +FLAGS.SILENT (\\Seen $Junk)",
			"a7 APPEND Drafts (\\Draft) 2024-01-01T10:00:00+01:00 hello world",
			"a8 LOGOUT",
		}
		if !reflect.DeepEqual(out, want) {
			t.Errorf("[buf %d] got\n%s\nwant\n%s", size, strings.Join(out, "\n"), strings.Join(want, "\n"))
		}
	}
}

// parseCommand parses the rest of a command after its tag in a simplified
// server style and renders what it read. It is shared with the fuzz test.
func parseCommand(d *Decoder) (string, error) {
	var b strings.Builder
	if err := d.SP(); err != nil {
		return "", err
	}
	name, err := d.Atom()
	if err != nil {
		return "", err
	}
	b.WriteString(name)
	name = strings.ToUpper(name)
	if name == "UID" {
		if err := d.SP(); err != nil {
			return "", err
		}
		if name, err = d.Atom(); err != nil {
			return "", err
		}
		b.WriteString(" " + name)
		name = strings.ToUpper(name)
	}
	sp := func() error {
		b.WriteByte(' ')
		return d.SP()
	}
	switch name {
	case "CAPABILITY", "NOOP", "LOGOUT":
	case "LOGIN":
		for i := 0; i < 2; i++ {
			if err := sp(); err != nil {
				return "", err
			}
			s, err := d.Astring()
			if err != nil {
				return "", err
			}
			b.WriteString(s)
		}
	case "SELECT", "EXAMINE", "CREATE", "DELETE":
		if err := sp(); err != nil {
			return "", err
		}
		s, err := d.Astring()
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	case "LIST":
		if err := sp(); err != nil {
			return "", err
		}
		s, err := d.Astring()
		if err != nil {
			return "", err
		}
		b.WriteString(s)
		if err := sp(); err != nil {
			return "", err
		}
		if s, err = d.ListMailbox(); err != nil {
			return "", err
		}
		b.WriteString(s)
	case "FETCH", "STORE", "COPY":
		if err := sp(); err != nil {
			return "", err
		}
		set, err := d.SeqSet()
		if err != nil {
			return "", err
		}
		b.WriteString(set.String())
		if err := sp(); err != nil {
			return "", err
		}
		if name == "STORE" {
			a, err := d.Atom()
			if err != nil {
				return "", err
			}
			b.WriteString(a)
			if err := sp(); err != nil {
				return "", err
			}
			if err := flagList(d, &b); err != nil {
				return "", err
			}
			break
		}
		if err := generic(d, &b); err != nil {
			return "", err
		}
	case "APPEND":
		if err := sp(); err != nil {
			return "", err
		}
		s, err := d.Astring()
		if err != nil {
			return "", err
		}
		b.WriteString(s)
		if err := sp(); err != nil {
			return "", err
		}
		if d.Peek() == '(' {
			if err := flagList(d, &b); err != nil {
				return "", err
			}
			if err := sp(); err != nil {
				return "", err
			}
		}
		if d.Peek() == '"' {
			tm, err := d.DateTime()
			if err != nil {
				return "", err
			}
			b.WriteString(tm.Format(time.RFC3339))
			if err := sp(); err != nil {
				return "", err
			}
		}
		// As the server reads a message: a small one into memory, a
		// larger one to a writer, one of 13 bytes refused.
		var spool bytes.Buffer
		lit, err := d.LiteralTo(func(n int64) (io.Writer, error) {
			switch {
			case n == 13:
				return nil, &LimitError{Code: "LIMIT", Msg: "refused", NO: true}
			case n > 8:
				return &spool, nil
			}
			return nil, nil
		})
		if err != nil {
			return "", err
		}
		b.Write(lit)
		b.Write(spool.Bytes())
	case "SEARCH":
		for !d.AtEOL() {
			if err := sp(); err != nil {
				return "", err
			}
			if err := generic(d, &b); err != nil {
				return "", err
			}
		}
	default:
		for !d.AtEOL() {
			if err := sp(); err != nil {
				return "", err
			}
			if err := generic(d, &b); err != nil {
				return "", err
			}
		}
	}
	if err := d.CRLF(); err != nil {
		return "", err
	}
	return b.String(), nil
}

func flagList(d *Decoder, b *strings.Builder) error {
	b.WriteByte('(')
	first := true
	err := d.List(func() error {
		if !first {
			b.WriteByte(' ')
		}
		first = false
		f, err := d.Flag()
		b.WriteString(f)
		return err
	})
	b.WriteByte(')')
	return err
}

// generic reads one element of any kind.
func generic(d *Decoder, b *strings.Builder) error {
	switch c := d.Peek(); {
	case c == '(':
		b.WriteByte('(')
		first := true
		err := d.List(func() error {
			if !first {
				b.WriteByte(' ')
			}
			first = false
			return generic(d, b)
		})
		b.WriteByte(')')
		return err
	case c == '"' || c == '{':
		s, err := d.String()
		b.WriteString(s)
		return err
	case c == '~':
		l, err := d.Literal()
		b.Write(l)
		return err
	case c == '\\':
		f, err := d.Flag()
		b.WriteString(f)
		return err
	case c == '*' || c == '$' || (c >= '0' && c <= '9'):
		s, err := d.SeqSet()
		b.WriteString(s.String())
		return err
	case c == '[':
		b.WriteByte('[')
		if err := d.Special('['); err != nil {
			return err
		}
		for d.Peek() != ']' {
			if err := generic(d, b); err != nil {
				return err
			}
			if d.Maybe(' ') {
				b.WriteByte(' ')
			}
		}
		b.WriteByte(']')
		return d.Special(']')
	default:
		a, err := d.AtomUntil('[')
		if err != nil {
			return err
		}
		b.WriteString(a)
		if d.Peek() == '[' {
			b.WriteByte(' ')
			return generic(d, b)
		}
		return nil
	}
}

func TestEncoderDecoderRoundTrip(t *testing.T) {
	values := []string{
		"", "a", "NIL", "nil", "a b", `a"b`, `a\b`, `\"\\"`, "a\r\nb", "\x00",
		"\xff\xfe", "日本語", "tab\t", "\x7f", strings.Repeat("x", 1024),
		strings.Repeat("y", 1025), "{5}", "(", ")", "]", "%*", "~{3}",
	}
	for _, v := range values {
		for _, mode := range []string{"String", "Astring", "NString"} {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			e := NewEncoder(w)
			switch mode {
			case "String":
				e.String(v)
			case "Astring":
				e.Astring(v)
			case "NString":
				e.NString(v, true)
			}
			e.SP().NString("", false).CRLF()
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}
			wire := buf.String()
			d, _ := newTestDecoder(wire, 16, Limits{})
			d.SetContinuation(func() error { return nil })
			var got string
			var err error
			switch mode {
			case "String":
				got, err = d.String()
			case "Astring":
				got, err = d.Astring()
			case "NString":
				var ok bool
				got, ok, err = d.NString()
				if !ok && err == nil {
					err = errors.New("NIL")
				}
			}
			if err != nil || got != v {
				t.Errorf("%s(%q) wrote %q, read back %q, %v", mode, v, wire, got, err)
				continue
			}
			if err := d.SP(); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := d.NString(); ok || err != nil {
				t.Errorf("NIL: %v %v", ok, err)
			}
			if err := d.CRLF(); err != nil {
				t.Errorf("%s(%q) wrote %q: CRLF: %v", mode, v, wire, err)
			}
		}
	}
}

func TestErrorTypes(t *testing.T) {
	se := &SyntaxError{Msg: "x"}
	if se.Error() != "syntax error: x" {
		t.Error(se.Error())
	}
	le := &LimitError{Code: "TOOBIG", Msg: "y"}
	if le.Error() != "[TOOBIG] y" {
		t.Error(le.Error())
	}
	lim := Limits{MaxLiteral: 5}.WithDefaults()
	if lim.MaxNonSyncLiteral != 5 || lim.MaxLine != DefaultLimits.MaxLine {
		t.Errorf("WithDefaults: %+v", lim)
	}
	d, _ := newTestDecoder("{6}\r\n", 16, Limits{})
	d.SetLimits(Limits{MaxLiteral: 5})
	if _, err := d.Literal(); errKind(err) != "TOOBIG" {
		t.Errorf("SetLimits: %v", err)
	}
}

func TestAtomUntil(t *testing.T) {
	runTokCases(t, "AtomUntil('[')", Limits{}, func(d *Decoder) (any, error) { return d.AtomUntil('[') }, []tokCase{
		{"BODY.PEEK[HEADER]", "BODY.PEEK", "", "[HEADER]"},
		{"BODY[]<0.10>", "BODY", "", "[]<0.10>"},
		{"RFC822.SIZE)", "RFC822.SIZE", "", ")"},
		{"[x", "", "syntax", "[x"},
	})
	runTokCases(t, "AtomUntil('.')", Limits{}, func(d *Decoder) (any, error) { return d.AtomUntil('.') }, []tokCase{
		{"a.b", "a", "", ".b"},
	})
	runTokCases(t, "AtomUntil('(')", Limits{}, func(d *Decoder) (any, error) { return d.AtomUntil('(') }, []tokCase{
		{"a.b(", "a.b", "", "("},
	})
}

func TestLargeLiteral(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	in := fmt.Sprintf("{%d+}\r\n%s\r\n", len(data), data)
	d, r := newTestDecoder(in, 4096, Limits{})
	got, err := d.Literal()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Literal: %d bytes, %v", len(got), err)
	}
	if left := rest(r); left != "\r\n" {
		t.Fatalf("left %q", left)
	}
	// A big announcement with little data: an EOF error, and memory
	// grows with the data received only.
	d, _ = newTestDecoder("{50000000+}\r\nshort", 4096, Limits{})
	if _, err := d.Literal(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Literal: %v", err)
	}
	// String reads small literals through the scratch buffer: the
	// returned strings must not share it.
	d, _ = newTestDecoder("{3}\r\nabc {3}\r\nxyz", 16, Limits{})
	a, _ := d.String()
	d.SP()
	b, _ := d.String()
	if a != "abc" || b != "xyz" {
		t.Fatalf("%q %q", a, b)
	}
}

// LiteralTo sends a literal's bytes to the writer its sink chooses, or
// reads it into memory when the sink chooses none, and a sink that
// refuses a synchronizing literal does so before the continuation.
func TestLiteralTo(t *testing.T) {
	body := strings.Repeat("abcdefghij", 1000)
	for _, size := range bufSizes {
		for _, sync := range []bool{true, false} {
			plus := "+"
			if sync {
				plus = ""
			}
			in := fmt.Sprintf("{%d%s}\r\n%s rest", len(body), plus, body)

			// To a writer.
			d, r := newTestDecoder(in, size, Limits{})
			var events []string
			d.SetContinuation(func() error { events = append(events, "+"); return nil })
			var got bytes.Buffer
			data, err := d.LiteralTo(func(n int64) (io.Writer, error) {
				events = append(events, fmt.Sprint("sink ", n))
				return &got, nil
			})
			if err != nil || data != nil || got.String() != body {
				t.Errorf("size %d sync %v: data %d bytes, written %d bytes, err %v", size, sync, len(data), got.Len(), err)
			}
			want := []string{fmt.Sprint("sink ", len(body))}
			if sync {
				want = append(want, "+")
			}
			if !reflect.DeepEqual(events, want) {
				t.Errorf("size %d sync %v: events %q, want %q", size, sync, events, want)
			}
			if rs := rest(r); rs != " rest" {
				t.Errorf("size %d sync %v: rest %q", size, sync, rs)
			}

			// Into memory.
			d, _ = newTestDecoder(in, size, Limits{})
			data, err = d.LiteralTo(func(int64) (io.Writer, error) { return nil, nil })
			if err != nil || string(data) != body {
				t.Errorf("size %d sync %v: in memory %d bytes, err %v", size, sync, len(data), err)
			}

			// Refused: no continuation, and Discard skips a
			// non-synchronizing literal's bytes.
			d, r = newTestDecoder(in+"\r\nnext", size, Limits{})
			d.SetContinuation(func() error { t.Error("continuation for a refused literal"); return nil })
			_, err = d.LiteralTo(func(int64) (io.Writer, error) {
				return nil, &LimitError{Code: "LIMIT", Msg: "busy", NO: true}
			})
			if errKind(err) != "LIMIT" {
				t.Errorf("size %d sync %v: refused with %v", size, sync, err)
			}
			if err := d.Discard(); err != nil {
				t.Errorf("size %d sync %v: Discard: %v", size, sync, err)
			}
			wantRest := "next"
			if sync {
				wantRest = body + " rest\r\nnext"
			}
			if rs := rest(r); rs != wantRest {
				t.Errorf("size %d sync %v: rest after Discard %d bytes, want %d", size, sync, len(rs), len(wantRest))
			}
		}
	}
}

func TestAstringMax(t *testing.T) {
	lim := Limits{MaxLiteral: 100, MaxNonSyncLiteral: 50, MaxCommand: 1000}
	for _, size := range bufSizes {
		for _, tc := range []struct {
			in, want, err string
			contCalls     int
			rest          string // after the value, or after Discard
		}{
			{"abcd X", "abcd", "", 0, " X"},
			{"\"ab d\" X", "ab d", "", 0, " X"},
			{"{4}\r\nabcd X", "abcd", "", 1, " X"},
			{"{4+}\r\nabcd X", "abcd", "", 0, " X"},
			{"abcdefghi X", "", "syntax", 0, ""},
			{"\"abcdefghi\" X", "", "syntax", 0, ""},
			// Too long: refused before the continuation; nothing of it
			// is read.
			{"{9}\r\nX", "", "LIMIT", 0, "X"},
			{"{2000000}\r\nX", "", "LIMIT", 0, "X"},
			// A non-synchronizing one is skipped, or fatal beyond the
			// limits.
			{"{9+}\r\nabcdefghi\r\nX", "", "LIMIT", 0, "X"},
			{"{51+}\r\nX", "", "fatal TOOBIG", 0, ""},
			{"{3}\r\na\x00b X", "", "syntax", 1, ""},
		} {
			d, r := newTestDecoder(tc.in, size, lim)
			calls := 0
			d.SetContinuation(func() error { calls++; return nil })
			d.Begin()
			got, err := d.AstringMax(8, "session id")
			if got != tc.want || errKind(err) != tc.err || calls != tc.contCalls {
				t.Errorf("AstringMax(%q) = %q, %v, %d continuations; want %q, %q, %d", tc.in, got, err, calls, tc.want, tc.err, tc.contCalls)
				continue
			}
			if errKind(err) == "LIMIT" {
				if derr := d.Discard(); derr != nil {
					t.Errorf("%q: Discard: %v", tc.in, derr)
				}
			}
			if tc.rest != "" {
				if left := rest(r); left != tc.rest {
					t.Errorf("AstringMax(%q): left %q, want %q", tc.in, left, tc.rest)
				}
			}
		}
	}
}

// The admit function is asked about literals that do not fit the scratch
// buffer, and its refusal comes before the continuation.
func TestLiteralAdmit(t *testing.T) {
	small := strings.Repeat("s", 100)
	large := strings.Repeat("L", maxScratch+1)
	in := fmt.Sprintf("{%d}\r\n%s {%d}\r\n%s", len(small), small, len(large), large)
	d, _ := newTestDecoder(in, 4096, Limits{})
	var asked []int64
	conts := 0
	d.SetContinuation(func() error { conts++; return nil })
	d.SetAdmit(func(n int64) error {
		asked = append(asked, n)
		return &LimitError{Code: "LIMIT", Msg: "busy", NO: true}
	})
	if s, err := d.String(); err != nil || s != small {
		t.Fatalf("small literal: %d bytes, %v", len(s), err)
	}
	if err := d.SP(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.String(); errKind(err) != "LIMIT" {
		t.Fatalf("large literal: %v, want the admit function's refusal", err)
	}
	if !reflect.DeepEqual(asked, []int64{int64(len(large))}) || conts != 1 {
		t.Errorf("asked %v, %d continuations; want [%d] and 1", asked, conts, len(large))
	}
}

package message

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustParse(t testing.TB, raw []byte) *Part {
	t.Helper()
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFixtures parses every message of testdata/messages and checks the
// tree's invariants and its serialisation. What the server writes of the
// trees (ENVELOPE, BODYSTRUCTURE) is checked in server/imapmime.
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "messages", "*.eml"))
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw := readFixture(t, filepath.Base(f))
			p := mustParse(t, raw)
			checkTree(t, raw, p)
			roundTrip(t, p)
		})
	}
}

func roundTrip(t testing.TB, p *Part) *Part {
	t.Helper()
	q, err := Unmarshal(p.Marshal())
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip differs:\n%+v\n%+v", p, q)
	}
	return q
}

// TestRFC3501Example checks the parse behind the BODY example of RFC 3501
// §7.4.2 for a simple text message: size 3028, 92 lines.
func TestRFC3501Example(t *testing.T) {
	body := strings.Repeat(strings.Repeat("y", 31)+"\r\n", 91) + strings.Repeat("z", 3028-91*33-2) + "\r\n"
	raw := "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n" + body
	p := mustParse(t, []byte(raw))
	got := fmt.Sprintf("%s/%s %v %s %d %d", p.Type, p.Subtype, p.Params, p.Encoding, p.Size(), p.Lines)
	if want := "TEXT/PLAIN [{CHARSET US-ASCII}] 7BIT 3028 92"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

type sectionCase struct {
	path   []int
	spec   string
	fields []string
	want   string
}

func checkSections(t *testing.T, raw []byte, cases []sectionCase) {
	t.Helper()
	p := mustParse(t, raw)
	for _, c := range cases {
		got, err := Extract(raw, p, Section{Path: c.path, Specifier: c.spec, Fields: c.fields})
		if err != nil {
			t.Errorf("%v %s %v: %v", c.path, c.spec, c.fields, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%v %s %v:\n got %q\nwant %q", c.path, c.spec, c.fields, got, c.want)
		}
	}
}

func TestSectionsRFC822(t *testing.T) {
	raw := readFixture(t, "rfc822.eml")
	innerHeader := "From: Carol <carol@example.org>\r\nTo: ann@example.com\r\nSubject: hello\r\n" +
		"Date: Thu, 3 Jul 2025 09:00:00 -0400\r\nMessage-ID: <inner@example.org>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"in\"\r\n\r\n"
	innerText := "--in\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n--in\r\n" +
		"Content-Type: text/plain; name=notes.txt\r\n\r\nNotes.\r\n--in--"
	header := "From: ann@example.com\r\nTo: bob@example.net\r\nSubject: Fwd: hello\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n"
	checkSections(t, raw, []sectionCase{
		{nil, "", nil, string(raw)},
		{nil, "HEADER", nil, header},
		{nil, "TEXT", nil, string(raw[len(header):])},
		{nil, "HEADER.FIELDS", []string{"SUBJECT", "to"}, "To: bob@example.net\r\nSubject: Fwd: hello\r\n\r\n"},
		{nil, "HEADER.FIELDS.NOT", []string{"from", "To", "mime-version", "content-type"}, "Subject: Fwd: hello\r\n\r\n"},
		{nil, "HEADER.FIELDS", []string{"X-None"}, "\r\n"},
		{[]int{1}, "", nil, "Forwarding."},
		{[]int{1}, "MIME", nil, "Content-Type: text/plain\r\n\r\n"},
		{[]int{2}, "", nil, innerHeader + innerText},
		{[]int{2}, "MIME", nil, "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"},
		{[]int{2}, "HEADER", nil, innerHeader},
		{[]int{2}, "TEXT", nil, innerText},
		{[]int{2}, "HEADER.FIELDS", []string{"subject", "FROM"}, "From: Carol <carol@example.org>\r\nSubject: hello\r\n\r\n"},
		{[]int{2, 1}, "", nil, "Inner text."},
		{[]int{2, 2}, "", nil, "Notes."},
		{[]int{2, 2}, "MIME", nil, "Content-Type: text/plain; name=notes.txt\r\n\r\n"},
		// Nonexistent parts and HEADER/TEXT of non-message parts: empty.
		{[]int{3}, "", nil, ""},
		{[]int{1, 1}, "", nil, ""},
		{[]int{2, 3}, "", nil, ""},
		{[]int{2, 1, 1}, "", nil, ""},
		{[]int{1}, "HEADER", nil, ""},
		{[]int{1}, "TEXT", nil, ""},
		{[]int{0}, "", nil, ""},
	})
}

func TestSectionsSinglePart(t *testing.T) {
	raw := readFixture(t, "simple.eml")
	i := bytes.Index(raw, []byte("\r\n\r\n")) + 4
	checkSections(t, raw, []sectionCase{
		{nil, "HEADER", nil, string(raw[:i])},
		{nil, "TEXT", nil, string(raw[i:])},
		{[]int{1}, "", nil, "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"},
		{[]int{1}, "MIME", nil, string(raw[:i])},
		{[]int{2}, "", nil, ""},
		{[]int{1, 1}, "", nil, ""},
		{nil, "HEADER.FIELDS", []string{"date", "message-id"}, "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nMessage-Id: <B27397-0100000@Blurdybloop.example>\r\n\r\n"},
	})
}

func TestSectionsNestedAndLF(t *testing.T) {
	checkSections(t, readFixture(t, "nested.eml"), []sectionCase{
		{[]int{1, 1}, "", nil, "plain"},
		{[]int{1, 2}, "", nil, "<b>html</b>"},
		{[]int{1, 2}, "MIME", nil, "Content-Type: text/html\r\n\r\n"},
		{[]int{1}, "", nil, "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n--inner--\r\n"},
		{[]int{2}, "", nil, "iVBORw0KGgo="},
		{[]int{1, 3}, "", nil, ""},
	})
	checkSections(t, readFixture(t, "lf-only.eml"), []sectionCase{
		{[]int{1}, "", nil, "one\ntwo"},
		{[]int{2}, "", nil, "three"},
		{[]int{2}, "MIME", nil, "Content-Type: text/plain\n\n"},
		{nil, "HEADER.FIELDS", []string{"subject"}, "Subject: lf only\n\r\n"},
	})
	checkSections(t, readFixture(t, "no-final-boundary.eml"), []sectionCase{
		{[]int{1}, "", nil, "first"},
		{[]int{2}, "", nil, "second, and the message ends here\r\n"},
	})
	// A message whose own type is message/rfc822: part 1 is its body, the
	// encapsulated message, whose parts follow.
	raw := []byte("Content-Type: message/rfc822\r\nSubject: outer\r\n\r\nSubject: inner\r\n\r\nbody\r\n")
	checkSections(t, raw, []sectionCase{
		{[]int{1}, "", nil, "Subject: inner\r\n\r\nbody\r\n"},
		{[]int{1}, "HEADER", nil, "Subject: inner\r\n\r\n"},
		{[]int{1}, "TEXT", nil, "body\r\n"},
		{[]int{1, 1}, "", nil, "body\r\n"},
		{[]int{1, 1}, "MIME", nil, "Subject: inner\r\n\r\n"},
		{[]int{1, 2}, "", nil, ""},
	})
}

func TestExtractErrors(t *testing.T) {
	raw := readFixture(t, "simple.eml")
	p := mustParse(t, raw)
	if _, err := Extract(raw, p, Section{Specifier: "MIME"}); err == nil {
		t.Error("MIME without part: no error")
	}
	if _, err := Extract(raw, p, Section{Specifier: "BOGUS"}); err == nil {
		t.Error("bogus specifier: no error")
	}
	if _, err := Extract(raw[:10], p, Section{}); err != ErrMismatch {
		t.Errorf("short raw: %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(nil); err != ErrEmpty {
		t.Errorf("Parse(nil) = %v", err)
	}
}

func TestHeaderValues(t *testing.T) {
	raw := readFixture(t, "rfc2047.eml")
	p := mustParse(t, raw)
	if got := HeaderValues(raw, p, "subject"); !reflect.DeepEqual(got, []string{"Café € and été"}) {
		t.Errorf("Subject: %q", got)
	}
	if got := HeaderValues(raw, p, "FROM"); !reflect.DeepEqual(got, []string{"Keld Jørn Simonsen <keld@example.dk>"}) {
		t.Errorf("From: %q", got)
	}
	if got := HeaderValues(raw, p, "To"); !reflect.DeepEqual(got, []string{"山田 <yamada@example.jp>"}) {
		t.Errorf("To: %q", got)
	}
	if got := HeaderValues(raw, p, "X-Missing"); got != nil {
		t.Errorf("X-Missing: %q", got)
	}
	raw = readFixture(t, "8bit-header.eml")
	p = mustParse(t, raw)
	if got := HeaderValues(raw, p, "subject"); !reflect.DeepEqual(got, []string{"Grüße aus Köln"}) {
		t.Errorf("8-bit Subject: %q", got)
	}
	// Encapsulated message headers.
	raw = readFixture(t, "rfc822.eml")
	p = mustParse(t, raw)
	if got := HeaderValues(raw, p.Children[1].Message, "subject"); !reflect.DeepEqual(got, []string{"hello"}) {
		t.Errorf("inner Subject: %q", got)
	}
}

func TestTextContent(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string
	}{
		{"encodings.eml", []string{"Soft line break and café.", "Hello, wörld!\n", "continuations"}},
		{"8bit-header.eml", []string{"Grüße!\r\n"}},
		{"rfc2047.eml", []string{"Café au lait.\r\n"}},
		{"rfc822.eml", []string{"Forwarding.", "Inner text.", "Notes."}},
		{"alternative.eml", []string{"Plain version.\r\n", "<p>HTML version.</p>\r\n"}},
		{"nested.eml", []string{"plain", "<b>html</b>"}},
	} {
		raw := readFixture(t, c.file)
		if got := TextContent(raw, mustParse(t, raw)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.file, got, c.want)
		}
	}
}

func TestAddressList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Address
	}{
		{"", nil},
		{"a@b", []Address{{Mailbox: "a", Host: "b"}}},
		{"a@b (Comment (nested))", []Address{{Name: "Comment (nested)", Mailbox: "a", Host: "b"}}},
		{`"Last, First" <x@y.z>`, []Address{{Name: "Last, First", Mailbox: "x", Host: "y.z"}}},
		{"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", []Address{{Name: "Pete", Mailbox: "pete", Host: "silly.test"}}},
		{"<>", []Address{{}}},
		{"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", []Address{
			{Kind: AddrGroupStart, Mailbox: "A Group"},
			{Name: "Ed Jones", Mailbox: "c", Host: "a.test"},
			{Mailbox: "joe", Host: "where.test"},
			{Name: "John", Mailbox: "jdoe", Host: "one.test"},
			{Kind: AddrGroupEnd},
		}},
		{"Unclosed: a@b", []Address{{Kind: AddrGroupStart, Mailbox: "Unclosed"}, {Mailbox: "a", Host: "b"}, {Kind: AddrGroupEnd}}},
		{`"john doe"@example.com`, []Address{{Mailbox: `"john doe"`, Host: "example.com"}}},
		{"x@[1.2.3.4]", []Address{{Mailbox: "x", Host: "[1.2.3.4]"}}},
		{",,a@b,,", []Address{{Mailbox: "a", Host: "b"}}},
		{"<@r1,@r2:a@b>", []Address{{ADL: "@r1,@r2", Mailbox: "a", Host: "b"}}},
		{"<unterminated@x", []Address{{Mailbox: "unterminated", Host: "x"}}},
	} {
		if got := parseAddressList(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

func TestParams(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Param
	}{
		{`text/plain; charset="utf-8"; format=flowed`, []Param{{"CHARSET", "utf-8"}, {"FORMAT", "flowed"}}},
		{`text/plain; name*0="a b"; name*1=c; name*2*=%41`, []Param{{"NAME", "a bcA"}}},
		{`text/plain; name="x.txt"; name*=iso-8859-1'en'%E9.txt`, []Param{{"NAME", "é.txt"}}},
		{`text/plain; title*0*=us-ascii'en'This%20is%20even%20more%20; title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2="isn't it!"`, []Param{{"TITLE", "This is even more ***fun*** isn't it!"}}},
		{`text/plain;;; ;novalue; a = "q\"uote" ; B=1`, []Param{{"A", `q"uote`}, {"B", "1"}}},
		{`text/plain; a="unterminated`, []Param{{"A", "unterminated"}}},
		{`text/plain (comment); a=b (c)`, []Param{{"A", "b"}}},
	} {
		_, _, got := parseContentType(c.in)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "text", "/plain", "te xt/plain", "text/"} {
		if typ, _, _ := parseContentType(bad); typ != "" {
			t.Errorf("%q: type %q", bad, typ)
		}
	}
}

// TestHostile checks the depth and part limits.
func TestHostile(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 500; i++ {
		b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n")
	}
	b.WriteString("\r\nleaf\r\n")
	raw := []byte(b.String())
	p := mustParse(t, raw)
	depth := 0
	for q := p; q.IsMultipart(); q = q.Children[0] {
		depth++
	}
	// All levels share one boundary: the outermost split takes every
	// delimiter, so nesting stops early; either way it is bounded.
	if depth > MaxDepth {
		t.Errorf("depth %d", depth)
	}
	b.Reset()
	for i := 0; i < 500; i++ {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i) + "\r\n\r\n--b" + strings.Repeat("x", i) + "\r\n")
	}
	raw = []byte(b.String())
	p = mustParse(t, raw)
	depth = 0
	for q := p; q.IsMultipart(); q = q.Children[0] {
		depth++
	}
	if depth != MaxDepth {
		t.Errorf("depth %d, want %d", depth, MaxDepth)
	}
	checkTree(t, raw, p)
	raw = []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n", 3*MaxParts))
	p = mustParse(t, raw)
	n := 0
	p.Walk(func(*Part) bool { n++; return true })
	if n > MaxParts {
		t.Errorf("%d parts", n)
	}
	checkTree(t, raw, p)
}

// TestMalformedHeaderLines checks that only an empty line ends a header: a
// line with no colon (a broken fold, a stray line) is no field but stays in
// the header, and the fields after it count (as in Dovecot).
func TestMalformedHeaderLines(t *testing.T) {
	raw := readFixture(t, "header-broken-fold.eml")
	header := "Subject: s\r\n=?utf-8?q?broken?=\r\nFrom: a@b.c\r\nContent-Type: text/html\r\n\r\n"
	checkSections(t, raw, []sectionCase{
		{nil, "HEADER", nil, header},
		{nil, "TEXT", nil, "<p>body</p>\r\n"},
		{[]int{1}, "MIME", nil, header},
		{nil, "HEADER.FIELDS", []string{"from", "content-type"}, "From: a@b.c\r\nContent-Type: text/html\r\n\r\n"},
		{nil, "HEADER.FIELDS.NOT", []string{"subject", "from"}, "=?utf-8?q?broken?=\r\nContent-Type: text/html\r\n\r\n"},
	})

	raw = readFixture(t, "header-stray-line.eml")
	header = "From: Ann <ann@example.com>\r\nBad header line\r\n continued\r\nSubject: stray\r\n" +
		"X-Spaced : yes\r\nTo: bob@example.net\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	checkSections(t, raw, []sectionCase{
		{nil, "HEADER", nil, header},
		{nil, "TEXT", nil, "body\r\n"},
		{[]int{1}, "", nil, "body\r\n"},
		{[]int{1}, "MIME", nil, header},
		{nil, "HEADER.FIELDS", []string{"SUBJECT", "x-spaced", "To"}, "Subject: stray\r\nX-Spaced : yes\r\nTo: bob@example.net\r\n\r\n"},
		// The stray line and its continuation come as one non-field.
		{nil, "HEADER.FIELDS.NOT", []string{"from", "subject", "content-type"}, "Bad header line\r\n continued\r\nX-Spaced : yes\r\nTo: bob@example.net\r\n\r\n"},
		{nil, "HEADER.FIELDS", []string{"Bad header line"}, "\r\n"},
	})
	p := mustParse(t, raw)
	if got := HeaderValues(raw, p, "x-spaced"); !reflect.DeepEqual(got, []string{"yes"}) {
		t.Errorf("X-Spaced: %q", got)
	}
	if got := HeaderValues(raw, p, "to"); !reflect.DeepEqual(got, []string{"bob@example.net"}) {
		t.Errorf("To: %q", got)
	}

	// Bare LF, and a nested message: the same rule.
	raw = []byte("Subject: s\nno colon\nFrom: a@b.c\nContent-Type: message/rfc822\n\nSubject: inner\n  \nstray\nFrom: c@d.e\n\nbody\n")
	p = mustParse(t, raw)
	if p.Envelope.Subject != "s" || len(p.Envelope.From) != 1 || p.Envelope.From[0].Host != "b.c" {
		t.Errorf("LF envelope %+v", p.Envelope)
	}
	if m := p.Message; m == nil || m.Envelope.Subject != "inner" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Mailbox != "c" || p.Size() != 42 || p.Lines != 6 {
		t.Errorf("LF nested message: %+v", p.Message)
	}
	checkSections(t, raw, []sectionCase{
		{[]int{1}, "HEADER", nil, "Subject: inner\n  \nstray\nFrom: c@d.e\n\n"},
		{[]int{1}, "TEXT", nil, "body\n"},
		{[]int{1}, "HEADER.FIELDS.NOT", []string{"subject"}, "stray\nFrom: c@d.e\n\r\n"},
	})
}

// TestNoHeader checks messages that do not start with a header field: the
// header still runs to the first empty line, so a message without one is
// all header with an empty body (as in Dovecot).
func TestNoHeader(t *testing.T) {
	raw := readFixture(t, "no-header.eml")
	all := "hello world\r\nthis message has no header\r\n"
	checkSections(t, raw, []sectionCase{
		{nil, "HEADER", nil, all},
		{nil, "TEXT", nil, ""},
		{[]int{1}, "", nil, ""},
		{[]int{1}, "MIME", nil, all},
		// No blank line in the message: none in the result either
		// (RFC 3501 §6.4.5).
		{nil, "HEADER.FIELDS", []string{"subject"}, ""},
		{nil, "HEADER.FIELDS.NOT", []string{"subject"}, all},
	})
	checkSections(t, []byte("hello world\r\n\r\nbody\r\n"), []sectionCase{
		{nil, "HEADER", nil, "hello world\r\n\r\n"},
		{nil, "TEXT", nil, "body\r\n"},
		{nil, "HEADER.FIELDS", []string{"subject"}, "\r\n"},
		{nil, "HEADER.FIELDS.NOT", []string{"subject"}, "hello world\r\n\r\n"},
	})
	// A header that runs to the end of the message, its last line without
	// a line break: the fields end with one, no blank line follows.
	raw = []byte("Subject: header only\r\nFrom: ann@example.com\r\nTo: bob@example.net")
	checkSections(t, raw, []sectionCase{
		{nil, "HEADER", nil, string(raw)},
		{nil, "TEXT", nil, ""},
		{nil, "HEADER.FIELDS", []string{"subject", "to"}, "Subject: header only\r\nTo: bob@example.net\r\n"},
		{nil, "HEADER.FIELDS.NOT", []string{"subject"}, "From: ann@example.com\r\nTo: bob@example.net\r\n"},
	})
	// A lone mbox "From " line is kept in the header, as before.
	raw = []byte("From ann@example.com Tue Jul  1 10:00:00 2025\r\nSubject: mbox\r\n\r\nbody\r\n")
	checkSections(t, raw, []sectionCase{
		{nil, "TEXT", nil, "body\r\n"},
		{nil, "HEADER.FIELDS", []string{"subject"}, "Subject: mbox\r\n\r\n"},
	})
}

// TestMultipartWithoutParts checks that a multipart without a boundary
// parameter or without delimiter lines stays a multipart, with one empty
// text/plain part (RFC 3501 body-type-mpart needs one; Dovecot does so).
func TestMultipartWithoutParts(t *testing.T) {
	raw := readFixture(t, "multipart-no-delimiter.eml")
	text := "Hi there,\r\n\r\nThis is the dingus fish.\r\n--BOUNDARYX\r\n"
	checkSections(t, raw, []sectionCase{
		{nil, "TEXT", nil, text},
		{[]int{1}, "", nil, ""},
		{[]int{1}, "MIME", nil, ""},
		{[]int{1}, "HEADER", nil, ""},
		{[]int{2}, "", nil, ""},
		{[]int{1, 1}, "", nil, ""},
	})
	p := mustParse(t, raw)
	if got := TextContent(raw, p); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("TextContent: %q", got)
	}
	checkSections(t, readFixture(t, "multipart-no-boundary.eml"), []sectionCase{
		{nil, "TEXT", nil, "Blah blah blah\r\n"},
		{[]int{1}, "", nil, ""},
		{[]int{1}, "MIME", nil, ""},
	})

	for _, c := range []struct{ raw, want string }{
		// Only a closing delimiter, inside an encapsulated message.
		{"Content-Type: multipart/mixed; boundary=AAA\r\n\r\n--AAA\r\nContent-Type: message/rfc822\r\n\r\n" +
			"Content-Type: multipart/mixed; boundary=\"BBB\"\r\n\r\n--BBB--\r\n\r\n--AAA--\r\n",
			"{BOUNDARY AAA}"},
		// A digest's empty part is text/plain too, not message/rfc822.
		{"Content-Type: multipart/digest; boundary=d\r\n\r\nno parts\r\n",
			"{BOUNDARY d}"},
		// An empty boundary is no boundary; the body may be empty too.
		{"Content-Type: multipart/related; boundary=\"\"; type=text/html\r\n\r\n",
			"{BOUNDARY } {TYPE text/html}"},
	} {
		p := mustParse(t, []byte(c.raw))
		checkTree(t, []byte(c.raw), p)
		// The empty part of the innermost multipart.
		q := p
		for q.Message != nil || q.IsMultipart() {
			if q.Message != nil {
				q = q.Message
			} else {
				q = q.Children[0]
			}
		}
		if q.Type != "TEXT" || q.Subtype != "PLAIN" || q.Size() != 0 || q.Lines != 0 {
			t.Errorf("%q: innermost part %s/%s of %d bytes, %d lines", c.raw, q.Type, q.Subtype, q.Size(), q.Lines)
		}
		if c.want != "" && !strings.Contains(fmt.Sprint(p.Params), c.want) {
			t.Errorf("%q: multipart params %v, want %s", c.raw, p.Params, c.want)
		}
	}
}

func TestTransferEncodingComments(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"8bit", "8BIT"},
		{"8bit (c)", "8BIT"},
		{" (legacy)\r\n Quoted-Printable ", "QUOTED-PRINTABLE"},
		{"base64(nested (comment))", "BASE64"},
		{"(only a comment)", ""},
		{"8 bit", "8BIT"},
	} {
		if got := parseEncoding(c.in); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	// The default for a value that is only a comment.
	p := mustParse(t, []byte("Content-Transfer-Encoding: (none)\r\n\r\nx"))
	if p.Encoding != "7BIT" {
		t.Errorf("comment only: encoding %q", p.Encoding)
	}
	// SEARCH sees the decoded text.
	raw := readFixture(t, "encoding-comment.eml")
	if got, want := TextContent(raw, mustParse(t, raw)), []string{"plain", "café"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TextContent: got %q, want %q", got, want)
	}
}

// TestEnvelopeEmptyFields checks that Envelope.Empty records a Date,
// Subject, In-Reply-To or Message-ID that is present but empty, so that
// it can be told from an absent one (server/imapmime writes "" and NIL).
func TestEnvelopeEmptyFields(t *testing.T) {
	p := mustParse(t, readFixture(t, "empty-fields.eml"))
	if want := uint8(EnvDate | EnvSubject | EnvInReplyTo | EnvMessageID); p.Envelope.Empty != want {
		t.Errorf("Empty = %b, want %b", p.Envelope.Empty, want)
	}
	// In an encapsulated message, through Marshal.
	p = roundTrip(t, mustParse(t, []byte("Content-Type: message/rfc822\r\n\r\nMessage-ID:\r\nSubject: inner\r\n\r\nbody")))
	if p.Message == nil || p.Message.Envelope.Empty != EnvMessageID || p.Message.Envelope.Subject != "inner" {
		t.Errorf("encapsulated: %+v", p.Message)
	}
}

// TestLocate: the span of each section is where Extract finds it, so a
// caller can read just those bytes.
func TestLocate(t *testing.T) {
	raw := readFixture(t, "simple.eml")
	p := mustParse(t, raw)
	hdrEnd := bytes.Index(raw, []byte("\r\n\r\n")) + 4
	for _, tc := range []struct {
		s    Section
		want Span
	}{
		{Section{}, Span{0, len(raw), false}},
		{Section{Specifier: SpecHeader}, Span{0, hdrEnd, false}},
		{Section{Specifier: SpecText}, Span{hdrEnd, len(raw), false}},
		{Section{Path: []int{1}}, Span{hdrEnd, len(raw), false}},
		{Section{Specifier: SpecHeaderFields, Fields: []string{"Subject"}}, Span{0, hdrEnd, true}},
		{Section{Path: []int{9}}, Span{}},
	} {
		got, err := Locate(p, tc.s, len(raw))
		if err != nil || got != tc.want {
			t.Errorf("Locate(%+v) = %+v, %v; want %+v", tc.s, got, err, tc.want)
		}
	}
	fields := Section{Specifier: SpecHeaderFields, Fields: []string{"Subject"}}
	want, _ := Extract(raw, p, fields)
	if got := FilterFields(raw[:hdrEnd], fields); !bytes.Equal(got, want) || len(got) == 0 {
		t.Errorf("FilterFields = %q, want %q", got, want)
	}
	if _, err := Locate(p, Section{}, len(raw)-1); err != ErrMismatch {
		t.Errorf("Locate in a shorter message: %v, want ErrMismatch", err)
	}
}

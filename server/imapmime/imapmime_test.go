package imapmime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/wire"
)

// render runs fn with an Encoder and returns what it wrote.
func render(fn func(enc *wire.Encoder)) string {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := wire.NewEncoder(w)
	fn(enc)
	if err := enc.Flush(); err != nil {
		panic(err)
	}
	return buf.String()
}

func envelopeString(p *message.Part) string {
	return render(func(enc *wire.Encoder) { WriteEnvelope(enc, p) })
}

func bodyString(p *message.Part, ext bool) string {
	return render(func(enc *wire.Encoder) { WriteBodyStructure(enc, p, ext) })
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustParse(t testing.TB, raw []byte) *message.Part {
	t.Helper()
	p, err := message.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// roundTrip returns p after Marshal and Unmarshal, as FETCH reads it from
// the store.
func roundTrip(t testing.TB, p *message.Part) *message.Part {
	t.Helper()
	q, err := message.Unmarshal(p.Marshal())
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	return q
}

// fixtureWant holds the exact ENVELOPE, BODY and BODYSTRUCTURE of each
// message in testdata/messages.
var fixtureWant = []struct {
	file, envelope, body, bodystructure string
}{
	{
		file:          "8bit-header.eml",
		envelope:      "(NIL {14}\r\nGr\xfc\xdfe aus K\xf6ln (({4}\r\nJ\xf6rg NIL \"joerg\" \"example.de\")) (({4}\r\nJ\xf6rg NIL \"joerg\" \"example.de\")) (({4}\r\nJ\xf6rg NIL \"joerg\" \"example.de\")) NIL NIL NIL NIL NIL)",
		body:          `("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "8BIT" 8 1)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "8BIT" 8 1 NIL NIL NIL NIL)`,
	},
	{
		file:          "alternative.eml",
		envelope:      `("Tue, 1 Jul 2025 10:00:00 +0000" "plans" (("Ann Example" NIL "ann" "example.com")) (("Ann Example" NIL "ann" "example.com")) (("Ann Example" NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")("Carol, C." NIL "carol" "example.org")) (("Dave D." NIL "dave" "example.org")) NIL "<orig-1@example.net>" "<alt-1@example.com>")`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT" "flowed") NIL NIL "7BIT" 16 1)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 22 1) "ALTERNATIVE")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT" "flowed") NIL NIL "7BIT" 16 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 22 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "alt-b") NIL NIL NIL)`,
	},
	{
		file:          "empty-fields.eml",
		envelope:      `("" "" (("Ann" NIL "ann" "example.com")) (("Ann" NIL "ann" "example.com")) (("Ann" NIL "ann" "example.com")) NIL NIL NIL "" "")`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1 NIL NIL NIL NIL)`,
	},
	{
		file:          "encoding-comment.eml",
		envelope:      `(NIL "encoding comments" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) NIL NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 5 1)("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 6 1) "MIXED")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 5 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 6 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "enc") NIL NIL NIL)`,
	},
	{
		file:          "encodings.eml",
		envelope:      `(NIL "encodings" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) NIL NIL NIL NIL NIL)`,
		body:          "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"iso-8859-1\") NIL NIL \"QUOTED-PRINTABLE\" 32 2)(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"BASE64\" 20 1)(\"TEXT\" \"PLAIN\" (\"CHARSET\" {3}\r\n€ \"NAME\" \"longname.txt\") NIL NIL \"7BIT\" 13 1) \"MIXED\")",
		bodystructure: "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"iso-8859-1\") NIL NIL \"QUOTED-PRINTABLE\" 32 2 NIL NIL NIL NIL)(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"BASE64\" 20 1 NIL NIL NIL NIL)(\"TEXT\" \"PLAIN\" (\"CHARSET\" {3}\r\n€ \"NAME\" \"longname.txt\") NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL) \"MIXED\" (\"BOUNDARY\" \"enc\") NIL NIL NIL)",
	},
	{
		file:          "groups.eml",
		envelope:      `("Sat, 5 Jul 2025 08:00:00 +0000" "groups" (("Ann" NIL "ann" "example.com")) ((NIL NIL "list-owner" "lists.example.com")) ((NIL NIL "list" "lists.example.com")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "Team" NIL)(NIL NIL "bob" "example.net")("Carol Q." NIL "carol" "example.org")(NIL NIL NIL NIL)(NIL "@route.example" "dave" "example.org")) (("quoted \" name" NIL "q" "example.com")) NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7 1)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7 1 NIL NIL NIL NIL)`,
	},
	{
		file:          "header-broken-fold.eml",
		envelope:      `(NIL "s" ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) NIL NIL NIL NIL NIL)`,
		body:          `("TEXT" "HTML" NIL NIL NIL "7BIT" 13 1)`,
		bodystructure: `("TEXT" "HTML" NIL NIL NIL "7BIT" 13 1 NIL NIL NIL NIL)`,
	},
	{
		file:          "header-stray-line.eml",
		envelope:      `(NIL "stray" (("Ann" NIL "ann" "example.com")) (("Ann" NIL "ann" "example.com")) (("Ann" NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 6 1)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 6 1 NIL NIL NIL NIL)`,
	},
	{
		file:          "lf-only.eml",
		envelope:      `(NIL "lf only" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) NIL NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7 2)("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1) "MIXED")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7 2 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "lf") NIL NIL NIL)`,
	},
	{
		file:          "mixed-attachment.eml",
		envelope:      `("Wed, 2 Jul 2025 11:00:00 +0200" "report" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1)("APPLICATION" "PDF" ("NAME" "report.pdf") "<pdf1@example.com>" "The report" "BASE64" 16) "MIXED")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1 NIL NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "report.pdf") "<pdf1@example.com>" "The report" "BASE64" 16 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "report.pdf" "SIZE" "12")) ("en" "de") "http://example.com/report.pdf") "MIXED" ("BOUNDARY" "mix") NIL NIL NIL)`,
	},
	{
		file:          "multipart-no-boundary.eml",
		envelope:      `(NIL "no boundary" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) NIL NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "ALTERNATIVE")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "ALTERNATIVE" NIL NIL NIL NIL)`,
	},
	{
		file:          "multipart-no-delimiter.eml",
		envelope:      `(NIL "no delimiters" (("Barry" NIL "barry" "example.com")) (("Barry" NIL "barry" "example.com")) (("Barry" NIL "barry" "example.com")) (("Dingus Lovers" NIL "dingus" "example.org")) NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "BOUNDARY") NIL NIL NIL)`,
	},
	{
		file:          "nested.eml",
		envelope:      `(NIL "nested" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) NIL NIL NIL NIL NIL)`,
		body:          `((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1)("TEXT" "HTML" NIL NIL NIL "7BIT" 11 1) "ALTERNATIVE")("IMAGE" "PNG" NIL NIL NIL "BASE64" 12) "MIXED")`,
		bodystructure: `((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)("TEXT" "HTML" NIL NIL NIL "7BIT" 11 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)("IMAGE" "PNG" NIL NIL NIL "BASE64" 12 NIL ("INLINE" NIL) NIL NIL) "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)`,
	},
	{
		file:          "no-content-type.eml",
		envelope:      `(NIL "no type" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 26 2)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 26 2 NIL NIL NIL NIL)`,
	},
	{
		file:          "no-final-boundary.eml",
		envelope:      `(NIL "truncated" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) NIL NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1)("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 35 1) "MIXED")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 35 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "cut") NIL NIL NIL)`,
	},
	{
		file:          "no-header.eml",
		envelope:      `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)`,
	},
	{
		file:          "rfc2047.eml",
		envelope:      `("Fri, 4 Jul 2025 12:00:00 +0000" "=?utf-8?q?Caf=C3=A9_=E2=82=AC?= and =?iso-8859-1?q?=E9t=E9?=" (("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=" NIL "keld" "example.dk")) (("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=" NIL "keld" "example.dk")) (("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=" NIL "keld" "example.dk")) (("=?UTF-8?B?5bGx55Sw?=" NIL "yamada" "example.jp")) NIL NIL NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 16 1)`,
		bodystructure: "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"8BIT\" 16 1 NIL (\"ATTACHMENT\" (\"FILENAME\" {15}\r\nnaïve file.txt)) NIL NIL)",
	},
	{
		file:          "rfc822.eml",
		envelope:      `(NIL "Fwd: hello" ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "ann" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 1)("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 319 ("Thu, 3 Jul 2025 09:00:00 -0400" "hello" (("Carol" NIL "carol" "example.org")) (("Carol" NIL "carol" "example.org")) (("Carol" NIL "carol" "example.org")) ((NIL NIL "ann" "example.com")) NIL NIL NIL "<inner@example.org>") (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 1)("TEXT" "PLAIN" ("NAME" "notes.txt" "CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1) "MIXED") 17) "MIXED")`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 319 ("Thu, 3 Jul 2025 09:00:00 -0400" "hello" (("Carol" NIL "carol" "example.org")) (("Carol" NIL "carol" "example.org")) (("Carol" NIL "carol" "example.org")) ((NIL NIL "ann" "example.com")) NIL NIL NIL "<inner@example.org>") (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("NAME" "notes.txt" "CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "in") NIL NIL NIL) 17 NIL ("ATTACHMENT" NIL) NIL NIL) "MIXED" ("BOUNDARY" "fwd") NIL NIL NIL)`,
	},
	{
		file:          "simple.eml",
		envelope:      `("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) ((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL "<B27397-0100000@Blurdybloop.example>")`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1)`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1 NIL NIL NIL NIL)`,
	},
}

// TestFixtures checks every message of testdata/messages against its
// entry in fixtureWant. A fixture without an entry, or whose output
// differs, is reported with the entry its current output gives, as Go
// source to review and paste.
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "messages", "*.eml"))
	if len(files) == 0 {
		t.Fatal("no fixtures found")
	}
	want := map[string]bool{}
	for _, w := range fixtureWant {
		want[w.file] = true
	}
	for _, f := range files {
		name := filepath.Base(f)
		if !want[name] {
			p := mustParse(t, readFixture(t, name))
			t.Errorf("%s has no entry in fixtureWant; its output:\n%s", name, fixtureEntry(name, p))
		}
	}
	for _, w := range fixtureWant {
		t.Run(w.file, func(t *testing.T) {
			raw := readFixture(t, w.file)
			p := mustParse(t, raw)
			for _, tree := range []*message.Part{p, roundTrip(t, p)} {
				if got := envelopeString(tree); got != w.envelope {
					t.Errorf("ENVELOPE\n got %q\nwant %q", got, w.envelope)
				}
				if got := bodyString(tree, false); got != w.body {
					t.Errorf("BODY\n got %q\nwant %q", got, w.body)
				}
				if got := bodyString(tree, true); got != w.bodystructure {
					t.Errorf("BODYSTRUCTURE\n got %q\nwant %q", got, w.bodystructure)
				}
			}
			if t.Failed() {
				t.Logf("entry for the current output (review before pasting):\n%s", fixtureEntry(w.file, p))
			}
		})
	}
}

// fixtureEntry is the fixtureWant entry that p's output gives.
func fixtureEntry(file string, p *message.Part) string {
	return fmt.Sprintf("{\n\tfile: %q,\n\tenvelope: %s,\n\tbody: %s,\n\tbodystructure: %s,\n},",
		file, goLiteral(envelopeString(p)), goLiteral(bodyString(p, false)), goLiteral(bodyString(p, true)))
}

// goLiteral quotes s as Go source, with backquotes when it can.
func goLiteral(s string) string {
	if strconv.CanBackquote(s) {
		return "`" + s + "`"
	}
	return strconv.Quote(s)
}

// TestRFC3501Example checks the BODY example of RFC 3501 §7.4.2 for a
// simple text message.
func TestRFC3501Example(t *testing.T) {
	body := strings.Repeat(strings.Repeat("y", 31)+"\r\n", 91) + strings.Repeat("z", 3028-91*33-2) + "\r\n"
	raw := "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n" + body
	p := mustParse(t, []byte(raw))
	want := `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)`
	if got := bodyString(p, false); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// Bare LF, malformed header lines and a nested message.
func TestMalformedHeaderLines(t *testing.T) {
	raw := []byte("Subject: s\nno colon\nFrom: a@b.c\nContent-Type: message/rfc822\n\nSubject: inner\n  \nstray\nFrom: c@d.e\n\nbody\n")
	p := mustParse(t, raw)
	want := `(NIL "s" ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) NIL NIL NIL NIL NIL)`
	if got := envelopeString(p); got != want {
		t.Errorf("LF ENVELOPE\n got %s\nwant %s", got, want)
	}
	want = `("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 42 (NIL "inner" ((NIL NIL "c" "d.e")) ((NIL NIL "c" "d.e")) ((NIL NIL "c" "d.e")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1) 6)`
	if got := bodyString(p, false); got != want {
		t.Errorf("LF BODY\n got %s\nwant %s", got, want)
	}
}

// TestMultipartWithoutParts: a multipart without a boundary parameter or
// without delimiter lines has one empty text/plain part (RFC 3501
// body-type-mpart needs one; Dovecot does so).
func TestMultipartWithoutParts(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		// Only a closing delimiter, inside an encapsulated message.
		{"Content-Type: multipart/mixed; boundary=AAA\r\n\r\n--AAA\r\nContent-Type: message/rfc822\r\n\r\n" +
			"Content-Type: multipart/mixed; boundary=\"BBB\"\r\n\r\n--BBB--\r\n\r\n--AAA--\r\n",
			`(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 58 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "BBB") NIL NIL NIL) 3 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "AAA") NIL NIL NIL)`},
		// A digest's empty part is text/plain too, not message/rfc822.
		{"Content-Type: multipart/digest; boundary=d\r\n\r\nno parts\r\n",
			`(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "DIGEST" ("BOUNDARY" "d") NIL NIL NIL)`},
		// An empty boundary is no boundary; the body may be empty too.
		{"Content-Type: multipart/related; boundary=\"\"; type=text/html\r\n\r\n",
			`(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "RELATED" ("BOUNDARY" "" "TYPE" "text/html") NIL NIL NIL)`},
	} {
		p := mustParse(t, []byte(c.raw))
		checkSyntax(t, p)
		if got := bodyString(p, true); got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.raw, got, c.want)
		}
	}
}

// The default encoding for a Content-Transfer-Encoding that is only a
// comment.
func TestTransferEncodingCommentOnly(t *testing.T) {
	p := mustParse(t, []byte("Content-Transfer-Encoding: (none)\r\n\r\nx"))
	if want := `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1)`; bodyString(p, false) != want {
		t.Errorf("comment only: %s", bodyString(p, false))
	}
}

// TestEnvelopeEmptyFields checks that a present but empty Date, Subject,
// In-Reply-To or Message-ID is "" and an absent one NIL, while an address
// list with no address is NIL either way (RFC 3501 has no empty list) and
// an empty Sender or Reply-To is From.
func TestEnvelopeEmptyFields(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"Subject:\r\n\r\n", `(NIL "" NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"Subject:", `(NIL "" NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"Subject: \t\r\n \r\nIn-Reply-To:\r\n\r\n", `(NIL "" NIL NIL NIL NIL NIL NIL "" NIL)`},
		// The first field counts, empty or not.
		{"Subject:\r\nSubject: second\r\nDate: d\r\nDate:\r\n\r\n", `("d" "" NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"X-Subject:\r\n\r\n", `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		// In an encapsulated message, through Marshal.
		{"Content-Type: message/rfc822\r\n\r\nMessage-ID:\r\nSubject: inner\r\n\r\nbody",
			`(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)|(NIL "inner" NIL NIL NIL NIL NIL NIL NIL "")`},
		// An empty Subject, as format version 1 stored it, reads as one.
		{"Subject:\r\nFrom: a@b.c\r\n\r\nx\r\n",
			`(NIL "" ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) NIL NIL NIL NIL NIL)`},
	} {
		p := mustParse(t, []byte(c.raw))
		q := roundTrip(t, p)
		got := envelopeString(q)
		if p.Message != nil {
			got += "|" + envelopeString(q.Message)
		}
		if got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.raw, got, c.want)
		}
	}
}

// checkSyntax checks that the ENVELOPE, BODY and BODYSTRUCTURE of p are
// valid IMAP syntax and the same after the store's serialisation.
func checkSyntax(t testing.TB, p *message.Part) {
	t.Helper()
	for _, s := range []string{envelopeString(p), bodyString(p, false), bodyString(p, true)} {
		if err := checkSexp(s); err != nil {
			t.Fatalf("%v in %q", err, s)
		}
	}
	q := roundTrip(t, p)
	if a, b := bodyString(p, true), bodyString(q, true); a != b {
		t.Fatalf("BODYSTRUCTURE after round trip:\n%s\n%s", a, b)
	}
	if a, b := envelopeString(p), envelopeString(q); a != b {
		t.Fatalf("ENVELOPE after round trip:\n%s\n%s", a, b)
	}
}

const mimeEdgeDir = "../../../shared/data/mime-edge"

// TestMimeEdge writes every message of the shared MIME edge-case corpus.
func TestMimeEdge(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(mimeEdgeDir, "*"))
	if len(files) == 0 {
		t.Skipf("no messages in %s (the shared MIME edge-case corpus is not checked out)", mimeEdgeDir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkSyntax(t, mustParse(t, raw))
		})
	}
}

func FuzzWrite(f *testing.F) {
	for _, dir := range []string{mimeEdgeDir, "../../testdata/messages"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, file := range files {
			if raw, err := os.ReadFile(file); err == nil {
				f.Add(raw)
			}
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\n\n--x\n\n--x--"))
	f.Add([]byte("Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := message.Parse(raw)
		if err != nil {
			return
		}
		checkSyntax(t, p)
		// Whatever a stored tree decodes to must be writable.
		if q, err := message.Unmarshal(raw); err == nil {
			_ = bodyString(q, true)
			_ = envelopeString(q)
		}
	})
}

// checkSexp checks that s is one IMAP value built of parenthesized lists,
// NIL, numbers, quoted strings and literals, with single spaces between the
// elements of a list, except that lists may follow lists directly (body-
// type-mpart: 1*body SP media-subtype).
func checkSexp(s string) error {
	c := sexpChecker{s: s}
	if err := c.value(0); err != nil {
		return err
	}
	if c.i != len(s) {
		return fmt.Errorf("trailing data at %d: %q", c.i, s[c.i:])
	}
	return nil
}

type sexpChecker struct {
	s string
	i int
}

func (c *sexpChecker) errf(format string, a ...any) error {
	return fmt.Errorf("at %d: %s (near %q)", c.i, fmt.Sprintf(format, a...), c.s[max(0, c.i-20):min(len(c.s), c.i+20)])
}

func (c *sexpChecker) value(depth int) error {
	if depth > 500 {
		return c.errf("too deep")
	}
	if c.i >= len(c.s) {
		return c.errf("unexpected end")
	}
	switch ch := c.s[c.i]; {
	case ch == '(':
		c.i++
		if c.i < len(c.s) && c.s[c.i] == ')' {
			return c.errf("empty list")
		}
		prevList := false
		for first := true; ; first = false {
			if c.i >= len(c.s) {
				return c.errf("unclosed list")
			}
			if c.s[c.i] == ')' {
				c.i++
				return nil
			}
			if !first {
				if c.s[c.i] == ' ' {
					c.i++
				} else if !(prevList && c.s[c.i] == '(') {
					return c.errf("missing space")
				}
			}
			prevList = c.i < len(c.s) && c.s[c.i] == '('
			if err := c.value(depth + 1); err != nil {
				return err
			}
		}
	case ch == '"':
		c.i++
		for c.i < len(c.s) && c.s[c.i] != '"' {
			b := c.s[c.i]
			if b == '\\' {
				c.i++
				if c.i >= len(c.s) || (c.s[c.i] != '"' && c.s[c.i] != '\\') {
					return c.errf("bad escape")
				}
			} else if b < 0x20 || b >= 0x7f {
				return c.errf("bad char %q in quoted string", b)
			}
			c.i++
		}
		if c.i >= len(c.s) {
			return c.errf("unclosed quoted string")
		}
		c.i++
	case ch == '{':
		j := c.i + 1
		for j < len(c.s) && c.s[j] >= '0' && c.s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(c.s[c.i+1 : j])
		if err != nil || j+3 > len(c.s) || c.s[j:j+3] != "}\r\n" || j+3+n > len(c.s) {
			return c.errf("bad literal")
		}
		c.i = j + 3 + n
	case ch >= '0' && ch <= '9':
		for c.i < len(c.s) && c.s[c.i] >= '0' && c.s[c.i] <= '9' {
			c.i++
		}
	case len(c.s)-c.i >= 3 && c.s[c.i:c.i+3] == "NIL":
		c.i += 3
	default:
		return c.errf("unexpected %q", ch)
	}
	return nil
}

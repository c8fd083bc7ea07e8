package server

import (
	"bufio"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/wire"
)

// parseFetchString parses the arguments of a FETCH command ("1:* (FLAGS)")
// followed by CRLF.
func parseFetchString(args string) (*fetchRequest, error) {
	d := wire.NewDecoder(bufio.NewReader(strings.NewReader(" "+args+"\r\n")), wire.Limits{})
	return parseFetch(d)
}

// describe renders the parsed items compactly for comparison.
func describe(atts []fetchAtt) string {
	var parts []string
	for _, a := range atts {
		s := a.name
		if a.kind == fetchSection {
			s += fmt.Sprintf("{path=%v spec=%q fields=%q peek=%v", a.section.Path, a.section.Specifier, a.section.Fields, a.peek)
			if a.partial {
				s += fmt.Sprintf(" partial=%d.%d", a.origin, a.count)
			}
			s += "}"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestParseFetchItems(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// Simple items, any case.
		{"1 FLAGS", "FLAGS"},
		{"1 flags", "FLAGS"},
		{"1 Uid", "UID"},
		{"1 ENVELOPE", "ENVELOPE"},
		{"1 internaldate", "INTERNALDATE"},
		{"1 rfc822.size", "RFC822.SIZE"},
		{"1 BODY", "BODY"},
		{"1 bodystructure", "BODYSTRUCTURE"},
		{"1 RFC822", `RFC822{path=[] spec="" fields=[] peek=false}`},
		{"1 rfc822.header", `RFC822.HEADER{path=[] spec="HEADER" fields=[] peek=true}`},
		{"1 RFC822.TEXT", `RFC822.TEXT{path=[] spec="TEXT" fields=[] peek=false}`},
		// Macros.
		{"1 ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE"},
		{"1 fast", "FLAGS INTERNALDATE RFC822.SIZE"},
		{"1 Full", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY"},
		// Lists.
		{"1 (FLAGS)", "FLAGS"},
		{"1 (UID FLAGS RFC822.SIZE)", "UID FLAGS RFC822.SIZE"},
		{"1 (FLAGS flags Flags)", "FLAGS"},
		// Sections.
		{"1 BODY[]", `BODY[]{path=[] spec="" fields=[] peek=false}`},
		{"1 body.peek[]", `BODY[]{path=[] spec="" fields=[] peek=true}`},
		{"1 BODY[HEADER]", `BODY[HEADER]{path=[] spec="HEADER" fields=[] peek=false}`},
		{"1 BODY[header]", `BODY[HEADER]{path=[] spec="HEADER" fields=[] peek=false}`},
		{"1 BODY[TEXT]", `BODY[TEXT]{path=[] spec="TEXT" fields=[] peek=false}`},
		{"1 BODY[HEADER.FIELDS (From To)]", `BODY[HEADER.FIELDS (FROM TO)]{path=[] spec="HEADER.FIELDS" fields=["From" "To"] peek=false}`},
		{"1 BODY.PEEK[header.fields.not (DATE)]", `BODY[HEADER.FIELDS.NOT (DATE)]{path=[] spec="HEADER.FIELDS.NOT" fields=["DATE"] peek=true}`},
		{`1 BODY[HEADER.FIELDS ("X-Odd(1)" {3}` + "\r\nA\"B)]", `BODY[HEADER.FIELDS ("X-ODD(1)" "A\"B")]{path=[] spec="HEADER.FIELDS" fields=["X-Odd(1)" "A\"B"] peek=false}`},
		{"1 BODY[1]", `BODY[1]{path=[1] spec="" fields=[] peek=false}`},
		{"1 BODY[1.2.3]", `BODY[1.2.3]{path=[1 2 3] spec="" fields=[] peek=false}`},
		{"1 BODY[2.HEADER]", `BODY[2.HEADER]{path=[2] spec="HEADER" fields=[] peek=false}`},
		{"1 BODY[2.text]", `BODY[2.TEXT]{path=[2] spec="TEXT" fields=[] peek=false}`},
		{"1 BODY[1.MIME]", `BODY[1.MIME]{path=[1] spec="MIME" fields=[] peek=false}`},
		{"1 BODY[3.1.HEADER.FIELDS (Subject)]", `BODY[3.1.HEADER.FIELDS (SUBJECT)]{path=[3 1] spec="HEADER.FIELDS" fields=["Subject"] peek=false}`},
		{"1 BODY[3.HEADER.FIELDS.NOT (Subject)]", `BODY[3.HEADER.FIELDS.NOT (SUBJECT)]{path=[3] spec="HEADER.FIELDS.NOT" fields=["Subject"] peek=false}`},
		// Partials.
		{"1 BODY[]<0.10>", `BODY[]<0>{path=[] spec="" fields=[] peek=false partial=0.10}`},
		{"1 BODY.PEEK[TEXT]<100.4294967295>", `BODY[TEXT]<100>{path=[] spec="TEXT" fields=[] peek=true partial=100.4294967295}`},
		{"1 (BODY[1]<5.1> FLAGS)", `BODY[1]<5>{path=[1] spec="" fields=[] peek=false partial=5.1} FLAGS`},
		// BODY[] and BODY.PEEK[] are one item, PEEK only when both are.
		{"1 (BODY.PEEK[] BODY[])", `BODY[]{path=[] spec="" fields=[] peek=false}`},
		{"1 (BODY.PEEK[] BODY.PEEK[])", `BODY[]{path=[] spec="" fields=[] peek=true}`},
		{"1 (BODY[]<0.5> BODY[]<0.6>)", `BODY[]<0>{path=[] spec="" fields=[] peek=false partial=0.5}`},
		// Everything at once.
		{"1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER RFC822.TEXT BODY[] BODY.PEEK[1.MIME])",
			`UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822{path=[] spec="" fields=[] peek=false} RFC822.HEADER{path=[] spec="HEADER" fields=[] peek=true} RFC822.TEXT{path=[] spec="TEXT" fields=[] peek=false} BODY[]{path=[] spec="" fields=[] peek=false} BODY[1.MIME]{path=[1] spec="MIME" fields=[] peek=true}`},
	}
	for _, tt := range tests {
		r, err := parseFetchString(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := describe(r.atts); got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func TestParseFetchSet(t *testing.T) {
	r, err := parseFetchString("1:3,5,7:* FLAGS")
	if err != nil {
		t.Fatal(err)
	}
	want := imap.SeqSet{{Start: 1, Stop: 3}, {Start: 5, Stop: 5}, {Start: 7, Stop: 0}}
	if !reflect.DeepEqual(r.set, want) {
		t.Errorf("set %v, want %v", r.set, want)
	}
}

func TestParseFetchSection(t *testing.T) {
	r, err := parseFetchString("1 BODY[4.2.HEADER.FIELDS (A b)]")
	if err != nil {
		t.Fatal(err)
	}
	want := message.Section{Path: []int{4, 2}, Specifier: message.SpecHeaderFields, Fields: []string{"A", "b"}}
	if !reflect.DeepEqual(r.atts[0].section, want) {
		t.Errorf("section %+v, want %+v", r.atts[0].section, want)
	}
}

func TestParseFetchErrors(t *testing.T) {
	tests := []string{
		"",
		"1",
		"1 ",
		"0 FLAGS",
		"a FLAGS",
		"1:x FLAGS",
		"1  FLAGS",
		"1 FOO",
		"1 (FLAGS FOO)",
		"1 ()",
		"1 (FLAGS",
		"1 (FLAGS))",
		"1 FLAGS)",
		"1 (ALL)",
		"1 (FAST FLAGS)",
		"1 ALL FLAGS",
		"1 FLAGS UID",
		"1 ALL[]",
		"1 BINARY[1]",
		"1 BINARY.SIZE[1]",
		"1 [HEADER]",
		"1 FLAGS[]",
		"1 RFC822[]",
		"1 BODY.PEEK",
		"1 BODY.PEEK FLAGS",
		"1 BODY[",
		"1 BODY[HEADER",
		"1 BODY[HEADER ]",
		"1 BODY[FOO]",
		"1 BODY[MIME]",
		"1 BODY[HEADER.MIME]",
		"1 BODY[TEXT.1]",
		"1 BODY[0]",
		"1 BODY[1.0]",
		"1 BODY[01]",
		"1 BODY[1.]",
		"1 BODY[.1]",
		"1 BODY[1..2]",
		"1 BODY[1.2x]",
		"1 BODY[99999999999]",
		"1 BODY[1.FOO]",
		"1 BODY[1.HEADER.FIELDS]",
		"1 BODY[HEADER.FIELDS]",
		"1 BODY[HEADER.FIELDS ()]",
		"1 BODY[HEADER.FIELDS (FROM]",
		"1 BODY[HEADER.FIELDS(FROM)]",
		"1 BODY[HEADER.FIELDS (\"\")]",
		"1 BODY[HEADER.FIELDS (\"a b\")]",
		"1 BODY[HEADER.FIELDS (FROM)",
		"1 BODY[TEXT (FROM)]",
		"1 BODY[]<",
		"1 BODY[]<0>",
		"1 BODY[]<0.0>",
		"1 BODY[]<a.1>",
		"1 BODY[]<1.2",
		"1 BODY[]<-1.2>",
		"1 BODY[]<4294967296.1>",
		"1 BODY[] <0.1>",
		"1 BODY []",
		"1 FLAGS ()",
		"1 FLAGS (FOO)",
		"1 FLAGS (CHANGEDSINCE)",
		"1 FLAGS (CHANGEDSINCE x)",
		"1 FLAGS (VANISHED 5)",
		"1 FLAGS FOO",
		"1 FLAGS\x00",
	}
	for _, in := range tests {
		_, err := parseFetchString(in)
		var syn *wire.SyntaxError
		if !errors.As(err, &syn) {
			t.Errorf("%q: got %v, want a syntax error", in, err)
		}
	}
}

func TestParseFetchLimits(t *testing.T) {
	many := strings.TrimSpace(strings.Repeat("FLAGS ", maxFetchAtts+1))
	var lim *wire.LimitError
	if _, err := parseFetchString("1 (" + many + ")"); !errors.As(err, &lim) {
		t.Errorf("too many items: %v", err)
	}
	if _, err := parseFetchString("1 (" + strings.TrimSpace(strings.Repeat("FLAGS ", maxFetchAtts)) + ")"); err != nil {
		t.Errorf("%d items: %v", maxFetchAtts, err)
	}
	fields := strings.TrimSpace(strings.Repeat("X ", maxFetchFields+1))
	if _, err := parseFetchString("1 BODY[HEADER.FIELDS (" + fields + ")]"); !errors.As(err, &lim) {
		t.Errorf("too many fields: %v", err)
	}
	path := strings.TrimSuffix(strings.Repeat("1.", maxSectionPath+1), ".")
	if _, err := parseFetchString("1 BODY[" + path + "]"); !errors.As(err, &lim) {
		t.Errorf("path too deep: %v", err)
	}
}

// TestParseFetchModifiers checks that a known modifier is parsed by its
// registered function (the table is empty until CONDSTORE).
func TestParseFetchModifiers(t *testing.T) {
	var got []uint32
	fetchModifiers["TEST"] = func(d *wire.Decoder, r *fetchRequest) error {
		if err := d.SP(); err != nil {
			return err
		}
		n, err := d.Number()
		got = append(got, n)
		return err
	}
	fetchModifiers["FLAG"] = func(d *wire.Decoder, r *fetchRequest) error { return nil }
	defer delete(fetchModifiers, "TEST")
	defer delete(fetchModifiers, "FLAG")
	if _, err := parseFetchString("1 FLAGS (test 7 FLAG)"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []uint32{7}) {
		t.Errorf("got %v", got)
	}
	for _, in := range []string{"1 FLAGS (TEST 1 TEST 2)", "1 FLAGS (TEST)", "1 FLAGS (FLAG", "1 FLAGS(FLAG)"} {
		if _, err := parseFetchString(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestPartialBytes(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		origin, count uint32
		want          string
	}{
		{0, 10, "0123456789"},
		{0, 100, "0123456789"},
		{0, 1, "0"},
		{3, 4, "3456"},
		{9, 4294967295, "9"},
		{10, 1, ""},
		{4294967295, 4294967295, ""},
	}
	for _, tt := range tests {
		if got := string(partialBytes(data, tt.origin, tt.count)); got != tt.want {
			t.Errorf("<%d.%d>: %q, want %q", tt.origin, tt.count, got, tt.want)
		}
	}
}

package server

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/wire"
)

// keyString writes a parsed key tree in a compact form for comparisons.
func keyString(k *searchKey) string {
	var kids []string
	for _, kid := range k.kids {
		kids = append(kids, keyString(kid))
	}
	switch k.op {
	case opAll:
		return "ALL"
	case opAnd:
		return "AND(" + strings.Join(kids, ",") + ")"
	case opOr:
		return "OR(" + strings.Join(kids, ",") + ")"
	case opNot:
		return "NOT(" + kids[0] + ")"
	case opSeq:
		return "SEQ " + k.set.String()
	case opUID:
		return "UID " + k.set.String()
	case opFlag:
		return "FLAG " + k.flag
	case opRecent:
		return "RECENT"
	case opBefore, opOn, opSince, opSentBefore, opSentOn, opSentSince:
		names := map[searchOp]string{opBefore: "BEFORE", opOn: "ON", opSince: "SINCE", opSentBefore: "SENTBEFORE", opSentOn: "SENTON", opSentSince: "SENTSINCE"}
		return fmt.Sprintf("%s %d", names[k.op], k.num)
	case opLarger:
		return fmt.Sprintf("LARGER %d", k.num)
	case opSmaller:
		return fmt.Sprintf("SMALLER %d", k.num)
	case opHeader:
		return fmt.Sprintf("HEADER %s %q", k.field, k.value)
	case opBody:
		return fmt.Sprintf("BODY %q", k.value)
	case opText:
		return fmt.Sprintf("TEXT %q", k.value)
	}
	return "?"
}

// parseArgs parses the arguments of SEARCH given as they follow the
// command name (" ..." CRLF).
func parseArgs(s string) (*searchCmd, error) {
	dec := wire.NewDecoder(bufio.NewReader(strings.NewReader(s)), wire.Limits{})
	dec.Begin()
	return parseSearch(dec)
}

func TestParseSearchKeys(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ALL", "ALL"},
		{"all", "ALL"},
		{"ANSWERED", `FLAG \Answered`},
		{"DELETED", `FLAG \Deleted`},
		{"DRAFT", `FLAG \Draft`},
		{"FLAGGED", `FLAG \Flagged`},
		{"SEEN", `FLAG \Seen`},
		{"UNANSWERED", `NOT(FLAG \Answered)`},
		{"UNDELETED", `NOT(FLAG \Deleted)`},
		{"UNDRAFT", `NOT(FLAG \Draft)`},
		{"UNFLAGGED", `NOT(FLAG \Flagged)`},
		{"unseen", `NOT(FLAG \Seen)`},
		{"RECENT", "RECENT"},
		{"NEW", `AND(RECENT,NOT(FLAG \Seen))`},
		{"OLD", "NOT(RECENT)"},
		{"KEYWORD $Junk", "FLAG $Junk"},
		{"UNKEYWORD foo", "NOT(FLAG foo)"},
		{"BCC bob", `HEADER Bcc "BOB"`},
		{"CC bob", `HEADER Cc "BOB"`},
		{`FROM "Bob Smith"`, `HEADER From "BOB SMITH"`},
		{"SUBJECT hello", `HEADER Subject "HELLO"`},
		{"TO x@y", `HEADER To "X@Y"`},
		{"BODY word", `BODY "WORD"`},
		{"TEXT word", `TEXT "WORD"`},
		{"HEADER X-Spam yes", `HEADER X-Spam "YES"`},
		{`HEADER "List-Id" ""`, `HEADER List-Id ""`},
		{"BEFORE 1-Feb-2024", "BEFORE 20240201"},
		{`ON "15-mar-2023"`, "ON 20230315"},
		{"SINCE 29-Feb-2024", "SINCE 20240229"},
		{"SENTBEFORE 1-Jan-2000", "SENTBEFORE 20000101"},
		{"SENTON 31-Dec-1999", "SENTON 19991231"},
		{"SENTSINCE 02-Jan-2020", "SENTSINCE 20200102"},
		{"LARGER 100", "LARGER 100"},
		{"SMALLER 4294967295", "SMALLER 4294967295"},
		{"UID 1:*", "UID 1:*"},
		{"UID 5,7:9", "UID 5,7:9"},
		{"1:3,5", "SEQ 1:3,5"},
		{"*", "SEQ *"},
		{"NOT SEEN", `NOT(FLAG \Seen)`},
		{"NOT NOT SEEN", `NOT(NOT(FLAG \Seen))`},
		{"OR SEEN FLAGGED", `OR(FLAG \Seen,FLAG \Flagged)`},
		{"OR (SEEN DELETED) NOT 1", `OR(AND(FLAG \Seen,FLAG \Deleted),NOT(SEQ 1))`},
		{"OR OR SEEN DRAFT FLAGGED", `OR(OR(FLAG \Seen,FLAG \Draft),FLAG \Flagged)`},
		{"(SEEN)", `FLAG \Seen`},
		{"((SEEN) (NOT 2:4))", `AND(FLAG \Seen,NOT(SEQ 2:4))`},
		{"SEEN FROM bob 1:5", `AND(FLAG \Seen,HEADER From "BOB",SEQ 1:5)`},
		{"SUBJECT {5}\r\nhello", `HEADER Subject "HELLO"`},
		{"SUBJECT {6+}\r\nh\"llo\\ BODY x", `AND(HEADER Subject "H\"LLO\\",BODY "X")`},
		{"BODY \"caf\xc3\xa9\"", `BODY "CAFÉ"`},
		{"BODY {6}\r\nCAF\xc3\x89!", `BODY "CAFÉ!"`},
	}
	for _, tt := range tests {
		cmd, err := parseArgs(" " + tt.in + "\r\n")
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := keyString(cmd.key); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.in, got, tt.want)
		}
		if cmd.esearch || cmd.charset != "" {
			t.Errorf("%q: esearch %v charset %q", tt.in, cmd.esearch, cmd.charset)
		}
	}
}

func TestParseSearchReturnCharset(t *testing.T) {
	tests := []struct {
		in      string
		esearch bool
		ret     searchReturn
		charset string
		key     string
	}{
		{"RETURN () ALL", true, retAll, "", "ALL"},
		{"RETURN (MIN) SEEN", true, retMin, "", `FLAG \Seen`},
		{"return (min max count all) 1", true, retMin | retMax | retCount | retAll, "", "SEQ 1"},
		{"RETURN (COUNT) CHARSET UTF-8 BODY x", true, retCount, "UTF-8", `BODY "X"`},
		{"CHARSET us-ascii ALL", false, 0, "us-ascii", "ALL"},
		{`CHARSET "ISO-8859-1" TEXT x`, false, 0, "ISO-8859-1", `TEXT "X"`},
		{"CHARSET UTF-8 (SEEN)", false, 0, "UTF-8", `FLAG \Seen`},
		{"CHARSET UTF-8 2", false, 0, "UTF-8", "SEQ 2"},
	}
	for _, tt := range tests {
		cmd, err := parseArgs(" " + tt.in + "\r\n")
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if cmd.esearch != tt.esearch || cmd.ret != tt.ret || cmd.charset != tt.charset || keyString(cmd.key) != tt.key {
			t.Errorf("%q: got esearch %v ret %b charset %q key %s", tt.in, cmd.esearch, cmd.ret, cmd.charset, keyString(cmd.key))
		}
	}
	if !knownCharset("utf-8") || !knownCharset("US-ASCII") || !knownCharset("ISO-8859-1") ||
		!knownCharset("koi8-r") || knownCharset("x-nonesuch") || knownCharset("ISO-2022-KR") {
		t.Error("knownCharset")
	}
}

// A search string that is not text in the search's charset parses (the
// command is read in full) and is flagged for a BAD; an unknown charset is
// left for BADCHARSET.
func TestParseSearchInvalidText(t *testing.T) {
	const notUTF8, notASCII = "Search string is not valid UTF-8", "Search string is not US-ASCII, the charset given"
	tests := []struct{ in, invalid string }{
		{"BODY x", ""},
		{"BODY \"caf\xc3\xa9\"", ""},
		{"BODY {2}\r\n\xff\xfe", notUTF8},
		{"CHARSET UTF-8 BODY {2}\r\n\xff\xfe", notUTF8},
		{"CHARSET utf-8 TEXT {3}\r\n\xed\xa0\x80", notUTF8}, // a surrogate
		{"HEADER {2}\r\nX\xff y", notUTF8},
		{"SUBJECT ok FROM {1}\r\n\x80", notUTF8},
		{"OR TO {1}\r\n\x80 CC {1}\r\n\xc0 SEEN", notUTF8},
		{"CHARSET US-ASCII BODY x", ""},
		{"CHARSET us-ascii BODY \"caf\xc3\xa9\"", notASCII},
		{"CHARSET US-ASCII BODY {2}\r\n\xff\xfe", notASCII},
		{"CHARSET ISO-8859-1 BODY {2}\r\n\xff\xfe", ""},
		{"NOT 1:3 KEYWORD $Junk", ""},
	}
	for _, tt := range tests {
		cmd, err := parseArgs(" " + tt.in + "\r\n")
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if cmd.invalid != tt.invalid {
			t.Errorf("%q: invalid %q, want %q", tt.in, cmd.invalid, tt.invalid)
		}
	}
}

func TestParseSearchErrors(t *testing.T) {
	deep := strings.Repeat("NOT ", maxSearchDepth+1) + "SEEN"
	deepOr := strings.Repeat("OR SEEN ", maxSearchDepth+1) + "SEEN"
	many := strings.TrimSpace(strings.Repeat("SEEN ", maxSearchKeys+1))
	tests := []struct {
		in    string
		limit bool
	}{
		{"", false},
		{" ", false},
		{"FOO", false},
		{"SEEN ", false},
		{"SEEN  SEEN", false},
		{"()", false},
		{"(SEEN", false},
		{"SEEN)", false},
		{"NOT", false},
		{"OR SEEN", false},
		{"FROM", false},
		{"HEADER From", false},
		{"BEFORE 32-Jan-2024", false},
		{"BEFORE 1-Foo-2024", false},
		{"BEFORE 2024-01-01", false},
		{"ON 29-Feb-2023", false},
		{"LARGER x", false},
		{"LARGER 4294967296", false},
		{"UID", false},
		{"UID x", false},
		{"0", false},
		{"1:0", false},
		{"$", false},
		{`KEYWORD \*`, false},
		// flag-keyword = atom (RFC 3501 §9): no system flag.
		{`KEYWORD \Seen`, false},
		{`KEYWORD \seen`, false},
		{`UNKEYWORD \Deleted`, false},
		{`KEYWORD \Recent`, false},
		{`KEYWORD \Foo`, false},
		{"KEYWORD (x)", false},
		{"RETURN (FOO) ALL", false},
		{"RETURN (SAVE) ALL", false},
		{"RETURN MIN ALL", false},
		{"RETURN (MIN)", false},
		{"CHARSET", false},
		{"CHARSET UTF-8", false},
		{"RETURN (MIN) RETURN (MAX) ALL", false},
		{"CHARSET UTF-8 CHARSET UTF-8 ALL", false},
		{"CHARSET UTF-8 RETURN (MIN) ALL", false},
		{"SUBJECT \"unterminated", false},
		{deep, true},
		{deepOr, true},
		{many, true},
	}
	for _, tt := range tests {
		_, err := parseArgs(" " + tt.in + "\r\n")
		if tt.in == "" {
			_, err = parseArgs("\r\n")
		}
		var syn *wire.SyntaxError
		var lim *wire.LimitError
		switch {
		case err == nil:
			t.Errorf("%.40q: parsed", tt.in)
		case tt.limit && !errors.As(err, &lim):
			t.Errorf("%.40q: %v, want a LimitError", tt.in, err)
		case !tt.limit && !errors.As(err, &syn) && !errors.As(err, &lim):
			t.Errorf("%.40q: %v, want a SyntaxError", tt.in, err)
		}
	}
	// At the limits themselves the search parses.
	for _, in := range []string{
		strings.Repeat("NOT ", maxSearchDepth-1) + "SEEN",
		strings.TrimSpace(strings.Repeat("SEEN ", maxSearchKeys)),
	} {
		if _, err := parseArgs(" " + in + "\r\n"); err != nil {
			t.Errorf("%.40q: %v", in, err)
		}
	}
}

func TestPrepareSearchOrdersCheapFirst(t *testing.T) {
	cmd, err := parseArgs(" BODY x (LARGER 5 SUBJECT y) SEEN OR TEXT a 2 UID 3:*\r\n")
	if err != nil {
		t.Fatal(err)
	}
	prepareSearch(cmd.key, 10, 20)
	got := keyString(cmd.key)
	// HEADER (the header only) before BODY (the whole message).
	want := `AND(FLAG \Seen,UID 3:*,LARGER 5,HEADER Subject "Y",BODY "X",OR(TEXT "A",SEQ 2))`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if r := cmd.key.kids[1].ranges; len(r) != 1 || r[0] != (imap.NumRange{Start: 3, Stop: 20}) {
		t.Errorf("UID ranges %v", r)
	}
}

func TestFoldString(t *testing.T) {
	tests := []struct{ a, b string }{
		{"hello", "HELLO"},
		{"Straße", "STRAßE"},
		{"K", "\u212a"}, // KELVIN SIGN
		{"s", "\u017f"}, // LONG S
		{"σ", "Σ"},      // sigma
		{"ς", "Σ"},      // final sigma folds to sigma
		{"Ǆ", "ǆ"},      // titlecase triple
		{"ǅ", "ǆ"},      // titlecase triple
		{"İstanbul", "İSTANBUL"},
		{"ÉCOLE", "école"},
		{"Ωmega", "ωMEGA"},
	}
	for _, tt := range tests {
		if foldString(tt.a) != foldString(tt.b) {
			t.Errorf("fold(%q)=%q != fold(%q)=%q", tt.a, foldString(tt.a), tt.b, foldString(tt.b))
		}
	}
	if foldString("abc") == foldString("abd") || foldString("é") == foldString("e") {
		t.Error("distinct strings fold together")
	}
	if s := "NO LOWER CASE 123"; foldString(s) != s {
		t.Error("fold changed an upper-case ASCII string")
	}
}

// testMsg builds a searchMsg with everything loaded.
func testMsg(t *testing.T, raw string, date time.Time, flags ...string) *searchMsg {
	t.Helper()
	p, err := message.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	info := &store.MessageInfo{
		MessageMeta:  store.MessageMeta{UID: 7, Flags: flags},
		InternalDate: date,
		Size:         int64(len(raw)),
		Structure:    p.Marshal(),
	}
	return &searchMsg{seq: 3, uid: 7, meta: info.MessageMeta, info: info, raw: []byte(raw), level: costBody}
}

// matchString parses a search and evaluates it for m.
func matchString(t *testing.T, m *searchMsg, search string) tri {
	t.Helper()
	cmd, err := parseArgs(" " + search + "\r\n")
	if err != nil {
		t.Fatalf("%q: %v", search, err)
	}
	prepareSearch(cmd.key, 10, 20)
	// A fresh copy: caches must not carry over between searches.
	fresh := &searchMsg{seq: m.seq, uid: m.uid, meta: m.meta, recent: m.recent, info: m.info, raw: m.raw, level: m.level}
	return matchKey(cmd.key, fresh)
}

const testRaw = "Date: Tue, 14 Mar 2023 23:30:00 -0700\r\n" +
	"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\r\n" +
	"To: Alice <alice@example.com>,\r\n bob@example.org\r\n" +
	"Cc: carol@example.net\r\n" +
	"Bcc: dave@example.com\r\n" +
	"Subject: =?ISO-8859-1?B?Q2Fm6Q==?= meeting\r\n" +
	"X-Priority: 1\r\n" +
	"List-Id: <dev.example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=XX\r\n" +
	"\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Gr=C3=BC=C3=9Fe aus K=C3=B6ln, the STRASSE is longe=\r\n" +
	"r than expected.\r\n" +
	"--XX\r\n" +
	"Content-Type: text/html; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+c+ljcmV0IGluZm88L3A+\r\n" + // <p>sécret info</p> in Latin-1
	"--XX\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"aGlkZGVuIGF0dGFjaG1lbnQ=\r\n" + // "hidden attachment"
	"--XX--\r\n"

func TestMatchMessage(t *testing.T) {
	// Internal date: 1 March 2023 23:30 in UTC-8 (2 March in UTC).
	date := time.Date(2023, 3, 1, 23, 30, 0, 0, time.FixedZone("", -8*3600))
	m := testMsg(t, testRaw, date, imap.FlagSeen, "$Work")
	tests := []struct {
		search string
		want   bool
	}{
		{"ALL", true},
		{"SEEN", true},
		{"UNSEEN", false},
		{"FLAGGED", false},
		{"UNFLAGGED", true},
		{"KEYWORD $work", true},
		{"KEYWORD $WORK", true},
		{"KEYWORD $Home", false},
		{"UNKEYWORD $Home", true},
		{"RECENT", false},
		{"OLD", true},
		{"NEW", false},
		{"3", true},
		{"1:2,4:*", false},
		{"*", false},
		{"UID 7", true},
		{"UID 1:6,8:*", false},
		{"UID 20:*", false},
		// Internal date in its own zone: 1 March, whatever UTC says.
		{"ON 1-Mar-2023", true},
		{"ON 2-Mar-2023", false},
		{"BEFORE 1-Mar-2023", false},
		{"BEFORE 2-Mar-2023", true},
		{"SINCE 1-Mar-2023", true},
		{"SINCE 2-Mar-2023", false},
		// Date: header in its own zone: 14 March (15 March in UTC).
		{"SENTON 14-Mar-2023", true},
		{"SENTON 15-Mar-2023", false},
		{"SENTBEFORE 14-Mar-2023", false},
		{"SENTBEFORE 15-Mar-2023", true},
		{"SENTSINCE 14-Mar-2023", true},
		{"SENTSINCE 15-Mar-2023", false},
		{fmt.Sprintf("LARGER %d", len(testRaw)-1), true},
		{fmt.Sprintf("LARGER %d", len(testRaw)), false},
		{fmt.Sprintf("SMALLER %d", len(testRaw)+1), true},
		{fmt.Sprintf("SMALLER %d", len(testRaw)), false},
		// RFC 2047 decoded, case-insensitive.
		{`FROM "müller"`, true},
		{`FROM "MÜLLER"`, true},
		{`FROM "jürgen m"`, true},
		{"FROM juergen@example.de", true},
		{"FROM alice", false},
		{"TO alice", true},
		{"TO BOB@EXAMPLE.ORG", true}, // on the folded continuation line
		{"CC carol", true},
		{"BCC dave", true},
		{`SUBJECT "café"`, true},
		{`SUBJECT "CAFÉ MEETING"`, true},
		{"SUBJECT cafe", false},
		{"HEADER x-priority 1", true},
		{"HEADER X-PRIORITY 2", false},
		{`HEADER List-Id ""`, true},
		{`HEADER Reply-To ""`, false},
		{"HEADER Content-Type mixed", true},
		// Bodies: QP and base64 decoded, charsets converted, soft line
		// breaks joined, only text parts.
		{`BODY "grüße"`, true},
		{`BODY "GRÜSSE"`, false}, // simple folding: ß is not ss
		{`BODY "köln"`, true},
		{"BODY longer", true},
		{`BODY "sécret"`, true},
		{`BODY "SÉCRET"`, true},
		{"BODY hidden", false},
		{"BODY meeting", false}, // header only
		{"TEXT meeting", true},
		{`TEXT "Café"`, true}, // decoded header
		{"TEXT =?ISO-8859-1?B?", true},
		{"TEXT x-priority", true},
		{"TEXT strasse", true},
		{"TEXT nowhere", false},
		{`BODY ""`, true},
		// Logic.
		{"NOT SEEN", false},
		{"OR FLAGGED SEEN", true},
		{"OR FLAGGED DRAFT", false},
		{`SEEN BODY "köln"`, true},
		{"SEEN BODY nowhere", false},
		{"NOT (FLAGGED BODY x)", true},
		{"OR (FROM nobody) (NOT UID 8)", true},
	}
	for _, tt := range tests {
		if got := matchString(t, m, tt.search); got != triOf(tt.want) {
			t.Errorf("%s: got %d, want %v", tt.search, got, tt.want)
		}
	}
	m.recent = true
	for _, s := range []string{"RECENT", "NOT OLD"} {
		if matchString(t, m, s) != tTrue {
			t.Errorf("%s: no match for a recent message", s)
		}
	}
	if matchString(t, m, "NEW") != tFalse {
		t.Error("NEW matches a seen message")
	}
}

func TestMatchStages(t *testing.T) {
	date := time.Date(2023, 3, 1, 12, 0, 0, 0, time.UTC)
	full := testMsg(t, testRaw, date)
	mem := &searchMsg{seq: 3, uid: 7, meta: full.meta}
	info := &searchMsg{seq: 3, uid: 7, meta: full.meta, info: full.info, level: costInfo}
	tests := []struct {
		search   string
		mem, inf tri
	}{
		{"UNSEEN", tTrue, tTrue},
		{"SEEN BODY x", tFalse, tFalse},
		{"UNSEEN BODY x", tUnknown, tUnknown},
		{"OR UNSEEN BODY x", tTrue, tTrue},
		{"NOT BODY x", tUnknown, tUnknown},
		{"ON 1-Mar-2023", tUnknown, tTrue},
		{"NOT ON 1-Mar-2023", tUnknown, tFalse},
		{"BEFORE 1-Mar-2023 SUBJECT x", tUnknown, tFalse},
		{"SENTON 14-Mar-2023", tUnknown, tTrue},
		{"LARGER 1 FROM x", tUnknown, tUnknown},
	}
	for _, tt := range tests {
		if got := matchString(t, mem, tt.search); got != tt.mem {
			t.Errorf("%s in memory: got %d, want %d", tt.search, got, tt.mem)
		}
		if got := matchString(t, info, tt.search); got != tt.inf {
			t.Errorf("%s with infos: got %d, want %d", tt.search, got, tt.inf)
		}
	}
	// Without a cached structure, the Date: header waits for the body.
	noStruct := *full.info
	noStruct.Structure = nil
	m := &searchMsg{seq: 3, uid: 7, meta: full.meta, info: &noStruct, level: costInfo}
	if got := matchString(t, m, "SENTON 14-Mar-2023"); got != tUnknown {
		t.Errorf("SENTON without structure: %d", got)
	}
	m.raw, m.level = full.raw, costBody
	if got := matchString(t, m, "SENTON 14-Mar-2023"); got != tTrue {
		t.Errorf("SENTON parsed from the body: %d", got)
	}
}

func TestMatchSentDateUnparseable(t *testing.T) {
	for _, raw := range []string{
		"Date: yesterday\r\nSubject: x\r\n\r\nbody\r\n",
		"Subject: no date\r\n\r\nbody\r\n",
	} {
		m := testMsg(t, raw, time.Now())
		for _, s := range []string{"SENTON 1-Jan-2020", "SENTBEFORE 1-Jan-2100", "SENTSINCE 1-Jan-1970"} {
			if got := matchString(t, m, s); got != tFalse {
				t.Errorf("%q %s: %d", raw, s, got)
			}
		}
	}
	var m *searchMsg
	// Obsolete forms parse: no day name, two-digit year, named zone, and
	// so does a date without a zone.
	m = testMsg(t, "Date: Sun, 5 Jan 2020 23:59:59\r\n\r\nx\r\n", time.Now())
	if got := matchString(t, m, "SENTON 5-Jan-2020"); got != tTrue {
		t.Errorf("date without zone: %d", got)
	}
	m = testMsg(t, "Date: 5 Jan 99 10:00:00 EST\r\n\r\nx\r\n", time.Now())
	if got := matchString(t, m, "SENTON 5-Jan-1999"); got != tTrue {
		t.Errorf("obsolete date: %d", got)
	}
}

func TestMatchEncodedBodies(t *testing.T) {
	tests := []struct {
		raw, search string
		want        bool
	}{
		{"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=EFve caf=E9\r\n", `BODY "NAÏVE CAFÉ"`, true},
		{"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nzqPOv8+GzrnOsQ==\r\n", `BODY "σοφια"`, true}, // Σοφια
		{"Content-Type: text/plain\r\n\r\nplain ascii\r\n", "BODY ASCII", true},
		{"Subject: =?utf-8?b?w4lURQ==?=\r\n\r\nx\r\n", `SUBJECT "éte"`, true},
		{"Subject: =?utf-8?q?a_b?= =?utf-8?q?c?=\r\n\r\nx\r\n", "SUBJECT \"a bc\"", true},
		{"Content-Type: message/rfc822\r\n\r\nSubject: inner secret\r\n\r\ninner body\r\n", "TEXT \"inner secret\"", true},
		{"Content-Type: message/rfc822\r\n\r\nSubject: inner secret\r\n\r\ninner body\r\n", "BODY \"inner body\"", true},
		{"Content-Type: message/rfc822\r\n\r\nSubject: inner secret\r\n\r\ninner body\r\n", "SUBJECT inner", false},
	}
	for _, tt := range tests {
		m := testMsg(t, tt.raw, time.Now())
		if got := matchString(t, m, tt.search); got != triOf(tt.want) {
			t.Errorf("%s on %q: got %d", tt.search, tt.raw, got)
		}
	}
}

func TestInRanges(t *testing.T) {
	r := imap.SeqSet{{Start: 9, Stop: 7}, {Start: 1, Stop: 1}, {Start: 3, Stop: 0}}.Resolve(5)
	for n, want := range map[uint32]bool{1: true, 2: false, 3: true, 5: true, 6: false, 7: true, 9: true, 10: false} {
		if inRanges(r, n) != want {
			t.Errorf("%d in %v: %v", n, r, !want)
		}
	}
}

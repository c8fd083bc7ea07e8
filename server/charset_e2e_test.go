package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// charsetCases are fixtures of testdata/charsets with a word of their
// Subject and of their body in UTF-8, found in no other fixture, and the
// same words in the fixture's charset for SEARCH CHARSET (nil: that
// charset is not sent by clients, no SEARCH CHARSET case).
var charsetCases = []struct {
	file, subject, body string
	charset             string // for SEARCH CHARSET, "" for none
	subjectCS, bodyCS   string // subject and body in charset
}{
	{"koi8-r", "Москвы", "французских", "KOI8-R", "\xed\xcf\xd3\xcb\xd7\xd9", "\xc6\xd2\xc1\xce\xc3\xd5\xda\xd3\xcb\xc9\xc8"},
	{"windows-1251", "Отчёт", "Бухгалтерия", "windows-1251", "\xce\xf2\xf7\xb8\xf2", "\xc1\xf3\xf5\xe3\xe0\xeb\xf2\xe5\xf0\xe8\xff"},
	{"koi8-u", "ґанок", "Єнот", "KOI8-U", "\xad\xc1\xce\xcf\xcb", "\xb4\xce\xcf\xd4"},
	{"iso-8859-5", "Њива", "Ђорђе", "", "", ""},
	{"iso-8859-7", "Καλημέρα", "συνάντηση", "ISO-8859-7", "\xca\xe1\xeb\xe7\xec\xdd\xf1\xe1", "\xf3\xf5\xed\xdc\xed\xf4\xe7\xf3\xe7"},
	{"iso-8859-2", "Zażółć", "łódź", "ISO-8859-2", "Za\xbf\xf3\xb3\xe6", "\xb3\xf3d\xbc"},
	{"windows-1250", "žluťoučký", "ďábelské", "", "", ""},
	{"iso-8859-8", "שלום", "הפגישה", "", "", ""},
	{"windows-1256", "بالعالم", "الاجتماع", "", "", ""},
	{"iso-8859-9", "gölge", "Şoförün", "", "", ""},
	{"windows-874", "สวัสดี", "ประชุม", "", "", ""},
	{"iso-2022-jp", "議事録", "水曜日", "ISO-2022-JP", "\x1b$B5D;vO?\x1b(B", "\x1b$B?eMKF|\x1b(B"},
	{"shift_jis", "テスト", "請求書", "Shift_JIS", "\x83e\x83X\x83g", "\x90\xbf\x8b\x81\x8f\x91"},
	{"euc-jp", "東京タワー", "富士山", "EUC-JP", "\xc5\xec\xb5\xfe\xa5\xbf\xa5\xef\xa1\xbc", "\xc9\xd9\xbb\xce\xbb\xb3"},
	{"euc-kr", "안녕하세요", "연기되었습니다", "EUC-KR", "\xbe\xc8\xb3\xe7\xc7\xcf\xbc\xbc\xbf\xe4", "\xbf\xac\xb1\xe2\xb5\xc7\xbe\xfa\xbd\xc0\xb4\xcf\xb4\xd9"},
	{"ks_c_5601-1987", "서울", "내일은", "", "", ""},
	{"gb2312", "朱镕基", "推迟", "GB2312", "\xd6\xec\xe9\x46\xbb\xf9", "\xcd\xc6\xb3\xd9"},
	{"gbk", "邮件", "季度报告", "GBK", "\xd3\xca\xbc\xfe", "\xbc\xbe\xb6\xc8\xb1\xa8\xb8\xe6"},
	{"gb18030", "𠮷野家", "欢迎光临", "GB18030", "\x95\x34\xb2\x35\xd2\xb0\xbc\xd2", "\xbb\xb6\xd3\xad\xb9\xe2\xc1\xd9"},
	{"big5", "繁體", "颱風", "Big5", "\xc1\x63\xc5\xe9", "\xbb\xe4\xad\xb7"},
	{"utf-16", "Грамматика", "Ελληνικά", "", "", ""},
	{"utf-7", "Stück", "Zürich", "", "", ""},
}

// Messages in 22 charsets, appended over TCP: FETCH ENVELOPE gives the
// Subject as the header has it (RFC 3501 §7.4.2: the envelope strings are
// the raw header; decoding RFC 2047 words is the client's job), and
// SEARCH SUBJECT, BODY and TEXT find each message by a non-Latin word,
// in UTF-8 and in the message's own charset.
func TestSearchCharsetFixtures(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	rawSubjects := make([]string, len(charsetCases))
	for i, cc := range charsetCases {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "charsets", cc.file+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				rawSubjects[i] = s
			}
		}
		if l := appendMsg(t, c, "a", "INBOX", "", string(b)); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("APPEND %s: %s", cc.file, l)
		}
	}
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	for i, cc := range charsetCases {
		seq := i + 1
		got := c.Cmd("f", fmt.Sprintf("FETCH %d ENVELOPE", seq))
		want := fmt.Sprintf(`* %d FETCH (ENVELOPE ("Mon, 7 Dec 2026 10:00:00 +0000" %q `, seq, rawSubjects[i])
		if len(got) != 2 || !strings.HasPrefix(got[0], want) || got[1] != "f OK FETCH completed" {
			t.Errorf("%s: FETCH ENVELOPE: %q, want prefix %q", cc.file, got, want)
		}
		hit := []string{fmt.Sprintf("* SEARCH %d", seq), "k OK SEARCH completed"}
		lit := func(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }
		for _, q := range []string{
			"CHARSET UTF-8 SUBJECT " + lit(cc.subject),
			"CHARSET UTF-8 BODY " + lit(cc.body),
			"TEXT " + lit(cc.subject),
			"TEXT " + lit(cc.body),
			// Case-insensitive in every script that has case.
			"SUBJECT " + lit(strings.ToUpper(cc.subject)),
			"BODY " + lit(strings.ToLower(cc.body)),
		} {
			if got := c.Cmd("k", "SEARCH "+q); !equalLines(got, hit) {
				t.Errorf("%s: SEARCH %q: %q, want %q", cc.file, q, got, hit)
			}
		}
		if cc.charset == "" {
			continue
		}
		for _, q := range []string{
			"CHARSET " + cc.charset + " SUBJECT " + lit(cc.subjectCS),
			"CHARSET " + cc.charset + " BODY " + lit(cc.bodyCS),
			"CHARSET " + cc.charset + " TEXT " + lit(cc.bodyCS),
		} {
			if got := c.Cmd("k", "SEARCH "+q); !equalLines(got, hit) {
				t.Errorf("%s: SEARCH %q: %q, want %q", cc.file, q, got, hit)
			}
		}
	}
	// A raw KOI8-R Subject (no encoded word) is read in the charset of
	// the message's text.
	n := len(charsetCases) + 1
	appendMsg(t, c, "a", "INBOX", "", "Subject: \xf0\xd2\xc9\xd7\xc5\xd4 \xcb\xcf\xd4\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n\xcd\xc5\xd4\xd2\xcf\r\n")
	c.Expect("r1", "SEARCH SUBJECT {6+}\r\nкот", fmt.Sprintf("* SEARCH %d", n), "r1 OK SEARCH completed")
	c.Expect("r2", "SEARCH TEXT {10+}\r\nМЕТРО", fmt.Sprintf("* SEARCH %d", n), "r2 OK SEARCH completed")
	// A string that is not text in the charset given is BAD, as for UTF-8.
	c.Expect("b1", "SEARCH CHARSET Shift_JIS SUBJECT {1+}\r\n\x82",
		"b1 BAD Search string is not text in Shift_JIS, the charset given")
	c.Expect("b2", "SEARCH CHARSET X-NONESUCH SUBJECT x",
		"b2 NO [BADCHARSET (UTF-8 US-ASCII)] Charset X-NONESUCH not supported")
}

func equalLines(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

package message

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// charsetFixtures are the messages of testdata/charsets (written by its
// gen.py with Python's codecs) and the UTF-8 text of their Subject and
// body.
var charsetFixtures = []struct{ file, subject, body string }{
	{"koi8-r", "Привет из Москвы", "Съешь же ещё этих мягких французских булок, да выпей чаю."},
	{"windows-1251", "Отчёт за квартал", "Бухгалтерия прислала годовой баланс."},
	{"koi8-u", "Їжак і ґанок", "Єнот пішов до лісу по ґудзики."},
	{"iso-8859-5", "Љубав и Њива", "Ђорђе чита новине."},
	{"iso-8859-7", "Καλημέρα κόσμε", "Η συνάντηση μεταφέρθηκε την Τρίτη."},
	{"iso-8859-2", "Zażółć gęślą jaźń", "Pchnąć w tę łódź jeża lub ośm skrzyń fig."},
	{"windows-1250", "Příliš žluťoučký kůň", "úpěl ďábelské ódy"},
	{"iso-8859-8", "שלום עולם", "הפגישה נדחתה למחר"},
	{"windows-1256", "مرحبا بالعالم", "تم تأجيل الاجتماع"},
	{"iso-8859-9", "Işık ve gölge", "Şoförün çantası ağır."},
	{"windows-874", "สวัสดีชาวโลก", "การประชุมถูกเลื่อน"},
	{"iso-2022-jp", "会議の議事録", "来週の打ち合わせは水曜日です。"},
	{"shift_jis", "日本語のテスト", "請求書を添付いたします。"},
	{"euc-jp", "東京タワー見学", "富士山の写真を送ります。"},
	{"euc-kr", "안녕하세요 세계", "회의가 연기되었습니다."},
	{"ks_c_5601-1987", "서울 날씨", "내일은 비가 옵니다."},
	{"gb2312", "你好世界 朱镕基", "会议推迟到下周。"},
	{"gbk", "简体中文邮件", "附件是季度报告。"},
	{"gb18030", "𠮷野家 牛丼", "欢迎光临𠮷野家。"},
	{"big5", "繁體中文測試", "颱風明天登陸臺灣。"},
	{"utf-16", "Грамматика", "Ελληνικά και русский в UTF-16."},
	{"utf-7", "Stück für Stück", "Grüße aus Zürich, 日本語 auch."},
}

// Every fixture's Subject (an RFC 2047 word in the charset) and body (in
// the charset, under its transfer encoding) decode to the text written.
func TestCharsetFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "charsets", "*.eml"))
	if len(files) != len(charsetFixtures) {
		t.Errorf("%d fixtures, %d expectations", len(files), len(charsetFixtures))
	}
	for _, f := range charsetFixtures {
		raw, err := os.ReadFile(filepath.Join("..", "testdata", "charsets", f.file+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		p := mustParse(t, raw)
		if got := HeaderValues(raw, p, "Subject"); len(got) != 1 || got[0] != f.subject {
			t.Errorf("%s: Subject %q, want %q", f.file, got, f.subject)
		}
		if got := TextContent(raw, p); len(got) != 1 || strings.TrimRight(got[0], "\r\n") != f.body {
			t.Errorf("%s: body %q, want %q", f.file, got, f.body)
		}
		cs, _ := p.Param("CHARSET")
		if !KnownCharset(cs) {
			t.Errorf("%s: KnownCharset(%q) false", f.file, cs)
		}
	}
}

func TestDecodeWords(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// RFC 2047 §8 examples.
		{"=?ISO-8859-1?Q?a?=", "a"},
		{"=?ISO-8859-1?Q?a?= b", "a b"},
		{"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"},
		{"=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=", "ab"},
		{"=?ISO-8859-1?Q?a_b?=", "a b"},
		{"=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b"},
		{"(=?ISO-8859-1?Q?a?=)", "(a)"},
		// A UTF-8 character split across two words.
		{"=?UTF-8?B?w6Q=?= =?UTF-8?B?4oI=?= =?UTF-8?B?rA==?=", "ä€"},
		// Shift_JIS split in the middle of a two-byte character (日本).
		{"=?shift_jis?B?k/o=?= =?shift_jis?B?lns=?=", "日本"},
		// ISO-2022-JP shift state carried across words.
		{"=?iso-2022-jp?B?GyRCRnw=?= =?iso-2022-jp?B?S1wbKEI=?=", "日本"},
		// KOI8-R; RFC 2231 §5 language suffix; lower-case encoding.
		{"Re: =?koi8-r?b?8NLJ18XU?=", "Re: Привет"},
		{"=?KOI8-R*ru?Q?=F0=D2=C9=D7=C5=D4?= all", "Привет all"},
		{"x=?windows-1251?Q?=CC=E8=F0?=y", "xМирy"},
		// Malformed words are kept.
		{"=?utf-8?X?abc?= =?utf-8?Q?a b?=", "=?utf-8?X?abc?= =?utf-8?Q?a b?="},
		{"=?", "=?"},
		{"a =?utf-8?Q?open", "a =?utf-8?Q?open"},
		// An unknown charset: valid UTF-8 octets kept.
		{"=?x-unknown?Q?caf=C3=A9?=", "café"},
	} {
		if got := decodeHeader(c.in, ""); got != c.want {
			t.Errorf("decodeHeader(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDecodeCharset(t *testing.T) {
	for _, c := range []struct {
		cs, in, want string
		ok           bool
	}{
		{"KOI8-R", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет", true},
		{"cp1251", "\xcc\xe8\xf0", "Мир", true},
		{"EUC-KR", "\xbc\xad\xbf\xef", "서울", true},
		{"GB2312", "\xd6\xec\xe9\x46", "朱镕", true},
		{"UTF-8", "\xff", "", false},
		{"US-ASCII", "caf\xc3\xa9", "", false},
		{"x-nonesuch", "abc", "", false},
		{"ISO-2022-KR", "abc", "", false},
		{"Shift_JIS", "\x82", "", false}, // truncated character
		{"UTF-7", "Hi Mom -+Jjo--!", "Hi Mom -☺-!", true},
		{"UTF-7", "A+ImIDkQ.", "A≢Α.", true},
		{"UTF-7", "1 +- 1", "1 + 1", true},
	} {
		got, ok := DecodeCharset(c.cs, []byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("DecodeCharset(%q, %q) = %q, %v; want %q, %v", c.cs, c.in, got, ok, c.want, c.ok)
		}
	}
}

// Hostile values with many "=?" and no word end decode in linear time: a
// quadratic scan of these 600 KB takes minutes.
func TestDecodeWordsLinear(t *testing.T) {
	for _, v := range []string{
		strings.Repeat("=?a?Q?b", 100000),
		strings.Repeat("=?a?Q?b ", 80000),
		strings.Repeat("=?", 300000),
		strings.Repeat("=?utf-8?Q?x?==?a?Q?", 35000),
	} {
		start := time.Now()
		got := decodeHeader(v, "")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q...: %v", v[:20], d)
		}
		if len(got) == 0 {
			t.Errorf("%q...: empty result", v[:20])
		}
	}
}

// A raw 8-bit header in the charset of the message's text (no encoded
// word) is read in that charset; otherwise as UTF-8 or windows-1252.
func TestRawHeaderCharset(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{"Subject: \xf0\xd2\xc9\xd7\xc5\xd4\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\nx\r\n", "Привет"},
		{"Subject: \x93\xfa\x96\x7b =?utf-8?Q?=C3=A4?=\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\nx\r\n", "日本 ä"},
		{"Subject: caf\xc3\xa9\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\nx\r\n", "café"},
		{"Subject: caf\xe9\r\n\r\nx\r\n", "café"},
		{"Subject: caf\xe9\r\nContent-Type: multipart/mixed; boundary=b; charset=koi8-r\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", "café"},
	} {
		raw := []byte(c.msg)
		if got := HeaderValues(raw, mustParse(t, raw), "Subject"); len(got) != 1 || got[0] != c.want {
			t.Errorf("%q: %q, want %q", c.msg, got, c.want)
		}
	}
}

package message

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Charset conversion. UTF-8, US-ASCII, ISO-8859-1, ISO-8859-15 and
// windows-1252 are converted here directly; every other charset is looked
// up by name (charsetEncoding) in golang.org/x/text: the IANA registry
// first (RFC 2046 §4.1.2 charset names are IANA names), then the WHATWG
// labels browsers accept, which cover the aliases mail software writes
// (cp1251, x-sjis, ...). UTF-7 (RFC 2152) is decoded here. For a charset
// nobody knows, or when conversion fails, bytes that are valid UTF-8 are
// kept and others are read as windows-1252, so the result is always valid
// UTF-8.

// toUTF8 converts b from charset to a valid UTF-8 string.
func toUTF8(charset string, b []byte) string {
	switch normCharset(charset) {
	case "utf-8", "us-ascii", "":
		if utf8.Valid(b) {
			return string(b)
		}
		return decodeSingleByte(b, &cp1252)
	case "iso-8859-1":
		return decodeSingleByte(b, nil)
	case "windows-1252":
		return decodeSingleByte(b, &cp1252)
	case "iso-8859-15":
		return decodeSingleByte(b, &latin9)
	}
	if s, ok := convert(charset, b); ok {
		return s
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return decodeSingleByte(b, &cp1252)
}

// KnownCharset reports whether charset names a charset this package
// converts to UTF-8.
func KnownCharset(charset string) bool {
	switch normCharset(charset) {
	case "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "iso-8859-15":
		return true
	}
	n := normCharset(charset)
	return n == "utf-7" || charsetEncoding(n) != nil
}

// DecodeCharset converts b from charset to UTF-8. It reports false when
// the charset is unknown or b is not text in it (invalid UTF-8 or US-ASCII
// with 8-bit bytes, or a sequence the decoder replaces with U+FFFD).
func DecodeCharset(charset string, b []byte) (string, bool) {
	switch normCharset(charset) {
	case "utf-8":
		if !utf8.Valid(b) {
			return "", false
		}
		return string(b), true
	case "us-ascii":
		for _, c := range b {
			if c >= utf8.RuneSelf {
				return "", false
			}
		}
		return string(b), true
	case "iso-8859-1":
		return decodeSingleByte(b, nil), true
	case "windows-1252":
		return decodeSingleByte(b, &cp1252), true
	case "iso-8859-15":
		return decodeSingleByte(b, &latin9), true
	}
	s, ok := convert(charset, b)
	if !ok || strings.ContainsRune(s, utf8.RuneError) {
		return "", false
	}
	return s, true
}

// convert decodes b with the decoder of charset, false when there is none
// or it fails.
func convert(charset string, b []byte) (string, bool) {
	n := normCharset(charset)
	if n == "utf-7" {
		return decodeUTF7(b)
	}
	e := charsetEncoding(n)
	if e == nil {
		return "", false
	}
	out, err := e.NewDecoder().Bytes(b)
	if err != nil || !utf8.Valid(out) {
		return "", false
	}
	return string(out), true
}

// charsetEncoding returns the decoder of the normalized charset name n,
// nil when there is none.
func charsetEncoding(n string) encoding.Encoding {
	if n == "" {
		return nil
	}
	if e := charsetAlias(n); e != nil {
		return e
	}
	if e, err := ianaindex.MIME.Encoding(n); err == nil && e != nil {
		return e
	}
	if e, err := ianaindex.MIME.Encoding("cs" + n); err == nil && e != nil {
		return e
	}
	// WHATWG maps some labels to the "replacement" encoding, which turns
	// any input into one U+FFFD (ISO-2022-KR, ...): no use for search.
	if e, err := htmlindex.Get(n); err == nil && e != nil && e != encoding.Replacement {
		return e
	}
	return nil
}

// charsetAlias maps names mail software writes that neither index knows,
// or knows as a narrower charset than the one such mail is written in, to
// the superset decoder: GB2312 mail routinely holds GBK characters,
// KS_C_5601-1987 means Microsoft's code page 949 (x/text's EUC-KR is
// that superset), TIS-620 is read as windows-874, Big5-HKSCS as Big5.
func charsetAlias(n string) encoding.Encoding {
	switch n {
	case "gb2312", "csgb2312", "euc-cn", "x-euc-cn", "cp936", "ms936", "x-gbk", "chinese", "gb_2312-80":
		return simplifiedchinese.GBK
	case "ks_c_5601-1987", "ks_c_5601", "ks_c_5601-1989", "ksc5601", "ksc_5601", "cp949", "uhc",
		"windows-949", "x-windows-949", "korean", "csksc56011987":
		return korean.EUCKR
	case "sjis", "x-sjis", "shift-jis", "ms_kanji", "cp932", "windows-31j", "x-ms-cp932", "csshiftjis":
		return japanese.ShiftJIS
	case "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3":
		// The JIS X 0208/0212 repertoire decodes; other designations
		// become U+FFFD.
		return japanese.ISO2022JP
	case "euc-jp", "x-euc-jp", "cseucpkdfmtjapanese", "eucjp":
		return japanese.EUCJP
	case "big5-hkscs", "big5hkscs", "cn-big5", "x-x-big5", "csbig5":
		return traditionalchinese.Big5
	case "tis-620", "iso-8859-11", "cp874", "x-windows-874", "windows-874":
		return charmap.Windows874
	case "utf-32", "ucs-4":
		return utf32.UTF32(utf32.BigEndian, utf32.UseBOM)
	case "utf-32be":
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM)
	case "utf-32le":
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM)
	case "ansi_x3.110-1983":
		return charmap.ISO8859_1 // mostly a superset of ISO 8859-1 (RFC 1345)
	}
	return nil
}

// normCharset lowers and trims a charset name, drops an RFC 2231 §5
// language suffix ("utf-8*en") and maps the aliases of the charsets
// converted directly to one name.
func normCharset(c string) string {
	c = strings.ToLower(strings.Trim(strings.TrimSpace(c), `"'`))
	if i := strings.IndexByte(c, '*'); i >= 0 {
		c = c[:i]
	}
	switch c {
	case "utf-8", "utf8":
		return "utf-8"
	case "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us":
		return "us-ascii"
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "iso_8859-1:1987", "cp819":
		return "iso-8859-1"
	case "windows-1252", "cp1252", "x-cp1252":
		return "windows-1252"
	case "iso-8859-15", "iso8859-15", "iso_8859-15", "latin-9", "latin9":
		return "iso-8859-15"
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode-2-0-utf-7":
		return "utf-7"
	}
	return c
}

// decodeUTF7 decodes RFC 2152 UTF-7: "+" starts a run of base64 of
// UTF-16, ended by "-" (absorbed) or any character outside base64; "+-"
// is "+". Bad base64 and unpaired surrogates fail.
func decodeUTF7(b []byte) (string, bool) {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		if c != '+' {
			sb.WriteByte(c)
			i++
			continue
		}
		j := i + 1
		for j < len(b) && isBase64Char(b[j]) {
			j++
		}
		if j == i+1 {
			if j < len(b) && b[j] == '-' {
				sb.WriteByte('+')
				j++
			}
			// A lone "+" before a non-base64 character is kept.
			if j == i+1 {
				sb.WriteByte('+')
			}
			i = j
			continue
		}
		raw, err := base64.RawStdEncoding.Strict().DecodeString(string(b[i+1 : j]))
		if err != nil {
			// Leftover bits: decode the whole octets only.
			n := (j - i - 1) * 6 / 8
			full := base64.RawStdEncoding.EncodedLen(n)
			if raw, err = base64.RawStdEncoding.DecodeString(string(b[i+1 : i+1+full])); err != nil {
				return "", false
			}
		}
		if len(raw)%2 != 0 {
			raw = raw[:len(raw)-1]
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError {
				return "", false
			}
			sb.WriteRune(r)
		}
		if j < len(b) && b[j] == '-' {
			j++
		}
		i = j
	}
	return sb.String(), true
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// highTable maps bytes 0x80-0xFF to runes; nil means ISO-8859-1.
type highTable [128]rune

var cp1252, latin9 highTable

func init() {
	for i := range cp1252 {
		cp1252[i] = rune(0x80 + i)
		latin9[i] = rune(0x80 + i)
	}
	for i, r := range []rune{
		0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
		0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
		0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
		0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
	} {
		cp1252[i] = r
	}
	for b, r := range map[int]rune{0xA4: 0x20AC, 0xA6: 0x0160, 0xA8: 0x0161, 0xB4: 0x017D,
		0xB8: 0x017E, 0xBC: 0x0152, 0xBD: 0x0153, 0xBE: 0x0178} {
		latin9[b-0x80] = r
	}
}

func decodeSingleByte(b []byte, t *highTable) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	for _, c := range b {
		switch {
		case c < 0x80:
			sb.WriteByte(c)
		case t == nil:
			sb.WriteRune(rune(c))
		default:
			sb.WriteRune(t[c-0x80])
		}
	}
	return sb.String()
}

// decodeHeader decodes the RFC 2047 encoded words of an unfolded header
// value. Raw 8-bit bytes (which RFC 5322 does not allow, but mail in
// single-byte and CJK charsets often has) that are not UTF-8 are read in
// fallback, the charset of the entity's own text when it has one, else
// windows-1252; the result is always valid UTF-8.
func decodeHeader(v, fallback string) string {
	if strings.Contains(v, "=?") {
		return decodeWords(v, fallback)
	}
	return rawText(v, fallback)
}

// rawText returns s when it is valid UTF-8, else s read in charset.
func rawText(s, charset string) string {
	if utf8.ValidString(s) {
		return s
	}
	return toUTF8(charset, []byte(s))
}

// decodeWords decodes the encoded words (RFC 2047) of v. White space
// between two encoded words is dropped (§6.2). The octets of adjacent
// words in one charset are joined before conversion: §5 wants each word
// to hold whole characters, but mailers split multi-byte characters and
// ISO-2022-JP shift states across words. Like most readers, this one
// also decodes words not delimited by white space; a malformed word is
// kept as text. Text outside words is read as decodeHeader says. The
// work is linear in len(v), whatever the input.
func decodeWords(v, fallback string) string {
	var out strings.Builder
	out.Grow(len(v))
	var pending []byte // octets of the preceding words in pendCharset
	var pendCharset string
	flush := func() {
		if pendCharset != "" {
			out.WriteString(toUTF8(pendCharset, pending))
		}
		pending, pendCharset = pending[:0], ""
	}
	pos := 0    // v[:pos] is handled
	dead := 0   // no word that starts before dead can end: see parseWord
	gap := ""   // white space after the last word, written if text follows
	from := pos // where to look for the next "=?"
	for {
		k := strings.Index(v[from:], "=?")
		if k < 0 {
			break
		}
		i := from + k
		if i < dead {
			from = i + 2
			continue
		}
		charset, octets, n, stop := parseWord(v, i)
		if n == 0 {
			dead = max(dead, stop)
			from = i + 2
			continue
		}
		if pendCharset == "" || i > pos {
			flush()
			out.WriteString(gap)
			out.WriteString(rawText(v[pos:i], fallback))
		}
		gap = ""
		if pendCharset != "" && !strings.EqualFold(pendCharset, charset) {
			flush()
		}
		pendCharset = charset
		pending = append(pending, octets...)
		pos = i + n
		for j := pos; j < len(v) && (v[j] == ' ' || v[j] == '\t'); j++ {
			gap = v[pos : j+1]
		}
		pos += len(gap)
		from = pos
	}
	flush()
	out.WriteString(gap)
	out.WriteString(rawText(v[pos:], fallback))
	return out.String()
}

// parseWord parses the encoded word "=?charset?encoding?text?=" at v[i:]
// and returns its charset (an RFC 2231 language included, for toUTF8 to
// drop), its octets and its length, or a length of 0 when there is no
// word there. When the text has no end, stop is where the search for
// "?=" stopped (white space or the end of v): no word starting before
// stop can end either, since a charset and an encoding hold no white
// space, which keeps decodeWords linear.
func parseWord(v string, i int) (charset string, octets []byte, n, stop int) {
	rest := v[i+2:]
	q1 := strings.IndexByte(rest, '?')
	if q1 <= 0 || q1+2 >= len(rest) || rest[q1+2] != '?' {
		return "", nil, 0, 0
	}
	charset = rest[:q1]
	if strings.ContainsAny(charset, " \t()<>@,;:\"/[]=") {
		return "", nil, 0, 0
	}
	enc := rest[q1+1]
	start := i + 2 + q1 + 3
	end := -1
	for j := start; j < len(v); j++ {
		if v[j] == ' ' || v[j] == '\t' {
			return "", nil, 0, j
		}
		if v[j] == '?' && j+1 < len(v) && v[j+1] == '=' {
			end = j
			break
		}
	}
	if end < 0 {
		return "", nil, 0, len(v)
	}
	text := v[start:end]
	switch enc {
	case 'B', 'b':
		octets = decodeBase64([]byte(text))
	case 'Q', 'q':
		octets = make([]byte, 0, len(text))
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c == '_':
				octets = append(octets, ' ')
			case c == '=' && i+2 < len(text):
				h, ok1 := unhex(text[i+1])
				l, ok2 := unhex(text[i+2])
				if ok1 && ok2 {
					octets = append(octets, h<<4|l)
					i += 2
					continue
				}
				octets = append(octets, c)
			default:
				octets = append(octets, c)
			}
		}
	default:
		return "", nil, 0, 0
	}
	return charset, octets, end + 2 - i, 0
}

// decodeTransfer undoes a Content-Transfer-Encoding leniently: bad
// quoted-printable escapes are kept as they are, base64 skips characters
// outside its alphabet and stops at the padding.
func decodeTransfer(encoding string, b []byte) []byte {
	switch encoding {
	case "QUOTED-PRINTABLE":
		return decodeQP(b)
	case "BASE64":
		return decodeBase64(b)
	}
	return b
}

func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if i+2 < len(b) {
			if h, ok := unhex(b[i+1]); ok {
				if l, ok := unhex(b[i+2]); ok {
					out = append(out, h<<4|l)
					i += 2
					continue
				}
			}
		}
		// Soft line break: "=" [white space] line break.
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		if j < len(b) && b[j] == '\r' {
			j++
		}
		if j < len(b) && b[j] == '\n' {
			i = j
			continue
		}
		if j == len(b) {
			break
		}
		out = append(out, c)
	}
	return out
}

func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			goto done
		}
	}
done:
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

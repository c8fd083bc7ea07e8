package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
)

// Charset conversion. UTF-8, US-ASCII, ISO-8859-1, ISO-8859-15 and
// windows-1252 are converted here; any other charset goes through
// go-message's CharsetReader hook, which importing
// github.com/emersion/go-message/charset fills in (that package needs
// golang.org/x/text in go.mod). Without it, or when conversion fails,
// bytes that are valid UTF-8 are kept and others are read as
// windows-1252, so the result is always valid UTF-8.

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
	if cr := gomessage.CharsetReader; cr != nil {
		if r, err := cr(charset, bytes.NewReader(b)); err == nil {
			if out, err := io.ReadAll(io.LimitReader(r, int64(len(b))*4+16)); err == nil && utf8.Valid(out) {
				return string(out)
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return decodeSingleByte(b, &cp1252)
}

func normCharset(c string) string {
	c = strings.ToLower(strings.Trim(strings.TrimSpace(c), `"`))
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
	}
	return c
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

var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		return strings.NewReader(toUTF8(charset, b)), nil
	},
}

// decodeHeader decodes the RFC 2047 encoded words of an unfolded header
// value; the value is returned as valid UTF-8 (raw 8-bit bytes taken as
// UTF-8 or else windows-1252) when decoding fails.
func decodeHeader(v string) string {
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
	}
	if !utf8.ValidString(v) {
		v = toUTF8("", []byte(v))
	}
	return v
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

package message

import (
	"bytes"
	"strconv"
	"strings"
)

// scanHeader scans the header that starts at raw[start] and ends at the
// first empty line (which it includes) or at end, and returns where the
// body starts. Only an empty line (or end) ends the header, as in Dovecot
// and RFC 5322 readers: a line that is neither a header field nor a
// continuation line (no colon, e.g. a broken fold or an mbox "From "
// line) is not a field but stays in the header, and so does a message's
// first line when it is such a line: a message with no empty line is all
// header.
//
// fn is called for every field with its name, its value (everything after
// the colon up to and including the last line break, folding included) and
// the offsets of the whole field. A line that is not a field, with the
// continuation lines that follow it, is reported with a nil name, as is a
// continuation line with no field before it.
func scanHeader(raw []byte, start, end int, fn func(name, value []byte, fstart, fend int)) int {
	pos := start
	fstart, nameEnd, colon := -1, 0, 0
	flush := func(fend int) {
		if fstart < 0 {
			return
		}
		if colon < 0 {
			fn(nil, raw[fstart:fend], fstart, fend)
		} else {
			fn(raw[fstart:nameEnd], raw[colon+1:fend], fstart, fend)
		}
		fstart = -1
	}
	for pos < end {
		next := end
		if i := bytes.IndexByte(raw[pos:end], '\n'); i >= 0 {
			next = pos + i + 1
		}
		c := raw[pos]
		switch {
		case c == '\n' || (c == '\r' && (next == pos+2 && raw[pos+1] == '\n' || next == pos+1)):
			// Empty line: the end of the header.
			flush(pos)
			return next
		case c == ' ' || c == '\t':
			if fstart < 0 {
				fstart, colon = pos, -1
			}
			pos = next
			continue
		}
		flush(pos)
		if ne, col, ok := fieldName(raw[pos:next]); ok {
			fstart, nameEnd, colon = pos, pos+ne, pos+col
		} else {
			// Not a field: kept in the header, ignored.
			fstart, colon = pos, -1
		}
		pos = next
	}
	flush(end)
	return end
}

// fieldName finds the name of the header field starting line: it returns
// where the name ends and where the colon is. A name is a non-empty run of
// bytes other than controls, space and colon; white space may come
// between it and the colon (RFC 5322 obsolete syntax).
func fieldName(line []byte) (nameEnd, colon int, ok bool) {
	i := 0
	for i < len(line) {
		c := line[i]
		if c == ':' || c == ' ' || c == '\t' || c < 0x20 || c == 0x7f {
			break
		}
		i++
	}
	if i == 0 {
		return 0, 0, false
	}
	j := i
	for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
		j++
	}
	if j >= len(line) || line[j] != ':' {
		return 0, 0, false
	}
	return i, j, true
}

// unfold returns a header value without its line breaks (RFC 5322 §2.2.3
// unfolding) and without leading and trailing white space.
func unfold(v []byte) string {
	v = bytes.Trim(v, " \t\r\n")
	if bytes.IndexAny(v, "\r\n") < 0 {
		return string(v)
	}
	b := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			b = append(b, c)
		}
	}
	return string(b)
}

func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// upperASCII upper-cases the ASCII letters of s.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'a' <= c && c <= 'z' {
					b[j] = c - 'a' + 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// isToken reports whether s is a non-empty RFC 2045 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseContentType parses a Content-Type value leniently. It returns an
// empty type for a value that is not type "/" subtype.
func parseContentType(v string) (typ, sub string, params []Param) {
	mt, rest := splitValue(v)
	slash := strings.IndexByte(mt, '/')
	if slash < 0 {
		return "", "", nil
	}
	typ = strings.TrimSpace(mt[:slash])
	sub = strings.TrimSpace(mt[slash+1:])
	if !isToken(typ) || !isToken(sub) {
		return "", "", nil
	}
	return upperASCII(typ), upperASCII(sub), parseParams(rest)
}

// parseDisposition parses a Content-Disposition value leniently.
func parseDisposition(v string) (string, []Param) {
	d, rest := splitValue(v)
	d = strings.TrimSpace(d)
	if !isToken(d) {
		return "", nil
	}
	return upperASCII(d), parseParams(rest)
}

// parseEncoding returns the mechanism of a Content-Transfer-Encoding value
// upper-cased, without RFC 822 comments and white space ("8bit (c)" is
// 8BIT); "" when nothing is left.
func parseEncoding(v string) string {
	v = stripComments(v)
	if strings.IndexAny(v, " \t\r\n") >= 0 {
		b := make([]byte, 0, len(v))
		for i := 0; i < len(v); i++ {
			if c := v[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				b = append(b, c)
			}
		}
		v = string(b)
	}
	return upperASCII(v)
}

// parseLanguage splits a Content-Language value into its tags.
func parseLanguage(v string) []string {
	v = stripComments(v)
	var tags []string
	for t := range strings.SplitSeq(v, ",") {
		if t = strings.TrimSpace(t); t != "" && len(tags) < maxParams {
			tags = append(tags, t)
		}
	}
	return tags
}

// stripComments removes RFC 5322 comments (outside quoted strings).
func stripComments(v string) string {
	if strings.IndexByte(v, '(') < 0 {
		return v
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(v) {
				b.WriteByte(c)
				i++
				c = v[i]
			} else if c == '"' {
				quoted = false
			}
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
			continue
		case c == '(':
			depth++
			continue
		case c == '"':
			quoted = true
		}
		b.WriteByte(c)
	}
	return b.String()
}

// splitValue splits "value; params" at the first semicolon.
func splitValue(v string) (string, string) {
	v = stripComments(v)
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

const maxParams = 100

// rawParam is one name=value of a parameter list before RFC 2231
// continuations are joined.
type rawParam struct {
	name     string // upper case, without the RFC 2231 suffix
	section  int    // continuation number, -1 for none
	extended bool   // name ended with '*': the value is %-encoded
	value    string
}

// parseParams parses "; a=b; c="d"" leniently: values may be tokens or
// quoted strings; names are upper-cased; RFC 2231 continuations
// (name*0, name*1*) are joined and extended values (name*=charset'lang'%xx)
// decoded to UTF-8. A parameter given both plainly and extended keeps the
// extended value at the position of the first one.
func parseParams(s string) []Param {
	var raws []rawParam
	i := 0
	for i < len(s) && len(raws) < maxParams*4 {
		for i < len(s) && (s[i] == ';' || s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ';' {
			j++
		}
		name := strings.TrimSpace(s[i:j])
		if j >= len(s) || s[j] == ';' {
			i = j
			continue // no value: skip
		}
		j++ // '='
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		var value string
		if j < len(s) && s[j] == '"' {
			var b strings.Builder
			j++
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
				j++
			}
			j++ // closing quote
			value = b.String()
			for j < len(s) && s[j] != ';' {
				j++
			}
		} else {
			k := j
			for k < len(s) && s[k] != ';' {
				k++
			}
			value = strings.TrimSpace(s[j:k])
			j = k
		}
		i = j
		if name == "" {
			continue
		}
		rp := rawParam{name: upperASCII(name), section: -1, value: value}
		if star := strings.IndexByte(rp.name, '*'); star >= 0 {
			suffix := rp.name[star+1:]
			rp.name = rp.name[:star]
			if strings.HasSuffix(suffix, "*") {
				rp.extended = true
				suffix = suffix[:len(suffix)-1]
			} else if suffix == "" {
				rp.extended = true
			}
			if suffix != "" {
				n, err := strconv.Atoi(suffix)
				if err != nil || n < 0 || n > 999 {
					continue
				}
				rp.section = n
			}
		}
		raws = append(raws, rp)
	}
	if len(raws) == 0 {
		return nil
	}
	var out []Param
	done := map[string]bool{}
	for k, rp := range raws {
		if done[rp.name] || len(out) >= maxParams {
			continue
		}
		done[rp.name] = true
		out = append(out, Param{Name: rp.name, Value: joinParam(raws[k:], rp.name)})
	}
	return out
}

// joinParam computes the value of parameter name from its raw pieces:
// an extended value wins over a plain one; continuations are joined in
// order of their numbers, stopping at the first gap.
func joinParam(raws []rawParam, name string) string {
	plain, havePlain := "", false
	single, haveSingle := "", false
	sections := map[int]rawParam{}
	for _, rp := range raws {
		if rp.name != name {
			continue
		}
		switch {
		case rp.section >= 0:
			if _, dup := sections[rp.section]; !dup {
				sections[rp.section] = rp
			}
		case rp.extended:
			if !haveSingle {
				single, haveSingle = decodeExtended(rp.value), true
			}
		default:
			if !havePlain {
				plain, havePlain = rp.value, true
			}
		}
	}
	if haveSingle {
		return single
	}
	if first, ok := sections[0]; ok {
		var b strings.Builder
		charset := ""
		if first.extended {
			charset = extendedCharset(first.value)
		}
		// Percent-decoded bytes of every extended section, in the
		// charset of the first; plain sections as they are.
		var enc []byte
		flushEnc := func() {
			if len(enc) > 0 {
				b.WriteString(toUTF8(charset, enc))
				enc = enc[:0]
			}
		}
		for n := 0; n < len(sections) && n <= 999; n++ {
			rp, ok := sections[n]
			if !ok {
				break
			}
			if rp.extended {
				v := rp.value
				if n == 0 {
					v = stripCharsetLang(v)
				}
				enc = append(enc, percentDecode(v)...)
			} else {
				flushEnc()
				b.WriteString(rp.value)
			}
		}
		flushEnc()
		return b.String()
	}
	return plain
}

// decodeExtended decodes an RFC 2231 extended value charset'lang'%xx.
func decodeExtended(v string) string {
	return toUTF8(extendedCharset(v), percentDecode(stripCharsetLang(v)))
}

func extendedCharset(v string) string {
	if i := strings.IndexByte(v, '\''); i >= 0 {
		return v[:i]
	}
	return ""
}

func stripCharsetLang(v string) string {
	i := strings.IndexByte(v, '\'')
	if i < 0 {
		return v
	}
	j := strings.IndexByte(v[i+1:], '\'')
	if j < 0 {
		return v
	}
	return v[i+1+j+1:]
}

func percentDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if h, ok1 := unhex(s[i+1]); ok1 {
				if l, ok2 := unhex(s[i+2]); ok2 {
					b = append(b, h<<4|l)
					i += 2
					continue
				}
			}
		}
		b = append(b, s[i])
	}
	return b
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

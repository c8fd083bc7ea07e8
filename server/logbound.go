package server

import (
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the log takes from a client is bounded, so that one command
// cannot write kilobytes to the log, least of all before login.
const (
	// maxLogValue bounds one client string in a log line (bytes).
	maxLogValue = 64
	// maxLogID bounds all ID parameters of one command (bytes of names
	// and values): RFC 2971 allows 30 pairs of up to 1024 bytes.
	maxLogID = 512
)

// logString returns s cut to at most limit bytes at a character boundary
// ("..." marks the cut), with control characters, invalid UTF-8 and
// other non-printable runes replaced by '?'.
func logString(s string, limit int) string {
	cut := false
	if len(s) > limit {
		s, cut = s[:limit], true
		// Drop a character the cut left partial (at most 3 bytes).
		for i := 0; i < 3 && len(s) > 0; i++ {
			if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	var b strings.Builder
	b.Grow(len(s) + 3)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
		i += n
	}
	if cut {
		b.WriteString("...")
	}
	return b.String()
}

// idLogAttr returns the ID parameters (name, value, name, value... with
// nil for NIL) as one log group, each string bounded by maxLogValue and
// all by maxLogID; pairs past that bound are counted, not logged. No key
// repeats in the group: a name that comes again once made printable (RFC
// 2971 §3.3 says a field occurs once) is left out, as is a client's
// "omitted" when the count takes that key.
func idLogAttr(fields []any) slog.Attr {
	var attrs []any
	total, dropped := 0, 0
	seen := map[string]bool{}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, isString := fields[i+1].(string)
		k, v = logString(k, maxLogValue), logString(v, maxLogValue)
		if seen[k] {
			continue
		}
		seen[k] = true
		if total+len(k)+len(v) > maxLogID {
			dropped++
			continue
		}
		total += len(k) + len(v)
		if isString {
			attrs = append(attrs, slog.String(k, v))
		} else {
			attrs = append(attrs, slog.Any(k, nil))
		}
	}
	if dropped > 0 {
		for i, a := range attrs {
			if a.(slog.Attr).Key == "omitted" {
				attrs = append(attrs[:i], attrs[i+1:]...)
				dropped++
				break
			}
		}
		attrs = append(attrs, slog.Int("omitted", dropped))
	}
	return slog.Group("id", attrs...)
}

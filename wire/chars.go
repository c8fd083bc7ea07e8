package wire

// Character classes of RFC 3501 §9, as lookup tables.

type charTable [256]bool

func makeTable(f func(c byte) bool) *charTable {
	var t charTable
	for i := range t {
		t[i] = f(byte(i))
	}
	return &t
}

// isAtomChar: ATOM-CHAR = <any CHAR except atom-specials>, where
// atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
// quoted-specials / resp-specials.
func isAtomChar(c byte) bool {
	if c <= 0x20 || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

var (
	atomChars    = makeTable(isAtomChar)
	astringChars = makeTable(func(c byte) bool { return isAtomChar(c) || c == ']' })
	tagChars     = makeTable(func(c byte) bool { return (isAtomChar(c) || c == ']') && c != '+' })
	// fetchAttChars are the atom chars of a fetch attribute name, which
	// ends before "[" (RFC 3501 fetch-att).
	fetchAttChars = makeTable(func(c byte) bool { return isAtomChar(c) && c != '[' })
	listChars     = makeTable(func(c byte) bool { return isAtomChar(c) || c == ']' || c == '%' || c == '*' })
)

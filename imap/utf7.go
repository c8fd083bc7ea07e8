package imap

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// errUTF7 is returned for a malformed modified UTF-7 name.
var errUTF7 = errors.New("imap: malformed modified UTF-7 mailbox name")

// The modified BASE64 alphabet of RFC 3501 §5.1.3 (RFC 2152 with ',' for
// '/').
const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

var b64val = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(b64chars); i++ {
		t[b64chars[i]] = int8(i)
	}
	return t
}()

// DecodeMailboxName decodes a mailbox name from modified UTF-7 (RFC 3501
// §5.1.3) into UTF-8. Being liberal in what we accept, a name that is
// already valid UTF-8 with 8-bit characters and no '&' is returned as is.
// A malformed '&...-' sequence is an error.
//
// Errors are: a '&' not closed by '-', a character outside the modified
// BASE64 alphabet, non-zero or excess padding bits, an odd number of octets,
// unpaired surrogates, a shifted sequence that encodes printable US-ASCII,
// two adjacent shifted sequences (non-minimal encoding), a byte outside
// printable US-ASCII in a name that has a '&', and invalid UTF-8.
func DecodeMailboxName(s string) (string, error) {
	amp := strings.IndexByte(s, '&')
	if amp < 0 {
		if !utf8.ValidString(s) {
			return "", errUTF7
		}
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	lastShift := -1 // index just past the last decoded "&...-" sequence
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		j := i + 1
		for j < len(s) && s[j] != '-' {
			j++
		}
		if j == len(s) {
			return "", errUTF7 // unterminated
		}
		if j == i+1 {
			b.WriteByte('&') // "&-"
			i = j + 1
			continue
		}
		if lastShift == i {
			return "", errUTF7 // "&...-&...-" is non-minimal
		}
		if err := decodeB64(&b, s[i+1:j]); err != nil {
			return "", err
		}
		i = j + 1
		lastShift = i
	}
	return b.String(), nil
}

// decodeB64 decodes one shifted sequence (without '&' and '-').
func decodeB64(b *strings.Builder, enc string) error {
	var (
		bits  uint32 // pending bits
		nbits uint
		units []uint16
		buf   [16]uint16
	)
	units = buf[:0]
	for i := 0; i < len(enc); i++ {
		v := b64val[enc[i]]
		if v < 0 {
			return errUTF7
		}
		bits = bits<<6 | uint32(v)
		nbits += 6
		if nbits >= 16 {
			nbits -= 16
			units = append(units, uint16(bits>>nbits))
			bits &= 1<<nbits - 1
		}
	}
	// What is left must be fewer than 6 zero bits, else the encoding has
	// a superfluous character or is truncated.
	if nbits >= 6 || bits != 0 || len(units) == 0 {
		return errUTF7
	}
	for i := 0; i < len(units); i++ {
		u := units[i]
		var r rune
		switch {
		case utf16.IsSurrogate(rune(u)):
			if u >= 0xdc00 || i+1 == len(units) {
				return errUTF7
			}
			r = utf16.DecodeRune(rune(u), rune(units[i+1]))
			if r == utf8.RuneError {
				return errUTF7
			}
			i++
		default:
			r = rune(u)
			if r >= 0x20 && r <= 0x7e {
				return errUTF7 // printable US-ASCII must represent itself
			}
		}
		b.WriteRune(r)
	}
	return nil
}

// EncodeMailboxName encodes a UTF-8 mailbox name into modified UTF-7.
// Invalid UTF-8 bytes are encoded as U+FFFD.
func EncodeMailboxName(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '&' {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			b.WriteByte(c)
			if c == '&' {
				b.WriteByte('-')
			}
			i++
			continue
		}
		// Encode the run of characters that are not printable ASCII.
		j := i
		for j < len(s) && (s[j] < 0x20 || s[j] > 0x7e) {
			_, n := utf8.DecodeRuneInString(s[j:])
			j += n
		}
		encodeB64(&b, s[i:j])
		i = j
	}
	return b.String()
}

func encodeB64(b *strings.Builder, run string) {
	b.WriteByte('&')
	var (
		bits  uint32
		nbits uint
	)
	put := func(u uint16) {
		bits = bits<<16 | uint32(u)
		nbits += 16
		for nbits >= 6 {
			nbits -= 6
			b.WriteByte(b64chars[(bits>>nbits)&0x3f])
		}
		bits &= 1<<nbits - 1
	}
	for _, r := range run {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			put(uint16(r1))
			put(uint16(r2))
		} else {
			put(uint16(r))
		}
	}
	if nbits > 0 {
		b.WriteByte(b64chars[(bits<<(6-nbits))&0x3f])
	}
	b.WriteByte('-')
}

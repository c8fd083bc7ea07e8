package imap

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var utf7Vectors = []struct{ utf8, utf7 string }{
	{"", ""},
	{"INBOX", "INBOX"},
	{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	{"&", "&-"},
	{"Tom & Jerry", "Tom &- Jerry"},
	{"&&", "&-&-"},
	{"Entwürfe", "Entw&APw-rfe"},
	{"Gelöschte Elemente", "Gel&APY-schte Elemente"},
	{"Черновики", "&BCcENQRABD0EPgQyBDgEOgQ4-"},
	{"日本語", "&ZeVnLIqe-"},
	{"😀", "&2D3eAA-"}, // surrogate pair
	{"a😀b€c", "a&2D3eAA-b&IKw-c"},
	{"tab\there", "tab&AAk-here"}, // control characters are encoded
	{"é&ü", "&AOk-&-&APw-"},
	{"x/", "x/"},
	{"Sent Items", "Sent Items"},
}

func TestEncodeMailboxName(t *testing.T) {
	for _, v := range utf7Vectors {
		if got := EncodeMailboxName(v.utf8); got != v.utf7 {
			t.Errorf("Encode(%q) = %q, want %q", v.utf8, got, v.utf7)
		}
	}
	// Invalid UTF-8 is encoded as U+FFFD.
	if got := EncodeMailboxName("a\xffb"); got != "a&//0-b" && got != "a&,,0-b" {
		t.Errorf("Encode(invalid) = %q", got)
	}
}

func TestDecodeMailboxName(t *testing.T) {
	for _, v := range utf7Vectors {
		got, err := DecodeMailboxName(v.utf7)
		if err != nil || got != v.utf8 {
			t.Errorf("Decode(%q) = %q, %v; want %q", v.utf7, got, err, v.utf8)
		}
	}
	// Liberal: UTF-8 without '&' passes through.
	for _, s := range []string{"Entwürfe", "台北/日本語", "plain"} {
		if got, err := DecodeMailboxName(s); err != nil || got != s {
			t.Errorf("Decode(%q) = %q, %v", s, got, err)
		}
	}
}

func TestDecodeMailboxNameErrors(t *testing.T) {
	for _, s := range []string{
		"&",             // unterminated
		"abc&Jjo",       // unterminated
		"&Jjo!-",        // bad base64 char
		"&U/BTFw-",      // '/' is not modified base64
		"&AGE-",         // encodes "a": printable ASCII must not be encoded
		"&ACY-",         // encodes "&"
		"&AOk",          // unterminated
		"&AO-",          // too short: leftover 12 bits
		"&AOkA-",        // superfluous char (6 zero bits left)
		"&AOl-",         // non-zero padding bits
		"&2D0-",         // lone high surrogate
		"&3gA-",         // lone low surrogate
		"&2D3YPQ-",      // high surrogate followed by high surrogate
		"&AOk-&APw-",    // adjacent shifted sequences (non-minimal)
		"a\xffb",        // invalid UTF-8 without '&'
		"Entwürfe &-",   // 8-bit together with '&'
		"&AOk-\x01",     // control char in a modified UTF-7 name
		"&AOk=-",        // padding char
		"&AOkA6Q-x&AOk", // unterminated second sequence
	} {
		if got, err := DecodeMailboxName(s); err == nil {
			t.Errorf("Decode(%q) = %q, want error", s, got)
		}
	}
}

func TestMailboxNameRoundTrip(t *testing.T) {
	for _, s := range []string{
		"a", "&", "&&&&", "ä", "ää", "äää", "äääää", "a&b&c", "\x00", "\x7f",
		"😀😀😀", "x😀y", strings.Repeat("日本語-", 10), "\U0010FFFF", "a\tb",
	} {
		enc := EncodeMailboxName(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Errorf("Encode(%q) = %q: not printable ASCII", s, enc)
			}
		}
		dec, err := DecodeMailboxName(enc)
		if err != nil || dec != s {
			t.Errorf("round trip %q -> %q -> %q, %v", s, enc, dec, err)
		}
	}
}

func FuzzMailboxName(f *testing.F) {
	for _, v := range utf7Vectors {
		f.Add(v.utf8)
		f.Add(v.utf7)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			enc := EncodeMailboxName(s)
			dec, err := DecodeMailboxName(enc)
			if err != nil || dec != s {
				t.Fatalf("round trip %q -> %q -> %q, %v", s, enc, dec, err)
			}
		}
		if dec, err := DecodeMailboxName(s); err == nil {
			if !utf8.ValidString(dec) {
				t.Fatalf("Decode(%q) = invalid UTF-8 %q", s, dec)
			}
			// A valid modified UTF-7 name is canonical: re-encoding gives
			// it back.
			if strings.IndexByte(s, '&') >= 0 {
				if enc := EncodeMailboxName(dec); enc != s {
					t.Fatalf("Decode(%q) = %q, which encodes as %q", s, dec, enc)
				}
			}
		}
	})
}

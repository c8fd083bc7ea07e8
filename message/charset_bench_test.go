package message

import (
	"os"
	"path/filepath"
	"testing"
)

func benchFixture(b *testing.B, name string) ([]byte, *Part) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "charsets", name))
	if err != nil {
		b.Fatal(err)
	}
	return raw, mustParse(b, raw)
}

// BenchmarkHeaderValuesSubject: an encoded-word Subject in KOI8-R.
func BenchmarkHeaderValuesSubject(b *testing.B) {
	raw, p := benchFixture(b, "koi8-r.eml")
	for b.Loop() {
		HeaderValues(raw, p, "Subject")
	}
}

// BenchmarkAddressValuesFrom: what SEARCH FROM reads of one message.
func BenchmarkAddressValuesFrom(b *testing.B) {
	raw := []byte("From: =?utf-8?Q?J=C3=B6rg?= <joerg (x) @ example.de>, ann@example.com\r\nSubject: s\r\n\r\nx\r\n")
	p := mustParse(b, raw)
	for b.Loop() {
		AddressValues(raw, p, "From")
	}
}

// BenchmarkTextContent decodes bodies in a single-byte and a multi-byte
// charset.
func BenchmarkTextContent(b *testing.B) {
	for _, f := range []string{"koi8-r.eml", "shift_jis.eml", "gb18030.eml"} {
		b.Run(f, func(b *testing.B) {
			raw, p := benchFixture(b, f)
			for b.Loop() {
				TextContent(raw, p)
			}
		})
	}
}

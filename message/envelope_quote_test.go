package message

import "testing"

func TestQuoteLocal(t *testing.T) {
	for in, want := range map[string]string{
		``:         `""`,
		`john doe`: `"john doe"`,
		`a"b\c`:    `"a\"b\\c"`,
	} {
		if got := quoteLocal(in); got != want {
			t.Errorf("quoteLocal(%q) = %q, want %q", in, got, want)
		}
	}
}

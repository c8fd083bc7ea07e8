package auth

import (
	"strings"
	"testing"
)

func TestHashAndCheck(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2a$10$") {
		t.Errorf("hash %q is not bcrypt cost %d", h, Cost)
	}
	if !CheckPassword(h, "correct horse") {
		t.Error("right password refused")
	}
	for _, p := range []string{"", "correct hors", "Correct horse", strings.Repeat("x", 100)} {
		if CheckPassword(h, p) {
			t.Errorf("wrong password %q accepted", p)
		}
	}
	if CheckPassword("", "") {
		t.Error("empty hash accepted")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err != ErrPasswordTooLong {
		t.Errorf("73-byte password: %v", err)
	}
	h2, _ := HashPassword("correct horse")
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
}

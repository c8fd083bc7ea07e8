// Package auth hashes and checks account passwords.
package auth

import (
	"errors"

	"golang.org/x/crypto/bcrypt"
)

// Cost is the bcrypt cost used for new hashes. bcrypt was chosen over
// argon2id because its cost is CPU-only: 10,000 phones logging in at once
// must not need 64 MiB of memory each.
const Cost = 10

// MaxPasswordLength bounds passwords; bcrypt reads at most 72 bytes.
const MaxPasswordLength = 72

// ErrPasswordTooLong is returned for a password bcrypt cannot hash whole.
var ErrPasswordTooLong = errors.New("password longer than 72 bytes")

// HashPassword returns a bcrypt hash of password.
func HashPassword(password string) (string, error) {
	if len(password) > MaxPasswordLength {
		return "", ErrPasswordTooLong
	}
	if password == "" {
		return "", errors.New("empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), Cost)
	return string(h), err
}

// CheckPassword reports whether password matches hash.
func CheckPassword(hash, password string) bool {
	if len(password) > MaxPasswordLength || hash == "" {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// ParseError is an error in a configuration file, at a line.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// LoadFile reads the configuration file at path over c's settings.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.Parse(f, path)
}

// maxFileLine bounds a line of a configuration file.
const maxFileLine = 64 << 10

// Parse reads a configuration in the file format from r over c's settings;
// name is the file name used in errors. A key may appear only once.
// Settings are applied as they are read: on error, c holds those of the
// lines before.
func (c *Config) Parse(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxFileLine)
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		fail := func(format string, args ...any) error {
			return &ParseError{File: name, Line: n, Err: fmt.Errorf(format, args...)}
		}
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\uFEFF"))
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return fail("expected key = value, got %q", line)
		}
		key = strings.TrimSpace(key)
		if key == "" {
			return fail("missing key before '='")
		}
		if _, ok := lookup(key); !ok {
			return fail("unknown key %q", key)
		}
		if prev, dup := seen[key]; dup {
			return fail("%s is already set on line %d", key, prev)
		}
		seen[key] = n
		v, err := parseValue(value)
		if err != nil {
			return fail("%s: %v", key, err)
		}
		if err := c.Set(key, v); err != nil {
			return &ParseError{File: name, Line: n, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &ParseError{File: name, Line: n + 1, Err: errors.New("line too long")}
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// parseValue returns the value part of a line: a double-quoted Go string,
// or the text up to a '#' that follows a blank, trimmed.
func parseValue(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", errors.New("unterminated or malformed quoted value")
		}
		rest := strings.TrimSpace(s[len(q):])
		if rest != "" && rest[0] != '#' {
			return "", fmt.Errorf("unexpected %q after quoted value", rest)
		}
		return strconv.Unquote(q)
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			s = strings.TrimSpace(s[:i])
			break
		}
	}
	return s, nil
}

// ParseSize parses a byte count: a whole number with an optional unit, with
// or without a blank between. Units (any case): B; KiB, MiB, GiB, TiB
// (powers of 1024), also written K, M, G, T; kB, MB, GB, TB (powers of
// 1000). For example "64MiB", "64 KiB", "100000".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size such as 64MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	unit := strings.ToLower(strings.TrimLeftFunc(t[i:], unicode.IsSpace))
	var mult int64
	switch unit {
	case "", "b":
		mult = 1
	case "k", "kib":
		mult = 1 << 10
	case "m", "mib":
		mult = 1 << 20
	case "g", "gib":
		mult = 1 << 30
	case "t", "tib":
		mult = 1 << 40
	case "kb":
		mult = 1e3
	case "mb":
		mult = 1e6
	case "gb":
		mult = 1e9
	case "tb":
		mult = 1e12
	default:
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)", s, t[i:])
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// FormatSize writes n with the largest binary unit that divides it:
// 64<<20 is "64MiB", 1000 is "1000".
func FormatSize(n int64) string {
	units := []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}
	for _, u := range units {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

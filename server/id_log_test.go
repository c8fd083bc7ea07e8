package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The ID command's parameters are logged before login too, so what is
// logged is bounded: RFC 2971 allows 30 pairs of 1024-byte values (about
// 32 KB), of which the log keeps at most 64 bytes per string and 512 in
// all, with control characters replaced.
func TestIDLogBounded(t *testing.T) {
	env, buf := startLogged(t, time.Millisecond)
	c := env.Dial(t)
	lit := func(v string) string { return fmt.Sprintf("{%d+}\r\n%s", len(v), v) }
	var pairs []string
	for i := range 31 {
		pairs = append(pairs, fmt.Sprintf(`"k%02d" %s`, i, lit(strings.Repeat("x", 1024))))
	}
	c.Expect("i1", "ID ("+strings.Join(pairs, " ")+")", "i1 BAD Syntax error: ID parameters exceed RFC 2971 limits")
	// Within the limits: one with a line break and 29 long pairs.
	pairs = []string{`"name" "Clienté"`, `"multi" ` + lit("foo\r\nbar=")}
	for i := range 28 {
		pairs = append(pairs, fmt.Sprintf(`"k%02d" %s`, i, lit(strings.Repeat("v", 1024))))
	}
	got := c.Cmd("i2", "ID ("+strings.Join(pairs, " ")+")")
	if last := got[len(got)-1]; last != "i2 OK ID completed" {
		t.Fatalf("ID: %q", got)
	}
	lines := logLines(buf.String(), "client ID")
	if len(lines) != 1 {
		t.Fatalf("client ID log lines: %q", lines)
	}
	l := lines[0]
	if len(l) > 1024 {
		t.Errorf("client ID log line is %d bytes, want at most 1024: %.200q...", len(l), l)
	}
	for _, want := range []string{`id.name=Clienté`, `id.multi="foo??bar="`, "id.k00=" + strings.Repeat("v", 64) + "...", "id.omitted="} {
		if !strings.Contains(l, want) {
			t.Errorf("client ID log line lacks %q: %q", want, l)
		}
	}
	if strings.Contains(l, strings.Repeat("v", 65)) {
		t.Errorf("a value was logged past 64 bytes: %q", l)
	}
}

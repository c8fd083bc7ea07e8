package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

type result struct {
	code           int
	stdout, stderr string
}

// quickimap runs the program in-process with stdin as standard input.
func quickimap(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb strings.Builder
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// want checks a result's exit code and that its stdout and stderr contain
// the given strings.
func (r result) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
		t.Errorf("exit %d, want %d (stdout should contain %q, stderr %q)\nstdout:\n%s\nstderr:\n%s",
			r.code, code, stdout, stderr, r.stdout, r.stderr)
	}
}

func TestUsage(t *testing.T) {
	quickimap(t, "").want(t, exitUsage, "", "Usage:")
	quickimap(t, "", "help").want(t, exitOK, "quickimap serve", "")
	quickimap(t, "", "-h").want(t, exitOK, "quickimap user add", "")
	quickimap(t, "", "--help").want(t, exitOK, "quickimap check", "")
	quickimap(t, "", "frobnicate").want(t, exitUsage, "", `unknown command "frobnicate"`)
	quickimap(t, "", "help", "serve").want(t, exitOK, "--idle-keepalive DURATION", "")
	quickimap(t, "", "help", "serve").want(t, exitOK, "--cpuprofile FILE", "")
	quickimap(t, "", "help", "user").want(t, exitOK, "user passwd", "")
	quickimap(t, "", "help", "check").want(t, exitOK, `prints "ok"`, "")
	quickimap(t, "", "help", "nope").want(t, exitUsage, "", `unknown command "nope"`)
	quickimap(t, "", "serve", "-h").want(t, exitOK, "--tls-listen ADDR", "")
	quickimap(t, "", "serve", "--bogus").want(t, exitUsage, "", "flag provided but not defined: -bogus")
	quickimap(t, "", "user").want(t, exitUsage, "", "missing subcommand")
	quickimap(t, "", "user", "rename").want(t, exitUsage, "", `unknown subcommand "rename"`)
	quickimap(t, "", "user", "list", "-h").want(t, exitOK, "user list", "")
	quickimap(t, "", "check", "extra").want(t, exitUsage, "", `unexpected argument "extra"`)
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	quickimap(t, "", "serve", "--data", data, "--tls-listen", "127.0.0.1:0").
		want(t, exitUsage, "", "tls-listen needs cert and key")
	quickimap(t, "", "serve", "--data", data, "--cert", "c.pem").
		want(t, exitUsage, "", "cert and key must be given together")
	quickimap(t, "", "serve", "--data", data, "--max-literal", "lots").
		want(t, exitUsage, "", `invalid value "lots" for flag -max-literal`)
	quickimap(t, "", "serve", "--data", data, "extra").want(t, exitUsage, "", `unexpected argument "extra"`)

	conf := filepath.Join(dir, "q.conf")
	if err := os.WriteFile(conf, []byte("# test\nlisten = 127.0.0.1:0\nlisten-on = x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quickimap(t, "", "serve", "--config", conf).want(t, exitUsage, "", conf+`:3: unknown key "listen-on"`)
	quickimap(t, "", "serve", "--config", filepath.Join(dir, "missing.conf")).want(t, exitUsage, "", "missing.conf")

	// A flag overrides the file: here the file's bad tls-listen setting is
	// switched off by --tls-listen "", and --cert without --key fails.
	if err := os.WriteFile(conf, []byte("tls-listen = 127.0.0.1:0\nlog-format = json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quickimap(t, "", "serve", "--config", conf).want(t, exitUsage, "", "tls-listen needs cert and key")
	quickimap(t, "", "serve", "--config", conf, "--tls-listen", "", "--key", "k.pem").
		want(t, exitUsage, "", "cert and key must be given together")
	if _, err := os.Stat(data); err == nil {
		t.Error("a failed serve created the data directory")
	}
}

func TestUserCommands(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")

	// Commands other than add do not create a store.
	quickimap(t, "", "user", "list", "--data", data).want(t, exitFail, "", "no data directory")
	quickimap(t, "", "check", "--data", data).want(t, exitFail, "", "no data directory")

	quickimap(t, "", "user", "add", "--data", data).want(t, exitUsage, "", "missing account name")
	quickimap(t, "", "user", "add", "--data", data, "a", "b").want(t, exitUsage, "", "one account name expected")
	quickimap(t, "", "user", "add", "--data", data, "a b").want(t, exitUsage, "", "blank")
	quickimap(t, "", "user", "add", "--data", data, "alice").want(t, exitFail, "", "empty password")
	quickimap(t, "\r\n", "user", "add", "--data", data, "alice").want(t, exitFail, "", "empty password")
	quickimap(t, strings.Repeat("x", 73)+"\n", "user", "add", "--data", data, "alice").
		want(t, exitFail, "", "password longer than 72 bytes")

	quickimap(t, "s3cret pass\r\n", "user", "add", "--data", data, "Alice").want(t, exitOK, "Created user alice", "")
	quickimap(t, "other\n", "user", "add", "--data", data, "ALICE").want(t, exitFail, "", "user alice already exists")
	// Flags may follow the name.
	quickimap(t, "pw", "user", "add", "bob", "--data", data).want(t, exitOK, "Created user bob", "")

	r := quickimap(t, "", "user", "list", "--data", data)
	r.want(t, exitOK, "", "")
	if r.stdout != "alice\nbob\n" {
		t.Errorf("user list = %q", r.stdout)
	}
	quickimap(t, "", "user", "list", "--data", data, "x").want(t, exitUsage, "", "unexpected argument")

	// The password is the line without its CR LF, and the account has the
	// default mailboxes.
	st, err := sqlite.Open(ctx, data, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !auth.CheckPassword(u.PasswordHash, "s3cret pass") {
		t.Error("alice's password is not the line read from stdin")
	}
	mbs, err := st.Mailboxes(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, m := range mbs {
		got = append(got, m.Name)
	}
	for _, m := range store.DefaultMailboxes() {
		want = append(want, m.Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("alice's mailboxes %q, want %q", got, want)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	quickimap(t, "n3w\n", "user", "passwd", "--data", data, "ALICE").want(t, exitOK, "Changed the password of alice", "")
	quickimap(t, "n3w\n", "user", "passwd", "--data", data, "carol").want(t, exitFail, "", "no user carol")
	quickimap(t, "\n", "user", "passwd", "--data", data, "alice").want(t, exitFail, "", "empty password")
	quickimap(t, "", "user", "passwd", "--data", data).want(t, exitUsage, "", "missing account name")

	st, err = sqlite.Open(ctx, data, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err = st.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !auth.CheckPassword(u.PasswordHash, "n3w") || auth.CheckPassword(u.PasswordHash, "s3cret pass") {
		t.Error("user passwd did not change the password")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	quickimap(t, "", "user", "del", "--data", data, "Bob").want(t, exitOK, "Deleted user bob", "")
	quickimap(t, "", "user", "del", "--data", data, "bob").want(t, exitFail, "", "no user bob")
	quickimap(t, "", "user", "del", "--data", data).want(t, exitUsage, "", "missing account name")
	r = quickimap(t, "", "user", "list", "--data", data)
	if r.code != exitOK || r.stdout != "alice\n" {
		t.Errorf("user list after del: %+v", r)
	}

	r = quickimap(t, "", "check", "--data", data)
	if r.code != exitOK || r.stdout != "ok\n" {
		t.Errorf("check: %+v", r)
	}
}

// TestDataFromConfig checks that user and check take --config.
func TestDataFromConfig(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d")
	conf := filepath.Join(dir, "q.conf")
	if err := os.WriteFile(conf, []byte("data = "+data+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quickimap(t, "pw\n", "user", "add", "--config", conf, "zoe").want(t, exitOK, "Created user zoe", "")
	quickimap(t, "", "user", "list", "--data", data).want(t, exitOK, "zoe\n", "")
	quickimap(t, "", "check", "--config", conf).want(t, exitOK, "ok", "")
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		p, err := randomPassword(16)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 16 || strings.Trim(p, passwordAlphabet) != "" || seen[p] {
			t.Fatalf("bad or repeated password %q", p)
		}
		seen[p] = true
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"user", "alice@example.org", "jörg", "a.b-c_d+e"} {
		if err := checkName(n); err != nil {
			t.Errorf("checkName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"a b", "a\tb", `a"b`, `a\b`, "a\x00", strings.Repeat("x", 256), "\xff"} {
		if checkName(n) == nil {
			t.Errorf("checkName(%q) accepted", n)
		}
	}
}

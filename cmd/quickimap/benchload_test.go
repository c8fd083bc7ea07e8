package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/loadgen"
	"github.com/quickimap/quickimap/store"
)

func TestBenchLoad(t *testing.T) {
	env := imaptest.Start(t, nil)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"load1", "load2"} {
		if _, err := env.Store.CreateUser(context.Background(), u, string(h), store.DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
	}
	common := []string{"bench", "load", "--addr", env.Addr, "--user-template", "load%d", "--users", "2",
		"--password-file", passwordFile(t, "pw"), "--clients", "2", "--duration", "700ms", "--fill", "10",
		"--idle", "5ms-10ms"}

	r := quickimap(t, "", append(common, "--json", "--server-pid", strconv.Itoa(os.Getpid()))...)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if rep.Errors != 0 || rep.Commands == 0 || rep.Setup == nil || rep.Setup.Appended != 20 ||
		rep.ServerCPUSec == nil || rep.CommandsPerCPUSec <= 0 || rep.Warmup.Logins != 2 {
		t.Errorf("report %+v", rep)
	}
	for _, k := range []string{"select", "fetch_flags", "fetch_envelope", "fetch_bodystructure", "fetch_body",
		"store", "append", "search", "expunge", "idle"} {
		if rep.Kind(k).Count == 0 {
			t.Errorf("no %s ran", k)
		}
	}
	if !strings.Contains(r.stdout, `"commands_per_cpu_s"`) || !strings.Contains(r.stdout, `"p99_ms"`) {
		t.Errorf("JSON lacks fields:\n%s", r.stdout)
	}

	// Text, no LOGOUT, a mix of one kind; setup appends nothing now.
	r = quickimap(t, "", append(common, "--no-logout", "--mix", "fetch=4", "--auth", "plain", "--pick", "random")...)
	r.want(t, exitOK, "errors: none", "setup: checking 2 INBOXes")
	for _, s := range []string{"appended 0,", "no LOGOUT", "fetch_body ", "fetch_flags ", "commands ", "(plain, random)"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "server CPU") || strings.Contains(r.stdout, "\nappend ") {
		t.Errorf("unexpected lines:\n%s", r.stdout)
	}

	// A refused login fails the setup: exit 1 with the server's text.
	r = quickimap(t, "", "bench", "load", "--addr", env.Addr, "--user-template", "load%d", "--users", "3",
		"--password-file", passwordFile(t, "pw"), "--duration", "1s")
	r.want(t, exitFail, "", "setup of load3: login: NO [AUTHENTICATIONFAILED]")
}

func TestBenchLoadUsage(t *testing.T) {
	quickimap(t, "", "bench", "load", "-h").want(t, exitOK, "--logout-every N", "")
	quickimap(t, "", "help", "bench").want(t, exitOK, "fetch_bodystructure", "")
	quickimap(t, "", "bench", "help").want(t, exitOK, "quickimap bench load", "")
	quickimap(t, "", "help").want(t, exitOK, "quickimap bench load", "")
	quickimap(t, "", "bench", "load").want(t, exitUsage, "", "--addr is required")
	quickimap(t, "", "bench", "load", "--addr", "127.0.0.1:1,localhost").want(t, exitUsage, "", `address "localhost"`)
	base := []string{"bench", "load", "--addr", "127.0.0.1:1"}
	for _, tc := range []struct{ args, err string }{
		{"--mix frobnicate=1", `unknown kind "frobnicate"`},
		{"--mix logout=3", "--logout-every"},
		{"--no-logout --logout-every 5", "exclude each other"},
		{"--starttls maybe", "--starttls"},
		{"--tls --starttls required", "exclude each other"},
		{"--auth cram", "--auth"},
		{"--pick last", "--pick"},
		{"--idle 5s-1s", "--idle"},
		{"--idle soon", "--idle"},
		{"--server-pid 12,x", "--server-pid"},
		{"--user-template user", "exactly one %d"},
		{"--users 0", "at least one account"},
		{"--clients 0", "at least one client"},
		{"--duration 0s", "--duration"},
		{"extra", `unexpected argument "extra"`},
	} {
		quickimap(t, "", append(base, strings.Fields(tc.args)...)...).want(t, exitUsage, "", tc.err)
	}
	// Nothing listens on port 1.
	quickimap(t, "pw\n", base...).want(t, exitFail, "", "setup of user1: connecting")
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string][2]string{"100ms-500ms": {"100ms", "500ms"}, "1s": {"1s", "1s"}, "0s-0s": {"0s", "0s"}} {
		lo, hi, err := parseRange(in)
		if err != nil || lo.String() != want[0] || hi.String() != want[1] {
			t.Errorf("parseRange(%q) = %v, %v, %v", in, lo, hi, err)
		}
	}
	for _, in := range []string{"", "-1s", "2s-1s", "x-1s", "1s-y"} {
		if _, _, err := parseRange(in); err == nil {
			t.Errorf("parseRange(%q) accepted", in)
		}
	}
}

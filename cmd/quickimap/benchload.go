package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quickimap/quickimap/internal/loadgen"
)

const benchLoadUsage = `Usage:
  quickimap bench load --addr HOST:PORT[,HOST:PORT...] --users N [--clients N] [--duration 30s] [flags]

An IMAP load generator for any server. Setup fills the INBOX of each
account (--user-template with the numbers 1 to --users) with --fill
realistic messages of 1 to 50 KB: plain text, multipart/alternative and
multipart/mixed with an attachment, marked with an X-Quickimap-Load
header. It appends only to an INBOX with fewer messages, so a rerun
appends nothing, and refuses an INBOX holding messages it did not append
unless --force is given. Then --clients clients run for --duration: each
logs in to an account (in turn, or --pick random), SELECTs INBOX and
deals the commands of --mix in a shuffled order, a cycle at a time. Every
response is checked; a tagged NO or BAD, an unexpected BYE, a lost
connection or a response without what was asked for is an error, counted
by kind and shown with the server's text. Exit status 1 on any error.

The kinds of the mix (weights are commands per cycle):
  select               SELECT INBOX again
  fetch_flags          FETCH (UID FLAGS) of the newest 200 messages
  fetch_envelope       FETCH (UID ENVELOPE) of the newest 20
  fetch_bodystructure  FETCH (UID BODYSTRUCTURE) of a random message
  fetch_body           FETCH (UID BODY.PEEK[]) of a random message
  store                STORE +FLAGS or -FLAGS, \Seen or \Flagged
  append               APPEND of a new message (needs UIDPLUS)
  search               UID SEARCH UNSEEN, FLAGGED, FROM or SUBJECT
  expunge              UID STORE +FLAGS.SILENT (\Deleted) (counted as a
                       store) and UID EXPUNGE of the messages the client
                       appended, so that the INBOX keeps its size
  idle                 IDLE for --idle, then DONE (latency: the two round
                       trips, not the wait)
  fetch=N              N shared among the four fetch kinds
Default: ` + "select=1,fetch_flags=3,fetch_envelope=3,fetch_bodystructure=2,\n" +
	`fetch_body=3,store=3,append=1,search=2,expunge=1,idle=1 (20 commands).
The fetches and stores address only the messages setup found or
appended, which no client expunges, so concurrent clients on one account
do not trip over each other.

The report gives, per kind, the count, errors, commands per second and
the latency percentiles (p50, p99, max; of the commands answered OK,
from writing the command to reading its tagged response), then logins
per second and the totals. With --server-pid it measures the CPU time
(user + system, from /proc/PID/stat) that the server's processes and all
their descendants, live or exited, spent during the run, and so the
commands per CPU-second. For Dovecot give its master process's id: its
login, auth and imap processes are its descendants.

With several addresses (the nodes of one server sharing a store), client
i connects first to the i-th and then to each next one in turn, as a load
balancer without stickiness would send them.

Flags:
  --addr LIST              server address, or comma-separated addresses
                           of nodes (required)
  --tls                    implicit TLS (port 993 style)
  --starttls MODE          no (default), optional (when offered) or required
  --ca-file FILE           PEM certificates to trust instead of the system's
  --insecure-skip-verify   do not verify the server's certificate
  --user-template T        account names, %d the number (default user%d)
  --users N                number of accounts, user1 to userN (default 1)
  --password-file FILE     file whose first line is every account's password
                           (else $QUICKIMAP_PASSWORD, else standard input)
  --auth METHOD            login (default) or plain (AUTHENTICATE PLAIN)
  --pick ORDER             roundrobin (default) or random: the account of
                           each login
  --clients N              concurrent connections (default 4)
  --duration D             length of the run (default 30s)
  --logout-every N         LOGOUT and log in again (the next account)
                           after N commands (default: one cycle of the mix)
  --no-logout              stay logged in for the whole run
  --mix LIST               weights, e.g. select=1,fetch=12,store=3,idle=1
  --fill N                 messages per INBOX (default 100)
  --force                  use INBOXes holding mail the generator did not
                           append (it changes their \Seen and \Flagged flags)
  --idle MIN-MAX           how long an IDLE lasts (default 100ms-500ms)
  --server-pid LIST        comma-separated process ids of the server
  --seed N                 seed of the messages and choices (default 1)
  --json                   print the report as JSON
`

func runBenchLoad(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench load", stderr)
	var cfg loadgen.Config
	var srv serverFlags
	fs.StringVar(&srv.addr, "addr", "", "server address")
	fs.BoolVar(&srv.tls, "tls", false, "implicit TLS")
	fs.BoolVar(&srv.insecure, "insecure-skip-verify", false, "do not verify the certificate")
	fs.StringVar(&srv.caFile, "ca-file", "", "PEM certificates to trust")
	fs.StringVar(&srv.passwordFile, "password-file", "", "password file")
	starttls := fs.String("starttls", "no", "no, optional or required")
	fs.StringVar(&cfg.UserTemplate, "user-template", "user%d", "account names")
	fs.IntVar(&cfg.Users, "users", 1, "accounts")
	auth := fs.String("auth", "login", "login or plain")
	pick := fs.String("pick", "roundrobin", "roundrobin or random")
	fs.IntVar(&cfg.Clients, "clients", 4, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "run length")
	fs.IntVar(&cfg.LogoutEvery, "logout-every", 0, "commands per login")
	fs.BoolVar(&cfg.NoLogout, "no-logout", false, "never log out")
	mix := fs.String("mix", "", "weights of the kinds")
	fs.IntVar(&cfg.Fill, "fill", 100, "messages per INBOX")
	fs.BoolVar(&cfg.Force, "force", false, "use INBOXes with foreign mail")
	idle := fs.String("idle", "100ms-500ms", "IDLE duration")
	pids := fs.String("server-pid", "", "server process ids")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	asJSON := fs.Bool("json", false, "JSON output")
	usage := func(w io.Writer) { io.WriteString(w, benchLoadUsage) }
	pos, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "quickimap bench load: "+format+"\n", a...)
		return exitUsage
	}
	if len(pos) > 0 {
		return bad("unexpected argument %q", pos[0])
	}
	if srv.addr == "" {
		return bad("--addr is required")
	}
	cfg.Addr = srv.addr
	cfg.TLS = srv.tls
	switch *starttls {
	case "no", "":
	case "optional":
		cfg.StartTLS = loadgen.StartTLSOptional
	case "required":
		cfg.StartTLS = loadgen.StartTLSRequired
	default:
		return bad("--starttls %q: no, optional or required", *starttls)
	}
	if cfg.TLS || cfg.StartTLS != loadgen.StartTLSNever {
		// The server name is each address's host (loadgen sets it).
		cfg.TLSConfig = &tls.Config{InsecureSkipVerify: srv.insecure}
		if srv.caFile != "" {
			pool, err := loadCAFile(srv.caFile)
			if err != nil {
				return bad("%v", err)
			}
			cfg.TLSConfig.RootCAs = pool
		}
	} else if srv.caFile != "" {
		return bad("--ca-file needs --tls or --starttls")
	}
	switch *auth {
	case "login":
	case "plain":
		cfg.Auth = loadgen.AuthPlain
	default:
		return bad("--auth %q: login or plain", *auth)
	}
	switch *pick {
	case "roundrobin":
	case "random":
		cfg.Pick = loadgen.PickRandom
	default:
		return bad("--pick %q: roundrobin or random", *pick)
	}
	if *mix != "" {
		if cfg.Mix, err = loadgen.ParseMix(*mix); err != nil {
			return bad("--mix: %v", err)
		}
	}
	if cfg.NoLogout && cfg.LogoutEvery != 0 {
		return bad("--logout-every and --no-logout exclude each other")
	}
	if cfg.Duration <= 0 {
		return bad("--duration must be positive")
	}
	if cfg.IdleMin, cfg.IdleMax, err = parseRange(*idle); err != nil {
		return bad("--idle: %v", err)
	}
	if *pids != "" {
		if cfg.ServerPIDs, err = loadgen.ParsePIDs(*pids); err != nil {
			return bad("--server-pid: %v", err)
		}
	}
	// The password is checked with the rest of the configuration below;
	// a placeholder lets Check find the other mistakes first.
	cfg.Password = "x"
	if err := cfg.Check(); err != nil {
		return bad("%v", err)
	}
	srv.user = cfg.UserTemplate
	if cfg.Password, err = srv.password(stdin, stderr); err != nil {
		fmt.Fprintf(stderr, "quickimap bench load: %v\n", err)
		return exitFail
	}
	if err := cfg.Check(); err != nil {
		return bad("%v", err)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !*asJSON {
		fmt.Fprintf(stderr, "setup: checking %d INBOXes, filling to %d messages...\n", cfg.Users, cfg.Fill)
	}
	setup, err := loadgen.Setup(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "quickimap bench load: %v\n", err)
		return exitFail
	}
	if !*asJSON {
		fmt.Fprintf(stderr, "running %d clients for %v...\n", cfg.Clients, cfg.Duration)
	}
	rep, err := loadgen.Run(ctx, cfg, setup)
	if err != nil {
		fmt.Fprintf(stderr, "quickimap bench load: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "quickimap bench load: %v\n", err)
			return exitFail
		}
	} else {
		rep.Print(stdout)
	}
	if rep.Errors > 0 || ctx.Err() != nil {
		return exitFail
	}
	return exitOK
}

// parseRange reads "MIN-MAX" durations, or one duration for both.
func parseRange(s string) (lo, hi time.Duration, err error) {
	a, b, ok := cutRange(s)
	if lo, err = time.ParseDuration(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if ok {
		if hi, err = time.ParseDuration(b); err != nil {
			return 0, 0, err
		}
	}
	if lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX with 0 <= MIN <= MAX", s)
	}
	return lo, hi, nil
}

// cutRange splits "A-B" at the dash between two durations (a duration
// may itself start with a minus sign).
func cutRange(s string) (string, string, bool) {
	for i := 1; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

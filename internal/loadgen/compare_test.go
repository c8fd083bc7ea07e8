package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/internal/dovecottest"
)

// Environment variables of the comparison with Dovecot.
const (
	// envScheme is Dovecot's password scheme: BLF-CRYPT (the default,
	// bcrypt at quickimap's cost, as quickimap stores passwords) or
	// PLAIN.
	envScheme = "LOADCOMPARE_SCHEME"
	// envAuthCache is Dovecot's auth_cache_size (default: Dovecot's, 0).
	envAuthCache = "LOADCOMPARE_AUTH_CACHE"
	// envServeFlags are more flags for "quickimap serve", separated by
	// spaces, e.g. "--auth-cache-ttl 0" for a bcrypt check at every
	// login.
	envServeFlags = "LOADCOMPARE_QUICKIMAP_FLAGS"
	// envFsync is Dovecot's mail_fsync (default: optimized, Dovecot's
	// default). "always" makes Dovecot sync every change, flag changes
	// included, as quickimap does before each OK.
	envFsync = "LOADCOMPARE_DOVECOT_FSYNC"
)

// compareParams is the size of a comparison.
type compareParams struct {
	users, clients, fill int
	duration             time.Duration
}

// serverUnderLoad is one server of the comparison.
type serverUnderLoad struct {
	name  string
	addr  string
	pid   int
	desc  string // flags beyond the defaults
	setup *SetupReport
}

// startQuickimapProcess builds the quickimap command, creates the
// accounts with "quickimap user add" and runs "quickimap serve" on a free
// loopback port, as a process of its own so that its CPU time is
// measured like Dovecot's.
func startQuickimapProcess(tb testing.TB, p compareParams, password string) serverUnderLoad {
	tb.Helper()
	dir := tb.TempDir()
	bin := filepath.Join(dir, "quickimap")
	build := exec.Command("go", "build", "-o", bin, "github.com/quickimap/quickimap/cmd/quickimap")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	for i := 1; i <= p.users; i++ {
		add := exec.Command(bin, "user", "add", "--data", data, fmt.Sprintf("user%d", i))
		add.Stdin = strings.NewReader(password + "\n")
		if out, err := add.CombinedOutput(); err != nil {
			tb.Fatalf("quickimap user add: %v\n%s", err, out)
		}
	}
	extra := strings.Fields(os.Getenv(envServeFlags))
	addr, pid := runServe(tb, bin, filepath.Join(dir, "serve.log"),
		append([]string{"serve", "--data", data, "--no-initial-user", "--log-level", "warn"}, extra...))
	return serverUnderLoad{name: "quickimap", addr: addr, pid: pid, desc: strings.Join(extra, " ")}
}

// startDovecot runs Debian's Dovecot with the same accounts.
func startDovecot(tb testing.TB, p compareParams, password string) (serverUnderLoad, string) {
	tb.Helper()
	scheme := os.Getenv(envScheme)
	if scheme == "" {
		scheme = dovecottest.SchemeBlfCrypt
	}
	fsync := os.Getenv(envFsync)
	if fsync == "" {
		fsync = "optimized"
	}
	opts := dovecottest.Options{
		// Dovecot's default, as quickimap's store syncs its writes too
		// (dovecottest turns it off for speed).
		ExtraConfig:    "mail_fsync = " + fsync,
		PasswordScheme: strings.ToUpper(scheme),
		BcryptCost:     auth.Cost,
		AuthCacheSize:  os.Getenv(envAuthCache),
		Users:          dovecottest.NumberedUsers("user%d", p.users, password),
	}
	e := dovecottest.StartWith(tb, opts)
	desc := fmt.Sprintf("Dovecot %s (mail_fsync = %s), passwords %s", e.Version, fsync, opts.PasswordScheme)
	if opts.PasswordScheme == dovecottest.SchemeBlfCrypt {
		desc += fmt.Sprintf(" (cost %d)", opts.BcryptCost)
	}
	if opts.AuthCacheSize != "" {
		desc += ", auth_cache_size " + opts.AuthCacheSize
	} else {
		desc += ", no auth cache"
	}
	return serverUnderLoad{name: "dovecot", addr: e.Addr, pid: e.PID()}, desc
}

// compareRun is one mode of the comparison: the same load on both servers.
type compareRun struct {
	mode    string
	reports [2]*Report // quickimap, Dovecot
}

// compare runs the same loads against Dovecot and quickimap, both
// modes (a LOGOUT every cycle, and none), and returns the results side by
// side as text. It fails on any error and when a kind of the mix did not
// run.
func compare(tb testing.TB, p compareParams) ([]compareRun, string) {
	tb.Helper()
	const password = "load-test-pw"
	// Dovecot first: without it the test skips (or fails, as
	// DOVECOTTEST_REQUIRE says) before building anything.
	dc, desc := startDovecot(tb, p, password)
	qi := startQuickimapProcess(tb, p, password)
	servers := []*serverUnderLoad{&qi, &dc}

	base := Config{
		UserTemplate: "user%d",
		Users:        p.users,
		Password:     password,
		Clients:      p.clients,
		Duration:     p.duration,
		Fill:         p.fill,
		Seed:         1,
	}
	ctx := context.Background()
	for _, s := range servers {
		cfg := base
		cfg.Addr = s.addr
		setup, err := Setup(ctx, cfg)
		if err != nil {
			tb.Fatalf("%s: %v", s.name, err)
		}
		s.setup = setup
	}

	var runs []compareRun
	for _, noLogout := range []bool{false, true} {
		run := compareRun{mode: fmt.Sprintf("LOGOUT every %d commands", DefaultMix().Total())}
		if noLogout {
			run.mode = "no LOGOUT"
		}
		// Interleaved, so that both servers see the same noise from
		// the rest of the machine.
		for i, s := range servers {
			cfg := base
			cfg.Addr = s.addr
			cfg.NoLogout = noLogout
			cfg.ServerPIDs = []int{s.pid}
			rep, err := Run(ctx, cfg, s.setup)
			if err != nil {
				tb.Fatalf("%s, %s: %v", s.name, run.mode, err)
			}
			run.reports[i] = rep
			if rep.Errors != 0 {
				var out bytes.Buffer
				rep.Print(&out)
				tb.Errorf("%s, %s: %d errors\n%s", s.name, run.mode, rep.Errors, out.String())
			}
			for k, w := range DefaultMix() {
				if w > 0 && rep.Kind(Kind(k).String()).Count == 0 {
					tb.Errorf("%s, %s: no %s ran", s.name, run.mode, Kind(k))
				}
			}
			if rep.Warmup.Logins != int64(cfg.Clients) || !noLogout && rep.Logins == 0 ||
				rep.ServerCPUSec == nil || *rep.ServerCPUSec <= 0 {
				tb.Errorf("%s, %s: %d logins before the run, %d during it, server CPU %v %s",
					s.name, run.mode, rep.Warmup.Logins, rep.Logins, rep.ServerCPUSec, rep.CPUError)
			}
		}
		runs = append(runs, run)
	}

	var out bytes.Buffer
	flags := "default flags"
	if qi.desc != "" {
		flags = qi.desc
	}
	fmt.Fprintf(&out, "quickimap (this tree, bcrypt cost %d, %s) vs %s\n", auth.Cost, flags, desc)
	fmt.Fprintf(&out, "%d accounts of %d–%d messages, %d clients, %v per run, default mix (%s)\n",
		p.users, qi.setup.MinMessages, qi.setup.MaxMessages, p.clients, p.duration, DefaultMix())
	for _, r := range runs {
		fmt.Fprintf(&out, "\n%s\n", r.mode)
		printSideBySide(&out, r.reports[0], r.reports[1])
	}
	return runs, out.String()
}

// printSideBySide prints two reports' figures in columns, with the
// ratio quickimap / Dovecot of the totals.
func printSideBySide(w *bytes.Buffer, q, d *Report) {
	rows := [][]string{{"", "quickimap/s", "p50 ms", "p99 ms", "dovecot/s", "p50 ms", "p99 ms", "ratio"}}
	for _, k := range q.Kinds {
		dk := d.Kind(k.Kind)
		if k.Count == 0 && dk.Count == 0 {
			continue
		}
		rows = append(rows, []string{k.Kind, FormatFloat(k.PerSec), FormatFloat(k.P50Ms), FormatFloat(k.P99Ms),
			FormatFloat(dk.PerSec), FormatFloat(dk.P50Ms), FormatFloat(dk.P99Ms), ratio(k.PerSec, dk.PerSec)})
	}
	cpu := func(r *Report) float64 {
		if r.ServerCPUSec == nil {
			return 0
		}
		return *r.ServerCPUSec
	}
	total := func(name string, a, b float64) {
		rows = append(rows, []string{name, FormatFloat(a), "", "", FormatFloat(b), "", "", ratio(a, b)})
	}
	total("commands/s", q.CommandsPerSec, d.CommandsPerSec)
	total("logins/s", q.LoginsPerSec, d.LoginsPerSec)
	total("server CPU-s", cpu(q), cpu(d))
	total("commands/CPU-s", q.CommandsPerCPUSec, d.CommandsPerCPUSec)
	total("generator CPU-s", q.ClientCPUSec, d.ClientCPUSec)
	PrintTable(w, rows)
	fmt.Fprintf(w, "first logins, before the run: quickimap p50 %s ms, p99 %s ms; dovecot p50 %s ms, p99 %s ms\n",
		FormatFloat(q.Warmup.LoginP50Ms), FormatFloat(q.Warmup.LoginP99Ms), FormatFloat(d.Warmup.LoginP50Ms), FormatFloat(d.Warmup.LoginP99Ms))
	fmt.Fprintf(w, "errors: quickimap %d, dovecot %d; server processes at the end: %d, %d\n",
		q.Errors, d.Errors, q.ServerProcesses, d.ServerProcesses)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

// TestCompareDovecot runs a small load against quickimap and Dovecot:
// both must answer every command without error. The full-size
// comparison is BenchmarkCompareDovecot.
func TestCompareDovecot(t *testing.T) {
	p := compareParams{users: 10, clients: 4, fill: 50, duration: 3 * time.Second}
	if testing.Short() {
		p.duration = time.Second
	}
	_, text := compare(t, p)
	t.Logf("\n%s", text)
}

// BenchmarkCompareDovecot is the comparison at its documented size:
// 100 accounts of 100 messages, 10 clients, 30 s per run. Run it once:
//
//	go test ./internal/loadgen -run '^$' -bench CompareDovecot -benchtime 1x -timeout 30m
func BenchmarkCompareDovecot(b *testing.B) {
	p := compareParams{users: 100, clients: 10, fill: 100, duration: 30 * time.Second}
	for range b.N {
		runs, text := compare(b, p)
		// On standard output: a benchmark's log is cut to a few lines.
		fmt.Print(text)
		for _, r := range runs {
			tag := "logout"
			if r.reports[0].NoLogout {
				tag = "nologout"
			}
			b.ReportMetric(r.reports[0].CommandsPerSec, "qi-"+tag+"-cmd/s")
			b.ReportMetric(r.reports[1].CommandsPerSec, "dc-"+tag+"-cmd/s")
			b.ReportMetric(r.reports[0].CommandsPerCPUSec, "qi-"+tag+"-cmd/cpu-s")
			b.ReportMetric(r.reports[1].CommandsPerCPUSec, "dc-"+tag+"-cmd/cpu-s")
		}
	}
}

// runServe runs "quickimap serve" with args and --listen on a free
// loopback port, its output in logPath, stops it (SIGTERM) when the test
// ends, and returns once it greets, with its address and pid.
func runServe(tb testing.TB, bin, logPath string, args []string) (addr string, pid int) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	serve := exec.Command(bin, append(args, "--listen", addr)...)
	serve.Stdout, serve.Stderr = logf, logf
	serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := serve.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	tb.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = serve.Process.Kill()
			<-exited
		}
	})
	// Wait for the greeting.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			buf := make([]byte, 5)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(buf)
			c.Close()
			if err == nil && string(buf) == "* OK " {
				return addr, serve.Process.Pid
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			tb.Fatalf("quickimap serve exited: %v\n%s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			tb.Fatalf("quickimap serve not answering on %s: %v\n%s", addr, err, log)
		}
	}
}

//go:build linux

package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/cluster"
	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// storeSetup is one of the server set-ups of the scale-out comparison.
type storeSetup struct {
	name  string
	addr  string // one address, or the nodes' separated by commas
	pids  []int  // quickimap processes, and PostgreSQL's server
	setup *SetupReport
}

// startSQLiteNode runs "quickimap serve" on an embedded store whose
// accounts have passwords hashed by bcrypt at its lowest cost, as
// cluster.Start makes them: the comparison is of stores, not of bcrypt.
func startSQLiteNode(tb testing.TB, bin string, users []string, password string) storeSetup {
	tb.Helper()
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, data, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	for _, u := range users {
		if _, err := st.CreateUser(ctx, u, string(h), store.DefaultMailboxes()); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	addr, pid := runServe(tb, bin, filepath.Join(dir, "serve.log"), []string{"serve", "--data", data, "--no-initial-user"})
	return storeSetup{name: "SQLite, 1 node", addr: addr, pids: []int{pid}}
}

// startPostgresNodes runs n nodes on a fresh PostgreSQL database.
func startPostgresNodes(tb testing.TB, bin string, n int, users []string, password string) storeSetup {
	tb.Helper()
	c := cluster.Start(tb, cluster.Options{Nodes: n, Users: users, Password: password, Bin: bin})
	s := storeSetup{name: fmt.Sprintf("PostgreSQL, %d node", n), addr: strings.Join(c.Addrs(), ",")}
	if n > 1 {
		s.name += "s"
	}
	for _, node := range c.Nodes() {
		s.pids = append(s.pids, node.PID())
	}
	s.pids = append(s.pids, pgtest.Shared(tb).PID())
	return s
}

// compareStores runs the same load against one node on SQLite, one
// node on PostgreSQL and two nodes on PostgreSQL (the clients spread
// over both), one set-up after the other for each mode (a LOGOUT every
// cycle, and none), and returns the reports by mode and set-up and the
// figures side by side. The server CPU time of the PostgreSQL set-ups
// includes PostgreSQL's (its server and backends). It fails on any error
// and when a kind of the mix did not run.
func compareStores(tb testing.TB, p compareParams) ([][]*Report, string) {
	tb.Helper()
	const password = "load-test-pw"
	bin := cluster.Build(tb)
	var users []string
	for i := 1; i <= p.users; i++ {
		users = append(users, fmt.Sprintf("user%d", i))
	}
	setups := []*storeSetup{}
	for _, start := range []func() storeSetup{
		func() storeSetup { return startSQLiteNode(tb, bin, users, password) },
		func() storeSetup { return startPostgresNodes(tb, bin, 1, users, password) },
		func() storeSetup { return startPostgresNodes(tb, bin, 2, users, password) },
	} {
		s := start()
		setups = append(setups, &s)
	}
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
	for _, s := range setups {
		cfg := base
		cfg.Addr = s.addr
		setup, err := Setup(ctx, cfg)
		if err != nil {
			tb.Fatalf("%s: %v", s.name, err)
		}
		s.setup = setup
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%d accounts of %d–%d messages, %d clients, %v per run, default mix (%s); bcrypt at its lowest cost, default auth cache\n",
		p.users, setups[0].setup.MinMessages, setups[0].setup.MaxMessages, p.clients, p.duration, DefaultMix())
	var all [][]*Report
	for _, noLogout := range []bool{false, true} {
		mode := fmt.Sprintf("LOGOUT every %d commands", DefaultMix().Total())
		if noLogout {
			mode = "no LOGOUT"
		}
		var reps []*Report
		for _, s := range setups {
			cfg := base
			cfg.Addr = s.addr
			cfg.NoLogout = noLogout
			cfg.ServerPIDs = s.pids
			rep, err := Run(ctx, cfg, s.setup)
			if err != nil {
				tb.Fatalf("%s, %s: %v", s.name, mode, err)
			}
			if rep.Errors != 0 {
				var b bytes.Buffer
				rep.Print(&b)
				tb.Errorf("%s, %s: %d errors\n%s", s.name, mode, rep.Errors, b.String())
			}
			for k, w := range DefaultMix() {
				if w > 0 && rep.Kind(Kind(k).String()).Count == 0 {
					tb.Errorf("%s, %s: no %s ran", s.name, mode, Kind(k))
				}
			}
			reps = append(reps, rep)
		}
		all = append(all, reps)
		fmt.Fprintf(&out, "\n%s\n", mode)
		printStores(&out, setups, reps)
	}
	return all, out.String()
}

// printStores prints the reports of the set-ups in columns.
func printStores(w *bytes.Buffer, setups []*storeSetup, reps []*Report) {
	head := []string{""}
	for _, s := range setups {
		head = append(head, s.name+" /s", "p50 ms", "p99 ms")
	}
	rows := [][]string{head}
	for _, k := range reps[0].Kinds {
		row := []string{k.Kind}
		any := false
		for _, r := range reps {
			kr := r.Kind(k.Kind)
			any = any || kr.Count > 0
			row = append(row, FormatFloat(kr.PerSec), FormatFloat(kr.P50Ms), FormatFloat(kr.P99Ms))
		}
		if any {
			rows = append(rows, row)
		}
	}
	total := func(name string, v func(r *Report) float64) {
		row := []string{name}
		for _, r := range reps {
			row = append(row, FormatFloat(v(r)), "", "")
		}
		rows = append(rows, row)
	}
	total("commands/s", func(r *Report) float64 { return r.CommandsPerSec })
	total("logins/s", func(r *Report) float64 { return r.LoginsPerSec })
	total("server CPU-s", func(r *Report) float64 {
		if r.ServerCPUSec == nil {
			return 0
		}
		return *r.ServerCPUSec
	})
	total("commands/CPU-s", func(r *Report) float64 { return r.CommandsPerCPUSec })
	total("generator CPU-s", func(r *Report) float64 { return r.ClientCPUSec })
	PrintTable(w, rows)
}

// TestCompareStores runs a small load against one node on SQLite, one on
// PostgreSQL and two on PostgreSQL: all must answer every command
// without error. The full-size comparison is BenchmarkCompareStores.
func TestCompareStores(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and PostgreSQL; skipped in -short mode")
	}
	_, text := compareStores(t, compareParams{users: 6, clients: 4, fill: 30, duration: time.Second})
	t.Logf("\n%s", text)
}

// BenchmarkCompareStores is the comparison at its documented size: 50
// accounts of 100 messages, 8 clients, 20 s per run. Run it once:
//
//	go test ./internal/loadgen -run '^$' -bench CompareStores -benchtime 1x -timeout 30m
func BenchmarkCompareStores(b *testing.B) {
	p := compareParams{users: 50, clients: 8, fill: 100, duration: 20 * time.Second}
	for range b.N {
		runs, text := compareStores(b, p)
		// On standard output: a benchmark's log is cut to a few lines.
		fmt.Print(text)
		for i, reps := range runs {
			tag := "logout"
			if i == 1 {
				tag = "nologout"
			}
			for j, name := range []string{"sqlite", "pg1", "pg2"} {
				b.ReportMetric(reps[j].CommandsPerSec, name+"-"+tag+"-cmd/s")
			}
		}
	}
}

package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

const testPassword = "secret"

// startQuickimap starts an in-process server with the accounts user1 to
// userN and returns a configuration for them.
func startQuickimap(t *testing.T, users int) (*imaptest.Env, Config) {
	t.Helper()
	return startQuickimapWith(t, users, nil)
}

// startQuickimapWith is startQuickimap with mod adjusting the server's
// options.
func startQuickimapWith(t *testing.T, users int, mod func(*server.Options)) (*imaptest.Env, Config) {
	t.Helper()
	env := imaptest.Start(t, mod)
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= users; i++ {
		if _, err := env.Store.CreateUser(context.Background(), fmt.Sprintf("user%d", i), string(h), store.DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
	}
	return env, Config{
		Addr:         env.Addr,
		UserTemplate: "user%d",
		Users:        users,
		Password:     testPassword,
		Clients:      3,
		Duration:     1500 * time.Millisecond,
		Fill:         30,
		IdleMin:      10 * time.Millisecond,
		IdleMax:      30 * time.Millisecond,
		Seed:         7,
	}
}

// checkMixRan fails unless every kind of the mix ran, in the mix's
// proportions: per client, the count of a kind is its weight times the
// cycles completed plus at most its weight, so count/weight of two kinds
// differ by at most the number of clients. Store (the expunges add
// theirs) and select (every login adds one) are only checked to have
// run.
func checkMixRan(t *testing.T, r *Report, mix Mix) {
	t.Helper()
	ref := -1.0
	for k, w := range mix {
		kind := Kind(k)
		got := r.Kind(kind.String()).Count
		if w > 0 && got == 0 {
			t.Errorf("%s never ran", kind)
		}
		if w == 0 || kind == KindStore || kind == KindSelect {
			continue
		}
		per := float64(got) / float64(w)
		if ref < 0 {
			ref = per
		} else if d := per - ref; d > float64(r.Clients) || d < -float64(r.Clients) {
			t.Errorf("%s: %d commands for weight %d, out of proportion (%.1f per unit of weight elsewhere)", kind, got, w, ref)
		}
	}
}

func TestLoadQuickimap(t *testing.T) {
	_, cfg := startQuickimap(t, 3)
	ctx := context.Background()

	setup, err := Setup(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup.Appended != 90 || setup.MinMessages != 30 || setup.MaxMessages != 30 {
		t.Errorf("setup: %+v, want 90 appended, 30 per INBOX", setup)
	}
	for _, c := range []string{"IMAP4REV1", "UIDPLUS", "IDLE"} {
		if !hasCap(setup.Capabilities, c) {
			t.Errorf("capabilities %q lack %s", setup.Capabilities, c)
		}
	}

	rep, err := Run(ctx, cfg, setup)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Logf("\n%s", out.String())
	if rep.Errors != 0 {
		t.Errorf("%d errors: %+v", rep.Errors, rep.Errs)
	}
	checkMixRan(t, rep, DefaultMix())
	var sum int64
	for _, k := range rep.Kinds {
		if k.Kind != "connect" {
			sum += k.Count
		}
		if k.Count > 0 && (k.P50Ms <= 0 || k.P99Ms < k.P50Ms || k.MaxMs < k.P99Ms) {
			t.Errorf("%s: implausible latencies %+v", k.Kind, k)
		}
	}
	if sum != rep.Commands || rep.Commands == 0 {
		t.Errorf("commands %d, sum of the kinds %d", rep.Commands, sum)
	}
	// A LOGOUT every 20 commands. Every client logged in before the
	// run, and logs in again after each LOGOUT unless the run is over.
	logins, logouts := rep.Kind("login").Count, rep.Kind("logout").Count
	if rep.Warmup.Logins != int64(cfg.Clients) || rep.Warmup.Errors != 0 || rep.Warmup.LoginP50Ms <= 0 {
		t.Errorf("warm-up %+v", rep.Warmup)
	}
	if logins != rep.Logins || logins < 1 || logouts < logins || logouts > logins+int64(cfg.Clients) {
		t.Errorf("%d logins, %d logouts with %d clients", logins, logouts, cfg.Clients)
	}
	// The commands dealt from the mix: all but the logins, the SELECT
	// after each, the logouts and the STORE before each UID EXPUNGE
	// (each cycle appends before it expunges). 20 per login.
	mixCmds := rep.Commands - 2*logins - logouts - rep.Kind("expunge").Count
	if mixCmds < 20*logouts || mixCmds > 20*(logouts+int64(cfg.Clients)) {
		t.Errorf("%d mix commands for %d logins and %d logouts", mixCmds, logins, logouts)
	}
	if rep.Seconds < cfg.Duration.Seconds() || rep.CommandsPerSec <= 0 || rep.ClientCPUSec <= 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.ServerCPUSec != nil {
		t.Errorf("server CPU measured without a process id")
	}

	// The clients expunged what they appended: setup finds the INBOXes
	// as it left them and appends nothing.
	again, err := Setup(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.Appended != 0 || again.Expunged != 0 || again.MinMessages != 30 || again.MaxMessages != 30 {
		t.Errorf("second setup: %+v", again)
	}
}

func TestLoadNoLogoutPlainAuth(t *testing.T) {
	_, cfg := startQuickimap(t, 2)
	cfg.NoLogout = true
	cfg.Auth = AuthPlain
	cfg.Pick = PickRandom
	cfg.Mix = Mix{KindFetchBody: 2, KindAppend: 1, KindExpunge: 1, KindSearch: 1}
	cfg.Duration = time.Second
	cfg.ServerPIDs = []int{os.Getpid()}
	rep, err := Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 {
		t.Errorf("%d errors: %+v", rep.Errors, rep.Errs)
	}
	checkMixRan(t, rep, cfg.Mix)
	// One login per client, before the run.
	if rep.Warmup.Logins != int64(cfg.Clients) || rep.Logins != 0 {
		t.Errorf("%d logins before the run and %d during it, want %d and 0", rep.Warmup.Logins, rep.Logins, cfg.Clients)
	}
	for _, k := range []string{"fetch_flags", "idle", "select", "login", "logout", "connect"} {
		if n := rep.Kind(k).Count; n != 0 {
			t.Errorf("%s ran %d times", k, n)
		}
	}
	// The server runs in this process: its CPU time is this process's.
	if rep.ServerCPUSec == nil || *rep.ServerCPUSec <= 0 || rep.ServerProcesses < 1 || rep.CommandsPerCPUSec <= 0 {
		t.Errorf("server CPU %v (%s), %d processes, %v commands per CPU-s",
			rep.ServerCPUSec, rep.CPUError, rep.ServerProcesses, rep.CommandsPerCPUSec)
	}
	if rep.Mix != "fetch_body=2,append=1,search=1,expunge=1" || rep.Auth != "plain" || !rep.NoLogout {
		t.Errorf("report header %q %q %v", rep.Mix, rep.Auth, rep.NoLogout)
	}
}

// A login the server refuses is an error of kind login, with the
// server's text, and the client goes on with the next account.
func TestLoadCountsRefusedLogins(t *testing.T) {
	env, cfg := startQuickimap(t, 3)
	ctx := context.Background()
	cfg.LogoutEvery = 4
	cfg.Mix = Mix{KindFetchFlags: 1, KindStore: 1}
	cfg.Duration = time.Second
	setup, err := Setup(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := env.Store.UserByName(ctx, "user2")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("changed"), bcrypt.MinCost)
	if err := env.Store.SetPasswordHash(ctx, u.ID, string(h)); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, cfg, setup)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Logf("\n%s", out.String())
	login := rep.Kind("login")
	// Round robin: every third login is user2's.
	if login.Errors == 0 || login.Errors*3 < login.Count-int64(cfg.Clients) || login.Errors*3 > login.Count+int64(cfg.Clients) {
		t.Errorf("%d of %d logins failed, want about a third", login.Errors, login.Count)
	}
	// Round robin before the run too: one of the three clients got
	// user2.
	if rep.Warmup.Errors != 1 || rep.Errors != login.Errors+1 || rep.Logins != login.Count-login.Errors || rep.Disconnects != 0 {
		t.Errorf("errors %d, logins %d, disconnects %d; login %+v, warm-up %+v", rep.Errors, rep.Logins, rep.Disconnects, login, rep.Warmup)
	}
	kinds := map[string]bool{}
	for _, e := range rep.Errs {
		kinds[e.Kind] = true
		if !strings.HasPrefix(e.Text, "user2: NO ") || !strings.Contains(e.Text, "AUTHENTICATIONFAILED") {
			t.Errorf("error example %+v", e)
		}
	}
	if !kinds["login"] || !kinds["warm-up login"] || len(kinds) != 2 {
		t.Errorf("error examples %+v", rep.Errs)
	}
	if !strings.Contains(out.String(), "login: user2: NO ") {
		t.Errorf("the text report does not show the server's answer:\n%s", out.String())
	}
}

// cuttingProxy forwards connections to addr and closes each one once it
// has carried limit bytes from the server.
func cuttingProxy(t *testing.T, addr string, limit int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() {
				defer wg.Done()
				io.CopyN(in, out, limit)
				in.Close()
				out.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// A connection lost under a command is an error of that command's kind
// and a disconnect; the client reconnects.
func TestLoadCountsDisconnects(t *testing.T) {
	_, cfg := startQuickimap(t, 2)
	ctx := context.Background()
	cfg.NoLogout = true
	cfg.Mix = Mix{KindFetchBody: 1}
	cfg.Duration = time.Second
	setup, err := Setup(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = cuttingProxy(t, cfg.Addr, 200<<10)
	rep, err := Run(ctx, cfg, setup)
	if err != nil {
		t.Fatal(err)
	}
	body := rep.Kind("fetch_body")
	if rep.Disconnects == 0 || body.Errors == 0 || rep.Errors < rep.Disconnects || rep.Logins < 1 {
		t.Errorf("disconnects %d, errors %d, fetch_body %+v, logins %d", rep.Disconnects, rep.Errors, body, rep.Logins)
	}
	found := false
	for _, e := range rep.Errs {
		found = found || strings.Contains(e.Text, "disconnected")
	}
	if !found {
		t.Errorf("no disconnect among the examples %+v", rep.Errs)
	}
}

// With STARTTLS required, every connection upgrades before it logs in:
// the server here refuses logins in clear text.
func TestLoadStartTLS(t *testing.T) {
	srvTLS, cliTLS := imaptest.TLSConfigs(t)
	_, cfg := startQuickimapWith(t, 2, func(o *server.Options) {
		o.TLSConfig = srvTLS
		o.DistrustLoopback = true
	})
	cfg.Fill = 5
	cfg.Duration = 500 * time.Millisecond
	cfg.Mix = Mix{KindFetchBody: 1, KindStore: 1}
	cfg.LogoutEvery = 2
	cfg.Auth = AuthPlain

	if _, err := Setup(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "NO") {
		t.Fatalf("setup without TLS: %v, want a refused login", err)
	}
	cfg.StartTLS = StartTLSRequired
	cfg.TLSConfig = cliTLS
	rep, err := Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.Logins < 2 {
		t.Errorf("%d errors (%+v), %d logins", rep.Errors, rep.Errs, rep.Logins)
	}

	// A server without STARTTLS fails a run that requires it.
	_, plain := startQuickimap(t, 1)
	plain.StartTLS = StartTLSRequired
	if _, err := Setup(context.Background(), plain); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("STARTTLS required of a server without it: %v", err)
	}
}

// Setup refuses an INBOX holding mail it did not append, unless forced.
func TestSetupRefusesForeignMail(t *testing.T) {
	env, cfg := startQuickimap(t, 1)
	c := env.Dial(t)
	c.ExpectTagged("a0", "LOGIN user1 "+testPassword, "a0 OK")
	lit := "From: a@example.org\r\nSubject: mine\r\n\r\nhello\r\n"
	c.ExpectTagged("a1", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(lit), lit), "a1 OK")
	_, err := Setup(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "user1: its INBOX holds 1 messages the load generator did not append") {
		t.Fatalf("setup over foreign mail: %v", err)
	}
	cfg.Force = true
	setup, err := Setup(context.Background(), cfg)
	if err != nil || setup.Appended != 29 || setup.MinMessages != 30 {
		t.Fatalf("forced setup: %+v %v", setup, err)
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("select=10, fetch=41,STORE=3")
	if err != nil {
		t.Fatal(err)
	}
	want := Mix{KindSelect: 10, KindFetchFlags: 11, KindFetchEnvelope: 10, KindFetchBodystructure: 10, KindFetchBody: 10, KindStore: 3}
	if m != want || m.Total() != 54 {
		t.Errorf("got %v, want %v", m, want)
	}
	if s := m.String(); s != "select=10,fetch_flags=11,fetch_envelope=10,fetch_bodystructure=10,fetch_body=10,store=3" {
		t.Errorf("String() = %q", s)
	}
	if m2, err := ParseMix(DefaultMix().String()); err != nil || m2 != DefaultMix() || m2.Total() != 20 {
		t.Errorf("default mix round trip: %v %v", m2, err)
	}
	for _, bad := range []string{"", "select=0", "select", "select=-1", "frobnicate=1", "logout=1", "idle=x"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	good := Config{Addr: "127.0.0.1:143", UserTemplate: "user%d", Users: 1, Password: "pw", Clients: 1}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no addr":        func(c *Config) { c.Addr = "" },
		"addr port":      func(c *Config) { c.Addr = "localhost" },
		"two verbs":      func(c *Config) { c.UserTemplate = "u%d-%d" },
		"no verb":        func(c *Config) { c.UserTemplate = "user" },
		"other verb":     func(c *Config) { c.UserTemplate = "user%s" },
		"users":          func(c *Config) { c.Users = 0 },
		"clients":        func(c *Config) { c.Clients = 0 },
		"password":       func(c *Config) { c.Password = "" },
		"password CR":    func(c *Config) { c.Password = "a\rb" },
		"tls twice":      func(c *Config) { c.TLS, c.StartTLS = true, StartTLSOptional },
		"negative fill":  func(c *Config) { c.Fill = -1 },
		"bad pid":        func(c *Config) { c.ServerPIDs = []int{0} },
		"quoted name 8b": func(c *Config) { c.UserTemplate = "ü%d" },
	} {
		c := good
		mod(&c)
		if err := c.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if c := good; c.UserTemplate != "user%d" || c.userName(0) != "user1" {
		t.Errorf("first account %q", c.userName(0))
	}
	if pids, err := ParsePIDs("12, 34"); err != nil || len(pids) != 2 || pids[1] != 34 {
		t.Errorf("ParsePIDs: %v %v", pids, err)
	}
	if _, err := ParsePIDs("12,x"); err == nil {
		t.Error("ParsePIDs accepted x")
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (imap (x) y) S 17 4242 4242 0 -1 4194560 500 0 0 0 150 30 7 3 20 0 1 0 100 0 0\n"
	st, ok := parseProcStat([]byte(line))
	if !ok || st.pid != 4242 || st.ppid != 17 || st.cpu != 150+30+7+3 {
		t.Errorf("got %+v %v", st, ok)
	}
	if _, ok := parseProcStat([]byte("garbage")); ok {
		t.Error("garbage parsed")
	}
}

func TestTreeCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	before, procs, err := treeCPU([]int{os.Getpid()})
	if err != nil || procs < 1 {
		t.Fatalf("%v %d %v", before, procs, err)
	}
	// Burn CPU until this process has used 50 ms more.
	start := selfCPU()
	x := 0
	for selfCPU()-start < 0.05 {
		for i := range 100000 {
			x += i
		}
	}
	after, _, err := treeCPU([]int{os.Getpid()})
	if err != nil || after-before < 0.03 {
		t.Errorf("CPU %v → %v (%v), spent %v (x=%d)", before, after, err, selfCPU()-start, x%2)
	}
	if _, _, err := treeCPU([]int{1 << 30}); err == nil {
		t.Error("a missing process measured")
	}
}

func TestMessages(t *testing.T) {
	g := newMessageGen(1, 2)
	kinds := map[string]int{}
	var total int
	for i := range 300 {
		m := g.message(i, "fill", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
		if len(m) < minMessageSize-200 || len(m) > maxMessageSize+600 {
			t.Errorf("message %d: %d bytes", i, len(m))
		}
		if bytes.Contains(bytes.ReplaceAll(m, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("message %d has a bare LF", i)
		}
		total += len(m)
		msg, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if msg.Header.Get(Marker) != "fill" || msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" {
			t.Errorf("message %d headers %v", i, msg.Header)
		}
		if _, err := mail.ParseAddress(msg.Header.Get("From")); err != nil {
			t.Errorf("message %d: From: %v", i, err)
		}
		mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		kinds[mt]++
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(msg.Body, params["boundary"])
			parts := 0
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("message %d part %d: %v", i, parts, err)
				}
				if _, err := io.Copy(io.Discard, p); err != nil {
					t.Fatalf("message %d part %d: %v", i, parts, err)
				}
				parts++
			}
			if parts != 2 {
				t.Errorf("message %d (%s): %d parts", i, mt, parts)
			}
		}
	}
	for _, k := range []string{"text/plain", "multipart/alternative", "multipart/mixed"} {
		if kinds[k] < 30 {
			t.Errorf("%d of %s in %v", kinds[k], k, kinds)
		}
	}
	if avg := total / 300; avg < 6<<10 || avg > 20<<10 {
		t.Errorf("average size %d", avg)
	}
}

// countingProxy forwards connections to addr and counts them.
func countingProxy(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	return l.Addr().String(), &n
}

// With several addresses, setup and the clients spread their
// connections over all of them, each client moving to the next address
// at each login.
func TestLoadSeveralAddrs(t *testing.T) {
	_, cfg := startQuickimap(t, 4)
	a, na := countingProxy(t, cfg.Addr)
	b, nb := countingProxy(t, cfg.Addr)
	cfg.Addr = a + ", " + b
	cfg.Clients = 2
	cfg.LogoutEvery = 3
	cfg.Duration = time.Second
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	setup, err := Setup(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if na.Load() < 2 || nb.Load() < 2 {
		t.Errorf("setup of 4 accounts: %d connections to the first address, %d to the second", na.Load(), nb.Load())
	}
	sa, sb := na.Load(), nb.Load()
	rep, err := Run(ctx, cfg, setup)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 {
		t.Errorf("%d errors: %+v", rep.Errors, rep.Errs)
	}
	da, db := na.Load()-sa, nb.Load()-sb
	if rep.Logins < 4 || da < 2 || db < 2 || da+db < rep.Logins {
		t.Errorf("%d logins, %d connections to the first address and %d to the second", rep.Logins, da, db)
	}
	bad := cfg
	bad.Addr = a + ",localhost"
	if err := bad.Check(); err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Errorf("Check of %q: %v", bad.Addr, err)
	}
}

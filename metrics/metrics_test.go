package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/metrics"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// env is a server on the embedded store with metrics, and the HTTP
// server of its metrics.
type env struct {
	addr string
	http *httptest.Server
	st   store.Store
}

func newEnv(t *testing.T, ready func(context.Context) error, mod ...func(*server.Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{}
	m := metrics.New(metrics.Options{
		Ready: ready,
		SessionsStored: func(ctx context.Context) (int, error) {
			return e.st.CountSessions(ctx)
		},
	})
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{ObserveTransaction: m.StoreTransaction})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	t.Cleanup(func() { st.Close() })
	h, err := auth.HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, "alice", h, store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	opts := server.Options{
		Store:            st,
		Sessions:         session.New(st, session.Options{}),
		Metrics:          m,
		FailedLoginDelay: time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range mod {
		f(&opts)
	}
	srv := server.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	e.addr = l.Addr().String()
	e.http = httptest.NewServer(m.Handler())
	t.Cleanup(e.http.Close)
	return e
}

// scrape reads /metrics into a map from series ("name{labels}") to value.
func (e *env) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(e.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// client is a scripted IMAP connection that counts its bytes.
type client struct {
	t       *testing.T
	nc      net.Conn
	br      *bufio.Reader
	sent    int64
	got     int64
	lastTag string
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.line() // greeting
	return c
}

func (c *client) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := c.br.ReadString('\n')
	c.got += int64(len(s))
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, s)
	}
	return s
}

// cmd sends a command line (tag included) and returns the responses up to
// the tagged one, which must start with want after the tag.
func (c *client) cmd(line, want string) []string {
	c.t.Helper()
	tag := line[:strings.IndexByte(line, ' ')]
	n, err := io.WriteString(c.nc, line+"\r\n")
	c.sent += int64(n)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for {
		s := c.line()
		out = append(out, s)
		if strings.HasPrefix(s, tag+" ") {
			if !strings.HasPrefix(s, tag+" "+want) {
				c.t.Fatalf("%s: got %q, want %s", line, s, want)
			}
			return out
		}
	}
}

// drain reads until the server closes the connection.
func (c *client) drain() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c.br)
	c.got += n
	if err != nil {
		c.t.Fatal(err)
	}
	c.nc.Close()
}

func find(t *testing.T, lines []string, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range lines {
		if m := rx.FindStringSubmatch(l); m != nil {
			return m
		}
	}
	t.Fatalf("no %s in %q", re, lines)
	return nil
}

// waitFor scrapes until cond holds on the scrape (the server reports a
// connection's end after the client has seen it close).
func (e *env) waitFor(t *testing.T, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := e.scrape(t)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling for the state
	}
}

func TestMetricsAfterSession(t *testing.T) {
	e := newEnv(t, nil)
	before := e.scrape(t)

	var sent, got int64
	msg := "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

	// A session: a failed login, a login, APPEND, SELECT, FETCH, an
	// unknown command, a SELECT of a missing mailbox, SID (creating a
	// session), LOGOUT (PRESERVE).
	c := dial(t, e.addr)
	c.cmd("a1 LOGIN alice wrong", "NO")
	c.cmd("a2 LOGIN alice secret", "OK")
	c.cmd(fmt.Sprintf("a3 APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	sel := c.cmd("a4 SELECT INBOX", "OK")
	uidValidity := find(t, sel, `UIDVALIDITY (\d+)`)[1]
	// The state is reported just after the response is sent.
	e.waitFor(t, "one connection in the selected state", func(m map[string]float64) bool {
		return m[`quickimap_connections{state="selected"}`] == 1 && m[`quickimap_connections{state="not_authenticated"}`] == 0
	})
	c.cmd("a5 FETCH 1 (FLAGS BODY[])", "OK")
	c.cmd("a6 FROBNICATE", "BAD")
	c.cmd("a7 SELECT Nowhere", "NO")
	sid := find(t, c.cmd("a8 SID", "OK"), `\* NEWSID (\S+)`)[1]
	c.cmd("a9 LOGOUT (PRESERVE)", "OK")
	c.drain()
	sent, got = sent+c.sent, got+c.got

	afterFirst := e.waitFor(t, "the first connection to end", func(m map[string]float64) bool {
		return m[`quickimap_connections{state="logout"}`]+m[`quickimap_connections{state="selected"}`] == 0
	})
	if v := afterFirst["quickimap_sessions_stored"]; v != 1 {
		t.Errorf("sessions stored after LOGOUT (PRESERVE): %v", v)
	}

	// A resume of an unknown session (a new one is created), then a
	// resume of the preserved one.
	c = dial(t, e.addr)
	c.cmd("b1 LOGIN alice secret", "OK")
	c.cmd("b2 SID nosuchsession 1 1", "OK")
	c.cmd("b3 LOGOUT", "OK")
	c.drain()
	sent, got = sent+c.sent, got+c.got
	c = dial(t, e.addr)
	c.cmd("c1 LOGIN alice secret", "OK")
	c.cmd("c2 SID "+sid+" "+uidValidity+" 1", "OK")
	c.cmd("c3 LOGOUT", "OK")
	c.drain()
	sent, got = sent+c.sent, got+c.got

	after := e.waitFor(t, "every connection to end", func(m map[string]float64) bool {
		return m["quickimap_connections_total"]-before["quickimap_connections_total"] == 3 &&
			m[`quickimap_connections{state="not_authenticated"}`]+m[`quickimap_connections{state="authenticated"}`]+
				m[`quickimap_connections{state="selected"}`]+m[`quickimap_connections{state="logout"}`] == 0
	})
	want := map[string]float64{
		`quickimap_commands_total{command="LOGIN",result="NO"}`:                            1,
		`quickimap_commands_total{command="LOGIN",result="OK"}`:                            3,
		`quickimap_commands_total{command="APPEND",result="OK"}`:                           1,
		`quickimap_commands_total{command="SELECT",result="OK"}`:                           1,
		`quickimap_commands_total{command="SELECT",result="NO"}`:                           1,
		`quickimap_commands_total{command="FETCH",result="OK"}`:                            1,
		`quickimap_commands_total{command="UNKNOWN",result="BAD"}`:                         1,
		`quickimap_commands_total{command="SID",result="OK"}`:                              3,
		`quickimap_commands_total{command="LOGOUT",result="OK"}`:                           3,
		`quickimap_commands_total{command="NOOP",result="OK"}`:                             0,
		`quickimap_command_duration_seconds_count{command="FETCH",result="OK"}`:            1,
		`quickimap_command_duration_seconds_count{command="LOGIN",result="OK"}`:            3,
		`quickimap_command_duration_seconds_bucket{command="LOGIN",result="NO",le="+Inf"}`: 1,
		`quickimap_logins_total{result="ok"}`:                                              3,
		`quickimap_logins_total{result="failed"}`:                                          1,
		`quickimap_sid_resumes_total{outcome="no_session"}`:                                1,
		`quickimap_sid_resumes_total{outcome="resumed"}`:                                   1,
		`quickimap_sid_resumes_total{outcome="newsid"}`:                                    0,
		`quickimap_received_bytes_total`:                                                   float64(sent),
		`quickimap_sent_bytes_total`:                                                       float64(got),
		`quickimap_connections_total`:                                                      3,
		`quickimap_sessions_stored`:                                                        0,
	}
	for k, w := range want {
		if d := after[k] - before[k]; d != w {
			t.Errorf("%s moved by %v, want %v", k, d, w)
		}
	}
	// The session's last SELECT failed, so no connection state other
	// than these was used; and store writes were measured.
	if n := after[`quickimap_store_transaction_duration_seconds_count{mode="durable"}`]; n < 1 {
		t.Errorf("durable store transactions measured: %v", n)
	}
	for k := range after {
		if strings.HasPrefix(k, "quickimap_commands_total") && strings.Contains(k, "FROBNICATE") {
			t.Errorf("client input became a label: %s", k)
		}
	}
}

// A connection over max-connections is refused and counted.
func TestConnectionsRejected(t *testing.T) {
	e := newEnv(t, nil, func(o *server.Options) { o.MaxConnections = 1 })
	dial(t, e.addr) // holds the only slot
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(nc)
	if !strings.HasPrefix(string(b), "* BYE") {
		t.Fatalf("second connection got %q", b)
	}
	const rejected = `quickimap_connections_rejected_total{reason="max_connections"}`
	got := e.waitFor(t, "the refusal to be counted", func(m map[string]float64) bool {
		return m[rejected] >= 1
	})
	if got[rejected] != 1 || got["quickimap_connections_total"] != 1 ||
		got[`quickimap_connections{state="not_authenticated"}`] != 1 {
		t.Errorf("rejected %v, accepted %v, open %v", got[rejected],
			got["quickimap_connections_total"], got[`quickimap_connections{state="not_authenticated"}`])
	}
}

func TestHealthAndReady(t *testing.T) {
	var down atomic.Bool
	e := newEnv(t, func(ctx context.Context) error {
		if down.Load() {
			return errors.New("disk on fire")
		}
		return nil
	})
	get := func(path string) (int, string) {
		resp, err := http.Get(e.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	down.Store(true)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "disk on fire") {
		t.Errorf("/readyz with the store down: %d %q", code, body)
	}
}

func TestLMTPDeliveries(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "v1.2.0", Revision: "abc123"})
	m.LMTPDelivery("delivered")
	m.LMTPDelivery("delivered")
	m.LMTPDelivery("unknown_user")
	hs := httptest.NewServer(m.Handler())
	defer hs.Close()
	e := &env{http: hs}
	got := e.scrape(t)
	if got[`quickimap_lmtp_deliveries_total{result="delivered"}`] != 2 || got[`quickimap_lmtp_deliveries_total{result="unknown_user"}`] != 1 {
		t.Errorf("LMTP deliveries: %v", got)
	}
	if got[`quickimap_build_info{revision="abc123",version="v1.2.0"}`] != 1 {
		t.Errorf("build info: %v", got)
	}
	if _, ok := got["quickimap_sessions_stored"]; ok {
		t.Error("sessions_stored without a store")
	}
}

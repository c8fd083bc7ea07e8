package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/config"
)

func TestMetricsListenKey(t *testing.T) {
	c := config.Default()
	if c.MetricsListen != "" {
		t.Errorf("metrics-listen on by default: %q", c.MetricsListen)
	}
	if err := c.Set("metrics-listen", "127.0.0.1:9154"); err != nil || c.MetricsListen != "127.0.0.1:9154" {
		t.Fatalf("Set: %v, %q", err, c.MetricsListen)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if m, so := newMetrics(&c, nil); m == nil || so.ObserveTransaction == nil {
		t.Error("metrics-listen set, but no metrics or no store transaction observer")
	}
	c.MetricsListen = "9154"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "metrics-listen") {
		t.Errorf("metrics-listen without a port: %v", err)
	}
	c.MetricsListen = ""
	if m, so := newMetrics(&c, nil); m != nil || so.ObserveTransaction != nil {
		t.Error("metrics without metrics-listen")
	}
}

// The binary serves /metrics, /healthz and /readyz on --metrics-listen.
func TestServeMetrics(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--lmtp-listen", "127.0.0.1:0", "--no-initial-user")
	var imapAddr, httpAddr, lmtpAddr string
	for imapAddr == "" || httpAddr == "" || lmtpAddr == "" {
		l := s.waitListening()
		switch l["protocol"] {
		case "metrics":
			httpAddr = l["addr"]
		case "lmtp":
			lmtpAddr = l["addr"]
		default:
			imapAddr = l["addr"]
		}
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + path)
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

	c, err := net.Dial("tcp", imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readLine(t, c, r)
	io.WriteString(c, "a1 LOGOUT\r\n")
	readUntilClosed(t, c, r)
	// An LMTP recipient refused (there is no account): counted by result.
	lc, err := net.Dial("tcp", lmtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	lr := bufio.NewReader(lc)
	lmtpCmd := func(line, want string) {
		t.Helper()
		if line != "" {
			io.WriteString(lc, line+"\r\n")
		}
		for {
			got := readLine(t, lc, lr)
			if len(got) < 4 || got[3] != '-' {
				if !strings.HasPrefix(got, want) {
					t.Fatalf("LMTP %q: %q, want %s", line, got, want)
				}
				return
			}
		}
	}
	lmtpCmd("", "220")
	lmtpCmd("LHLO test", "250")
	lmtpCmd("MAIL FROM:<a@example.org>", "250")
	lmtpCmd("RCPT TO:<nobody@example.org>", "550")
	lmtpCmd("QUIT", "221")

	want := []string{
		`quickimap_lmtp_deliveries_total{result="unknown_user"} 1` + "\n",
		"quickimap_connections_total 1\n",
		`quickimap_commands_total{command="LOGOUT",result="OK"} 1` + "\n",
		"quickimap_sessions_stored 0\n",
		"quickimap_build_info{",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := get("/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if code == 200 && missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %d, no %q in:\n%s", code, missing, body)
		}
		time.Sleep(10 * time.Millisecond) // polling for the LOGOUT to be counted
	}
	s.stop()
}

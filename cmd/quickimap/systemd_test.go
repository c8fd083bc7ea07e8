package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// contrib/systemd/quickimap.service: its command line is one the binary
// takes, it has the settings an operator relies on, and systemd-analyze
// verify finds nothing wrong (when systemd is installed).
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "contrib", "systemd", "quickimap.service"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{
		"\nExecStart=/usr/local/bin/quickimap serve --config /etc/quickimap/quickimap.conf\n",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nUser=quickimap\n",
		"\nStateDirectory=quickimap\n",
		"\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n",
		"\nProtectSystem=strict\n",
		"\nProtectHome=yes\n",
		"\nPrivateTmp=yes\n",
		"\nNoNewPrivileges=yes\n",
		"\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	// The flags of ExecStart parse: --config with a missing file fails
	// on the file, not on the command line.
	r := quickimap(t, "", "serve", "--config", filepath.Join(t.TempDir(), "quickimap.conf"))
	if r.code == exitOK || strings.Contains(r.stderr, "flag provided but not defined") {
		t.Errorf("serve --config: exit %d, %q", r.code, r.stderr)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("INTEROP_REQUIRE") == "1" {
			t.Fatal("systemd-analyze not installed (Debian package systemd), and INTEROP_REQUIRE=1")
		}
		t.Skip("systemd-analyze not installed (Debian package systemd): unit not verified")
	}
	// verify checks that the executable exists: point it at one that does.
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "quickimap.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(text, "/usr/local/bin/quickimap", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

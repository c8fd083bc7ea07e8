package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// requireEnv names the environment variable that turns a missing
// interoperability tool from a skip into a failure. .ci/run sets it, so
// that in CI every client is really exercised; on a developer's machine
// the tests that need an absent tool skip with the Debian package to get.
const requireEnv = "INTEROP_REQUIRE"

// lookTool returns the path of the named program, or skips the test (fails
// it when INTEROP_REQUIRE=1) saying which Debian package provides it.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("%s not installed; CI installs it (Debian package %s)", name, pkg))
	}
	return path
}

// missing skips the test, or fails it when INTEROP_REQUIRE=1.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s (%s=1: required here)", why, requireEnv)
	}
	t.Skip(why)
}

// runScript starts a fresh server and runs a client script from testdata
// with the interpreter, its arguments being host, port, user and password;
// env adds environment variables. It fails the test when the script does
// not finish within 60 s and returns its combined output and exit error.
func runScript(t *testing.T, interpreter, name string, env ...string) ([]byte, error) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	srv := imaptest.Start(t, nil)
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, script, host, port, srv.User, srv.Password)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 60 s; output:\n%s", name, out)
	}
	return out, err
}

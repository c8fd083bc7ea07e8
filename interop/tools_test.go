package interop

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
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

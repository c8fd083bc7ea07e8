package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/quickimap/quickimap", Version: "v1.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-02T07:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	want := "quickimap v1.2.0\nrevision 0123456789abcdef0123456789abcdef01234567 (2026-12-02T07:00:00Z, modified)\ngo1.26.0\n"
	if got := versionText(bi, true); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bi.Settings = bi.Settings[:2]
	if got := versionText(bi, true); !strings.Contains(got, "(2026-12-02T07:00:00Z)\n") {
		t.Errorf("unmodified: %q", got)
	}
	bi.Main.Version, bi.Settings = "", nil
	if got := versionText(bi, true); got != "quickimap (devel)\nrevision unknown (built without version control information)\ngo1.26.0\n" {
		t.Errorf("no VCS: %q", got)
	}
	if got := versionText(nil, false); !strings.Contains(got, "unknown version") {
		t.Errorf("no build info: %q", got)
	}
}

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		r := quickimap(t, "", arg)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "quickimap ") || !strings.Contains(r.stdout, "\ngo1.") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, r.code, r.stdout, r.stderr)
		}
	}
	quickimap(t, "", "version", "extra").want(t, exitUsage, "", "unexpected argument")
}

// A binary built from the checkout with version control stamping reports
// the checkout's revision.
func TestVersionBinaryRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	out, err := exec.Command(git, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	head := strings.TrimSpace(string(out))
	dirs, err := exec.Command(git, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir").Output()
	if f := strings.Fields(string(dirs)); err != nil || len(f) != 2 || f[0] != f[1] {
		// go build looks for a .git directory; a worktree has a .git file.
		t.Skip("a git worktree: go build does not stamp version control information in one")
	}
	bin := filepath.Join(t.TempDir(), "quickimap")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, b)
	}
	b, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Go 1.24 and later also derive the module version from the
	// revision (a pseudo-version, "+dirty" when modified).
	if !strings.Contains(string(b), "\nrevision "+head) || !strings.HasPrefix(string(b), "quickimap v") {
		t.Errorf("--version of a build of %s: %q", head, b)
	}
}

package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

const versionUsage = `Usage: quickimap version   (or quickimap --version)

Prints the module version of the binary (a tag such as v1.2.0 when built by
"go install ...@version", "(devel)" when built from a checkout), the
version control revision, its time and whether the work tree had changes
when it was built, and the Go version.
`

// runVersion prints the version of the binary.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
			fmt.Fprint(stdout, versionUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "quickimap version: unexpected argument %q\n", args[0])
		return exitUsage
	}
	bi, ok := debug.ReadBuildInfo()
	fmt.Fprint(stdout, versionText(bi, ok))
	return exitOK
}

// buildVersion returns the module version and VCS revision stamped into
// the binary ("" for what is unknown).
func buildVersion() (version, revision string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return bi.Main.Version, revision
}

// versionText formats what the Go toolchain stamped into the binary:
//
//	quickimap v1.2.0
//	revision 0123abcd... (2026-12-02T07:00:00Z, modified)
//	go1.26.0
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "quickimap (unknown version: no build information)\n"
	}
	var b strings.Builder
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	fmt.Fprintf(&b, "quickimap %s\n", v)
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		b.WriteString("revision unknown (built without version control information)\n")
	} else {
		var extra []string
		if when != "" {
			extra = append(extra, when)
		}
		if modified {
			extra = append(extra, "modified")
		}
		fmt.Fprintf(&b, "revision %s", rev)
		if len(extra) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(extra, ", "))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s\n", bi.GoVersion)
	return b.String()
}

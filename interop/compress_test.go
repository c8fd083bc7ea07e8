package interop

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestCompressPerl runs testdata/compress_session.pl: Mail::IMAPClient
// with Compress => 1 (zlib, Z_PARTIAL_FLUSH): a 3 MB APPEND and FETCH
// and an IDLE that gets an update while the client waits.
func TestCompressPerl(t *testing.T) {
	perl := lookTool(t, "perl", "perl")
	if out, err := exec.Command(perl, "-MMail::IMAPClient", "-MCompress::Zlib", "-e", "1").CombinedOutput(); err != nil {
		missing(t, fmt.Sprintf("Mail::IMAPClient or Compress::Zlib not installed; CI installs them (libmail-imapclient-perl): %s", bytes.TrimSpace(out)))
	}
	out, err := runScript(t, perl, "compress_session.pl", "LC_ALL=C", "PERL5OPT=-w")
	t.Logf("compress_session.pl:\n%s", out)
	passed, failed := 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "not ok "):
			failed++
		case strings.HasPrefix(line, "ok "):
			passed++
		}
	}
	m := tapPlan.FindSubmatch(out)
	if m == nil || failed > 0 || err != nil {
		t.Fatalf("compress_session.pl: %d failed, plan %q, %v", failed, m, err)
	}
	if n, _ := strconv.Atoi(string(m[1])); n != passed || n < 9 {
		t.Fatalf("compress_session.pl planned %d checks, passed %d", n, passed)
	}
}

// TestCompressZlib runs testdata/compress_zlib.py once per zlib flush
// mode a client may end its commands with.
func TestCompressZlib(t *testing.T) {
	python := lookTool(t, "python3", "python3")
	for _, mode := range []string{"Z_SYNC_FLUSH", "Z_PARTIAL_FLUSH", "Z_FULL_FLUSH"} {
		t.Run(mode, func(t *testing.T) {
			out, err := runScript(t, python, "compress_zlib.py", "QI_ZMODE="+mode)
			if err != nil || !bytes.Contains(out, []byte("ok LOGOUT")) {
				t.Fatalf("compress_zlib.py %s: %v\n%s", mode, err, out)
			}
			t.Logf("%s", out)
		})
	}
}

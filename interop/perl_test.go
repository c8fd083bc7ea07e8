package interop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestPerlMailIMAPClient runs testdata/imapclient_session.pl, a session
// through Perl's Mail::IMAPClient: LOGIN, CAPABILITY, LIST/LSUB,
// NAMESPACE, CREATE/RENAME/DELETE, APPEND with flags and date, SELECT,
// STATUS, SEARCH, FETCH (ENVELOPE, BODYSTRUCTURE, body parts, header
// fields), STORE, COPY, MOVE, EXPUNGE, CLOSE, IDLE with a second
// connection appending, LOGOUT. The script prints one TAP line per check;
// the test fails with the lines that failed.
func TestPerlMailIMAPClient(t *testing.T) {
	perl := lookTool(t, "perl", "perl")
	if out, err := exec.Command(perl, "-MMail::IMAPClient", "-e", "print $Mail::IMAPClient::VERSION").CombinedOutput(); err != nil {
		missing(t, fmt.Sprintf("Mail::IMAPClient not installed; CI installs it (Debian package libmail-imapclient-perl): %s", bytes.TrimSpace(out)))
	} else {
		t.Logf("Mail::IMAPClient %s", out)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "imapclient_session.pl"))
	if err != nil {
		t.Fatal(err)
	}
	env := imaptest.Start(t, nil)
	host, port, err := net.SplitHostPort(env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, perl, "-w", script, host, port, env.User, env.Password)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("imapclient_session.pl did not finish within 60 s; output:\n%s", out)
	}
	t.Logf("imapclient_session.pl:\n%s", out)

	// Every check printed "ok N" or "not ok N", and the plan "1..N" at
	// the end says how many there were: a script that died half-way
	// has no plan or fewer lines.
	var failed []string
	passed := 0
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "not ok "):
			failed = append(failed, line)
		case strings.HasPrefix(line, "ok "):
			passed++
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d Mail::IMAPClient checks failed:\n%s", len(failed), len(failed)+passed, strings.Join(failed, "\n"))
	}
	m := tapPlan.FindSubmatch(out)
	switch {
	case m == nil:
		t.Errorf("imapclient_session.pl printed no plan (1..N): it stopped early (%v)", err)
	default:
		if n, _ := strconv.Atoi(string(m[1])); n != passed+len(failed) {
			t.Errorf("imapclient_session.pl planned %d checks but printed %d", n, passed+len(failed))
		}
	}
	if err != nil && len(failed) == 0 {
		t.Errorf("imapclient_session.pl failed (%v) without a failed check", err)
	}
}

var tapPlan = regexp.MustCompile(`(?m)^1\.\.(\d+)$`)

package interop

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
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
	// PERL5OPT=-w is perl -w: warnings on, whatever the script says.
	out, err := runScript(t, perl, "imapclient_session.pl", "LC_ALL=C", "PERL5OPT=-w")
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

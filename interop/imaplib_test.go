package interop

import "testing"

// TestImaplib runs testdata/imaplib_session.py: login, list, create,
// rename, delete, subscribe, select, status through Python's imaplib.
func TestImaplib(t *testing.T) { runImaplib(t, "imaplib_session.py") }

// TestImaplibMessages runs testdata/imaplib_messages.py: APPEND, SELECT,
// FETCH, SEARCH, STORE, COPY and EXPUNGE.
func TestImaplibMessages(t *testing.T) { runImaplib(t, "imaplib_messages.py") }

// runImaplib runs a Python script against a fresh server; the script
// checks every answer itself and exits non-zero on a mismatch.
func runImaplib(t *testing.T, name string) {
	python := lookTool(t, "python3", "python3")
	out, err := runScript(t, python, name)
	if err != nil {
		t.Fatalf("%s failed (%v); output:\n%s", name, err, out)
	}
	t.Logf("%s", out)
}

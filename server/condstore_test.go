package server_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// CONDSTORE (RFC 7162 §3.1): every server-side example of the RFC,
// adapted to our data. Each test's comment names the example.
//
// The data: seeded(t, n) gives INBOX n messages appended one by one, so
// that UID k has MODSEQ k+1 and HIGHESTMODSEQ is n+1 (a new mailbox
// starts at 1), none \Recent, none seen.
//
// A difference from the RFC's CONDSTORE-only examples on purpose: we also
// implement QRESYNC, so once CONDSTORE is enabled every untagged FETCH
// caused by a STORE or an external change carries UID too (§3.2.4).

// seeded starts a server whose INBOX holds n messages and returns the
// environment, the UIDVALIDITY of INBOX, and a second connection w with
// INBOX selected, to make changes "in another session".
func seeded(t *testing.T, n int) (*imaptest.Env, uint32, *imaptest.Conn) {
	t.Helper()
	env := imaptest.Start(t, nil)
	return env, seed(t, env, n), selectedW(t, env)
}

// seed appends n messages to INBOX, claims their \Recent in a session
// that goes away, and returns INBOX's UIDVALIDITY.
func seed(t *testing.T, env *imaptest.Env, n int) uint32 {
	t.Helper()
	c := env.DialLogin(t)
	for i := 0; i < n; i++ {
		if l := appendMsg(t, c, "p", "INBOX", "", testMsg); !strings.HasPrefix(l, "p OK") {
			t.Fatalf("append: %q", l)
		}
	}
	c.ExpectTagged("s", "SELECT INBOX", "s OK") // takes \Recent
	got := c.Cmd("u", "STATUS INBOX (UIDVALIDITY)")
	var uv uint32
	if _, err := fmt.Sscanf(got[0], "* STATUS INBOX (UIDVALIDITY %d)", &uv); err != nil {
		t.Fatalf("STATUS: %q", got)
	}
	c.Expect("o", "LOGOUT", "* BYE Logging out", "o OK LOGOUT completed")
	return uv
}

func selectedW(t *testing.T, env *imaptest.Env) *imaptest.Conn {
	t.Helper()
	w := env.DialLogin(t)
	w.ExpectTagged("w0", "SELECT INBOX", "w0 OK [READ-WRITE]")
	return w
}

// selectResp is the exact answer to SELECT INBOX after seeded, up to the
// tagged response, with HIGHESTMODSEQ when hms is not 0. extra lines go
// after it (QRESYNC data), before the tagged OK.
func selectResp(tag string, uv uint32, exists, uidNext int, hms uint64, extra ...string) []string {
	l := []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		fmt.Sprintf("* %d EXISTS", exists),
		"* 0 RECENT",
	}
	if exists > 0 {
		l = append(l, "* OK [UNSEEN 1] First unseen message")
	}
	l = append(l,
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", uv),
		fmt.Sprintf("* OK [UIDNEXT %d] Predicted next UID", uidNext))
	if hms != 0 {
		l = append(l, fmt.Sprintf("* OK [HIGHESTMODSEQ %d] Highest mod-sequence", hms))
	}
	l = append(l, extra...)
	return append(l, tag+" OK [READ-WRITE] SELECT completed")
}

func expectLines(t *testing.T, c *imaptest.Conn, tag, cmd string, want []string) {
	t.Helper()
	c.Expect(tag, cmd, want...)
}

// RFC 7162 §3.1.2.1 example 1, §3.1.8 example 18, RFC 5161 §3.1: the
// CONDSTORE enabling commands ENABLE and SELECT (CONDSTORE) make SELECT
// report HIGHESTMODSEQ; without them it is not sent.
func TestCondstoreSelectHighestModSeq(t *testing.T) {
	env, uv, _ := seeded(t, 3)
	c := env.DialLogin(t)
	expectLines(t, c, "a1", "SELECT INBOX", selectResp("a1", uv, 3, 4, 0))
	c.Expect("a2", "UNSELECT", "a2 OK UNSELECT completed")
	c.Expect("a3", "ENABLE CONDSTORE", "* ENABLED CONDSTORE", "a3 OK ENABLE completed")
	c.Expect("a4", "ENABLE CONDSTORE", "* ENABLED", "a4 OK ENABLE completed")
	expectLines(t, c, "a5", "SELECT INBOX", selectResp("a5", uv, 3, 4, 4))

	// Example 18: the SELECT parameter.
	c = env.DialLogin(t)
	expectLines(t, c, "b1", "SELECT INBOX (CONDSTORE)", selectResp("b1", uv, 3, 4, 4))
	// EXAMINE too, and CONDSTORE stays enabled for the connection.
	got := c.Cmd("b2", "EXAMINE Sent")
	if got[0] != "* OK [CLOSED] Previous mailbox closed" || got[len(got)-2] != "* OK [HIGHESTMODSEQ 1] Highest mod-sequence" {
		t.Errorf("EXAMINE after CONDSTORE: %q", got)
	}
	// A SELECT refused with BAD deselects first (RFC 7162 §3.2.5).
	c.Expect("b3", "SELECT INBOX (CONDSTORE CONDSTORE)", "* OK [CLOSED] Previous mailbox closed", "b3 BAD Syntax error: SELECT parameter CONDSTORE given twice")
	c.Expect("b4", "SELECT INBOX (CONDSTORE", "b4 BAD Syntax error: expected ')', found end of line")
}

// RFC 7162 §3.1.3 example 3: every message passes the UNCHANGEDSINCE
// test; .SILENT still reports the new MODSEQs (with UID: §3.2.4).
// Example 4: STORE * with two flags.
func TestCondstoreStoreExamples3And4(t *testing.T) {
	env, _, _ := seeded(t, 5)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	c.Expect("a103", `UID STORE 4,2,1 (UNCHANGEDSINCE 6) +FLAGS.SILENT (\Deleted)`,
		"* 1 FETCH (UID 1 MODSEQ (7))",
		"* 2 FETCH (UID 2 MODSEQ (7))",
		"* 4 FETCH (UID 4 MODSEQ (7))",
		"a103 OK STORE completed")
	c.Expect("a104", `STORE * (UNCHANGEDSINCE 7) +FLAGS.SILENT (\Deleted $Processed)`,
		// A keyword new to the mailbox: FLAGS first (RFC 3501 §7.2.6).
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Processed)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Processed \*)] Flags permitted`,
		"* 5 FETCH (UID 5 MODSEQ (8))",
		"a104 OK STORE completed")
	c.Expect("f", "FETCH 1:5 (FLAGS MODSEQ)",
		`* 1 FETCH (FLAGS (\Deleted) MODSEQ (7))`,
		`* 2 FETCH (FLAGS (\Deleted) MODSEQ (7))`,
		`* 3 FETCH (FLAGS () MODSEQ (4))`,
		`* 4 FETCH (FLAGS (\Deleted) MODSEQ (7))`,
		`* 5 FETCH (FLAGS (\Deleted $Processed) MODSEQ (8))`,
		"f OK FETCH completed")
}

// RFC 7162 §3.1.3 example 5: a STORE UNCHANGEDSINCE is the first
// CONDSTORE enabling command with a mailbox selected, so HIGHESTMODSEQ
// comes first (§3.1).
func TestCondstoreStoreExample5(t *testing.T) {
	env, _, _ := seeded(t, 5)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("c101", `STORE 5 (UNCHANGEDSINCE 6) -FLAGS.SILENT (\Deleted)`,
		"* OK [HIGHESTMODSEQ 6] Highest mod-sequence",
		"* 5 FETCH (UID 5 MODSEQ (6))", // nothing changed: MODSEQ stays (§3.1.11)
		"c101 OK STORE completed")
	c.Expect("c102", `STORE 5 (UNCHANGEDSINCE 6) +FLAGS.SILENT (\Deleted)`,
		"* 5 FETCH (UID 5 MODSEQ (7))",
		"c102 OK STORE completed")
}

// RFC 7162 §3.1.3 examples 6 and 10: messages changed by another session
// fail the test and are listed in MODIFIED (sequence numbers for STORE);
// the others are stored. The server sends the unsolicited FETCH that
// tells the client why (the RECOMMENDED behaviour of example 10).
// Example 7: without .SILENT, the failed message's flags are reported too.
func TestCondstoreStoreModified(t *testing.T) {
	env, _, w := seeded(t, 5)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	w.Expect("w1", `STORE 2 +FLAGS.SILENT (\Seen)`, "w1 OK STORE completed")     // MODSEQ 7
	w.Expect("w2", `STORE 4 +FLAGS.SILENT (\Answered)`, "w2 OK STORE completed") // MODSEQ 8
	c.Expect("d105", `STORE 4,3,2 (UNCHANGEDSINCE 6) +FLAGS.SILENT (\Deleted)`,
		"* 3 FETCH (UID 3 MODSEQ (9))",
		`* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (7))`,
		`* 4 FETCH (UID 4 FLAGS (\Answered) MODSEQ (8))`,
		"d105 OK [MODIFIED 2,4] Conditional STORE failed")
	c.Expect("d106", `STORE 1:2 (UNCHANGEDSINCE 6) +FLAGS (\Flagged)`,
		`* 1 FETCH (UID 1 FLAGS (\Flagged) MODSEQ (10))`,
		`* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (7))`,
		"d106 OK [MODIFIED 2] Conditional STORE failed")
	// The client retries with the MODSEQ it learnt.
	c.Expect("d107", `STORE 2 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\Flagged)`,
		"* 2 FETCH (UID 2 MODSEQ (11))",
		"d107 OK STORE completed")
	// The other session hears of all of it, without MODSEQ (it did not
	// enable CONDSTORE).
	w.Expect("w3", "NOOP",
		`* 1 FETCH (UID 1 FLAGS (\Flagged))`,
		`* 2 FETCH (UID 2 FLAGS (\Flagged \Seen))`,
		`* 3 FETCH (UID 3 FLAGS (\Deleted))`,
		"w3 OK NOOP completed")
}

// RFC 7162 §3.1.3: UID STORE lists UIDs in MODIFIED, not sequence
// numbers (here they differ after an expunge).
func TestCondstoreUIDStoreModified(t *testing.T) {
	env, _, w := seeded(t, 5)
	w.Expect("w1", `STORE 1 +FLAGS.SILENT (\Deleted)`, "w1 OK STORE completed")
	w.Expect("w2", "EXPUNGE", "* 1 EXPUNGE", "w2 OK EXPUNGE completed") // MODSEQ 8
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	w.Expect("w3", `STORE 3 +FLAGS.SILENT (\Seen)`, "w3 OK STORE completed") // UID 4, MODSEQ 9
	c.Expect("a1", `UID STORE 2:5 (UNCHANGEDSINCE 8) +FLAGS.SILENT (\Draft)`,
		"* 1 FETCH (UID 2 MODSEQ (10))",
		"* 2 FETCH (UID 3 MODSEQ (10))",
		"* 4 FETCH (UID 5 MODSEQ (10))",
		`* 3 FETCH (UID 4 FLAGS (\Seen) MODSEQ (9))`,
		"a1 OK [MODIFIED 4] Conditional STORE failed")
}

// RFC 7162 §3.1.3 example 8: UNCHANGEDSINCE 0 always fails, and the
// message is left alone.
func TestCondstoreUnchangedSinceZero(t *testing.T) {
	env, _, _ := seeded(t, 3)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	c.Expect("a102", "STORE 2 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)",
		"a102 OK [MODIFIED 2] Conditional STORE failed")
	c.Expect("a103", "UID STORE 1:* (UNCHANGEDSINCE 0) FLAGS.SILENT (\\Seen)",
		"a103 OK [MODIFIED 1:3] Conditional STORE failed")
	c.Expect("f", "FETCH 1:3 (FLAGS MODSEQ)",
		"* 1 FETCH (FLAGS () MODSEQ (2))",
		"* 2 FETCH (FLAGS () MODSEQ (3))",
		"* 3 FETCH (FLAGS () MODSEQ (4))",
		"f OK FETCH completed")
	// Modifier syntax (RFC 4466 §2.5, RFC 7162 §7).
	c.Expect("b1", "STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) +FLAGS (\\Seen)", "b1 BAD Syntax error: UNCHANGEDSINCE given twice")
	c.Expect("b2", "STORE 1 (FOO 1) +FLAGS (\\Seen)", "b2 BAD Syntax error: unknown STORE modifier FOO")
	c.Expect("b3", "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)", "b3 BAD Syntax error: expected SP, found ')'")
}

// RFC 7162 §3.1.4.1 example 12 (CHANGEDSINCE implies MODSEQ) and
// §3.1.4.2 example 13 (the MODSEQ item). Both are CONDSTORE enabling
// commands: the first one run with the mailbox selected reports
// HIGHESTMODSEQ (§3.1).
func TestCondstoreFetchExamples12And13(t *testing.T) {
	env, _, w := seeded(t, 5)
	w.Expect("w1", `STORE 2 +FLAGS.SILENT (\Seen)`, "w1 OK STORE completed")    // 7
	w.Expect("w2", `STORE 4 +FLAGS.SILENT (\Deleted)`, "w2 OK STORE completed") // 8
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("s100", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6)",
		"* OK [HIGHESTMODSEQ 8] Highest mod-sequence",
		`* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (7))`,
		`* 4 FETCH (UID 4 FLAGS (\Deleted) MODSEQ (8))`,
		"s100 OK FETCH completed")
	c.Expect("a", "FETCH 1:3 (MODSEQ)",
		"* 1 FETCH (MODSEQ (2))",
		"* 2 FETCH (MODSEQ (7))",
		"* 3 FETCH (MODSEQ (4))",
		"a OK FETCH completed")
	// Nothing changed since 8: no data at all.
	c.Expect("b", "FETCH 1:* (UID FLAGS) (CHANGEDSINCE 8)", "b OK FETCH completed")
	// The MODSEQ item with data that needs the store, in the asked order.
	got := c.Cmd("d", "FETCH 3 (MODSEQ RFC822.SIZE)")
	if !regexp.MustCompile(`^\* 3 FETCH \(MODSEQ \(4\) RFC822.SIZE \d+\)$`).MatchString(got[0]) {
		t.Errorf("FETCH MODSEQ RFC822.SIZE: %q", got)
	}
}

// RFC 7162 §3.2.4 and §3.1.11: a FETCH that sets \Seen reports the new
// flags with UID and MODSEQ once CONDSTORE is enabled.
func TestCondstoreFetchSetsSeen(t *testing.T) {
	env, _, _ := seeded(t, 2)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	got := c.Cmd("a", "FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)])")
	want := `* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (4) BODY[HEADER.FIELDS (SUBJECT)] {18}`
	if got[0] != want {
		t.Errorf("got %q, want first line %q", got, want)
	}
	// Without CONDSTORE, only FLAGS is added (RFC 3501 §6.4.5).
	c2 := env.DialLogin(t)
	c2.ExpectTagged("s", "SELECT INBOX", "s OK")
	got = c2.Cmd("a", "FETCH 1 (BODY[HEADER.FIELDS (SUBJECT)])")
	want = `* 1 FETCH (FLAGS (\Seen) BODY[HEADER.FIELDS (SUBJECT)] {18}`
	if got[0] != want {
		t.Errorf("got %q, want first line %q", got, want)
	}
}

// RFC 7162 §3.1.4.2 example 14: a flag change in one session reaches the
// others as an unsolicited FETCH, with MODSEQ only where CONDSTORE is
// enabled. (We have no shared folders: session 3 of the example is a
// third session of the same user, without CONDSTORE.)
func TestCondstoreUnsolicitedFetch(t *testing.T) {
	env, _, _ := seeded(t, 7)
	s1 := env.DialLogin(t)
	s1.ExpectTagged("A142", "SELECT INBOX (CONDSTORE)", "A142 OK")
	s2 := env.DialLogin(t)
	s2.ExpectTagged("C170", "SELECT INBOX (CONDSTORE)", "C170 OK")
	s3 := env.DialLogin(t)
	s3.ExpectTagged("D200", "SELECT INBOX", "D200 OK")
	s1.Expect("A160", `STORE 7 +FLAGS.SILENT (\Deleted \Answered)`,
		"* 7 FETCH (UID 7 MODSEQ (9))", "A160 OK STORE completed")
	s2.Expect("C180", "NOOP", `* 7 FETCH (UID 7 FLAGS (\Answered \Deleted) MODSEQ (9))`, "C180 OK NOOP completed")
	s3.Expect("D210", "NOOP", `* 7 FETCH (UID 7 FLAGS (\Answered \Deleted))`, "D210 OK NOOP completed")
	s1.Expect("A330", `STORE 7 -FLAGS.SILENT (\Answered)`,
		"* 7 FETCH (UID 7 MODSEQ (10))", "A330 OK STORE completed")
	s2.Expect("C360", "NOOP", `* 7 FETCH (UID 7 FLAGS (\Deleted) MODSEQ (10))`, "C360 OK NOOP completed")
	s3.Expect("D390", "NOOP", `* 7 FETCH (UID 7 FLAGS (\Deleted))`, "D390 OK NOOP completed")
	// Its own change is not reported back to s1 a second time.
	s1.Expect("A400", "NOOP", "A400 OK NOOP completed")
}

// RFC 7162 §3.1.5 examples 15 and 16, §3.1.6: SEARCH MODSEQ, with and
// without an entry name, appends the highest MODSEQ of what it returns.
func TestCondstoreSearchModSeq(t *testing.T) {
	env, _, _ := seeded(t, 5)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("a", `SEARCH MODSEQ "/flags/\\draft" all 4`,
		"* OK [HIGHESTMODSEQ 6] Highest mod-sequence",
		"* SEARCH 3 4 5 (MODSEQ 6)",
		"a OK SEARCH completed")
	c.Expect("t", "SEARCH OR NOT MODSEQ 1 LARGER 50000", "* SEARCH", "t OK SEARCH completed")
	c.Expect("u", "UID SEARCH MODSEQ 3 UID 1:3", "* SEARCH 2 3 (MODSEQ 4)", "u OK UID SEARCH completed")
	c.Expect("v", "SEARCH MODSEQ 0", "* SEARCH 1 2 3 4 5 (MODSEQ 6)", "v OK SEARCH completed")
	// No MODSEQ key: the plain response.
	c.Expect("w", "SEARCH 1:2", "* SEARCH 1 2", "w OK SEARCH completed")
	c.Expect("b1", `SEARCH MODSEQ "/flags/\\draft" 4`, "b1 BAD Syntax error: MODSEQ entry type must be priv, shared or all")
	c.Expect("b2", `SEARCH MODSEQ "/flags/\\draft" some 4`, "b2 BAD Syntax error: MODSEQ entry type must be priv, shared or all")
	c.Expect("b3", `SEARCH MODSEQ "/nope" all 4`, "b3 BAD Syntax error: MODSEQ entry name must be /flags/<flag>")
}

// RFC 7162 §3.1.10 example 19 and RFC 4731 §3.2: ESEARCH carries MODSEQ:
// of the one message for MIN or MAX alone, of both for MIN MAX, of all
// for ALL or COUNT.
func TestCondstoreESearchModSeq(t *testing.T) {
	env, _, w := seeded(t, 5)
	w.Expect("w1", `STORE 3 +FLAGS.SILENT (\Seen)`, "w1 OK STORE completed") // 7
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	c.Expect("a", "SEARCH RETURN (ALL) MODSEQ 4", `* ESEARCH (TAG "a") ALL 3:5 MODSEQ 7`, "a OK SEARCH completed")
	c.Expect("a1", "SEARCH RETURN (MIN) MODSEQ 4", `* ESEARCH (TAG "a1") MIN 3 MODSEQ 7`, "a1 OK SEARCH completed")
	c.Expect("a2", "SEARCH RETURN (MAX) MODSEQ 4", `* ESEARCH (TAG "a2") MAX 5 MODSEQ 6`, "a2 OK SEARCH completed")
	c.Expect("a3", "SEARCH RETURN (MIN MAX) MODSEQ 5", `* ESEARCH (TAG "a3") MIN 3 MAX 5 MODSEQ 7`, "a3 OK SEARCH completed")
	c.Expect("a4", "UID SEARCH RETURN (MAX COUNT) MODSEQ 5", `* ESEARCH (TAG "a4") UID MAX 5 COUNT 3 MODSEQ 7`, "a4 OK UID SEARCH completed")
	c.Expect("a5", "SEARCH RETURN (COUNT) MODSEQ 8", `* ESEARCH (TAG "a5") COUNT 0`, "a5 OK SEARCH completed")
}

// RFC 7162 §3.1.7 example 17: STATUS HIGHESTMODSEQ, also in LIST-STATUS
// (RFC 5819); 1 for a new mailbox.
func TestCondstoreStatus(t *testing.T) {
	env, _, _ := seeded(t, 3)
	c := env.DialLogin(t)
	c.Expect("A042", "STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)",
		"* STATUS INBOX (UIDNEXT 4 MESSAGES 3 HIGHESTMODSEQ 4)", "A042 OK STATUS completed")
	c.Expect("A043", `LIST "" Sent RETURN (STATUS (HIGHESTMODSEQ))`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		"* STATUS Sent (HIGHESTMODSEQ 1)",
		"A043 OK LIST completed")
	// STATUS HIGHESTMODSEQ enabled CONDSTORE: SELECT reports it.
	got := c.Cmd("s", "SELECT INBOX")
	if got[len(got)-2] != "* OK [HIGHESTMODSEQ 4] Highest mod-sequence" {
		t.Errorf("SELECT after STATUS HIGHESTMODSEQ: %q", got)
	}
}

// No MODSEQ data ever reaches a client that issued no CONDSTORE enabling
// command, whatever others do.
func TestCondstoreNothingUnasked(t *testing.T) {
	env, uv, w := seeded(t, 3)
	c := env.DialLogin(t)
	expectLines(t, c, "a", "SELECT INBOX", selectResp("a", uv, 3, 4, 0))
	w.Expect("w1", "ENABLE CONDSTORE", "w1 BAD ENABLE not allowed in the selected state")
	w.Expect("w2", `STORE 1 +FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Seen))`, "w2 OK STORE completed")
	w.Expect("w3", `UID STORE 3 +FLAGS.SILENT (\Deleted)`, "w3 OK STORE completed")
	w.Expect("w4", "EXPUNGE", "* 3 EXPUNGE", "w4 OK EXPUNGE completed")
	c.Expect("b", `STORE 2 +FLAGS (\Flagged)`,
		`* 2 FETCH (FLAGS (\Flagged))`,
		`* 1 FETCH (UID 1 FLAGS (\Seen))`,
		"b OK STORE completed")
	c.Expect("d", "NOOP", "* 3 EXPUNGE", "d OK NOOP completed")
	c.Expect("e", "UID FETCH 1:* (FLAGS)",
		`* 1 FETCH (UID 1 FLAGS (\Seen))`,
		`* 2 FETCH (UID 2 FLAGS (\Flagged))`,
		"e OK FETCH completed")
	uvLine := statusUV(t, c, "Sent")
	c.Expect("f", "EXAMINE Sent",
		"* OK [CLOSED] Previous mailbox closed", // RFC 7162 §3.2.11: whatever was enabled
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS ()] No permanent flags permitted`,
		"* 0 EXISTS", "* 0 RECENT",
		uvLine,
		"* OK [UIDNEXT 1] Predicted next UID",
		"f OK [READ-ONLY] EXAMINE completed")
}

func statusUV(t *testing.T, c *imaptest.Conn, box string) string {
	t.Helper()
	got := c.Cmd("uv", "STATUS "+box+" (UIDVALIDITY)")
	var uv uint32
	if _, err := fmt.Sscanf(got[0], "* STATUS "+box+" (UIDVALIDITY %d)", &uv); err != nil {
		t.Fatalf("STATUS: %q", got)
	}
	return fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", uv)
}

// While expunges are held back (RFC 3501 §7.4.1: none during FETCH, STORE
// or SEARCH), MODSEQs sent above them are followed by HIGHESTMODSEQ
// capped below them (RFC 7162 §3.2); the command that reports them gives
// the new value.
func TestCondstoreHeldExpungeCapsHighestModSeq(t *testing.T) {
	env, _, w := seeded(t, 4)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX (CONDSTORE)", "s OK")
	w.Expect("w1", `STORE 3 +FLAGS.SILENT (\Deleted)`, "w1 OK STORE completed") // 6
	w.Expect("w2", "EXPUNGE", "* 3 EXPUNGE", "w2 OK EXPUNGE completed")         // 7
	c.Expect("a", `STORE 1 +FLAGS.SILENT (\Seen)`,
		"* 1 FETCH (UID 1 MODSEQ (8))",
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"a OK STORE completed")
	// Still held during FETCH.
	c.Expect("b", "FETCH 1 (MODSEQ)",
		"* 1 FETCH (MODSEQ (8))",
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"b OK FETCH completed")
	// STATUS of the selected mailbox does not leak the value past it.
	c.Expect("c", "STATUS INBOX (HIGHESTMODSEQ)", "* STATUS INBOX (HIGHESTMODSEQ 5)", "* 3 EXPUNGE",
		"c OK [HIGHESTMODSEQ 8] STATUS completed")
	c.Expect("d", "NOOP", "d OK NOOP completed")
}

// LIST ... RETURN (STATUS (HIGHESTMODSEQ)) is STATUS (HIGHESTMODSEQ) for
// each mailbox listed, so it enables CONDSTORE like STATUS does (RFC 7162
// §3.1): a selected session gets HIGHESTMODSEQ, and MODSEQ in later FETCH
// responses. A FETCH refused with BAD enables nothing.
func TestCondstoreEnabledByListStatus(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	appendMsg(t, c, "a1", "INBOX", "", testMsg)
	c.ExpectTagged("a2", "SELECT INBOX", "a2 OK")
	c.Expect("a3", "FETCH 5 (MODSEQ)", "a3 BAD Invalid message sequence number")
	// Still not enabled: a flag change carries no MODSEQ.
	c.Expect("a4", "STORE 1 +FLAGS (\\Seen)", `* 1 FETCH (FLAGS (\Seen \Recent))`, "a4 OK STORE completed")
	got := c.Cmd("a5", `LIST "" "INBOX" RETURN (STATUS (HIGHESTMODSEQ MESSAGES))`)
	if len(got) != 4 || !strings.HasPrefix(got[0], "* OK [HIGHESTMODSEQ ") ||
		got[1] != `* LIST (\HasNoChildren) "/" INBOX` ||
		!strings.HasPrefix(got[2], "* STATUS INBOX (HIGHESTMODSEQ ") || got[3] != "a5 OK LIST completed" {
		t.Fatalf("LIST-STATUS: %q", got)
	}
	got = c.Cmd("a6", "STORE 1 -FLAGS (\\Seen)")
	if len(got) != 2 || !strings.HasPrefix(got[0], "* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ (") {
		t.Fatalf("STORE after LIST-STATUS: %q", got)
	}
}

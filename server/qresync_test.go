package server_test

import (
	"fmt"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/store/sqlite"
)

// QRESYNC (RFC 7162 §3.2): the RFC's server-side examples adapted to our
// data (see condstore_test.go for seeded), the state errors, and the known
// ways to get it wrong.

// startWithStore is imaptest.Start with store options, for tests that
// need tombstones to be purged.
func startWithStore(t *testing.T, so sqlite.Options) *imaptest.Env {
	t.Helper()
	return imaptest.StartStore(t, so, nil)
}

func qresyncConn(t *testing.T, env *imaptest.Env) *imaptest.Conn {
	t.Helper()
	c := env.DialLogin(t)
	c.Expect("e", "ENABLE QRESYNC", "* ENABLED QRESYNC", "e OK ENABLE completed")
	return c
}

// expungeUIDs expunges the given UIDs from w's selected INBOX.
func expungeUIDs(t *testing.T, w *imaptest.Conn, uids string) {
	t.Helper()
	w.ExpectTagged("x1", `UID STORE `+uids+` +FLAGS.SILENT (\Deleted)`, "x1 OK")
	w.ExpectTagged("x2", "UID EXPUNGE "+uids, "x2 OK")
}

// RFC 7162 §3.2.3, §3.2.5, §3.2.6: the state errors.
func TestQresyncStateErrors(t *testing.T) {
	env, uv, _ := seeded(t, 3)
	c := env.DialLogin(t)
	sel := fmt.Sprintf("SELECT INBOX (QRESYNC (%d 2))", uv)
	c.Expect("a1", sel, "a1 BAD QRESYNC parameter needs ENABLE QRESYNC first")
	c.Expect("a2", "ENABLE CONDSTORE", "* ENABLED CONDSTORE", "a2 OK ENABLE completed")
	c.Expect("a3", sel, "a3 BAD QRESYNC parameter needs ENABLE QRESYNC first")
	c.ExpectTagged("a4", "SELECT INBOX", "a4 OK")
	c.Expect("a5", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 2 VANISHED)", "a5 BAD VANISHED needs ENABLE QRESYNC first")
	c.Expect("a6", "CHECK", "a6 OK CHECK completed")
	// §3.2.5: after the BAD "the mailbox remains unselected"; RFC 3501
	// §6.3.1: a failed SELECT leaves no mailbox selected. CLOSED (§3.2.11)
	// marks the implicit close, as Dovecot does.
	c.Expect("a7", sel, "* OK [CLOSED] Previous mailbox closed", "a7 BAD QRESYNC parameter needs ENABLE QRESYNC first")
	c.Expect("a8", "CHECK", "a8 BAD CHECK not allowed in the authenticated state")

	c = env.DialLogin(t)
	c.Expect("b1", "ENABLE QRESYNC CONDSTORE X-UNKNOWN", "* ENABLED QRESYNC CONDSTORE", "b1 OK ENABLE completed")
	c.Expect("b2", "ENABLE CONDSTORE QRESYNC", "* ENABLED", "b2 OK ENABLE completed")
	c.ExpectTagged("b3", "SELECT INBOX", "b3 OK")
	c.Expect("b4", "FETCH 1:* (FLAGS) (CHANGEDSINCE 2 VANISHED)", "b4 BAD VANISHED and REPORTEXPUNGES are allowed with UID FETCH only")
	c.Expect("b5", "UID FETCH 1:* (FLAGS) (VANISHED)", "b5 BAD VANISHED needs CHANGEDSINCE")
	c.Expect("b6", "UID FETCH 1:* (FLAGS) (VANISHED VANISHED)", "b6 BAD Syntax error: FETCH modifier VANISHED given twice")
	for i, bad := range []string{
		"SELECT INBOX (QRESYNC)",
		"SELECT INBOX (QRESYNC ())",
		"SELECT INBOX (QRESYNC (0 2))",
		fmt.Sprintf("SELECT INBOX (QRESYNC (%d))", uv),
		fmt.Sprintf("SELECT INBOX (QRESYNC (%d 2 1:*))", uv),
		fmt.Sprintf("SELECT INBOX (QRESYNC (%d 2 1:3 (1:2 1)))", uv),
		fmt.Sprintf("SELECT INBOX (QRESYNC (%d 2 1:3 (1:* 1:2)))", uv),
		fmt.Sprintf("SELECT INBOX (QRESYNC (%d 2) QRESYNC (%d 2))", uv, uv),
	} {
		// Each one after a good SELECT: the BAD deselects first, with
		// CLOSED (§3.2.5, §3.2.11).
		c.ExpectTagged(fmt.Sprintf("s%d", i), "SELECT INBOX", fmt.Sprintf("s%d OK", i))
		tag := fmt.Sprintf("c%d", i)
		got := c.Cmd(tag, bad)
		if len(got) != 2 || got[0] != "* OK [CLOSED] Previous mailbox closed" || got[1][:len(tag)+15] != tag+" BAD Syntax err" {
			t.Errorf("%s: %q", bad, got)
		}
		c.Expect(fmt.Sprintf("d%d", i), "CHECK", fmt.Sprintf("d%d BAD CHECK not allowed in the authenticated state", i))
	}
	// Not selected: nothing to close.
	c.Expect("e1", "SELECT INBOX (QRESYNC)", "e1 BAD Syntax error: expected SP, found ')'")
}

// RFC 7162 §3.2.5: a UIDVALIDITY that does not match: the mailbox opens as
// if no parameter were given (HIGHESTMODSEQ included, since QRESYNC
// enables CONDSTORE).
func TestQresyncUIDValidityMismatch(t *testing.T) {
	env, uv, w := seeded(t, 5)
	expungeUIDs(t, w, "2")
	c := qresyncConn(t, env)
	expectLines(t, c, "A02", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 2 1:5))", uv+1),
		selectResp("A02", uv, 4, 6, 8))
}

// RFC 7162 §3.2.5.1: the example, with CLOSED (§3.2.11) since a mailbox
// was selected, VANISHED (EARLIER) limited to the known UIDs, and FETCH
// for the known messages changed since the client's modseq.
func TestQresyncSelectExample(t *testing.T) {
	env, uv, w := seeded(t, 10) // HIGHESTMODSEQ 11
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT Sent", "s OK")
	expungeUIDs(t, w, "2,4:5,9")                                                  // 12, 13
	w.Expect("w1", `UID STORE 7 +FLAGS.SILENT (\Seen)`, "w1 OK STORE completed")  // 14
	w.Expect("w2", `UID STORE 10 +FLAGS.SILENT (\Seen)`, "w2 OK STORE completed") // 15
	want := selectResp("A03", uv, 6, 11, 15,
		"* VANISHED (EARLIER) 2,4:5",
		`* 4 FETCH (UID 7 FLAGS (\Seen) MODSEQ (14))`)
	want = append([]string{"* OK [CLOSED] Previous mailbox closed"}, want...)
	expectLines(t, c, "A03", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 11 1:8))", uv), want)

	// Without known UIDs: 1:UIDNEXT-1, so 9 and 10 too.
	c = qresyncConn(t, env)
	expectLines(t, c, "A04", fmt.Sprintf("EXAMINE INBOX (QRESYNC (%d 11))", uv),
		examine(selectResp("A04", uv, 6, 11, 15,
			"* VANISHED (EARLIER) 2,4:5,9",
			`* 4 FETCH (UID 7 FLAGS (\Seen) MODSEQ (14))`,
			`* 6 FETCH (UID 10 FLAGS (\Seen) MODSEQ (15))`)))

	// Up to date: nothing but the usual responses.
	c = qresyncConn(t, env)
	expectLines(t, c, "A05", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 15 1:10))", uv),
		selectResp("A05", uv, 6, 11, 15))
}

// examine turns selectResp's lines into EXAMINE's.
func examine(l []string) []string {
	out := append([]string(nil), l...)
	out[1] = "* OK [PERMANENTFLAGS ()] No permanent flags permitted"
	last := out[len(out)-1]
	out[len(out)-1] = last[:len(last)-len("OK [READ-WRITE] SELECT completed")] + "OK [READ-ONLY] EXAMINE completed"
	return out
}

// RFC 7162 §3.2.5.2 and §3.2.6 (the note on <minmodseq>): when the
// tombstones since the client's modseq were purged, every known UID that
// does not exist is reported; sequence match data narrows that to the
// UIDs above the last matching pair. A UID that exists is never reported.
func TestQresyncPurgedTombstonesAndSeqMatch(t *testing.T) {
	env := startWithStore(t, sqlite.Options{TombstoneMaxCount: 1})
	uv := seed(t, env, 10) // HIGHESTMODSEQ 11
	w := selectedW(t, env)
	expungeUIDs(t, w, "2") // 12, 13: the client saw this one
	// The client's cache: HIGHESTMODSEQ 13, UIDs 1,3:10.
	expungeUIDs(t, w, "7") // 14, 15
	expungeUIDs(t, w, "9") // 16, 17: only this tombstone is kept
	c := qresyncConn(t, env)
	expectLines(t, c, "A04", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 13 1:10))", uv),
		selectResp("A04", uv, 7, 11, 17, "* VANISHED (EARLIER) 2,7,9"))
	c.Expect("f", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 13 VANISHED)",
		"* VANISHED (EARLIER) 2,7,9", "f OK FETCH completed")
	// The client's sequence numbers 1:5 were UIDs 1,3:6: they still are.
	c = qresyncConn(t, env)
	expectLines(t, c, "B04", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 13 1:10 (1:5 1,3:6)))", uv),
		selectResp("B04", uv, 7, 11, 17, "* VANISHED (EARLIER) 7,9"))
	// A pair that no longer matches stops the walk: (6,7) is wrong, so
	// (7,8) is not used.
	c = qresyncConn(t, env)
	expectLines(t, c, "C04", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 13 1:10 (2,6:7 3,7:8)))", uv),
		selectResp("C04", uv, 7, 11, 17, "* VANISHED (EARLIER) 7,9"))
	// The tombstone that is kept answers exactly.
	c = qresyncConn(t, env)
	expectLines(t, c, "D04", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 16 1:10))", uv),
		selectResp("D04", uv, 7, 11, 17, "* VANISHED (EARLIER) 9"))
}

// RFC 7162 §3.2.6: the example: VANISHED (EARLIER) before the FETCH
// responses, only UIDs of the set, and the modifiers in either order.
func TestQresyncUIDFetchVanished(t *testing.T) {
	env, _, w := seeded(t, 12)                                                      // HIGHESTMODSEQ 13
	expungeUIDs(t, w, "1,3,5,11")                                                   // 14, 15
	w.Expect("w1", `UID STORE 4 +FLAGS.SILENT (\Seen)`, "w1 OK STORE completed")    // 16
	w.Expect("w2", `UID STORE 6 +FLAGS.SILENT (\Deleted)`, "w2 OK STORE completed") // 17
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("s100", "UID FETCH 3:10 (FLAGS) (CHANGEDSINCE 13 VANISHED)",
		"* VANISHED (EARLIER) 3,5",
		`* 2 FETCH (UID 4 FLAGS (\Seen) MODSEQ (16))`,
		`* 3 FETCH (UID 6 FLAGS (\Deleted) MODSEQ (17))`,
		"s100 OK FETCH completed")
	c.Expect("s101", "UID FETCH 3:10 (FLAGS) (VANISHED CHANGEDSINCE 16)",
		`* 3 FETCH (UID 6 FLAGS (\Deleted) MODSEQ (17))`,
		"s101 OK FETCH completed")
}

// The known failure modes: the expunge of the highest UID is reported for
// "1:*" ("*" is UIDNEXT-1, not the highest UID left); nothing vanished
// means no VANISHED response at all; an empty mailbox never yields
// "VANISHED 0" or "1:0".
func TestQresyncVanishedEdges(t *testing.T) {
	env, _, w := seeded(t, 5) // HIGHESTMODSEQ 6
	expungeUIDs(t, w, "5")    // 7, 8
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("a", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)",
		"* VANISHED (EARLIER) 5", "a OK FETCH completed")
	c.Expect("b", "UID FETCH 4:* (FLAGS) (CHANGEDSINCE 6 VANISHED)",
		"* VANISHED (EARLIER) 5", "b OK FETCH completed")
	c.Expect("d", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 8 VANISHED)", "d OK FETCH completed")
	c.Expect("e", "UID FETCH 1:4 (FLAGS) (CHANGEDSINCE 6 VANISHED)", "e OK FETCH completed")
	// "6:*" is 5:6 for VANISHED, 4:6 for the FETCH (RFC 3501 §9).
	c.Expect("f", "UID FETCH 6:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
		"* VANISHED (EARLIER) 5", "* 4 FETCH (UID 4 FLAGS () MODSEQ (5))", "f OK FETCH completed")
	c.ExpectTagged("g", "SELECT Sent", "g OK")
	c.Expect("h", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "h OK FETCH completed")
	c.Expect("i", "UID FETCH 1:* (FLAGS) (REPORTEXPUNGES)", "i OK FETCH completed")
	expectLines(t, c, "j", fmt.Sprintf("SELECT Sent (QRESYNC (%d 1))", sentUV(t, c)),
		append([]string{"* OK [CLOSED] Previous mailbox closed"}, selectSent("j", sentUV(t, c))...))
}

func sentUV(t *testing.T, c *imaptest.Conn) uint32 {
	t.Helper()
	var uv uint32
	fmt.Sscanf(statusUV(t, c, "Sent"), "* OK [UIDVALIDITY %d]", &uv)
	return uv
}

func selectSent(tag string, uv uint32) []string {
	return []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		"* 0 EXISTS", "* 0 RECENT",
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", uv),
		"* OK [UIDNEXT 1] Predicted next UID",
		"* OK [HIGHESTMODSEQ 1] Highest mod-sequence",
		tag + " OK [READ-WRITE] SELECT completed",
	}
}

// RFC 7162 §3.2.7, §3.2.9, §3.2.10.2: after ENABLE QRESYNC, EXPUNGE, UID
// EXPUNGE, MOVE and expunges by others are reported with VANISHED, and
// EXPUNGE and UID EXPUNGE give the new HIGHESTMODSEQ. A client that did
// not enable QRESYNC gets EXPUNGE.
func TestQresyncLiveVanished(t *testing.T) {
	env, _, w := seeded(t, 11) // HIGHESTMODSEQ 12
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("a1", `STORE 3:4,7,11 +FLAGS.SILENT (\Deleted)`,
		"* 3 FETCH (UID 3 MODSEQ (13))",
		"* 4 FETCH (UID 4 MODSEQ (13))",
		"* 7 FETCH (UID 7 MODSEQ (13))",
		"* 11 FETCH (UID 11 MODSEQ (13))",
		"a1 OK STORE completed")
	c.Expect("B202", "EXPUNGE", "* VANISHED 3:4,7,11", "B202 OK [HIGHESTMODSEQ 14] EXPUNGE completed")
	w.Expect("w1", "NOOP",
		"* 11 EXPUNGE", "* 7 EXPUNGE", "* 4 EXPUNGE", "* 3 EXPUNGE",
		"w1 OK NOOP completed") // the flags of the gone ones are not reported
}

// RFC 7162 §3.2.9 (UID EXPUNGE), §3.2.10.2 (expunges by others, only UIDs
// the client was told of), RFC 6851 (MOVE).
func TestQresyncLiveVanishedOthers(t *testing.T) {
	env, _, w := seeded(t, 6) // HIGHESTMODSEQ 7
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("a1", `UID STORE 1:3 +FLAGS.SILENT (\Deleted)`,
		"* 1 FETCH (UID 1 MODSEQ (8))", "* 2 FETCH (UID 2 MODSEQ (8))", "* 3 FETCH (UID 3 MODSEQ (8))",
		"a1 OK STORE completed")
	c.Expect("a2", "UID EXPUNGE 2:3", "* VANISHED 2:3", "a2 OK [HIGHESTMODSEQ 9] EXPUNGE completed")
	c.Expect("a3", "UID EXPUNGE 2:3", "a3 OK UID EXPUNGE completed")
	// Expunged in another session.
	w.ExpectTagged("w1", "UID EXPUNGE 1", "w1 OK")
	c.Expect("a4", "NOOP", "* VANISHED 1", "a4 OK NOOP completed")
	// A message that came and went before this session heard of it is
	// never announced: neither EXISTS nor VANISHED.
	if l := appendMsg(t, w, "w2", "INBOX", `\Deleted`, testMsg); l[:5] != "w2 OK" {
		t.Fatal(l)
	}
	w.ExpectTagged("w3", "UID EXPUNGE 7", "w3 OK")
	c.Expect("a5", "NOOP", "a5 OK NOOP completed")
	// MOVE.
	c.Expect("a6", "UID MOVE 4 Archive",
		"* OK [COPYUID "+fmt.Sprint(archiveUV(t, c))+" 4 1] Moved",
		"* VANISHED 4", "a6 OK [HIGHESTMODSEQ 13] MOVE completed") // RFC 6851 §4.4
	c.Expect("a7", "UID FETCH 1:* (FLAGS)",
		"* 1 FETCH (UID 5 FLAGS ())", "* 2 FETCH (UID 6 FLAGS ())", "a7 OK FETCH completed")
}

func archiveUV(t *testing.T, c *imaptest.Conn) uint32 {
	t.Helper()
	got := c.Cmd("auv", "STATUS Archive (UIDVALIDITY)")
	var uv uint32
	fmt.Sscanf(got[0], "* STATUS Archive (UIDVALIDITY %d)", &uv)
	return uv
}

// RFC 7162 §3.2 and §6, the example: MODSEQs sent while a VANISHED with a
// lower mod-sequence is held back (STORE may not report it) are followed
// by HIGHESTMODSEQ below it; the command that finally reports it gives the
// new value.
func TestQresyncHeldVanished(t *testing.T) {
	env, _, w := seeded(t, 5) // HIGHESTMODSEQ 6
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	expungeUIDs(t, w, "3") // 7, 8
	c.Expect("A150", `STORE 1:2 +FLAGS.SILENT (\Seen)`,
		"* 1 FETCH (UID 1 MODSEQ (9))",
		"* 2 FETCH (UID 2 MODSEQ (9))",
		"* OK [HIGHESTMODSEQ 6] Highest mod-sequence",
		"A150 OK STORE completed")
	c.Expect("A151", `STORE 4 +FLAGS.SILENT (\Seen)`,
		"* 4 FETCH (UID 4 MODSEQ (10))",
		"* OK [HIGHESTMODSEQ 6] Highest mod-sequence",
		"A151 OK STORE completed")
	c.Expect("A152", "NOOP", "* VANISHED 3", "A152 OK [HIGHESTMODSEQ 10] NOOP completed")
	c.Expect("A153", "NOOP", "A153 OK NOOP completed")
	// The SELECT after a reconnect with the capped value gets the expunge.
	c2 := qresyncConn(t, env)
	c2.ExpectTagged("s", "SELECT INBOX", "s OK")
	c2.Expect("b", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)",
		"* VANISHED (EARLIER) 3",
		`* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (9))`,
		`* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (9))`,
		`* 3 FETCH (UID 4 FLAGS (\Seen) MODSEQ (10))`,
		"b OK FETCH completed")
}

// RFC 7162 §3.2.10.2: no VANISHED during a UID SEARCH that uses sequence
// numbers; it comes with the next command.
func TestQresyncUIDSearchWithSequenceNumbers(t *testing.T) {
	env, _, w := seeded(t, 4)
	c := qresyncConn(t, env)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	expungeUIDs(t, w, "2")
	c.Expect("a", "UID SEARCH 1:3", "* SEARCH 1 3", "a OK UID SEARCH completed")
	c.Expect("b", "UID SEARCH UID 1:3", "* SEARCH 1 3", "* VANISHED 2", "b OK [HIGHESTMODSEQ 7] UID SEARCH completed")
}

package server_test

import "testing"

// The EXPUNGED draft (draft-melnikov-imap-expunged-01): the REPORTEXPUNGES
// UID FETCH modifier and the EXPUNGED response. docs/reconnect.md records
// how we read the draft where it contradicts itself or the reconnect draft.

// §3.1: REPORTEXPUNGES only with UID FETCH; without CHANGEDSINCE every UID
// of the set that no longer exists ("*" is UIDNEXT-1), after the FETCH
// responses as in the draft's examples; with CHANGEDSINCE only those
// expunged since.
func TestExpungedReportExpunges(t *testing.T) {
	env, _, w := seeded(t, 12)                                                      // HIGHESTMODSEQ 13
	expungeUIDs(t, w, "1:3,5")                                                      // 14, 15
	w.Expect("w1", `UID STORE 6 +FLAGS.SILENT (\Deleted)`, "w1 OK STORE completed") // 16
	expungeUIDs(t, w, "9,11:12")                                                    // 17, 18
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("a", "FETCH 1:* (FLAGS) (REPORTEXPUNGES)", "a BAD VANISHED and REPORTEXPUNGES are allowed with UID FETCH only")
	// The draft's first example: every expunged UID of 1:*.
	c.Expect("s100", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 13 REPORTEXPUNGES)",
		"* OK [HIGHESTMODSEQ 18] Highest mod-sequence",
		`* 2 FETCH (UID 6 FLAGS (\Deleted) MODSEQ (16))`,
		"* EXPUNGED 1:3,5,9,11:12",
		"s100 OK FETCH completed")
	// Since 16: only those expunged after it; the highest UID is there.
	c.Expect("s101", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 16 REPORTEXPUNGES)",
		"* EXPUNGED 9,11:12",
		"s101 OK FETCH completed")
	// Without CHANGEDSINCE: every UID of the set that does not exist.
	c.Expect("s102", "UID FETCH 4:10 (UID) (REPORTEXPUNGES)",
		"* 1 FETCH (UID 4)",
		"* 2 FETCH (UID 6)",
		"* 3 FETCH (UID 7)",
		"* 4 FETCH (UID 8)",
		"* 5 FETCH (UID 10)",
		"* EXPUNGED 5,9",
		"s102 OK FETCH completed")
	// Nothing gone: no EXPUNGED response.
	c.Expect("s103", "UID FETCH 7:8 (UID) (REPORTEXPUNGES)",
		"* 3 FETCH (UID 7)", "* 4 FETCH (UID 8)", "s103 OK FETCH completed")
	c.Expect("s104", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 18 REPORTEXPUNGES)", "s104 OK FETCH completed")
}

// §3.2: once the client used REPORTEXPUNGES, expunges are reported with
// EXPUNGED (UIDs, no "*"), by EXPUNGE and UID EXPUNGE and for other
// sessions' expunges; a client that did not use it keeps EXPUNGE, and one
// that enabled QRESYNC gets VANISHED.
func TestExpungedLive(t *testing.T) {
	env, _, w := seeded(t, 11)
	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	q := qresyncConn(t, env)
	q.ExpectTagged("s", "SELECT INBOX", "s OK")
	plain := env.DialLogin(t)
	plain.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.Expect("a", "UID FETCH 1 (UID) (REPORTEXPUNGES)", "* 1 FETCH (UID 1)", "a OK FETCH completed")
	// The draft's §3.2 example: UIDs 3, 4, 7 and 11 have \Deleted.
	c.Expect("b", `STORE 3:4,7,11 +FLAGS.SILENT (\Deleted)`, "b OK STORE completed")
	c.Expect("A202", "EXPUNGE", "* EXPUNGED 3:4,7,11", "A202 OK EXPUNGE completed")
	plain.Expect("p", "NOOP",
		"* 11 EXPUNGE", "* 7 EXPUNGE", "* 4 EXPUNGE", "* 3 EXPUNGE", "p OK NOOP completed")
	q.Expect("q", "NOOP", "* VANISHED 3:4,7,11", "q OK NOOP completed")
	// Others' expunges; sequence numbers follow (the draft says EXPUNGED
	// renumbers like EXPUNGE).
	expungeUIDs(t, w, "5")
	c.Expect("d", "NOOP", "* EXPUNGED 5", "d OK NOOP completed")
	c.Expect("f", "FETCH 1:* (UID)",
		"* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 6)", "* 4 FETCH (UID 8)",
		"* 5 FETCH (UID 9)", "* 6 FETCH (UID 10)", "f OK FETCH completed")
}

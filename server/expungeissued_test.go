package server_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// Messages expunged by another session that this one has not been told
// of yet (RFC 2180 §4, RFC 5530 EXPUNGEISSUED; docs/multiaccess.md). A
// sequence-number FETCH answers for the messages that remain and ends in
// NO [EXPUNGEISSUED] (RFC 2180 §4.1.2); a STORE changes the messages that
// remain, sends nothing about the gone ones and ends in OK
// [EXPUNGEISSUED] (§4.2.1, as Dovecot); neither sends EXPUNGE (RFC 3501
// §7.4.1). COPY and MOVE copy nothing (RFC 2180 §4.4.1); UID FETCH and
// UID STORE leave the missing UIDs out without complaint (RFC 3501
// §6.4.8).

var copyUID3RE = regexp.MustCompile(`^c4 OK \[COPYUID \d+ 3 1\] COPY completed$`)

const (
	expungeIssued   = "NO [EXPUNGEISSUED] Some of the requested messages no longer exist"
	storeGoneIssued = "OK [EXPUNGEISSUED] Some of the requested messages no longer exist"
)

// expungedUnseen seeds INBOX with four messages (no \Recent anywhere),
// selects it in a and in b, and has b expunge UID 2: a still numbers
// UIDs 1-4 as 1-4 and has not been told.
func expungedUnseen(t *testing.T) (env *imaptest.Env, a, b *imaptest.Conn) {
	t.Helper()
	env = imaptest.Start(t, nil)
	seed(t, env, 4)
	a = env.DialLogin(t)
	a.ExpectTagged("as", "SELECT INBOX", "as OK")
	b = env.DialLogin(t)
	b.ExpectTagged("bs", "SELECT INBOX", "bs OK")
	b.Expect("b1", `STORE 2 +FLAGS.SILENT (\Deleted)`, "b1 OK STORE completed")
	b.Expect("b2", "EXPUNGE", "* 2 EXPUNGE", "b2 OK EXPUNGE completed")
	return env, a, b
}

func TestExpungeIssuedFetch(t *testing.T) {
	_, a, _ := expungedUnseen(t)
	// The reported case: only the gone message.
	a.Expect("f1", "FETCH 2 (BODY[] FLAGS)", "f1 "+expungeIssued)
	// The whole message, read without the part tree: the same.
	a.Expect("f1p", "FETCH 2 BODY.PEEK[]", "f1p "+expungeIssued)
	// From the in-memory index: the others answer.
	a.Expect("f2", "FETCH 1:3 (FLAGS)",
		"* 1 FETCH (FLAGS ())",
		"* 3 FETCH (FLAGS ())",
		"f2 "+expungeIssued)
	// From the store (sizes).
	a.Expect("f3", "FETCH 2:4 (UID RFC822.SIZE)",
		"* 3 FETCH (UID 3 RFC822.SIZE 81)",
		"* 4 FETCH (UID 4 RFC822.SIZE 81)",
		"f3 "+expungeIssued)
	// A non-PEEK section sets \Seen on the message that remains.
	a.Expect("f4", "FETCH 2:3 (BODY[TEXT])",
		`* 3 FETCH (FLAGS (\Seen) BODY[TEXT] {9}`,
		"Hi Bob.",
		")",
		"f4 "+expungeIssued)
	// Messages that all exist: OK, still no EXPUNGE.
	a.Expect("f5", "FETCH 3:4 (FLAGS)",
		`* 3 FETCH (FLAGS (\Seen))`,
		"* 4 FETCH (FLAGS ())",
		"f5 OK FETCH completed")
	// UID FETCH leaves the UID out and may report the expunge (RFC 3501
	// §7.4.1 forbids it during FETCH, STORE and SEARCH only).
	a.Expect("f6", "UID FETCH 1:3 (FLAGS)",
		"* 1 FETCH (UID 1 FLAGS ())",
		`* 3 FETCH (UID 3 FLAGS (\Seen))`,
		"* 2 EXPUNGE",
		"f6 OK FETCH completed")
	a.Expect("f7", "NOOP", "f7 OK NOOP completed")
	a.Expect("f8", "FETCH 2 (UID)", "* 2 FETCH (UID 3)", "f8 OK FETCH completed")
}

// With CHANGEDSINCE the gone message is noticed too.
func TestExpungeIssuedFetchChangedSince(t *testing.T) {
	_, a, _ := expungedUnseen(t)
	// MODSEQs 2-5 are the appends, 6 and 7 b's STORE and EXPUNGE. The
	// first OK enables CONDSTORE (RFC 7162 §3.1.2); the last one caps the
	// client's HIGHESTMODSEQ below the expunge it has not been told of.
	a.Expect("f1", "FETCH 1:4 (FLAGS) (CHANGEDSINCE 1)",
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"* 1 FETCH (FLAGS () MODSEQ (2))",
		"* 3 FETCH (FLAGS () MODSEQ (4))",
		"* 4 FETCH (FLAGS () MODSEQ (5))",
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"f1 "+expungeIssued)
	a.Expect("f2", "FETCH 3:4 (FLAGS) (CHANGEDSINCE 4)",
		"* 4 FETCH (FLAGS () MODSEQ (5))",
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"f2 OK FETCH completed")
	a.Expect("f3", "FETCH 2 (FLAGS) (CHANGEDSINCE 1)", "f3 "+expungeIssued)
}

func TestExpungeIssuedStore(t *testing.T) {
	env, a, b := expungedUnseen(t)
	// Only the gone message: nothing to change, no FETCH, OK.
	a.Expect("s1", `STORE 2 +FLAGS (\Flagged)`, "s1 "+storeGoneIssued)
	a.Expect("s1b", `STORE 2 FLAGS (\Seen)`, "s1b "+storeGoneIssued)
	// The messages that remain change and are reported; the gone one is
	// not (no FETCH with made-up flags).
	a.Expect("s2", `STORE 1:3 +FLAGS (\Flagged)`,
		`* 1 FETCH (FLAGS (\Flagged))`,
		`* 3 FETCH (FLAGS (\Flagged))`,
		"s2 "+storeGoneIssued)
	a.Expect("s3", `STORE 2:3 +FLAGS.SILENT (\Seen)`, "s3 "+storeGoneIssued)
	// The changes were made: b sees them (UIDs 1 and 3 are its 1 and 2).
	b.Expect("b3", "NOOP",
		`* 1 FETCH (UID 1 FLAGS (\Flagged))`,
		`* 2 FETCH (UID 3 FLAGS (\Flagged \Seen))`,
		"b3 OK NOOP completed")
	// Nothing was stored for UID 2: it stays expunged, the store holds
	// the three others with the flags set above.
	ctx := context.Background()
	userID, inboxID := rcInbox(t, env)
	metas, _, err := env.Store.MessageIndex(ctx, userID, inboxID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range metas {
		got = append(got, fmt.Sprintf("%d %v", m.UID, m.Flags))
	}
	if want := []string{`1 [\Flagged]`, `3 [\Flagged \Seen]`, "4 []"}; !slices.Equal(got, want) {
		t.Errorf("store after the STOREs: %q, want %q", got, want)
	}
	// The STOREs held the expunge back; the next command that may
	// report it does.
	a.Expect("n", "NOOP", "* 2 EXPUNGE", "n OK NOOP completed")
	a.Expect("s4", `STORE 2 -FLAGS (\Flagged)`, `* 2 FETCH (FLAGS (\Seen))`, "s4 OK STORE completed")
	// UID STORE leaves the UID out silently.
	_, a, _ = expungedUnseen(t)
	a.Expect("s5", `UID STORE 2:4 +FLAGS (\Answered)`,
		`* 3 FETCH (UID 3 FLAGS (\Answered))`,
		`* 4 FETCH (UID 4 FLAGS (\Answered))`,
		"* 2 EXPUNGE",
		"s5 OK STORE completed")
}

// A conditional STORE that also fails UNCHANGEDSINCE answers OK with
// MODIFIED, which the client must have (RFC 7162 §3.1.3: one response
// code, examples 8 to 11).
func TestExpungeIssuedStoreModified(t *testing.T) {
	_, a, b := expungedUnseen(t)
	b.Expect("b3", `STORE 2 +FLAGS.SILENT (\Flagged)`, "b3 OK STORE completed") // UID 3, MODSEQ 8
	// UID 1 changes (MODSEQ 9), UID 2 is gone, UID 3 fails the test; b's
	// change of UID 3 is reported after the STORE's own responses, then
	// the HIGHESTMODSEQ cap (see TestExpungeIssuedFetchChangedSince).
	a.Expect("s1", `STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\Seen)`,
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"* 1 FETCH (UID 1 MODSEQ (9))",
		"* 3 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (8))",
		"* OK [HIGHESTMODSEQ 5] Highest mod-sequence",
		"s1 OK [MODIFIED 3] Conditional STORE failed")
	a.Expect("s2", `STORE 2 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\Seen)`, "s2 "+storeGoneIssued)
}

// COPY and MOVE, by sequence number or by a UID the session's view still
// lists, copy nothing when one message is gone.
func TestExpungeIssuedCopyMove(t *testing.T) {
	for _, cmd := range []string{
		"COPY 2 Sent",
		"COPY 1:3 Sent",
		"UID COPY 2 Sent",
		"UID COPY 1:* Sent",
		"MOVE 2:3 Sent",
		"UID MOVE 1:2 Sent",
	} {
		t.Run(cmd, func(t *testing.T) {
			_, a, _ := expungedUnseen(t)
			// COPY and MOVE may report the expunge (RFC 3501 §7.4.1).
			a.Expect("c1", cmd, "* 2 EXPUNGE", "c1 "+expungeIssued)
			a.Expect("c2", "STATUS Sent (MESSAGES)", "* STATUS Sent (MESSAGES 0)", "c2 OK STATUS completed")
			a.Expect("c3", "FETCH 1:* (UID)",
				"* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)",
				"c3 OK FETCH completed")
			// Once told, the UID is no longer in the view: UID COPY
			// leaves it out, as it does any UID that does not exist.
			got := a.Cmd("c4", "UID COPY 2:3 Sent")
			if len(got) != 1 || !copyUID3RE.MatchString(got[0]) {
				t.Errorf("c4 UID COPY 2:3 Sent: %q, want c4 OK [COPYUID <uidvalidity> 3 1]", got)
			}
		})
	}
}

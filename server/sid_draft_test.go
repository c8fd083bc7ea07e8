package server_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// draft-ietf-lemonade-reconnect-07, requirement by requirement. Every
// MUST, SHOULD and server-side example of §2–§7 that a client can observe
// has a test, here, in sid_test.go or in sid_limits_test.go:
//
//	§2   capability, REQUIRES CONDSTORE and EXPUNGED, "MUST be announced"  TestSIDDraftCapability
//	§2   case b: after the timeout "creates a new session"                 TestSIDLimitExpiry
//	§1   "doesn't terminate when the connection is lost"                  TestSIDResumeAfterDrop
//	§3.1 "only available in authenticated and selected IMAP states"       TestSIDNew (SID), TestSIDDraftNotAuthenticated
//	§3.1 NEWSID "REQUIRED if no SID parameter was specified"              TestSIDNew, TestSIDDraftNewTwice
//	§3.1 NEWSID "also required if ... the given session ID is invalid"    TestSIDUnknownAndOtherUser, TestSIDDraftUnknownID
//	§3.1 SELECTED "REQUIRED if SID parameter was specified"               every resume test
//	§3.1 FLAGS, EXISTS, RECENT, PERMANENTFLAGS, UIDNEXT, UIDVALIDITY,
//	     HIGHESTMODSEQ, READ-WRITE "REQUIRED if the client remains in
//	     the selected state"                                              TestSIDResumeAfterDrop
//	     ... READ-ONLY                                                    TestSIDDraftResumeReadOnly
//	§3.1 state: "currently selected mailbox", "read-only or read-write"   TestSIDResumeAfterDrop, TestSIDDraftResumeReadOnly
//	§3.1 state: "The number of recent messages (RECENT)"                  TestSIDDraftRecentRestored
//	§3.1 state: "Any state associated with the current IMAP connection"   TestSIDDraftEnabledRestored, TestSIDDraftEnabledUnion
//	§3.1 "same SID used with two different usernames refers to two
//	     different sessions"                                              TestSIDUnknownAndOtherUser, TestSIDDraftOtherUserInactive
//	§3.1 MYRIGHTS (ACL), non-persistent flags                             n/a: no ACL, every flag is permanent
//	§3.2 "create a new session regardless ... the existing session
//	     becomes inactive and can be resumed at a later time"             TestSIDDraftNewTwice
//	§3.2 "can be performed at any point during the IMAP session"          TestSIDDraftNewTwice (in the selected state)
//	§3.2 example "* NEWSID ..." "OK session created"                      TestSIDNew (newSID)
//	§3.2 per-user limit "SHOULD expire the oldest inactive session"       TestSIDLimitPerUser, TestSIDRaceCreateAtLimit
//	§3.2 "If no inactive session ... MUST return the tagged NO"           TestSIDLimitPerUser, TestSIDRaceCreateAtLimit
//	§3.2 per-server limit "MUST return the tagged NO"                     TestSIDLimitGlobal
//	§3.3 "not syntactically valid ... tagged BAD"                         TestSIDNew, TestSIDDraftSyntax
//	§3.3 "SID is not recognized ... creates a new session"                TestSIDUnknownAndOtherUser, TestSIDDraftUnknownID
//	§3.3 "SID is not recognized (... has expired)"                        TestSIDLimitExpiry
//	§3.3 "MUST inform the client ... untagged SELECTED"                   every resume test
//	§3.3 "mailbox name MUST be reported verbatim"                         TestSIDDraftSelectedVerbatim, TestSIDDraftRenamed
//	§3.3 "mailbox has been deleted ... MUST return a special SELECTED
//	     ... no mailbox name" (authenticated state)                       TestSIDDraftMailboxDeleted
//	§3.3 "only be active on a single TCP connection ... DELETEDSID"       TestSIDTakeover, TestSIDDraftTakeoverOldConnection, TestSIDRaceTakeover
//	§3.3 "no mailbox selected, the remaining arguments MUST be ignored"   TestSIDDraftResumeNothingSelected
//	§3.3 example "A02 SID ABC412423rs 67890007 20050715194045000"         TestSIDDraftResumeNothingSelected
//	§3.3 UIDVALIDITY differs: "MUST send the NEWSID response containing
//	     the SID of the resumed session", same read-only/read-write,
//	     SELECT responses, remaining arguments ignored                    TestSIDUIDValidityMismatch (EXAMINE), TestSIDDraftUIDValidityMismatchReadWrite
//	§3.3 "pending flag changes (using FETCH responses that MUST contain
//	     UIDs) and expunges ... since the provided modification
//	     sequence"                                                        TestSIDResumeAfterDrop, TestSIDDraftResumeReadOnly
//	§3.3 "should only report flag changes and expunges for the provided
//	     messages", "acts as if the client has specified 1:*"             TestSIDResumeAfterDrop, TestSIDDraftKnownUIDs
//	§3.3 "semantically equivalent to ... UID FETCH known-uids (FLAGS)
//	     (CHANGEDSINCE m REPORTEXPUNGES)"                                 TestSIDDraftEquivalentUIDFetch
//	EXPUNGED in a resume reports messages already gone: EXISTS is the
//	     current count                                                    TestSIDDraftKnownUIDs
//	§3.3 "unable to cache all events ... MUST return the NEWSID"          TestSIDDraftTombstonesPurged
//	§3.3 deleted and another renamed to its name: option 2, "SELECTED
//	     response with no mailbox"                                        TestSIDDraftDeletedAndRenamedOver
//	§3.3 "READ-WRITE/READ-ONLY tagged response codes is required"         every selected resume test
//	RFC 7162 §3.2.11 style [CLOSED] when a resume leaves a mailbox        TestSIDDraftClosedFirst
//	§3.4 DELETESID "terminate the current session"                        TestSIDNew, TestSIDDraftDeleteSID
//	§3.4 "If there is no current session ... MUST respond with ... BAD"   TestSIDNew, TestSIDTakeover, TestSIDDraftDeleteSID
//	§4   LOGOUT "with no parameters ... terminate the current session"    TestSIDLogoutPreserve
//	§4   PRESERVE "should not terminate the current resumable session"    TestSIDLogoutPreserve, TestSIDDraftLogout
//	§4   example "* BYE ... state preserved" "OK LOGOUT completed"        TestSIDLogoutPreserve
//	§4   "no resumable session ... as if ... no parameters"               TestSIDLogoutPreserve, TestSIDDraftNotAuthenticated
//	§6   logout-params (RFC 4466): unknown parameter, malformed           TestSIDLogoutPreserve, TestSIDDraftLogout
//	§6   logout-param-data needs one parameter: "LOGOUT ()" is BAD        TestSIDDraftLogoutEmptyParams
//	§5.1 SELECTED, §5.2 NEWSID, §5.3 DELETEDSID (also during IDLE)        every test; TestSIDTakeover (IDLE)
//	§6   "MUST accept these strings in a case-insensitive fashion"        TestSIDDraftSessionIDForms, TestSIDDraftDeleteSID, TestSIDDraftLogout
//	§6   session-id = string (quoted, literal) and atom (examples)        TestSIDDraftSessionIDForms, TestSIDDraftUnknownID
//	§6   uidvalidity = nz-number; known-uids "*" is not allowed           TestSIDNew, TestSIDDraftSyntax
//	§7   "limit ... per user and/or ... IP address"                       TestSIDLimitPerUser, TestSIDLimitPerIP
//	§7   "Inactive sessions SHOULD have an expiration timeout"            TestSIDLimitExpiry
//	§7   "does not make any modifications to the authentication sequence" TestSIDDraftCapability, TestSIDDraftNotAuthenticated
//	§3.3/§5.3 concurrent resumes of one session: exactly one holder       TestSIDRaceTakeover

// draftPreserve ends c with LOGOUT (PRESERVE) (§4): its session stays
// resumable.
func draftPreserve(t *testing.T, c *imaptest.Conn) {
	t.Helper()
	c.Expect("zz", "LOGOUT (PRESERVE)", "* BYE Logging out; session state preserved", "zz OK LOGOUT completed")
}

// draftNewID checks that got is a NEWSID for a new session, whose id is
// not old, and returns that id.
func draftNewID(t *testing.T, got []string, tag, old string) string {
	t.Helper()
	if len(got) != 2 || !strings.HasPrefix(got[0], "* NEWSID ") || got[1] != tag+" OK SID completed: session created" {
		t.Fatalf("want a new session: %q", got)
	}
	id := strings.TrimPrefix(got[0], "* NEWSID ")
	if id == old || id == "" {
		t.Fatalf("NEWSID %q: want a new id (not %q)", id, old)
	}
	return id
}

var draftUVRE = regexp.MustCompile(`UIDVALIDITY (\d+)`)

// draftUV returns the UIDVALIDITY of mailbox (spelled as on the wire).
func draftUV(t *testing.T, c *imaptest.Conn, mailbox string) uint32 {
	t.Helper()
	got := c.Cmd("uv", "STATUS "+mailbox+" (UIDVALIDITY)")
	m := draftUVRE.FindStringSubmatch(got[0])
	if m == nil {
		t.Fatalf("STATUS: %q", got)
	}
	n, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// draftSel is what SELECT/EXAMINE (and so a resume in the selected state,
// §3.1) sends, in the server's order. resumed is a resume that reports
// the changes since the client's mod-sequence: §3.1's required responses
// with short texts, without the OPTIONAL UNSEEN (docs/reconnect.md); a
// resume with NEWSID sends SELECT's (§3.3: it "behaves as if
// SELECT/EXAMINE command for the mailbox was issued").
type draftSel struct {
	uv              uint32
	exists, recent  int
	unseen, uidNext int
	hms             uint64
	readOnly        bool
	resumed         bool
}

func (s draftSel) lines() []string {
	perm, noPerm, valid, next, hms := "Flags permitted", "No permanent flags permitted", "UIDs valid", "Predicted next UID", "Highest mod-sequence"
	if s.resumed {
		perm, noPerm, valid, next, hms = "Ok", "Ok", "Ok", "Ok", "Ok"
	}
	l := []string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`}
	if s.readOnly {
		l = append(l, `* OK [PERMANENTFLAGS ()] `+noPerm)
	} else {
		l = append(l, `* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] `+perm)
	}
	l = append(l, fmt.Sprintf("* %d EXISTS", s.exists), fmt.Sprintf("* %d RECENT", s.recent))
	if s.unseen > 0 {
		l = append(l, fmt.Sprintf("* OK [UNSEEN %d] First unseen message", s.unseen))
	}
	return append(l,
		fmt.Sprintf("* OK [UIDVALIDITY %d] %s", s.uv, valid),
		fmt.Sprintf("* OK [UIDNEXT %d] %s", s.uidNext, next),
		fmt.Sprintf("* OK [HIGHESTMODSEQ %d] %s", s.hms, hms))
}

// draftWant builds an expected answer: head lines, then the SELECT
// responses, then tail lines (the last one tagged).
func draftWant(head []string, s draftSel, tail ...string) []string {
	return append(append(append([]string(nil), head...), s.lines()...), tail...)
}

func draftCount(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// §2: "this extension REQUIRES support for the [CONDSTORE] and the
// [EXPUNGED] IMAP extensions, so it MUST be announced in the CAPABILITY
// response as well"; §7: "does not make any modifications to the
// authentication sequence": the three come after authentication only,
// and not at all when resumable sessions are off (SID, DELETESID and
// LOGOUT (PRESERVE) are then unknown).
func TestSIDDraftCapability(t *testing.T) {
	names := []string{"X-DRAFT-W07-RECONNECT", "CONDSTORE", "X-DRAFT-I01-EXPUNGED"}
	has := func(line, name string) bool {
		return slices.Contains(strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(line)), name)
	}
	env := imaptest.Start(t, nil)
	c := env.Dial(t)
	pre := c.Cmd("c1", "CAPABILITY")
	for _, n := range names {
		if has(c.Greeting, n) || has(pre[0], n) {
			t.Errorf("%s before authentication: greeting %q, CAPABILITY %q", n, c.Greeting, pre[0])
		}
	}
	login := c.Cmd("l", "LOGIN alice secret")
	post := c.Cmd("c2", "CAPABILITY")
	for _, n := range names {
		if !has(login[len(login)-1], n) {
			t.Errorf("%s missing from the LOGIN OK: %q", n, login)
		}
		if !has(post[0], n) {
			t.Errorf("%s missing after authentication: %q", n, post[0])
		}
	}

	off := imaptest.Start(t, func(o *server.Options) { o.Sessions = nil })
	o := off.DialLogin(t)
	capa := o.Cmd("c3", "CAPABILITY")
	if has(capa[0], "X-DRAFT-W07-RECONNECT") || !has(capa[0], "CONDSTORE") {
		t.Errorf("sessions off: %q", capa[0])
	}
	o.Expect("a", "SID", "a BAD Unknown command SID")
	o.Expect("b", "DELETESID", "b BAD Unknown command DELETESID")
	o.ExpectTagged("c", "LOGOUT (PRESERVE)", "c BAD")
}

// §3.1: "This command is only available in authenticated and selected
// IMAP states" (SID with no argument: TestSIDNew). DELETESID likewise
// (command-auth, §6). §4: LOGOUT (PRESERVE) "when no resumable session
// was created ... as if the LOGOUT command was issued with no
// parameters", also before authentication.
func TestSIDDraftNotAuthenticated(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	id := newSID(t, a, "a")
	u := env.Dial(t)
	u.Expect("b", "SID "+id+" 1 1", "b BAD SID not allowed in the not authenticated state")
	u.Expect("c", "DELETESID", "c BAD DELETESID not allowed in the not authenticated state")
	// The session was not taken over.
	a.Expect("n", "NOOP", "n OK NOOP completed")
	u.Expect("d", "LOGOUT (PRESERVE)", "* BYE Logging out", "d OK LOGOUT completed")
}

// §3.2: "create a new session regardless if a previous, active resumable
// session is available. If an active session is already available and a
// new one can be created, the existing session becomes inactive and can
// be resumed at a later time." "This operation can be performed at any
// point during the IMAP session" (here in the selected state).
func TestSIDDraftNewTwice(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.ExpectTagged("s1", "SELECT INBOX", "s1 OK [READ-WRITE]")
	id1 := newSID(t, a, "a1")
	a.ExpectTagged("s2", "SELECT Sent", "s2 OK [READ-WRITE]") // saved in id1
	got := a.Cmd("a2", "SID")
	id2 := draftNewID(t, got, "a2", id1)
	// id1 is inactive, not taken: no DELETEDSID.
	a.Expect("n1", "NOOP", "n1 OK NOOP completed")
	a.ExpectTagged("s3", "SELECT Drafts", "s3 OK [READ-WRITE]") // saved in id2, not id1

	b := env.DialLogin(t)
	uv := draftUV(t, b, "Sent")
	got = b.Cmd("b1", fmt.Sprintf("SID %s %d 1", id1, uv))
	if got[0] != "* SELECTED Sent" || got[len(got)-1] != "b1 OK [READ-WRITE] Ok" {
		t.Fatalf("resume of the first session: %q", got)
	}
	// a held id2, not id1: still no DELETEDSID, and it still holds id2.
	a.Expect("n2", "NOOP", "n2 OK NOOP completed")
	a.Expect("d1", "DELETESID", "d1 OK DELETESID completed")
	b.Expect("n3", "NOOP", "n3 OK NOOP completed")
	b.Expect("d2", "DELETESID", "d2 OK DELETESID completed")
	c := env.DialLogin(t)
	draftNewID(t, c.Cmd("c1", "SID "+id2+" 1 1"), "c1", id2)
}

// §3.1: NEWSID is "also required if SID parameter was specified but the
// given session ID is invalid"; §3.3: "If the SID is not recognized ...
// the server creates a new session as described in Section 3.2". A
// well-formed unknown id, a quoted one with a space, a literal: each gives
// a new id, which is resumable.
func TestSIDDraftUnknownID(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	unknown := strings.Repeat("a", 26)
	draftNewID(t, c.Cmd("a", "SID "+unknown+" 1 1"), "a", unknown)
	draftNewID(t, c.Cmd("b", `SID "no such session" 1 1 1:5`), "b", "no such session")
	id := draftNewID(t, c.Cmd("c", "SID {3+}\r\nfoo 1 1"), "c", "foo")
	draftPreserve(t, c)
	d := env.DialLogin(t)
	d.Expect("d", "SID "+id+" 1 1", "* SELECTED", "d OK SID completed: session resumed")
}

// §3.3: "The server verifies all arguments for syntactic validity. If any
// parameter is not syntactically valid, the server return the tagged BAD
// response." §6: uidvalidity = nz-number, mod-sequence-value a number,
// known-uids a sequence-set where "*" is not allowed. A BAD SID resumes
// nothing: the holder of the named session keeps it, and the issuing
// connection keeps its own.
func TestSIDDraftSyntax(t *testing.T) {
	env := imaptest.Start(t, nil)
	holder := env.DialLogin(t)
	id := newSID(t, holder, "h")
	c := env.DialLogin(t)
	newSID(t, c, "o") // its own session
	for i, args := range []string{
		"",                             // SID with a trailing space
		id,                             // no uidvalidity
		id + " 1",                      // no mod-sequence
		id + " 0 1",                    // uidvalidity 0
		id + " 4294967296 1",           // uidvalidity above 32 bits
		id + " -1 1",                   // negative
		id + " 1 x",                    // mod-sequence not a number
		id + " 1 1x",                   // nor this
		id + " 1 -1",                   // negative
		id + " 1 99999999999999999999", // above 64 bits
		id + " 1 1 *",                  // "*" is not allowed
		id + " 1 1 3:*",                // nor here
		id + " 1 1 0",                  // UID 0
		id + " 1 1 1,",                 // truncated set
		id + " 1 1 a",                  // not a set
		id + " 1 1 1:3 x",              // trailing garbage
		id + " 1 1 1:3 ",               // trailing space
		id + "  1 1",                   // two spaces
		"(" + id + ") 1 1",             // a list is not a string
		id + " (1) 1",
	} {
		tag := fmt.Sprintf("x%d", i)
		c.ExpectTagged(tag, "SID "+args, tag+" BAD")
	}
	holder.Expect("n", "NOOP", "n OK NOOP completed")
	holder.Expect("d1", "DELETESID", "d1 OK DELETESID completed")
	c.Expect("d2", "DELETESID", "d2 OK DELETESID completed")
}

// §6: session-id = string (quoted or literal), while every example sends
// an atom; "MUST accept these strings in a case-insensitive fashion"
// (command names). §5.3: each resume elsewhere sends DELETEDSID to the
// previous holder.
func TestSIDDraftSessionIDForms(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	id := newSID(t, a, "a")
	draftPreserve(t, a)

	q := env.DialLogin(t)
	q.Expect("q", `SID "`+id+`" 1 1`, "* SELECTED", "q OK SID completed: session resumed")

	l := env.DialLogin(t)
	l.SendLine(fmt.Sprintf("l SID {%d}", len(id)))
	if got := l.ReadLine(); !strings.HasPrefix(got, "+ ") {
		t.Fatalf("literal: %q", got)
	}
	l.SendLine(id + " 1 1 1:10")
	checkLines(t, l.ReadUntilTagged("l"), []string{"* SELECTED", "l OK SID completed: session resumed"})
	q.Expect("n1", "NOOP", "* DELETEDSID "+id, "n1 OK NOOP completed")

	p := env.DialLogin(t)
	p.Expect("p", fmt.Sprintf("SID {%d+}\r\n%s 1 1", len(id), id), "* SELECTED", "p OK SID completed: session resumed")
	l.Expect("n2", "NOOP", "* DELETEDSID "+id, "n2 OK NOOP completed")

	s := env.DialLogin(t)
	s.Expect("s", "sId "+id+" 1 1", "* SELECTED", "s OK SID completed: session resumed")
	p.Expect("n3", "NOOP", "* DELETEDSID "+id, "n3 OK NOOP completed")
}

// §3.3: "If at this point there is no mailbox selected, the remaining
// arguments MUST be ignored by the server", with the draft's example
// (A02 SID ABC412423rs 67890007 20050715194045000): SELECTED without a
// name, a tagged OK without READ-WRITE/READ-ONLY, and the authenticated
// state, where the selected-state commands are BAD.
func TestSIDDraftResumeNothingSelected(t *testing.T) {
	env, _, _ := seeded(t, 2)
	a := env.DialLogin(t)
	id := newSID(t, a, "a")
	a.NC.Close()

	b := env.DialLogin(t)
	b.Expect("A02", "SID "+id+" 67890007 20050715194045000", "* SELECTED", "A02 OK SID completed: session resumed")
	draftPreserve(t, b)
	c := env.DialLogin(t)
	c.Expect("A03", "SID "+id+" 67890007 20050715194045000 41,43:211,214:541", "* SELECTED", "A03 OK SID completed: session resumed")
	c.Expect("f1", "FETCH 1 (FLAGS)", "f1 BAD FETCH not allowed in the authenticated state")
	c.Expect("f2", "UID FETCH 1 (FLAGS)", "f2 BAD UID FETCH not allowed in the authenticated state")
	c.Expect("f3", "CLOSE", "f3 BAD CLOSE not allowed in the authenticated state")
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
}

// §3.3: "the mailbox name MUST be reported verbatim as originally
// specified by the client in SELECT/EXAMINE. I.e. before server applies
// any mailbox name canonicalization (like converting "Inbox" ... to
// "INBOX")". Spelled as an atom, a quoted string, a literal, with a space,
// in modified UTF-7, examined.
func TestSIDDraftSelectedVerbatim(t *testing.T) {
	env := imaptest.Start(t, nil)
	setup := env.DialLogin(t)
	setup.ExpectTagged("c1", `CREATE "My Box"`, "c1 OK")
	setup.ExpectTagged("c2", "CREATE &AMk-t&AOk-", "c2 OK")
	for i, tc := range []struct {
		cmd, status, echo string
		readOnly          bool
	}{
		{"SELECT inbox", "INBOX", "inbox", false},
		{`SELECT "InBoX"`, "INBOX", "InBoX", false},
		{"SELECT {5+}\r\niNbOx", "INBOX", "iNbOx", false},
		{`SELECT "My Box"`, `"My Box"`, `"My Box"`, false},
		{"SELECT &AMk-t&AOk-", "&AMk-t&AOk-", "&AMk-t&AOk-", false},
		{`EXAMINE "inBOX"`, "INBOX", "inBOX", true},
	} {
		a := env.DialLogin(t)
		a.ExpectTagged("s", tc.cmd, "s OK")
		id := newSID(t, a, "a")
		draftPreserve(t, a)
		b := env.DialLogin(t)
		uv := draftUV(t, b, tc.status)
		tag := fmt.Sprintf("b%d", i)
		got := b.Cmd(tag, fmt.Sprintf("SID %s %d 1", id, uv))
		mode := "READ-WRITE"
		if tc.readOnly {
			mode = "READ-ONLY"
		}
		if got[0] != "* SELECTED "+tc.echo || got[len(got)-1] != tag+" OK ["+mode+"] Ok" {
			t.Errorf("%q: got %q, want * SELECTED %s ... [%s]", tc.cmd, got, tc.echo, mode)
		}
	}
}

// §3.3: the changes since the mod-sequence for a session that had INBOX
// EXAMINEd; §3.1: "OK tagged responses: READ-WRITE or READ-ONLY", and the
// mailbox stays read-only (the state "If mailbox is selected read-only or
// read-write").
func TestSIDDraftResumeReadOnly(t *testing.T) {
	env, uv, w := seeded(t, 4) // HIGHESTMODSEQ 5
	a := env.DialLogin(t)
	a.ExpectTagged("s", "EXAMINE INBOX", "s OK [READ-ONLY]")
	id := newSID(t, a, "a")
	a.NC.Close()
	w.ExpectTagged("w1", `UID STORE 1 +FLAGS (\Seen)`, "w1 OK") // 6
	expungeUIDs(t, w, "2")                                      // 7, 8

	b := env.DialLogin(t)
	got := b.Cmd("b", fmt.Sprintf("SID %s %d 5", id, uv))
	want := draftWant([]string{"* SELECTED INBOX"},
		draftSel{uv: uv, exists: 3, uidNext: 5, hms: 8, readOnly: true, resumed: true},
		`* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (6))`,
		"* EXPUNGED 2",
		"b OK [READ-ONLY] Ok")
	checkLines(t, got, want)
	b.ExpectTagged("c", `STORE 2 +FLAGS (\Flagged)`, "c NO")
}

// §3.3: "If the list of known UIDs was also provided, the server should
// only report flag changes and expunges for the provided messages"
// (exclusion: TestSIDResumeAfterDrop). Here an expunged UID inside the
// set is reported and one outside is not. The EXPUNGED response of a
// resume reports messages already gone: EXISTS is the current count and
// the sequence numbers that follow agree with it.
func TestSIDDraftKnownUIDs(t *testing.T) {
	env, uv, w := seeded(t, 6) // HIGHESTMODSEQ 7
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	a.NC.Close()
	w.ExpectTagged("w1", `UID STORE 2,5 +FLAGS (\Flagged)`, "w1 OK") // 8
	expungeUIDs(t, w, "3,6")                                         // 9, 10

	b := env.DialLogin(t)
	got := b.Cmd("b", fmt.Sprintf("SID %s %d 7 2:3,100", id, uv))
	want := draftWant([]string{"* SELECTED INBOX"},
		draftSel{uv: uv, exists: 4, uidNext: 7, hms: 10, resumed: true},
		`* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (8))`,
		"* EXPUNGED 3",
		"b OK [READ-WRITE] Ok")
	checkLines(t, got, want)
	b.Expect("f", "FETCH 1:* (UID)",
		"* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 4)", "* 4 FETCH (UID 5)",
		"f OK FETCH completed")
	b.Expect("n", "NOOP", "n OK NOOP completed")
}

// §3.3: "The result of this step is semantically equivalent to the client
// issuing: tag1 UID FETCH "known-uids" (FLAGS) (CHANGEDSINCE
// "mod-sequence-value" REPORTEXPUNGES)", with "1:*" when no known-uids are
// given. The FETCH and EXPUNGED lines of a resume are those of that
// command on a fresh SELECT.
func TestSIDDraftEquivalentUIDFetch(t *testing.T) {
	env, uv, w := seeded(t, 6) // HIGHESTMODSEQ 7
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	draftPreserve(t, a)
	w.ExpectTagged("w1", `UID STORE 1,4 +FLAGS (\Answered)`, "w1 OK") // 8
	w.ExpectTagged("w2", `UID STORE 5 +FLAGS ($Forwarded)`, "w2 OK")  // 9
	expungeUIDs(t, w, "2,6")                                          // 10, 11

	deltas := func(lines []string) []string {
		var d []string
		for _, l := range lines {
			if strings.HasPrefix(l, "* EXPUNGED ") || strings.Contains(l, " FETCH (") {
				d = append(d, l)
			}
		}
		slices.Sort(d)
		return d
	}
	for i, tc := range []struct{ known, set string }{
		{"", "1:*"},
		{" 1:2,5", "1:2,5"},
	} {
		b := env.DialLogin(t)
		sid := b.Cmd("b", fmt.Sprintf("SID %s %d 7%s", id, uv, tc.known))
		draftPreserve(t, b)
		f := env.DialLogin(t)
		f.ExpectTagged("s", "SELECT INBOX", "s OK")
		fetch := f.Cmd("f", "UID FETCH "+tc.set+" (FLAGS) (CHANGEDSINCE 7 REPORTEXPUNGES)")
		if g, w := deltas(sid), deltas(fetch); !slices.Equal(g, w) || len(g) == 0 {
			t.Errorf("case %d: SID deltas %q, UID FETCH deltas %q", i, g, w)
		}
	}
}

// §3.3: "If the provided UIDVALIDITY doesn't match ... the server MUST
// send the NEWSID response containing the SID of the resumed session",
// keeps "whether the mailbox was selected read-only or read-write", "the
// remaining arguments to the SID command are ignored" (no FETCH, no
// EXPUNGED), "behaves as if SELECT/EXAMINE command for the mailbox was
// issued"; the draft's example ends "OK [READ-WRITE] resync required".
// The read-only case: TestSIDUIDValidityMismatch. The session goes on
// under the same id.
func TestSIDDraftUIDValidityMismatchReadWrite(t *testing.T) {
	env, uv, w := seeded(t, 3) // HIGHESTMODSEQ 4
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	a.NC.Close()
	w.ExpectTagged("w1", `UID STORE 1 +FLAGS (\Flagged)`, "w1 OK") // 5
	expungeUIDs(t, w, "2")                                         // 6, 7

	b := env.DialLogin(t)
	got := b.Cmd("A02", fmt.Sprintf("SID %s %d 4 1:3", id, uv+1))
	want := draftWant([]string{"* SELECTED INBOX", "* NEWSID " + id},
		draftSel{uv: uv, exists: 2, unseen: 1, uidNext: 4, hms: 7},
		"A02 OK [READ-WRITE] SID completed: resync required")
	checkLines(t, got, want)
	draftPreserve(t, b)

	c := env.DialLogin(t)
	got = c.Cmd("A03", fmt.Sprintf("SID %s %d 7", id, uv))
	want = draftWant([]string{"* SELECTED INBOX"},
		draftSel{uv: uv, exists: 2, uidNext: 4, hms: 7, resumed: true},
		"A03 OK [READ-WRITE] Ok")
	checkLines(t, got, want)
}

// §3.3: "If, before the disconnect, the session had a mailbox selected
// and the mailbox has been deleted since then ..., the server MUST return
// a special SELECTED untagged response that contains no mailbox name",
// and the session is then in the authenticated state (the draft's
// "unauthenticated" is a slip), which it keeps.
func TestSIDDraftMailboxDeleted(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.ExpectTagged("c", "CREATE Work", "c OK")
	a.ExpectTagged("s", "SELECT Work", "s OK [READ-WRITE]")
	uv := draftUV(t, a, "Work")
	id := newSID(t, a, "a")
	a.NC.Close()
	w := env.DialLogin(t)
	w.ExpectTagged("d", "DELETE Work", "d OK")

	b := env.DialLogin(t)
	b.Expect("b", fmt.Sprintf("SID %s %d 1 1:5", id, uv), "* SELECTED", "b OK SID completed: session resumed")
	b.Expect("f", "FETCH 1 (UID)", "f BAD FETCH not allowed in the authenticated state")
	draftPreserve(t, b)
	c := env.DialLogin(t)
	c.Expect("c", fmt.Sprintf("SID %s %d 1", id, uv), "* SELECTED", "c OK SID completed: session resumed")
}

// §3.3: "If, while the client was offline, the selected mailbox was
// deleted and another mailbox was renamed to the same name, the server
// MAY do either: ... 2. return "SELECTED" response with no mailbox in
// order to return the client to the authenticated state." The server
// follows the mailbox by its stable id, so it takes option 2.
func TestSIDDraftDeletedAndRenamedOver(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.ExpectTagged("c1", "CREATE Drafts2", "c1 OK")
	a.ExpectTagged("c2", "CREATE Other", "c2 OK")
	appendMsg(t, a, "p", "Other", "", testMsg)
	a.ExpectTagged("s", "SELECT Drafts2", "s OK [READ-WRITE]")
	uv := draftUV(t, a, "Drafts2")
	id := newSID(t, a, "a")
	a.NC.Close()
	w := env.DialLogin(t)
	w.ExpectTagged("d", "DELETE Drafts2", "d OK")
	w.ExpectTagged("r", "RENAME Other Drafts2", "r OK")

	b := env.DialLogin(t)
	b.Expect("A02", fmt.Sprintf("SID %s %d 11 20:35", id, uv), "* SELECTED", "A02 OK SID completed: session resumed")
	b.Expect("f", "FETCH 1 (UID)", "f BAD FETCH not allowed in the authenticated state")
}

// A mailbox renamed while the client was away is not resumed under the
// name the client spelled (§3.3 says to report it "verbatim as
// originally specified"), which is gone or names another mailbox: as for
// a mailbox replaced under its name (§3.3), SELECTED with no name and the
// authenticated state (docs/reconnect.md). The client finds the mailbox
// again with LIST; its UIDVALIDITY is unchanged.
func TestSIDDraftRenamed(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.ExpectTagged("c", "CREATE Work", "c OK")
	appendMsg(t, a, "p", "Work", "", testMsg)
	a.ExpectTagged("s", `SELECT "Work"`, "s OK [READ-WRITE]")
	uv := draftUV(t, a, "Work")
	id := newSID(t, a, "a")
	a.NC.Close()
	w := env.DialLogin(t)
	w.ExpectTagged("r", "RENAME Work Play", "r OK")
	// The old name now names another mailbox.
	w.ExpectTagged("c", "CREATE Work", "c OK")

	b := env.DialLogin(t)
	b.Expect("b", fmt.Sprintf("SID %s %d 1", id, uv), "* SELECTED", "b OK SID completed: session resumed")
	b.Expect("f", "FETCH 1 (UID)", "f BAD FETCH not allowed in the authenticated state")
	if got := draftUV(t, b, "Play"); got != uv {
		t.Errorf("UIDVALIDITY of the renamed mailbox %d, was %d", got, uv)
	}

	// Renamed away and back while the client was away: the same mailbox
	// under the name the client spelled, so it resumes.
	b.ExpectTagged("s", `SELECT "Play"`, "s OK [READ-WRITE]")
	id2 := newSID(t, b, "g")
	b.NC.Close()
	w.ExpectTagged("r2", "RENAME Play Later", "r2 OK")
	w.ExpectTagged("r3", "RENAME Later Play", "r3 OK")
	c := env.DialLogin(t)
	got := c.Cmd("h", fmt.Sprintf("SID %s %d 1", id2, uv))
	if got[0] != "* SELECTED Play" || got[len(got)-1] != "h OK [READ-WRITE] Ok" || !slices.Contains(got, "* 1 EXISTS") {
		t.Fatalf("resume after renaming back: %q", got)
	}
}

// §3.3, §5.3: "forces the server to close the session on the other
// connection": the old connection gets DELETEDSID and goes on working
// (its mailbox stays selected and usable), but no longer holds the
// session: what it does next (SELECT, plain LOGOUT) neither changes the
// session's state nor deletes it. DELETEDSID at the next command and
// during IDLE, DELETESID BAD afterwards: TestSIDTakeover.
func TestSIDDraftTakeoverOldConnection(t *testing.T) {
	env, uv, _ := seeded(t, 2) // HIGHESTMODSEQ 3
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")

	b := env.DialLogin(t)
	b.ExpectTagged("b", fmt.Sprintf("SID %s %d 3", id, uv), "b OK [READ-WRITE] Ok")
	a.Expect("n1", "NOOP", "* DELETEDSID "+id, "n1 OK NOOP completed")
	a.Expect("f", "FETCH 1:* (UID)", "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "f OK FETCH completed")
	a.ExpectTagged("st", `UID STORE 1 +FLAGS (\Seen)`, "st OK")
	a.ExpectTagged("s2", "SELECT Sent", "s2 OK [READ-WRITE]")
	a.Expect("o", "LOGOUT", "* BYE Logging out", "o OK LOGOUT completed")

	got := b.Cmd("n2", "NOOP")
	if draftCount(got, "* DELETEDSID") != 0 || got[len(got)-1] != "n2 OK NOOP completed" {
		t.Fatalf("holder after the old connection's LOGOUT: %q", got)
	}
	draftPreserve(t, b)
	c := env.DialLogin(t)
	got = c.Cmd("c", fmt.Sprintf("SID %s %d 4", id, uv))
	if got[0] != "* SELECTED INBOX" || got[len(got)-1] != "c OK [READ-WRITE] Ok" {
		t.Fatalf("resume after the old connection's SELECT and LOGOUT: %q", got)
	}
}

// §3.4: DELETESID "tells the server to terminate the current session"
// (it can no longer be resumed: NEWSID); "If there is no current session,
// the server MUST respond with the tagged BAD response"; "Arguments:
// none". The connection itself is unaffected (its mailbox stays
// selected). Case-insensitive (§6).
func TestSIDDraftDeleteSID(t *testing.T) {
	env, uv, _ := seeded(t, 1)
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	a.ExpectTagged("x", "DELETESID now", "x BAD")
	a.Expect("d1", "deletesid", "d1 OK DELETESID completed")
	a.Expect("c", "CHECK", "c OK CHECK completed")
	a.Expect("d2", "DELETESID", "d2 BAD No current session")
	b := env.DialLogin(t)
	draftNewID(t, b.Cmd("b", fmt.Sprintf("SID %s %d 2", id, uv)), "b", id)
	a.Expect("n", "NOOP", "n OK NOOP completed")
}

// §4: LOGOUT (PRESERVE) keeps the session with its selected mailbox
// (resumable afterwards); the parameter is case-insensitive (§6); RFC 4466
// logout-params is "(" at least one parameter ")", so an empty list, a
// bare PRESERVE or trailing garbage is BAD (and the connection goes on).
func TestSIDDraftLogout(t *testing.T) {
	env, uv, _ := seeded(t, 1)
	a := env.DialLogin(t)
	a.ExpectTagged("s", `SELECT "INBOX"`, "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	a.ExpectTagged("x2", "LOGOUT PRESERVE", "x2 BAD")
	a.ExpectTagged("x3", "LOGOUT (PRESERVE) now", "x3 BAD")
	a.ExpectTagged("x4", "LOGOUT (PRESERVE", "x4 BAD")
	a.Expect("o", "logout (preserve)", "* BYE Logging out; session state preserved", "o OK LOGOUT completed")
	a.ExpectEOF(5 * time.Second)

	b := env.DialLogin(t)
	got := b.Cmd("b", fmt.Sprintf("SID %s %d 2", id, uv))
	if got[0] != "* SELECTED INBOX" || got[len(got)-1] != "b OK [READ-WRITE] Ok" {
		t.Fatalf("resume after LOGOUT (PRESERVE): %q", got)
	}
}

// §6: logout-param-data = logout-param *(SP logout-param): an empty
// parameter list is a syntax error (BAD, RFC 3501 §7.1.5), not a LOGOUT.
func TestSIDDraftLogoutEmptyParams(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	newSID(t, a, "a")
	if got := a.Cmd("x", "LOGOUT ()"); !strings.HasPrefix(got[len(got)-1], "x BAD") {
		t.Fatalf("LOGOUT (): got %q, want BAD", got)
	}
	a.Expect("n", "NOOP", "n OK NOOP completed")
}

// §3.1: the session state includes "Any state associated with the current
// IMAP connection, but is not the state of the selected mailbox": what
// ENABLE QRESYNC turned on comes back with the session (a live expunge is
// then VANISHED, RFC 7162 §3.2.10), and so does EXPUNGED reporting turned
// on by UID FETCH (REPORTEXPUNGES).
func TestSIDDraftEnabledRestored(t *testing.T) {
	env, uv, w := seeded(t, 4) // HIGHESTMODSEQ 5
	a := env.DialLogin(t)
	a.Expect("e", "ENABLE QRESYNC", "* ENABLED QRESYNC", "e OK ENABLE completed")
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	a.NC.Close()

	b := env.DialLogin(t)
	b.ExpectTagged("b", fmt.Sprintf("SID %s %d 5", id, uv), "b OK [READ-WRITE] Ok")
	expungeUIDs(t, w, "2")
	got := b.Cmd("n", "NOOP")
	if !slices.Contains(got, "* VANISHED 2") || draftCount(got, "* 2 EXPUNGE") != 0 {
		t.Errorf("live expunge after resuming a QRESYNC session: %q", got)
	}

	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	c.ExpectTagged("r", "UID FETCH 1 (UID) (REPORTEXPUNGES)", "r OK")
	id2 := newSID(t, c, "a")
	c.NC.Close()
	d := env.DialLogin(t)
	d.ExpectTagged("d", fmt.Sprintf("SID %s %d 7", id2, uv), "d OK [READ-WRITE] Ok")
	expungeUIDs(t, w, "3")
	got = d.Cmd("n", "NOOP")
	if !slices.Contains(got, "* EXPUNGED 3") || draftCount(got, "* 2 EXPUNGE") != 0 {
		t.Errorf("live expunge after resuming a REPORTEXPUNGES session: %q", got)
	}
}

// The extensions the new
// connection enabled before SID are kept, together with the session's
// (§3.1 "Any state associated with the current IMAP connection"; RFC 5161
// §3.1: nothing can disable an extension once enabled). ENABLED lists
// only what a command newly enabled, so a bare "* ENABLED" shows it was
// already on.
func TestSIDDraftEnabledUnion(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	plain := newSID(t, a, "a") // nothing enabled
	draftPreserve(t, a)
	a = env.DialLogin(t)
	a.Expect("e", "ENABLE QRESYNC", "* ENABLED QRESYNC", "e OK ENABLE completed")
	withQ := newSID(t, a, "a")
	draftPreserve(t, a)

	// The connection's QRESYNC survives resuming a session without it.
	b := env.DialLogin(t)
	b.Expect("e", "ENABLE QRESYNC", "* ENABLED QRESYNC", "e OK ENABLE completed")
	b.Expect("b", "SID "+plain+" 1 1", "* SELECTED", "b OK SID completed: session resumed")
	b.Expect("e2", "ENABLE QRESYNC", "* ENABLED", "e2 OK ENABLE completed")

	// The session's QRESYNC comes back on a connection without it.
	c := env.DialLogin(t)
	c.Expect("c", "SID "+withQ+" 1 1", "* SELECTED", "c OK SID completed: session resumed")
	c.Expect("e3", "ENABLE QRESYNC", "* ENABLED", "e3 OK ENABLE completed")
}

// §3.1: the session state includes
// "The number of recent messages (RECENT)". Messages recent in the
// session are recent again after the resume (RECENT and \Recent), and in
// no other session.
func TestSIDDraftRecentRestored(t *testing.T) {
	env := imaptest.Start(t, nil)
	p := env.DialLogin(t)
	appendMsg(t, p, "p1", "INBOX", "", testMsg)
	appendMsg(t, p, "p2", "INBOX", "", testMsg)
	a := env.DialLogin(t)
	got := a.Cmd("s", "SELECT INBOX")
	if !slices.Contains(got, "* 2 RECENT") {
		t.Fatalf("SELECT: %q", got)
	}
	uv := draftUV(t, a, "INBOX")
	id := newSID(t, a, "a")
	a.NC.Close()

	o := env.DialLogin(t)
	if got := o.Cmd("o", "SELECT INBOX"); !slices.Contains(got, "* 0 RECENT") {
		t.Errorf("another session's SELECT: %q", got)
	}
	b := env.DialLogin(t)
	got = b.Cmd("b", fmt.Sprintf("SID %s %d 1", id, uv))
	if !slices.Contains(got, "* 2 RECENT") {
		t.Errorf("resume: want * 2 RECENT, got %q", got)
	}
	got = b.Cmd("f", "FETCH 1:* (FLAGS)")
	if len(got) != 3 || !strings.Contains(got[0], `\Recent`) || !strings.Contains(got[1], `\Recent`) {
		t.Errorf(`FETCH after resume: want \Recent on both, got %q`, got)
	}
	x := env.DialLogin(t)
	if got := x.Cmd("x", "EXAMINE INBOX"); !slices.Contains(got, "* 0 RECENT") {
		t.Errorf("EXAMINE elsewhere after the resume: %q", got)
	}
}

// A resume on a connection that has
// a mailbox selected closes it first: "* OK [CLOSED]" (RFC 7162 §3.2.11,
// as for SELECT), before SELECTED, whether the session has a mailbox
// (then selected) or not (then the authenticated state).
func TestSIDDraftClosedFirst(t *testing.T) {
	env, uv, _ := seeded(t, 1) // HIGHESTMODSEQ 2
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	withBox := newSID(t, a, "a")
	draftPreserve(t, a)
	a = env.DialLogin(t)
	none := newSID(t, a, "a2")
	draftPreserve(t, a)

	b := env.DialLogin(t)
	b.ExpectTagged("s", "SELECT Sent", "s OK [READ-WRITE]")
	got := b.Cmd("b", fmt.Sprintf("SID %s %d 2", withBox, uv))
	if len(got) < 3 || !strings.HasPrefix(got[0], "* OK [CLOSED]") || got[1] != "* SELECTED INBOX" ||
		got[len(got)-1] != "b OK [READ-WRITE] Ok" {
		t.Errorf("resume of a selected session on a selected connection: %q", got)
	}

	c := env.DialLogin(t)
	c.ExpectTagged("s", "SELECT Sent", "s OK [READ-WRITE]")
	got = c.Cmd("c", "SID "+none+" 1 1")
	if len(got) != 3 || !strings.HasPrefix(got[0], "* OK [CLOSED]") || got[1] != "* SELECTED" || got[2] != "c OK SID completed: session resumed" {
		t.Errorf("resume of an unselected session on a selected connection: %q", got)
	}
	c.Expect("f", "FETCH 1 (UID)", "f BAD FETCH not allowed in the authenticated state")
}

// §3.3: "If the server was unable
// to cache all events since the MODSEQ and hence is unable to send them to
// the client, the server MUST return the NEWSID response ... the NEWSID
// response MAY contain the same SID", as in the draft's example (NEWSID
// first, then SELECTED and the SELECT responses, no FETCH or EXPUNGED,
// "OK [READ-WRITE]"). The store keeps 2 tombstones per mailbox; 3
// expunges while away purge one the client needs.
func TestSIDDraftTombstonesPurged(t *testing.T) {
	for _, ro := range []bool{false, true} {
		env := imaptest.StartStore(t, sqlite.Options{TombstoneMaxCount: 2}, nil)
		uv := seed(t, env, 5) // HIGHESTMODSEQ 6
		w := selectedW(t, env)
		a := env.DialLogin(t)
		cmd, mode := "SELECT INBOX", "READ-WRITE"
		if ro {
			cmd, mode = "EXAMINE INBOX", "READ-ONLY"
		}
		a.ExpectTagged("s", cmd, "s OK ["+mode+"]")
		id := newSID(t, a, "a")
		a.NC.Close()
		expungeUIDs(t, w, "1")                                      // 7, 8
		expungeUIDs(t, w, "2")                                      // 9, 10
		expungeUIDs(t, w, "3")                                      // 11, 12
		w.ExpectTagged("w1", `UID STORE 4 +FLAGS (\Seen)`, "w1 OK") // 13

		ctx := context.Background()
		u, err := env.Store.UserByName(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if ch, err := env.Store.ChangesSince(ctx, u.ID, mb.ID, 6); err != nil || ch.Complete {
			t.Fatalf("precondition: tombstones since 6 should be incomplete: %+v, %v", ch, err)
		}

		b := env.DialLogin(t)
		got := b.Cmd("A02", fmt.Sprintf("SID %s %d 6 1:5", id, uv))
		want := draftWant([]string{"* NEWSID " + id, "* SELECTED INBOX"},
			draftSel{uv: uv, exists: 2, unseen: 2, uidNext: 6, hms: 13, readOnly: ro},
			"A02 OK ["+mode+"] SID completed: resync required")
		checkLines(t, got, want)
	}
}

// §3.1: the same id under another user is another session (complements
// TestSIDUnknownAndOtherUser): bob's SID with alice's id never resumes
// or displaces alice's, even while it is inactive.
func TestSIDDraftOtherUserInactive(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK")
	id := newSID(t, a, "a")
	draftPreserve(t, a)
	h, err := auth.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.CreateUser(context.Background(), "bob", h, store.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	b := env.Dial(t)
	b.ExpectTagged("l", "LOGIN bob pw", "l OK")
	draftNewID(t, b.Cmd("b", "SID "+id+" 1 1"), "b", id)
	c := env.DialLogin(t)
	got := c.Cmd("c", "SID "+id+" 1 1")
	if got[0] != "* SELECTED INBOX" {
		t.Fatalf("alice's session after bob's SID: %q", got)
	}
}

// A mod-sequence above the mailbox's HIGHESTMODSEQ was never sent by this
// server for the mailbox (the client's cache is not ours): a delta from it
// would be empty however much changed, so the client must resynchronize.
// §3.3's NEWSID for events the server cannot report, with the same id,
// then SELECTED and the full SELECT responses, no deltas.
func TestSIDDraftModSeqBeyond(t *testing.T) {
	env, uv, _ := seeded(t, 2) // HIGHESTMODSEQ 3
	a := env.DialLogin(t)
	a.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	id := newSID(t, a, "a")
	draftPreserve(t, a)

	b := env.DialLogin(t)
	got := b.Cmd("r", fmt.Sprintf("SID %s %d 4", id, uv))
	if len(got) < 3 || got[0] != "* NEWSID "+id || got[1] != "* SELECTED INBOX" ||
		got[len(got)-1] != "r OK [READ-WRITE] SID completed: resync required" ||
		!slices.Contains(got, "* 2 EXISTS") || draftCount(got, "FETCH") != 0 || draftCount(got, "EXPUNGED") != 0 {
		t.Fatalf("resume from a mod-sequence above HIGHESTMODSEQ: %q", got)
	}
	// At HIGHESTMODSEQ itself it resumes with no changes.
	c := env.DialLogin(t)
	got = c.Cmd("r", fmt.Sprintf("SID %s %d 3", id, uv))
	if got[0] != "* SELECTED INBOX" || got[len(got)-1] != "r OK [READ-WRITE] Ok" || draftCount(got, "NEWSID") != 0 {
		t.Fatalf("resume at HIGHESTMODSEQ: %q", got)
	}
}

// A session id is short: a literal announcing more is refused before the
// continuation request (the server never reads it), and one holding NUL
// is BAD (CHAR8 excludes it, RFC 3501 §9); neither touches a session.
func TestSIDDraftIDBounds(t *testing.T) {
	env := imaptest.Start(t, nil)
	a := env.DialLogin(t)
	id := newSID(t, a, "a")
	a.SendLine("b SID {2000000}")
	if got := a.ReadLine(); got != "b BAD [LIMIT] session id too long" {
		t.Fatalf("2 MB session id: %q", got)
	}
	// The connection goes on, still holding its session.
	a.SendLine("c SID {3}")
	if got := a.ReadLine(); !strings.HasPrefix(got, "+ ") {
		t.Fatalf("small literal: %q", got)
	}
	a.SendLine("a\x00b 1 1")
	if got := a.ReadLine(); !strings.HasPrefix(got, "c BAD ") || !strings.Contains(got, "NUL") {
		t.Fatalf("NUL in a session id: %q", got)
	}
	a.Expect("d", "SID "+strings.Repeat("x", 65)+" 1 1", "d BAD Syntax error: session id too long")
	// A non-synchronizing literal too long is skipped.
	a.SendLine("e SID {70+}")
	a.SendLine(strings.Repeat("y", 70) + " 1 1")
	if got := a.ReadLine(); got != "e BAD [LIMIT] session id too long" {
		t.Fatalf("LITERAL+ session id: %q", got)
	}
	u, err := env.Store.UserByName(context.Background(), env.User)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.LoadSession(context.Background(), u.ID, id); err != nil {
		t.Fatalf("session after the refused SIDs: %v", err)
	}
	a.Expect("f", "DELETESID", "f OK DELETESID completed")
	if _, err := env.Store.LoadSession(context.Background(), u.ID, id); err == nil {
		t.Error("session survived DELETESID")
	}
}

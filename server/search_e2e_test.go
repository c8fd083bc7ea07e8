package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

// countingStore counts the per-message loads a search makes.
type countingStore struct {
	store.Store
	infos, infoUIDs, bodies, headers atomic.Int64
}

func (s *countingStore) MessageInfos(ctx context.Context, userID, mailboxID int64, uids []uint32) ([]store.MessageInfo, error) {
	s.infos.Add(1)
	s.infoUIDs.Add(int64(len(uids)))
	return s.Store.MessageInfos(ctx, userID, mailboxID, uids)
}

func (s *countingStore) MessageBody(ctx context.Context, userID, mailboxID int64, uid uint32) ([]byte, error) {
	s.bodies.Add(1)
	return s.Store.MessageBody(ctx, userID, mailboxID, uid)
}

func (s *countingStore) MessagePrefixes(ctx context.Context, userID, mailboxID int64, reqs []store.PrefixRequest) ([][]byte, error) {
	s.headers.Add(int64(len(reqs)))
	return s.Store.MessagePrefixes(ctx, userID, mailboxID, reqs)
}

func (s *countingStore) reset() {
	s.infos.Store(0)
	s.infoUIDs.Store(0)
	s.bodies.Store(0)
	s.headers.Store(0)
}

// startCounting starts a server whose store counts message loads, with
// no message cache: the counts are what a search loads from the store.
func startCounting(t testing.TB) (*imaptest.Env, *countingStore) {
	var cs *countingStore
	env := imaptest.Start(t, func(o *server.Options) {
		cs = &countingStore{Store: o.Store}
		o.Store = cs
		o.MessageCacheBytes = -1
	})
	return env, cs
}

type testMessage struct {
	flags []string
	date  time.Time
	raw   string
}

// appendMessages stores messages in mailbox directly, with their MIME
// structure as APPEND would cache it (and every other one with its
// header's length).
func appendMessages(t testing.TB, env *imaptest.Env, mailbox string, msgs []testMessage) []uint32 {
	t.Helper()
	ctx := context.Background()
	u, err := env.Store.UserByName(ctx, env.User)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := env.Store.MailboxByName(ctx, u.ID, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	nms := make([]store.NewMessage, len(msgs))
	for i, m := range msgs {
		p, err := message.Parse([]byte(m.raw))
		if err != nil {
			t.Fatal(err)
		}
		nms[i] = store.NewMessage{Flags: m.flags, InternalDate: m.date, Body: []byte(m.raw), Structure: p.Marshal()}
		if i%2 == 1 {
			// As APPEND does; every other message without, as stored
			// before the store kept headers apart (schema v7).
			nms[i].HeaderLen = p.BodyStart
		}
	}
	uids, _, err := env.Store.AppendMessages(ctx, u.ID, mb.ID, nms)
	if err != nil {
		t.Fatal(err)
	}
	return uids
}

func expunge(t testing.TB, env *imaptest.Env, mailbox string, uids ...uint32) {
	t.Helper()
	ctx := context.Background()
	u, _ := env.Store.UserByName(ctx, env.User)
	mb, _ := env.Store.MailboxByName(ctx, u.ID, mailbox)
	if _, err := env.Store.Expunge(ctx, u.ID, mb.ID, uids); err != nil {
		t.Fatal(err)
	}
}

func selectBox(t testing.TB, c *imaptest.Conn, tag, mailbox string) {
	t.Helper()
	got := c.Cmd(tag, "SELECT "+mailbox)
	if last := got[len(got)-1]; !strings.HasPrefix(last, tag+" OK") {
		t.Fatalf("SELECT: %q", got)
	}
}

func zone(h int) *time.Location { return time.FixedZone("", h*3600) }

// The test mailbox: UID 1 is expunged, so that sequence number n is UID
// n+1.
var searchMsgs = []testMessage{
	{nil, time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC), "Subject: gone\r\n\r\ngone\r\n"},
	// seq 1, UID 2
	{[]string{`\Seen`}, time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC),
		"Date: Mon, 1 Jan 2024 09:00:00 +0000\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Hello world\r\n\r\nfirst body\r\n"},
	// seq 2, UID 3: internal date 15 Feb in its zone, 16 Feb in UTC.
	{[]string{`\Answered`, `\Flagged`}, time.Date(2024, 2, 15, 23, 30, 0, 0, zone(-8)),
		"Date: Thu, 15 Feb 2024 23:00:00 -0800\r\nFrom: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\r\nTo: Bob <bob@example.org>\r\n" +
			"Subject: =?UTF-8?Q?Re:_Caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n"},
	// seq 3, UID 4: no Date: header; internal date 1 March in its zone.
	{[]string{`\Deleted`, "$Work"}, time.Date(2024, 3, 1, 0, 0, 0, 0, zone(1)),
		"From: carol@example.net\r\nCc: Carol <carol@example.net>\r\nBcc: dave@example.com\r\nSubject: Report\r\n" +
			"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString([]byte("quarterly numbers attached\r\n")) + "\r\n"},
	// seq 4, UID 5: large.
	{[]string{`\Draft`}, time.Date(2024, 3, 2, 12, 0, 0, 0, time.UTC),
		"Date: Sat, 2 Mar 2024 12:00:00 +0000\r\nX-Spam: yes\r\nSubject: draft\r\n\r\n" + strings.Repeat("padding line\r\n", 100)},
	// seq 5, UID 6: an unparseable Date: header.
	{nil, time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC),
		"Date: garbage\r\nSubject: plain\r\n\r\nnothing here\r\n"},
	// seq 6, UID 7
	{[]string{`\Seen`, "$work"}, time.Date(2024, 3, 4, 12, 0, 0, 0, time.UTC),
		"Subject: last\r\nList-Id: <dev.example.org>\r\n\r\nthe end\r\n"},
}

func setupSearch(t *testing.T) (*imaptest.Env, *countingStore, *imaptest.Conn) {
	env, cs := startCounting(t)
	appendMessages(t, env, "INBOX", searchMsgs)
	expunge(t, env, "INBOX", 1)
	c := env.DialLogin(t)
	selectBox(t, c, "s1", "INBOX")
	return env, cs, c
}

func TestSearchKeys(t *testing.T) {
	_, _, c := setupSearch(t)
	tests := []struct{ search, want string }{
		{"ALL", "1 2 3 4 5 6"},
		{"SEEN", "1 6"},
		{"UNSEEN", "2 3 4 5"},
		{"ANSWERED", "2"},
		{"UNANSWERED", "1 3 4 5 6"},
		{"FLAGGED", "2"},
		{"UNFLAGGED", "1 3 4 5 6"},
		{"DELETED", "3"},
		{"UNDELETED", "1 2 4 5 6"},
		{"DRAFT", "4"},
		{"UNDRAFT", "1 2 3 5 6"},
		{"KEYWORD $work", "3 6"},
		{"KEYWORD $WORK", "3 6"},
		{"KEYWORD $nothing", ""},
		{"UNKEYWORD $Work", "1 2 4 5"},
		// This session is the first to select: everything is recent.
		{"RECENT", "1 2 3 4 5 6"},
		{"NEW", "2 3 4 5"},
		{"OLD", ""},
		{"BEFORE 15-Feb-2024", "1"},
		{"ON 15-Feb-2024", "2"},
		{"ON 16-Feb-2024", ""},
		{"SINCE 16-Feb-2024", "3 4 5 6"},
		{"ON 1-Mar-2024", "3"},
		{"ON 29-Feb-2024", ""},
		{"SENTBEFORE 2-Mar-2024", "1 2"},
		{"SENTON 15-Feb-2024", "2"},
		{"SENTSINCE 1-Feb-2024", "2 4"},
		{"NOT SENTSINCE 1-Feb-2024", "1 3 5 6"},
		{"LARGER 1000", "4"},
		{"SMALLER 60", "5 6"},
		{"FROM alice", "1"},
		{`FROM "jürgen"`, "2"},
		{`FROM "JÜRGEN"`, "2"},
		{"FROM example.de", "2"},
		{"TO bob", "1 2"},
		{"CC carol", "3"},
		{"BCC DAVE", "3"},
		{`SUBJECT "café"`, "2"},
		{`SUBJECT "re: CAFÉ"`, "2"},
		{"SUBJECT hello", "1"},
		{"HEADER X-Spam yes", "4"},
		{"HEADER x-spam no", ""},
		{`HEADER List-Id ""`, "6"},
		{`BODY "köln"`, "2"},
		{"BODY quarterly", "3"},
		{"BODY hello", ""},
		{"TEXT hello", "1"},
		{"TEXT carol", "3"},
		{"TEXT padding", "4"},
		{"UID 3:5", "2 3 4"},
		{"UID 1", ""},
		{"UID 100:*", "6"},
		{"2:3", "2 3"},
		{"*", "6"},
		{"5:*", "5 6"},
		{"100", ""},
		{"OR SEEN FLAGGED", "1 2 6"},
		{"NOT SEEN", "2 3 4 5"},
		{"OR (DELETED) (DRAFT)", "3 4"},
		{"SEEN SUBJECT hello", "1"},
		{"(UNSEEN SMALLER 60)", "5"},
		{`NOT (OR BODY "köln" SEEN)`, "3 4 5"},
		{"OR NOT BODY nothing LARGER 1000", "1 2 3 4 6"},
		{"CHARSET UTF-8 TO bob", "1 2"},
		{"charset us-ascii SEEN", "1 6"},
		{"all", "1 2 3 4 5 6"},
	}
	for i, tt := range tests {
		tag := "a" + strconv.Itoa(i)
		want := "* SEARCH"
		if tt.want != "" {
			want += " " + tt.want
		}
		c.Expect(tag, "SEARCH "+tt.search, want, tag+" OK SEARCH completed")
	}
}

func TestUIDSearch(t *testing.T) {
	_, _, c := setupSearch(t)
	c.Expect("u1", "UID SEARCH ALL", "* SEARCH 2 3 4 5 6 7", "u1 OK UID SEARCH completed")
	c.Expect("u2", "UID SEARCH UNSEEN", "* SEARCH 3 4 5 6", "u2 OK UID SEARCH completed")
	c.Expect("u3", "UID SEARCH UID 3:5", "* SEARCH 3 4 5", "u3 OK UID SEARCH completed")
	c.Expect("u4", "UID SEARCH 2:3", "* SEARCH 3 4", "u4 OK UID SEARCH completed")
	c.Expect("u5", "uid search UID 100:*", "* SEARCH 7", "u5 OK UID SEARCH completed")
	c.Expect("u6", `UID SEARCH BODY "köln"`, "* SEARCH 3", "u6 OK UID SEARCH completed")
	c.Expect("u7", "UID SEARCH KEYWORD none", "* SEARCH", "u7 OK UID SEARCH completed")
}

func TestSearchRecentOtherSession(t *testing.T) {
	env, _, c := setupSearch(t)
	c.Expect("a1", "SEARCH RECENT", "* SEARCH 1 2 3 4 5 6", "a1 OK SEARCH completed")
	d := env.DialLogin(t)
	selectBox(t, d, "s2", "INBOX")
	d.Expect("b1", "SEARCH RECENT", "* SEARCH", "b1 OK SEARCH completed")
	d.Expect("b2", "SEARCH OLD", "* SEARCH 1 2 3 4 5 6", "b2 OK SEARCH completed")
	d.Expect("b3", "SEARCH NEW", "* SEARCH", "b3 OK SEARCH completed")
}

func TestSearchLiterals(t *testing.T) {
	_, _, c := setupSearch(t)
	// A synchronizing literal with 8-bit UTF-8.
	c.SendLine("l1 SEARCH CHARSET UTF-8 SUBJECT {5}")
	if l := c.ReadLine(); l != "+ Ready for literal data" {
		t.Fatalf("got %q", l)
	}
	c.SendLine("Café")
	if got := c.ReadUntilTagged("l1"); strings.Join(got, "|") != "* SEARCH 2|l1 OK SEARCH completed" {
		t.Errorf("l1: %q", got)
	}
	// Non-synchronizing literals, two in one command.
	c.Send("l2 UID SEARCH HEADER {6+}\r\nX-SPAM {3+}\r\nYES\r\n")
	if got := c.ReadUntilTagged("l2"); strings.Join(got, "|") != "* SEARCH 5|l2 OK UID SEARCH completed" {
		t.Errorf("l2: %q", got)
	}
	// Quoted 8-bit.
	c.Expect("l3", "SEARCH TEXT \"GRÜSSE\"", "* SEARCH", "l3 OK SEARCH completed")
	c.Expect("l4", "SEARCH TEXT \"GRÜßE\"", "* SEARCH 2", "l4 OK SEARCH completed")
}

func TestESearch(t *testing.T) {
	_, _, c := setupSearch(t)
	c.Expect("e1", "SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN",
		`* ESEARCH (TAG "e1") MIN 2 MAX 5 COUNT 4 ALL 2:5`, "e1 OK SEARCH completed")
	c.Expect("e2", "UID SEARCH RETURN () SEEN",
		`* ESEARCH (TAG "e2") UID ALL 2,7`, "e2 OK UID SEARCH completed")
	c.Expect("e3", "SEARCH RETURN (COUNT) KEYWORD nothing",
		`* ESEARCH (TAG "e3") COUNT 0`, "e3 OK SEARCH completed")
	c.Expect("e4", "SEARCH RETURN (MIN MAX ALL) KEYWORD nothing",
		`* ESEARCH (TAG "e4")`, "e4 OK SEARCH completed")
	c.Expect("e5", "UID SEARCH RETURN (MIN) UNDELETED",
		`* ESEARCH (TAG "e5") UID MIN 2`, "e5 OK UID SEARCH completed")
	c.Expect("e6", "SEARCH RETURN (max) ALL",
		`* ESEARCH (TAG "e6") MAX 6`, "e6 OK SEARCH completed")
	c.Expect("e7", "SEARCH RETURN (ALL) OR DELETED OR DRAFT SEEN",
		`* ESEARCH (TAG "e7") ALL 1,3:4,6`, "e7 OK SEARCH completed")
	c.Expect("e8", "UID SEARCH RETURN (COUNT MIN) CHARSET UTF-8 TEXT the",
		`* ESEARCH (TAG "e8") UID MIN 7 COUNT 1`, "e8 OK UID SEARCH completed")
	c.Expect("e9", "SEARCH RETURN (COUNT ALL) 1:*",
		`* ESEARCH (TAG "e9") COUNT 6 ALL 1:6`, "e9 OK SEARCH completed")
}

func TestSearchErrors(t *testing.T) {
	env, _, c := setupSearch(t)
	c.Expect("c1", "SEARCH CHARSET X-MAC-KLINGON TEXT x",
		"c1 NO [BADCHARSET (UTF-8 US-ASCII)] Charset X-MAC-KLINGON not supported")
	c.Expect("c2", `SEARCH CHARSET "ISO-2022-KR" ALL`,
		"c2 NO [BADCHARSET (UTF-8 US-ASCII)] Charset ISO-2022-KR not supported")
	c.Expect("c3", "SEARCH", "c3 BAD Syntax error: expected SP, found end of line")
	c.Expect("c4", "SEARCH FOO", "c4 BAD Syntax error: unknown search key FOO")
	c.Expect("c5", "SEARCH ()", "c5 BAD Syntax error: empty search key list")
	c.Expect("c6", "SEARCH RETURN (SAVE) ALL", "c6 BAD Syntax error: unknown SEARCH return option SAVE")
	c.ExpectTagged("c7", "SEARCH BEFORE 31-Feb-2024", "c7 BAD Syntax error")
	c.ExpectTagged("c8", "SEARCH (SEEN", "c8 BAD Syntax error")
	c.ExpectTagged("c9", "SEARCH SEEN)", "c9 BAD Syntax error")
	c.ExpectTagged("c10", "SEARCH OR SEEN", "c10 BAD Syntax error")
	c.ExpectTagged("c11", "SEARCH 0", "c11 BAD Syntax error")
	c.ExpectTagged("c12", "SEARCH LARGER -1", "c12 BAD Syntax error")
	c.ExpectTagged("c13", "SEARCH "+strings.Repeat("NOT ", 100)+"SEEN", "c13 BAD [LIMIT]")
	c.ExpectTagged("c14", "SEARCH "+strings.Repeat("SEEN ", 2000)+"SEEN", "c14 BAD [LIMIT]")
	// A refused literal in a bad search is skipped.
	c.Send("c15 SEARCH FOO {3+}\r\nabc\r\n")
	if got := c.ReadUntilTagged("c15"); !strings.HasPrefix(got[len(got)-1], "c15 BAD") {
		t.Errorf("c15: %q", got)
	}
	// The connection is still usable.
	c.Expect("c16", "SEARCH SEEN", "* SEARCH 1 6", "c16 OK SEARCH completed")

	// Not in the authenticated state.
	d := env.DialLogin(t)
	d.ExpectTagged("d1", "SEARCH ALL", "d1 BAD")
	d.ExpectTagged("d2", "UID SEARCH ALL", "d2 BAD")
}

func TestSearchEmptyMailbox(t *testing.T) {
	env, _, _ := setupSearch(t)
	c := env.DialLogin(t)
	selectBox(t, c, "s", "Drafts")
	c.Expect("a1", "SEARCH ALL", "* SEARCH", "a1 OK SEARCH completed")
	c.Expect("a2", "SEARCH *", "* SEARCH", "a2 OK SEARCH completed")
	c.Expect("a3", "UID SEARCH BODY x", "* SEARCH", "a3 OK UID SEARCH completed")
	c.Expect("a4", "SEARCH RETURN (COUNT MIN) ALL", `* ESEARCH (TAG "a4") COUNT 0`, "a4 OK SEARCH completed")
}

// TestSearchLoadsLazily checks which searches touch the store, and for
// which messages.
func TestSearchLoadsLazily(t *testing.T) {
	_, cs, c := setupSearch(t)
	tests := []struct {
		search                           string
		infos, infoUIDs, bodies, headers int64
	}{
		{"UNSEEN", 0, 0, 0, 0},
		{"OR (KEYWORD $work NOT 3) UID 2:4", 0, 0, 0, 0},
		{"NEW", 0, 0, 0, 0},
		{"SINCE 1-Mar-2024", 1, 6, 0, 0},
		{"SEEN LARGER 10", 1, 2, 0, 0},
		{"BODY x SEEN", 1, 2, 2, 0},
		{"OR SEEN BODY x", 1, 4, 4, 0},
		{"SEEN SENTON 1-Jan-2024", 1, 2, 0, 0},
		{"LARGER 1000 BODY padding", 1, 6, 1, 0},
		{"NOT (DRAFT) TEXT x", 1, 5, 5, 0},
		// Header keys read headers only; with a body key, whole
		// messages. The headers kept apart (odd messages) come first,
		// without infos; the others after their infos, cut at the
		// length the structure gives.
		{"FROM x", 1, 3, 0, 6 + 3},
		{"SEEN SUBJECT x", 1, 1, 0, 2 + 1},
		// A header that does not decide: infos for all.
		{"NOT SUBJECT x SINCE 1-Mar-2024", 1, 6, 0, 6 + 2},
		// One that does (AND with a false key): infos for the others.
		{"SUBJECT x SINCE 1-Mar-2024", 1, 3, 0, 6 + 2},
		{"OR SUBJECT x BODY y", 1, 6, 6, 0},
	}
	for i, tt := range tests {
		cs.reset()
		tag := "z" + strconv.Itoa(i)
		got := c.Cmd(tag, "SEARCH "+tt.search)
		if !strings.HasPrefix(got[len(got)-1], tag+" OK") {
			t.Errorf("%s: %q", tt.search, got)
		}
		if cs.infos.Load() != tt.infos || cs.infoUIDs.Load() != tt.infoUIDs || cs.bodies.Load() != tt.bodies || cs.headers.Load() != tt.headers {
			t.Errorf("%s: %d MessageInfos calls for %d UIDs, %d bodies, %d headers; want %d, %d, %d, %d",
				tt.search, cs.infos.Load(), cs.infoUIDs.Load(), cs.bodies.Load(), cs.headers.Load(),
				tt.infos, tt.infoUIDs, tt.bodies, tt.headers)
		}
	}
}

// fill100k appends n small messages, one in ten unseen.
func fillMailbox(b testing.TB, env *imaptest.Env, n int) {
	const batch = 5000
	date := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += batch {
		msgs := make([]testMessage, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			var flags []string
			if j%10 != 0 {
				flags = []string{`\Seen`}
			}
			msgs = append(msgs, testMessage{flags, date, fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", j, j)})
		}
		appendMessages(b, env, "INBOX", msgs)
	}
}

// BenchmarkSearchUnseen100k measures SEARCH UNSEEN over TCP in a mailbox
// of 100,000 messages (10,000 unseen), response included.
func BenchmarkSearchUnseen100k(b *testing.B) {
	const n = 100_000
	env, cs := startCounting(b)
	fillMailbox(b, env, n)
	c := env.DialLogin(b)
	selectBox(b, c, "s", "INBOX")
	cs.reset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := c.Cmd("b", "SEARCH UNSEEN")
		if len(got) != 2 || !strings.HasPrefix(got[0], "* SEARCH 1 11 21 ") || got[1] != "b OK SEARCH completed" {
			b.Fatalf("unexpected response (%d lines)", len(got))
		}
		if k := strings.Count(got[0], " "); k != 1+n/10 {
			b.Fatalf("%d results", k-1)
		}
	}
	b.StopTimer()
	if cs.infos.Load()+cs.bodies.Load() != 0 {
		b.Fatalf("SEARCH UNSEEN loaded from the store")
	}
}

// TestSearchChunks searches a mailbox larger than one evaluation chunk.
func TestSearchChunks(t *testing.T) {
	env, cs := startCounting(t)
	const n = 1200
	msgs := make([]testMessage, n)
	var wantBody, wantBoth, wantSince []string
	for i := range msgs {
		seq := strconv.Itoa(i + 1)
		body := "hay\r\n"
		if i%7 == 0 {
			body = "a NEEDLE here\r\n"
			wantBody = append(wantBody, seq)
		}
		var flags []string
		if i%2 == 0 {
			flags = []string{`\Seen`}
		} else if i%7 == 0 {
			wantBoth = append(wantBoth, seq)
		}
		day := 1 + i%28
		if day >= 20 {
			wantSince = append(wantSince, seq)
		}
		msgs[i] = testMessage{flags, time.Date(2024, 5, day, 12, 0, 0, 0, time.UTC), "Subject: s\r\n\r\n" + body}
	}
	appendMessages(t, env, "INBOX", msgs)
	c := env.DialLogin(t)
	selectBox(t, c, "s", "INBOX")
	cs.reset()
	c.Expect("a1", "SEARCH BODY needle", "* SEARCH "+strings.Join(wantBody, " "), "a1 OK SEARCH completed")
	if cs.infos.Load() != 3 || cs.bodies.Load() != n {
		t.Errorf("BODY: %d MessageInfos calls, %d bodies", cs.infos.Load(), cs.bodies.Load())
	}
	cs.reset()
	c.Expect("a2", "SEARCH UNSEEN BODY needle", "* SEARCH "+strings.Join(wantBoth, " "), "a2 OK SEARCH completed")
	if cs.bodies.Load() != n/2 {
		t.Errorf("UNSEEN BODY: %d bodies", cs.bodies.Load())
	}
	c.Expect("a3", "SEARCH SINCE 20-May-2024", "* SEARCH "+strings.Join(wantSince, " "), "a3 OK SEARCH completed")
	c.Expect("a4", "SEARCH RETURN (COUNT) SINCE 20-May-2024", fmt.Sprintf(`* ESEARCH (TAG "a4") COUNT %d`, len(wantSince)), "a4 OK SEARCH completed")
}

package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// The message half of the suite (store.Messages). Beyond the doc comments
// it pins down:
//   - an appended message's UID is the mailbox's UIDNext before the
//     append, and one append call of n messages takes one MODSEQ;
//   - INTERNALDATE keeps whole seconds and the zone offset;
//   - MessageBody of a UID that does not exist is ErrNotFound;
//   - unknown UIDs are ignored by every method (no error);
//   - Expunge, UpdateFlags, Copy and Move that change nothing take no
//     MODSEQ;
//   - COPY and MOVE into the source mailbox itself are allowed;
//   - ChangesSince(HighestModSeq) is empty and complete;
//   - UIDChangesSince answers what ChangesSince answers, UIDs only (the
//     changed ones only when asked for);
//   - a keyword stored (APPEND, STORE, COPY, MOVE) in another case than a
//     message of the mailbox already has it takes the mailbox's spelling,
//     so that the mailbox never holds one keyword in two spellings (a
//     backend may also remember spellings no message has any more).

// messageTests are added to Run's list.
func messageTests() []struct {
	name string
	fn   func(t *testing.T, s store.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Append", testAppend},
		{"AppendEmpty", testAppendEmpty},
		{"Bodies", testBodies},
		{"OpenBody", testOpenBody},
		{"PrefixesWithHeaderLen", testPrefixesWithHeaderLen},
		{"MessageInfos", testMessageInfos},
		{"FlagNormalisation", testFlagNormalisation},
		{"UpdateFlags", testUpdateFlags},
		{"KeywordSpelling", testKeywordSpelling},
		{"UnchangedSince", testUnchangedSince},
		{"Expunge", testExpunge},
		{"ChangesSince", testChangesSince},
		{"UIDChangesSince", testUIDChangesSince},
		{"Copy", testCopy},
		{"Move", testMove},
		{"CopyMoveSameMailbox", testCopyMoveSameMailbox},
		{"MessageOwnership", testMessageOwnership},
		{"MessageNoSelect", testMessageNoSelect},
		{"MailboxOpsWithMessages", testMailboxOpsWithMessages},
		{"MessageConcurrency", testMessageConcurrency},
	}
}

// ---- helpers ----

func msg(body string, flags ...string) store.NewMessage {
	return store.NewMessage{
		Flags:        flags,
		InternalDate: time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600)),
		Body:         []byte(body),
	}
}

func mustAppend(t *testing.T, s store.Store, userID, mailboxID int64, msgs ...store.NewMessage) ([]uint32, store.Mailbox) {
	t.Helper()
	uids, mb, err := s.AppendMessages(context.Background(), userID, mailboxID, msgs)
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	if len(uids) != len(msgs) {
		t.Fatalf("AppendMessages returned %d UIDs for %d messages", len(uids), len(msgs))
	}
	return uids, mb
}

func mustIndex(t *testing.T, s store.Store, userID, mailboxID int64) ([]store.MessageMeta, store.Mailbox) {
	t.Helper()
	idx, mb, err := s.MessageIndex(context.Background(), userID, mailboxID)
	if err != nil {
		t.Fatalf("MessageIndex: %v", err)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i].UID <= idx[i-1].UID {
			t.Fatalf("MessageIndex not by ascending UID: %d after %d", idx[i].UID, idx[i-1].UID)
		}
	}
	for _, m := range idx {
		if m.UID >= mb.UIDNext || m.ModSeq > mb.HighestModSeq || m.ModSeq == 0 {
			t.Errorf("MessageIndex: %+v inconsistent with mailbox %+v", m, mb)
		}
	}
	return idx, mb
}

func mustStatus(t *testing.T, s store.Store, userID, mailboxID int64) store.MailboxStatus {
	t.Helper()
	st, err := s.Status(context.Background(), userID, mailboxID)
	must(t, err)
	return st
}

func wantCounters(t *testing.T, s store.Store, userID, mailboxID int64, messages, unseen, recent uint32, size int64) {
	t.Helper()
	st := mustStatus(t, s, userID, mailboxID)
	if st.Messages != messages || st.Unseen != unseen || st.Recent != recent || st.Size != size {
		t.Errorf("Status(%q): messages/unseen/recent/size = %d/%d/%d/%d, want %d/%d/%d/%d", st.Name,
			st.Messages, st.Unseen, st.Recent, st.Size, messages, unseen, recent, size)
	}
}

func uidsOf(metas []store.MessageMeta) []uint32 {
	var out []uint32
	for _, m := range metas {
		out = append(out, m.UID)
	}
	return out
}

func metaByUID(metas []store.MessageMeta, uid uint32) (store.MessageMeta, bool) {
	for _, m := range metas {
		if m.UID == uid {
			return m, true
		}
	}
	return store.MessageMeta{}, false
}

func wantFlags(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: flags %q, want %q", what, got, want)
	}
}

func flagsOf(t *testing.T, s store.Store, userID, mailboxID int64, uid uint32) []string {
	t.Helper()
	idx, _ := mustIndex(t, s, userID, mailboxID)
	m, ok := metaByUID(idx, uid)
	if !ok {
		t.Fatalf("UID %d not in the index", uid)
	}
	return m.Flags
}

func u32(v ...uint32) []uint32 { return v }

// ---- append ----

func testAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	inbox := mustMailbox(t, s, u.ID, "INBOX")

	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("a\r\n", `\Seen`), msg("bb\r\n"), msg("ccc\r\n", `\Flagged`))
	if !slices.Equal(uids, u32(inbox.UIDNext, inbox.UIDNext+1, inbox.UIDNext+2)) {
		t.Errorf("UIDs %v, want 3 consecutive from %d", uids, inbox.UIDNext)
	}
	if mb.ID != inbox.ID || mb.UIDValidity != inbox.UIDValidity || mb.UIDNext != inbox.UIDNext+3 ||
		mb.HighestModSeq != inbox.HighestModSeq+1 || mb.Name != "INBOX" {
		t.Errorf("mailbox after append %+v, before %+v", mb, inbox)
	}
	checkMailbox(t, mb)
	if got := mustMailbox(t, s, u.ID, "INBOX"); got != mb {
		t.Errorf("MailboxByName after append %+v, AppendMessages returned %+v", got, mb)
	}
	wantCounters(t, s, u.ID, inbox.ID, 3, 2, 3, 3+4+5)
	idx, mb2 := mustIndex(t, s, u.ID, inbox.ID)
	if mb2 != mb {
		t.Errorf("MessageIndex mailbox %+v, want %+v", mb2, mb)
	}
	if !slices.Equal(uidsOf(idx), uids) {
		t.Errorf("index UIDs %v, want %v", uidsOf(idx), uids)
	}
	for _, m := range idx {
		if m.ModSeq != mb.HighestModSeq {
			t.Errorf("UID %d MODSEQ %d, want %d (one per append)", m.UID, m.ModSeq, mb.HighestModSeq)
		}
	}
	wantFlags(t, "uid 1", idx[0].Flags, `\Seen`)
	wantFlags(t, "uid 2", idx[1].Flags)
	wantFlags(t, "uid 3", idx[2].Flags, `\Flagged`)

	// A second append continues the UIDs and takes a new MODSEQ; claims
	// and the recent count follow.
	from, to, err := s.ClaimRecent(ctx, u.ID, inbox.ID)
	must(t, err)
	if from != uids[0] || to != uids[2]+1 {
		t.Errorf("ClaimRecent = [%d, %d), want [%d, %d)", from, to, uids[0], uids[2]+1)
	}
	wantCounters(t, s, u.ID, inbox.ID, 3, 2, 0, 12)
	uids2, mb3 := mustAppend(t, s, u.ID, inbox.ID, msg("dddd", `\Seen`, `\Deleted`))
	if uids2[0] != mb.UIDNext || mb3.UIDNext != mb.UIDNext+1 || mb3.HighestModSeq != mb.HighestModSeq+1 {
		t.Errorf("second append: UIDs %v, mailbox %+v (before %+v)", uids2, mb3, mb)
	}
	wantCounters(t, s, u.ID, inbox.ID, 4, 2, 1, 16)

	// Other mailboxes are untouched.
	sent := mustMailbox(t, s, u.ID, "Sent")
	wantCounters(t, s, u.ID, sent.ID, 0, 0, 0, 0)
	if idx, _ := mustIndex(t, s, u.ID, sent.ID); len(idx) != 0 {
		t.Errorf("index of an empty mailbox: %+v", idx)
	}
	// Many messages in one call.
	var many []store.NewMessage
	for i := range 100 {
		many = append(many, msg(fmt.Sprintf("m%03d", i)))
	}
	uids3, mb4 := mustAppend(t, s, u.ID, sent.ID, many...)
	for i, uid := range uids3 {
		if uid != sent.UIDNext+uint32(i) {
			t.Fatalf("UIDs of a 100-message append: %v", uids3)
		}
	}
	if mb4.HighestModSeq != sent.HighestModSeq+1 {
		t.Errorf("100-message append took MODSEQ %d -> %d, want one", sent.HighestModSeq, mb4.HighestModSeq)
	}
	wantCounters(t, s, u.ID, sent.ID, 100, 100, 100, 400)
}

func testAppendEmpty(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, mb, err := s.AppendMessages(ctx, u.ID, inbox.ID, nil)
	must(t, err)
	if len(uids) != 0 || mb != inbox {
		t.Errorf("empty append = %v, %+v; want nothing, %+v", uids, mb, inbox)
	}
	// An empty message body is a message of size 0.
	uids, _ = mustAppend(t, s, u.ID, inbox.ID, store.NewMessage{})
	body, err := s.MessageBody(ctx, u.ID, inbox.ID, uids[0])
	must(t, err)
	if len(body) != 0 {
		t.Errorf("empty body read back as %q", body)
	}
	infos, err := s.MessageInfos(ctx, u.ID, inbox.ID, uids)
	must(t, err)
	if len(infos) != 1 || infos[0].Size != 0 || infos[0].InternalDate.IsZero() {
		t.Errorf("infos of an empty message with no date: %+v", infos)
	}
	if d := time.Since(infos[0].InternalDate); d < -time.Hour || d > time.Hour {
		// The store's clock may be fake in a backend's own tests, but
		// the conformance suite runs with the real one.
		t.Errorf("zero InternalDate stored as %v, want about now", infos[0].InternalDate)
	}
}

func testBodies(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	big := make([]byte, 5<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	bodies := [][]byte{
		[]byte("Subject: crlf\r\n\r\nline 1\r\nline 2\r\n"),
		[]byte("Subject: lf only\n\nbare\nlf\n"),
		[]byte("Subject: 8bit\r\n\r\nGr\xc3\xb6\xc3\x9fe \xff\xfe invalid utf-8\r\n"),
		[]byte("nul \x00 inside\x00"),
		[]byte("no trailing newline"),
		big,
	}
	var msgs []store.NewMessage
	var size int64
	for _, b := range bodies {
		msgs = append(msgs, store.NewMessage{Body: b, InternalDate: time.Unix(1e9, 0)})
		size += int64(len(b))
	}
	uids, _ := mustAppend(t, s, u.ID, inbox.ID, msgs...)
	for i, uid := range uids {
		got, err := s.MessageBody(ctx, u.ID, inbox.ID, uid)
		must(t, err)
		if !bytes.Equal(got, bodies[i]) {
			t.Errorf("body %d: read back %d bytes differing from the %d appended", i, len(got), len(bodies[i]))
		}
	}
	wantCounters(t, s, u.ID, inbox.ID, uint32(len(bodies)), uint32(len(bodies)), uint32(len(bodies)), size)
	// The caller may reuse its buffer: the store has its own copy.
	big[0] ^= 0xff
	got, err := s.MessageBody(ctx, u.ID, inbox.ID, uids[len(uids)-1])
	must(t, err)
	if got[0] == big[0] {
		t.Error("the store kept a reference to the caller's buffer")
	}
	_, err = s.MessageBody(ctx, u.ID, inbox.ID, 9999)
	wantErr(t, err, store.ErrNotFound, "MessageBody of an unknown UID")
	_, err = s.Expunge(ctx, u.ID, inbox.ID, uids[:1])
	must(t, err)
	_, err = s.MessageBody(ctx, u.ID, inbox.ID, uids[0])
	wantErr(t, err, store.ErrNotFound, "MessageBody of an expunged UID")
}

// readBody reads all of an open body through ReadAt, in pieces of n
// bytes, and checks Size and Bytes against it.
func readBody(t *testing.T, b store.Body, n int) []byte {
	t.Helper()
	out := make([]byte, 0, b.Size())
	buf := make([]byte, n)
	for off := int64(0); ; {
		k, err := b.ReadAt(buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err == io.EOF || (err == nil && off == b.Size()) {
			break
		}
		if err != nil {
			t.Fatalf("ReadAt(%d bytes at %d): %v", len(buf), off, err)
		}
		if k == 0 {
			t.Fatalf("ReadAt at %d read nothing", off)
		}
	}
	if int64(len(out)) != b.Size() {
		t.Errorf("read %d bytes, Size says %d", len(out), b.Size())
	}
	if all := b.Bytes(); all != nil && !bytes.Equal(all, out) {
		t.Errorf("Bytes differs from what ReadAt reads")
	}
	return out
}

func testOpenBody(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	arch := mustCreate(t, s, u.ID, "Archive")
	r := rand.New(rand.NewPCG(3, 4))
	var msgs []store.NewMessage
	var bodies [][]byte
	for _, n := range []int{0, 1, 100, 4095, 64<<10 - 1, 64 << 10, 300 << 10, 2<<20 + 7} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		bodies = append(bodies, b)
		msgs = append(msgs, store.NewMessage{Body: b})
	}
	uids, _ := mustAppend(t, s, u.ID, inbox.ID, msgs...)
	for i, uid := range uids {
		b, err := s.OpenBody(ctx, u.ID, inbox.ID, uid)
		must(t, err)
		if got := readBody(t, b, 64<<10+3); !bytes.Equal(got, bodies[i]) {
			t.Errorf("body %d (%d bytes): read back %d bytes differing", i, len(bodies[i]), len(got))
		}
		// Reads anywhere, past the end too.
		if n := len(bodies[i]); n > 10 {
			p := make([]byte, 10)
			k, err := b.ReadAt(p, int64(n/2))
			if k != 10 || (err != nil && err != io.EOF) || !bytes.Equal(p, bodies[i][n/2:n/2+10]) {
				t.Errorf("body %d: ReadAt in the middle: %d, %v", i, k, err)
			}
			k, err = b.ReadAt(p, int64(n-3))
			if k != 3 || err != io.EOF || !bytes.Equal(p[:3], bodies[i][n-3:]) {
				t.Errorf("body %d: ReadAt over the end: %d, %v", i, k, err)
			}
		}
		if k, err := b.ReadAt(make([]byte, 1), b.Size()); k != 0 || err != io.EOF {
			t.Errorf("body %d: ReadAt at the end: %d, %v", i, k, err)
		}
		must(t, b.Close())
	}
	// Prefixes of every body, cut at every interesting length, in one
	// call, with UIDs that do not exist among them.
	var reqs []store.PrefixRequest
	for i, uid := range uids {
		for _, n := range []int{0, 1, 57, max(len(bodies[i])-1, 0), len(bodies[i]), len(bodies[i]) + 10} {
			reqs = append(reqs, store.PrefixRequest{UID: uid, N: int64(n)})
		}
		reqs = append(reqs, store.PrefixRequest{UID: 9999 + uid, N: 10})
	}
	prefixes, err := s.MessagePrefixes(ctx, u.ID, inbox.ID, reqs)
	must(t, err)
	if len(prefixes) != len(reqs) {
		t.Fatalf("MessagePrefixes: %d answers to %d requests", len(prefixes), len(reqs))
	}
	for k, r := range reqs {
		i := slices.Index(uids, r.UID)
		if i < 0 {
			if prefixes[k] != nil {
				t.Errorf("MessagePrefixes of the unknown UID %d: %q", r.UID, prefixes[k])
			}
			continue
		}
		if want := bodies[i][:max(0, min(int(r.N), len(bodies[i])))]; !bytes.Equal(prefixes[k], want) || prefixes[k] == nil {
			t.Errorf("body %d: MessagePrefixes(%d): %d bytes differing from the %d wanted", i, r.N, len(prefixes[k]), len(want))
		}
	}
	if got, err := s.MessagePrefixes(ctx, u.ID, inbox.ID, nil); err != nil || len(got) != 0 {
		t.Errorf("MessagePrefixes of nothing: %q, %v", got, err)
	}
	// An open body stays readable after its message is expunged, and a
	// copy keeps a shared body after the original goes.
	last := uids[len(uids)-1]
	_, dst, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, []uint32{last})
	must(t, err)
	b, err := s.OpenBody(ctx, u.ID, inbox.ID, last)
	must(t, err)
	_, err = s.Expunge(ctx, u.ID, inbox.ID, uids)
	must(t, err)
	if got := readBody(t, b, 1<<20); !bytes.Equal(got, bodies[len(bodies)-1]) {
		t.Error("an open body changed when its message was expunged")
	}
	must(t, b.Close())
	_, err = s.OpenBody(ctx, u.ID, inbox.ID, last)
	wantErr(t, err, store.ErrNotFound, "OpenBody of an expunged UID")
	_, err = s.OpenBody(ctx, u.ID, inbox.ID, 9999)
	wantErr(t, err, store.ErrNotFound, "OpenBody of an unknown UID")
	if got, err := s.MessagePrefixes(ctx, u.ID, inbox.ID, []store.PrefixRequest{{UID: last, N: 10}}); err != nil || len(got) != 1 || got[0] != nil {
		t.Errorf("MessagePrefixes of an expunged UID: %q, %v", got, err)
	}
	b, err = s.OpenBody(ctx, u.ID, arch.ID, dst[0])
	must(t, err)
	if got := readBody(t, b, 4096); !bytes.Equal(got, bodies[len(bodies)-1]) {
		t.Error("the copy's body differs after the original was expunged")
	}
	must(t, b.Close())
	// The copy goes too: nothing is left, and the store is healthy.
	_, err = s.Expunge(ctx, u.ID, arch.ID, dst)
	must(t, err)
	_, err = s.OpenBody(ctx, u.ID, arch.ID, dst[0])
	wantErr(t, err, store.ErrNotFound, "OpenBody of an expunged copy")
}

// testPrefixesWithHeaderLen: MessagePrefixes answers the same whether
// the message was appended with its header's length or not, for prefixes
// inside the header, at its end and beyond; copies and the original
// going leave the copy's answers intact.
func testPrefixesWithHeaderLen(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	arch := mustCreate(t, s, u.ID, "Archive")
	big := strings.Repeat("body line\r\n", 20000) // 200 KB
	bodies := []string{
		"Subject: a\r\nFrom: b@example.com\r\n\r\nshort\r\n",
		"Subject: big\r\n\r\n" + big,
		"Subject: header only\r\n",
	}
	var msgs []store.NewMessage
	for _, b := range bodies {
		hl := strings.Index(b, "\r\n\r\n") + 4
		if hl < 4 {
			hl = len(b)
		}
		msgs = append(msgs, store.NewMessage{Body: []byte(b), HeaderLen: hl})
		msgs = append(msgs, store.NewMessage{Body: []byte(b)}) // no length
	}
	msgs = append(msgs, store.NewMessage{Body: []byte("x"), HeaderLen: 5}) // longer than the body: ignored
	uids, _ := mustAppend(t, s, u.ID, inbox.ID, msgs...)
	check := func(mailboxID int64, uids []uint32, msgs []store.NewMessage) {
		t.Helper()
		var reqs []store.PrefixRequest
		var want [][]byte
		for i, uid := range uids {
			b := msgs[i].Body
			for _, n := range []int{0, 3, max(msgs[i].HeaderLen-1, 0), msgs[i].HeaderLen, msgs[i].HeaderLen + 1, len(b), len(b) + 1} {
				reqs = append(reqs, store.PrefixRequest{UID: uid, N: int64(n)})
				want = append(want, b[:max(0, min(n, len(b)))])
			}
		}
		got, err := s.MessagePrefixes(ctx, u.ID, mailboxID, reqs)
		must(t, err)
		for k := range reqs {
			if !bytes.Equal(got[k], want[k]) || got[k] == nil {
				t.Errorf("MessagePrefixes(UID %d, %d) = %d bytes %.40q, want %d bytes", reqs[k].UID, reqs[k].N, len(got[k]), got[k], len(want[k]))
			}
		}
	}
	check(inbox.ID, uids, msgs)
	// N < 0: the header as appended, when the backend keeps it; never
	// anything else.
	var reqs []store.PrefixRequest
	for _, uid := range uids {
		reqs = append(reqs, store.PrefixRequest{UID: uid, N: -1})
	}
	reqs = append(reqs, store.PrefixRequest{UID: 9999, N: -1})
	got, err := s.MessagePrefixes(ctx, u.ID, inbox.ID, reqs)
	must(t, err)
	kept := 0
	for k, r := range reqs {
		if k == len(uids) {
			if got[k] != nil {
				t.Errorf("MessagePrefixes(unknown UID, -1) = %q", got[k])
			}
			continue
		}
		if got[k] == nil {
			continue // not kept: allowed
		}
		m := msgs[k]
		if m.HeaderLen == 0 || m.HeaderLen > len(m.Body) || !bytes.Equal(got[k], m.Body[:m.HeaderLen]) {
			t.Errorf("MessagePrefixes(UID %d, -1) = %q; HeaderLen %d", r.UID, got[k], m.HeaderLen)
		}
		kept++
	}
	t.Logf("%d of %d headers kept apart", kept, len(uids))
	// The same headers when the requests cover a range of UIDs (all of
	// them; every other one; the last one alone), with a gap or not.
	var odd []int
	for k := range uids {
		if k%2 == 1 {
			odd = append(odd, k)
		}
	}
	for _, ks := range [][]int{{0, 1, 2, 3, 4, 5, 6}, odd, {len(uids) - 1}} {
		var sub []store.PrefixRequest
		for _, k := range ks {
			sub = append(sub, reqs[k])
		}
		again, err := s.MessagePrefixes(ctx, u.ID, inbox.ID, sub)
		must(t, err)
		for i, k := range ks {
			if !bytes.Equal(again[i], got[k]) || (again[i] == nil) != (got[k] == nil) {
				t.Errorf("MessagePrefixes(UID %d, -1) among %v = %q, alone among others %q", reqs[k].UID, ks, again[i], got[k])
			}
		}
	}
	_, dst, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, uids)
	must(t, err)
	_, err = s.Expunge(ctx, u.ID, inbox.ID, uids)
	must(t, err)
	check(arch.ID, dst, msgs)
}

func testMessageInfos(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	zones := []*time.Location{time.UTC, time.FixedZone("", -7*3600-30*60), time.FixedZone("", 14*3600)}
	var msgs []store.NewMessage
	for i := range 9 {
		msgs = append(msgs, store.NewMessage{
			Flags:        []string{fmt.Sprintf("kw%d", i)},
			InternalDate: time.Date(2020, 1, 2+i, 3, 4, 5, 999, zones[i%3]),
			Body:         bytes.Repeat([]byte("x"), 10*(i+1)),
			Structure:    []byte(fmt.Sprintf("structure %d \x00\xff", i)),
		})
	}
	msgs[4].Structure = nil
	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msgs...)
	// Ask in disorder, with duplicates and unknown UIDs.
	ask := []uint32{uids[8], uids[0], 0, uids[4], 99999, uids[0], uids[2], uids[3]}
	infos, err := s.MessageInfos(ctx, u.ID, inbox.ID, ask)
	must(t, err)
	want := []int{0, 2, 3, 4, 8}
	if len(infos) != len(want) {
		t.Fatalf("MessageInfos returned %d infos, want %d: %+v", len(infos), len(want), infos)
	}
	for j, i := range want {
		in := infos[j]
		m := msgs[i]
		if in.UID != uids[i] || in.ModSeq != mb.HighestModSeq || in.Size != int64(len(m.Body)) ||
			!bytes.Equal(in.Structure, m.Structure) || (m.Structure == nil) != (in.Structure == nil) {
			t.Errorf("info %d = %+v", i, in)
		}
		wantFlags(t, "info", in.Flags, m.Flags...)
		wantDate := m.InternalDate.Truncate(time.Second)
		_, wantOff := wantDate.Zone()
		_, gotOff := in.InternalDate.Zone()
		if !in.InternalDate.Equal(wantDate) || gotOff != wantOff {
			t.Errorf("info %d InternalDate %v, want %v", i, in.InternalDate, wantDate)
		}
	}
	// Many scattered UIDs (the set is not one range).
	var every3 []uint32
	var many []store.NewMessage
	for range 300 {
		many = append(many, msg("x"))
	}
	uids2, _ := mustAppend(t, s, u.ID, inbox.ID, many...)
	for i := 0; i < len(uids2); i += 3 {
		every3 = append(every3, uids2[i])
	}
	infos, err = s.MessageInfos(ctx, u.ID, inbox.ID, every3)
	must(t, err)
	var got []uint32
	for _, in := range infos {
		got = append(got, in.UID)
	}
	if !slices.Equal(got, every3) {
		t.Errorf("MessageInfos of every third UID returned %v", got)
	}
	if infos, err := s.MessageInfos(ctx, u.ID, inbox.ID, nil); err != nil || len(infos) != 0 {
		t.Errorf("MessageInfos(nil) = %+v, %v", infos, err)
	}
}

// ---- flags ----

func testFlagNormalisation(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, _ := mustAppend(t, s, u.ID, inbox.ID,
		msg("1", `\seen`, `\RECENT`, `$Foo`, `\FLAGGED`, `$foo`, `Junk`, `\Seen`, `$Forwarded`, `\answered`, `\draft`, `\DELETED`),
		msg("2", `\Recent`),
		msg("3", `zeta`, `Alpha`, `beta`, `\Seen`),
	)
	idx, _ := mustIndex(t, s, u.ID, inbox.ID)
	wantFlags(t, "normalised", idx[0].Flags, `\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`, `$Foo`, `$Forwarded`, `Junk`)
	wantFlags(t, `\Recent only`, idx[1].Flags)
	wantFlags(t, "keyword order", idx[2].Flags, `\Seen`, `Alpha`, `beta`, `zeta`)
	wantCounters(t, s, u.ID, inbox.ID, 3, 1, 3, 3)

	for _, bad := range []string{`\Foo`, `\*`, ``, `a b`, `a(b`, "a\x01", `"q"`, "Gr\xc3\xb6\xc3\x9fe"} {
		_, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, []store.NewMessage{msg("x", bad)})
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("append with flag %q", bad))
		_, _, err = s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsAdd, []string{bad}, 0)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("UpdateFlags with flag %q", bad))
	}
	if st := mustStatus(t, s, u.ID, inbox.ID); st.Messages != 3 {
		t.Errorf("failed appends left messages: %+v", st)
	}
}

func testUpdateFlags(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("1"), msg("2", `\Seen`), msg("3", `$Foo`))
	ms := mb.HighestModSeq

	update := func(uids []uint32, op store.FlagOp, flags ...string) []store.MessageMeta {
		t.Helper()
		changed, failed, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids, op, flags, 0)
		must(t, err)
		if len(failed) != 0 {
			t.Errorf("UpdateFlags without UNCHANGEDSINCE failed %v", failed)
		}
		return changed
	}
	wantChanged := func(changed []store.MessageMeta, modseq uint64, uids ...uint32) {
		t.Helper()
		if !slices.Equal(uidsOf(changed), uids) {
			t.Errorf("changed UIDs %v, want %v", uidsOf(changed), uids)
		}
		for _, c := range changed {
			if c.ModSeq != modseq {
				t.Errorf("changed UID %d MODSEQ %d, want %d", c.UID, c.ModSeq, modseq)
			}
		}
		if got := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq; got != modseq {
			t.Errorf("HighestModSeq %d, want %d", got, modseq)
		}
	}

	// +FLAGS \Seen: uid 2 already has it and keeps its MODSEQ.
	ch := update(uids, store.FlagsAdd, `\seen`)
	ms++
	wantChanged(ch, ms, uids[0], uids[2])
	wantFlags(t, "+seen uid 1", ch[0].Flags, `\Seen`)
	wantFlags(t, "+seen uid 3", ch[1].Flags, `\Seen`, `$Foo`)
	idx, _ := mustIndex(t, s, u.ID, inbox.ID)
	if idx[1].ModSeq != mb.HighestModSeq {
		t.Errorf("unchanged message's MODSEQ went from %d to %d", mb.HighestModSeq, idx[1].ModSeq)
	}
	wantCounters(t, s, u.ID, inbox.ID, 3, 0, 3, 3)

	// No-op changes take no MODSEQ.
	wantChanged(update(uids, store.FlagsAdd, `\Seen`, `\Recent`), ms)
	wantChanged(update(uids, store.FlagsRemove, `\Draft`, `$Bar`), ms)
	wantChanged(update(uids[2:], store.FlagsAdd, `$FOO`), ms) // keywords are case-insensitive
	wantChanged(update(uids[2:], store.FlagsSet, `$foo`, `\SEEN`), ms)
	wantFlags(t, "after case-changing no-ops", flagsOf(t, s, u.ID, inbox.ID, uids[2]), `\Seen`, `$Foo`)
	wantChanged(update([]uint32{999, 1000}, store.FlagsSet, `\Deleted`), ms)
	wantChanged(update(nil, store.FlagsSet, `\Deleted`), ms)

	// -FLAGS is case-insensitive too.
	ch = update(uids, store.FlagsRemove, `$FOO`, `\SEEN`)
	ms++
	wantChanged(ch, ms, uids...)
	for _, c := range ch {
		wantFlags(t, "after -FLAGS", c.Flags)
	}
	wantCounters(t, s, u.ID, inbox.ID, 3, 3, 3, 3)

	// FLAGS replaces; keywords keep the spelling given first.
	ch = update([]uint32{uids[1], uids[0], uids[1]}, store.FlagsSet, `Work`, `\Flagged`, `WORK`, `\Recent`, `$Label1`)
	ms++
	wantChanged(ch, ms, uids[0], uids[1])
	wantFlags(t, "FLAGS", ch[0].Flags, `\Flagged`, `$Label1`, `Work`)
	// +FLAGS with a keyword the message has in another case keeps the
	// message's spelling and adds only what is new.
	ch = update(uids[:1], store.FlagsAdd, `work`, `\Answered`)
	ms++
	wantChanged(ch, ms, uids[0])
	wantFlags(t, "+FLAGS", ch[0].Flags, `\Answered`, `\Flagged`, `$Label1`, `Work`)
	wantFlags(t, "index", flagsOf(t, s, u.ID, inbox.ID, uids[0]), `\Answered`, `\Flagged`, `$Label1`, `Work`)
	// FLAGS () clears.
	ch = update(uids, store.FlagsSet)
	ms++
	wantChanged(ch, ms, uids[0], uids[1])
	idx, _ = mustIndex(t, s, u.ID, inbox.ID)
	for _, m := range idx {
		wantFlags(t, "after FLAGS ()", m.Flags)
	}
	// The index reports the new MODSEQs.
	if idx[0].ModSeq != ms || idx[1].ModSeq != ms || idx[2].ModSeq != ms-3 {
		t.Errorf("index MODSEQs %d %d %d, want %d %d %d", idx[0].ModSeq, idx[1].ModSeq, idx[2].ModSeq, ms, ms, ms-3)
	}
}

// testKeywordSpelling: keywords compare case-insensitively, and one
// stored in another case takes the spelling the mailbox already uses, in
// every call that stores flags; other mailboxes keep their own.
func testKeywordSpelling(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	arch := mustMailbox(t, s, u.ID, "Archive")
	trash := mustMailbox(t, s, u.ID, "Trash")
	uids, _ := mustAppend(t, s, u.ID, inbox.ID, msg("1", `kwA`), msg("2"), msg("3"))

	// STORE +FLAGS and FLAGS.
	ch, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids[1:2], store.FlagsAdd, []string{`KWA`, `\Seen`}, 0)
	must(t, err)
	if len(ch) != 1 {
		t.Fatalf("+FLAGS changed %v", ch)
	}
	wantFlags(t, "+FLAGS in another case", ch[0].Flags, `\Seen`, `kwA`)
	ch, _, err = s.UpdateFlags(ctx, u.ID, inbox.ID, uids[2:], store.FlagsSet, []string{`Kwa`, `zz`}, 0)
	must(t, err)
	if len(ch) != 1 {
		t.Fatalf("FLAGS changed %v", ch)
	}
	wantFlags(t, "FLAGS in another case", ch[0].Flags, `kwA`, `zz`)
	wantFlags(t, "index", flagsOf(t, s, u.ID, inbox.ID, uids[2]), `kwA`, `zz`)

	// APPEND, also within one call: the first spelling wins.
	more, _ := mustAppend(t, s, u.ID, inbox.ID, msg("4", `KWA`, `ZZ`), msg("5", `New`), msg("6", `NEW`, `\Flagged`))
	wantFlags(t, "APPEND in another case", flagsOf(t, s, u.ID, inbox.ID, more[0]), `kwA`, `zz`)
	wantFlags(t, "APPEND, new keyword", flagsOf(t, s, u.ID, inbox.ID, more[1]), `New`)
	wantFlags(t, "APPEND, same call", flagsOf(t, s, u.ID, inbox.ID, more[2]), `\Flagged`, `New`)

	// COPY and MOVE take the destination's spelling; a mailbox that has
	// no spelling yet keeps the one given.
	dst, _ := mustAppend(t, s, u.ID, arch.ID, msg("a", `KWa`))
	_, copied, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, u32(uids[0], more[1]))
	must(t, err)
	wantFlags(t, "COPY into another spelling", flagsOf(t, s, u.ID, arch.ID, copied[0]), `KWa`)
	wantFlags(t, "COPY of a keyword new there", flagsOf(t, s, u.ID, arch.ID, copied[1]), `New`)
	wantFlags(t, "destination's own message", flagsOf(t, s, u.ID, arch.ID, dst[0]), `KWa`)
	_, moved, _, err := s.MoveMessages(ctx, u.ID, inbox.ID, arch.ID, u32(uids[2]))
	must(t, err)
	wantFlags(t, "MOVE into another spelling", flagsOf(t, s, u.ID, arch.ID, moved[0]), `KWa`, `zz`)
	tu, _ := mustAppend(t, s, u.ID, trash.ID, msg("t", `KWA`))
	wantFlags(t, "another mailbox's spelling", flagsOf(t, s, u.ID, trash.ID, tu[0]), `KWA`)

	// No mailbox lists a keyword twice.
	for _, mb := range []store.Mailbox{inbox, arch, trash} {
		idx, _ := mustIndex(t, s, u.ID, mb.ID)
		spelling := map[string]string{}
		for _, m := range idx {
			for _, f := range m.Flags {
				k := strings.ToLower(f)
				if sp, ok := spelling[k]; ok && sp != f {
					t.Errorf("%s holds %q and %q", mb.Name, sp, f)
				}
				spelling[k] = f
			}
		}
	}
}

func testUnchangedSince(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("1"), msg("2"), msg("3"), msg("4"))
	m0 := mb.HighestModSeq
	// uid 2 and 4 change after m0.
	ch, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, u32(uids[1], uids[3]), store.FlagsAdd, []string{`$A`}, 0)
	must(t, err)
	m1 := ch[0].ModSeq

	changed, failed, err := s.UpdateFlags(ctx, u.ID, inbox.ID, append(slices.Clone(uids), 777), store.FlagsAdd, []string{`\Seen`}, m0)
	must(t, err)
	if !slices.Equal(failed, u32(uids[1], uids[3])) {
		t.Errorf("failed %v, want %v", failed, u32(uids[1], uids[3]))
	}
	if !slices.Equal(uidsOf(changed), u32(uids[0], uids[2])) || changed[0].ModSeq != m1+1 {
		t.Errorf("changed %+v", changed)
	}
	wantFlags(t, "failed message", flagsOf(t, s, u.ID, inbox.ID, uids[1]), `$A`)

	// UNCHANGEDSINCE equal to the MODSEQ passes; a no-op passes too
	// and is in neither list.
	changed, failed, err = s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsAdd, []string{`\Seen`}, m1+1)
	must(t, err)
	if len(failed) != 0 || !slices.Equal(uidsOf(changed), u32(uids[1], uids[3])) {
		t.Errorf("UNCHANGEDSINCE %d: changed %v, failed %v", m1+1, uidsOf(changed), failed)
	}
	// Everything fails: no MODSEQ is taken.
	before := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq
	changed, failed, err = s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsSet, nil, 1)
	must(t, err)
	if len(changed) != 0 || !slices.Equal(failed, uids) {
		t.Errorf("UNCHANGEDSINCE 1: changed %v, failed %v", uidsOf(changed), failed)
	}
	if after := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq; after != before {
		t.Errorf("a STORE that changed nothing moved HighestModSeq %d -> %d", before, after)
	}
}

// ---- expunge and changes ----

func testExpunge(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("1"), msg("22", `\Seen`), msg("333"), msg("4444"), msg("55555"))
	removed, err := s.Expunge(ctx, u.ID, inbox.ID, u32(uids[3], 4242, uids[1], uids[3], 0))
	must(t, err)
	if !slices.Equal(removed, u32(uids[1], uids[3])) {
		t.Errorf("Expunge removed %v, want %v", removed, u32(uids[1], uids[3]))
	}
	after := mustMailbox(t, s, u.ID, "INBOX")
	if after.HighestModSeq != mb.HighestModSeq+1 || after.UIDNext != mb.UIDNext {
		t.Errorf("after expunge %+v, before %+v", after, mb)
	}
	idx, _ := mustIndex(t, s, u.ID, inbox.ID)
	if !slices.Equal(uidsOf(idx), u32(uids[0], uids[2], uids[4])) {
		t.Errorf("index after expunge %v", uidsOf(idx))
	}
	wantCounters(t, s, u.ID, inbox.ID, 3, 3, 3, 1+3+5)

	// Nothing to remove: no MODSEQ.
	removed, err = s.Expunge(ctx, u.ID, inbox.ID, u32(uids[1], 999))
	must(t, err)
	if len(removed) != 0 || mustMailbox(t, s, u.ID, "INBOX").HighestModSeq != after.HighestModSeq {
		t.Errorf("no-op expunge removed %v", removed)
	}
	// Expunging the highest UID does not make UIDNext go back.
	_, err = s.Expunge(ctx, u.ID, inbox.ID, u32(uids[4]))
	must(t, err)
	newUIDs, _ := mustAppend(t, s, u.ID, inbox.ID, msg("6"))
	if newUIDs[0] != mb.UIDNext {
		t.Errorf("append after expunging the last message got UID %d, want %d", newUIDs[0], mb.UIDNext)
	}
	// Expunge everything.
	removed, err = s.Expunge(ctx, u.ID, inbox.ID, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	must(t, err)
	if !slices.Equal(removed, u32(uids[0], uids[2], newUIDs[0])) {
		t.Errorf("expunge all removed %v", removed)
	}
	wantCounters(t, s, u.ID, inbox.ID, 0, 0, 0, 0)
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, mb.HighestModSeq)
	must(t, err)
	if len(ch.Changed) != 0 || !slices.Equal(ch.Vanished, append(slices.Clone(uids), newUIDs[0])) || !ch.Complete {
		t.Errorf("ChangesSince after expunging everything: %+v", ch)
	}
}

func testChangesSince(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	start := inbox.HighestModSeq

	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, 0)
	must(t, err)
	if len(ch.Changed) != 0 || len(ch.Vanished) != 0 || !ch.Complete || ch.HighestModSeq != start {
		t.Errorf("ChangesSince(0) of an empty mailbox: %+v", ch)
	}
	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("1"), msg("2"), msg("3"), msg("4"), msg("5"))
	mAppend := mb.HighestModSeq
	ch2, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, u32(uids[3], uids[0]), store.FlagsAdd, []string{`\Seen`}, 0)
	must(t, err)
	mFlags := ch2[0].ModSeq
	_, err = s.Expunge(ctx, u.ID, inbox.ID, u32(uids[2]))
	must(t, err)
	mExpunge := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq
	_, err = s.Expunge(ctx, u.ID, inbox.ID, u32(uids[0])) // changed, then expunged
	must(t, err)
	mLast := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq
	if !(start < mAppend && mAppend < mFlags && mFlags < mExpunge && mExpunge < mLast) {
		t.Fatalf("MODSEQs not increasing: %d %d %d %d %d", start, mAppend, mFlags, mExpunge, mLast)
	}

	type want struct {
		changed  []uint32
		vanished []uint32
	}
	for since, w := range map[uint64]want{
		0:         {u32(uids[1], uids[3], uids[4]), u32(uids[0], uids[2])},
		start:     {u32(uids[1], uids[3], uids[4]), u32(uids[0], uids[2])},
		mAppend:   {u32(uids[3]), u32(uids[0], uids[2])},
		mFlags:    {nil, u32(uids[0], uids[2])},
		mExpunge:  {nil, u32(uids[0])},
		mLast:     {nil, nil},
		mLast + 5: {nil, nil},
	} {
		ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, since)
		must(t, err)
		if !slices.Equal(uidsOf(ch.Changed), w.changed) || !slices.Equal(ch.Vanished, w.vanished) ||
			!ch.Complete || ch.HighestModSeq != mLast {
			t.Errorf("ChangesSince(%d) = changed %v vanished %v complete %v highest %d; want %v %v true %d",
				since, uidsOf(ch.Changed), ch.Vanished, ch.Complete, ch.HighestModSeq, w.changed, w.vanished, mLast)
		}
		for _, c := range ch.Changed {
			if c.ModSeq <= since {
				t.Errorf("ChangesSince(%d) reported UID %d with MODSEQ %d", since, c.UID, c.ModSeq)
			}
		}
	}
	ch, _ = s.ChangesSince(ctx, u.ID, inbox.ID, mAppend)
	if len(ch.Changed) == 1 {
		if ch.Changed[0].ModSeq != mFlags {
			t.Errorf("changed MODSEQ %d, want %d", ch.Changed[0].ModSeq, mFlags)
		}
		wantFlags(t, "ChangesSince", ch.Changed[0].Flags, `\Seen`)
	}
}

// wantUIDChanges checks that UIDChangesSince, with and without the
// changed UIDs, agrees with ChangesSince since each of the given
// mod-sequences.
func wantUIDChanges(t *testing.T, s store.Store, userID, mailboxID int64, since ...uint64) {
	t.Helper()
	ctx := context.Background()
	for _, m := range since {
		ch, err := s.ChangesSince(ctx, userID, mailboxID, m)
		must(t, err)
		for _, withChanged := range []bool{true, false} {
			uc, err := s.UIDChangesSince(ctx, userID, mailboxID, m, withChanged)
			must(t, err)
			want := uidsOf(ch.Changed)
			if !withChanged {
				want = nil
			}
			if !slices.Equal(uc.Changed, want) || !slices.Equal(uc.Vanished, ch.Vanished) ||
				uc.Complete != ch.Complete || uc.HighestModSeq != ch.HighestModSeq {
				t.Errorf("UIDChangesSince(%d, %v) = %+v; ChangesSince: changed %v vanished %v complete %v highest %d",
					m, withChanged, uc, uidsOf(ch.Changed), ch.Vanished, ch.Complete, ch.HighestModSeq)
			}
		}
	}
}

func testUIDChangesSince(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	start := inbox.HighestModSeq
	wantUIDChanges(t, s, u.ID, inbox.ID, 0, start, start+1)

	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("1"), msg("2"), msg("3"), msg("4"), msg("5"), msg("6"))
	mAppend := mb.HighestModSeq
	_, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, u32(uids[4], uids[1]), store.FlagsAdd, []string{`\Seen`}, 0)
	must(t, err)
	mFlags := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq
	_, err = s.Expunge(ctx, u.ID, inbox.ID, u32(uids[3], uids[1])) // one changed before
	must(t, err)
	mExpunge := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq
	// Moved away: a tombstone here too.
	arch := mustCreate(t, s, u.ID, "Arch")
	_, _, _, err = s.MoveMessages(ctx, u.ID, inbox.ID, arch.ID, u32(uids[5]))
	must(t, err)
	mLast := mustMailbox(t, s, u.ID, "INBOX").HighestModSeq

	uc, err := s.UIDChangesSince(ctx, u.ID, inbox.ID, mAppend, true)
	must(t, err)
	if !slices.Equal(uc.Changed, u32(uids[4])) || !slices.Equal(uc.Vanished, u32(uids[1], uids[3], uids[5])) ||
		!uc.Complete || uc.HighestModSeq != mLast {
		t.Errorf("UIDChangesSince(%d) = %+v; want changed %v vanished %v complete, highest %d",
			mAppend, uc, u32(uids[4]), u32(uids[1], uids[3], uids[5]), mLast)
	}
	for m := uint64(0); m <= mLast+1; m++ {
		wantUIDChanges(t, s, u.ID, inbox.ID, m)
	}
	wantUIDChanges(t, s, u.ID, arch.ID, 0, arch.HighestModSeq, mExpunge, mFlags)
}

// ---- copy and move ----

func testCopy(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	arch := mustMailbox(t, s, u.ID, "Archive")
	mustAppend(t, s, u.ID, arch.ID, msg("pre-existing")) // the destination's UIDs don't start at 1
	arch = mustMailbox(t, s, u.ID, "Archive")
	_, _, err := s.ClaimRecent(ctx, u.ID, arch.ID)
	must(t, err)

	m1 := store.NewMessage{Flags: []string{`\Seen`, `$Work`}, InternalDate: time.Date(2001, 2, 3, 4, 5, 6, 0, time.FixedZone("", -3600)),
		Body: []byte("one\r\n"), Structure: []byte("s1")}
	m2 := store.NewMessage{Flags: []string{`\Flagged`}, InternalDate: time.Date(2002, 2, 3, 4, 5, 6, 0, time.UTC),
		Body: []byte("two two\r\n")}
	m3 := msg("three")
	uids, src := mustAppend(t, s, u.ID, inbox.ID, m1, m2, m3)

	srcUIDs, dstUIDs, dst, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, u32(uids[2], 5555, uids[0], uids[2]))
	must(t, err)
	if !slices.Equal(srcUIDs, u32(uids[0], uids[2])) || !slices.Equal(dstUIDs, u32(arch.UIDNext, arch.UIDNext+1)) {
		t.Errorf("COPYUID pairs %v -> %v, want %v -> [%d %d]", srcUIDs, dstUIDs, u32(uids[0], uids[2]), arch.UIDNext, arch.UIDNext+1)
	}
	if dst.ID != arch.ID || dst.UIDValidity != arch.UIDValidity || dst.UIDNext != arch.UIDNext+2 || dst.HighestModSeq != arch.HighestModSeq+1 {
		t.Errorf("destination after copy %+v, before %+v", dst, arch)
	}
	// The source is untouched.
	if got := mustMailbox(t, s, u.ID, "INBOX"); got != src {
		t.Errorf("source changed by COPY: %+v, was %+v", got, src)
	}
	wantCounters(t, s, u.ID, inbox.ID, 3, 2, 3, 5+9+5)
	wantCounters(t, s, u.ID, arch.ID, 3, 2, 2, 12+5+5)

	infos, err := s.MessageInfos(ctx, u.ID, arch.ID, dstUIDs)
	must(t, err)
	srcInfos, err := s.MessageInfos(ctx, u.ID, inbox.ID, srcUIDs)
	must(t, err)
	for i := range infos {
		d, sInfo := infos[i], srcInfos[i]
		if !slices.Equal(d.Flags, sInfo.Flags) || !d.InternalDate.Equal(sInfo.InternalDate) || d.Size != sInfo.Size ||
			!bytes.Equal(d.Structure, sInfo.Structure) || d.ModSeq != dst.HighestModSeq {
			t.Errorf("copy %d: %+v, source %+v", i, d, sInfo)
		}
		_, do := d.InternalDate.Zone()
		_, so := sInfo.InternalDate.Zone()
		if do != so {
			t.Errorf("copy %d: zone offset %d, source %d", i, do, so)
		}
		db, err := s.MessageBody(ctx, u.ID, arch.ID, dstUIDs[i])
		must(t, err)
		sb, err := s.MessageBody(ctx, u.ID, inbox.ID, srcUIDs[i])
		must(t, err)
		if !bytes.Equal(db, sb) {
			t.Errorf("copy %d body %q, source %q", i, db, sb)
		}
	}
	// The copies are independent messages: changing or expunging one
	// side leaves the other (and the shared body) alone.
	_, _, err = s.UpdateFlags(ctx, u.ID, arch.ID, dstUIDs[:1], store.FlagsSet, []string{`\Deleted`}, 0)
	must(t, err)
	wantFlags(t, "source after changing the copy", flagsOf(t, s, u.ID, inbox.ID, uids[0]), `\Seen`, `$Work`)
	_, err = s.Expunge(ctx, u.ID, inbox.ID, uids[:1])
	must(t, err)
	if b, err := s.MessageBody(ctx, u.ID, arch.ID, dstUIDs[0]); err != nil || string(b) != "one\r\n" {
		t.Errorf("copy's body after expunging the source: %q, %v", b, err)
	}

	// Copying nothing that exists changes nothing.
	before := mustMailbox(t, s, u.ID, "Archive")
	su, du, d2, err := s.CopyMessages(ctx, u.ID, inbox.ID, arch.ID, u32(uids[0], 9999))
	must(t, err)
	if len(su) != 0 || len(du) != 0 || d2 != before {
		t.Errorf("empty copy = %v %v %+v, want nothing and %+v", su, du, d2, before)
	}
	// ChangesSince in the destination sees the copies.
	ch, err := s.ChangesSince(ctx, u.ID, arch.ID, arch.HighestModSeq)
	must(t, err)
	if !slices.Equal(uidsOf(ch.Changed), dstUIDs) || len(ch.Vanished) != 0 {
		t.Errorf("destination ChangesSince = %+v", ch)
	}
}

func testMove(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	trash := mustMailbox(t, s, u.ID, "Trash")
	uids, src := mustAppend(t, s, u.ID, inbox.ID, msg("a", `\Seen`), msg("bb", `$X`), msg("ccc"), msg("dddd"))

	srcUIDs, dstUIDs, dst, err := s.MoveMessages(ctx, u.ID, inbox.ID, trash.ID, u32(uids[3], uids[1], 31337))
	must(t, err)
	if !slices.Equal(srcUIDs, u32(uids[1], uids[3])) || !slices.Equal(dstUIDs, u32(trash.UIDNext, trash.UIDNext+1)) {
		t.Errorf("MOVE pairs %v -> %v", srcUIDs, dstUIDs)
	}
	if dst.UIDNext != trash.UIDNext+2 || dst.HighestModSeq != trash.HighestModSeq+1 {
		t.Errorf("destination after move %+v, before %+v", dst, trash)
	}
	after := mustMailbox(t, s, u.ID, "INBOX")
	if after.HighestModSeq != src.HighestModSeq+1 || after.UIDNext != src.UIDNext {
		t.Errorf("source after move %+v, before %+v", after, src)
	}
	idx, _ := mustIndex(t, s, u.ID, inbox.ID)
	if !slices.Equal(uidsOf(idx), u32(uids[0], uids[2])) {
		t.Errorf("source index after move %v", uidsOf(idx))
	}
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, src.HighestModSeq)
	must(t, err)
	if len(ch.Changed) != 0 || !slices.Equal(ch.Vanished, srcUIDs) || !ch.Complete || ch.HighestModSeq != after.HighestModSeq {
		t.Errorf("source ChangesSince after move %+v", ch)
	}
	wantCounters(t, s, u.ID, inbox.ID, 2, 1, 2, 4)
	wantCounters(t, s, u.ID, trash.ID, 2, 2, 2, 6)
	wantFlags(t, "moved", flagsOf(t, s, u.ID, trash.ID, dstUIDs[0]), `$X`)
	for i, uid := range dstUIDs {
		b, err := s.MessageBody(ctx, u.ID, trash.ID, uid)
		must(t, err)
		if want := []string{"bb", "dddd"}[i]; string(b) != want {
			t.Errorf("moved body %q, want %q", b, want)
		}
	}
	// Moving again (the UIDs are gone) is a no-op.
	su, du, d2, err := s.MoveMessages(ctx, u.ID, inbox.ID, trash.ID, srcUIDs)
	must(t, err)
	if len(su) != 0 || len(du) != 0 || d2 != dst || mustMailbox(t, s, u.ID, "INBOX") != after {
		t.Errorf("second move = %v %v %+v", su, du, d2)
	}
}

func testCopyMoveSameMailbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, mb := mustAppend(t, s, u.ID, inbox.ID, msg("x", `\Seen`), msg("y"))
	su, du, d, err := s.CopyMessages(ctx, u.ID, inbox.ID, inbox.ID, uids)
	must(t, err)
	if !slices.Equal(su, uids) || !slices.Equal(du, u32(mb.UIDNext, mb.UIDNext+1)) || d.HighestModSeq != mb.HighestModSeq+1 {
		t.Errorf("copy into itself: %v -> %v, %+v", su, du, d)
	}
	wantCounters(t, s, u.ID, inbox.ID, 4, 2, 4, 4)
	su, du2, d2, err := s.MoveMessages(ctx, u.ID, inbox.ID, inbox.ID, du)
	must(t, err)
	if !slices.Equal(su, du) || !slices.Equal(du2, u32(d.UIDNext, d.UIDNext+1)) || d2.HighestModSeq != d.HighestModSeq+1 {
		t.Errorf("move into itself: %v -> %v, %+v (one MODSEQ, after %d)", su, du2, d2, d.HighestModSeq)
	}
	idx, _ := mustIndex(t, s, u.ID, inbox.ID)
	if !slices.Equal(uidsOf(idx), append(slices.Clone(uids), du2...)) {
		t.Errorf("index after move into itself: %v", uidsOf(idx))
	}
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, d.HighestModSeq)
	must(t, err)
	if !slices.Equal(uidsOf(ch.Changed), du2) || !slices.Equal(ch.Vanished, du) {
		t.Errorf("ChangesSince after move into itself: %+v", ch)
	}
	wantCounters(t, s, u.ID, inbox.ID, 4, 2, 4, 4)
}

// ---- ownership and placeholders ----

// everyMessageCall calls every store.Messages method on mailbox id as
// userID and returns their errors by name.
func everyMessageCall(s store.Store, userID, id, other int64) map[string]error {
	ctx := context.Background()
	errs := map[string]error{}
	_, _, errs["AppendMessages"] = s.AppendMessages(ctx, userID, id, []store.NewMessage{msg("x")})
	_, _, errs["MessageIndex"] = s.MessageIndex(ctx, userID, id)
	_, errs["MessageInfos"] = s.MessageInfos(ctx, userID, id, u32(1))
	_, errs["MessageBody"] = s.MessageBody(ctx, userID, id, 1)
	_, errs["MessagePrefixes"] = s.MessagePrefixes(ctx, userID, id, []store.PrefixRequest{{UID: 1, N: 10}})
	_, errs["MessagePrefixes of none"] = s.MessagePrefixes(ctx, userID, id, nil)
	if b, err := s.OpenBody(ctx, userID, id, 1); err == nil {
		b.Close()
	} else {
		errs["OpenBody"] = err
	}
	_, _, errs["UpdateFlags"] = s.UpdateFlags(ctx, userID, id, u32(1), store.FlagsAdd, []string{`\Seen`}, 0)
	_, errs["Expunge"] = s.Expunge(ctx, userID, id, u32(1))
	_, _, _, errs["CopyMessages from"] = s.CopyMessages(ctx, userID, id, other, u32(1))
	_, _, _, errs["CopyMessages to"] = s.CopyMessages(ctx, userID, other, id, u32(1))
	_, _, _, errs["MoveMessages from"] = s.MoveMessages(ctx, userID, id, other, u32(1))
	_, _, _, errs["MoveMessages to"] = s.MoveMessages(ctx, userID, other, id, u32(1))
	_, errs["ChangesSince"] = s.ChangesSince(ctx, userID, id, 0)
	_, errs["UIDChangesSince"] = s.UIDChangesSince(ctx, userID, id, 0, true)
	_, errs["UIDChangesSince without changed"] = s.UIDChangesSince(ctx, userID, id, 0, false)
	return errs
}

func testMessageOwnership(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreateUser(t, s, "a", nil)
	b := mustCreateUser(t, s, "b", nil)
	ainbox := mustMailbox(t, s, a.ID, "INBOX")
	binbox := mustMailbox(t, s, b.ID, "INBOX")
	mustAppend(t, s, a.ID, ainbox.ID, msg("secret"))
	mustAppend(t, s, b.ID, binbox.ID, msg("b's"))
	aBefore := mustMailbox(t, s, a.ID, "INBOX")
	for name, err := range everyMessageCall(s, b.ID, ainbox.ID, binbox.ID) {
		wantErr(t, err, store.ErrNotFound, name+" on another user's mailbox")
	}
	for name, err := range everyMessageCall(s, a.ID, 1<<40, ainbox.ID) {
		wantErr(t, err, store.ErrNotFound, name+" on an unknown mailbox")
	}
	if got := mustMailbox(t, s, a.ID, "INBOX"); got != aBefore {
		t.Errorf("a's INBOX changed by b's calls: %+v, was %+v", got, aBefore)
	}
	wantCounters(t, s, a.ID, ainbox.ID, 1, 1, 1, 6)
	if b, err := s.MessageBody(ctx, a.ID, ainbox.ID, 1); err != nil || string(b) != "secret" {
		t.Errorf("a's message: %q, %v", b, err)
	}
}

func testMessageNoSelect(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	mustCreate(t, s, u.ID, "p/c")
	p := mustMailbox(t, s, u.ID, "p")
	mustAppend(t, s, u.ID, p.ID, msg("will go"))
	must(t, s.DeleteMailbox(ctx, u.ID, "p"))
	for name, err := range everyMessageCall(s, u.ID, p.ID, inbox.ID) {
		wantErr(t, err, store.ErrNoSelect, name+" on a placeholder")
	}
	// Recreating it gives an empty mailbox whose UIDs continue, and
	// whose old change reports are incomplete (it has a new
	// UIDVALIDITY anyway).
	m := mustCreate(t, s, u.ID, "p")
	if m.UIDNext < 2 || m.UIDValidity == p.UIDValidity {
		t.Errorf("recreated mailbox %+v, placeholder was %+v", m, p)
	}
	if idx, _ := mustIndex(t, s, u.ID, m.ID); len(idx) != 0 {
		t.Errorf("recreated mailbox has messages: %+v", idx)
	}
}

func testMailboxOpsWithMessages(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", nil)
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	uids, _ := mustAppend(t, s, u.ID, inbox.ID, msg("kept"))
	// RENAME INBOX takes the messages along.
	must(t, s.RenameMailbox(ctx, u.ID, "INBOX", "Old"))
	old := mustMailbox(t, s, u.ID, "Old")
	if b, err := s.MessageBody(ctx, u.ID, old.ID, uids[0]); err != nil || string(b) != "kept" {
		t.Errorf("body after RENAME INBOX: %q, %v", b, err)
	}
	newInbox := mustMailbox(t, s, u.ID, "INBOX")
	if idx, _ := mustIndex(t, s, u.ID, newInbox.ID); len(idx) != 0 {
		t.Errorf("new INBOX has messages %+v", idx)
	}
	// Copy into another mailbox, delete the source: the copy's body stays.
	x := mustCreate(t, s, u.ID, "x")
	_, du, _, err := s.CopyMessages(ctx, u.ID, old.ID, x.ID, uids)
	must(t, err)
	must(t, s.DeleteMailbox(ctx, u.ID, "Old"))
	if b, err := s.MessageBody(ctx, u.ID, x.ID, du[0]); err != nil || string(b) != "kept" {
		t.Errorf("copy's body after deleting the source mailbox: %q, %v", b, err)
	}
	_, err = s.MessageBody(ctx, u.ID, old.ID, uids[0])
	wantErr(t, err, store.ErrNotFound, "MessageBody in a deleted mailbox")
	// DeleteUser takes everything.
	must(t, s.DeleteUser(ctx, u.ID))
	_, _, err = s.MessageIndex(ctx, u.ID, x.ID)
	wantErr(t, err, store.ErrNotFound, "MessageIndex of a deleted user")
}

// ---- concurrency ----

func testMessageConcurrency(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mustCreateUser(t, s, "u", store.DefaultMailboxes())
	inbox := mustMailbox(t, s, u.ID, "INBOX")
	trash := mustMailbox(t, s, u.ID, "Trash")
	const workers, rounds = 16, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []uint32
	modseqs := map[uint64]bool{}
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				n := 1 + (w+r)%3
				var msgs []store.NewMessage
				for i := range n {
					msgs = append(msgs, msg(fmt.Sprintf("w%d r%d i%d", w, r, i)))
				}
				uids, mb, err := s.AppendMessages(ctx, u.ID, inbox.ID, msgs)
				if err != nil {
					errc <- err
					return
				}
				for i := 1; i < len(uids); i++ {
					if uids[i] != uids[i-1]+1 {
						errc <- fmt.Errorf("one append's UIDs not consecutive: %v", uids)
						return
					}
				}
				mu.Lock()
				all = append(all, uids...)
				if modseqs[mb.HighestModSeq] {
					errc <- fmt.Errorf("MODSEQ %d given to two appends", mb.HighestModSeq)
				}
				modseqs[mb.HighestModSeq] = true
				mu.Unlock()
				// Mix in the other writes and reads.
				switch r % 4 {
				case 0:
					_, _, err = s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsAdd, []string{`\Seen`}, 0)
				case 1:
					_, _, _, err = s.CopyMessages(ctx, u.ID, inbox.ID, trash.ID, uids)
				case 2:
					_, err = s.ChangesSince(ctx, u.ID, inbox.ID, mb.HighestModSeq-1)
				case 3:
					_, _, err = s.MessageIndex(ctx, u.ID, inbox.ID)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	slices.Sort(all)
	for i, uid := range all {
		if uid != inbox.UIDNext+uint32(i) {
			t.Fatalf("concurrent appends: UIDs are not distinct and consecutive: %v", all)
		}
	}
	idx, mb := mustIndex(t, s, u.ID, inbox.ID)
	if len(idx) != len(all) || mb.UIDNext != inbox.UIDNext+uint32(len(all)) {
		t.Errorf("%d messages, UIDNext %d; want %d, %d", len(idx), mb.UIDNext, len(all), inbox.UIDNext+uint32(len(all)))
	}
	for _, m := range idx {
		b, err := s.MessageBody(ctx, u.ID, inbox.ID, m.UID)
		must(t, err)
		if !bytes.HasPrefix(b, []byte("w")) {
			t.Errorf("UID %d body %q", m.UID, b)
		}
	}
	st := mustStatus(t, s, u.ID, inbox.ID)
	if int(st.Messages) != len(all) {
		t.Errorf("Status %+v, want %d messages", st, len(all))
	}

	// Concurrent expunges of overlapping sets: each UID is removed once.
	var removedMu sync.Mutex
	removed := map[uint32]int{}
	var wg2 sync.WaitGroup
	for w := range 8 {
		wg2.Go(func() {
			var set []uint32
			for i := w % 2; i < len(all); i += 2 {
				set = append(set, all[i])
			}
			got, err := s.Expunge(ctx, u.ID, inbox.ID, set)
			if err != nil {
				t.Error(err)
				return
			}
			removedMu.Lock()
			for _, uid := range got {
				removed[uid]++
			}
			removedMu.Unlock()
		})
	}
	wg2.Wait()
	if len(removed) != len(all) {
		t.Errorf("%d UIDs removed, want %d", len(removed), len(all))
	}
	for uid, n := range removed {
		if n != 1 {
			t.Errorf("UID %d reported removed %d times", uid, n)
		}
	}
	ch, err := s.ChangesSince(ctx, u.ID, inbox.ID, 0)
	must(t, err)
	if len(ch.Changed) != 0 || !slices.Equal(ch.Vanished, all) {
		t.Errorf("after expunging everything: %d changed, %d vanished", len(ch.Changed), len(ch.Vanished))
	}
}

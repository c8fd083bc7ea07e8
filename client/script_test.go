package client

import (
	"bufio"
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted serves one connection: for each client line whose command
// (after the tag) starts with a key of replies, it writes the reply with
// "TAG" replaced by the line's tag. Lines are recorded.
//
// Steps with the same prefix answer in turn, the last one repeating: a
// test can script a command that gets a different answer the second time.
type scripted struct {
	t       *testing.T
	replies []scriptStep
	lines   chan string

	mu   sync.Mutex
	used []bool
}

type scriptStep struct{ prefix, reply string }

func startScripted(t *testing.T, greeting string, steps ...scriptStep) (addr string, s *scripted) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s = &scripted{t: t, replies: steps, lines: make(chan string, 100), used: make([]bool, len(steps))}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(nc, greeting)
		}
	}()
	return l.Addr().String(), s
}

func (s *scripted) serve(nc net.Conn, greeting string) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	w := bufio.NewWriter(nc)
	w.WriteString(greeting + "\r\n")
	w.Flush()
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.lines <- line
		tag, cmd, _ := strings.Cut(line, " ")
		if reply, ok := s.reply(cmd); ok {
			w.WriteString(strings.ReplaceAll(reply, "TAG", tag))
		}
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
}

// reply returns the answer to cmd: the first step whose prefix matches,
// skipping those already used when a later one has the same prefix.
func (s *scripted) reply(cmd string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.replies {
		if !strings.HasPrefix(cmd, st.prefix) {
			continue
		}
		if s.used[i] && slices.ContainsFunc(s.replies[i+1:], func(o scriptStep) bool { return o.prefix == st.prefix }) {
			continue
		}
		s.used[i] = true
		return st.reply, true
	}
	return "", false
}

func (s *scripted) sent() []string {
	var out []string
	for {
		select {
		case l := <-s.lines:
			_, cmd, _ := strings.Cut(l, " ")
			out = append(out, cmd)
		default:
			return out
		}
	}
}

const scriptGreeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+] hi"
const scriptAuthOK = "TAG OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE CONDSTORE QRESYNC ESEARCH X-DRAFT-W07-RECONNECT] ok\r\n"

func scriptedState() *MemoryStore {
	st := MailboxState{Mailbox: "INBOX", UIDValidity: 100, UIDNext: 6, HighestModSeq: 50, SessionID: "S1",
		Capabilities: []string{"CONDSTORE", "ESEARCH", "IMAP4REV1", "QRESYNC", capReconnect}}
	for u := uint32(1); u <= 5; u++ {
		st.Messages = append(st.Messages, Message{UID: u})
	}
	m := &MemoryStore{}
	m.Save(context.Background(), st)
	return m
}

// NEWSID + SELECTED with the same UIDVALIDITY: the server could not tell
// the changes since the mod-sequence (draft §3.3); the client compares
// within the selection, CONDSTORE style, in one more round trip.
func TestScriptedNewSIDSameUIDValidity(t *testing.T) {
	addr, s := startScripted(t, scriptGreeting,
		scriptStep{"AUTHENTICATE", scriptAuthOK},
		scriptStep{"SID S1", "* NEWSID S1\r\n* SELECTED INBOX\r\n* OK [UIDVALIDITY 100] x\r\n* OK [UIDNEXT 8] x\r\n" +
			"* 4 EXISTS\r\n* OK [HIGHESTMODSEQ 70] x\r\nTAG OK [READ-WRITE] resync required\r\n"},
		scriptStep{"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 50)", "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (60))\r\n" +
			"* 5 FETCH (UID 7 FLAGS () MODSEQ (65))\r\nTAG OK done\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1:2,4,7\r\nTAG OK done\r\n"},
	)
	c := New(Options{Addr: addr, Username: "u", Password: "p", Store: scriptedState(), Timeout: 5 * time.Second})
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %q", s.sent())
	if res.Strategy != StrategyCONDSTORE || !slices.Equal(res.Fallbacks, []Strategy{StrategySID}) || res.RoundTrips != 2 {
		t.Errorf("strategy %v %v rt %d", res.Strategy, res.Fallbacks, res.RoundTrips)
	}
	st := c.State()
	var uids []uint32
	for _, m := range st.Messages {
		uids = append(uids, m.UID)
	}
	t.Logf("uids %v modseq %d", uids, st.HighestModSeq)
	if !slices.Equal(uids, []uint32{1, 2, 4, 7}) {
		t.Errorf("uids %v", uids)
	}
	if st.HighestModSeq != 70 || st.SessionID != "S1" {
		t.Errorf("modseq %d sid %q", st.HighestModSeq, st.SessionID)
	}
}

// SELECTED + NEWSID with a new UIDVALIDITY: the cache is emptied and
// UID FETCH 1:* (FLAGS) runs within the selection.
func TestScriptedNewSIDNewUIDValidity(t *testing.T) {
	addr, s := startScripted(t, scriptGreeting,
		scriptStep{"AUTHENTICATE", scriptAuthOK},
		scriptStep{"SID S1", "* SELECTED INBOX\r\n* NEWSID S1\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 200] x\r\n* OK [UIDNEXT 3] x\r\n" +
			"* OK [HIGHESTMODSEQ 9] x\r\nTAG OK [READ-WRITE] resync required\r\n"},
		scriptStep{"UID FETCH 1:* (FLAGS)", "* 1 FETCH (UID 1 FLAGS (\\Answered))\r\n* 2 FETCH (UID 2 FLAGS ())\r\nTAG OK done\r\n"},
	)
	c := New(Options{Addr: addr, Username: "u", Password: "p", Store: scriptedState(), Timeout: 5 * time.Second})
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %q", s.sent())
	if res.Strategy != StrategyFull || res.RoundTrips != 2 {
		t.Errorf("strategy %v %v rt %d", res.Strategy, res.Fallbacks, res.RoundTrips)
	}
	if len(res.Events) != 2 {
		t.Fatalf("events %v", res.Events)
	}
	if _, ok := res.Events[0].(FullResync); !ok {
		t.Errorf("events %v", res.Events)
	}
	st := c.State()
	if st.UIDValidity != 200 || len(st.Messages) != 2 || st.HighestModSeq != 9 || st.UIDNext != 3 {
		t.Errorf("state %+v", st)
	}
}

// A count that does not match EXISTS is repaired with UID SEARCH and a
// FETCH of the missing UIDs.
func TestScriptedReconcile(t *testing.T) {
	addr, s := startScripted(t, scriptGreeting,
		scriptStep{"AUTHENTICATE", scriptAuthOK},
		scriptStep{"SID S1", "* SELECTED INBOX\r\n* OK [UIDVALIDITY 100] x\r\n* OK [UIDNEXT 9] x\r\n" +
			"* 6 EXISTS\r\n* OK [HIGHESTMODSEQ 70] x\r\n* 6 FETCH (UID 8 FLAGS () MODSEQ (66))\r\n* EXPUNGED 3\r\nTAG OK [READ-WRITE] resumed\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1:2,4:6,8\r\nTAG OK done\r\n"},
		scriptStep{"UID FETCH 6 (FLAGS)", "* 5 FETCH (UID 6 FLAGS (\\Draft))\r\nTAG OK done\r\n"},
	)
	c := New(Options{Addr: addr, Username: "u", Password: "p", Store: scriptedState(), Timeout: 5 * time.Second})
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %q", s.sent())
	if res.Strategy != StrategySID || res.RoundTrips != 3 {
		t.Errorf("strategy %v %v rt %d", res.Strategy, res.Fallbacks, res.RoundTrips)
	}
	var uids []uint32
	for _, m := range c.State().Messages {
		uids = append(uids, m.UID)
	}
	if !slices.Equal(uids, []uint32{1, 2, 4, 5, 6, 8}) {
		t.Errorf("uids %v", uids)
	}
}

func uidsOf(ms []Message) []uint32 {
	var uids []uint32
	for _, m := range ms {
		uids = append(uids, m.UID)
	}
	return uids
}

// A sequence-number EXPUNGE received on a synchronized connection (the
// NOOP of a second Sync, as servers without QRESYNC enabled send it after
// a CONDSTORE or full synchronization) is applied, published and saved.
// It used to change the working state only: State() and the store kept
// the expunged UID.
func TestScriptedLiveExpunge(t *testing.T) {
	for _, tc := range []struct {
		force Strategy
		steps []scriptStep
	}{
		{StrategyCONDSTORE, []scriptStep{
			{"SELECT INBOX (CONDSTORE)", "* 5 EXISTS\r\n* OK [UIDVALIDITY 100] x\r\n* OK [UIDNEXT 6] x\r\n* OK [HIGHESTMODSEQ 50] x\r\nTAG OK [READ-WRITE] x\r\n"},
			{"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 50)", "TAG OK done\r\n"},
			{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1:5\r\nTAG OK done\r\n"},
		}},
		{StrategyFull, []scriptStep{
			{"SELECT INBOX", "* 5 EXISTS\r\n* OK [UIDVALIDITY 100] x\r\n* OK [UIDNEXT 6] x\r\nTAG OK [READ-WRITE] x\r\n"},
			{"UID FETCH 1:* (FLAGS)", "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n* 3 FETCH (UID 3 FLAGS ())\r\n" +
				"* 4 FETCH (UID 4 FLAGS ())\r\n* 5 FETCH (UID 5 FLAGS ())\r\nTAG OK done\r\n"},
		}},
	} {
		t.Run(tc.force.String(), func(t *testing.T) {
			steps := append([]scriptStep{{"AUTHENTICATE", scriptAuthOK}}, tc.steps...)
			steps = append(steps, scriptStep{"NOOP", "* 3 EXPUNGE\r\nTAG OK done\r\n"})
			addr, s := startScripted(t, scriptGreeting, steps...)
			store := scriptedState()
			c := New(Options{Addr: addr, Username: "u", Password: "p", Store: store, Timeout: 5 * time.Second, ForceStrategy: tc.force})
			ctx := context.Background()
			if res, err := c.Sync(ctx); err != nil || res.Strategy != tc.force {
				t.Fatalf("first sync: %v %v", res.Strategy, err)
			}
			res, err := c.Sync(ctx)
			if err != nil || res.Strategy != StrategyNoop {
				t.Fatalf("second sync: %v %v", res.Strategy, err)
			}
			t.Logf("sent %q", s.sent())
			want := []uint32{1, 2, 4, 5}
			if got := uidsOf(c.State().Messages); !slices.Equal(got, want) {
				t.Errorf("State() uids %v, want %v", got, want)
			}
			saved, _ := store.Load(ctx)
			if got := uidsOf(saved.Messages); !slices.Equal(got, want) {
				t.Errorf("saved uids %v, want %v", got, want)
			}
			if len(res.Events) != 1 {
				t.Fatalf("events %v", res.Events)
			}
			if v, ok := res.Events[0].(Vanished); !ok || !slices.Equal(v.UIDs, []uint32{3}) {
				t.Errorf("events %v", res.Events)
			}
		})
	}
}

// An EXPUNGE that arrives during the repair's UID SEARCH but after its
// answer (RFC 3501 §7.4.1 allows EXPUNGE during UID SEARCH) leaves the
// answer one UID too many: the repair runs again instead of failing the
// synchronization.
func TestScriptedReconcileExpungeDuringSearch(t *testing.T) {
	addr, s := startScripted(t, scriptGreeting,
		scriptStep{"AUTHENTICATE", scriptAuthOK},
		scriptStep{"SELECT INBOX (CONDSTORE)", "* 5 EXISTS\r\n* OK [UIDVALIDITY 100] x\r\n* OK [UIDNEXT 6] x\r\n* OK [HIGHESTMODSEQ 50] x\r\nTAG OK [READ-WRITE] x\r\n"},
		// An expunge between SELECT and SEARCH: the sequence map is
		// suspect, the view is rebuilt.
		scriptStep{"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 50)", "* 2 EXPUNGE\r\nTAG OK done\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1,3:5\r\nTAG OK done\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1,3:5\r\n* 3 EXPUNGE\r\nTAG OK done\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1,3,5\r\nTAG OK done\r\n"},
	)
	c := New(Options{Addr: addr, Username: "u", Password: "p", Store: scriptedState(), Timeout: 5 * time.Second, ForceStrategy: StrategyCONDSTORE})
	res, err := c.Sync(context.Background())
	t.Logf("sent %q", s.sent())
	if err != nil {
		t.Fatal(err)
	}
	if res.Strategy != StrategyCONDSTORE {
		t.Errorf("strategy %v", res.Strategy)
	}
	if got := uidsOf(c.State().Messages); !slices.Equal(got, []uint32{1, 3, 5}) {
		t.Errorf("uids %v", got)
	}
}

// A live count that disagrees with the state (here EXISTS going down
// without an EXPUNGE the client could apply) is repaired at once, not
// only when new messages are announced.
func TestScriptedLiveCountRepaired(t *testing.T) {
	addr, s := startScripted(t, scriptGreeting,
		scriptStep{"AUTHENTICATE", scriptAuthOK},
		scriptStep{"SELECT INBOX (CONDSTORE)", "* 5 EXISTS\r\n* OK [UIDVALIDITY 100] x\r\n* OK [UIDNEXT 6] x\r\n* OK [HIGHESTMODSEQ 50] x\r\nTAG OK [READ-WRITE] x\r\n"},
		scriptStep{"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 50)", "TAG OK done\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1:5\r\nTAG OK done\r\n"},
		scriptStep{"UID SEARCH RETURN (ALL) ALL", "* ESEARCH (TAG \"x\") UID ALL 1:2,4:5\r\nTAG OK done\r\n"},
		scriptStep{"NOOP", "* 9 EXPUNGE\r\nTAG OK done\r\n"},
	)
	c := New(Options{Addr: addr, Username: "u", Password: "p", Store: scriptedState(), Timeout: 5 * time.Second, ForceStrategy: StrategyCONDSTORE})
	ctx := context.Background()
	if _, err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := c.Sync(ctx)
	t.Logf("sent %q", s.sent())
	if err != nil {
		t.Fatal(err)
	}
	if got := uidsOf(c.State().Messages); !slices.Equal(got, []uint32{1, 2, 4, 5}) {
		t.Errorf("uids %v", got)
	}
	if len(res.Events) != 1 {
		t.Fatalf("events %v", res.Events)
	}
	if v, ok := res.Events[0].(Vanished); !ok || !slices.Equal(v.UIDs, []uint32{3}) {
		t.Errorf("events %v", res.Events)
	}
}

package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func bigState(n int) MailboxState {
	st := MailboxState{Mailbox: "INBOX", UIDValidity: 7, UIDNext: uint32(n + 100), HighestModSeq: 12345,
		SessionID: "abc", Capabilities: []string{"IMAP4REV1", "QRESYNC"}}
	for i := 1; i <= n+50; i++ {
		if i%97 == 0 {
			continue // expunged
		}
		m := Message{UID: uint32(i)}
		switch {
		case i%3 == 0:
			m.Flags = []string{`\Seen`}
		case i%10 == 1:
			m.Flags = []string{"$Label1", `\Flagged`, `\Seen`}
		}
		st.Messages = append(st.Messages, m)
	}
	return st
}

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	fs := &FileStore{Path: path}
	st, err := fs.Load(ctx)
	if err != nil || st.UIDValidity != 0 || len(st.Messages) != 0 {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	want := bigState(10000)
	if err := fs.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := fs.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMessages(got.Messages, want.Messages) || got.UIDValidity != 7 || got.HighestModSeq != 12345 ||
		got.SessionID != "abc" || got.UIDNext != want.UIDNext || len(got.Capabilities) != 2 {
		t.Fatalf("round trip differs")
	}
	fi, _ := os.Stat(path)
	t.Logf("%d messages in %d bytes", len(want.Messages), fi.Size())
	if fi.Size() > 40000 {
		t.Errorf("state file of %d bytes for 10,000 messages", fi.Size())
	}
	// Contiguous UIDs without flags: tiny.
	small := MailboxState{Mailbox: "INBOX", UIDValidity: 1}
	for i := 1; i <= 20000; i++ {
		small.Messages = append(small.Messages, Message{UID: uint32(i)})
	}
	fs.Save(ctx, small)
	fi, _ = os.Stat(path)
	if fi.Size() > 200 {
		t.Errorf("20,000 contiguous unflagged messages take %d bytes", fi.Size())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good, _ := encodeState(&MailboxState{Mailbox: "INBOX", UIDValidity: 3, Messages: []Message{{UID: 1, Flags: []string{`\Seen`}}, {UID: 2}}})
	cases := map[string][]byte{
		"empty":         {},
		"truncated":     good[:len(good)/2],
		"garbage":       []byte("\x00\xff{{{"),
		"version":       bytes.Replace(good, []byte(`"v":1`), []byte(`"v":9`), 1),
		"bad uids":      []byte(`{"v":1,"mailbox":"INBOX","uids":"1:*"}`),
		"zero uid":      []byte(`{"v":1,"mailbox":"INBOX","uids":"0:3"}`),
		"huge":          []byte(`{"v":1,"mailbox":"INBOX","uids":"1:4294967295"}`),
		"unknown flags": []byte(`{"v":1,"mailbox":"INBOX","uids":"1:3","flags":[{"f":["\\Seen"],"u":"2:9"}]}`),
		"double flags":  []byte(`{"v":1,"mailbox":"INBOX","uids":"1:3","flags":[{"f":["a"],"u":"2"},{"f":["b"],"u":"2"}]}`),
		"flags no uids": []byte(`{"v":1,"mailbox":"INBOX","flags":[{"f":["a"],"u":"2"}]}`),
		"empty group":   []byte(`{"v":1,"mailbox":"INBOX","uids":"1","flags":[{"f":[],"u":"1"}]}`),
		"big group":     []byte(`{"v":1,"mailbox":"INBOX","uids":"1","flags":[{"f":["a"],"u":"1:4000000000"}]}`),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			os.WriteFile(path, b, 0o600)
			fs := &FileStore{Path: path}
			_, err := fs.Load(ctx)
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("Load: %v, want ErrCorruptState", err)
			}
		})
	}
}

// A client whose state file is corrupt starts fresh with a full sync.
func TestCorruptStateFreshSync(t *testing.T) {
	e := startEnv(t)
	e.raw.appendN(3)
	path := filepath.Join(t.TempDir(), "state")
	os.WriteFile(path, []byte(`{"v":1,"uids":"5:1,x"}`), 0o600)
	c := e.client(t, func(o *Options) { o.Store = &FileStore{Path: path} })
	res := mustSync(t, c)
	if res.Strategy != StrategyFull {
		t.Errorf("strategy %v", res.Strategy)
	}
	checkState(t, c, e.raw)
	// The file now holds the good state, and a new client resumes.
	c.Drop()
	c2 := e.client(t, func(o *Options) { o.Store = &FileStore{Path: path} })
	res = mustSync(t, c2)
	if res.Strategy != StrategySID {
		t.Errorf("from the file: %v %v", res.Strategy, res.Fallbacks)
	}
	checkState(t, c2, e.raw)
}

func FuzzStateDecode(f *testing.F) {
	good, _ := encodeState(&MailboxState{Mailbox: "INBOX", UIDValidity: 3, Messages: []Message{{UID: 1, Flags: []string{`\Seen`}}, {UID: 2}}})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b, 100000)
		if err != nil {
			return
		}
		b2, err := encodeState(&st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeState(b2, 100000); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

// Either capability name offers SID: the draft's and the plain one.
func TestHasReconnect(t *testing.T) {
	for caps, want := range map[string]bool{
		"X-DRAFT-W07-RECONNECT": true,
		"RECONNECT":             true,
		"QRESYNC CONDSTORE":     false,
		"X-RECONNECT":           false,
	} {
		set := strings.Fields(caps)
		has := func(c string) bool { return slices.Contains(set, c) }
		if got := hasReconnect(has); got != want {
			t.Errorf("hasReconnect(%q) = %v, want %v", caps, got, want)
		}
	}
}

package server

import (
	"bufio"
	"bytes"
	"context"
	"testing"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server/tracker"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
	"github.com/quickimap/quickimap/wire"
)

// untaggedConn returns a conn writing to buf with INBOX selected: one
// message (UID 1), \Recent in this session.
func untaggedConn(t *testing.T, buf *bytes.Buffer) *conn {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(ctx, "u", "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.MailboxByName(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AppendMessages(ctx, u.ID, mb.ID, []store.NewMessage{{Body: []byte("x\r\n")}}); err != nil {
		t.Fatal(err)
	}
	v, err := tracker.NewHub(st, tracker.Options{}).Open(ctx, u.ID, mb.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return &conn{enc: wire.NewEncoder(bufio.NewWriter(buf)), view: v}
}

func TestUntaggedWriters(t *testing.T) {
	var buf bytes.Buffer
	c := untaggedConn(t, &buf)
	m := store.MessageMeta{UID: 1, ModSeq: 42, Flags: []string{`\Seen`, "$Work"}}
	tests := []struct {
		write func()
		want  string
	}{
		{func() { c.writeMetaFetch(3, &m, itemsUIDFlags) }, "* 3 FETCH (UID 1 FLAGS (\\Seen $Work \\Recent))\r\n"},
		{func() { c.writeMetaFetch(3, &m, itemsUIDFlagsModSeq) }, "* 3 FETCH (UID 1 FLAGS (\\Seen $Work \\Recent) MODSEQ (42))\r\n"},
		{func() { c.writeMetaFetch(3, &m, metaItems{}.add(fetchUID).add(fetchModSeq)) }, "* 3 FETCH (UID 1 MODSEQ (42))\r\n"},
		{func() { c.writeMetaFetch(3, &m, metaItems{fetchModSeq, fetchFlags, fetchUID}) }, "* 3 FETCH (MODSEQ (42) FLAGS (\\Seen $Work \\Recent) UID 1)\r\n"},
		{func() { c.writeMetaFetch(3, &store.MessageMeta{UID: 2}, metaItems{fetchFlags}) }, "* 3 FETCH (FLAGS ())\r\n"},
		{func() { c.writeExists(7) }, "* 7 EXISTS\r\n"},
		{func() { c.writeRecent(0) }, "* 0 RECENT\r\n"},
		{func() { c.writeExpunge(5) }, "* 5 EXPUNGE\r\n"},
		{func() { c.writeVanished(false, imap.UIDSetFromSorted([]uint32{1, 2, 3, 7})) }, "* VANISHED 1:3,7\r\n"},
		{func() { c.writeVanished(true, imap.SeqSet{{Start: 4, Stop: 9}}) }, "* VANISHED (EARLIER) 4:9\r\n"},
		{func() { c.writeExpunged(imap.SeqSet{{Start: 4, Stop: 4}}) }, "* EXPUNGED 4\r\n"},
	}
	for _, tc := range tests {
		buf.Reset()
		tc.write()
		if err := c.enc.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != tc.want {
			t.Errorf("wrote %q, want %q", got, tc.want)
		}
	}
	if !c.sentModSeq {
		t.Error("a MODSEQ went out but sentModSeq is not set")
	}
	if got := metaItemsOf([]fetchAtt{{kind: fetchFlags}, {kind: fetchUID}}); got != (metaItems{fetchFlags, fetchUID}) {
		t.Errorf("metaItemsOf = %v", got)
	}

	// The per-message responses allocate nothing.
	set := imap.UIDSetFromSorted([]uint32{1, 3, 5, 7, 9, 11})
	if n := testing.AllocsPerRun(100, func() {
		buf.Reset()
		c.writeMetaFetch(3, &m, itemsUIDFlagsModSeq)
		c.writeExists(7)
		c.writeExpunge(5)
		c.writeVanished(true, set)
		c.enc.Flush()
	}); n != 0 {
		t.Errorf("%v allocations per round of writes", n)
	}
}

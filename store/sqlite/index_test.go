package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/store"
)

func TestParseIndex(t *testing.T) {
	got, err := parseIndex(nil, "3,1,2", "7,5,6", "\\Seen\n\n\\Seen kw")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.MessageMeta{
		{UID: 1, ModSeq: 5, Flags: []string{}},
		{UID: 2, ModSeq: 6, Flags: []string{`\Seen`, "kw"}},
		{UID: 3, ModSeq: 7, Flags: []string{`\Seen`}},
	}
	if !slices.EqualFunc(got, want, func(a, b store.MessageMeta) bool {
		return a.UID == b.UID && a.ModSeq == b.ModSeq && slices.Equal(a.Flags, b.Flags)
	}) {
		t.Errorf("parseIndex = %+v, want %+v (sorted by UID)", got, want)
	}
	if got, err := parseIndex(nil, "", "", ""); err != nil || got != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	if got, err := parseIndex(nil, "4294967295", "9223372036854775807", ""); err != nil || len(got) != 1 ||
		got[0].UID != 4294967295 || got[0].ModSeq != 1<<63-1 || len(got[0].Flags) != 0 {
		t.Errorf("largest values: %+v, %v", got, err)
	}
	// Messages with the same flags share one slice, which does not point
	// into the aggregate's text.
	got, _ = parseIndex(nil, "1,2,3", "1,1,1", "a\nb\na")
	if &got[0].Flags[0] != &got[2].Flags[0] {
		t.Error("equal flags not shared")
	}
	for _, bad := range [][3]string{
		{"1,2", "1", "\n"},        // fewer MODSEQs
		{"1", "1,2", ""},          // more MODSEQs
		{"1,2", "1,1", ""},        // fewer flag texts
		{"1,,2", "1,1,1", "\n\n"}, // empty number
		{"1,", "1,", "\n"},        // trailing comma
		{"0", "1", ""},            // UID 0
		{"4294967296", "1", ""},   // UID too large
		{"1", "0", ""},            // MODSEQ 0
		{"1", "9223372036854775808", ""},
		{"1x", "1", ""},
		{"-1", "1", ""},
	} {
		if got, err := parseIndex(nil, bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("parseIndex(%q, %q, %q) = %+v, want an error", bad[0], bad[1], bad[2], got)
		}
	}
}

// TestMessageIndexOrder: the index comes out by ascending UID whatever
// the order the rows were written in, with many mailboxes' rows
// interleaved.
func TestMessageIndexOrder(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, inbox := setup(t, s)
	arch, err := s.MailboxByName(ctx, u.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		for _, mb := range []int64{inbox.ID, arch.ID} {
			flags := []string{`\Seen`}
			if i%3 == 0 {
				flags = append(flags, fmt.Sprintf("k%d", i%4))
			}
			if _, _, err := s.AppendMessages(ctx, u.ID, mb, []store.NewMessage{{Flags: flags, Body: []byte("m")}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	idx, _, err := s.MessageIndex(ctx, u.ID, inbox.ID)
	if err != nil || len(idx) != 50 {
		t.Fatalf("MessageIndex: %d, %v", len(idx), err)
	}
	for i, m := range idx {
		want := []string{`\Seen`}
		if i%3 == 0 {
			want = append(want, fmt.Sprintf("k%d", i%4))
		}
		if m.UID != uint32(i+1) || m.ModSeq != uint64(i+2) || !slices.Equal(m.Flags, want) {
			t.Errorf("message %d: %+v, want UID %d MODSEQ %d flags %q", i, m, i+1, i+2, want)
		}
	}
}

// TestMigrateV4 opens a schema version 3 database holding messages and
// checks that the rebuilt messages table holds the same messages, keeps
// the counters right and works with the triggers.
func TestMigrateV4(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", fileURI(filepath.Join(dir, FileName))+"?_foreign_keys=1&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	w := &writerConn{db: db}
	if _, err := w.get(ctx); err != nil {
		t.Fatal(err)
	}
	tx := &dbtx{w: w}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	exec(`BEGIN IMMEDIATE`)
	exec(`CREATE TABLE schema_version (version INTEGER NOT NULL)`)
	exec(`INSERT INTO schema_version (version) VALUES (3)`)
	for _, m := range migrations()[:3] {
		if err := m(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO users (id, name, password_hash, created) VALUES (1, 'u', 'h', 0)`)
	exec(`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext, highest_modseq) VALUES (1, 1, 'INBOX', 7, 42, 50), (2, 1, 'Archive', 8, 21, 30)`)
	archiveSize := 0
	// Rows of the two mailboxes interleaved, the newer UIDs first, a body
	// shared by a copy.
	for i := 40; i >= 1; i-- {
		exec(`INSERT INTO bodies (id, data, structure) VALUES (?, ?, NULL)`, i, fmt.Sprintf("body %d", i))
		flags := `\Seen`
		if i%4 == 0 {
			flags = `\Answered kw`
		}
		size := len(fmt.Sprintf("body %d", i))
		exec(`INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id) VALUES (1, ?, ?, ?, ?, ?, ?)`,
			i, 10+i, flags, 1000+i, size, i)
		if i <= 20 {
			exec(`INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id) VALUES (2, ?, ?, '', 0, ?, ?)`,
				i, 5+i, size, i)
			archiveSize += size
		}
	}
	exec(`INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) VALUES (1, 41, 49, 0)`)
	exec(`COMMIT`)
	w.release()
	db.Close()

	s := openTest(t, dir)
	defer s.Close()
	var v int
	var ddl string
	if err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT version FROM schema_version), sql FROM sqlite_schema WHERE name = 'messages'`).Scan(&v, &ddl); err != nil {
		t.Fatal(err)
	}
	if v != schemaVersion() || !strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("schema version %d, messages table %s", v, ddl)
	}
	healthy(t, s)
	idx, mb, err := s.MessageIndex(ctx, 1, 1)
	if err != nil || len(idx) != 40 || mb.UIDNext != 42 || mb.HighestModSeq != 50 {
		t.Fatalf("MessageIndex: %d messages, %+v, %v", len(idx), mb, err)
	}
	for i, m := range idx {
		uid := i + 1
		flags := []string{`\Seen`}
		if uid%4 == 0 {
			flags = []string{`\Answered`, "kw"}
		}
		if m.UID != uint32(uid) || m.ModSeq != uint64(10+uid) || !slices.Equal(m.Flags, flags) {
			t.Errorf("INBOX message %d: %+v", i, m)
		}
	}
	st, err := s.Status(ctx, 1, 2)
	if err != nil || st.Messages != 20 || st.Unseen != 20 || st.Size != int64(archiveSize) {
		t.Errorf("Archive status %+v, %v", st, err)
	}
	ch, err := s.ChangesSince(ctx, 1, 1, 45)
	if err != nil || len(ch.Changed) != 5 || !slices.Equal(ch.Vanished, []uint32{41}) {
		t.Errorf("ChangesSince = %+v, %v", ch, err)
	}
	// The triggers: a body shared with Archive stays until its last
	// message goes; counters follow.
	if _, err := s.Expunge(ctx, 1, 1, []uint32{1, 30}); err != nil {
		t.Fatal(err)
	}
	if body, err := s.MessageBody(ctx, 1, 2, 1); err != nil || string(body) != "body 1" {
		t.Errorf("shared body after expunging INBOX's copy: %q, %v", body, err)
	}
	var bodies int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM bodies`).Scan(&bodies); err != nil || bodies != 39 {
		t.Errorf("%d bodies after the expunge, want 39 (%v)", bodies, err)
	}
	if _, _, err := s.AppendMessages(ctx, 1, 1, []store.NewMessage{{Body: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Status(ctx, 1, 1); err != nil || st.Messages != 39 || st.Unseen != 11 || st.UIDNext != 43 {
		t.Errorf("INBOX status %+v, %v", st, err)
	}
	healthy(t, s)
}

// fillDirect inserts messages with UIDs from..to-1 into a mailbox in one
// transaction, bypassing AppendMessages: MODSEQ uid+1, flags by UID.
func fillDirect(t *testing.T, s *Store, mailboxID int64, from, to int) {
	t.Helper()
	ctx := context.Background()
	err := s.write(ctx, func(tx *dbtx) error {
		var body int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO bodies (data) VALUES (x'00') RETURNING id`).Scan(&body); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `WITH RECURSIVE k(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2 - 1)
			INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id)
			SELECT ?3, i, i + 1, CASE WHEN i % 10 = 0 THEN '' WHEN i % 7 = 0 THEN '\Seen kw' ELSE '\Seen' END, 0, 1, ?4 FROM k`,
			from, to, mailboxID, body); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ?1, highest_modseq = ?1 WHERE id = ?2`, to, mailboxID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMessageIndexLarge checks a larger index with holes in its UIDs
// against the messages as written.
func TestMessageIndexLarge(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{})
	u, inbox := setup(t, s)
	const n = 25_000
	fillDirect(t, s, inbox.ID, 1, n+1)
	gone := []uint32{1, 2, 3, n / 2, n/2 + 1, n}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, gone); err != nil {
		t.Fatal(err)
	}
	idx, _, err := s.MessageIndex(ctx, u.ID, inbox.ID)
	if err != nil || len(idx) != n-len(gone) {
		t.Fatalf("MessageIndex: %d messages, %v", len(idx), err)
	}
	i := 0
	for uid := uint32(1); uid <= n; uid++ {
		if slices.Contains(gone, uid) {
			continue
		}
		var flags []string
		switch {
		case uid%10 == 0:
			flags = []string{}
		case uid%7 == 0:
			flags = []string{`\Seen`, "kw"}
		default:
			flags = []string{`\Seen`}
		}
		if m := idx[i]; m.UID != uid || m.ModSeq != uint64(uid)+1 || !slices.Equal(m.Flags, flags) {
			t.Fatalf("message %d: %+v, want UID %d MODSEQ %d flags %q", i, m, uid, uid+1, flags)
		}
		i++
	}
}

// TestMigrateV5 opens a schema version 4 database whose structures are
// kept in bodies.structure: after the migration MessageInfos reads them
// from the structures table, shared bodies keep theirs until their last
// message goes, and new appends store theirs there too.
func TestMigrateV5(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	u, inbox := setup(t, s)
	archive, err := s.MailboxByName(ctx, u.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	withStructure := func(n int) []uint32 {
		t.Helper()
		msgs := make([]store.NewMessage, n)
		for i := range msgs {
			msgs[i] = store.NewMessage{Body: []byte(fmt.Sprintf("message %d\r\n", i)), Structure: []byte{byte(i)}}
		}
		uids, _, err := s.AppendMessages(ctx, u.ID, inbox.ID, msgs)
		if err != nil {
			t.Fatal(err)
		}
		return uids
	}
	uids := withStructure(3)
	if _, _, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, archive.ID, uids[:1]); err != nil {
		t.Fatal(err)
	}
	// Back to version 4: the structures in bodies, one body without.
	for _, q := range []string{
		`UPDATE bodies SET structure = (SELECT data FROM structures WHERE body_id = bodies.id)`,
		`UPDATE bodies SET structure = NULL WHERE id = (SELECT max(id) FROM bodies)`,
		`DROP TABLE structures`,
		`DROP TABLE nodes`, `DROP INDEX sessions_owner`, `ALTER TABLE sessions DROP COLUMN generation`, `ALTER TABLE sessions DROP COLUMN owner`, // version 8
		`DROP TABLE headers`, // version 7
		`DROP TRIGGER bodies_file_delete`, `DROP TABLE dead_files`, `ALTER TABLE bodies DROP COLUMN file`,
		`UPDATE schema_version SET version = 4`,
	} {
		if _, err := s.wdbT().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	healthy(t, s)
	infos, err := s.MessageInfos(ctx, u.ID, inbox.ID, uids)
	if err != nil || len(infos) != 3 {
		t.Fatalf("MessageInfos: %+v, %v", infos, err)
	}
	for i, info := range infos {
		if want := i < 2; (info.Structure != nil) != want {
			t.Errorf("message %d: structure %q, want one: %v", info.UID, info.Structure, want)
		}
	}
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids); err != nil {
		t.Fatal(err)
	}
	infos, err = s.MessageInfos(ctx, u.ID, archive.ID, []uint32{1})
	if err != nil || len(infos) != 1 || infos[0].Structure == nil {
		t.Fatalf("the copy's structure after expunging the original: %+v, %v", infos, err)
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM structures`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d structures left, want 1 (%v)", n, err)
	}
	uids = withStructure(1)
	if infos, err := s.MessageInfos(ctx, u.ID, inbox.ID, uids); err != nil || len(infos) != 1 || infos[0].Structure == nil {
		t.Errorf("MessageInfos of a new message: %+v, %v", infos, err)
	}
	healthy(t, s)
}

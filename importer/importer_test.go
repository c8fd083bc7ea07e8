package importer

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/sqlite"
)

// testStore opens a fresh store with the account "alice".
func testStore(t testing.TB) (*sqlite.Store, store.User) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(ctx, "alice", "x", store.DefaultMailboxes())
	if err != nil {
		t.Fatal(err)
	}
	return st, u
}

// stored is a message as the store holds it.
type stored struct {
	body  string
	flags []string
	date  time.Time
}

func mailbox(t testing.TB, st store.Store, userID int64, name string) []stored {
	t.Helper()
	ctx := context.Background()
	mb, err := st.MailboxByName(ctx, userID, name)
	if err != nil {
		t.Fatalf("mailbox %s: %v", name, err)
	}
	metas, _, err := st.MessageIndex(ctx, userID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	infos, err := st.MessageInfos(ctx, userID, mb.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for _, in := range infos {
		b, err := st.MessageBody(ctx, userID, mb.ID, in.UID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, stored{body: string(b), flags: in.Flags, date: in.InternalDate})
	}
	return out
}

func importPaths(t testing.TB, st store.Store, userID int64, opts Options, paths ...string) Stats {
	t.Helper()
	im := New(st, userID, opts)
	for _, p := range paths {
		if err := im.Import(context.Background(), p); err != nil {
			t.Fatalf("import %s: %v", p, err)
		}
	}
	return im.Stats()
}

// The three messages of the mbox fixtures as their writer had them.
var mboxOriginals = []string{
	"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: escaped lines\n" +
		"Date: Mon, 6 Jan 2025 10:00:00 +0000\nMessage-ID: <one@example.org>\nStatus: RO\nX-Status: AF\n\n" +
		"From here on the body has lines that needed escaping.\n" +
		">From this line began with one \">\".\n" +
		">>From and this one with two.\n" +
		">Fromage is not a From_ line.\n" +
		" From with a leading space is not one either.\n" +
		"from in lower case neither.\n",
	"From: Bob <bob@example.org>\nTo: alice@example.org\nSubject: takeout date\n" +
		"Date: Wed, 15 Jun 2022 12:46:55 +0200\nMessage-ID: <two@example.org>\n\n" +
		"Second message, unread.\n\n\nTwo empty lines above: one is the message's, one the separator.\n",
	"From: Carol <carol@example.org>\nSubject: no date on the From_ line\n" +
		"Date: Tue, 1 Jul 2025 12:00:00 +0200\nMessage-ID: <three@example.org>\n\n" +
		"Last message, no empty line after it.\n",
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestImportMbox(t *testing.T) {
	// mboxo cannot tell a line that was ">From " from an escaped "From ".
	mboxoWant := append([]string(nil), mboxOriginals...)
	mboxoWant[0] = strings.Replace(mboxoWant[0], ">From this line", "From this line", 1)
	utc := time.UTC
	wantDates := []time.Time{
		time.Date(2025, 1, 6, 10, 0, 0, 0, utc),                      // asctime, in Location
		time.Date(2022, 6, 15, 10, 46, 55, 0, time.FixedZone("", 0)), // numeric zone
		time.Date(2025, 7, 1, 10, 0, 0, 0, utc),                      // Date header
	}
	wantFlags := [][]string{{`\Answered`, `\Flagged`, `\Seen`}, nil, nil}
	for _, c := range []struct {
		file   string
		format MboxFormat
		want   []string
	}{
		{"mboxrd.mbox", MboxRD, mboxOriginals},
		{"mboxo.mbox", MboxO, mboxoWant},
	} {
		t.Run(c.file, func(t *testing.T) {
			st, u := testStore(t)
			path := filepath.Join("testdata", c.file)
			opts := Options{MboxFormat: c.format, Location: utc}
			s := importPaths(t, st, u.ID, opts, path)
			if s.Read != 3 || s.Added != 3 || s.Skipped != 0 || s.Refused != 0 {
				t.Fatalf("stats %+v", s)
			}
			got := mailbox(t, st, u.ID, "INBOX")
			if len(got) != 3 {
				t.Fatalf("%d messages", len(got))
			}
			for i, m := range got {
				if m.body != crlf(c.want[i]) {
					t.Errorf("message %d:\n got %q\nwant %q", i+1, m.body, crlf(c.want[i]))
				}
				if !m.date.Equal(wantDates[i]) {
					t.Errorf("message %d: date %v, want %v", i+1, m.date, wantDates[i])
				}
				if !slices.Equal(m.flags, wantFlags[i]) {
					t.Errorf("message %d: flags %q, want %q", i+1, m.flags, wantFlags[i])
				}
			}

			// Again: nothing added.
			s = importPaths(t, st, u.ID, opts, path)
			if s.Read != 3 || s.Added != 0 || s.Skipped != 3 {
				t.Fatalf("re-run: stats %+v", s)
			}
			if n := len(mailbox(t, st, u.ID, "INBOX")); n != 3 {
				t.Fatalf("re-run: %d messages", n)
			}

			// As they are in the file.
			s = importPaths(t, st, u.ID, Options{MboxFormat: c.format, Location: utc, KeepLineEndings: true, Mailbox: "Raw"}, path)
			if s.Added != 3 {
				t.Fatalf("keep line endings: stats %+v", s)
			}
			for i, m := range mailbox(t, st, u.ID, "Raw") {
				if m.body != c.want[i] {
					t.Errorf("keep line endings, message %d:\n got %q\nwant %q", i+1, m.body, c.want[i])
				}
			}
		})
	}
}

func TestMboxUnescape(t *testing.T) {
	for _, c := range []struct {
		line  string
		rd, o string
	}{
		{">From x\n", "From x\n", "From x\n"},
		{">>From x\n", ">From x\n", ">>From x\n"},
		{">>>From x\n", ">>From x\n", ">>>From x\n"},
		{">Fromage\n", ">Fromage\n", ">Fromage\n"},
		{">> From x\n", ">> From x\n", ">> From x\n"},
		{"> From x\n", "> From x\n", "> From x\n"},
	} {
		rd := (&mboxReader{format: MboxRD}).unescape([]byte(c.line))
		o := (&mboxReader{format: MboxO}).unescape([]byte(c.line))
		if string(rd) != c.rd || string(o) != c.o {
			t.Errorf("%q: mboxrd %q (want %q), mboxo %q (want %q)", c.line, rd, c.rd, o, c.o)
		}
	}
}

func TestFromLineDate(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no zone database:", err)
	}
	for _, c := range []struct {
		line string
		want time.Time
		ok   bool
	}{
		{"MAILER-DAEMON Fri Apr 06 16:46:09 2001", time.Date(2001, 4, 6, 16, 46, 9, 0, paris), true},
		{"a@b  Fri Nov 26 21:40:36 2004", time.Date(2004, 11, 26, 21, 40, 36, 0, paris), true},
		{"a@b Sat Jan  3 01:05:34 1996", time.Date(1996, 1, 3, 1, 5, 34, 0, paris), true},
		{"123@xxx Wed Jun 15 10:46:55 +0000 2022", time.Date(2022, 6, 15, 10, 46, 55, 0, time.UTC), true},
		{"a@b Wed Jun 15 10:46:55 2022 -0700", time.Date(2022, 6, 15, 17, 46, 55, 0, time.UTC), true},
		{"a@b Mon Jan  1 00:00 2024", time.Date(2024, 1, 1, 0, 0, 0, 0, paris), true},
		{"MAILER-DAEMON", time.Time{}, false},
	} {
		got, ok := fromLineDate(c.line, paris)
		if ok != c.ok || ok && !got.Equal(c.want) {
			t.Errorf("%q: %v %v, want %v %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

// copyMaildir copies the fixture tree to a temporary directory, turning
// the "!2," of the file names into the usual ":2," and setting each
// file's modification time to the Unix time its name starts with.
func copyMaildir(t testing.TB, sep string) string {
	t.Helper()
	src := filepath.Join("testdata", "maildir")
	dst := filepath.Join(t.TempDir(), "Maildir")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, strings.ReplaceAll(rel, "!2,", sep))
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			return err
		}
		if sec, err := strconv.ParseInt(strings.SplitN(d.Name(), ".", 2)[0], 10, 64); err == nil {
			mt := time.Unix(sec, 0)
			return os.Chtimes(to, mt, mt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestImportMaildir(t *testing.T) {
	type want struct {
		subject string
		flags   []string
		unix    int64
	}
	wants := map[string][]want{
		"INBOX": {
			{"seen", []string{`\Seen`}, 1700000000},
			{"flagged replied seen", []string{`\Answered`, `\Flagged`, `\Seen`}, 1700000100},
			{"keyword", []string{`\Seen`, `$Label1`}, 1700000200},
			{"new", nil, 1700000300},
		},
		"Work":          {{"trashed", []string{`\Deleted`}, 1700000400}},
		"Work/Projects": {{"draft passed", []string{`\Draft`, `$Forwarded`}, 1700000500}},
		"Entwürfe":      {{"entwurf", []string{`\Draft`}, 1700000600}},
	}
	check := func(t *testing.T, st store.Store, userID int64, prefix string) {
		t.Helper()
		for name, ws := range wants {
			if prefix != "" {
				name = prefix + "/" + name
				if strings.HasSuffix(name, "/INBOX") {
					name = prefix
				}
			}
			got := mailbox(t, st, userID, name)
			if len(got) != len(ws) {
				t.Fatalf("%s: %d messages, want %d", name, len(got), len(ws))
			}
			for i, w := range ws {
				m := got[i]
				if !strings.Contains(m.body, "\r\nSubject: "+w.subject+"\r\n") {
					t.Errorf("%s %d: not %q (or not CRLF): %q", name, i, w.subject, m.body)
				}
				if !slices.Equal(m.flags, w.flags) {
					t.Errorf("%s %q: flags %q, want %q", name, w.subject, m.flags, w.flags)
				}
				if m.date.Unix() != w.unix {
					t.Errorf("%s %q: date %v, want %v", name, w.subject, m.date, time.Unix(w.unix, 0))
				}
			}
		}
	}
	for _, sep := range []string{":2,", "!2,"} {
		t.Run(sep, func(t *testing.T) {
			st, u := testStore(t)
			dir := copyMaildir(t, sep)
			s := importPaths(t, st, u.ID, Options{}, dir)
			if s.Read != 7 || s.Added != 7 {
				t.Fatalf("stats %+v", s)
			}
			check(t, st, u.ID, "")
			s = importPaths(t, st, u.ID, Options{}, dir)
			if s.Read != 7 || s.Added != 0 || s.Skipped != 7 {
				t.Fatalf("re-run: stats %+v", s)
			}
			check(t, st, u.ID, "")

			// Under another mailbox: the subfolders go below it.
			s = importPaths(t, st, u.ID, Options{Mailbox: "Old"}, dir)
			if s.Added != 7 {
				t.Fatalf("into Old: stats %+v", s)
			}
			check(t, st, u.ID, "Old")
		})
	}
}

// A message twice in one file is imported twice, and a re-run adds
// neither again; one that is not importable is refused and counted.
func TestImportDuplicatesAndRefusals(t *testing.T) {
	st, u := testStore(t)
	msg := "From: a@example.org\nSubject: same\n\nbody\n"
	mbox := "From a Mon Jan  6 10:00:00 2025\n" + msg + "\n" +
		"From a Mon Jan  6 10:00:00 2025\n" + msg + "\n" +
		"From a Mon Jan  6 10:00:00 2025\nSubject: nul\n\nx\x00y\n\n" +
		"From a Mon Jan  6 10:00:00 2025\n\n"
	path := filepath.Join(t.TempDir(), "dups.mbox")
	if err := os.WriteFile(path, []byte(mbox), 0o600); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	opts := Options{Warn: func(s string) { warnings = append(warnings, s) }}
	s := importPaths(t, st, u.ID, opts, path)
	if s.Read != 4 || s.Added != 2 || s.Refused != 2 {
		t.Fatalf("stats %+v", s)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "message 3") || !strings.Contains(warnings[1], "message 4") {
		t.Errorf("warnings %q", warnings)
	}
	s = importPaths(t, st, u.ID, opts, path)
	if s.Added != 0 || s.Skipped != 2 {
		t.Fatalf("re-run: stats %+v", s)
	}
	if n := len(mailbox(t, st, u.ID, "INBOX")); n != 2 {
		t.Fatalf("%d messages", n)
	}
}

func TestImportRejectsOtherFiles(t *testing.T) {
	st, u := testStore(t)
	dir := t.TempDir()
	notMbox := filepath.Join(dir, "notes.txt")
	os.WriteFile(notMbox, []byte("Subject: x\n\nhello\n"), 0o600)
	im := New(st, u.ID, Options{})
	if err := im.Import(context.Background(), notMbox); err == nil || !strings.Contains(err.Error(), "not an mbox") {
		t.Errorf("plain file: %v", err)
	}
	if err := im.Import(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "not a Maildir") {
		t.Errorf("plain directory: %v", err)
	}
}

func TestToCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\n":     "a\r\nb\r\n",
		"a\r\nb\r\n": "a\r\nb\r\n",
		"a\r\nb\n":   "a\r\nb\r\n",
		"\n":         "\r\n",
		"a\rb":       "a\rb",
	} {
		if got := string(toCRLF([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// An mbox written with CRLF line endings splits the same way and keeps
// them.
func TestImportMboxCRLF(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mboxrd.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crlf.mbox")
	if err := os.WriteFile(path, []byte(crlf(string(raw))), 0o600); err != nil {
		t.Fatal(err)
	}
	st, u := testStore(t)
	s := importPaths(t, st, u.ID, Options{KeepLineEndings: true, Location: time.UTC}, path)
	if s.Added != 3 {
		t.Fatalf("stats %+v", s)
	}
	for i, m := range mailbox(t, st, u.ID, "INBOX") {
		if m.body != crlf(mboxOriginals[i]) {
			t.Errorf("message %d:\n got %q\nwant %q", i+1, m.body, crlf(mboxOriginals[i]))
		}
		if i == 0 && !m.date.Equal(time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("date %v", m.date)
		}
	}
}

// Status, X-Status and Date count in the header only, not in the body.
func TestHeaderFieldsOnlyInHeader(t *testing.T) {
	st, u := testStore(t)
	mbox := "From MAILER-DAEMON\nSubject: quoted\n\nStatus: RO\nX-Status: F\nDate: Tue, 1 Jul 2025 12:00:00 +0200\n\n" +
		"From MAILER-DAEMON\nSubject: real\nStatus: RO\r\nDate: Tue, 1 Jul 2025 12:00:00 +0200\n\nbody\n"
	path := filepath.Join(t.TempDir(), "x.mbox")
	if err := os.WriteFile(path, []byte(mbox), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	importPaths(t, st, u.ID, Options{}, path)
	got := mailbox(t, st, u.ID, "INBOX")
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	if len(got[0].flags) != 0 || !got[0].date.Equal(mtime) {
		t.Errorf("fields in the body taken: flags %q, date %v", got[0].flags, got[0].date)
	}
	if !slices.Equal(got[1].flags, []string{`\Seen`}) || !got[1].date.Equal(time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("header fields missed: flags %q, date %v", got[1].flags, got[1].date)
	}
}

func TestHeaderEnd(t *testing.T) {
	for raw, want := range map[string]int{
		"A: b\n\nbody":         6,
		"A: b\r\n\r\nbody":     8,
		"\nbody":               1,
		"A: b\nC: d":           9,
		"A: b\n \n\nx":         8,
		"A: b\r\nC: d\r\n\r\n": 14,
	} {
		if got := headerEnd([]byte(raw)); got != want {
			t.Errorf("%q: %d, want %d", raw, got, want)
		}
	}
}

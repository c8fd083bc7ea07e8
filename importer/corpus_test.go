package importer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store/sqlite"
)

// mimeEdgeDir is the shared MIME edge-case corpus, ../shared/data from
// the module root.
const mimeEdgeDir = "../../shared/data/mime-edge"

// TestImportCorpusOverIMAP imports the MIME edge-case corpus, as a
// Maildir, into the store of a running server through a second store
// handle on the same data directory (as `quickimap import` beside
// `quickimap serve`), and reads every message back over IMAP: byte for
// byte as in the files with KeepLineEndings, and with bare LFs turned
// into CRLF by default. A client idling on INBOX meanwhile is told of
// the new messages by the server's poll for other processes' writes.
func TestImportCorpusOverIMAP(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(mimeEdgeDir, "*"))
	if len(files) == 0 {
		t.Skipf("no messages in %s (the shared MIME edge-case corpus, ../shared/data/mime-edge from the module root, is absent)", mimeEdgeDir)
	}
	ctx := context.Background()
	env := imaptest.Start(t, func(o *server.Options) { o.ExternalPollInterval = 20 * time.Millisecond })

	// The corpus as a Maildir, in file order by modification time.
	md := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	raws := make([][]byte, len(files))
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = b
		p := filepath.Join(md, "cur", fmt.Sprintf("%d.corpus%02d.host:2,S", base.Unix()+int64(i), i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}

	idler := env.DialLogin(t)
	idler.Cmd("s", "SELECT INBOX")
	idler.SendLine("i IDLE")
	if l := idler.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}

	// Another handle on the store: its writes are another connection's,
	// which the server learns of only by polling.
	st, err := sqlite.Open(ctx, env.Dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByName(ctx, env.User)
	if err != nil {
		t.Fatal(err)
	}
	s := importPaths(t, st, u.ID, Options{KeepLineEndings: true}, md)
	if s.Added != len(files) || s.Refused != 0 {
		t.Fatalf("stats %+v for %d files", s, len(files))
	}

	want := fmt.Sprintf("* %d EXISTS", len(files))
	for {
		l := idler.ReadLine()
		if l == want {
			break
		}
		if !strings.HasPrefix(l, "* ") {
			t.Fatalf("while idling: %q", l)
		}
	}
	idler.SendLine("DONE")
	idler.ReadUntilTagged("i")

	s = importPaths(t, st, u.ID, Options{Mailbox: "Converted"}, md)
	if s.Added != len(files) {
		t.Fatalf("converted: stats %+v", s)
	}

	c := env.DialLogin(t)
	for _, box := range []string{"INBOX", "Converted"} {
		c.Cmd("s", "EXAMINE "+box)
		for i, raw := range raws {
			if box == "Converted" {
				raw = toCRLF(raw)
			}
			got := fetchBody(t, c, uint32(i+1))
			if string(got) != string(raw) {
				t.Errorf("%s UID %d (%s): %d bytes back, %d imported; first difference at %d",
					box, i+1, filepath.Base(files[i]), len(got), len(raw), firstDiff(got, raw))
			}
		}
	}
}

// fetchBody fetches BODY.PEEK[] of uid and returns the literal.
func fetchBody(t *testing.T, c *imaptest.Conn, uid uint32) []byte {
	t.Helper()
	c.SendLine(fmt.Sprintf("f UID FETCH %d BODY.PEEK[]", uid))
	var body []byte
	for {
		l := c.ReadLine()
		if strings.HasPrefix(l, "f ") {
			if !strings.HasPrefix(l, "f OK") {
				t.Fatalf("UID FETCH %d: %q", uid, l)
			}
			return body
		}
		if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}") && strings.Contains(l, "BODY[]") {
			n, err := strconv.Atoi(l[i+1 : len(l)-1])
			if err != nil {
				t.Fatalf("literal in %q", l)
			}
			body = make([]byte, n)
			if _, err := io.ReadFull(c.R, body); err != nil {
				t.Fatal(err)
			}
			c.ReadLine() // the rest of the FETCH response
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

package server_test

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/internal/loadgen"
)

// countingConn counts the bytes read from the socket.
type countingConn struct {
	net.Conn
	in atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// downloadBytes appends msgs to a fresh mailbox, then counts the bytes a
// client reads from the socket to download them all (UID FETCH 1:*
// (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])), with and without
// COMPRESS=DEFLATE.
func downloadBytes(t *testing.T, msgs [][]byte) (plain, compressed int64) {
	t.Helper()
	env := imaptest.Start(t, nil)
	w := env.DialLogin(t)
	for i, m := range msgs {
		w.SendLine(fmt.Sprintf("a%d APPEND INBOX {%d+}", i, len(m)))
		w.Send(string(m) + "\r\n")
		if got := w.ReadUntilTagged(fmt.Sprintf("a%d", i)); !strings.Contains(got[len(got)-1], " OK ") {
			t.Fatalf("APPEND %d: %q", i, got)
		}
	}
	var total int64
	for _, m := range msgs {
		total += int64(len(m))
	}
	for _, compress := range []bool{false, true} {
		nc, err := net.Dial("tcp", env.Addr)
		if err != nil {
			t.Fatal(err)
		}
		cc := &countingConn{Conn: nc}
		nc.SetDeadline(time.Now().Add(2 * time.Minute))
		r := bufio.NewReader(cc)
		var out io.Writer = nc
		readUntil := func(tag string) {
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if strings.HasPrefix(l, tag+" ") {
					if !strings.HasPrefix(l, tag+" OK") {
						t.Fatalf("%q", l)
					}
					return
				}
			}
		}
		send := func(s string) { io.WriteString(out, s) }
		r.ReadString('\n')
		send("l LOGIN " + env.User + " " + env.Password + "\r\n")
		readUntil("l")
		if compress {
			send("z COMPRESS DEFLATE\r\n")
			readUntil("z")
			out = kflate.NewStatelessWriter(nc)
			r = bufio.NewReader(flate.NewReader(r))
		}
		send("s SELECT INBOX\r\n")
		readUntil("s")
		before := cc.in.Load()
		send("f UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])\r\n")
		readUntil("f")
		n := cc.in.Load() - before
		if compress {
			compressed = n
		} else {
			plain = n
		}
		nc.Close()
	}
	t.Logf("%d messages, %d bytes: download %d bytes plain, %d compressed (%.2f)",
		len(msgs), total, plain, compressed, float64(compressed)/float64(plain))
	return plain, compressed
}

// What COMPRESS saves on a full download: 1,000 realistic messages (text,
// HTML, base64 attachments: the base64 of random data compresses to
// about 3/4 and dominates), and the MIME edge-case corpus when present.
// The figures go in docs/performance.md.
func TestCompressDownloadBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 1,000 messages; skipped with -short")
	}
	plain, comp := downloadBytes(t, loadgen.RealisticMessages(1, 1000))
	if comp*10 > plain*9 {
		t.Errorf("1,000 realistic messages: %d bytes compressed, %d plain", comp, plain)
	}
	dir := filepath.Join("..", "..", "shared", "data", "mime-edge")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var corpus [][]byte
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && !strings.HasSuffix(f, ".md") {
			corpus = append(corpus, b)
		}
	}
	if len(corpus) == 0 {
		t.Logf("the MIME edge-case corpus (%s) is not here; CI has it", dir)
		return
	}
	plain, comp = downloadBytes(t, corpus)
	if comp >= plain {
		t.Errorf("MIME corpus: %d bytes compressed, %d plain", comp, plain)
	}
}
